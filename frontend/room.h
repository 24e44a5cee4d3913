/* Room actions in Redis, one script round trip each: identify (claim device, pick or create the
 * room, join), leave, send, query, and restore after Redis came back. Replies continue the
 * session's flow through the session_on_* functions below; a reply for a session that closed
 * meanwhile is handled here (an identify that completed for a gone session is undone). */
#ifndef RRM_ROOM_H
#define RRM_ROOM_H

#include <stddef.h>
#include <stdint.h>

struct app;
struct session;

/* s->device_id, identity and room_id (requested, may be "") are set. Returns 0 if sent;
 * the reply calls session_on_identified() or session_on_failed(). */
int room_identify(struct app *app, struct session *s);

/* Removes s's membership if it still holds it and records the disconnect. Fire and forget;
 * app->pending_writes counts it until Redis answers. */
void room_leave(struct app *app, const struct session *s, const char *reason);

/* The same for a membership known only by its ids (one this node lost track of). */
void room_leave_conn(struct app *app, const char *device, const char *room, const char *conn,
                     const char *reason, int64_t connected_at);

/* Relays one message: frame_prefix is the text envelope without ,"seq":N} (NULL for binary),
 * body the bytes the client sent, kind "text", "json" or "binary". Errors reach the client as
 * error frames. Returns 0 if sent. */
int room_send(struct app *app, struct session *s, const char *frame_prefix, size_t prefix_len,
              const void *body, size_t body_len, const char *kind);

/* Room queries a node has in Redis at once. With query-max-clients this bounds the replies Redis
 * builds and buffers for a node, however many clients ask at the same moment. */
#define ROOM_QUERIES_IN_FLIGHT 64

/* Answers {"type":"room_info",...} to s. Returns 0 if sent, 1 if refused because
 * ROOM_QUERIES_IN_FLIGHT are outstanding, -1 if Redis is unavailable. */
int room_query(struct app *app, struct session *s);

/* Re-asserts s's membership (after Redis returned or this node was declared dead). */
int room_restore(struct app *app, struct session *s);

/* Continuations, implemented by session.c. */
void session_on_identified(struct session *s, const char *room, const char *action, long total);
void session_on_failed(struct session *s, const char *code, const char *message);

#endif
