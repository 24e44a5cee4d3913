/* Fan-out on this node: which local sessions are in which room, which rooms the node wants to
 * hear (one sharded channel per room with local members), and delivery of each relayed frame,
 * built once, to every local recipient. The subscriptions themselves, the links they live on and
 * the node's control channel are sublinks.h's: fanout asks it through app->subs and is told
 * back through the fanout_confirmed/lost/unsubscribed/message/control calls below.
 *
 * Subscription state per room: a room is subscribed when its first local member joins and
 * unsubscribed when its last one leaves. A member is told it is ready (fanout_ops.ready) only
 * once the subscription is confirmed, so a client never misses a message sent after it saw its
 * "room" frame. When the subscription is lost (its link went down, its slot moved, a failover)
 * the room is not ready until it is confirmed again: members who join meanwhile wait, and every
 * member is told ready again then (a ready member catches up from the room history).
 *
 * fanout knows members only as the struct fanout_member their owner embeds, and talks back
 * through the fanout_ops given at creation. */
#ifndef RRM_FANOUT_H
#define RRM_FANOUT_H

#include "frame.h"

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

struct app;
struct fanout;
struct lroom;

/* A connection's membership of a local room, embedded by its owner (zeroed: not joined). */
struct fanout_member {
    lws_dll2_t link;    /* in its room's members */
    struct lroom *room; /* NULL when not joined */
    uint64_t conn_no;   /* the connection's local number: it is not sent its own messages */
    int presence;       /* it is handed the room's presence events (fanout_join) */
};

struct fanout_ops {
    /* The node receives the room's messages now: m can be answered. Also called again for every
     * member when the room's subscription is confirmed again after it was lost. */
    void (*ready)(struct fanout_member *m, void *arg);
    /* A relayed frame for m, built once and shared (take a reference to keep it); also a
     * presence event (seq 0) for a member that asked for them. */
    void (*deliver)(struct fanout_member *m, struct frame *f, void *arg);
    /* The node's control channel says that connection conn (len bytes, "<node>#<n>") was
     * replaced by a newer connection of its device. */
    void (*kick)(const char *conn, size_t len, void *arg);
    /* The server API asks to close connection conn (len bytes) with reason (rlen bytes, no
     * control characters). */
    void (*disconnect)(const char *conn, size_t len, const char *reason, size_t rlen, void *arg);
};

/* ops and arg are borrowed for the fanout's life. */
struct fanout *fanout_create(struct app *app, const struct fanout_ops *ops, void *arg);
void fanout_destroy(struct fanout *f);

/* Adds m (connection conn_no) to the local room, subscribing if needed; ops->ready(m) follows,
 * at once if the room is already subscribed. With presence 1, m is also handed the room's
 * presence events ({"type":"join"|"leave",...}: another device entered or left the room, on any
 * node), each frame built once per node and shared; never those of its own connection. Returns 0
 * or -1 on allocation failure. */
int fanout_join(struct fanout *f, struct fanout_member *m, uint64_t conn_no, const char *room,
                int presence);

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

/* What sublinks reports (main.c wires its ops here); channel names of len bytes, borrowed. */
/* The room's subscription is confirmed: its members are ready. */
void fanout_confirmed(struct fanout *f, const char *ch, size_t len);
/* The room's subscription was dropped; sublinks subscribes it again (confirmed follows). */
void fanout_lost(struct fanout *f, const char *ch, size_t len);
/* The unsubscription asked for when the room's last member left is done. */
void fanout_unsubscribed(struct fanout *f, const char *ch, size_t len);
/* A message relayed on the room's channel (smessage): delivered to the local members; a
 * presence event (proto.h) only to those who asked for them. */
void fanout_message(struct fanout *f, const char *ch, size_t len, const char *payload, size_t plen);
/* A message on the node's control channel ("kick <conn>", "disconnect <conn>\t<reason>"). */
void fanout_control(struct fanout *f, const char *msg, size_t len);

size_t fanout_room_count(const struct fanout *f);

/* Calls fn for every local room with its number of local members. */
void fanout_each_room(const struct fanout *f,
                      void (*fn)(const char *room, size_t members, void *arg), void *arg);

#endif
