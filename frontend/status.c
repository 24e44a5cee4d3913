/* The /status page (see status.h). */
#include "status.h"

#include "addrlimit.h"
#include "app.h"
#include "edge.h"
#include "fanout.h"
#include "keys.h"
#include "router.h"
#include "session.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

struct status_ctx {
    struct app *app;
    struct textbuf *r;
};

static void status_room(const char *room, size_t members, void *arg) {
    struct status_ctx *c = arg;
    textbuf_add(c->r, "<tr><td>%s</td><td>%zu</td></tr>\n", room, members);
}

/* One connection of a node, from its conns hash: value "room\tdevice". */
struct member {
    const char *room, *device;
    int room_len, device_len;
};

static int span_cmp(const char *a, int an, const char *b, int bn) {
    int c = memcmp(a, b, (size_t)(an < bn ? an : bn));
    return c ? c : an - bn;
}

static int member_cmp(const void *a, const void *b) {
    const struct member *x = a, *y = b;
    int c = span_cmp(x->room, x->room_len, y->room, y->room_len);
    return c ? c : span_cmp(x->device, x->device_len, y->device, y->device_len);
}

/* One node of the cluster as gathered for a page: its heartbeat from rrm:nodes, its
 * connections from its conns hash (HLEN, and at most STATUS_MAX_CONNS values of HSCAN). */
struct gnode {
    char *name;
    long long beat, total;
    size_t nvals;
    char **vals; /* "room\tdevice" */
};

/* A node's heading and a table of its rooms and their devices. */
static void status_node(struct textbuf *r, const struct gnode *g, long long now) {
    textbuf_add(r, "<h3>");
    textbuf_add_html(r, g->name, strlen(g->name));
    textbuf_add(r, "</h3><p>%lld connections, last heartbeat %lld ms ago</p>\n", g->total,
                now - g->beat);
    size_t m = 0;
    struct member *ms = g->nvals ? calloc(g->nvals, sizeof(*ms)) : NULL;
    for (size_t i = 0; ms && i < g->nvals; i++) {
        const char *v = g->vals[i], *tab = strchr(v, '\t');
        if (!tab)
            continue;
        ms[m].room = v;
        ms[m].room_len = (int)(tab - v);
        ms[m].device = tab + 1;
        ms[m].device_len = (int)strlen(tab + 1);
        m++;
    }
    if (m)
        qsort(ms, m, sizeof(*ms), member_cmp);
    textbuf_add(r, "<table border=\"1\"><tr><th>room</th><th>devices on this node</th></tr>\n");
    for (size_t i = 0; i < m; i++) {
        int first =
            i == 0 || span_cmp(ms[i].room, ms[i].room_len, ms[i - 1].room, ms[i - 1].room_len);
        if (first) {
            textbuf_add(r, "%s<tr><td>", i ? "</td></tr>\n" : "");
            textbuf_add_html(r, ms[i].room, (size_t)ms[i].room_len);
            textbuf_add(r, "</td><td>");
        } else {
            textbuf_add(r, ", ");
        }
        textbuf_add_html(r, ms[i].device, (size_t)ms[i].device_len);
    }
    textbuf_add(r, "%s</table>\n", m ? "</td></tr>\n" : "");
    if ((long long)m < g->total)
        textbuf_add(r, "<p>(%zu of %lld connections listed)</p>\n", m, g->total);
    free(ms);
}

/* Client addresses listed on /status (the ones with the most connections). */
#define STATUS_TOP_CLIENTS 20

/* This node's client addresses (behind trusted proxies, the real ones) with the most open
 * connections, as the per-address limits count them. */
static void clients(struct app *app, struct textbuf *r) {
    struct addrlimit_usage top[STATUS_TOP_CLIENTS];
    long n = edge_top_clients(app->edge, top, STATUS_TOP_CLIENTS);
    if (n < 0) {
        textbuf_add(r, "<p>client addresses: not counted (per-address limits off)</p>\n");
        return;
    }
    textbuf_add(r,
                "<table border=\"1\"><tr><th>client address (top %d)</th>"
                "<th>connections</th></tr>\n",
                STATUS_TOP_CLIENTS);
    for (long i = 0; i < n; i++) {
        textbuf_add(r, "<tr><td>");
        textbuf_add_html(r, top[i].addr, strlen(top[i].addr));
        textbuf_add(r, "</td><td>%ld</td></tr>\n", top[i].connections);
    }
    textbuf_add(r, "</table>\n");
}

/* This node's connections listed at most on /status. */
#define STATUS_LOCAL_CONNS 2000

static void status_conn(const struct room_conn *c, void *arg) {
    struct textbuf *r = arg;
    textbuf_add(r, "<tr><td>");
    textbuf_add_html(r, c->device_id, strlen(c->device_id));
    textbuf_add(r, "</td><td>");
    textbuf_add_html(r, c->identity, strlen(c->identity));
    textbuf_add(r, "</td><td>");
    textbuf_add_html(r, c->room_id, strlen(c->room_id));
    textbuf_add(r, "</td><td>");
    textbuf_add_html(r, c->ip, strlen(c->ip));
    textbuf_add(r, "</td><td>");
    textbuf_add_html(r, c->conn_id, c->conn_id_len);
    textbuf_add(r, "</td></tr>\n");
}

/* This node's connections in rooms, with the client address each was accepted from (behind
 * trusted proxies, the real one: what the archive records as client_ip). */
static void connections(struct app *app, struct textbuf *r) {
    textbuf_add(r, "<h2>Connections on this node</h2>\n<table border=\"1\"><tr><th>device</th>"
                   "<th>identity</th><th>room</th><th>client address</th><th>conn</th></tr>\n");
    size_t n = session_each_member(app, STATUS_LOCAL_CONNS, status_conn, r);
    textbuf_add(r, "</table>\n");
    if (n > STATUS_LOCAL_CONNS)
        textbuf_add(r, "<p>(%d of %zu connections listed)</p>\n", STATUS_LOCAL_CONNS, n);
}

/* What a page gathers from Redis, one command per key so that each goes to the shard that holds
 * it: the node list, Redis's clock, then each node's connections. Freed by the last reply (the
 * router answers every accepted command exactly once). */
struct gather {
    struct app *app;
    uint64_t no; /* the waiting request it is for */
    int pending, failed;
    long long now; /* ms, Redis's clock */
    size_t n;
    struct gnode *nodes;
};

/* The page: this node, then the cluster as Redis knows it (g NULL: unavailable). */
static void page(struct app *app, struct textbuf *r, const struct gather *g) {
    textbuf_add(r, "<!doctype html><html><head><meta charset=\"utf-8\"><title>rrm ");
    textbuf_add_html(r, app->node_id, strlen(app->node_id));
    textbuf_add(r, "</title></head><body><h1>Node ");
    textbuf_add_html(r, app->node_id, strlen(app->node_id));
    textbuf_add(r,
                "</h1><p>%ld connections, %zu local rooms, redis %s%s</p>"
                "<table border=\"1\"><tr><th>room</th><th>local devices</th></tr>\n",
                app->connections, fanout_room_count(app->fanout),
                app_redis_ready(app) ? "up" : "down", app->draining ? ", draining" : "");
    struct status_ctx c = {app, r};
    fanout_each_room(app->fanout, status_room, &c);
    textbuf_add(r, "</table>\n");
    clients(app, r);
    connections(app, r);
    textbuf_add(r, "<h2>Cluster</h2>\n");
    if (!g) {
        textbuf_add(r, "<p>unavailable: the cluster store did not answer</p>\n");
    } else {
        textbuf_add(r, "<p>%zu nodes</p>\n", g->n);
        for (size_t i = 0; i < g->n; i++)
            status_node(r, &g->nodes[i], g->now);
    }
    textbuf_add(r, "</body></html>\n");
}

/* Connections listed per node at most on /status. */
#define STATUS_MAX_CONNS 2000

struct status {
    struct app *app;
    lws_dll2_owner_t waiting; /* requests waiting for Redis, found by number */
    uint64_t next_no;
};

struct status *status_create(struct app *app) {
    struct status *st = calloc(1, sizeof(*st));
    if (st)
        st->app = app;
    return st;
}

void status_destroy(struct status *st) {
    free(st);
}

static void gather_free(struct gather *g) {
    for (size_t i = 0; i < g->n; i++) {
        free(g->nodes[i].name);
        for (size_t j = 0; j < g->nodes[i].nvals; j++)
            free(g->nodes[i].vals[j]);
        free(g->nodes[i].vals);
    }
    free(g->nodes);
    free(g);
}

/* One reply is in: the page is written once the last one is. */
static void gather_done(struct gather *g) {
    if (--g->pending > 0)
        return;
    struct app *app = g->app;
    struct status_wait *w = NULL;
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&app->status->waiting)) {
        struct status_wait *x = lws_container_of(d, struct status_wait, link);
        if (x->no == g->no)
            w = x;
    }
    lws_end_foreach_dll(d);
    if (w) { /* else the client went away meanwhile */
        lws_dll2_remove(&w->link);
        page(app, w->page, g->failed ? NULL : g);
        w->done(w);
    }
    gather_free(g);
}

/* Sends one command for g; 0 if sent. A command not sent fails the page (its reply will not
 * come). */
static int gather_send(struct gather *g, const char *key, router_reply_fn *cb, void *priv, int argc,
                       const char **argv) {
    if (router_command(g->app->router, key, cb, priv, argc, argv, NULL) == 0) {
        g->pending++;
        return 0;
    }
    g->failed = 1;
    return -1;
}

/* A reply about node i of g (g->nodes may not move: it is allocated once). */
struct node_ref {
    struct gather *g;
    size_t i;
};

static void conns_reply(void *arg, redisReply *reply, void *priv);

/* HLEN of a node's conns: then all of them (HGETALL), or a sample of STATUS_MAX_CONNS (HSCAN). */
static void hlen_reply(void *arg, redisReply *reply, void *priv) {
    (void)arg;
    struct node_ref *ref = priv;
    struct gather *g = ref->g;
    char key[KEYS_MAX], count[24];
    if (!reply || reply->type != REDIS_REPLY_INTEGER ||
        keys_node_conns(key, sizeof(key), g->nodes[ref->i].name) < 0) {
        g->failed = 1;
        free(ref);
        gather_done(g);
        return;
    }
    g->nodes[ref->i].total = reply->integer;
    snprintf(count, sizeof(count), "%d", STATUS_MAX_CONNS);
    const char *all[] = {"HGETALL", key};
    const char *sample[] = {"HSCAN", key, "0", "COUNT", count};
    int sent = reply->integer <= STATUS_MAX_CONNS
                   ? gather_send(g, key, conns_reply, ref, 2, all)
                   : gather_send(g, key, conns_reply, ref, 5, sample);
    if (sent)
        free(ref);
    gather_done(g);
}

/* HGETALL's flat field/value list, or HSCAN's [cursor, list]: the values are "room\tdevice". */
static void conns_reply(void *arg, redisReply *reply, void *priv) {
    (void)arg;
    struct node_ref *ref = priv;
    struct gather *g = ref->g;
    struct gnode *node = &g->nodes[ref->i];
    free(ref);
    const redisReply *kv = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                                   reply->element[1]->type == REDIS_REPLY_ARRAY
                               ? reply->element[1]
                               : reply;
    if (!kv || kv->type != REDIS_REPLY_ARRAY) {
        g->failed = 1;
        gather_done(g);
        return;
    }
    size_t n = kv->elements / 2;
    node->vals = n ? calloc(n, sizeof(*node->vals)) : NULL;
    for (size_t i = 0; node->vals && i < n; i++) {
        const redisReply *v = kv->element[2 * i + 1];
        if (v->type == REDIS_REPLY_STRING && (node->vals[node->nvals] = strndup(v->str, v->len)))
            node->nvals++;
    }
    gather_done(g);
}

static void node_commands(struct gather *g, size_t i) {
    char key[KEYS_MAX];
    struct node_ref *ref = malloc(sizeof(*ref));
    if (!ref || keys_node_conns(key, sizeof(key), g->nodes[i].name) < 0) {
        free(ref);
        g->failed = 1;
        return;
    }
    *ref = (struct node_ref){g, i};
    const char *hlen[] = {"HLEN", key};
    if (gather_send(g, key, hlen_reply, ref, 2, hlen))
        free(ref);
}

/* rrm:nodes with scores: then each node's connections. */
static void nodes_reply(void *arg, redisReply *reply, void *priv) {
    (void)arg;
    struct gather *g = priv;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        g->failed = 1;
        gather_done(g);
        return;
    }
    size_t n = reply->elements / 2;
    g->nodes = n ? calloc(n, sizeof(*g->nodes)) : NULL;
    for (size_t i = 0; g->nodes && i < n; i++) {
        const redisReply *name = reply->element[2 * i], *score = reply->element[2 * i + 1];
        if (name->type != REDIS_REPLY_STRING ||
            !(g->nodes[g->n].name = strndup(name->str, name->len)))
            continue;
        g->nodes[g->n].beat = score->type == REDIS_REPLY_STRING ? atoll(score->str) : 0;
        g->n++;
    }
    if (n && !g->nodes)
        g->failed = 1;
    g->pending++; /* held while the node commands go out */
    for (size_t i = 0; i < g->n && !g->failed; i++)
        node_commands(g, i);
    gather_done(g); /* the hold */
    gather_done(g); /* this reply */
}

static void time_reply(void *arg, redisReply *reply, void *priv) {
    (void)arg;
    struct gather *g = priv;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING)
        g->now = atoll(reply->element[0]->str) * 1000 + atoll(reply->element[1]->str) / 1000;
    else
        g->failed = 1;
    gather_done(g);
}

int status_request(struct status *st, struct status_wait *w, struct textbuf *out,
                   void (*done)(struct status_wait *w)) {
    struct app *app = st->app;
    struct gather *g = app_redis_ready(app) ? calloc(1, sizeof(*g)) : NULL;
    w->no = ++st->next_no;
    w->page = out;
    w->done = done;
    if (!g) {
        page(app, out, NULL);
        return 0;
    }
    g->app = app;
    g->no = w->no;
    const char *nodes[] = {"ZRANGE", KEYS_NODES, "0", "-1", "WITHSCORES"};
    const char *time[] = {"TIME"};
    gather_send(g, KEYS_NODES, nodes_reply, g, 5, nodes);
    gather_send(g, NULL, time_reply, g, 1, time);
    if (g->pending == 0) { /* nothing went out: no reply will come */
        gather_free(g);
        page(app, out, NULL);
        return 0;
    }
    lws_dll2_add_tail(&w->link, &st->waiting);
    return 1;
}

void status_cancel(struct status_wait *w) {
    lws_dll2_remove(&w->link);
}
