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

/* One node of the STATUS script's reply: {node, heartbeat ms, connections, {conn, value...},
 * now ms}, as a heading and a table of its rooms and their devices. */
static void status_node(struct textbuf *r, const redisReply *n) {
    if (n->type != REDIS_REPLY_ARRAY || n->elements < 5 ||
        n->element[0]->type != REDIS_REPLY_STRING || n->element[3]->type != REDIS_REPLY_ARRAY)
        return;
    const redisReply *conns = n->element[3];
    long long beat = n->element[1]->type == REDIS_REPLY_STRING ? atoll(n->element[1]->str) : 0;
    long long now = n->element[4]->integer, total = n->element[2]->integer;
    textbuf_add(r, "<h3>");
    textbuf_add_html(r, n->element[0]->str, n->element[0]->len);
    textbuf_add(r, "</h3><p>%lld connections, last heartbeat %lld ms ago</p>\n", total, now - beat);
    size_t m = 0;
    struct member *ms = conns->elements ? calloc(conns->elements / 2, sizeof(*ms)) : NULL;
    for (size_t i = 0; ms && i + 1 < conns->elements; i += 2) {
        const redisReply *v = conns->element[i + 1];
        const char *tab = v->type == REDIS_REPLY_STRING ? memchr(v->str, '\t', v->len) : NULL;
        if (!tab)
            continue;
        ms[m].room = v->str;
        ms[m].room_len = (int)(tab - v->str);
        ms[m].device = tab + 1;
        ms[m].device_len = (int)(v->len - (size_t)(tab + 1 - v->str));
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
    if ((long long)m < total)
        textbuf_add(r, "<p>(%zu of %lld connections listed)</p>\n", m, total);
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

/* The page: this node, then the cluster as Redis knows it (cluster NULL: unavailable). */
static void page(struct app *app, struct textbuf *r, const redisReply *cluster) {
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
    if (!cluster || cluster->type != REDIS_REPLY_ARRAY) {
        textbuf_add(r, "<p>unavailable: the cluster store did not answer</p>\n");
    } else {
        textbuf_add(r, "<p>%zu nodes</p>\n", cluster->elements);
        for (size_t i = 0; i < cluster->elements; i++)
            status_node(r, cluster->element[i]);
    }
    textbuf_add(r, "</body></html>\n");
}

/* Connections listed per node at most on /status. */
#define STATUS_MAX_CONNS "2000"

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

static void status_reply(void *arg, redisReply *reply, void *priv) {
    struct app *app = arg;
    uint64_t no = (uint64_t)(uintptr_t)priv;
    struct status_wait *w = NULL;
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&app->status->waiting)) {
        struct status_wait *x = lws_container_of(d, struct status_wait, link);
        if (x->no == no)
            w = x;
    }
    lws_end_foreach_dll(d);
    if (!w)
        return; /* the client went away meanwhile */
    lws_dll2_remove(&w->link);
    page(app, w->page, reply);
    w->done(w);
}

int status_request(struct status *st, struct status_wait *w, struct textbuf *out,
                   void (*done)(struct status_wait *w)) {
    struct app *app = st->app;
    int up = app_redis_ready(app);
    const char *argv[] = {KEYS_NODES, STATUS_MAX_CONNS};
    w->no = ++st->next_no;
    w->page = out;
    w->done = done;
    if (!up || router_eval(app->router, SCRIPT_STATUS, status_reply, (void *)(uintptr_t)w->no, 1, 2,
                           argv, NULL)) {
        page(app, out, NULL);
        return 0;
    }
    lws_dll2_add_tail(&w->link, &st->waiting);
    return 1;
}

void status_cancel(struct status_wait *w) {
    lws_dll2_remove(&w->link);
}
