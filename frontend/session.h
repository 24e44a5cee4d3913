/* One WebSocket connection: the per-connection state machine (new -> identifying -> joining ->
 * [resuming ->] ready -> closing), its receive assembly, rate limit (backpressure: reading
 * paused), the frame it holds while Redis is unreachable, bounded outbound queue and closing.
 * The struct is lws's per-session data of the "rrm" protocol; lws allocates and frees it, and
 * only session.c sees inside it. */
#ifndef RRM_SESSION_H
#define RRM_SESSION_H

#include "fanout.h"
#include "frame.h"
#include "room.h"

#include <libwebsockets.h>
#include <stdint.h>

struct app;

/* One WebSocket connection; private to session.c (lws allocates session_size bytes for it). */
struct session;
extern const size_t session_size;

/* How fanout and room.c reach the sessions (arg: the app). */
extern const struct fanout_ops session_fanout_ops;
extern const struct room_ops session_room_ops;

/* Re-asserts the room membership of every local session that holds one (room_restore), after
 * Redis came back or the cluster declared this node dead. */
void session_restore_all(struct app *app);

/* Calls fn for at most max local sessions that hold a room membership, as room.c knows them (the
 * strings are borrowed for the call). Returns how many sessions hold one in all. */
size_t session_each_member(struct app *app, size_t max,
                           void (*fn)(const struct room_conn *c, void *arg), void *arg);

/* Redis became ready: the frames held while it was unreachable are handled, oldest first, and
 * their connections read again. */
void session_redis_ready(struct app *app);

/* Drains every local session (session_drain). */
void session_drain_all(struct app *app);

/* 1 if conn ("<node>#<n>", len bytes) is a live local session holding a room membership. */
int session_holds_membership(struct app *app, const char *conn, size_t len);

/* What session.c keeps for the node (app->sessions: the local sessions, their numbering and
 * identify deadlines; app->outq): session_setup once the lws context exists (-1 when out of
 * memory), session_teardown before the context is destroyed (stops timers, frees the outbound
 * queues), session_free after it (the context's end closes every session first). */
int session_setup(struct app *app);
void session_teardown(struct app *app);
void session_free(struct app *app);

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
