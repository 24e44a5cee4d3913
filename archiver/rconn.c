/* Redis connections of the archiver: one, or one per master of a Redis Cluster (see rconn.h). */
#include "rconn.h"

#include "slots.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seeds and every node met since (masters of a table, targets of redirections). */
#define NODES_MAX 128

struct node {
    char host[SLOTS_HOST_MAX];
    unsigned port;
    redisContext *ctx; /* NULL until a command needs it */
};

struct rconn {
    struct rconn_config cfg;
    const struct logger *lg;
    int up;
    struct node nodes[NODES_MAX]; /* the seeds first; single Redis: nodes[0] only */
    int nnodes;
    int16_t *owner;            /* cluster: slot -> index into nodes, -1 unassigned */
    struct slots_table *table; /* cluster: the last CLUSTER SLOTS parsed */
    char err[1024];
};

static struct timeval to_timeval(long ms) {
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static void nap(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The index of host:port in r->nodes, added if new; -1 when the list is full. */
static int node_index(struct rconn *r, const char *host, unsigned port) {
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i].port == port && strcmp(r->nodes[i].host, host) == 0)
            return i;
    if (r->nnodes == NODES_MAX || strlen(host) >= SLOTS_HOST_MAX)
        return -1;
    struct node *n = &r->nodes[r->nnodes];
    memset(n, 0, sizeof(*n));
    util_strlcpy(n->host, host, sizeof(n->host));
    n->port = port;
    return r->nnodes++;
}

/* "h:p,h:p" (an IPv6 host in brackets) added as seeds (r NULL: only checked). Returns 0 or -1. */
static int add_seeds(struct rconn *r, const char *nodes) {
    const char *p = nodes;
    struct slots_node seed;
    int more;
    while ((more = slots_next_seed(&p, &seed)) > 0)
        if (r && node_index(r, seed.host, seed.port) < 0)
            return -1;
    return more;
}

int rconn_check_nodes(const char *nodes) {
    return add_seeds(NULL, nodes);
}

struct rconn *rconn_create(const struct rconn_config *cfg, const struct logger *lg) {
    struct rconn *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->cfg = *cfg;
    r->lg = lg;
    r->cfg.host = strdup(cfg->host ? cfg->host : "");
    r->cfg.password = strdup(cfg->password ? cfg->password : "");
    r->cfg.nodes = NULL;
    int ok = r->cfg.host && r->cfg.password && node_index(r, r->cfg.host, (unsigned)cfg->port) == 0;
    if (ok && cfg->cluster) {
        r->owner = malloc(SLOTS_COUNT * sizeof(*r->owner));
        r->table = malloc(sizeof(*r->table));
        ok = r->owner && r->table && add_seeds(r, cfg->nodes) == 0;
        for (unsigned s = 0; ok && s < SLOTS_COUNT; s++)
            r->owner[s] = -1;
    }
    if (!ok) {
        rconn_destroy(r);
        return NULL;
    }
    return r;
}

static void node_close(struct node *n) {
    if (n->ctx)
        redisFree(n->ctx);
    n->ctx = NULL;
}

void rconn_reset(struct rconn *r) {
    for (int i = 0; i < r->nnodes; i++)
        node_close(&r->nodes[i]);
    r->up = 0;
}

void rconn_destroy(struct rconn *r) {
    if (!r)
        return;
    rconn_reset(r);
    free((char *)r->cfg.host);
    free((char *)r->cfg.password);
    free(r->owner);
    free(r->table);
    free(r);
}

const char *rconn_error(const struct rconn *r) {
    return r->err;
}

int rconn_is_up(const struct rconn *r) {
    return r->up;
}

void rconn_failed(struct rconn *r, const redisContext *ctx, const char *what) {
    snprintf(r->err, sizeof(r->err), "%s: %s", what,
             ctx && ctx->errstr[0] ? ctx->errstr : "connection lost");
}

/* A connection to node i failed: r->err names the node (the caller adds the command). */
static void node_failed(struct rconn *r, int i, const redisContext *ctx) {
    snprintf(r->err, sizeof(r->err), "Redis %s:%u: %s", r->nodes[i].host, r->nodes[i].port,
             ctx && ctx->errstr[0] ? ctx->errstr : "connection lost");
}

/* The connection to node i, opened and authenticated if it is not yet. NULL (r->err says why)
 * when that fails. */
static redisContext *node_connect(struct rconn *r, int i) {
    struct node *n = &r->nodes[i];
    if (n->ctx)
        return n->ctx;
    redisContext *ctx =
        redisConnectWithTimeout(n->host, (int)n->port, to_timeval(r->cfg.timeout_ms));
    if (!ctx || ctx->err) {
        snprintf(r->err, sizeof(r->err), "connecting to Redis %s:%u: %s", n->host, n->port,
                 ctx ? ctx->errstr : "out of memory");
        if (ctx)
            redisFree(ctx);
        return NULL;
    }
    /* No read blocks longer than read_extra_ms: this fires only when the server stopped
     * answering. */
    redisSetTimeout(ctx, to_timeval(r->cfg.timeout_ms + r->cfg.read_extra_ms));
    redisEnableKeepAlive(ctx);
    if (r->cfg.password[0]) {
        const char *argv[] = {"AUTH", r->cfg.password};
        redisReply *rep = redisCommandArgv(ctx, 2, argv, NULL);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            snprintf(r->err, sizeof(r->err), "AUTH on %s:%u: %s", n->host, n->port,
                     rep              ? rep->str
                     : ctx->errstr[0] ? ctx->errstr
                                      : "connection lost");
            if (rep)
                freeReplyObject(rep);
            redisFree(ctx);
            return NULL;
        }
        freeReplyObject(rep);
    }
    n->ctx = ctx;
    return ctx;
}

/* The node the table's node t (an empty host: that of node `from`) is, or -1. */
static int table_node(struct rconn *r, const char *host, unsigned port, int from) {
    return node_index(r, host[0] ? host : r->nodes[from].host, port);
}

/* Asks the nodes, seeds first, for CLUSTER SLOTS until one answers with a table it can parse,
 * and takes that table. Returns 0 or -1 (r->err says why; the table is unchanged). */
static int refresh_table(struct rconn *r) {
    int n = r->nnodes; /* nodes the answer adds are not asked */
    for (int i = 0; i < n; i++) {
        redisContext *ctx = node_connect(r, i);
        if (!ctx)
            continue;
        const char *argv[] = {"CLUSTER", "SLOTS"};
        redisReply *rep = redisCommandArgv(ctx, 2, argv, NULL);
        if (!rep) {
            node_failed(r, i, ctx);
            node_close(&r->nodes[i]);
            continue;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            snprintf(r->err, sizeof(r->err), "CLUSTER SLOTS on %s:%u: %s", r->nodes[i].host,
                     r->nodes[i].port, rep->str);
            freeReplyObject(rep);
            continue;
        }
        int parsed = slots_table_from_reply(r->table, rep);
        freeReplyObject(rep);
        if (parsed < 0) {
            snprintf(r->err, sizeof(r->err), "CLUSTER SLOTS on %s:%u: unexpected reply",
                     r->nodes[i].host, r->nodes[i].port);
            continue;
        }
        int map[SLOTS_MASTERS_MAX];
        for (unsigned k = 0; k < r->table->nnodes; k++) {
            map[k] = table_node(r, r->table->nodes[k].host, r->table->nodes[k].port, i);
            if (map[k] < 0) {
                snprintf(r->err, sizeof(r->err), "too many Redis nodes");
                return -1;
            }
        }
        for (unsigned s = 0; s < SLOTS_COUNT; s++) {
            int o = slots_table_owner(r->table, s);
            r->owner[s] = (int16_t)(o < 0 ? -1 : map[o]);
        }
        return 0;
    }
    return -1;
}

int rconn_up(struct rconn *r) {
    if (r->up)
        return 0;
    if (r->cfg.cluster ? refresh_table(r) : !node_connect(r, 0))
        return -1;
    r->up = 1;
    return 0;
}

/* The node a command for key goes to, or -1 (r->err says why). */
static int route(struct rconn *r, const char *key, size_t klen) {
    if (!r->cfg.cluster)
        return 0;
    unsigned slot = slots_of_key(key, klen);
    int o = r->owner[slot];
    if (o < 0)
        snprintf(r->err, sizeof(r->err), "slot %u (key %.*s) has no master", slot,
                 (int)(klen > 64 ? 64 : klen), key);
    return o;
}

redisContext *rconn_context(struct rconn *r, const char *key, size_t klen) {
    if (!r->up) {
        snprintf(r->err, sizeof(r->err), "not connected");
        return NULL;
    }
    int i = route(r, key, klen);
    return i < 0 ? NULL : node_connect(r, i);
}

/* The index of the node ctx belongs to, or 0. */
static int node_of(const struct rconn *r, const redisContext *ctx) {
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i].ctx == ctx)
            return i;
    return 0;
}

/* A MOVED redirection from node `from`: the slot goes to the named node at once, and, with
 * refresh, the table is asked again (not while a pipeline's replies are still to be read: the
 * question may go to that connection); the redirection wins over a table that has not heard of it
 * yet. Returns the target's index or -1. */
static int follow_moved(struct rconn *r, const struct slots_redirect *rd, int from, int refresh) {
    int to = table_node(r, rd->host, rd->port, from);
    if (to < 0)
        return -1;
    char host[SLOTS_HOST_MAX];
    util_strlcpy(host, r->nodes[to].host, sizeof(host));
    if (refresh)
        refresh_table(r); /* a failure keeps the table as it was */
    log_json(
        r->lg, LOG_DEBUG, "redis slot moved",
        json_pack("{s:i, s:s, s:i}", "slot", (int)rd->slot, "host", host, "port", (int)rd->port));
    r->owner[rd->slot] = (int16_t)to;
    return to;
}

void rconn_redirected(struct rconn *r, const redisContext *from, const redisReply *err) {
    struct slots_redirect rd;
    if (!r->cfg.cluster || !err || err->type != REDIS_REPLY_ERROR ||
        slots_parse_redirect(err->str, err->len, &rd) < 0 || rd.kind != SLOTS_MOVED)
        return;
    follow_moved(r, &rd, node_of(r, from), 0);
}

/* Errors after which the same command is sent again after a pause. */
static int retryable(const redisReply *rep) {
    return strncmp(rep->str, "TRYAGAIN", 8) == 0 || strncmp(rep->str, "CLUSTERDOWN", 11) == 0 ||
           strncmp(rep->str, "LOADING", 7) == 0;
}

redisReply *rconn_command(struct rconn *r, const char *key, size_t klen, int argc,
                          const char **argv, const size_t *lens) {
    if (!r->up) {
        snprintf(r->err, sizeof(r->err), "not connected");
        return NULL;
    }
    int64_t deadline = util_mono_ms() + r->cfg.timeout_ms;
    int redirects = 0, ask = -1;
    for (;;) {
        int i = ask >= 0 ? ask : route(r, key, klen);
        if (i < 0)
            return NULL;
        redisContext *ctx = node_connect(r, i);
        if (!ctx)
            return NULL;
        if (ask >= 0) {
            const char *asking[] = {"ASKING"};
            redisReply *a = redisCommandArgv(ctx, 1, asking, NULL);
            if (!a) {
                node_failed(r, i, ctx);
                return NULL;
            }
            freeReplyObject(a);
            ask = -1;
        }
        redisReply *rep = redisCommandArgv(ctx, argc, argv, lens);
        if (!rep) {
            node_failed(r, i, ctx);
            return NULL;
        }
        if (!r->cfg.cluster || rep->type != REDIS_REPLY_ERROR)
            return rep;
        struct slots_redirect rd;
        if (slots_parse_redirect(rep->str, rep->len, &rd) == 0) {
            if (++redirects > RCONN_MAX_REDIRECTS)
                return rep;
            int to = rd.kind == SLOTS_MOVED ? follow_moved(r, &rd, i, 1)
                                            : table_node(r, rd.host, rd.port, i);
            if (to < 0)
                return rep;
            freeReplyObject(rep);
            if (rd.kind == SLOTS_ASK)
                ask = to;
            continue;
        }
        if (retryable(rep) && util_mono_ms() + RCONN_RETRY_PAUSE_MS < deadline) {
            freeReplyObject(rep);
            nap(RCONN_RETRY_PAUSE_MS);
            continue;
        }
        return rep;
    }
}
