/* The test Redis Cluster (tests/support/redis_cluster.h) against real redis-server nodes: 3
 * masters and 3 replicas start and answer; keys go to the master of their slot and other
 * masters redirect with MOVED; hash tags spread over every master; a slot moves with its keys
 * while a client keeps writing to it; a killed master's replica takes over its slots and keys,
 * and the killed node comes back as a replica. The tests run in order on one cluster. */
#include "proc.h"
#include "redis_cluster.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MASTERS 3
#define REPLICAS 1
#define FAILOVER_LIMIT_MS 15000
#define WAIT_MS 10000

/* A command on a new connection to port; the reply must be there (caller frees). */
static redisReply *cmd(struct redis_cluster *c, int port, const char *fmt, ...) {
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

static void expect_reply_status(redisReply *r, const char *status) {
    if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, status) != 0)
        fail_msg("expected %s, got type %d: %s", status, r->type, r->str ? r->str : "");
    freeReplyObject(r);
}

static void expect_value_of(redisReply *r, const char *value) {
    if (r->type != REDIS_REPLY_STRING || strcmp(r->str, value) != 0)
        fail_msg("expected \"%s\", got type %d: %s", value, r->type, r->str ? r->str : "");
    freeReplyObject(r);
}

/* The reply must be "MOVED <slot> 127.0.0.1:<port>". */
static void expect_moved(redisReply *r, int slot, int port) {
    int s = -1, p = -1;
    if (r->type != REDIS_REPLY_ERROR || sscanf(r->str, "MOVED %d 127.0.0.1:%d", &s, &p) != 2 ||
        s != slot || p != port)
        fail_msg("expected MOVED %d 127.0.0.1:%d, got type %d: %s", slot, port, r->type,
                 r->str ? r->str : "");
    freeReplyObject(r);
}

static int slot_of(struct redis_cluster *c, const char *key) {
    int slot = redis_cluster_key_slot(c, key);
    assert_in_range(slot, 0, REDIS_CLUSTER_SLOTS - 1);
    return slot;
}

/* The slot's master, and one other master. */
static int owner_of(struct redis_cluster *c, int slot) {
    int port = redis_cluster_port_of_slot(c, slot);
    assert_true(port > 0);
    return port;
}

static int other_master(struct redis_cluster *c, int not_port) {
    int masters[8];
    int n = redis_cluster_master_ports(c, masters, 8);
    assert_int_equal(n, MASTERS);
    for (int i = 0; i < n; i++)
        if (masters[i] != not_port)
            return masters[i];
    fail_msg("no master other than %d", not_port);
    return -1;
}

static int group_setup(void **state) {
    int64_t t0 = proc_now_ms();
    struct redis_cluster *c = redis_cluster_start(MASTERS, REPLICAS);
    if (!c)
        return -1;
    fprintf(stderr, "cluster of %d nodes ready in %lld ms\n", redis_cluster_nodes(c),
            (long long)(proc_now_ms() - t0));
    *state = c;
    return 0;
}

static int group_teardown(void **state) {
    redis_cluster_stop(*state);
    return 0;
}

static void test_started(void **state) {
    struct redis_cluster *c = *state;
    assert_int_equal(redis_cluster_nodes(c), MASTERS * (1 + REPLICAS));
    for (int i = 0; i < redis_cluster_nodes(c); i++) {
        int port = redis_cluster_port(c, i);
        /* Below the ephemeral range, so that the bus port fits too. */
        assert_in_range(port, 1024, 55535);
        assert_true(redis_cluster_pid(c, port) > 0);
        redisReply *r = cmd(c, port, "CONFIG GET maxmemory-policy");
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 2);
        assert_string_equal(r->element[1]->str, "noeviction");
        freeReplyObject(r);
    }
    int masters[8];
    int n = redis_cluster_master_ports(c, masters, 8);
    if (n != MASTERS) {
        for (int i = 0; i < redis_cluster_nodes(c); i++) {
            redisReply *r = cmd(c, redis_cluster_port(c, i), "CLUSTER NODES");
            fprintf(stderr, "node %d port %d:\n%s\n", i, redis_cluster_port(c, i), r->str);
            freeReplyObject(r);
        }
    }
    assert_int_equal(n, MASTERS);
}

static void test_write_read(void **state) {
    struct redis_cluster *c = *state;
    const char *key = "{room:a}:state";
    int port = owner_of(c, slot_of(c, key));
    expect_reply_status(cmd(c, port, "SET %s %s", key, "hello"), "OK");
    expect_value_of(cmd(c, port, "GET %s", key), "hello");
}

static void test_wrong_master_moves(void **state) {
    struct redis_cluster *c = *state;
    const char *key = "{room:b}:state";
    int slot = slot_of(c, key);
    int port = owner_of(c, slot);
    int other = other_master(c, port);
    expect_moved(cmd(c, other, "SET %s %s", key, "x"), slot, port);
    expect_moved(cmd(c, other, "GET %s", key), slot, port);
}

static void test_tags_spread(void **state) {
    struct redis_cluster *c = *state;
    int masters[MASTERS], count[MASTERS] = {0};
    assert_int_equal(redis_cluster_master_ports(c, masters, MASTERS), MASTERS);
    for (int i = 0; i < 100; i++) {
        char key[64];
        snprintf(key, sizeof(key), "{tag-%d}:k", i);
        int port = owner_of(c, slot_of(c, key));
        expect_reply_status(cmd(c, port, "SET %s %d", key, i), "OK");
        int m = 0;
        while (m < MASTERS && masters[m] != port)
            m++;
        assert_true(m < MASTERS);
        count[m]++;
    }
    for (int m = 0; m < MASTERS; m++) {
        assert_true(count[m] > 0);
        redisReply *r = cmd(c, masters[m], "DBSIZE");
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_true(r->integer >= count[m]);
        freeReplyObject(r);
    }
}

/* A client that INCRs one key as fast as it can, following MOVED and ASK like a cluster client,
 * and counts the increments Redis acknowledged. */
struct writer {
    struct redis_cluster *c;
    const char *key;
    int port;
    atomic_int stop;
    atomic_llong acked;
    atomic_int failed; /* error holds why, readable after the join */
    int asks, moves;
    char error[256];
};

static void *writer_run(void *arg) {
    struct writer *w = arg;
    redisContext *rc = redis_cluster_client(w->c, w->port);
    while (rc && !w->stop) {
        redisReply *r = redisCommand(rc, "INCR %s", w->key);
        int slot, port = 0;
        if (r && r->type == REDIS_REPLY_ERROR &&
            sscanf(r->str, "ASK %d 127.0.0.1:%d", &slot, &port) == 2) {
            w->asks++;
            redisContext *ask = redis_cluster_client(w->c, port);
            freeReplyObject(r);
            r = NULL;
            if (ask) {
                redisReply *a = redisCommand(ask, "ASKING");
                if (a)
                    freeReplyObject(a);
                r = redisCommand(ask, "INCR %s", w->key);
                redisFree(ask);
            }
        } else if (r && r->type == REDIS_REPLY_ERROR &&
                   sscanf(r->str, "MOVED %d 127.0.0.1:%d", &slot, &port) == 2) {
            w->moves++;
            freeReplyObject(r);
            redisFree(rc);
            w->port = port;
            rc = redis_cluster_client(w->c, port);
            continue;
        }
        if (!r || r->type != REDIS_REPLY_INTEGER) {
            snprintf(w->error, sizeof(w->error), "INCR: %s",
                     r ? (r->str ? r->str : "bad reply") : rc->errstr);
            if (r)
                freeReplyObject(r);
            break;
        }
        w->acked++;
        freeReplyObject(r);
    }
    if (!rc)
        snprintf(w->error, sizeof(w->error), "cannot connect to port %d", w->port);
    if (rc)
        redisFree(rc);
    if (w->error[0])
        w->failed = 1;
    return NULL;
}

static void test_move_slot(void **state) {
    struct redis_cluster *c = *state;
    const int nkeys = 250; /* more than one GETKEYSINSLOT batch */
    const char *counter = "{busy-room}:counter";
    int slot = slot_of(c, counter);
    int from = owner_of(c, slot);
    int to = other_master(c, from);
    for (int i = 0; i < nkeys; i++)
        expect_reply_status(cmd(c, from, "SET {busy-room}:%d v%d", i, i), "OK");

    struct writer w = {.c = c, .key = counter, .port = from};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_run, &w), 0);
    int64_t t0 = proc_now_ms();
    int r = redis_cluster_move_slot(c, slot, to);
    int64_t took = proc_now_ms() - t0;
    /* Some traffic after the move too, through the redirection. */
    long long at_move = w.acked;
    int64_t deadline = proc_now_ms() + WAIT_MS;
    while (w.acked < at_move + 100 && !w.failed && proc_remaining_ms(deadline) > 0)
        poll(NULL, 0, 10);
    w.stop = 1;
    pthread_join(th, NULL);
    fprintf(stderr, "slot %d moved %d -> %d in %lld ms; %lld INCRs, %d ASK, %d MOVED\n", slot, from,
            to, (long long)took, (long long)w.acked, w.asks, w.moves);
    assert_int_equal(r, 0);
    if (w.error[0])
        fail_msg("writer: %s", w.error);
    assert_true(w.acked >= at_move + 100);
    assert_true(w.moves >= 1);

    assert_int_equal(redis_cluster_port_of_slot(c, slot), to);
    expect_moved(cmd(c, from, "GET {busy-room}:0"), slot, to);
    for (int i = 0; i < nkeys; i++) {
        char value[32];
        snprintf(value, sizeof(value), "v%d", i);
        expect_value_of(cmd(c, to, "GET {busy-room}:%d", i), value);
    }
    /* Every acknowledged increment, once. */
    redisReply *rr = cmd(c, to, "GET %s", counter);
    assert_int_equal(rr->type, REDIS_REPLY_STRING);
    assert_int_equal(strtoll(rr->str, NULL, 10), w.acked);
    freeReplyObject(rr);
    rr = cmd(c, from, "CLUSTER COUNTKEYSINSLOT %d", slot);
    assert_int_equal(rr->integer, 0);
    freeReplyObject(rr);
    rr = cmd(c, to, "CLUSTER COUNTKEYSINSLOT %d", slot);
    assert_int_equal(rr->integer, nkeys + 1);
    freeReplyObject(rr);
}

static void test_failover(void **state) {
    struct redis_cluster *c = *state;
    const char *probe = "{doomed}:0";
    int slot = slot_of(c, probe);
    int dead = owner_of(c, slot);
    for (int i = 0; i < 20; i++)
        expect_reply_status(cmd(c, dead, "SET {doomed}:%d v%d", i, i), "OK");
    /* The replica has every key before the kill. */
    redisContext *rc = redis_cluster_client(c, dead);
    assert_non_null(rc);
    int64_t deadline = proc_now_ms() + WAIT_MS;
    long long acks = 0;
    while (acks < 1 && proc_remaining_ms(deadline) > 0) {
        redisReply *r = redisCommand(rc, "WAIT 1 1000");
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        acks = r->integer;
        freeReplyObject(r);
    }
    redisFree(rc);
    assert_int_equal(acks, 1);

    assert_int_equal(redis_cluster_kill_master(c, dead), 0);
    assert_int_equal(redis_cluster_pid(c, dead), 0);
    int64_t t0 = proc_now_ms();
    int promoted = redis_cluster_wait_failover(c, dead, FAILOVER_LIMIT_MS);
    int64_t took = proc_now_ms() - t0;
    fprintf(stderr, "master %d killed; %d promoted in %lld ms\n", dead, promoted, (long long)took);
    assert_true(promoted > 0);
    assert_int_not_equal(promoted, dead);
    assert_true(took < FAILOVER_LIMIT_MS);
    assert_int_equal(redis_cluster_port_of_slot(c, slot), promoted);
    for (int i = 0; i < 20; i++) {
        char value[32];
        snprintf(value, sizeof(value), "v%d", i);
        expect_value_of(cmd(c, promoted, "GET {doomed}:%d", i), value);
    }
    expect_reply_status(cmd(c, promoted, "SET {doomed}:after %s", "yes"), "OK");
    int masters[8];
    int n = redis_cluster_master_ports(c, masters, 8);
    assert_int_equal(n, MASTERS);
    for (int i = 0; i < n; i++)
        assert_int_not_equal(masters[i], dead);

    /* Back with its nodes.conf, as a replica of the node that replaced it. */
    t0 = proc_now_ms();
    assert_int_equal(redis_cluster_restart_node(c, dead), 0);
    fprintf(stderr, "port %d rejoined in %lld ms\n", dead, (long long)(proc_now_ms() - t0));
    redisReply *r = cmd(c, dead, "INFO replication");
    char want[64];
    snprintf(want, sizeof(want), "master_port:%d", promoted);
    assert_non_null(strstr(r->str, "role:slave"));
    assert_non_null(strstr(r->str, want));
    freeReplyObject(r);
    expect_moved(cmd(c, dead, "GET %s", probe), slot, promoted);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_started),
        cmocka_unit_test(test_write_read),
        cmocka_unit_test(test_wrong_master_moves),
        cmocka_unit_test(test_tags_spread),
        cmocka_unit_test(test_move_slot),
        cmocka_unit_test(test_failover),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
