/*
 * test_fe_limits.c - what keeps ordinary clients from exhausting Redis's memory: room_info of a
 * large room is a bounded sample with the true total, a node has a bounded number of room queries
 * in Redis at once, each connection has a byte rate next to its message rate, the archive stream
 * stays within its byte budget (and a budget its cap cannot keep is refused at start), and a Redis
 * at maxmemory (noeviction) is answered with "unavailable" while no membership is lost (and a
 * client whose membership cannot be written back is told to connect again).
 *
 * Every test starts its own redis and frontends with the limits it needs.
 */
#include "fe_harness.h"
#include "keys.h"
#include "proc.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS

static int start(void **state, int nodes, const char *const env[]) {
    struct fe_cluster *c = fe_cluster_start(nodes, env);
    *state = c;
    return c ? 0 : -1;
}

static int setup_query_cap(void **state) {
    static const char *const env[] = {"RRM_QUERY_MAX_CLIENTS=5", NULL};
    return start(state, 2, env);
}

static int setup_many_queries(void **state) {
    static const char *const env[] = {"RRM_MAX_MSGS_PER_SEC=100000", NULL};
    return start(state, 1, env);
}

static int setup_byte_rate(void **state) {
    static const char *const env[] = {"RRM_MAX_FRAME_BYTES=16384", "RRM_MAX_BYTES_PER_SEC=32768",
                                      "RRM_MAX_MSGS_PER_SEC=1000", NULL};
    return start(state, 1, env);
}

/* 4 shards of 250 entries of at most 4096 + 1024 + 1024 bytes, each with one stream node of slack
 * (4096 bytes and one entry): the smallest budget the check accepts (fe_stream_bound_bytes). */
#define STREAM_SHARDS 4
#define STREAM_ENTRY (4096 + 1024 + 1024)
#define STREAM_BUDGET (STREAM_SHARDS * (250L * STREAM_ENTRY + 4096 + STREAM_ENTRY))

static int setup_stream(void **state) {
    static char budget[64];
    snprintf(budget, sizeof(budget), "RRM_STREAM_MAX_BYTES=%ld", STREAM_BUDGET);
    static const char *env[] = {"RRM_MAX_FRAME_BYTES=4096",
                                "RRM_STREAM_MAXLEN=1000",
                                NULL,
                                "RRM_MAX_MSGS_PER_SEC=100000",
                                "RRM_MAX_BYTES_PER_SEC=1000000000",
                                "RRM_EVENT_SHARDS=4",
                                NULL};
    env[2] = budget;
    return start(state, 1, env);
}

static int setup_one(void **state) {
    return start(state, 1, NULL);
}

static int setup_oom(void **state) {
    return start(state, 2, NULL);
}

static long long redis_int(struct fe_cluster *c, const char *fmt, const char *arg) {
    redisContext *r = fe_redis_client(c);
    assert_non_null(r);
    redisReply *reply = redisCommand(r, fmt, arg);
    assert_non_null(reply);
    long long v = -1;
    if (reply->type == REDIS_REPLY_INTEGER)
        v = reply->integer;
    else if (reply->type == REDIS_REPLY_STRING)
        v = strtoll(reply->str, NULL, 10);
    freeReplyObject(reply);
    redisFree(r);
    return v;
}

static void redis_ok(struct fe_cluster *c, const char *fmt, const char *arg) {
    redisContext *r = fe_redis_client(c);
    assert_non_null(r);
    redisReply *reply = redisCommand(r, fmt, arg);
    assert_non_null(reply);
    if (reply->type == REDIS_REPLY_ERROR)
        fail_msg("redis: %s", reply->str);
    freeReplyObject(reply);
    redisFree(r);
}

/* Checks a room_info against the members dev_0..dev_{n-1} (identity "who-<i>") of which asker
 * asked; returns how many it lists. */
static size_t check_room_info(json_t *info, const char *room, size_t n, const char *asker) {
    assert_string_equal(fe_str(info, "room_id"), room);
    assert_int_equal(json_integer_value(json_object_get(info, "total_clients")), (json_int_t)n);
    json_t *clients = json_object_get(info, "clients");
    assert_true(json_is_array(clients));
    size_t i;
    json_t *cl;
    json_array_foreach(clients, i, cl) {
        const char *dev = fe_str(cl, "device_id");
        assert_non_null(dev);
        assert_string_not_equal(dev, asker);
        unsigned k;
        assert_int_equal(sscanf(dev, "dev_%u", &k), 1);
        assert_true(k < n);
        char who[32];
        snprintf(who, sizeof(who), "who-%u", k);
        assert_string_equal(fe_str(cl, "identity"), who);
        for (size_t j = 0; j < i; j++) /* each device once */
            assert_string_not_equal(fe_str(json_array_get(clients, j), "device_id"), dev);
    }
    return json_array_size(clients);
}

/* A room of 12 with a cap of 5 is answered with 5 others and "truncated"; a room of 6 (the cap
 * and the asker) and a room of 3 are listed in full, without the flag. */
static void test_query_room_is_bounded(void **state) {
    struct fe_cluster *c = *state;
    const size_t sizes[] = {12, 6, 3};
    for (size_t r = 0; r < sizeof(sizes) / sizeof(sizes[0]); r++) {
        size_t n = sizes[r];
        char room[FE_ROOM_CAP] = "";
        struct wsc *ws[12];
        for (size_t i = 0; i < n; i++) {
            char dev[32], who[32];
            snprintf(dev, sizeof(dev), "dev_%zu", i);
            snprintf(who, sizeof(who), "who-%zu", i);
            /* first room members on both nodes: the total is cluster-wide */
            ws[i] = fe_join(c, (int)(i % 2), dev, who, i ? room : NULL, i ? NULL : room);
            assert_non_null(ws[i]);
        }
        /* the sample is random: ask often enough that the asker is drawn into it */
        for (int q = 0; q < 20; q++) {
            size_t asker = (size_t)q % n;
            char dev[32];
            snprintf(dev, sizeof(dev), "dev_%zu", asker);
            json_t *info = fe_query_room(ws[asker], T);
            assert_non_null(info);
            size_t listed = check_room_info(info, room, n, dev);
            json_t *trunc = json_object_get(info, "truncated");
            if (n - 1 > 5) {
                assert_int_equal(listed, 5);
                assert_true(json_is_true(trunc));
            } else {
                assert_int_equal(listed, n - 1);
                assert_null(trunc);
            }
            json_decref(info);
        }
        fe_close_all(c);
    }
}

/* With Redis holding the node's queries (CLIENT PAUSE WRITE holds scripts, not PING), the node
 * keeps ROOM_QUERIES_IN_FLIGHT (64) of them in Redis and refuses the rest at once. */
static void test_queries_in_flight_are_bounded(void **state) {
    struct fe_cluster *c = *state;
    enum { N = 100, IN_FLIGHT = 64 };
    struct wsc *a = fe_join(c, 0, "asker", NULL, NULL, NULL);
    assert_non_null(a);
    redis_ok(c, "CLIENT PAUSE %s WRITE", "2500");
    for (int i = 0; i < N; i++)
        assert_int_equal(wsc_send_text(a, "{\"type\":\"query_room\"}"), 0);
    for (int i = 0; i < N - IN_FLIGHT; i++) {
        json_t *j = wsc_recv_json(a, 2000);
        if (!j)
            fail_msg("only %d of %d queries refused while Redis held the others", i, N - IN_FLIGHT);
        assert_string_equal(fe_str(j, "type"), "error");
        assert_string_equal(fe_str(j, "code"), "rate_limited");
        assert_non_null(strstr(fe_str(j, "message"), "queries"));
        json_decref(j);
    }
    redis_ok(c, "CLIENT UNPAUSE%s", "");
    for (int i = 0; i < IN_FLIGHT; i++) {
        json_t *j = fe_expect_type(a, "room_info", T);
        assert_non_null(j);
        json_decref(j);
    }
    json_t *info = fe_query_room(a, T); /* answered again once the others are */
    assert_non_null(info);
    json_decref(info);
}

/* 10 messages of 16000 bytes against 32 KiB/s (burst 32 KiB): the sender is slowed to the byte
 * rate (about 4 s), not refused; a client sending small messages in the same room is not. */
static void test_byte_rate(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "rate_limited");
    long long paused = fe_metric(admin, "rrm_read_paused_seconds_total{reason=\"rate\"}");
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "big", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "reader", NULL, room, NULL);
    struct wsc *s = fe_join(c, 0, "small", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(s);
    enum { BIG = 10, SMALL = 20 };
    static char pad[16001];
    memset(pad, 'x', 16000);
    int64_t t0 = proc_now_ms();
    for (int i = 0; i < BIG; i++)
        assert_int_equal(
            fe_send_json(a, json_pack("{s:s, s:i, s:s}", "type", "big", "i", i, "pad", pad)), 0);
    for (int i = 0; i < SMALL; i++)
        fe_send_text(s, "hi");

    int b_big = 0, b_small = 0, s_big = 0;
    int64_t small_done_ms = -1;
    int64_t deadline = proc_now_ms() + 20000;
    while (b_big < BIG || b_small < SMALL || s_big < BIG) {
        struct wsc *from[] = {a, b, s};
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("after 20 s: %d of %d big relayed, %d of %d small", b_big, BIG, b_small,
                     SMALL);
        for (int k = 0; k < 3; k++) {
            json_t *j = wsc_recv_json(from[k], 10);
            if (!j)
                continue;
            const char *type = fe_str(j, "type");
            assert_non_null(type);
            if (strcmp(type, "big") == 0) {
                assert_ptr_not_equal(from[k], a);
                int *n = from[k] == b ? &b_big : &s_big;
                assert_int_equal(json_integer_value(json_object_get(j, "i")), *n);
                (*n)++;
            } else {
                /* nothing is refused: no error frame reaches anyone */
                assert_string_equal(type, "text");
                if (from[k] == b && ++b_small == SMALL)
                    small_done_ms = proc_now_ms() - t0;
            }
            json_decref(j);
        }
    }
    int64_t took = proc_now_ms() - t0;
    print_message("%d big messages relayed in %lld ms; the small ones after %lld ms\n", BIG,
                  (long long)took, (long long)small_done_ms);
    assert_true(took >= 3000);
    assert_true(small_done_ms < took);
    assert_int_equal(fe_error_count(admin, "rate_limited"), before);
    assert_true(fe_metric(admin, "rrm_read_paused_seconds_total{reason=\"rate\"}") >= paused + 3);
}

/* A cap the byte budget cannot hold is refused at start with one line naming the variables. */
static void test_stream_budget_checked_at_start(void **state) {
    (void)state;
    const char *bin = getenv("RRM_FRONTEND_BIN");
    assert_non_null(bin);
    char *dir = proc_tmpdir("fe-limits");
    assert_non_null(dir);
    char log[512];
    snprintf(log, sizeof(log), "%s/frontend.log", dir);
    char port[32];
    snprintf(port, sizeof(port), "RRM_PORT=%d", proc_free_port());
    const char *const argv[] = {bin, NULL};
    const char *const env[] = {"RRM_STREAM_MAXLEN=1000000", port, NULL};
    pid_t pid = proc_spawn(argv, env, log);
    assert_true(pid > 0);
    int status = -1;
    int rc = proc_wait_exit(pid, 5000, &status);
    if (rc != 0) {
        proc_stop(pid, SIGKILL, 5000, NULL);
        fail_msg("rrm-frontend started with a stream cap its byte budget cannot hold");
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char line[1024] = "";
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_non_null(strstr(line, "RRM_STREAM_MAXLEN"));
    assert_non_null(strstr(line, "RRM_STREAM_MAX_BYTES"));
    proc_rmtree(dir);
    free(dir);
}

/* 3000 messages of the largest size: the room's shard keeps at most its cap (1000 / 4) plus one
 * node of entries, and the memory of all the shards stays within RRM_STREAM_MAX_BYTES. */
static void test_stream_stays_within_budget(void **state) {
    struct fe_cluster *c = *state;
    enum { N = 3000 };
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "filler", NULL, NULL, room);
    assert_non_null(a);
    static unsigned char body[4096];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (unsigned char)(i * 7);
    for (int i = 0; i < N; i++)
        assert_int_equal(wsc_send(a, 2 /* binary */, body, sizeof(body)), 0);
    char kroom[KEYS_MAX];
    keys_room(kroom, sizeof(kroom), keys_room_shard(room, STREAM_SHARDS), room);
    int64_t deadline = proc_now_ms() + 30000;
    while (redis_int(c, "HGET %s seq", kroom) < N) {
        struct wsc_msg m;
        if (wsc_recv(a, &m, 0) == 0) { /* nothing may come back: no error, no echo */
            fail_msg("unexpected frame of %zu bytes", m.len);
        }
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("only %lld of %d messages stored after 30 s",
                     redis_int(c, "HGET %s seq", kroom), N);
        fe_poll_pause();
    }
    char kev[KEYS_MAX];
    keys_events_for(kev, sizeof(kev), room, STREAM_SHARDS);
    long long len = redis_int(c, "XLEN %s", kev);
    long long bytes = 0;
    for (unsigned s = 0; s < STREAM_SHARDS; s++) {
        char k[KEYS_MAX];
        keys_events(k, sizeof(k), s);
        if (redis_int(c, "EXISTS %s", k))
            bytes += redis_int(c, "MEMORY USAGE %s SAMPLES 0", k);
    }
    print_message("stream %s: %lld entries; all shards %lld bytes (budget %ld)\n", kev, len, bytes,
                  STREAM_BUDGET);
    assert_true(len >= 250);
    assert_true(len <= 250 + 100);
    assert_true(bytes > 250LL * 4096);
    assert_true(bytes <= STREAM_BUDGET);
}

/* Fill Redis: 4 MB of data, then a cap 1 MB below what it uses (a Redis that only just
 * refused a write is below its cap again once it freed the request). */
static void fill_redis(struct fe_cluster *c) {
    redisContext *r = fe_redis_client(c);
    assert_non_null(r);
    static char filler[64 * 1024];
    memset(filler, 'f', sizeof(filler) - 1);
    for (int i = 0; i < 64; i++) {
        redisReply *set = redisCommand(r, "SET rrm:test:filler:%d %s", i, filler);
        assert_non_null(set);
        assert_int_not_equal(set->type, REDIS_REPLY_ERROR);
        freeReplyObject(set);
    }
    redisReply *info = redisCommand(r, "INFO memory");
    assert_non_null(info);
    const char *used = strstr(info->str, "used_memory:");
    assert_non_null(used);
    char cap[32];
    snprintf(cap, sizeof(cap), "%lld", strtoll(used + 12, NULL, 10) - 1024 * 1024);
    freeReplyObject(info);
    redisFree(r);
    redis_ok(c, "CONFIG SET maxmemory %s", cap);
}

/* The score (last heartbeat, ms) of node in rrm:nodes. */
static long long beat_of(struct fe_cluster *c, int node) {
    return redis_int(c, "ZSCORE " KEYS_NODES " %s", fe_node_id(c, node));
}

/* Redis at maxmemory (noeviction): new identifies, messages and queries get "unavailable", the
 * nodes keep their heartbeat so nobody is declared dead and no membership is lost, and once
 * memory is free everything works again. */
static void test_redis_full(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "full-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 1, "full-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    char kmembers[KEYS_MAX];
    snprintf(kmembers, sizeof(kmembers), "%s", fe_room_key(room, ":members"));
    assert_int_equal(redis_int(c, "HLEN %s", kmembers), 2);
    long long unavailable = fe_error_count(fe_admin_port(c, 0), "unavailable");

    fill_redis(c);
    int64_t full_at = fe_wall_ms();

    /* a new connection cannot join */
    struct wsc *n = fe_connect(c, 0);
    assert_non_null(n);
    assert_int_equal(
        fe_send_json(n, json_pack("{s:s, s:s}", "device_id", "full-new", "room_id", room)), 0);
    assert_int_equal(fe_expect_error(n, "unavailable", T), 0);
    assert_int_equal(fe_expect_close(n, T), 1013);

    /* a message is refused and reaches nobody; a query is refused */
    fe_send_text(a, "lost");
    assert_int_equal(fe_expect_error(a, "unavailable", T), 0);
    assert_int_equal(wsc_send_text(a, "{\"type\":\"query_room\"}"), 0);
    assert_int_equal(fe_expect_error(a, "unavailable", T), 0);

    /* Heartbeats go on while Redis is full: past twice the node timeout (1.5 s) neither node
     * has been declared dead, and both members are still there. */
    int64_t deadline = proc_now_ms() + 15000;
    while (beat_of(c, 0) < full_at + 3000 || beat_of(c, 1) < full_at + 3000) {
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("no heartbeat recorded while Redis was full (%lld, %lld since %lld)",
                     beat_of(c, 0), beat_of(c, 1), (long long)full_at);
        fe_poll_pause();
    }
    assert_int_equal(redis_int(c, "HLEN %s", kmembers), 2);
    assert_int_equal(fe_wait_ready(fe_port(c, 0), 200, T), 0);
    assert_int_equal(fe_wait_ready(fe_port(c, 1), 200, T), 0);
    assert_true(fe_error_count(fe_admin_port(c, 0), "unavailable") >= unavailable + 3);

    /* memory back: the same connections relay and answer, and new ones join */
    redis_ok(c, "CONFIG SET maxmemory %s", "0");
    fe_send_text(a, "back");
    fe_expect_text(b, "full-a", room, "back");
    json_t *q = fe_query_room(a, T);
    assert_non_null(q);
    assert_int_equal(json_integer_value(json_object_get(q, "total_clients")), 2);
    assert_true(fe_has_client(q, "full-b"));
    json_decref(q);
    assert_non_null(fe_join(c, 1, "full-new", NULL, room, NULL));
    assert_int_equal(redis_int(c, "HLEN %s", kmembers), 3);
}

/* The node's command link drops while Redis is full: it re-asserts its members on reconnect. A
 * membership that is still in Redis is confirmed without a write, so that client stays; one that
 * is gone (as if reaped) cannot be written back, and its client is told to connect again. */
static void test_restore_while_full(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "gone-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "kept-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    char kmembers[KEYS_MAX], kdev[KEYS_MAX], kconns[KEYS_MAX];
    snprintf(kmembers, sizeof(kmembers), "%s", fe_room_key(room, ":members"));
    keys_device(kdev, sizeof(kdev), "gone-a");
    keys_node_conns(kconns, sizeof(kconns), fe_node_id(c, 0));
    redisContext *r = fe_redis_client(c);
    assert_non_null(r);
    redisReply *conn = redisCommand(r, "HGET %s conn", kdev);
    assert_non_null(conn);
    assert_int_equal(conn->type, REDIS_REPLY_STRING);
    fill_redis(c);
    /* a's membership vanishes (deleting is allowed when full), then the link drops */
    freeReplyObject(redisCommand(r, "HDEL %s gone-a", kmembers));
    freeReplyObject(redisCommand(r, "HDEL %s conn node", kdev));
    freeReplyObject(redisCommand(r, "HDEL %s %s", kconns, conn->str));
    freeReplyObject(conn);
    redisReply *kill = redisCommand(r, "CLIENT KILL TYPE normal SKIPME yes");
    assert_non_null(kill);
    assert_true(kill->type == REDIS_REPLY_INTEGER && kill->integer >= 1);
    freeReplyObject(kill);
    redisFree(r);

    assert_int_equal(fe_expect_error(a, "unavailable", T), 0);
    assert_int_equal(fe_expect_close(a, T), 1013);
    assert_int_equal(fe_wait_ready(fe_port(c, 0), 200, T), 0);
    assert_int_equal(redis_int(c, "HEXISTS %s kept-b", kmembers), 1);

    /* memory back: b was never disconnected and is still in the room */
    redis_ok(c, "CONFIG SET maxmemory %s", "0");
    json_t *q = fe_query_room(b, T);
    assert_non_null(q);
    assert_int_equal(json_integer_value(json_object_get(q, "total_clients")), 1);
    json_decref(q);
    struct wsc *n = fe_join(c, 0, "new-c", NULL, room, NULL);
    assert_non_null(n);
    fe_send_text(b, "still here");
    fe_expect_text(n, "kept-b", room, "still here");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_query_room_is_bounded, setup_query_cap, fe_teardown),
        cmocka_unit_test_setup_teardown(test_queries_in_flight_are_bounded, setup_many_queries,
                                        fe_teardown),
        cmocka_unit_test_setup_teardown(test_byte_rate, setup_byte_rate, fe_teardown),
        cmocka_unit_test(test_stream_budget_checked_at_start),
        cmocka_unit_test_setup_teardown(test_stream_stays_within_budget, setup_stream, fe_teardown),
        cmocka_unit_test_setup_teardown(test_redis_full, setup_oom, fe_teardown),
        cmocka_unit_test_setup_teardown(test_restore_while_full, setup_one, fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
