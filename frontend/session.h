/* One WebSocket connection: the per-connection state machine (new -> identifying -> joining ->
 * ready -> closing), its receive assembly, rate limit, bounded outbound queue and closing.
 * The struct is lws's per-session data of the "rrm" protocol; lws allocates and frees it. */
#ifndef RRM_SESSION_H
#define RRM_SESSION_H

#include "deadlines.h"
#include "frame.h"
#include "proto.h"
#include "rxbuf.h"

#include <libwebsockets.h>
#include <stdint.h>

struct app;
struct lroom;
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

    /* outbound queue: a ring of shared frames, bounded by send-queue-bytes */
    struct frame **q;
    uint32_t q_head, q_len, q_cap;
    size_t q_bytes;

    /* closing */
    uint16_t close_code;
    const char *close_reason;      /* static string */
    const char *disconnect_reason; /* for the archive event; static string */

    /* owned by fanout: membership of the local room */
    lws_dll2_t room_link;
    struct lroom *lroom;

    struct deadline identify_deadline; /* armed from accept until the identify frame */
    lws_dll2_t batch_link; /* in app->batch while it has frames from the current Redis read */

    struct http_reply *http; /* owned by http.c on plain HTTP connections */
};

/* Bytes gathered into one write at most; more waits for the next writeable callback. Also the
 * protocol's tx_packet_size: lws would otherwise cut every send() to rx_buffer_size. */
#define SESSION_WRITE_BATCH (256 * 1024)

/* Sets up and releases what session.c keeps in app (the identify deadlines, the flush timer);
 * around the life of the lws context. */
void session_setup(struct app *app);
void session_teardown(struct app *app);

/* The lws protocol callback of the "rrm" protocol (WebSocket sessions and HTTP requests). */
int session_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);

/* Queues a shared frame for the client (takes a reference). A client whose queue would exceed
 * send-queue-bytes is cut off as a slow consumer. */
void session_send_frame(struct session *s, struct frame *f);

/* Frames queued between these two calls (the handling of one Redis read: a burst of relayed
 * messages and replies) are written when it ends, each session's in one system call, straight
 * away when its socket has nothing pending, else from the writeable callback. Writing then and
 * there spares the two epoll changes and the loop pass that a writeable callback costs. */
void session_batch_begin(void *app);
void session_batch_end(void *app);

/* Under load (more than coalesce-above deliveries per second, checked by session_load_tick),
 * session_batch_end leaves the batch for up to coalesce-ms so that each client's frames go out
 * in fewer, larger writes: at 100,000 deliveries/s a client is sent a frame every few ms, and
 * one send() per frame is most of the node's CPU. Called by main's tick. */
void session_load_tick(struct app *app, int64_t now_ms);

/* Copies a text frame into the queue. */
void session_send_text(struct session *s, const char *text, size_t len);

/* Sends an error frame {"type":"error",...} and counts the error. */
void session_send_error(struct session *s, const char *code, const char *message);

/* Queues a close with the given code and reason after what is already queued; reason and
 * disconnect_reason must be static strings. */
void session_close(struct session *s, uint16_t code, const char *reason,
                   const char *disconnect_reason);

/* Tells the client that the node is shutting down (error "draining") and closes with 1001 after
 * what is already queued. */
void session_drain(struct session *s);

/* Called by fanout once the node receives the room's messages: answers the identify. */
void session_room_ready(struct session *s);

/* Looks a local session up by its cluster-wide conn id; NULL if it is not ours or gone. */
struct session *session_find(struct app *app, const char *conn, size_t len);
struct session *session_find_no(struct app *app, uint64_t conn_no);

/* Writes "<node>#<conn_no>" into buf. */
int session_conn_id(const struct session *s, char *buf, size_t cap);

#endif
