/* The frontend's Redis command router: where each command and script call goes.
 *
 * Owns the command links (one rl per Redis master; one link in all for a single Redis), the slot
 * table of a Redis Cluster (slot -> master, from CLUSTER SLOTS), the loading of the Lua scripts on
 * every link as it comes up, and the following of the cluster's redirections. It knows nothing
 * about rooms: callers give keys, arguments and a callback.
 *
 * Single Redis (cluster = 0): one link, no slot table, no copy of the request kept: a request is
 * written to the link as it is accepted and its reply handed to the callback, as with one rl.
 *
 * Redis Cluster: the seeds (host:port and the "nodes" list) are asked CLUSTER SLOTS; the first
 * answer gives the table, and a link is opened to every master (an empty host in the answer
 * means the host of the seed that answered). The table is asked again after a MOVED, when a
 * link goes down, every 10 s, and every 500 ms while some master is not linked (a failover
 * replaces it). Links to nodes that are no longer masters close once their replies are in.
 * A request is sent to the master of the slot of its first key and kept (its formatted bytes)
 * until its final reply, to be sent again when Redis redirects it:
 *   MOVED       the slot's master is set at once (a link opened if new), the request is sent
 *               there, and the table is asked again;
 *   ASK         ASKING, then the request, to the named node (this request only);
 *   TRYAGAIN    sent again after 50 ms;
 *   NOSCRIPT    (a promoted replica lacks the scripts) the scripts are loaded on that link,
 *               then the request is sent again;
 * at most ROUTER_MAX_REDIRECTS of them per request, then the caller gets the error.
 *   CLUSTERDOWN, LOADING  (a failover, a node loading its data) sent again every 100 ms, with
 *               the table asked again, until the connect and ping timeouts have passed since
 *               the first such answer; then the caller gets it.
 * Every other error goes to the caller.
 *
 * Order: the replies for one slot reach the callbacks in the order the requests were accepted
 * (a reply that comes before an older request's of the slot is copied and held until then).
 * While a slot has a redirected request, new requests for it wait in a per-slot FIFO until
 * every request of the slot sent before has been delivered, then go out in order; so Redis runs
 * them in that order too, except that a NOSCRIPT delays only the request that got it (a request
 * of the same slot already sent runs first; its reply is still delivered after). Requests sent
 * again after a pause (TRYAGAIN, CLUSTERDOWN, LOADING) go out in the order they were accepted:
 * none before an older one of its slot that waits too.
 * Across slots no order is promised.
 *
 * Liveness: each link is an rl with keepalive PINGs. A lost link fails the requests sent on it
 * with a NULL reply (the outcome is unknown); requests waiting for a link that does not come up
 * within the connect timeout plus the ping timeout fail with NULL too. */
#ifndef RRM_ROUTER_H
#define RRM_ROUTER_H

#include "scripts.h"

#include <hiredis/hiredis.h>
#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

struct logger;
struct router;

#define ROUTER_MAX_REDIRECTS 5

struct router_options {
    const char *host; /* a seed (cluster) or the Redis (single) */
    int port;
    const char *password; /* "" or NULL for none */
    int cluster;          /* 0: one Redis, no slots */
    const char *nodes;    /* cluster: more seeds, "h:p,h:p" (NULL: none) */
    int connect_timeout_ms, ping_interval_ms, ping_timeout_ms;
    struct scripts_params params; /* written into the send script */
};

struct router_ops {
    void (*up)(void *arg);   /* every master linked and the scripts loaded on each */
    void (*down)(void *arg); /* no longer so; once per change */
    /* Around the handling of what one read of a link brought; may be NULL. */
    void (*on_read_begin)(void *arg);
    void (*on_read_end)(void *arg);
    /* Redis Cluster: the slot table changed (a CLUSTER SLOTS answer or a MOVED moved a slot or
     * changed the masters). Called from the loop, never from inside a router_* call; may be
     * NULL. */
    void (*topology)(void *arg);
};

/* A request's outcome: reply NULL when its link was lost with the request sent (outcome
 * unknown) or the router was destroyed, else the final reply (an error reply only when it is not
 * a redirection the router follows). The reply is borrowed for the call; arg is the router's. */
typedef void router_reply_fn(void *arg, redisReply *reply, void *priv);

/* Creates the router and starts connecting. Strings in opts are copied; ops and lg are borrowed
 * and must outlive it. Returns NULL on a bad option (cluster seeds that do not parse) or without
 * memory. Caller destroys with router_destroy. */
struct router *router_create(struct lws_context *cx, struct lws_vhost *vh,
                             const struct router_options *opts, const struct router_ops *ops,
                             void *arg, const struct logger *lg);

/* Closes every link; every pending callback gets NULL; no ops are called. Not from inside one of
 * the router's callbacks. */
void router_destroy(struct router *r);

/* 1 while up (see router_ops.up), else 0. */
int router_ready(const struct router *r);

/* EVALSHA of script id with nkeys keys (argv holds the keys first, then the other arguments;
 * lens may be NULL for NUL-terminated strings), routed by the slot of argv[0]. Returns 0 if
 * accepted (cb will be called exactly once, never from inside this call), -1 if not (cb is not
 * called): the slot's master is not ready, too many arguments, or no memory. */
int router_eval(struct router *r, enum script_id id, router_reply_fn *cb, void *priv, int nkeys,
                int argc, const char **argv, const size_t *lens);

/* A plain command routed by the slot of key, or to any ready master when key is NULL (a command
 * without keys). Returns as router_eval. */
int router_command(struct router *r, const char *key, router_reply_fn *cb, void *priv, int argc,
                   const char **argv, const size_t *lens);

/* Where slot lives now: copies the host of its master into host (cap bytes, NUL-terminated)
 * and sets *port. Single Redis: the Redis, for every slot. Returns 0, or -1 if the slot has no
 * known master (no table yet, or an unassigned slot) or host is too small. */
int router_slot_owner(const struct router *r, unsigned slot, char *host, size_t cap,
                      unsigned *port);

/* Calls fn for every master of the current table (single Redis: the Redis), each once; returns
 * their number (0 in a cluster before the first table). */
int router_each_master(const struct router *r,
                       void (*fn)(const char *host, unsigned port, void *arg), void *arg);

/* Asks for the slot table again now (cluster; nothing for a single Redis). */
void router_refresh(struct router *r);

/* Microseconds of the last PING round trip: the largest over the ready links (0 before any). */
int64_t router_rtt_us(const struct router *r);

/* Number of times a link went down, over every link the router had. */
uint64_t router_drops(const struct router *r);

/* Redirections followed (MOVED, ASK, TRYAGAIN, NOSCRIPT), since creation. */
uint64_t router_redirections(const struct router *r);

#endif
