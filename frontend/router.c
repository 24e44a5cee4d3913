/* The Redis command router (see router.h for what it owns and the rules it keeps). */
#include "router.h"

#include "log.h"
#include "redis_loop.h"
#include "slots.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define NO_SLOT 0xffffffffu
#define REFRESH_MS 10000
#define REFRESH_DEGRADED_MS 500
#define TICK_MS 250
#define TRYAGAIN_MS 50
#define DOWN_RETRY_MS 100
#define FREE_REQS_MAX 1024
#define FREE_BUF_MAX 4096 /* a recycled request keeps a buffer up to this size */
#define EVAL_MAX_ARGS 64

static const char asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";

/* One link, to a master (or, for a while, a seed or the target of an ASK). */
struct rnode {
    struct router *r;
    struct rnode *next;
    char host[SLOTS_HOST_MAX];
    unsigned port;
    struct rl *rl;
    struct scripts scripts;
    int ready;    /* up and the scripts loaded */
    int loading;  /* a SCRIPT LOAD round is out */
    int in_table; /* a master in the current table (or learned from MOVED) */
    int closing;
    unsigned outstanding;              /* requests sent on the link, not answered */
    struct req *wait_head, *wait_tail; /* requests waiting for the link to be ready */
};

struct req {
    struct router *r;
    router_reply_fn *cb;
    void *priv;
    struct req *next;  /* in a slot's queue, a node's wait list, the failed or free list */
    struct req *onext; /* in its slot's list of requests sent and not delivered */
    redisReply *held;  /* a reply that came before an older request's of the slot */
    int done;
    struct rnode *node; /* where it is sent, while the reply is pending */
    char *buf;          /* cluster: the request's bytes, kept for resends */
    size_t len, cap;
    unsigned slot;
    int hops;
    int asking;
    int64_t wait_since_ms;
    int64_t down_since_ms;      /* first CLUSTERDOWN or LOADING answer (0: none) */
    uint8_t retry_wait;         /* in r->retrying, its pause running ... */
    uint8_t retry_due;          /* ... or over, waiting for an older request of its slot */
    uint8_t resent;             /* sent again after a pause (release_retries) */
    lws_sorted_usec_list_t sul; /* retry_later */
};

/* A slot's order keeping: its requests sent and not yet delivered to their callbacks, in the
 * order they were accepted (a reply that comes early is held until the older ones are
 * delivered), and while one of them is redirected (hold), the FIFO of the slot's newer
 * requests, sent once every older one is delivered. */
struct slot_state {
    struct req *ohead, *otail;
    struct req *qhead, *qtail;
    uint8_t hold;
};

struct router {
    struct lws_context *cx;
    struct lws_vhost *vh;
    const struct router_ops *ops;
    void *arg;
    const struct logger *lg;
    char password[256];
    int cluster;
    int connect_timeout_ms, ping_interval_ms, ping_timeout_ms;
    struct scripts_params params;

    struct rnode *nodes;
    struct rnode *single; /* single Redis: the one link */
    int nseeds;
    struct slots_node *seeds;

    struct slots_table *table; /* parse space for CLUSTER SLOTS replies */
    struct rnode **owner;      /* [SLOTS_COUNT] */
    struct slot_state *slots;  /* [SLOTS_COUNT] */
    int have_table;
    char sha[SCRIPT_COUNT][41];
    int have_sha;

    int refreshing, refresh_again;
    int64_t last_refresh_ms;
    int is_up;
    int destroying;
    uint64_t drops_closed, redirections;

    struct req *free_reqs;
    int nfree;
    struct req *failed_head, *failed_tail;
    struct req *retrying; /* TRYAGAIN timers running (linked by next) */

    lws_sorted_usec_list_t sul_tick;
    lws_sorted_usec_list_t sul_failed;
    lws_sorted_usec_list_t sul_gc;
    lws_sorted_usec_list_t sul_topology;
};

static void dispatch(struct router *r, struct req *q);
static void send_to(struct rnode *n, struct req *q);
static void refresh(struct router *r);
static void topology_changed(struct router *r);

/* ---- requests ------------------------------------------------------------------------------ */

/* Requests are recycled: a busy router allocates none per command once warm. */
static struct req *req_get(struct router *r) {
    struct req *q = r->free_reqs;
    if (q) {
        r->free_reqs = q->next;
        r->nfree--;
    } else if (!(q = calloc(1, sizeof(*q)))) {
        return NULL;
    }
    char *buf = q->buf;
    size_t cap = q->cap;
    memset(q, 0, sizeof(*q));
    q->r = r;
    q->buf = buf;
    q->cap = cap;
    q->slot = NO_SLOT;
    return q;
}

static void req_put(struct router *r, struct req *q) {
    if (r->nfree >= FREE_REQS_MAX || r->destroying) {
        free(q->buf);
        free(q);
        return;
    }
    if (q->cap > FREE_BUF_MAX) {
        free(q->buf);
        q->buf = NULL;
        q->cap = 0;
    }
    q->next = r->free_reqs;
    r->free_reqs = q;
    r->nfree++;
}

static void append(struct req **head, struct req **tail, struct req *q) {
    q->next = NULL;
    if (*tail)
        (*tail)->next = q;
    else
        *head = q;
    *tail = q;
}

/* A deep copy of a reply (hiredis frees its own after the callback), freed with
 * freeReplyObject. NULL without memory. */
static redisReply *reply_copy(const redisReply *src) {
    redisReply *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->type = src->type;
    c->integer = src->integer;
    if (src->str) {
        c->len = src->len;
        if (!(c->str = malloc(src->len + 1))) {
            free(c);
            return NULL;
        }
        memcpy(c->str, src->str, src->len);
        c->str[src->len] = '\0';
    }
    if (src->type == REDIS_REPLY_ARRAY && src->elements) {
        if (!(c->element = calloc(src->elements, sizeof(*c->element)))) {
            freeReplyObject(c);
            return NULL;
        }
        c->elements = src->elements;
        for (size_t i = 0; i < src->elements; i++)
            if (src->element[i] && !(c->element[i] = reply_copy(src->element[i]))) {
                freeReplyObject(c);
                return NULL;
            }
    }
    return c;
}

/* Sends the slot's queued requests once every request sent before them is delivered. */
static void release_slot(struct router *r, unsigned slot) {
    struct slot_state *st = &r->slots[slot];
    while (st->hold && !st->ohead && !r->destroying) {
        struct req *q = st->qhead;
        st->qhead = st->qtail = NULL;
        st->hold = 0;
        while (q) {
            struct req *next = q->next;
            q->onext = NULL;
            if (st->otail)
                st->otail->onext = q;
            else
                st->ohead = q;
            st->otail = q;
            dispatch(r, q);
            q = next;
        }
    }
}

static void release_retries(struct router *r, unsigned slot);

/* The request's outcome. Its callback runs now if it is the oldest of its slot, else when the
 * older ones have run (the reply copied meanwhile); then the slot's queue may move, and the
 * next request of the slot waiting to be sent again. */
static void finish(struct router *r, struct req *q, redisReply *reply) {
    unsigned slot = q->slot;
    if (slot == NO_SLOT) {
        q->cb(r->arg, reply, q->priv);
        req_put(r, q);
        return;
    }
    struct slot_state *st = &r->slots[slot];
    if (st->ohead != q) {
        /* Without memory for the copy the outcome is reported unknown, as for a lost link. */
        q->held = reply ? reply_copy(reply) : NULL;
        q->done = 1;
        return;
    }
    st->ohead = q->onext;
    if (!st->ohead)
        st->otail = NULL;
    q->cb(r->arg, reply, q->priv);
    req_put(r, q);
    while (st->ohead && st->ohead->done) {
        q = st->ohead;
        st->ohead = q->onext;
        if (!st->ohead)
            st->otail = NULL;
        q->cb(r->arg, q->held, q->priv);
        if (q->held)
            freeReplyObject(q->held);
        req_put(r, q);
    }
    release_slot(r, slot);
    release_retries(r, slot);
}

static void failed_cb(lws_sorted_usec_list_t *sul) {
    struct router *r = lws_container_of(sul, struct router, sul_failed);
    while (r->failed_head) {
        struct req *q = r->failed_head;
        r->failed_head = q->next;
        if (!r->failed_head)
            r->failed_tail = NULL;
        finish(r, q, NULL);
    }
}

/* Fails an accepted request with NULL, from the loop rather than from where we are (which may
 * be inside the caller's router_command or a callback of another request). */
static void fail_later(struct router *r, struct req *q) {
    append(&r->failed_head, &r->failed_tail, q);
    lws_sul_schedule(r->cx, 0, &r->sul_failed, failed_cb, 1);
}

/* ---- links --------------------------------------------------------------------------------- */

static void update_up(struct router *r) {
    int up = 0;
    if (r->destroying)
        return;
    if (!r->cluster) {
        up = r->single->ready;
    } else if (r->have_table) {
        up = 1;
        for (struct rnode *n = r->nodes; n; n = n->next)
            if (n->in_table && !n->ready)
                up = 0;
    }
    if (up == r->is_up)
        return;
    r->is_up = up;
    log_json(r->lg, up ? LOG_INFO : LOG_WARN, up ? "redis router up" : "redis router down", NULL);
    if (up)
        r->ops->up(r->arg);
    else
        r->ops->down(r->arg);
}

/* Requests that waited for n: to n itself after an ASK, else to their slot's master now. */
static void flush_waits(struct rnode *n) {
    struct req *q = n->wait_head;
    n->wait_head = n->wait_tail = NULL;
    while (q) {
        struct req *next = q->next;
        if (q->asking)
            send_to(n, q);
        else
            dispatch(n->r, q);
        q = next;
    }
}

static void gc_cb(lws_sorted_usec_list_t *sul);

static int node_idle(const struct rnode *n) {
    return !n->in_table && n->r->cluster && !n->outstanding && !n->wait_head && !n->loading;
}

static void schedule_gc(struct router *r) {
    lws_sul_schedule(r->cx, 0, &r->sul_gc, gc_cb, 1);
}

static void scripts_done(void *arg, int ok) {
    struct rnode *n = arg;
    struct router *r = n->r;
    n->loading = 0;
    if (r->destroying || n->closing)
        return;
    if (!ok) {
        log_json(r->lg, LOG_ERROR, "could not load the Redis scripts",
                 json_pack("{s:s, s:i}", "host", n->host, "port", (int)n->port));
        if (!rl_ctx(n->rl))
            return; /* the link went down: it loads again when back */
        /* The link is up but refused: requests waiting for the scripts cannot go there. */
        for (struct req *q = n->wait_head, *next; q; q = next) {
            next = q->next;
            fail_later(r, q);
        }
        n->wait_head = n->wait_tail = NULL;
        return;
    }
    if (!r->have_sha) {
        memcpy(r->sha, n->scripts.sha, sizeof(r->sha));
        r->have_sha = 1;
    }
    n->ready = 1;
    flush_waits(n);
    update_up(r);
    if (node_idle(n))
        schedule_gc(r);
}

static void load_scripts(struct rnode *n) {
    redisAsyncContext *ac = rl_ctx(n->rl);
    if (n->loading || !ac)
        return;
    n->loading = 1;
    if (scripts_load(&n->scripts, ac, scripts_done, n) != 0 && n->scripts.pending == 0)
        n->loading = 0;
}

static void link_up(struct rl *rl, void *arg) {
    (void)rl;
    struct rnode *n = arg;
    load_scripts(n);
    if (n->r->cluster && !n->r->have_table)
        refresh(n->r);
}

static void link_down(struct rl *rl, void *arg) {
    (void)rl;
    struct rnode *n = arg;
    struct router *r = n->r;
    n->ready = 0;
    n->scripts.loaded = 0;
    update_up(r);
    if (r->cluster)
        refresh(r);
}

static void link_read_begin(void *arg) {
    struct rnode *n = arg;
    if (n->r->ops->on_read_begin)
        n->r->ops->on_read_begin(n->r->arg);
}

static void link_read_end(void *arg) {
    struct rnode *n = arg;
    if (n->r->ops->on_read_end)
        n->r->ops->on_read_end(n->r->arg);
}

static const struct rl_ops link_ops = {link_up, link_down, link_read_begin, link_read_end, NULL};

static struct rnode *node_find(struct router *r, const char *host, unsigned port) {
    for (struct rnode *n = r->nodes; n; n = n->next)
        if (n->port == port && strcmp(n->host, host) == 0)
            return n;
    return NULL;
}

/* The link to host:port, opened if there is none. NULL without memory. */
static struct rnode *node_get(struct router *r, const char *host, unsigned port) {
    struct rnode *n = node_find(r, host, port);
    if (n)
        return n;
    if (!(n = calloc(1, sizeof(*n))))
        return NULL;
    n->r = r;
    util_strlcpy(n->host, host, sizeof(n->host));
    n->port = port;
    n->scripts.params = r->params;
    struct rl_options ro = {
        .name = "cmd",
        .host = n->host,
        .port = (int)port,
        .password = r->password,
        .connect_timeout_ms = r->connect_timeout_ms,
        .ping_interval_ms = r->ping_interval_ms,
        .ping_timeout_ms = r->ping_timeout_ms,
    };
    n->rl = rl_create(r->cx, r->vh, &ro, &link_ops, n, r->lg);
    if (!n->rl) {
        free(n);
        return NULL;
    }
    n->next = r->nodes;
    r->nodes = n;
    return n;
}

/* Closes the links nobody needs: not a master, nothing pending. From the loop, never from inside
 * the link's own callbacks. */
static void gc_cb(lws_sorted_usec_list_t *sul) {
    struct router *r = lws_container_of(sul, struct router, sul_gc);
    struct rnode **pp = &r->nodes;
    while (*pp) {
        struct rnode *n = *pp;
        if (!node_idle(n) || !r->have_table) {
            pp = &n->next;
            continue;
        }
        *pp = n->next;
        n->closing = 1;
        r->drops_closed += rl_drops(n->rl);
        log_json(r->lg, LOG_INFO, "redis link closed",
                 json_pack("{s:s, s:i}", "host", n->host, "port", (int)n->port));
        rl_destroy(n->rl);
        free(n);
    }
}

static void topology_cb(lws_sorted_usec_list_t *sul) {
    struct router *r = lws_container_of(sul, struct router, sul_topology);
    if (r->ops->topology && !r->destroying)
        r->ops->topology(r->arg);
}

/* Tells the owner, from the loop (the change is seen inside a reply callback). */
static void topology_changed(struct router *r) {
    if (r->ops->topology)
        lws_sul_schedule(r->cx, 0, &r->sul_topology, topology_cb, 1);
}

/* ---- sending ------------------------------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *rp, void *priv);

static void send_to(struct rnode *n, struct req *q) {
    struct router *r = n->r;
    if (!n->ready) {
        q->wait_since_ms = util_mono_ms();
        append(&n->wait_head, &n->wait_tail, q);
        return;
    }
    redisAsyncContext *ac = rl_ctx(n->rl);
    if (!ac ||
        (q->asking && redisAsyncFormattedCommand(ac, NULL, NULL, asking_cmd,
                                                 sizeof(asking_cmd) - 1) != REDIS_OK) ||
        redisAsyncFormattedCommand(ac, on_reply, q, q->buf, q->len) != REDIS_OK) {
        fail_later(r, q);
        return;
    }
    q->node = n;
    n->outstanding++;
}

/* To the master of the request's slot now. */
static void dispatch(struct router *r, struct req *q) {
    q->asking = 0;
    struct rnode *n = q->slot == NO_SLOT ? NULL : r->owner[q->slot];
    if (!n)
        fail_later(r, q);
    else
        send_to(n, q);
}

/* Sends again the oldest of the slot's requests waiting to be retried, once its pause is over
 * and no other request of the slot sent again is still unanswered: one at a time, in the order
 * they were accepted. Sent together, the cluster could come back between two of them (its slots
 * assigned again, a node done loading) and a newer one be executed before an older one turned
 * away once more. A request never overtakes an older one of its slot that Redis turned away. */
static void release_retries(struct router *r, unsigned slot) {
    if (r->destroying)
        return;
    for (struct req *x = r->slots[slot].ohead; x; x = x->onext) {
        if (x->retry_wait) {
            if (!x->retry_due)
                return;
            x->retry_wait = x->retry_due = 0;
            for (struct req **pp = &r->retrying; *pp; pp = &(*pp)->next)
                if (*pp == x) {
                    *pp = x->next;
                    break;
                }
            x->resent = 1;
            dispatch(r, x);
            return;
        }
        if (x->resent && !x->done)
            return; /* its answer first */
    }
}

static void retry_cb(lws_sorted_usec_list_t *sul) {
    struct req *q = lws_container_of(sul, struct req, sul);
    q->retry_due = 1;
    release_retries(q->r, q->slot);
}

/* q goes out again after ms (and after the older requests of its slot waiting too), its slot
 * held meanwhile. */
static void retry_later(struct router *r, struct req *q, int ms) {
    r->redirections++;
    r->slots[q->slot].hold = 1;
    q->retry_wait = 1;
    q->retry_due = 0;
    q->next = r->retrying;
    r->retrying = q;
    lws_sul_schedule(r->cx, 0, &q->sul, retry_cb, ms * LWS_US_PER_MS);
}

static int error_is(const redisReply *reply, const char *prefix) {
    size_t n = strlen(prefix);
    return reply->len >= n && memcmp(reply->str, prefix, n) == 0 &&
           (reply->len == n || reply->str[n] == ' ');
}

/* Follows a redirection of q that n answered. Returns 0 if q was sent again (or will be), -1 if
 * the reply is the caller's. */
static int redirect(struct router *r, struct rnode *n, struct req *q, redisReply *reply) {
    struct slots_redirect rd;
    if (q->hops >= ROUTER_MAX_REDIRECTS || q->slot == NO_SLOT)
        return -1;
    if (slots_parse_redirect(reply->str, reply->len, &rd) == 0) {
        struct rnode *to = node_get(r, rd.host[0] ? rd.host : n->host, rd.port);
        if (!to)
            return -1;
        if (rd.kind == SLOTS_MOVED) {
            if (rd.slot != q->slot)
                return -1; /* not the slot we computed: do not guess */
            if (r->owner[rd.slot] != to)
                topology_changed(r);
            to->in_table = 1;
            r->owner[rd.slot] = to;
            q->asking = 0;
            refresh(r);
        } else {
            q->asking = 1;
        }
        q->hops++;
        r->redirections++;
        r->slots[q->slot].hold = 1;
        send_to(to, q);
        return 0;
    }
    if (error_is(reply, "TRYAGAIN")) {
        q->hops++;
        retry_later(r, q, TRYAGAIN_MS);
        return 0;
    }
    /* The cluster is failing over, or the node loading its data: the request waits for it as
     * it would for a link, up to the connect and ping timeouts, without counting as a hop. */
    if (error_is(reply, "CLUSTERDOWN") || error_is(reply, "LOADING")) {
        int64_t now = util_mono_ms();
        if (!q->down_since_ms)
            q->down_since_ms = now;
        if (now - q->down_since_ms >= r->connect_timeout_ms + r->ping_timeout_ms)
            return -1;
        refresh(r);
        retry_later(r, q, DOWN_RETRY_MS);
        return 0;
    }
    if (error_is(reply, "NOSCRIPT")) {
        q->hops++;
        r->redirections++;
        r->slots[q->slot].hold = 1;
        q->wait_since_ms = util_mono_ms();
        append(&n->wait_head, &n->wait_tail, q);
        if (!n->loading)
            load_scripts(n);
        return 0;
    }
    return -1;
}

static void on_reply(redisAsyncContext *ac, void *rp, void *priv) {
    (void)ac;
    struct req *q = priv;
    struct router *r = q->r;
    struct rnode *n = q->node;
    redisReply *reply = rp;
    q->node = NULL;
    n->outstanding--;
    if (reply && reply->type == REDIS_REPLY_ERROR && r->cluster && !r->destroying &&
        redirect(r, n, q, reply) == 0)
        return;
    finish(r, q, reply);
    if (node_idle(n) && !r->destroying)
        schedule_gc(r);
}

/* Cluster: takes a formatted request: sent now, queued behind its slot's redirected requests, or
 * refused (-1, q recycled). */
static int accept_req(struct router *r, struct req *q) {
    if (q->slot == NO_SLOT) {
        for (struct rnode *n = r->nodes; n; n = n->next)
            if (n->in_table && n->ready) {
                send_to(n, q);
                return 0;
            }
        req_put(r, q);
        return -1;
    }
    struct slot_state *st = &r->slots[q->slot];
    if (st->hold) {
        append(&st->qhead, &st->qtail, q);
        return 0;
    }
    struct rnode *n = r->owner[q->slot];
    if (!n || !n->ready) {
        req_put(r, q);
        return -1;
    }
    q->onext = NULL;
    if (st->otail)
        st->otail->onext = q;
    else
        st->ohead = q;
    st->otail = q;
    send_to(n, q);
    return 0;
}

/* Formats argv into q->buf (grown as needed), NUL-terminated: hiredis looks for the command
 * name with strchr. -1 without memory. */
static int req_format(struct req *q, int argc, const char *const *argv, const size_t *lens) {
    size_t room = q->cap ? q->cap - 1 : 0;
    size_t n = scripts_resp_argv(q->buf, room, argc, argv, lens);
    if (n > room) {
        char *buf = realloc(q->buf, n + 1);
        if (!buf)
            return -1;
        q->buf = buf;
        q->cap = n + 1;
        n = scripts_resp_argv(q->buf, n, argc, argv, lens);
    }
    q->buf[n] = '\0';
    q->len = n;
    return 0;
}

/* Single Redis: the callback of a request written without a copy (today's path). */
static void on_single_reply(redisAsyncContext *ac, void *rp, void *priv) {
    (void)ac;
    struct req *q = priv;
    struct router *r = q->r;
    r->single->outstanding--;
    q->cb(r->arg, rp, q->priv);
    req_put(r, q);
}

int router_eval(struct router *r, enum script_id id, router_reply_fn *cb, void *priv, int nkeys,
                int argc, const char **argv, const size_t *lens) {
    if (argc < 1 || nkeys < 1 || argc > EVAL_MAX_ARGS || (unsigned)id >= SCRIPT_COUNT)
        return -1;
    struct req *q = req_get(r);
    if (!q)
        return -1;
    q->cb = cb;
    q->priv = priv;
    if (!r->cluster) {
        struct rnode *n = r->single;
        if (!n->ready || scripts_eval(&n->scripts, rl_ctx(n->rl), id, on_single_reply, q, nkeys,
                                      argc, argv, lens) != 0) {
            req_put(r, q);
            return -1;
        }
        n->outstanding++;
        return 0;
    }
    if (!r->have_sha) {
        req_put(r, q);
        return -1;
    }
    const char *av[EVAL_MAX_ARGS + 3];
    size_t al[EVAL_MAX_ARGS + 3];
    char nk[24];
    scripts_evalsha_args(r->sha[id], nkeys, argc, argv, lens, av, al, nk);
    if (req_format(q, argc + 3, av, al) != 0) {
        req_put(r, q);
        return -1;
    }
    q->slot = slots_of_key(argv[0], al[3]);
    return accept_req(r, q);
}

int router_command(struct router *r, const char *key, router_reply_fn *cb, void *priv, int argc,
                   const char **argv, const size_t *lens) {
    if (argc < 1)
        return -1;
    struct req *q = req_get(r);
    if (!q)
        return -1;
    q->cb = cb;
    q->priv = priv;
    if (!r->cluster) {
        struct rnode *n = r->single;
        redisAsyncContext *ac = n->ready ? rl_ctx(n->rl) : NULL;
        if (!ac || redisAsyncCommandArgv(ac, on_single_reply, q, argc, argv, lens) != REDIS_OK) {
            req_put(r, q);
            return -1;
        }
        n->outstanding++;
        return 0;
    }
    size_t stack_lens[EVAL_MAX_ARGS];
    if (!lens) {
        if (argc > EVAL_MAX_ARGS) {
            req_put(r, q);
            return -1;
        }
        for (int i = 0; i < argc; i++)
            stack_lens[i] = strlen(argv[i]);
        lens = stack_lens;
    }
    if (req_format(q, argc, argv, lens) != 0) {
        req_put(r, q);
        return -1;
    }
    if (key)
        q->slot = slots_of_key(key, strlen(key));
    return accept_req(r, q);
}

/* ---- the slot table ------------------------------------------------------------------------ */

static void slots_reply(redisAsyncContext *ac, void *rp, void *priv) {
    (void)ac;
    struct rnode *from = priv;
    struct router *r = from->r;
    redisReply *reply = rp;
    r->refreshing = 0;
    if (r->destroying || from->closing || !reply)
        goto again;
    if (reply->type != REDIS_REPLY_ARRAY || slots_table_from_reply(r->table, reply) != 0 ||
        r->table->nnodes == 0) {
        log_json(r->lg, LOG_WARN, "unusable CLUSTER SLOTS reply",
                 json_pack("{s:s, s:i, s:s}", "host", from->host, "port", (int)from->port, "error",
                           reply->type == REDIS_REPLY_ERROR ? reply->str : "malformed"));
        goto again;
    }
    struct rnode *by_index[SLOTS_MASTERS_MAX];
    for (unsigned i = 0; i < r->table->nnodes; i++) {
        const struct slots_node *sn = &r->table->nodes[i];
        by_index[i] = node_get(r, sn->host[0] ? sn->host : from->host, sn->port);
        if (!by_index[i])
            goto again; /* no memory: keep the old table */
    }
    for (struct rnode *n = r->nodes; n; n = n->next)
        n->in_table = 0;
    int changed = !r->have_table;
    for (unsigned i = 0; i < r->table->nnodes; i++)
        by_index[i]->in_table = 1;
    for (unsigned s = 0; s < SLOTS_COUNT; s++) {
        int o = r->table->owner[s];
        struct rnode *n = o >= 0 ? by_index[o] : NULL;
        if (n == r->owner[s])
            continue;
        /* Requests of the slot still out on the old master will come back redirected: newer
         * ones wait behind them rather than overtake them on the new master. */
        if (r->slots[s].ohead)
            r->slots[s].hold = 1;
        changed = 1;
        r->owner[s] = n;
    }
    if (changed) {
        log_json(r->lg, LOG_INFO, "redis cluster slot table",
                 json_pack("{s:i}", "masters", (int)r->table->nnodes));
        topology_changed(r);
    }
    r->have_table = 1;
    update_up(r);
    schedule_gc(r);
again:
    if (r->refresh_again && !r->destroying) {
        r->refresh_again = 0;
        refresh(r);
    }
}

/* Asks a ready link (a master first) for the slot table; one request at a time. */
static void refresh(struct router *r) {
    if (r->destroying || !r->cluster)
        return;
    if (r->refreshing) {
        r->refresh_again = 1;
        return;
    }
    struct rnode *best = NULL;
    for (struct rnode *n = r->nodes; n; n = n->next)
        if (rl_ctx(n->rl) && (!best || (n->in_table && !best->in_table)))
            best = n;
    r->last_refresh_ms = util_mono_ms();
    if (!best) {
        /* Nothing is linked: the seeds again (their links retry with backoff meanwhile). */
        for (int i = 0; i < r->nseeds; i++)
            node_get(r, r->seeds[i].host, r->seeds[i].port);
        return;
    }
    if (redisAsyncCommand(rl_ctx(best->rl), slots_reply, best, "CLUSTER SLOTS") == REDIS_OK)
        r->refreshing = 1;
}

/* Periodic: the table, scripts that failed to load, and requests that waited too long for a
 * link. */
static void tick_cb(lws_sorted_usec_list_t *sul) {
    struct router *r = lws_container_of(sul, struct router, sul_tick);
    int64_t now = util_mono_ms();
    if (r->cluster && now - r->last_refresh_ms >= (r->is_up ? REFRESH_MS : REFRESH_DEGRADED_MS))
        refresh(r);
    int64_t limit = r->connect_timeout_ms + r->ping_timeout_ms;
    for (struct rnode *n = r->nodes; n; n = n->next) {
        if (!n->ready && !n->loading && rl_ctx(n->rl))
            load_scripts(n); /* a load that failed on a live link: try again */
        while (n->wait_head && now - n->wait_head->wait_since_ms >= limit) {
            struct req *q = n->wait_head;
            n->wait_head = q->next;
            if (!n->wait_head)
                n->wait_tail = NULL;
            fail_later(r, q);
        }
    }
    if (r->cluster)
        schedule_gc(r);
    lws_sul_schedule(r->cx, 0, &r->sul_tick, tick_cb, TICK_MS * LWS_US_PER_MS);
}

/* ---- life ---------------------------------------------------------------------------------- */

/* "h:p,h:p" (an IPv6 host in brackets) into r->seeds after the first seed. */
static int parse_seeds(struct router *r, const char *host, int port, const char *nodes) {
    int cap = 1;
    for (const char *p = nodes; p && *p; p++)
        cap += *p == ',';
    cap += nodes && *nodes ? 1 : 0;
    if (!(r->seeds = calloc((size_t)cap, sizeof(*r->seeds))))
        return -1;
    util_strlcpy(r->seeds[0].host, host, sizeof(r->seeds[0].host));
    r->seeds[0].port = (unsigned)port;
    r->nseeds = 1;
    const char *p = nodes;
    int more;
    while ((more = slots_next_seed(&p, &r->seeds[r->nseeds])) > 0)
        r->nseeds++;
    return more;
}

struct router *router_create(struct lws_context *cx, struct lws_vhost *vh,
                             const struct router_options *opts, const struct router_ops *ops,
                             void *arg, const struct logger *lg) {
    struct router *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->cx = cx;
    r->vh = vh;
    r->ops = ops;
    r->arg = arg;
    r->lg = lg;
    util_strlcpy(r->password, opts->password ? opts->password : "", sizeof(r->password));
    r->cluster = opts->cluster;
    r->connect_timeout_ms = opts->connect_timeout_ms;
    r->ping_interval_ms = opts->ping_interval_ms;
    r->ping_timeout_ms = opts->ping_timeout_ms;
    r->params = opts->params;
    if (!r->cluster) {
        if (!(r->single = node_get(r, opts->host, (unsigned)opts->port)))
            goto fail;
        return r;
    }
    r->table = malloc(sizeof(*r->table));
    if (r->table)
        slots_table_init(r->table);
    r->owner = calloc(SLOTS_COUNT, sizeof(*r->owner));
    r->slots = calloc(SLOTS_COUNT, sizeof(*r->slots));
    if (!r->table || !r->owner || !r->slots)
        goto fail;
    if (parse_seeds(r, opts->host, opts->port, opts->nodes) != 0) {
        log_json(lg, LOG_ERROR, "bad Redis Cluster seed list",
                 json_pack("{s:s}", "nodes", opts->nodes ? opts->nodes : ""));
        goto fail;
    }
    for (int i = 0; i < r->nseeds; i++)
        if (!node_get(r, r->seeds[i].host, r->seeds[i].port))
            goto fail;
    lws_sul_schedule(cx, 0, &r->sul_tick, tick_cb, TICK_MS * LWS_US_PER_MS);
    return r;
fail:
    router_destroy(r);
    return NULL;
}

static void fail_list(struct router *r, struct req *q) {
    while (q) {
        struct req *next = q->next;
        finish(r, q, NULL);
        q = next;
    }
}

void router_destroy(struct router *r) {
    if (!r)
        return;
    r->destroying = 1;
    lws_sul_cancel(&r->sul_tick);
    lws_sul_cancel(&r->sul_failed);
    lws_sul_cancel(&r->sul_gc);
    lws_sul_cancel(&r->sul_topology);
    /* The links first: hiredis calls every pending callback with NULL. */
    for (struct rnode *n = r->nodes; n; n = n->next) {
        n->closing = 1;
        rl_destroy(n->rl);
        n->rl = NULL;
    }
    while (r->retrying) {
        struct req *q = r->retrying;
        r->retrying = q->next;
        lws_sul_cancel(&q->sul);
        finish(r, q, NULL);
    }
    struct req *failed = r->failed_head;
    r->failed_head = r->failed_tail = NULL;
    fail_list(r, failed);
    for (struct rnode *n = r->nodes; n; n = n->next) {
        struct req *w = n->wait_head;
        n->wait_head = n->wait_tail = NULL;
        fail_list(r, w);
    }
    if (r->slots)
        for (unsigned s = 0; s < SLOTS_COUNT; s++) {
            struct req *w = r->slots[s].qhead;
            r->slots[s].qhead = r->slots[s].qtail = NULL;
            for (struct req *q = w; q; q = q->next)
                q->slot = NO_SLOT; /* queued: not in the slot's sent list */
            fail_list(r, w);
        }
    while (r->nodes) {
        struct rnode *n = r->nodes;
        r->nodes = n->next;
        free(n);
    }
    while (r->free_reqs) {
        struct req *q = r->free_reqs;
        r->free_reqs = q->next;
        free(q->buf);
        free(q);
    }
    free(r->seeds);
    free(r->table);
    free(r->owner);
    free(r->slots);
    free(r);
}

int router_ready(const struct router *r) {
    return r->is_up;
}

int64_t router_rtt_us(const struct router *r) {
    int64_t rtt = 0;
    for (const struct rnode *n = r->nodes; n; n = n->next)
        if (n->ready && rl_rtt_us(n->rl) > rtt)
            rtt = rl_rtt_us(n->rl);
    return rtt;
}

uint64_t router_drops(const struct router *r) {
    uint64_t drops = r->drops_closed;
    for (const struct rnode *n = r->nodes; n; n = n->next)
        drops += rl_drops(n->rl);
    return drops;
}

uint64_t router_redirections(const struct router *r) {
    return r->redirections;
}

int router_slot_owner(const struct router *r, unsigned slot, char *host, size_t cap,
                      unsigned *port) {
    const struct rnode *n = r->cluster ? (slot < SLOTS_COUNT ? r->owner[slot] : NULL) : r->single;
    if (!n || strlen(n->host) >= cap)
        return -1;
    memcpy(host, n->host, strlen(n->host) + 1);
    *port = n->port;
    return 0;
}

int router_each_master(const struct router *r,
                       void (*fn)(const char *host, unsigned port, void *arg), void *arg) {
    if (!r->cluster) {
        fn(r->single->host, r->single->port, arg);
        return 1;
    }
    int count = 0;
    if (!r->have_table)
        return 0;
    for (const struct rnode *n = r->nodes; n; n = n->next)
        if (n->in_table) {
            fn(n->host, n->port, arg);
            count++;
        }
    return count;
}

void router_refresh(struct router *r) {
    refresh(r);
}
