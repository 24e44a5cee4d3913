/* Fan-out on this node: which local sessions are in which room, the node's Redis subscriptions
 * (one channel per room with local members, plus the node's control channel), and delivery of
 * each relayed frame, built once, to every local recipient.
 *
 * Subscription state per room: a room is subscribed when its first local member joins and
 * unsubscribed when its last one leaves. A member is answered (session_room_ready) only once the
 * subscription is confirmed, so a client never misses a message sent after it saw its "room"
 * frame. */
#ifndef RRM_FANOUT_H
#define RRM_FANOUT_H

#include <hiredis/async.h>
#include <stddef.h>

struct app;
struct session;
struct fanout;

struct fanout *fanout_create(struct app *app);
void fanout_destroy(struct fanout *f);

/* Adds s to the local room (subscribing if needed). session_room_ready(s) follows, at once if
 * the room is already subscribed. Returns 0 or -1 on allocation failure. */
int fanout_join(struct fanout *f, struct session *s, const char *room);

/* Removes s from its local room, unsubscribing after the last member. Safe if not joined. */
void fanout_leave(struct fanout *f, struct session *s);

/* The subscription link came up: subscribe the node channel and every local room again. */
void fanout_link_up(struct fanout *f, redisAsyncContext *sub);
/* The subscription link went down: every subscription is gone. */
void fanout_link_down(struct fanout *f);

size_t fanout_room_count(const struct fanout *f);

/* Calls fn for every local room with its number of local members. */
void fanout_each_room(const struct fanout *f,
                      void (*fn)(const char *room, size_t members, void *arg), void *arg);

#endif
