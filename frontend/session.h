/* One WebSocket connection: the per-connection state machine (new -> identifying -> joining ->
 * ready -> closing), its receive assembly, rate limit, bounded outbound queue and closing.
 * The struct is lws's per-session data of the "rrm" protocol; lws allocates and frees it. */
#ifndef RRM_SESSION_H
#define RRM_SESSION_H

#include "deadlines.h"
#include "fanout.h"
#include "frame.h"
#include "outq.h"
#include "proto.h"
#include "room.h"
#include "rxbuf.h"

#include <libwebsockets.h>
#include <stdint.h>

struct app;
struct http_reply;

enum session_state {
    SS_NEW,         /* waiting for the identify frame */
    SS_IDENTIFYING, /* identify script in flight; reading paused */
    SS_JOINING,     /* member in Redis; waiting for this node's room subscription */
    SS_READY,       /* answered; relays both ways */
    SS_CLOSING,     /* close queued or connection cut */
};

struct session {
    struct app *app;
    struct lws *wsi;
    uint64_t conn_no; /* local number; cluster-wide id is "<node>#<conn_no>" */
    enum session_state state;
    char device_id[PROTO_MAX_DEVICE_ID + 1];
    char *identity; /* from the identify; owned, freed on close */
    char room_id[PROTO_MAX_ROOM_ID + 1];
    char ip[48];
    char room_action[12];
    long room_total;
    int64_t identified_at_ms;
    uint8_t joined; /* holds a membership in Redis */

    struct rxbuf rx; /* fragments of one incoming message */

    /* rate limit: token buckets refilled at max-msgs-per-sec and max-bytes-per-sec */
    double tokens, byte_tokens;
    int64_t tokens_at_ms;

    struct outq_client out; /* frames owed to the client (outq.h) */

    /* closing */
    uint16_t close_code;
    const char *close_reason;      /* static string */
    const char *disconnect_reason; /* for the archive event; static string */

    struct fanout_member member; /* in the local room (fanout.h) */

    struct deadline identify_deadline; /* armed from accept until the identify frame */

    struct http_reply *http; /* owned by http.c on plain HTTP connections */
};

/* How fanout and room.c reach the sessions (arg: the app). */
extern const struct fanout_ops session_fanout_ops;
extern const struct room_ops session_room_ops;

/* Re-asserts the room membership of every local session that holds one (room_restore), after
 * Redis came back or the cluster declared this node dead. */
void session_restore_all(struct app *app);

/* Drains every local session (session_drain). */
void session_drain_all(struct app *app);

/* 1 if conn ("<node>#<n>", len bytes) is a live local session holding a room membership. */
int session_holds_membership(struct app *app, const char *conn, size_t len);

/* Sets up and releases what session.c keeps in app (the identify deadlines, the outbound
 * queues); around the life of the lws context. session_setup returns -1 when out of memory. */
int session_setup(struct app *app);
void session_teardown(struct app *app);

/* The lws protocol callback of the "rrm" protocol (WebSocket sessions and HTTP requests). */
int session_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);

/* Queues a shared frame for the client (takes a reference). A client whose queue would exceed
 * send-queue-bytes is cut off as a slow consumer. */
void session_send_frame(struct session *s, struct frame *f);

/* Copies a text frame into the queue. */
void session_send_text(struct session *s, const char *text, size_t len);

/* Sends an error frame {"type":"error",...} and counts the error. */
void session_send_error(struct session *s, const char *code, const char *message);

/* Queues a close with the given code and reason after what is already queued; reason and
 * disconnect_reason must be static strings. */
void session_close(struct session *s, uint16_t code, const char *reason,
                   const char *disconnect_reason);

/* Looks a local session up by its cluster-wide conn id; NULL if it is not ours or gone. */
struct session *session_find(struct app *app, const char *conn, size_t len);
struct session *session_find_no(struct app *app, uint64_t conn_no);

/* Writes "<node>#<conn_no>" into buf. */
int session_conn_id(const struct session *s, char *buf, size_t cap);

#endif
