/* The frontend's Redis command router (frontend/router.h) on the lws loop against real Redis:
 * a single redis-server (pipelined INCRs and a script, in order per key), then a 3+3 Redis
 * Cluster: keys on every master, a slot moved to another master while its keys are in use (no
 * error, nothing lost or doubled, order kept, the new owner learned), a scripts cache flushed
 * under the router (NOSCRIPT followed), and a master killed (its slots fail only until the
 * failover, then commands and scripts work on the promoted replica). A two-key command in a
 * half-migrated slot meets TRYAGAIN and succeeds once the slot has moved. */
#include "log.h"
#include "proc.h"
#include "redis_cluster.h"
#include "redis_loop.h"
#include "redis_server.h"
#include "router.h"
#include "slots.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 20000
#define FAILOVER_LIMIT_MS 15000

/* What the callbacks see: one test's router and its tallies. */
struct world {
    struct lws_context *cx;
    struct lws_vhost *vh;
    struct logger lg;
    struct router *r;
    int ups, downs;
    lws_sorted_usec_list_t sul_wake;

    /* per-key INCR checks: replies must be 1, 2, 3... in order */
    int nkeys;
    char (*keys)[48];
    long long *last;
    long *sent, *answered;
    long outstanding, errors, nulls, disorder;
    char first_error[256];
    long evals_ok, evals_sent, evals_new;
    int evals_first_is_new; /* -1 until the first eval's reply */
    uint64_t seq, *slot_last;
    long misordered;
    void (*on_answer)(struct world *w); /* after each INCR reply, may be NULL */
};

static const struct lws_protocols protocols[] = {
    {RL_PROTOCOL_NAME, rl_protocol_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_up(void *arg) {
    ((struct world *)arg)->ups++;
}

static void on_down(void *arg) {
    ((struct world *)arg)->downs++;
}

static const struct router_ops ops = {on_up, on_down, NULL, NULL, NULL};

/* lws_service sleeps until the next timer: this one keeps the checks of the loop frequent. */
static void wake_cb(lws_sorted_usec_list_t *sul) {
    struct world *w = lws_container_of(sul, struct world, sul_wake);
    lws_sul_schedule(w->cx, 0, &w->sul_wake, wake_cb, 20 * LWS_US_PER_MS);
}

static void world_open(struct world *w, int nkeys) {
    memset(w, 0, sizeof(*w));
    w->lg.program = "test_router";
    w->lg.min = LOG_WARN;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6;
    info.port = CONTEXT_PORT_NO_LISTEN;
    w->cx = lws_create_context(&info);
    assert_non_null(w->cx);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.vhost_name = "internal";
    w->vh = lws_create_vhost(w->cx, &info);
    assert_non_null(w->vh);
    wake_cb(&w->sul_wake);
    w->nkeys = nkeys;
    w->keys = calloc((size_t)nkeys, sizeof(*w->keys));
    w->last = calloc((size_t)nkeys, sizeof(*w->last));
    w->sent = calloc((size_t)nkeys, sizeof(*w->sent));
    w->answered = calloc((size_t)nkeys, sizeof(*w->answered));
    w->slot_last = calloc(SLOTS_COUNT, sizeof(*w->slot_last));
    w->evals_first_is_new = -1;
    assert_true(w->keys && w->last && w->sent && w->answered && w->slot_last);
}

static void world_close(struct world *w) {
    router_destroy(w->r);
    lws_sul_cancel(&w->sul_wake);
    lws_context_destroy(w->cx);
    free(w->keys);
    free(w->last);
    free(w->sent);
    free(w->answered);
    free(w->slot_last);
}

static struct router *open_router(struct world *w, const char *host, int port, int cluster,
                                  const char *nodes) {
    struct router_options o = {
        .host = host,
        .port = port,
        .cluster = cluster,
        .nodes = nodes,
        .connect_timeout_ms = 2000,
        .ping_interval_ms = 1000,
        .ping_timeout_ms = 3000,
        .params = {.stream_maxlen = 1000,
                   .history_size = 10,
                   .history_ttl_ms = 60000,
                   .ack_window_ms = 60000},
    };
    w->r = router_create(w->cx, w->vh, &o, &ops, w, &w->lg);
    assert_non_null(w->r);
    return w->r;
}

/* Runs the loop until done(w) or the deadline; returns done(w). */
static int run_until(struct world *w, int (*done)(struct world *), int ms) {
    int64_t deadline = proc_now_ms() + ms;
    while (!done(w) && proc_remaining_ms(deadline) > 0)
        lws_service(w->cx, 0);
    return done(w);
}

static int is_up(struct world *w) {
    return router_ready(w->r);
}

static int all_answered(struct world *w) {
    return w->outstanding == 0;
}

static void note_error(struct world *w, const char *what) {
    if (!w->first_error[0])
        snprintf(w->first_error, sizeof(w->first_error), "%s", what);
}

/* Every request carries its acceptance number, its key index and its slot in priv, so that
 * the callbacks can check the order promise: per slot, in the order accepted. */
#define EVAL_KEY 1023

static void *tag(struct world *w, int k, const char *key) {
    uint64_t slot = slots_of_key(key, strlen(key));
    return (void *)(intptr_t)((++w->seq << 24) | ((uint64_t)k << 14) | slot);
}

/* Checks the order of the request tagged t; returns its key index. */
static int untag(struct world *w, void *t) {
    uint64_t v = (uint64_t)(intptr_t)t;
    uint64_t seq = v >> 24, slot = v & 0x3fff;
    if (seq <= w->slot_last[slot]) {
        if (!w->misordered++) {
            char msg[128];
            snprintf(msg, sizeof(msg), "slot %u: request %llu answered after %llu", (unsigned)slot,
                     (unsigned long long)seq, (unsigned long long)w->slot_last[slot]);
            note_error(w, msg);
        }
    }
    w->slot_last[slot] = seq;
    return (int)((v >> 14) & 0x3ff);
}

/* An INCR's reply: the key's next value, or counted as an error / unknown outcome. */
static void incr_reply(void *arg, redisReply *reply, void *priv) {
    struct world *w = arg;
    int k = untag(w, priv);
    w->outstanding--;
    w->answered[k]++;
    if (!reply) {
        w->nulls++;
        note_error(w, "NULL reply");
        return;
    }
    if (reply->type != REDIS_REPLY_INTEGER) {
        w->errors++;
        note_error(w, reply->str ? reply->str : "not an integer");
        return;
    }
    if (reply->integer != w->last[k] + 1) {
        if (!w->disorder++) {
            char msg[128];
            snprintf(msg, sizeof(msg), "key %s: %lld after %lld", w->keys[k], reply->integer,
                     w->last[k]);
            note_error(w, msg);
        }
    }
    w->last[k] = reply->integer;
    if (w->on_answer)
        w->on_answer(w);
}

static int send_incr(struct world *w, int k) {
    const char *argv[] = {"INCR", w->keys[k]};
    int rc = router_command(w->r, w->keys[k], incr_reply, tag(w, k, w->keys[k]), 2, argv, NULL);
    if (rc == 0) {
        w->outstanding++;
        w->sent[k]++;
    }
    return rc;
}

/* The heartbeat script's reply: ZADD's count of new members (1 the first time, then 0). */
static void eval_reply(void *arg, redisReply *reply, void *priv) {
    struct world *w = arg;
    untag(w, priv);
    w->outstanding--;
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        if (!w->evals_ok++ && w->evals_first_is_new < 0)
            w->evals_first_is_new = reply->integer == 1;
        w->evals_new += reply->integer;
    } else if (!reply) {
        w->nulls++, note_error(w, "NULL eval reply");
    } else {
        w->errors++, note_error(w, reply->str ? reply->str : "eval: not an integer");
    }
    if (w->on_answer)
        w->on_answer(w);
}

/* The heartbeat script: ZADD key now member. */
static int send_beat(struct world *w, const char *key, const char *member) {
    const char *argv[] = {key, member};
    int rc =
        router_eval(w->r, SCRIPT_HEARTBEAT, eval_reply, tag(w, EVAL_KEY, key), 1, 2, argv, NULL);
    if (rc == 0) {
        w->outstanding++;
        w->evals_sent++;
    }
    return rc;
}

/* ---- single Redis -------------------------------------------------------------------------- */

static void test_single(void **state) {
    (void)state;
    struct redis_server *rs = redis_server_start();
    assert_non_null(rs);
    struct world w;
    world_open(&w, 50);
    open_router(&w, "127.0.0.1", redis_server_port(rs), 0, NULL);
    assert_true(run_until(&w, is_up, WAIT_MS));
    assert_int_equal(w.ups, 1);
    for (int k = 0; k < 50; k++)
        snprintf(w.keys[k], sizeof(w.keys[k]), "single:%d", k);
    int64_t t0 = proc_now_ms();
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k < 50; k++)
            assert_int_equal(send_incr(&w, k), 0);
        for (int b = 0; b < 5; b++) {
            char member[16];
            snprintf(member, sizeof(member), "n%d", b);
            assert_int_equal(send_beat(&w, "single:beats", member), 0);
        }
    }
    assert_true(run_until(&w, all_answered, WAIT_MS));
    fprintf(stderr, "single: 1100 requests answered in %lld ms\n", (long long)(proc_now_ms() - t0));
    if (w.errors || w.nulls || w.disorder || w.misordered)
        fail_msg("single: %ld errors, %ld NULL, %ld values out of order, %ld replies out of "
                 "order: %s",
                 w.errors, w.nulls, w.disorder, w.misordered, w.first_error);
    for (int k = 0; k < 50; k++)
        assert_int_equal(w.last[k], 20);
    assert_int_equal(w.evals_ok, 100);
    assert_int_equal(w.evals_new, 5);
    assert_int_equal(router_redirections(w.r), 0);
    assert_true(router_rtt_us(w.r) > 0);

    redisContext *rc = redis_server_client(rs);
    assert_non_null(rc);
    redisReply *r = redisCommand(rc, "ZCARD single:beats");
    assert_non_null(r);
    assert_int_equal(r->integer, 5);
    freeReplyObject(r);
    redisFree(rc);

    /* Destroyed with requests pending: each callback once, with NULL. */
    w.on_answer = NULL;
    for (int k = 0; k < 50; k++)
        assert_int_equal(send_incr(&w, k), 0);
    assert_int_equal(send_beat(&w, "single:beats", "n0"), 0);
    long nulls0 = w.nulls;
    router_destroy(w.r);
    w.r = NULL;
    assert_int_equal(w.outstanding, 0);
    assert_int_equal(w.nulls - nulls0, 51);
    world_close(&w);
    redis_server_destroy(rs);
}

/* ---- Redis Cluster ------------------------------------------------------------------------- */

struct cluster_state {
    struct redis_cluster *c;
    struct world w;
};

static int cluster_setup(void **state) {
    struct cluster_state *cs = calloc(1, sizeof(*cs));
    if (!cs)
        return -1;
    int64_t t0 = proc_now_ms();
    cs->c = redis_cluster_start(3, 1);
    if (!cs->c) {
        free(cs);
        return -1;
    }
    fprintf(stderr, "cluster ready in %lld ms\n", (long long)(proc_now_ms() - t0));
    *state = cs;
    return 0;
}

static int cluster_teardown(void **state) {
    struct cluster_state *cs = *state;
    redis_cluster_stop(cs->c);
    free(cs);
    return 0;
}

static void expect_clean(struct world *w, const char *phase) {
    if (w->errors || w->nulls || w->disorder || w->misordered)
        fail_msg("%s: %ld errors, %ld NULL, %ld values out of order, %ld replies out of order; "
                 "first: %s",
                 phase, w->errors, w->nulls, w->disorder, w->misordered, w->first_error);
}

static void test_cluster_spread(struct redis_cluster *c, struct world *w) {
    /* 200 hash tags, 5 INCRs each, all at once. */
    int masters[8], hits[8] = {0};
    int nm = redis_cluster_master_ports(c, masters, 8);
    assert_int_equal(nm, 3);
    for (int k = 0; k < 200; k++) {
        snprintf(w->keys[k], sizeof(w->keys[k]), "{tag%d}:n", k);
        int port = redis_cluster_port_of_slot(c, (int)slots_of_key(w->keys[k], strlen(w->keys[k])));
        for (int m = 0; m < nm; m++)
            hits[m] += masters[m] == port;
    }
    for (int m = 0; m < nm; m++)
        assert_true(hits[m] > 0);
    int64_t t0 = proc_now_ms();
    for (int round = 0; round < 5; round++)
        for (int k = 0; k < 200; k++)
            assert_int_equal(send_incr(w, k), 0);
    assert_true(run_until(w, all_answered, WAIT_MS));
    fprintf(stderr, "cluster: 1000 INCRs on 200 tags answered in %lld ms\n",
            (long long)(proc_now_ms() - t0));
    expect_clean(w, "spread");
    for (int k = 0; k < 200; k++)
        assert_int_equal(w->last[k], 5);
    assert_int_equal(router_redirections(w->r), 0);
}

struct mover {
    struct redis_cluster *c;
    int slot, to;
    atomic_int done;
    int rc;
};

static void *mover_run(void *arg) {
    struct mover *m = arg;
    m->rc = redis_cluster_move_slot(m->c, m->slot, m->to);
    m->done = 1;
    return NULL;
}

/* Keys 200..209 share the tag {mv}. While pumping, every answer sends a new request at once
 * (as the frontend does: replies cause commands), so that new requests meet older ones still
 * being redirected. */
#define MV_FIRST 200
#define MV_KEYS 10
#define MV_WINDOW 2000
#define MV_MOVES 3

static int mv_next, mv_pumping;

static void pump_mv(struct world *w) {
    while (mv_pumping && w->outstanding < MV_WINDOW && !w->errors) {
        int k = MV_FIRST + mv_next++ % MV_KEYS;
        if (send_incr(w, k) != 0) {
            w->errors++;
            note_error(w, "router_command refused a request");
            return;
        }
    }
}

static long mv_answered(struct world *w) {
    long n = 0;
    for (int k = MV_FIRST; k < MV_FIRST + MV_KEYS; k++)
        n += w->answered[k];
    return n;
}

static long batch_target;
static int mv_batch_done(struct world *w) {
    return w->outstanding == 0 && mv_answered(w) >= batch_target;
}

/* Moves the slot of {mv} to another master while requests flow; returns the new owner. */
static int move_in_flow(struct redis_cluster *c, struct world *w, int slot) {
    int from = redis_cluster_port_of_slot(c, slot);
    int masters[8], to = -1;
    assert_int_equal(redis_cluster_master_ports(c, masters, 8), 3);
    for (int m = 0; m < 3 && to < 0; m++)
        if (masters[m] != from)
            to = masters[m];
    uint64_t redirs0 = router_redirections(w->r);
    struct mover m = {.c = c, .slot = slot, .to = to};
    pthread_t th;
    mv_pumping = 1;
    pump_mv(w);
    assert_int_equal(pthread_create(&th, NULL, mover_run, &m), 0);
    int64_t deadline = proc_now_ms() + WAIT_MS;
    long at_done = -1, total = 0;
    while (proc_remaining_ms(deadline) > 0 && !w->errors && !w->nulls) {
        lws_service(w->cx, 0);
        total = mv_answered(w);
        if (m.done && at_done < 0)
            at_done = total;
        if (at_done >= 0 && total >= at_done + 4000)
            break;
        pump_mv(w);
    }
    mv_pumping = 0;
    pthread_join(th, NULL);
    assert_true(run_until(w, all_answered, WAIT_MS));
    uint64_t redirs = router_redirections(w->r) - redirs0;
    fprintf(stderr,
            "slot %d moved %d -> %d in the flow: %ld INCRs so far (%ld when the move ended), %llu "
            "redirections\n",
            slot, from, to, total, at_done, (unsigned long long)redirs);
    assert_int_equal(m.rc, 0);
    expect_clean(w, "move");
    assert_true(at_done >= 0 && total >= at_done + 4000);
    assert_true(redirs > 0); /* the requests really met the move */
    return to;
}

static void test_cluster_move(struct redis_cluster *c, struct world *w) {
    for (int k = MV_FIRST; k < MV_FIRST + MV_KEYS; k++)
        snprintf(w->keys[k], sizeof(w->keys[k]), "{mv}:c%d", k - MV_FIRST);
    int slot = (int)slots_of_key("{mv}", 4);
    /* Other keys of the slot, so that a move takes several MIGRATE batches. */
    redisContext *rc = redis_cluster_client(c, redis_cluster_port_of_slot(c, slot));
    assert_non_null(rc);
    for (int i = 0; i < 300; i++) {
        redisReply *r = redisCommand(rc, "SET {mv}:filler%d x", i);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    redisFree(rc);

    int to = -1;
    w->on_answer = pump_mv;
    for (int i = 0; i < MV_MOVES; i++)
        to = move_in_flow(c, w, slot);

    /* Learned: a batch goes straight to the new owner (a refresh answered by a node that had
     * not seen the move yet may cost one more round). */
    int learned = 0;
    for (int round = 0; round < 10 && !learned; round++) {
        uint64_t before = router_redirections(w->r);
        batch_target = mv_answered(w) + 100;
        for (int i = 0; i < 100; i++)
            assert_int_equal(send_incr(w, MV_FIRST + i % MV_KEYS), 0);
        assert_true(run_until(w, mv_batch_done, WAIT_MS));
        learned = router_redirections(w->r) == before;
    }
    w->on_answer = NULL;
    assert_true(learned);
    expect_clean(w, "after the move");

    /* Nothing lost, nothing doubled: Redis holds what the replies said. */
    rc = redis_cluster_client(c, to);
    assert_non_null(rc);
    for (int k = MV_FIRST; k < MV_FIRST + MV_KEYS; k++) {
        redisReply *r = redisCommand(rc, "GET %s", w->keys[k]);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_int_equal(strtoll(r->str, NULL, 10), w->last[k]);
        assert_int_equal(w->last[k], w->sent[k]);
        freeReplyObject(r);
    }
    redisFree(rc);
}

/* The scripts cache of the master of {mv} flushed under the router while evals on one new key
 * with one member flow, each followed by an INCR of the slot: the evals meet NOSCRIPT, the router
 * loads the scripts again and sends them again; the INCRs already sent run first but their
 * replies wait for the evals', and newer requests wait for them. ZADD says which eval ran
 * first: the one accepted first must be the one that added the member. */
#define NS_WINDOW 100
#define NS_EVALS 400
static int ns_pumping;

static void pump_beats(struct world *w) {
    while (ns_pumping && w->outstanding < NS_WINDOW && w->evals_sent < NS_EVALS && !w->errors) {
        if (send_beat(w, "{mv}:beats", "x") != 0 ||
            send_incr(w, MV_FIRST + mv_next++ % MV_KEYS) != 0) {
            w->errors++;
            note_error(w, "the router refused a request");
            return;
        }
    }
}

static void test_cluster_noscript(struct redis_cluster *c, struct world *w) {
    int port = redis_cluster_port_of_slot(c, (int)slots_of_key("{mv}", 4));
    redisContext *rc = redis_cluster_client(c, port);
    assert_non_null(rc);
    redisReply *r = redisCommand(rc, "SCRIPT FLUSH");
    assert_non_null(r);
    freeReplyObject(r);
    redisFree(rc);
    uint64_t before = router_redirections(w->r);
    w->evals_sent = w->evals_ok = w->evals_new = 0;
    w->evals_first_is_new = -1;
    w->on_answer = pump_beats;
    ns_pumping = 1;
    int64_t deadline = proc_now_ms() + WAIT_MS;
    while (proc_remaining_ms(deadline) > 0 && !w->errors && !w->nulls &&
           (w->evals_sent < NS_EVALS || w->outstanding)) {
        pump_beats(w);
        lws_service(w->cx, 0);
    }
    ns_pumping = 0;
    w->on_answer = NULL;
    fprintf(stderr, "noscript: %ld evals answered, %llu redirections\n", w->evals_ok,
            (unsigned long long)(router_redirections(w->r) - before));
    expect_clean(w, "noscript");
    assert_int_equal(w->evals_ok, NS_EVALS);
    assert_true(router_redirections(w->r) > before);
    assert_int_equal(w->evals_new, 1);
    assert_int_equal(w->evals_first_is_new, 1);
}

/* A blocking command on a new connection to port; the reply must be there (caller frees). */
static redisReply *node_cmd(struct redis_cluster *c, int port, const char *fmt, ...) {
    redisContext *rc = redis_cluster_client(c, port);
    assert_non_null(rc);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    if (!r)
        fail_msg("no reply from port %d: %s", port, rc->errstr);
    redisFree(rc);
    return r;
}

static char *node_id(struct redis_cluster *c, int port) {
    redisReply *r = node_cmd(c, port, "CLUSTER MYID");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *id = strdup(r->str);
    freeReplyObject(r);
    return id;
}

struct mget {
    int answered;
    char values[2][8];
    char error[128];
};

static void mget_reply(void *arg, redisReply *reply, void *priv) {
    (void)arg;
    struct mget *m = priv;
    m->answered = 1;
    if (!reply) {
        snprintf(m->error, sizeof(m->error), "NULL reply");
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        snprintf(m->error, sizeof(m->error), "%s", reply->str ? reply->str : "not an array");
    } else {
        for (int i = 0; i < 2; i++)
            snprintf(m->values[i], sizeof(m->values[i]), "%s",
                     reply->element[i]->str ? reply->element[i]->str : "nil");
    }
}

static int tg_redirected;
static int redirected(struct world *w) {
    return router_redirections(w->r) >= (uint64_t)tg_redirected;
}

/* A two-key command in a slot half migrated: the source answers TRYAGAIN (one key is gone, one
 * is not); the router tries again until the slot has moved, then follows the MOVED. */
static void test_cluster_tryagain(struct redis_cluster *c, struct world *w) {
    int slot = (int)slots_of_key("{tg}", 4);
    int from = redis_cluster_port_of_slot(c, slot);
    int masters[8], to = -1;
    assert_int_equal(redis_cluster_master_ports(c, masters, 8), 3);
    for (int m = 0; m < 3 && to < 0; m++)
        if (masters[m] != from)
            to = masters[m];
    redisReply *r = node_cmd(c, from, "MSET {tg}:a 1 {tg}:b 2");
    freeReplyObject(r);
    char *from_id = node_id(c, from), *to_id = node_id(c, to);
    r = node_cmd(c, to, "CLUSTER SETSLOT %d IMPORTING %s", slot, from_id);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = node_cmd(c, from, "CLUSTER SETSLOT %d MIGRATING %s", slot, to_id);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = node_cmd(c, from, "MIGRATE 127.0.0.1 %d {tg}:a 0 5000", to);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    free(from_id);
    free(to_id);

    struct mget m = {0};
    uint64_t before = router_redirections(w->r);
    const char *argv[] = {"MGET", "{tg}:a", "{tg}:b"};
    assert_int_equal(router_command(w->r, "{tg}:a", mget_reply, &m, 3, argv, NULL), 0);
    tg_redirected = (int)before + 1;
    assert_true(run_until(w, redirected, WAIT_MS));
    assert_false(m.answered);
    /* Blocks the loop for the move: the router's next try finds the slot moved. */
    assert_int_equal(redis_cluster_move_slot(c, slot, to), 0);
    int64_t deadline = proc_now_ms() + WAIT_MS;
    while (!m.answered && proc_remaining_ms(deadline) > 0)
        lws_service(w->cx, 0);
    fprintf(stderr, "tryagain: answered after %llu redirections\n",
            (unsigned long long)(router_redirections(w->r) - before));
    assert_true(m.answered);
    if (m.error[0])
        fail_msg("MGET in a moving slot: %s", m.error);
    assert_string_equal(m.values[0], "1");
    assert_string_equal(m.values[1], "2");
    assert_true(router_redirections(w->r) >= before + 2);
}

struct killer {
    struct redis_cluster *c;
    int port;
    atomic_int done;
    atomic_llong done_ms;
    int promoted;
};

static void *killer_run(void *arg) {
    struct killer *k = arg;
    k->promoted = redis_cluster_kill_master(k->c, k->port);
    if (k->promoted == 0)
        k->promoted = redis_cluster_wait_failover(k->c, k->port, FAILOVER_LIMIT_MS);
    k->done_ms = proc_now_ms();
    k->done = 1;
    return NULL;
}

/* Failover: requests on the killed master's slot (INCR on {fo}:c and the heartbeat script on
 * {fo}:beats) are refused or fail only until the failover, and succeed within 15 s after it. */
static void fo_reply(void *arg, redisReply *reply, void *priv);

struct fo {
    struct world *w;
    int64_t kill_ms, last_fail_ms, first_ok_after_ms;
    long ok, failed, refused, bad;
    long ok_evals_after;
    int outstanding;
    char bad_error[256];
    atomic_int *killed_done;
    atomic_llong *done_ms;
};

static struct fo fo;

static void fo_reply(void *arg, redisReply *reply, void *priv) {
    (void)arg;
    int is_eval = priv != NULL;
    fo.outstanding--;
    int64_t now = proc_now_ms();
    int good = reply && (reply->type == REDIS_REPLY_INTEGER);
    if (good) {
        fo.ok++;
        if (*fo.killed_done && !fo.first_ok_after_ms)
            fo.first_ok_after_ms = now;
        if (*fo.killed_done && is_eval)
            fo.ok_evals_after++;
        return;
    }
    fo.failed++;
    fo.last_fail_ms = now;
    if (reply &&
        !(reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "CLUSTERDOWN", 11) == 0)) {
        if (!fo.bad++)
            snprintf(fo.bad_error, sizeof(fo.bad_error), "%s",
                     reply->str ? reply->str : "unexpected reply type");
    }
}

static void fo_send(struct world *w, int is_eval) {
    int rc;
    if (is_eval) {
        const char *argv[] = {"{fo}:beats", "x"};
        rc = router_eval(w->r, SCRIPT_HEARTBEAT, fo_reply, (void *)1, 1, 2, argv, NULL);
    } else {
        const char *argv[] = {"INCR", "{fo}:c"};
        rc = router_command(w->r, "{fo}:c", fo_reply, NULL, 2, argv, NULL);
    }
    if (rc == 0) {
        fo.outstanding++;
    } else {
        fo.refused++;
        fo.last_fail_ms = proc_now_ms();
    }
}

static void test_cluster_failover(struct redis_cluster *c, struct world *w) {
    int slot = (int)slots_of_key("{fo}", 4);
    int port = redis_cluster_port_of_slot(c, slot);
    assert_true(port > 0);
    struct killer k = {.c = c, .port = port};
    memset(&fo, 0, sizeof(fo));
    fo.w = w;
    fo.killed_done = &k.done;
    fo.done_ms = &k.done_ms;
    /* Traffic flows before the kill. */
    for (int i = 0; i < 20; i++)
        fo_send(w, i % 2);
    int64_t deadline = proc_now_ms() + WAIT_MS;
    while (fo.outstanding && proc_remaining_ms(deadline) > 0)
        lws_service(w->cx, 0);
    assert_int_equal(fo.ok, 20);
    uint64_t drops0 = router_drops(w->r);

    fo.kill_ms = proc_now_ms();
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, killer_run, &k), 0);
    deadline = proc_now_ms() + FAILOVER_LIMIT_MS + 20000;
    int64_t last_send = 0;
    while (proc_remaining_ms(deadline) > 0) {
        lws_service(w->cx, 0);
        int64_t now = proc_now_ms();
        if (k.done && fo.ok_evals_after >= 20 && fo.first_ok_after_ms &&
            now - fo.first_ok_after_ms > 500)
            break;
        if (k.done && k.promoted < 0)
            break;
        /* A request of each kind every 10 ms, up to 16 in flight. */
        if (now - last_send >= 10 && fo.outstanding < 16) {
            fo_send(w, 0);
            fo_send(w, 1);
            last_send = now;
        }
    }
    pthread_join(th, NULL);
    deadline = proc_now_ms() + WAIT_MS;
    while (fo.outstanding && proc_remaining_ms(deadline) > 0)
        lws_service(w->cx, 0);
    fprintf(stderr,
            "master %d killed, %d promoted after %lld ms; %ld ok, %ld failed, %ld refused; last "
            "failure %lld ms after the failover, first success %lld ms after it\n",
            port, k.promoted, (long long)(k.done_ms - fo.kill_ms), fo.ok, fo.failed, fo.refused,
            (long long)(fo.last_fail_ms - k.done_ms),
            (long long)(fo.first_ok_after_ms - k.done_ms));
    assert_true(k.promoted > 0);
    if (fo.bad)
        fail_msg("failover: %ld unexpected errors, first: %s", fo.bad, fo.bad_error);
    assert_true(fo.failed + fo.refused > 0); /* the kill was felt */
    assert_true(fo.last_fail_ms >= fo.kill_ms);
    assert_true(fo.last_fail_ms < k.done_ms + FAILOVER_LIMIT_MS);
    assert_true(fo.first_ok_after_ms > 0 && fo.first_ok_after_ms < k.done_ms + FAILOVER_LIMIT_MS);
    assert_true(fo.ok_evals_after >= 20);
    assert_true(fo.outstanding == 0);
    assert_true(router_drops(w->r) > drops0);
    assert_true(run_until(w, is_up, WAIT_MS));
}

static void test_cluster(void **state) {
    struct cluster_state *cs = *state;
    struct redis_cluster *c = cs->c;
    struct world *w = &cs->w;
    world_open(w, 256);
    /* Seeds: a port nobody listens on, then one node; the rest is learned from CLUSTER SLOTS. */
    char nodes[64];
    snprintf(nodes, sizeof(nodes), "127.0.0.1:%d", redis_cluster_port(c, 0));
    open_router(w, "127.0.0.1", proc_free_port(), 1, nodes);
    int64_t t0 = proc_now_ms();
    assert_true(run_until(w, is_up, WAIT_MS));
    fprintf(stderr, "router up on the cluster in %lld ms\n", (long long)(proc_now_ms() - t0));
    test_cluster_spread(c, w);
    test_cluster_move(c, w);
    test_cluster_noscript(c, w);
    test_cluster_tryagain(c, w);
    test_cluster_failover(c, w);

    /* Destroyed with requests pending: each callback once, with NULL. */
    w->on_answer = NULL;
    for (int k = 0; k < 200; k++)
        assert_int_equal(send_incr(w, k), 0);
    long nulls0 = w->nulls;
    router_destroy(w->r);
    w->r = NULL;
    assert_int_equal(w->outstanding, 0);
    assert_int_equal(w->nulls - nulls0, 200);
    world_close(w);
}

/* ---- a one-node cluster going down and up ---------------------------------------------------- */

/* Requests answered CLUSTERDOWN (here: the node serves no slot for a while, as during a
 * failover) are sent again until the cluster serves them, in order per key. */
static void test_cluster_down_waits(void **state) {
    (void)state;
    struct redis_server_options o = {.slotted = 1};
    struct redis_server *rs = redis_server_start_opts(&o);
    assert_non_null(rs);
    redisContext *admin = redis_server_client(rs);
    assert_non_null(admin);
    struct world w;
    world_open(&w, 20);
    open_router(&w, "127.0.0.1", redis_server_port(rs), 1, NULL);
    assert_true(run_until(&w, is_up, WAIT_MS));
    for (int k = 0; k < 20; k++)
        snprintf(w.keys[k], sizeof(w.keys[k]), "down:%d", k);
    redisReply *del = redisCommand(admin, "CLUSTER DELSLOTSRANGE 0 16383");
    assert_non_null(del);
    assert_int_equal(del->type, REDIS_REPLY_STATUS);
    freeReplyObject(del);
    uint64_t redirections0 = router_redirections(w.r);
    for (int round = 0; round < 5; round++)
        for (int k = 0; k < 20; k++)
            assert_int_equal(send_incr(&w, k), 0);
    /* down for a while: nothing answered meanwhile */
    int64_t until = proc_now_ms() + 400;
    while (proc_remaining_ms(until) > 0)
        lws_service(w.cx, 0);
    assert_int_equal(w.outstanding, 100);
    assert_true(router_redirections(w.r) > redirections0);
    redisReply *add = redisCommand(admin, "CLUSTER ADDSLOTSRANGE 0 16383");
    assert_non_null(add);
    assert_int_equal(add->type, REDIS_REPLY_STATUS);
    freeReplyObject(add);
    assert_true(run_until(&w, all_answered, WAIT_MS));
    if (w.errors || w.nulls || w.disorder || w.misordered)
        fail_msg("%ld errors, %ld nulls, %ld out of order; first: %s", w.errors, w.nulls,
                 w.disorder + w.misordered, w.first_error);
    for (int k = 0; k < 20; k++)
        assert_int_equal(w.last[k], 5);
    redisFree(admin);
    world_close(&w);
    redis_server_destroy(rs);
}

int main(void) {
    const struct CMUnitTest single[] = {cmocka_unit_test(test_single),
                                        cmocka_unit_test(test_cluster_down_waits)};
    const struct CMUnitTest cluster[] = {cmocka_unit_test(test_cluster)};
    int rc = cmocka_run_group_tests_name("router_single", single, NULL, NULL);
    rc |= cmocka_run_group_tests_name("router_cluster", cluster, cluster_setup, cluster_teardown);
    return rc;
}
