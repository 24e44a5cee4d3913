/* A hiredis async connection driven by the libwebsockets event loop: the only module that touches
 * hiredis's event hooks.
 *
 * The Redis socket is adopted by lws as a RAW file descriptor, so lws only reports readiness and
 * hiredis does its own reads and writes. lws owns the fd from adoption on and closes it; hiredis
 * is told so by clearing its fd in the cleanup hook. Timers (connect timeout, reconnect backoff,
 * keepalive PING) run on lws_sul because hiredis 0.14 has no async timeouts.
 *
 * A link connects, authenticates, and reports on_up; when the connection fails or a PING goes
 * unanswered for too long it reports on_down (once) and reconnects with capped, jittered
 * exponential backoff. Every pending hiredis callback is called exactly once (with a NULL reply
 * when the connection is lost), as hiredis guarantees. */
#ifndef RRM_REDIS_LOOP_H
#define RRM_REDIS_LOOP_H

#include <hiredis/async.h>
#include <libwebsockets.h>
#include <stdint.h>

struct logger;
struct rl;

struct rl_ops {
    void (*on_up)(struct rl *rl, void *arg);   /* connected, authenticated, ready for commands */
    void (*on_down)(struct rl *rl, void *arg); /* lost; pending callbacks have had NULL replies */
    /* Around the handling of what one read brought (any number of replies); may be NULL. */
    void (*on_read_begin)(void *arg);
    void (*on_read_end)(void *arg);
    /* Push mode, for a subscription link (may be NULL): once the link is up, every reply it
     * reads is handed here (borrowed for the call) instead of to hiredis's callbacks, and
     * commands go out with rl_push_send. hiredis 0.14 hands only SUBSCRIBE and PSUBSCRIBE
     * pushes to callbacks; sharded pub/sub (SSUBSCRIBE) needs the replies as they come. */
    void (*on_push)(const redisReply *reply, void *arg);
};

struct rl_options {
    const char *name; /* for logs: "cmd", "sub" */
    const char *host;
    int port;
    const char *password; /* "" or NULL for none */
    int connect_timeout_ms;
    int ping_interval_ms; /* 0: no PING once up (a subscribed connection cannot answer one) */
    int ping_timeout_ms;  /* a PING unanswered this long drops the connection */
};

/* The lws protocol that adopted Redis sockets are bound to; add it to the vhost's protocol list. */
#define RL_PROTOCOL_NAME "rrm-redis"
int rl_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len);

/* Creates a link and starts connecting. Strings in opts are copied. Returns NULL on failure.
 * Caller destroys with rl_destroy(). */
struct rl *rl_create(struct lws_context *cx, struct lws_vhost *vh, const struct rl_options *opts,
                     const struct rl_ops *ops, void *arg, const struct logger *lg);

/* Closes the connection (pending callbacks get NULL replies, on_down is not called) and frees. */
void rl_destroy(struct rl *rl);

/* The hiredis context while the link is up, else NULL. Borrowed. */
redisAsyncContext *rl_ctx(struct rl *rl);

/* Push mode: queues one command (no reply callback: its replies reach ops->on_push). Returns 0,
 * or -1 if the link is not up or out of memory. */
int rl_push_send(struct rl *rl, int argc, const char **argv, const size_t *lens);

/* Microseconds of the last PING round trip (0 before the first). */
int64_t rl_rtt_us(const struct rl *rl);

/* The arg given to rl_create, from a context this module created (for reply callbacks). */
void *rl_arg_of(const redisAsyncContext *ac);

/* Number of times the link went down. */
uint64_t rl_drops(const struct rl *rl);

#endif
