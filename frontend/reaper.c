/* The reaper of dead nodes' memberships (see reaper.h). */
#include "reaper.h"

#include "app.h"
#include "keys.h"
#include "log.h"
#include "router.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Dead nodes looked at per tick, and conns per batch: a batch is BATCH x 3 small steps. */
#define DEAD_MAX 16
#define BATCH 256
/* How long a reaper holds a dead node before another may take over (it renews it per batch). */
#define LOCK_MS 30000

struct job {
    struct reaper *rp;
    struct job *next;
    char node[64];
    char reason[24];
    char lock[KEYS_MAX];
    char conns[KEYS_MAX];
    char cursor[24];
    int self;
    int failed;
    unsigned outstanding; /* conn steps of the current batch not finished */
    long long removed;
    void (*done)(struct app *app);
};

/* One conn of a batch: its member leave and device release, then its entry. */
struct step {
    struct job *job;
    int waiting; /* replies of the two first steps still to come */
    int ok;
    char conn[128];
};

struct reaper {
    struct app *app;
    struct job *jobs;
    char me[KEYS_MAX];
};

static void next_batch(struct job *j);

static int eval(struct app *app, enum script_id id, router_reply_fn *cb, void *priv, int nkeys,
                int argc, const char **argv) {
    return router_eval(app->router, id, cb, priv, nkeys, argc, argv, NULL);
}

static int command(struct app *app, const char *key, router_reply_fn *cb, void *priv, int argc,
                   const char **argv) {
    return router_command(app->router, key, cb, priv, argc, argv, NULL);
}

static void job_end(struct job *j) {
    struct reaper *rp = j->rp;
    struct app *app = rp->app;
    for (struct job **p = &rp->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    if (j->removed > 0) {
        app->stats.reaped += (uint64_t)j->removed;
        if (!j->self)
            log_json(&app->log, LOG_WARN, "removed members of dead nodes",
                     json_pack("{s:s, s:I}", "node", j->node, "members", (json_int_t)j->removed));
    }
    if (j->done)
        j->done(app);
    free(j);
}

static void ignore_reply(void *arg, redisReply *r, void *priv) {
    (void)arg;
    (void)r;
    (void)priv;
}

static void finish_reply(void *arg, redisReply *r, void *priv) {
    (void)arg;
    (void)r;
    struct job *j = priv;
    if (!j->self) {
        const char *argv[] = {"DEL", j->lock};
        command(j->rp->app, j->lock, ignore_reply, NULL, 2, argv);
    }
    job_end(j);
}

/* Every entry is gone: the node's hash and heartbeat go too. */
static void finish(struct job *j) {
    struct app *app = j->rp->app;
    const char *del[] = {"DEL", j->conns};
    const char *zrem[] = {"ZREM", KEYS_NODES, j->node};
    if (command(app, j->conns, ignore_reply, NULL, 2, del) ||
        command(app, KEYS_NODES, finish_reply, j, 3, zrem))
        job_end(j);
}

static void batch_step_done(struct job *j) {
    if (--j->outstanding > 0)
        return;
    if (j->failed)
        job_end(j); /* the lock expires; the next reaper carries on */
    else if (strcmp(j->cursor, "0") == 0)
        finish(j);
    else
        next_batch(j);
}

static void entry_reply(void *arg, redisReply *r, void *priv) {
    (void)arg;
    struct step *s = priv;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        s->job->failed = 1;
    struct job *j = s->job;
    free(s);
    batch_step_done(j);
}

/* Both first steps of a conn answered: its entry goes. */
static void step_done(struct app *app, struct step *s) {
    if (--s->waiting > 0)
        return;
    struct job *j = s->job;
    const char *argv[] = {"HDEL", j->conns, s->conn};
    if (!s->ok || command(app, j->conns, entry_reply, s, 3, argv)) {
        j->failed = 1;
        free(s);
        batch_step_done(j);
    }
}

static void leave_reply(void *arg, redisReply *r, void *priv) {
    struct step *s = priv;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        s->ok = 0;
    else
        s->job->removed += r->integer;
    step_done(arg, s);
}

static void release_reply(void *arg, redisReply *r, void *priv) {
    struct step *s = priv;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        s->ok = 0;
    step_done(arg, s);
}

/* conn's member leaves room, its device is released; then its entry goes (step_reply). */
static void reap_conn(struct job *j, const char *conn, size_t clen, const char *v, size_t vlen) {
    struct app *app = j->rp->app;
    const char *tab = memchr(v, '\t', vlen);
    struct step *s = calloc(1, sizeof(*s));
    char room[128], device[256];
    if (!s || !tab || clen >= sizeof(s->conn) || (size_t)(tab - v) >= sizeof(room) ||
        vlen - (size_t)(tab + 1 - v) >= sizeof(device)) {
        free(s);
        return; /* not an entry this version writes: left for the DEL at the end */
    }
    memcpy(s->conn, conn, clen);
    snprintf(room, sizeof(room), "%.*s", (int)(tab - v), v);
    snprintf(device, sizeof(device), "%.*s", (int)(vlen - (size_t)(tab + 1 - v)), tab + 1);
    s->job = j;
    s->ok = 1;
    s->waiting = 2;
    unsigned shard = keys_room_shard(room, (unsigned)app->opt.event_shards);
    char kmembers[KEYS_MAX], kempty[KEYS_MAX], kev[KEYS_MAX], kch[KEYS_MAX], kdev[KEYS_MAX];
    char now[24], maxlen[24];
    keys_room_members(kmembers, sizeof(kmembers), shard, room);
    keys_empty_rooms(kempty, sizeof(kempty), shard);
    keys_events(kev, sizeof(kev), shard);
    keys_room_channel(kch, sizeof(kch), shard, room);
    keys_device(kdev, sizeof(kdev), device);
    snprintf(now, sizeof(now), "%" PRId64, util_now_ms());
    snprintf(maxlen, sizeof(maxlen), "%ld", fe_stream_shard_maxlen(&app->opt));
    const char *leave[] = {kmembers, kempty, kev,    kch,     room,      device, s->conn,
                           now,      "r",    maxlen, j->node, j->reason, ""};
    const char *release[] = {kdev, s->conn, "", ""};
    j->outstanding++;
    if (eval(app, SCRIPT_MEMBER_LEAVE, leave_reply, s, 4, 13, leave)) {
        j->failed = 1;
        free(s);
        j->outstanding--;
        return;
    }
    if (eval(app, SCRIPT_RELEASE, release_reply, s, 1, 4, release))
        release_reply(app, NULL, s);
}

static void scan_reply(void *arg, redisReply *r, void *priv) {
    (void)arg;
    struct job *j = priv;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
        job_end(j);
        return;
    }
    util_strlcpy(j->cursor, r->element[0]->str, sizeof(j->cursor));
    const redisReply *kv = r->element[1];
    j->outstanding = 1; /* held until the batch is sent */
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (kv->element[i]->type == REDIS_REPLY_STRING &&
            kv->element[i + 1]->type == REDIS_REPLY_STRING)
            reap_conn(j, kv->element[i]->str, kv->element[i]->len, kv->element[i + 1]->str,
                      kv->element[i + 1]->len);
    batch_step_done(j);
}

static void next_batch(struct job *j) {
    struct app *app = j->rp->app;
    if (!j->self) { /* still ours for another LOCK_MS */
        char px[24];
        snprintf(px, sizeof(px), "%d", LOCK_MS);
        const char *renew[] = {"PEXPIRE", j->lock, px};
        command(app, j->lock, ignore_reply, NULL, 3, renew);
    }
    char count[24];
    snprintf(count, sizeof(count), "%d", BATCH);
    const char *argv[] = {"HSCAN", j->conns, j->cursor, "COUNT", count};
    if (command(app, j->conns, scan_reply, j, 5, argv))
        job_end(j);
}

static void lock_reply(void *arg, redisReply *r, void *priv) {
    (void)arg;
    struct job *j = priv;
    if (r && r->type == REDIS_REPLY_STATUS) /* OK: ours */
        next_batch(j);
    else /* another reaper has it (nil), or Redis said no */
        job_end(j);
}

static struct job *job_new(struct reaper *rp, const char *node, size_t len, const char *reason) {
    if (len >= sizeof(((struct job *)0)->node))
        return NULL;
    for (struct job *j = rp->jobs; j; j = j->next)
        if (strlen(j->node) == len && memcmp(j->node, node, len) == 0)
            return NULL; /* already being reaped here */
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->rp = rp;
    memcpy(j->node, node, len);
    util_strlcpy(j->reason, reason, sizeof(j->reason));
    util_strlcpy(j->cursor, "0", sizeof(j->cursor));
    keys_node_reaper(j->lock, sizeof(j->lock), j->node);
    keys_node_conns(j->conns, sizeof(j->conns), j->node);
    j->next = rp->jobs;
    rp->jobs = j;
    return j;
}

static void dead_reply(void *arg, redisReply *r, void *priv) {
    struct app *app = arg;
    struct reaper *rp = priv;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    char px[24];
    snprintf(px, sizeof(px), "%d", LOCK_MS);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || strcmp(e->str, app->node_id) == 0)
            continue; /* never itself: a node that beats again restores what was removed */
        struct job *j = job_new(rp, e->str, e->len, "node_lost");
        if (!j)
            continue;
        const char *argv[] = {"SET", j->lock, rp->me, "NX", "PX", px};
        if (command(app, j->lock, lock_reply, j, 6, argv))
            job_end(j);
    }
}

void reaper_tick(struct reaper *rp) {
    struct app *app = rp->app;
    char timeout[24], most[24];
    snprintf(timeout, sizeof(timeout), "%ld", app->opt.node_timeout_ms);
    snprintf(most, sizeof(most), "%d", DEAD_MAX);
    const char *argv[] = {KEYS_NODES, timeout, most};
    eval(app, SCRIPT_DEAD_NODES, dead_reply, rp, 1, 3, argv);
}

int reaper_reap_self(struct reaper *rp, const char *reason, void (*done)(struct app *app)) {
    struct app *app = rp->app;
    struct job *j = job_new(rp, app->node_id, strlen(app->node_id), reason);
    if (!j)
        return -1;
    j->self = 1;
    j->done = done;
    next_batch(j);
    return 0;
}

struct reaper *reaper_create(struct app *app) {
    struct reaper *rp = calloc(1, sizeof(*rp));
    if (!rp)
        return NULL;
    rp->app = app;
    util_strlcpy(rp->me, app->node_id, sizeof(rp->me));
    return rp;
}

void reaper_destroy(struct reaper *rp) {
    if (!rp)
        return;
    while (rp->jobs) {
        struct job *j = rp->jobs;
        rp->jobs = j->next;
        free(j);
    }
    free(rp);
}
