/* Fan-out on this node: which local sessions are in which room, the node's Redis subscriptions
 * (one channel per room with local members, plus the node's control channel), and delivery of
 * each relayed frame, built once, to every local recipient.
 *
 * Subscription state per room: a room is subscribed when its first local member joins and
 * unsubscribed when its last one leaves. A member is told it is ready (fanout_ops.ready) only
 * once the subscription is confirmed, so a client never misses a message sent after it saw its
 * "room" frame.
 *
 * fanout knows members only as the struct fanout_member their owner embeds, and talks back
 * through the fanout_ops given at creation. */
#ifndef RRM_FANOUT_H
#define RRM_FANOUT_H

#include "frame.h"

#include <hiredis/async.h>
#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

struct app;
struct fanout;
struct lroom;
struct rl;

/* A connection's membership of a local room, embedded by its owner (zeroed: not joined). */
struct fanout_member {
    lws_dll2_t link;    /* in its room's members */
    struct lroom *room; /* NULL when not joined */
    uint64_t conn_no;   /* the connection's local number: it is not sent its own messages */
};

struct fanout_ops {
    /* The node receives the room's messages now: m can be answered. Also called again for every
     * member after the subscription link came back. */
    void (*ready)(struct fanout_member *m, void *arg);
    /* A relayed frame for m, built once and shared (take a reference to keep it). */
    void (*deliver)(struct fanout_member *m, struct frame *f, void *arg);
    /* The node's control channel says that connection conn (len bytes, "<node>#<n>") was
     * replaced by a newer connection of its device. */
    void (*kick)(const char *conn, size_t len, void *arg);
};

/* ops and arg are borrowed for the fanout's life. */
struct fanout *fanout_create(struct app *app, const struct fanout_ops *ops, void *arg);
void fanout_destroy(struct fanout *f);

/* Adds m (connection conn_no) to the local room, subscribing if needed; ops->ready(m) follows,
 * at once if the room is already subscribed. Returns 0 or -1 on allocation failure. */
int fanout_join(struct fanout *f, struct fanout_member *m, uint64_t conn_no, const char *room);

/* 1 if m's room is subscribed (the node receives its messages now), else 0. */
int fanout_member_ready(const struct fanout_member *m);

/* 1 if m's room was not due for every_ms (or since fanout_rooms_due_reset, or ever), and from now
 * on it is not; else 0. For work a room needs at most that often, done with one of its members'
 * actions (room_history_refresh_ms). */
int fanout_room_due(struct fanout *f, struct fanout_member *m, int64_t now_ms, long every_ms);
/* Makes every room due again (what was done may have been lost with the Redis link). */
void fanout_rooms_due_reset(struct fanout *f);

/* Removes m from its local room, unsubscribing after the last member. Safe if not joined. */
void fanout_leave(struct fanout *f, struct fanout_member *m);

/* The subscription link came up: subscribe the node channel and every local room again. The
 * link runs in push mode with fanout_push (redis_loop.h): rooms are sharded channels
 * (SSUBSCRIBE), the node channel a plain one. */
void fanout_link_up(struct fanout *f, struct rl *sub);
/* Every reply the subscription link reads (its rl_ops.on_push); arg is the fanout. */
void fanout_push(const redisReply *reply, void *arg);
/* The subscription link went down: every subscription is gone. */
void fanout_link_down(struct fanout *f);

size_t fanout_room_count(const struct fanout *f);

/* Calls fn for every local room with its number of local members. */
void fanout_each_room(const struct fanout *f,
                      void (*fn)(const char *room, size_t members, void *arg), void *arg);

#endif
