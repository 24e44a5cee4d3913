/* Heartbeat, reaper, recycler, resync and status record (see node.h). */
#include "node.h"

#include "app.h"
#include "reaper.h"
#include "fanout.h"
#include "keys.h"
#include "router.h"
#include "room.h"
#include "session.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct app *app;
    lws_sorted_usec_list_t sul_beat, sul_status;
    int registered; /* the cluster has seen our first heartbeat */
    struct reaper *reaper;
    uint64_t last_in, last_out;
    int64_t last_status_ms;
};

static int cmd(struct app *app) {
    return app_redis_ready(app);
}

static void beat_reply(void *arg, redisReply *r, void *priv) {
    struct node *n = priv;
    redisReply *reply = r;
    (void)arg;
    if (!reply || reply->type != REDIS_REPLY_INTEGER)
        return;
    if (reply->integer == 1 && n->registered) {
        /* The cluster declared us dead (we were cut off for longer than the node timeout) and
         * removed our members: put them back. */
        log_msg(&n->app->log, LOG_WARN, "node was declared dead by the cluster; restoring members");
        session_restore_all(n->app);
    }
    n->registered = 1;
}

/* Rooms one recycle script looks at: a few milliseconds of Redis's time, so that other clients'
 * commands are not held up behind it. */
#define RECYCLE_BATCH 256

static void recycle_shard(struct node *n, unsigned shard);

/* Recycling keeps pace with whatever is due, however many rooms emptied at once: a full batch
 * is followed straight away by another, each its own script so that Redis serves others in
 * between. priv is the shard. */
static void recycle_reply(void *arg, redisReply *r, void *priv) {
    struct app *app = arg;
    struct node *n = app->node;
    redisReply *reply = r;
    if (!n || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER)
        return;
    long long recycled = reply->element[0]->integer;
    if (recycled > 0) {
        app->stats.recycled += (uint64_t)recycled;
        log_json(&app->log, LOG_INFO, "recycled empty rooms",
                 json_pack("{s:I}", "rooms", (json_int_t)recycled));
    }
    if (reply->element[1]->integer >= RECYCLE_BATCH)
        recycle_shard(n, (unsigned)(uintptr_t)priv);
}

/* The rooms of one shard: their keys, empty set and events stream share its slot. */
static void recycle_shard(struct node *n, unsigned shard) {
    struct app *app = n->app;
    if (!cmd(app) || app->draining)
        return;
    char grace[24], maxlen[24], now[24], batch[24], kempty[KEYS_MAX], kev[KEYS_MAX];
    char prefix[KEYS_MAX], krooms[KEYS_MAX];
    snprintf(grace, sizeof(grace), "%ld", app->opt.room_grace_ms);
    snprintf(maxlen, sizeof(maxlen), "%ld", fe_stream_shard_maxlen(&app->opt));
    snprintf(now, sizeof(now), "%" PRId64, util_now_ms());
    snprintf(batch, sizeof(batch), "%d", RECYCLE_BATCH);
    keys_empty_rooms(kempty, sizeof(kempty), shard);
    keys_events(kev, sizeof(kev), shard);
    keys_room(prefix, sizeof(prefix), shard, "");
    keys_rooms(krooms, sizeof(krooms), shard);
    const char *argv[] = {kempty, kev, krooms, grace, maxlen, app->node_id, now, batch, prefix};
    router_eval(app->router, SCRIPT_RECYCLE, recycle_reply, (void *)(uintptr_t)shard, 3, 9, argv,
                NULL);
}

static void recycle(struct node *n) {
    for (unsigned i = 0; i < (unsigned)n->app->opt.event_shards; i++)
        recycle_shard(n, i);
}

/* The node's version beside its heartbeat, for /status: its own key (a node's slot, not the
 * node list's), outliving a missed beat or two and gone soon after the node. */
static void version_reply(void *arg, redisReply *r, void *priv) {
    (void)arg;
    (void)r;
    (void)priv;
}

static void write_version(struct app *app) {
    char key[KEYS_MAX], ttl[24];
    if (keys_node_version(key, sizeof(key), app->node_id) < 0)
        return;
    snprintf(ttl, sizeof(ttl), "%ld", 2 * app->opt.node_timeout_ms);
    const char *argv[] = {"SET", key, RRM_VERSION, "PX", ttl};
    router_command(app->router, key, version_reply, NULL, 5, argv, NULL);
}

static void beat_cb(lws_sorted_usec_list_t *sul) {
    struct node *n = lws_container_of(sul, struct node, sul_beat);
    struct app *app = n->app;
    if (cmd(app) && !app->draining) {
        const char *hb[] = {KEYS_NODES, app->node_id};
        router_eval(app->router, SCRIPT_HEARTBEAT, beat_reply, n, 1, 2, hb, NULL);
        write_version(app);
        reaper_tick(n->reaper);
        recycle(n);
    }
    lws_sul_schedule(app->cx, 0, &n->sul_beat, beat_cb, app->opt.heartbeat_ms * LWS_US_PER_MS);
}

static void dist_room(const char *room, size_t members, void *arg) {
    json_object_set_new(arg, room, json_integer((json_int_t)members));
}

void node_status(struct node *n) {
    struct app *app = n->app;
    const struct fe_stats *st = &app->stats;
    int64_t now = util_mono_ms();
    double secs = n->last_status_ms ? (double)(now - n->last_status_ms) / 1000.0 : 0;
    json_t *dist = json_object();
    fanout_each_room(app->fanout, dist_room, dist);
    log_json(
        &app->log, LOG_INFO, "status",
        json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:b, s:b, s:I, s:o}", "connections",
                  (json_int_t)app->connections, "rooms", (json_int_t)fanout_room_count(app->fanout),
                  "messages_in", (json_int_t)st->messages_in, "messages_out",
                  (json_int_t)st->messages_out, "in_per_sec",
                  log_round(secs > 0 ? (double)(st->messages_in - n->last_in) / secs : 0.0, 2),
                  "out_per_sec",
                  log_round(secs > 0 ? (double)(st->messages_out - n->last_out) / secs : 0.0, 2),
                  "redis_rtt_us", (json_int_t)(app->router ? router_rtt_us(app->router) : 0),
                  "redis_up", app_redis_ready(app), "draining", app->draining, "rss_kib",
                  (json_int_t)util_rss_kib(), "room_devices", dist));
    n->last_in = st->messages_in;
    n->last_out = st->messages_out;
    n->last_status_ms = now;
}

static void status_cb(lws_sorted_usec_list_t *sul) {
    struct node *n = lws_container_of(sul, struct node, sul_status);
    node_status(n);
    lws_sul_schedule(n->app->cx, 0, &n->sul_status, status_cb,
                     n->app->opt.status_interval_ms * LWS_US_PER_MS);
}

struct node *node_create(struct app *app) {
    struct node *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->app = app;
    if (!(n->reaper = reaper_create(app))) {
        free(n);
        return NULL;
    }
    n->last_status_ms = util_mono_ms();
    lws_sul_schedule(app->cx, 0, &n->sul_status, status_cb,
                     app->opt.status_interval_ms * LWS_US_PER_MS);
    lws_sul_schedule(app->cx, 0, &n->sul_beat, beat_cb, app->opt.heartbeat_ms * LWS_US_PER_MS);
    return n;
}

void node_destroy(struct node *n) {
    if (!n)
        return;
    lws_sul_cancel(&n->sul_beat);
    lws_sul_cancel(&n->sul_status);
    reaper_destroy(n->reaper);
    free(n);
}

/* Memberships Redis holds for this node: keep those of live local sessions, drop the rest. */
static void conns_reply(void *arg, redisReply *r, void *priv) {
    struct node *n = priv;
    struct app *app = n->app;
    redisReply *reply = r;
    (void)arg;
    if (!reply || reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        redisReply *conn = reply->element[i], *val = reply->element[i + 1];
        if (conn->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
            continue;
        if (session_holds_membership(app, conn->str, conn->len))
            continue;
        const char *tab = memchr(val->str, '\t', val->len);
        if (!tab)
            continue;
        char room[128];
        snprintf(room, sizeof(room), "%.*s", (int)(tab - val->str), val->str);
        room_leave_conn(app, tab + 1, room, conn->str, "lost", 0);
    }
    session_restore_all(app);
}

void node_redis_up(struct node *n) {
    struct app *app = n->app;
    if (!cmd(app))
        return;
    char kconns[KEYS_MAX];
    keys_node_conns(kconns, sizeof(kconns), app->node_id);
    const char *argv[] = {"HGETALL", kconns};
    router_command(app->router, kconns, conns_reply, n, 2, argv, NULL);
    n->registered = 0; /* conns_reply restores everything; the beat need not do it again */
    beat_cb(&n->sul_beat);
}

void node_deregister(struct node *n, void (*done)(struct app *app)) {
    if (!cmd(n->app) || reaper_reap_self(n->reaper, "draining", done))
        done(n->app);
}
