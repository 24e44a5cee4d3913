/* Redis connections of the archiver: one, or one per master of a Redis Cluster.
 *
 * Owns the blocking hiredis connections the consumer talks through and, in cluster mode, the slot
 * table (slot -> master, from CLUSTER SLOTS; shared/slots.h parses it) and the following of the
 * cluster's redirections. It knows nothing about streams or groups: callers give the key that
 * routes a command (every command of the archiver names keys of one slot).
 *
 * Single Redis (cluster = 0): one connection, the key is ignored, every reply goes to the caller.
 *
 * Redis Cluster: rconn_up asks the seeds (host:port, then the "nodes" list, then every node met
 * since) for CLUSTER SLOTS until one answers; an empty or unknown host in the answer means the
 * host of the seed that answered. A connection to a master is opened (and authenticated) when the
 * first command for it is sent. A command goes to the master of the slot of its key, and
 *   MOVED       the slot's master is set at once, the table is asked again (the redirection wins
 *               over a table that has not heard of it yet), and the command is sent again there;
 *   ASK         ASKING, then the command, to the named node (this command only);
 *   TRYAGAIN, CLUSTERDOWN, LOADING
 *               the command is sent again after RCONN_RETRY_PAUSE_MS, for at most the command
 *               timeout in all, then the error goes to the caller;
 * at most RCONN_MAX_REDIRECTS redirections per command, then the caller gets the last error.
 *
 * A connection that fails (connect, I/O, timeout) makes the call return NULL; the caller then
 * calls rconn_reset, which closes every connection, and the next rconn_up learns the table again
 * (a failover shows there). */
#ifndef ARCH_RCONN_H
#define ARCH_RCONN_H

#include "log.h"

#include <hiredis.h>
#include <stddef.h>

#define RCONN_MAX_REDIRECTS 5
#define RCONN_RETRY_PAUSE_MS 100

struct rconn_config {
    const char *host; /* the Redis, or the first seed of a cluster (copied) */
    int port;
    const char *password; /* "" for none (copied) */
    int cluster;          /* 0: one Redis */
    const char *nodes;    /* cluster: more seeds, "host:port,host:port" ("" or NULL: none) */
    long timeout_ms;      /* connect and command timeout, and the retry budget of a command */
    long read_extra_ms;   /* added to the command timeout of every connection (blocking reads) */
};

struct rconn;

/* 0 if nodes (NULL or "" allowed) is a list "host:port,host:port" (an IPv6 host in brackets) as
 * rconn_create takes it, else -1. */
int rconn_check_nodes(const char *nodes);

/* Returns NULL when out of memory or when `nodes` does not parse. No connection is made yet. */
struct rconn *rconn_create(const struct rconn_config *cfg, const struct logger *lg);
void rconn_destroy(struct rconn *r);

/* Why the last call failed (borrowed, valid until the next call). */
const char *rconn_error(const struct rconn *r);

/* 1 once rconn_up succeeded and until rconn_reset. */
int rconn_is_up(const struct rconn *r);

/* Single Redis: connects and authenticates. Cluster: learns the slot table from a seed. Returns 0
 * or -1 (rconn_error says why). */
int rconn_up(struct rconn *r);

/* Closes every connection; rconn_is_up is 0 until the next rconn_up. */
void rconn_reset(struct rconn *r);

/* Sends one command routed by the slot of key (klen bytes) and returns its final reply (an error
 * reply when Redis answered one that is not followed, or after the limits above), or NULL when a
 * connection failed or the slot has no master (rconn_error says why). lens NULL: NUL-terminated
 * arguments. Caller frees the reply. */
redisReply *rconn_command(struct rconn *r, const char *key, size_t klen, int argc,
                          const char **argv, const size_t *lens);

/* The connection (opened if needed) of the master of the slot of key, for callers that pipeline
 * (redisAppendCommandArgv + redisGetReply); NULL as rconn_command. A failure of that connection
 * is the caller's to report with rconn_failed. Redirections in the replies are not followed: pass
 * each error reply to rconn_redirected so that the next call goes to the right node. */
redisContext *rconn_context(struct rconn *r, const char *key, size_t klen);

/* Records a failure of a connection returned by rconn_context (its errstr) as rconn_error. */
void rconn_failed(struct rconn *r, const redisContext *ctx, const char *what);

/* If err (a reply read from `from`, a connection of rconn_context) is a MOVED error, points its
 * slot at the named master at once; the table is not asked again here (replies of the pipeline
 * may still be waiting on that connection): the next MOVED or reconnection does that. */
void rconn_redirected(struct rconn *r, const redisContext *from, const redisReply *err);

#endif
