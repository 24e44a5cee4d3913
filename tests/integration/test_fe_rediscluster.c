/*
 * test_fe_rediscluster.c - the frontends on a Redis Cluster of 3 masters and 3 replicas (the
 * harness's RRM_TEST_REDIS_MODE=cluster, set by CTest): what only a cluster shows.
 *  - spread: rooms of every shard land on every master (room keys and shard channels on each),
 *    and no command or script was refused for naming keys of several slots (CROSSSLOT);
 *  - resharding: the slot of a busy room's shard moves to another master while a member sends;
 *    the others receive every message once, in order, with the seq its sender was acknowledged;
 *  - failover: the master of a busy room's shard is SIGKILLed while a member sends; its replica
 *    is promoted, relay and membership resume within 15 s of the promotion, and every message
 *    acknowledged reached every other member once, in order.
 * The blocking cluster operations run on a thread while this thread drives the clients.
 */
#include "fe_harness.h"
#include "keys.h"
#include "proc.h"
#include "redis_cluster.h"
#include "slots.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS
#define RESUME_LIMIT_MS 15000
#define MAX_MSGS 4000

static int setup(void **state) {
    static const char *const env[] = {"RRM_MAX_MSGS_PER_SEC=100000", NULL};
    struct fe_cluster *c = fe_cluster_start(2, env);
    *state = c;
    return c ? 0 : -1;
}

/* The cluster's master ports (asserted 3). */
static int masters(struct fe_cluster *c, int ports[3]) {
    int n = redis_cluster_master_ports(fe_redis_cluster(c), ports, 3);
    assert_int_equal(n, 3);
    return n;
}

static redisReply *on_master(struct fe_cluster *c, int port, const char *fmt, ...) {
    redisContext *r = redis_cluster_client(fe_redis_cluster(c), port);
    assert_non_null(r);
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(r, fmt, ap);
    va_end(ap);
    redisFree(r);
    assert_non_null(reply);
    return reply;
}

static void test_spread(void **state) {
    struct fe_cluster *c = *state;
    enum { ROOMS = 32 };
    struct wsc *a[ROOMS], *b[ROOMS];
    char room[ROOMS][16];
    for (int i = 0; i < ROOMS; i++) {
        char da[24], db[24];
        snprintf(room[i], sizeof(room[i]), "spread-%02d", i);
        snprintf(da, sizeof(da), "sp-a%02d", i);
        snprintf(db, sizeof(db), "sp-b%02d", i);
        a[i] = fe_join(c, 0, da, NULL, room[i], NULL);
        b[i] = fe_join(c, 1, db, NULL, room[i], NULL);
        assert_non_null(a[i]);
        assert_non_null(b[i]);
    }
    for (int i = 0; i < ROOMS; i++) {
        char da[24];
        snprintf(da, sizeof(da), "sp-a%02d", i);
        fe_send_text(a[i], "hello");
        fe_expect_text(b[i], da, room[i], "hello");
        json_t *q = fe_query_room(a[i], T);
        assert_non_null(q);
        assert_int_equal(json_integer_value(json_object_get(q, "total_clients")), 2);
        json_decref(q);
    }
    int ports[3];
    masters(c, ports);
    for (int m = 0; m < 3; m++) {
        /* room keys and archive streams */
        redisReply *keys = on_master(c, ports[m], "KEYS rrm:room:{*");
        assert_int_equal(keys->type, REDIS_REPLY_ARRAY);
        size_t nroom = keys->elements;
        freeReplyObject(keys);
        redisReply *ev = on_master(c, ports[m], "KEYS rrm:events:{*");
        size_t nev = ev->elements;
        freeReplyObject(ev);
        /* the rooms' channels, subscribed on their own master */
        redisReply *ch = on_master(c, ports[m], "PUBSUB SHARDCHANNELS rrm:room:*");
        assert_int_equal(ch->type, REDIS_REPLY_ARRAY);
        size_t nch = ch->elements;
        for (size_t k = 0; k < ch->elements; k++) {
            int slot = (int)slots_of_key(ch->element[k]->str, ch->element[k]->len);
            assert_int_equal(redis_cluster_port_of_slot(fe_redis_cluster(c), slot), ports[m]);
        }
        freeReplyObject(ch);
        /* nothing refused for keys of several slots, ever */
        redisReply *st = on_master(c, ports[m], "INFO errorstats");
        assert_int_equal(st->type, REDIS_REPLY_STRING);
        int crossslot = strstr(st->str, "CROSSSLOT") != NULL;
        if (crossslot)
            print_error("master %d: %s\n", ports[m], st->str);
        freeReplyObject(st);
        print_message("master %d: %zu room keys, %zu event streams, %zu room channels\n", ports[m],
                      nroom, nev, nch);
        assert_false(crossslot);
        assert_true(nroom > 0);
        assert_true(nev > 0);
        assert_true(nch > 0);
    }
}

/* ---- a busy room under a cluster operation -------------------------------------------------- */

struct flow {
    struct fe_cluster *c;
    const char *room;
    struct wsc *tx;    /* sends "m-<k>" with ack_id "m-<k>" */
    struct wsc *rx[2]; /* the other members, one per node */
    int sent;
    int64_t sent_ms[MAX_MSGS];
    long long acked_seq[MAX_MSGS]; /* 0: not acknowledged */
    int refused;                   /* error frames the sender got */
    long long rx_seq[2][MAX_MSGS]; /* seq each receiver got message k with (0: none) */
    long long rx_last[2];
    int rx_count[2];
    long problems;
    char first[256];
};

static void flow_problem(struct flow *f, const char *fmt, ...) CMOCKA_PRINTF_ATTRIBUTE(2, 3);
static void flow_problem(struct flow *f, const char *fmt, ...) {
    if (!f->problems++) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->first, sizeof(f->first), fmt, ap);
        va_end(ap);
    }
}

static void flow_send(struct flow *f) {
    if (f->sent >= MAX_MSGS)
        return;
    char id[16];
    f->sent_ms[f->sent] = proc_now_ms();
    snprintf(id, sizeof(id), "m-%d", f->sent++);
    assert_int_equal(fe_send_json(f->tx, json_pack("{s:s, s:s, s:s}", "type", "text", "content", id,
                                                   "ack_id", id)),
                     0);
}

static int msg_no(const char *s) {
    return s && strncmp(s, "m-", 2) == 0 ? atoi(s + 2) : -1;
}

/* Reads whatever has arrived at the sender (acks, errors) and the receivers (relays). */
static void flow_pump(struct flow *f, int wait_ms) {
    struct wsc_msg m;
    while (wsc_recv(f->tx, &m, 0) == 0) {
        json_t *j = m.opcode == WSC_OP_TEXT ? json_loadb(m.data, m.len, 0, NULL) : NULL;
        const char *type = j ? fe_str(j, "type") : NULL;
        if (type && strcmp(type, "ack") == 0) {
            int k = msg_no(fe_str(j, "ack_id"));
            if (k >= 0 && k < MAX_MSGS)
                f->acked_seq[k] = json_integer_value(json_object_get(j, "seq"));
        } else if (type && strcmp(type, "error") == 0) {
            f->refused++;
        } else if (!type || (strcmp(type, "room") != 0 && strcmp(type, "text") != 0)) {
            flow_problem(f, "sender got %.*s", (int)m.len, m.data);
        }
        json_decref(j);
        wsc_msg_free(&m);
    }
    for (int r = 0; r < 2; r++) {
        int first = 1;
        while (wsc_recv(f->rx[r], &m, first ? wait_ms : 0) == 0) {
            first = 0;
            json_t *j = m.opcode == WSC_OP_TEXT ? json_loadb(m.data, m.len, 0, NULL) : NULL;
            const char *type = j ? fe_str(j, "type") : NULL;
            if (type && strcmp(type, "text") == 0) {
                int k = msg_no(fe_str(j, "content"));
                long long seq = json_integer_value(json_object_get(j, "seq"));
                if (k < 0 || k >= MAX_MSGS)
                    flow_problem(f, "receiver %d got %.*s", r, (int)m.len, m.data);
                else if (f->rx_seq[r][k])
                    flow_problem(f, "receiver %d got m-%d twice", r, k);
                else if (seq <= f->rx_last[r])
                    flow_problem(f, "receiver %d got seq %lld after %lld", r, seq, f->rx_last[r]);
                else {
                    f->rx_seq[r][k] = seq;
                    f->rx_last[r] = seq;
                    f->rx_count[r]++;
                }
            } else if (!type || strcmp(type, "room") != 0) {
                /* "room" frames: a member told its room's numbering went on (restored) */
                flow_problem(f, "receiver %d got %.*s", r, (int)m.len, m.data);
            }
            json_decref(j);
            wsc_msg_free(&m);
        }
    }
}

/* Every acknowledged message reached both receivers, with its seq. */
static int flow_complete(const struct flow *f) {
    for (int k = 0; k < f->sent; k++)
        if (f->acked_seq[k])
            for (int r = 0; r < 2; r++)
                if (f->rx_seq[r][k] != f->acked_seq[k])
                    return 0;
    return 1;
}

static int acked_count(const struct flow *f) {
    int n = 0;
    for (int k = 0; k < f->sent; k++)
        n += f->acked_seq[k] != 0;
    return n;
}

static void flow_open(struct flow *f, struct fe_cluster *c, const char *room) {
    memset(f, 0, sizeof(*f));
    f->c = c;
    f->room = room;
    f->tx = fe_join(c, 0, "busy-tx", NULL, room, NULL);
    f->rx[0] = fe_join(c, 1, "busy-rx1", NULL, room, NULL);
    f->rx[1] = fe_join(c, 0, "busy-rx0", NULL, room, NULL);
    assert_non_null(f->tx);
    assert_non_null(f->rx[0]);
    assert_non_null(f->rx[1]);
}

/* Sends every 10 ms and reads meanwhile until *done and at least min_after more were sent. */
static void flow_run(struct flow *f, atomic_int *done, int min_after, int64_t limit_ms) {
    int64_t deadline = proc_now_ms() + limit_ms, last = 0;
    int after = -1;
    while (proc_remaining_ms(deadline) > 0) {
        if (atomic_load(done) && after < 0)
            after = f->sent;
        if (after >= 0 && f->sent - after >= min_after)
            break;
        int64_t now = proc_now_ms();
        if (now - last >= 10) {
            flow_send(f);
            last = now;
        }
        flow_pump(f, 2);
    }
    assert_true(atomic_load(done));
}

/* Waits until every acknowledged message arrived everywhere (and every send was answered). */
static void flow_settle(struct flow *f) {
    int64_t deadline = proc_now_ms() + T;
    while (!(flow_complete(f) && acked_count(f) + f->refused >= f->sent) &&
           proc_remaining_ms(deadline) > 0)
        flow_pump(f, 10);
    print_message("%d sent, %d acknowledged, %d refused; received %d and %d\n", f->sent,
                  acked_count(f), f->refused, f->rx_count[0], f->rx_count[1]);
    if (f->problems)
        fail_msg("%ld problems, first: %s", f->problems, f->first);
    assert_true(flow_complete(f));
}

struct op {
    struct redis_cluster *rcl;
    int slot, from, to;
    int rc;
    int64_t done_ms;
    atomic_int done;
};

static void *mover(void *arg) {
    struct op *o = arg;
    o->rc = redis_cluster_move_slot(o->rcl, o->slot, o->to);
    o->done_ms = proc_now_ms();
    atomic_store(&o->done, 1);
    return NULL;
}

static void *killer(void *arg) {
    struct op *o = arg;
    o->rc = redis_cluster_kill_master(o->rcl, o->from);
    if (o->rc == 0)
        o->rc = redis_cluster_wait_failover(o->rcl, o->from, 30000);
    o->done_ms = proc_now_ms();
    atomic_store(&o->done, 1);
    return NULL;
}

/* The slot of room's keys (its shard's tag) and its master now. */
static int room_slot(struct fe_cluster *c, const char *room, int *port) {
    char num[16];
    snprintf(num, sizeof(num), "%u", keys_room_shard(room, FE_EVENT_SHARDS));
    int slot = (int)slots_of_key(num, strlen(num));
    *port = redis_cluster_port_of_slot(fe_redis_cluster(c), slot);
    assert_true(*port > 0);
    return slot;
}

static void test_reshard_busy_room(void **state) {
    struct fe_cluster *c = *state;
    static struct flow f;
    const char *room = "busy-move";
    flow_open(&f, c, room);
    struct op o = {.rcl = fe_redis_cluster(c)};
    o.slot = room_slot(c, room, &o.from);
    int ports[3];
    masters(c, ports);
    o.to = ports[0] == o.from ? ports[1] : ports[0];
    for (int i = 0; i < 20; i++) { /* traffic flows before the move */
        flow_send(&f);
        flow_pump(&f, 5);
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, mover, &o), 0);
    flow_run(&f, &o.done, 50, 60000);
    pthread_join(th, NULL);
    assert_int_equal(o.rc, 0);
    assert_int_equal(redis_cluster_port_of_slot(fe_redis_cluster(c), o.slot), o.to);
    flow_settle(&f);
    /* nothing was refused: a moving slot is followed, not failed */
    assert_int_equal(f.refused, 0);
    assert_int_equal(acked_count(&f), f.sent);
    /* the room lives on the new master now */
    redisReply *e = on_master(c, o.to, "EXISTS %s", fe_room_key(room, ":members"));
    assert_int_equal(e->integer, 1);
    freeReplyObject(e);
}

static void test_failover_busy_room(void **state) {
    struct fe_cluster *c = *state;
    static struct flow f;
    const char *room = "busy-kill";
    flow_open(&f, c, room);
    struct op o = {.rcl = fe_redis_cluster(c)};
    o.slot = room_slot(c, room, &o.from);
    for (int i = 0; i < 20; i++) {
        flow_send(&f);
        flow_pump(&f, 5);
    }
    int64_t kill_ms = proc_now_ms();
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, killer, &o), 0);
    /* sends go on through the failover, then until 100 more were sent */
    flow_run(&f, &o.done, 100, 60000);
    pthread_join(th, NULL);
    assert_true(o.rc > 0);
    int promoted_at = (int)(o.done_ms - kill_ms);
    /* relay resumed: a message sent after the promotion reached both others within the limit */
    int64_t deadline = o.done_ms + RESUME_LIMIT_MS;
    int64_t resumed_ms = 0;
    while (!resumed_ms && proc_remaining_ms(deadline) > 0) {
        flow_pump(&f, 10);
        for (int k = 0; k < f.sent && !resumed_ms; k++)
            if (f.sent_ms[k] >= o.done_ms && f.acked_seq[k] && f.rx_seq[0][k] && f.rx_seq[1][k])
                resumed_ms = proc_now_ms();
        if (!resumed_ms)
            flow_send(&f);
    }
    print_message("master %d killed; promoted after %d ms; relay resumed %lld ms after that\n",
                  o.from, promoted_at, resumed_ms ? (long long)(resumed_ms - o.done_ms) : -1LL);
    assert_true(resumed_ms > 0);
    flow_settle(&f);
    /* membership: a new member joins through the other node and is relayed to and from */
    struct wsc *n = fe_join(c, 1, "busy-new", NULL, room, NULL);
    assert_non_null(n);
    json_t *q = fe_query_room(n, T);
    assert_non_null(q);
    assert_int_equal(json_integer_value(json_object_get(q, "total_clients")), 4);
    json_decref(q);
    fe_send_text(n, "after");
    fe_expect_text(f.rx[0], "busy-new", room, "after");
    fe_expect_text(f.rx[1], "busy-new", room, "after");
    fe_send_text(f.rx[1], "welcome");
    fe_expect_text(n, "busy-rx0", room, "welcome");
}

int main(void) {
    if (!fe_redis_mode_is("cluster")) {
        fprintf(stderr, "test_fe_rediscluster runs with RRM_TEST_REDIS_MODE=cluster (ctest)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spread, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_reshard_busy_room, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_failover_busy_room, setup, fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
