/* /status.json (see status.h). */
#include "status.h"

#include "addrlimit.h"
#include "api.h"
#include "app.h"
#include "edge.h"
#include "fanout.h"
#include "keys.h"
#include "proto.h"
#include "router.h"
#include "scripts.h"
#include "session.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Client addresses listed (the ones with the most connections). */
#define STATUS_TOP_CLIENTS 20
/* This node's connections listed at most. */
#define STATUS_LOCAL_CONNS 2000

/* ---- this node ------------------------------------------------------------------------------- */

static void local_conn(const struct room_conn *c, void *arg) {
    json_array_append_new(arg,
                          json_pack("{s:s,s:s,s:s,s:s,s:s%}", "device_id", c->device_id, "identity",
                                    c->identity, "room_id", c->room_id, "client_address", c->ip,
                                    "conn_id", c->conn_id, c->conn_id_len));
}

/* This node: its counts, its busiest client addresses (null when per-address limits are off:
 * nothing is counted then) and its connections in rooms, with the client address each was
 * accepted from (behind trusted proxies, the real one: what the archive records as client_ip). */
static json_t *this_node(struct app *app) {
    struct addrlimit_usage top[STATUS_TOP_CLIENTS];
    long n = edge_top_clients(app->edge, top, STATUS_TOP_CLIENTS);
    json_t *clients = n < 0 ? json_null() : json_array();
    for (long i = 0; i < n; i++)
        json_array_append_new(clients, json_pack("{s:s,s:I}", "address", top[i].addr, "connections",
                                                 (json_int_t)top[i].connections));
    json_t *conns = json_array();
    size_t total = session_each_member(app, STATUS_LOCAL_CONNS, local_conn, conns);
    return json_pack("{s:s,s:s,s:I,s:I,s:b,s:b,s:o,s:o,s:I}", "node_id", app->node_id, "version",
                     RRM_VERSION, "connections", (json_int_t)app->connections, "rooms",
                     (json_int_t)fanout_room_count(app->fanout), "redis_up", app_redis_ready(app),
                     "draining", app->draining, "clients", clients, "members", conns,
                     "members_total", (json_int_t)total);
}

/* ---- the cluster ----------------------------------------------------------------------------- */

/* A node of the cluster: its heartbeat from rrm:nodes, its connections (HLEN of its conns) and
 * its version (its version key). */
struct gnode {
    char *name;
    long long beat, conns;
    char *version; /* NULL: none recorded */
};

/* A room counted: its shard's script gave its member count; members: for the rooms of the page,
 * the room script's answer. */
struct groom {
    char *id;
    long long total;
    unsigned shard;
    json_t *clients; /* NULL: not on the page, or not read */
};

/* What one answer gathers from Redis, one command or one-slot script at a time so that each goes
 * to the shard that holds its keys: the node list, Redis's clock, each node's connections and
 * version, each shard's rooms with their counts, the device searched for; then the members of
 * the rooms of the page. Freed by the last reply (the router answers every accepted command
 * exactly once). */
struct gather {
    struct app *app;
    uint64_t no; /* the waiting request it is for */
    struct status_query q;
    int pending, failed;
    int counting;  /* rooms and device replies still to come before the page is chosen */
    int truncated; /* a shard had more rooms than were counted */
    long long now; /* ms, Redis's clock */
    size_t nnodes;
    struct gnode *nodes;
    size_t nrooms, caprooms;
    struct groom *rooms;
    json_t *device; /* the device searched for ({device_id, connected, ...}), or NULL */
    /* the page chosen: indexes into rooms, busiest first */
    size_t *sel, nsel, matched;
    long page, pages;
    long long members;
};

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
    for (size_t i = 0; i < g->nnodes; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].version);
    }
    free(g->nodes);
    for (size_t i = 0; i < g->nrooms; i++) {
        free(g->rooms[i].id);
        json_decref(g->rooms[i].clients);
    }
    free(g->rooms);
    free(g->sel);
    json_decref(g->device);
    free(g);
}

/* The nodes hosting the listed members of a room, each once, in order of appearance. */
static json_t *hosts(json_t *clients) {
    json_t *out = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(clients, i, m) {
        json_t *node = json_object_get(m, "node"), *x;
        size_t j;
        int seen = 0;
        json_array_foreach(out, j, x) seen |= json_equal(x, node);
        if (!seen && node)
            json_array_append(out, node);
    }
    return out;
}

static json_t *cluster_json(const struct gather *g) {
    json_t *nodes = json_array();
    for (size_t i = 0; i < g->nnodes; i++) {
        const struct gnode *n = &g->nodes[i];
        json_array_append_new(nodes,
                              json_pack("{s:s,s:I,s:I,s:s?}", "node_id", n->name, "connections",
                                        (json_int_t)n->conns, "heartbeat_age_ms",
                                        (json_int_t)(g->now - n->beat), "version", n->version));
    }
    json_t *rooms = json_array();
    for (size_t i = 0; i < g->nsel; i++) {
        const struct groom *r = &g->rooms[g->sel[i]];
        json_t *clients = r->clients ? json_incref(r->clients) : json_array();
        json_t *o = json_pack("{s:s,s:I,s:o,s:o}", "room_id", r->id, "total_clients",
                              (json_int_t)r->total, "nodes", hosts(clients), "clients", clients);
        if (o && (long long)json_array_size(clients) < r->total)
            json_object_set_new(o, "truncated", json_true());
        json_array_append_new(rooms, o);
    }
    return json_pack("{s:I,s:o,s:I,s:I,s:b,s:s,s:I,s:I,s:I,s:I,s:O?,s:o}", "now",
                     (json_int_t)g->now, "nodes", nodes, "rooms_total", (json_int_t)g->nrooms,
                     "members_total", (json_int_t)g->members, "rooms_truncated", g->truncated, "q",
                     g->q.q, "matched", (json_int_t)g->matched, "page", (json_int_t)g->page,
                     "per_page", (json_int_t)g->q.per_page, "pages", (json_int_t)g->pages, "device",
                     g->device, "rooms", rooms);
}

/* The answer: this node, then the cluster as Redis knows it (g NULL: unavailable). */
static void answer(struct app *app, struct textbuf *out, const struct gather *g) {
    json_t *v = json_pack("{s:o,s:o}", "node", this_node(app), "cluster",
                          g ? cluster_json(g) : json_null());
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    textbuf_add(out, "%s\n", text ? text : "{\"error\":\"out of memory\"}");
    free(text);
}

/* One reply is in: the answer is written once the last one is. */
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
        answer(app, w->out, g->failed ? NULL : g);
        w->done(w);
    }
    gather_free(g);
}

/* Sends one command (script < 0) or script for g, routed by key; 0 if sent. One not sent fails
 * the answer (its reply will not come). */
static int gather_send(struct gather *g, const char *key, int script, router_reply_fn *cb,
                       void *priv, int nkeys, int argc, const char **argv) {
    int rc = script < 0 ? router_command(g->app->router, key, cb, priv, argc, argv, NULL)
                        : router_eval(g->app->router, (enum script_id)script, cb, priv, nkeys, argc,
                                      argv, NULL);
    if (rc == 0) {
        g->pending++;
        return 0;
    }
    g->failed = 1;
    return -1;
}

/* A reply about item i (a node or a room) of g, whose arrays do not move once replies about
 * their items are expected. */
struct ref {
    struct gather *g;
    size_t i;
};

static struct ref *ref_new(struct gather *g, size_t i) {
    struct ref *r = malloc(sizeof(*r));
    if (r)
        *r = (struct ref){g, i};
    else
        g->failed = 1;
    return r;
}

/* ---- the rooms of the page ---------------------------------------------------------------- */

static int room_rank(const void *a, const void *b) {
    const struct groom *x = a, *y = b;
    if (x->total != y->total)
        return x->total > y->total ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* The room script's answer for a room of the page: its count now and its members. */
static void members_reply(void *arg, redisReply *reply, void *priv) {
    (void)arg;
    struct ref *ref = priv;
    struct gather *g = ref->g;
    struct groom *room = &g->rooms[ref->i];
    free(ref);
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 5 ||
        reply->element[4]->type != REDIS_REPLY_ARRAY) {
        g->failed = 1;
    } else {
        if (reply->element[3]->type == REDIS_REPLY_INTEGER)
            room->total = reply->element[3]->integer;
        room->clients = api_room_clients(reply->element[4], STATUS_ROOM_MEMBERS);
    }
    gather_done(g);
}

int status_room_matches(const char *room, const char *q, const char *device_room) {
    return !q[0] || strcasestr(room, q) || (device_room && strcmp(device_room, room) == 0);
}

size_t status_page_span(size_t matched, long asked, long *per_page, long *page, long *pages) {
    if (*per_page < 1 || *per_page > STATUS_PER_PAGE_MAX)
        *per_page = STATUS_PER_PAGE_DEFAULT;
    size_t n = (size_t)*per_page;
    *pages = matched ? (long)((matched + n - 1) / n) : 1;
    *page = asked < 1 ? 1 : asked > *pages ? *pages : asked;
    size_t first = (size_t)(*page - 1) * n;
    return first < matched ? first : matched;
}

/* Every shard's rooms are counted: rank them, keep those the search matches, and read the
 * members of the page's. */
static void choose_page(struct gather *g) {
    if (g->failed)
        return;
    if (g->nrooms)
        qsort(g->rooms, g->nrooms, sizeof(*g->rooms), room_rank);
    g->sel = calloc(g->q.per_page, sizeof(*g->sel));
    if (!g->sel) {
        g->failed = 1;
        return;
    }
    for (size_t i = 0; i < g->nrooms; i++)
        g->members += g->rooms[i].total;
    size_t *match = g->nrooms ? malloc(g->nrooms * sizeof(*match)) : NULL;
    if (g->nrooms && !match) {
        g->failed = 1;
        return;
    }
    const char *droom = g->device ? json_string_value(json_object_get(g->device, "room")) : NULL;
    for (size_t i = 0; i < g->nrooms; i++)
        if (status_room_matches(g->rooms[i].id, g->q.q, droom))
            match[g->matched++] = i;
    size_t first = status_page_span(g->matched, g->q.page, &g->q.per_page, &g->page, &g->pages);
    for (size_t k = first; k < g->matched && g->nsel < (size_t)g->q.per_page; k++)
        g->sel[g->nsel++] = match[k];
    free(match);
    char most[24];
    snprintf(most, sizeof(most), "%d", STATUS_ROOM_MEMBERS);
    for (size_t k = 0; k < g->nsel && !g->failed; k++) {
        struct groom *r = &g->rooms[g->sel[k]];
        char kroom[KEYS_MAX], kmembers[KEYS_MAX];
        keys_room(kroom, sizeof(kroom), r->shard, r->id);
        keys_room_members(kmembers, sizeof(kmembers), r->shard, r->id);
        const char *argv[] = {kroom, kmembers, most};
        struct ref *ref = ref_new(g, g->sel[k]);
        if (ref && gather_send(g, kroom, SCRIPT_ROOM_INFO, members_reply, ref, 2, 3, argv))
            free(ref);
    }
}

/* Rooms counted per shard at most: STATUS_MAX_ROOMS over the shards. */
static size_t status_shard_rooms(const struct app *app) {
    long shards = app->opt.event_shards > 0 ? app->opt.event_shards : 1;
    return (size_t)((STATUS_MAX_ROOMS + shards - 1) / shards);
}

/* One of the replies the page waits for is in (a shard's rooms, a room's count, the device). */
static void counted(struct gather *g) {
    if (--g->counting == 0)
        choose_page(g);
    gather_done(g);
}

/* HLEN of a room's members: its count. */
static void count_reply(void *arg, redisReply *reply, void *priv) {
    (void)arg;
    struct ref *ref = priv;
    struct gather *g = ref->g;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        g->rooms[ref->i].total = reply->integer;
    else
        g->failed = 1;
    free(ref);
    counted(g);
}

/* A shard's rooms in id order (the first status_shard_rooms of them): then each one's count, one
 * HLEN per room, pipelined (each a microsecond of Redis's time, where one script counting a
 * shard's rooms would hold Redis for the whole shard). */
static void rooms_reply(void *arg, redisReply *reply, void *priv) {
    (void)arg;
    struct ref *ref = priv;
    struct gather *g = ref->g;
    unsigned shard = (unsigned)ref->i;
    free(ref);
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        g->failed = 1;
        counted(g);
        return;
    }
    size_t n = reply->elements;
    if (n >= status_shard_rooms(g->app))
        g->truncated = 1;
    if (g->nrooms + n > g->caprooms) {
        size_t cap = g->caprooms ? g->caprooms : 256;
        while (cap < g->nrooms + n)
            cap *= 2;
        struct groom *rooms = realloc(g->rooms, cap * sizeof(*rooms));
        if (!rooms) {
            g->failed = 1;
            counted(g);
            return;
        }
        g->rooms = rooms;
        g->caprooms = cap;
    }
    for (size_t i = 0; i < n && !g->failed; i++) {
        const redisReply *room = reply->element[i];
        char kmembers[KEYS_MAX];
        if (room->type != REDIS_REPLY_STRING || room->len > PROTO_MAX_ROOM_ID)
            continue;
        struct groom *r = &g->rooms[g->nrooms];
        *r = (struct groom){.id = strndup(room->str, room->len), .shard = shard};
        if (!r->id || keys_room_members(kmembers, sizeof(kmembers), shard, r->id) < 0) {
            free(r->id);
            g->failed = 1;
            break;
        }
        struct ref *cref = ref_new(g, g->nrooms);
        g->nrooms++;
        const char *argv[] = {"HLEN", kmembers};
        if (cref && gather_send(g, kmembers, -1, count_reply, cref, 0, 2, argv) == 0)
            g->counting++;
        else
            free(cref);
    }
    counted(g);
}

/* The device hash of the device searched for: its room is found whatever its id. */
static void device_reply(void *arg, redisReply *reply, void *priv) {
    (void)arg;
    struct gather *g = priv;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        g->failed = 1;
    } else if (reply->elements) {
        g->device = api_device(g->q.q, reply);
    }
    counted(g);
}

/* ---- the nodes ----------------------------------------------------------------------------- */

static void conns_reply(void *arg, redisReply *reply, void *priv) {
    (void)arg;
    struct ref *ref = priv;
    struct gather *g = ref->g;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        g->nodes[ref->i].conns = reply->integer;
    else
        g->failed = 1;
    free(ref);
    gather_done(g);
}

static void version_reply(void *arg, redisReply *reply, void *priv) {
    (void)arg;
    struct ref *ref = priv;
    struct gather *g = ref->g;
    if (reply && reply->type == REDIS_REPLY_STRING)
        g->nodes[ref->i].version = strndup(reply->str, reply->len);
    else if (!reply || reply->type != REDIS_REPLY_NIL)
        g->failed = 1;
    free(ref);
    gather_done(g);
}

static void node_commands(struct gather *g, size_t i) {
    char kconns[KEYS_MAX], kversion[KEYS_MAX];
    if (keys_node_conns(kconns, sizeof(kconns), g->nodes[i].name) < 0 ||
        keys_node_version(kversion, sizeof(kversion), g->nodes[i].name) < 0) {
        g->failed = 1;
        return;
    }
    const char *hlen[] = {"HLEN", kconns};
    const char *get[] = {"GET", kversion};
    struct ref *a = ref_new(g, i);
    if (a && gather_send(g, kconns, -1, conns_reply, a, 0, 2, hlen))
        free(a);
    struct ref *b = g->failed ? NULL : ref_new(g, i);
    if (b && gather_send(g, kversion, -1, version_reply, b, 0, 2, get))
        free(b);
}

/* rrm:nodes with scores: then each node's connections and version. */
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
            !(g->nodes[g->nnodes].name = strndup(name->str, name->len)))
            continue;
        g->nodes[g->nnodes].beat = score->type == REDIS_REPLY_STRING ? atoll(score->str) : 0;
        g->nnodes++;
    }
    if (n && !g->nodes)
        g->failed = 1;
    for (size_t i = 0; i < g->nnodes && !g->failed; i++)
        node_commands(g, i);
    gather_done(g);
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

/* The first commands: the node list, the clock, each shard's rooms, the device searched for.
 * A hold on pending keeps replies that come meanwhile from finishing g. */
static void gather_start(struct gather *g) {
    struct app *app = g->app;
    g->pending++;
    g->counting++;
    const char *nodes[] = {"ZRANGE", KEYS_NODES, "0", "-1", "WITHSCORES"};
    const char *time[] = {"TIME"};
    gather_send(g, KEYS_NODES, -1, nodes_reply, g, 0, 5, nodes);
    gather_send(g, NULL, -1, time_reply, g, 0, 1, time);
    char last[24];
    snprintf(last, sizeof(last), "%zu", status_shard_rooms(app) - 1);
    for (unsigned s = 0; s < (unsigned)app->opt.event_shards && !g->failed; s++) {
        char krooms[KEYS_MAX];
        keys_rooms(krooms, sizeof(krooms), s);
        const char *argv[] = {"ZRANGE", krooms, "0", last};
        struct ref *ref = ref_new(g, s);
        if (!ref)
            break;
        if (gather_send(g, krooms, -1, rooms_reply, ref, 0, 4, argv) == 0)
            g->counting++;
        else
            free(ref);
    }
    if (!g->failed && g->q.q[0] && proto_valid_id(g->q.q, strlen(g->q.q), PROTO_MAX_DEVICE_ID)) {
        char kdev[KEYS_MAX];
        keys_device(kdev, sizeof(kdev), g->q.q);
        const char *argv[] = {"HGETALL", kdev};
        if (gather_send(g, kdev, -1, device_reply, g, 0, 2, argv) == 0)
            g->counting++;
    }
    counted(g); /* the hold */
}

int status_request(struct status *st, struct status_wait *w, const struct status_query *q,
                   struct textbuf *out, void (*done)(struct status_wait *w)) {
    struct app *app = st->app;
    struct gather *g = app_redis_ready(app) ? calloc(1, sizeof(*g)) : NULL;
    w->no = ++st->next_no;
    w->out = out;
    w->done = done;
    if (!g) {
        answer(app, out, NULL);
        return 0;
    }
    g->app = app;
    g->no = w->no;
    g->q = *q;
    if (g->q.per_page < 1 || g->q.per_page > STATUS_PER_PAGE_MAX)
        g->q.per_page = STATUS_PER_PAGE_DEFAULT;
    lws_dll2_add_tail(&w->link, &st->waiting);
    gather_start(g); /* may finish g at once (every command refused): then w->done has run */
    return 1;
}

void status_cancel(struct status_wait *w) {
    lws_dll2_remove(&w->link);
}
