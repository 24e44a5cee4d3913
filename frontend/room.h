/* Room actions in Redis, one script round trip each: identify (claim device, pick or create the
 * room, join), leave, send, query, and restore after Redis came back. room.c knows a connection
 * only by the ids in a struct room_conn; replies reach the connection through the room_ops the
 * app was given (app->room_ops), by its local number. A reply for a connection that closed
 * meanwhile is dropped by the owner, except an identify that completed, which room.c undoes. */
#ifndef RRM_ROOM_H
#define RRM_ROOM_H

#include "scripts.h"

#include <stddef.h>
#include <stdint.h>

struct app;

/* The connection an action is for. Strings are borrowed for the call; room.c copies what a reply
 * needs. */
struct room_conn {
    uint64_t no;         /* local connection number: replies are routed back by it */
    const char *conn_id; /* "<node>#<n>" */
    size_t conn_id_len;
    const char *device_id;
    const char *identity;
    const char *room_id; /* the room (for identify: the one asked for, or "") */
    const char *ip;      /* identify only */
    /* identify only, from the token (auth.h): the rooms claim's patterns ("a,b*"; NULL: any
     * room), which decide whether the device's last room may be reused, and whether a fresh
     * room may be created when no room was named and no last room is reused. */
    const char *rooms;
    int no_auto_room;
    int64_t connected_at_ms;
    /* send only: 1 to refresh the room history's TTL with this message (room_history_refresh_ms:
     * at most that often per room is enough) */
    int refresh_history;
};

/* One message of a room's history (borrowed for the call). */
struct room_history_msg {
    uint64_t seq;
    int binary;
    const char *frame; /* as relayed */
    size_t len;
};

/* A resume's answer (room_resume): recovered 1 with every message after the client's last seq
 * that another device sent, in order; 0 with none (the client missed some it cannot get). seq
 * and epoch are the room's when the history was read: every later message reaches the
 * connection through its room subscription. */
struct room_history {
    int recovered;
    long long seq;
    const char *epoch;
    const struct room_history_msg *msgs;
    size_t n;
};

/* How replies reach connections; arg is app->room_arg. */
struct room_ops {
    /* The identify is done: the device is in room (action "created", "joined" or "rejoined",
     * total members, the room's last seq and epoch). Returns -1 if connection no is gone:
     * room.c then undoes the join. */
    int (*identified)(void *arg, uint64_t no, const char *room, const char *action, long total,
                      long long seq, const char *epoch);
    /* The identify, or a restore, could not be carried out: the connection is to be closed. */
    void (*failed)(void *arg, uint64_t no, const char *code, const char *message);
    /* An error frame for the connection (the action was refused or its outcome is unknown). */
    void (*error)(void *arg, uint64_t no, const char *code, const char *message);
    /* A text frame for the connection (room_info). */
    void (*answer)(void *arg, uint64_t no, const char *text, size_t len);
    /* Another connection holds the device now (found on restore). */
    void (*replaced)(void *arg, uint64_t no);
    /* The membership was restored: the room's last seq, epoch (a new one if Redis had lost the
     * room) and members when it was. */
    void (*restored)(void *arg, uint64_t no, long long seq, const char *epoch, long total);
    /* The identify named no room, the last room is not one the token allows, and the token
     * forbids a fresh room (no_auto_room): nothing was changed in Redis. */
    void (*forbidden)(void *arg, uint64_t no);
    /* The history a resume asked for (room_resume). */
    void (*resumed)(void *arg, uint64_t no, const struct room_history *h);
    /* The message with this ack_id was accepted as seq (or was, the first time it was sent:
     * resent is 1, and it was not relayed again). */
    void (*acked)(void *arg, uint64_t no, const char *ack_id, long long seq, int resent);
};

/* c's device_id, identity, room_id (requested, may be ""), ip and connected_at_ms are set.
 * Returns 0 if sent; the reply calls ops->identified or ops->failed. */
int room_identify(struct app *app, const struct room_conn *c);

/* Removes c's membership if it still holds it and records the disconnect. Fire and forget;
 * app->pending_writes counts it until Redis answers. */
void room_leave(struct app *app, const struct room_conn *c, const char *reason);

/* The same for a membership known only by its ids (one this node lost track of). */
void room_leave_conn(struct app *app, const char *device, const char *room, const char *conn,
                     const char *reason, int64_t connected_at);

/* The settings baked into the send script (scripts_params) for this node's options. */
struct scripts_params room_send_params(const struct app *app);

/* How often a room's history TTL needs refreshing. The history's TTL is set to history-ttl-ms plus
 * this much whenever it is refreshed, so refreshing it with one message of a room per this many
 * ms keeps it for at least history-ttl-ms after the room's last message, and at most this much
 * longer. A history that a message creates gets its TTL at once. */
long room_history_refresh_ms(const struct app *app);

/* Relays one message: frame_prefix is the text envelope without ,"seq":N} (NULL for binary),
 * body the bytes the client sent, kind "text", "json" or "binary", ack_id the message's (NULL:
 * none; then ops->acked answers it). It is appended to the room's history (history-size).
 * Errors reach the client through ops->error. Returns 0 if sent. */
int room_send(struct app *app, const struct room_conn *c, const char *frame_prefix,
              size_t prefix_len, const void *body, size_t body_len, const char *kind,
              const char *ack_id);

/* Reads c's room history after last_seq if epoch is the room's; ops->resumed answers (or
 * ops->failed). The messages returned are bounded by history-size and send-queue-bytes.
 * Returns 0 if sent. */
int room_resume(struct app *app, const struct room_conn *c, long long last_seq, const char *epoch);

/* Room queries a node has in Redis at once. With query-max-clients this bounds the replies Redis
 * builds and buffers for a node, however many clients ask at the same moment. */
#define ROOM_QUERIES_IN_FLIGHT 64

/* Answers {"type":"room_info",...} through ops->answer. Returns 0 if sent, 1 if refused because
 * ROOM_QUERIES_IN_FLIGHT are outstanding, -1 if Redis is unavailable. */
int room_query(struct app *app, const struct room_conn *c);

/* Re-asserts c's membership (after Redis returned or this node was declared dead). */
int room_restore(struct app *app, const struct room_conn *c);

#endif
