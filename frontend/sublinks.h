/* The node's Redis subscription links: where each subscription lives and keeping it there.
 *
 * Owns the subscription connections (push-mode rl, redis_loop.h): one to the Redis, or in a Redis
 * Cluster one to every master (the masters and the owner of each slot are the router's, read
 * through router.h), and which channel is subscribed on which of them. It knows nothing about
 * rooms: channels are opaque names, and a sharded channel lives on the master of the slot of its
 * name (slots_of_key: its hash tag).
 *
 * Sharded channels (SSUBSCRIBE): sublinks_subscribe asks for one; ops->confirmed follows once
 * Redis confirms it. A confirmed channel may be dropped without being asked: its link went down,
 * Redis pushed an unasked 'sunsubscribe' (its slot moved away), or a pending SSUBSCRIBE was
 * refused (MOVED, ASK, CLUSTERDOWN...). Then ops->lost is called and the module subscribes it
 * again by itself where its slot lives now (asking the router for a new slot table after a
 * MOVED or a moved slot; retried with a short backoff, 50 ms doubling up to 1 s, while the
 * slot's master is unknown or not linked), and ops->confirmed follows once Redis confirms. So
 * each channel alternates confirmed, lost, confirmed... until it is unsubscribed.
 *
 * The control channel (a plain SUBSCRIBE, given at creation) is kept subscribed on one linked
 * master, any one: a PUBLISH in a Redis Cluster reaches every node. When that link goes down it
 * is subscribed on another. Its messages go to ops->control.
 *
 * Up: every master has a live subscription link and the control channel is confirmed
 * (ops->up, then ops->down once when that is no longer so).
 *
 * Messages (smessage) go to ops->message with the channel's name as Redis sent it, without any
 * lookup or copy here: the caller maps the name to what it serves. */
#ifndef RRM_SUBLINKS_H
#define RRM_SUBLINKS_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

struct logger;
struct router;
struct sublinks;

struct sublinks_options {
    const char *password; /* "" or NULL for none */
    int connect_timeout_ms, ping_timeout_ms;
    const char *control; /* the plain channel kept subscribed */
};

/* Every callback runs from the loop (a link's read, a timer), never from inside a sublinks_*
 * call. Channel names are borrowed for the call and not NUL-terminated. */
struct sublinks_ops {
    void (*up)(void *arg);
    void (*down)(void *arg);
    void (*confirmed)(const char *ch, size_t len, void *arg);
    /* The channel asked for with sublinks_unsubscribe is gone; the module forgot it. */
    void (*unsubscribed)(const char *ch, size_t len, void *arg);
    /* A confirmed (or pending) channel is no longer subscribed; the module subscribes it
     * again and calls confirmed when Redis confirms. */
    void (*lost)(const char *ch, size_t len, void *arg);
    void (*message)(const char *ch, size_t len, const char *payload, size_t plen, void *arg);
    void (*control)(const char *payload, size_t len, void *arg);
    /* Around the handling of what one read of a link brought; may be NULL. */
    void (*on_read_begin)(void *arg);
    void (*on_read_end)(void *arg);
};

/* Creates the module; links open as the router names masters (at once for a single Redis).
 * router, ops and lg are borrowed and must outlive it; strings in opts are copied. The router's
 * topology op must call sublinks_topology. NULL without memory. */
struct sublinks *sublinks_create(struct lws_context *cx, struct lws_vhost *vh,
                                 struct router *router, const struct sublinks_options *opts,
                                 const struct sublinks_ops *ops, void *arg,
                                 const struct logger *lg);

/* Closes every link; no ops are called. NULL is allowed. */
void sublinks_destroy(struct sublinks *s);

/* Subscribes the sharded channel ch (len bytes, at most 255): confirmed follows. Asking again
 * for a channel already asked for (and not being unsubscribed) does nothing. Returns 0, or -1
 * without memory, for a name too long, or while the channel is being unsubscribed (ask again
 * after unsubscribed). */
int sublinks_subscribe(struct sublinks *s, const char *ch, size_t len);

/* Unsubscribes ch. Returns 1 if it is forgotten now (it was not subscribed on any link: no
 * callback follows), 0 if unsubscribed follows (once Redis confirms, or when its link goes
 * down), -1 if ch is not subscribed (never asked, or already being unsubscribed). */
int sublinks_unsubscribe(struct sublinks *s, const char *ch, size_t len);

/* The router's slot table changed: the links follow the masters, channels waiting for their
 * slot's master are tried again. */
void sublinks_topology(struct sublinks *s);

/* 1 while up (see sublinks_ops.up), else 0. */
int sublinks_ready(const struct sublinks *s);

/* Channels subscribed or being subscribed (not counting the control channel). */
size_t sublinks_count(const struct sublinks *s);

/* Times a channel was lost (see sublinks_ops.lost), since creation. */
uint64_t sublinks_losses(const struct sublinks *s);

/* Times a subscription link went down, over every link the module had. */
uint64_t sublinks_drops(const struct sublinks *s);

#endif
