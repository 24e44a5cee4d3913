/*
 * test_fe_flow.c - nothing a well-behaved client sends is lost to the node's own limits or to a
 * short Redis outage, and the node's closes reach the client:
 *  - a burst over RRM_MAX_MSGS_PER_SEC is slowed (reading paused), not refused;
 *  - while Redis is stopped a ready client's frames wait (RRM_REDIS_HOLD_MS) and go once it is
 *    back; an outage longer than the hold is answered `unavailable`; a drain frees a held frame;
 *  - after a policy close (1009 for a 4 MiB frame, 1008 for an invalid identify followed by
 *    more data) the client receives the close frame, never a reset.
 */
#include "fe_harness.h"
#include "proc.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS
#define PAUSED_RATE "rrm_read_paused_seconds_total{reason=\"rate\"}"
#define PAUSED_REDIS "rrm_read_paused_seconds_total{reason=\"redis\"}"

static int start(void **state, const char *const env[]) {
    struct fe_cluster *c = fe_cluster_start(1, env);
    *state = c;
    return c ? 0 : -1;
}

/* The defaults: 100 messages/s, 1 MiB/s, frames up to 64 KiB. */
static int setup_defaults(void **state) {
    return start(state, NULL);
}

static int setup_long_hold(void **state) {
    static const char *const env[] = {"RRM_REDIS_HOLD_MS=20000", "RRM_MAX_MSGS_PER_SEC=1000", NULL};
    return start(state, env);
}

static int setup_drain_while_holding(void **state) {
    static const char *const env[] = {"RRM_REDIS_HOLD_MS=20000", "RRM_DRAIN_TIMEOUT_MS=1000", NULL};
    return start(state, env);
}

static int setup_short_hold(void **state) {
    static const char *const env[] = {"RRM_REDIS_HOLD_MS=3000", NULL};
    return start(state, env);
}

static void redis_signal(struct fe_cluster *c, int sig) {
    pid_t pid = redis_server_pid(fe_redis(c));
    assert_true(pid > 0);
    assert_int_equal(kill(pid, sig), 0);
}

/* The next frame from ws, which must be a relayed {"type":"n","from":from,"i":i}. */
static void expect_n(struct wsc *ws, int from, int i) {
    json_t *j = wsc_recv_json(ws, T);
    if (!j)
        fail_msg("no message %d from %d", i, from);
    const char *type = fe_str(j, "type");
    if (!type || strcmp(type, "n") != 0 || json_integer_value(json_object_get(j, "from")) != from ||
        json_integer_value(json_object_get(j, "i")) != i) {
        char *dump = json_dumps(j, JSON_COMPACT);
        fail_msg("expected message %d from %d, got %s", i, from, dump ? dump : "?");
    }
    json_decref(j);
}

static void send_n(struct wsc *ws, int from, int i) {
    assert_int_equal(
        fe_send_json(ws, json_pack("{s:s, s:i, s:i}", "type", "n", "from", from, "i", i)), 0);
}

/* 500 messages back to back at the default 100/s (burst 100): every one is relayed, in order,
 * none refused, and the sender was held back by about 4 s of paused reading. */
static void test_burst_is_slowed_not_refused(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    enum { N = 500 };
    long long refused = fe_error_count(admin, "rate_limited");
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "burst-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "burst-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);

    int64_t t0 = proc_now_ms();
    for (int i = 0; i < N; i++)
        send_n(a, 0, i);
    for (int i = 0; i < N; i++)
        expect_n(b, 0, i);
    int64_t took = proc_now_ms() - t0;
    long long paused = fe_metric(admin, PAUSED_RATE);
    print_message("%d messages relayed in %lld ms; %lld s of paused reading\n", N, (long long)took,
                  paused);
    assert_true(took >= 3500);
    assert_true(paused >= 3);
    /* nothing came back to the sender but the answer to its query */
    json_t *info = fe_query_room(a, T);
    assert_non_null(info);
    json_decref(info);
    assert_int_equal(fe_error_count(admin, "rate_limited"), refused);
    assert_int_equal(fe_metric(admin, "rrm_read_paused_connections"), 0);
}

enum { SENDERS = 3 };

/* Each of the clients sends n messages (numbered from *next), then every client receives the
 * others' in order, and nothing else. */
static void exchange(struct wsc *ws[SENDERS], int next[SENDERS], int n) {
    for (int k = 0; k < n; k++)
        for (int s = 0; s < SENDERS; s++)
            send_n(ws[s], s, next[s] + k);
    for (int r = 0; r < SENDERS; r++) {
        int want[SENDERS];
        memcpy(want, next, sizeof(want));
        for (int got = 0; got < (SENDERS - 1) * n; got++) {
            json_t *j = wsc_recv_json(ws[r], T);
            if (!j)
                fail_msg("client %d: only %d of %d messages", r, got, (SENDERS - 1) * n);
            const char *type = fe_str(j, "type");
            if (!type || strcmp(type, "n") != 0) {
                char *dump = json_dumps(j, JSON_COMPACT);
                fail_msg("client %d: expected a message, got %s", r, dump ? dump : "?");
            }
            int from = (int)json_integer_value(json_object_get(j, "from"));
            int i = (int)json_integer_value(json_object_get(j, "i"));
            assert_true(from >= 0 && from < SENDERS && from != r);
            if (i != want[from])
                fail_msg("client %d: message %d from %d, expected %d", r, i, from, want[from]);
            want[from]++;
            json_decref(j);
        }
    }
    for (int s = 0; s < SENDERS; s++)
        next[s] += n;
}

/* Redis stopped for 2 s (links stay up: the frames wait in Redis's socket), then stopped until
 * the node sees its link down (the frames wait in the node): under traffic from three clients
 * nothing is lost, reordered or refused. SIGSTOP stands for DEBUG SLEEP, which Redis 7 refuses
 * by default (enable-debug-command no); either way the link survives a pause shorter than its
 * PING timeout (3 s), and only a longer one takes it down. */
static void test_redis_blip_loses_nothing(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0), port = fe_port(c, 0);
    long long unavailable = fe_error_count(admin, "unavailable");
    long long paused_before = fe_metric(admin, PAUSED_REDIS);
    char room[FE_ROOM_CAP];
    struct wsc *ws[SENDERS];
    ws[0] = fe_join(c, 0, "blip-0", NULL, NULL, room);
    assert_non_null(ws[0]);
    for (int s = 1; s < SENDERS; s++) {
        char dev[16];
        snprintf(dev, sizeof(dev), "blip-%d", s);
        ws[s] = fe_join(c, 0, dev, NULL, room, NULL);
        assert_non_null(ws[s]);
    }
    int next[SENDERS] = {0};
    exchange(ws, next, 5);

    /* a pause Redis's PING timeout (3 s) does not notice: the frames are in flight */
    redis_signal(c, SIGSTOP);
    int64_t until = proc_now_ms() + 2000;
    int sent = 0;
    while (proc_remaining_ms(until) > 0) {
        for (int s = 0; s < SENDERS; s++)
            send_n(ws[s], s, next[s] + sent);
        sent++;
        struct wsc_msg m;
        if (wsc_recv(ws[0], &m, 50) == 0)
            fail_msg("a frame arrived while Redis was stopped: %.*s", (int)m.len, m.data);
    }
    redis_signal(c, SIGCONT);
    for (int r = 0; r < SENDERS; r++) {
        int want[SENDERS];
        memcpy(want, next, sizeof(want));
        for (int got = 0; got < (SENDERS - 1) * sent; got++) {
            json_t *j = wsc_recv_json(ws[r], T);
            assert_non_null(j);
            assert_string_equal(fe_str(j, "type"), "n");
            int from = (int)json_integer_value(json_object_get(j, "from"));
            assert_int_equal(json_integer_value(json_object_get(j, "i")), want[from]);
            want[from]++;
            json_decref(j);
        }
    }
    for (int s = 0; s < SENDERS; s++)
        next[s] += sent;
    print_message("%d messages per client while Redis was stopped for 2 s\n", sent);

    /* stopped until the node has seen the link go down: the frames wait in the node */
    redis_signal(c, SIGSTOP);
    if (fe_wait_ready(port, 503, 15000) != 0) {
        redis_signal(c, SIGCONT);
        fail_msg("the node did not notice that Redis stopped");
    }
    for (int k = 0; k < 4; k++)
        for (int s = 0; s < SENDERS; s++)
            send_n(ws[s], s, next[s] + k);
    /* each connection holds its first frame, the others wait behind it */
    long long held = fe_wait_metric(admin, "rrm_read_paused_connections", SENDERS, T);
    /* pauses in progress count in the paused time */
    long long during = fe_wait_metric(admin, PAUSED_REDIS, paused_before + 1, T);
    redis_signal(c, SIGCONT);
    for (int r = 0; r < SENDERS; r++) {
        int want[SENDERS];
        memcpy(want, next, sizeof(want));
        for (int got = 0; got < (SENDERS - 1) * 4; got++) {
            json_t *j = wsc_recv_json(ws[r], 20000);
            if (!j)
                fail_msg("client %d: only %d of %d held messages", r, got, (SENDERS - 1) * 4);
            const char *type = fe_str(j, "type");
            if (!type || strcmp(type, "n") != 0) {
                char *dump = json_dumps(j, JSON_COMPACT);
                fail_msg("client %d: expected a held message, got %s", r, dump ? dump : "?");
            }
            int from = (int)json_integer_value(json_object_get(j, "from"));
            assert_int_equal(json_integer_value(json_object_get(j, "i")), want[from]);
            want[from]++;
            json_decref(j);
        }
    }
    assert_int_equal(held, SENDERS);
    for (int s = 0; s < SENDERS; s++)
        next[s] += 4;
    exchange(ws, next, 3);
    assert_int_equal(fe_error_count(admin, "unavailable"), unavailable);
    assert_true(during > paused_before);
    assert_true(fe_metric(admin, PAUSED_REDIS) >= during);
    assert_int_equal(fe_metric(admin, "rrm_read_paused_connections"), 0);
}

/* An outage longer than RRM_REDIS_HOLD_MS (3 s here): the held message is answered unavailable
 * after the hold, the next one at once (well before a hold could end, however busy the machine);
 * once Redis is back messages go again. */
static void test_redis_outage_longer_than_hold(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "out-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "out-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    redis_signal(c, SIGSTOP);
    if (fe_wait_ready(port, 503, 15000) != 0) {
        redis_signal(c, SIGCONT);
        fail_msg("the node did not notice that Redis stopped");
    }
    int64_t t0 = proc_now_ms();
    fe_send_text(a, "held");
    int r1 = fe_expect_error(a, "unavailable", T);
    int64_t first = proc_now_ms() - t0;
    t0 = proc_now_ms();
    fe_send_text(a, "refused");
    int r2 = fe_expect_error(a, "unavailable", T);
    int64_t second = proc_now_ms() - t0;
    redis_signal(c, SIGCONT);
    print_message("held message answered after %lld ms, the next after %lld ms\n", (long long)first,
                  (long long)second);
    assert_int_equal(r1, 0);
    assert_int_equal(r2, 0);
    assert_true(first >= 2900);
    assert_true(second < 2900);
    assert_int_equal(fe_wait_ready(port, 200, 20000), 0);
    fe_send_text(a, "after");
    fe_expect_text(b, "out-a", room, "after"); /* and nothing of the refused ones before it */
}

/* SIGTERM while a frame is held: the client is told "draining" and closed with 1001 (the held
 * frame is dropped with the connection, not answered), and the node exits cleanly (the
 * sanitizer build checks that nothing leaked). */
static void test_drain_while_holding(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    struct wsc *a = fe_join(c, 0, "drain-a", NULL, NULL, NULL);
    assert_non_null(a);
    redis_signal(c, SIGSTOP);
    if (fe_wait_ready(fe_port(c, 0), 503, 15000) != 0) {
        redis_signal(c, SIGCONT);
        fail_msg("the node did not notice that Redis stopped");
    }
    fe_send_text(a, "held");
    long long held = fe_wait_metric(admin, "rrm_read_paused_connections", 1, T);
    assert_int_equal(fe_node_signal(c, 0, SIGTERM), 0);
    int r = fe_expect_error(a, "draining", T);
    int code = fe_expect_close(a, T);
    int status = fe_node_wait(c, 0, 20000);
    redis_signal(c, SIGCONT);
    assert_int_equal(held, 1);
    assert_int_equal(r, 0);
    assert_int_equal(code, 1001);
    assert_int_equal(status, 0);
}

/* The close code after any relayed frames; 1006 for a reset, negative for another failure. */
static int close_after_relays(struct wsc *ws) {
    for (;;) {
        struct wsc_msg m;
        int r = wsc_recv(ws, &m, T);
        if (r == -ECONNRESET)
            return WSC_CLOSE_ABNORMAL;
        if (r < 0)
            return r;
        int code = m.opcode == WSC_OP_CLOSE ? m.close_code : 0;
        wsc_msg_free(&m);
        if (code)
            return code;
    }
}

/* A 4 MiB message against the 64 KiB limit, twenty times, from a client of a busy room: each
 * time the client, still sending, receives the close frame with 1009 (a reset shows as 1006, a
 * failed send as an error). */
static void test_too_big_close_arrives(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    enum { BIG = 4 * 1024 * 1024, RUNS = 20 };
    long long before = fe_error_count(admin, "message_too_big");
    char *big = malloc(BIG);
    assert_non_null(big);
    memset(big, 'x', BIG);
    char room[FE_ROOM_CAP];
    struct wsc *b = fe_join(c, 0, "big-reader", NULL, NULL, room);
    assert_non_null(b);
    int64_t slowest = 0;
    for (int run = 0; run < RUNS; run++) {
        char dev[32];
        snprintf(dev, sizeof(dev), "big-%d", run);
        struct wsc *a = fe_join(c, 0, dev, NULL, room, NULL);
        assert_non_null(a);
        /* the room is busy: relays for a arrive while its message is being refused */
        for (int i = 0; i < 20; i++)
            fe_send_text(b, "meanwhile");
        int64_t t0 = proc_now_ms();
        int sr = wsc_send(a, WSC_OP_BINARY, big, BIG);
        int code = close_after_relays(a);
        if (sr != 0 || code != 1009)
            fail_msg("run %d: send %d, close code %d (want 1009) after %lld ms", run, sr, code,
                     (long long)(proc_now_ms() - t0));
        int64_t took = proc_now_ms() - t0;
        if (took > slowest)
            slowest = took;
        fe_close(c, a);
    }
    print_message("%d closes with 1009, the slowest after %lld ms\n", RUNS, (long long)slowest);
    free(big);
    assert_int_equal(fe_error_count(admin, "message_too_big"), before + RUNS);
    /* the reader saw none of it and the node still relays */
    struct wsc *d = fe_join(c, 0, "big-after", NULL, room, NULL);
    assert_non_null(d);
    fe_send_text(d, "after");
    fe_expect_text(b, "big-after", room, "after");
}

/* The same from a client on a slow link: 4 MiB over about 6 s, longer than lws waits for the
 * answer to a close frame (5 s). The node reads and discards the message to its end, then
 * closes, and the client (reading only once its send is done) receives the close. */
static void test_too_big_close_arrives_slowly(void **state) {
    struct fe_cluster *c = *state;
    enum { BIG = 4 * 1024 * 1024, PIECE = 64 * 1024, PIECE_MS = 95 };
    struct wsc *a = fe_join(c, 0, "slow-big", NULL, NULL, NULL);
    assert_non_null(a);
    /* FIN + binary, masked, 64-bit length; a zero mask leaves the payload as it is */
    unsigned char head[14] = {0x82, 0x80 | 127};
    for (int i = 0; i < 8; i++)
        head[2 + i] = (unsigned char)((uint64_t)BIG >> (56 - 8 * i));
    assert_int_equal(wsc_send_raw(a, head, sizeof(head)), 0);
    static unsigned char piece[PIECE];
    int64_t t0 = proc_now_ms(), next = t0;
    for (int sent = 0; sent < BIG; sent += PIECE) {
        while (proc_now_ms() < next)
            fe_poll_pause();
        next += PIECE_MS;
        int r = wsc_send_raw(a, piece, PIECE);
        if (r != 0)
            fail_msg("the node cut the connection after %d of %d bytes, %lld ms (%d)", sent, BIG,
                     (long long)(proc_now_ms() - t0), r);
    }
    int code = close_after_relays(a);
    print_message("4 MiB sent in %lld ms, then close %d\n", (long long)(proc_now_ms() - t0), code);
    assert_int_equal(code, 1009);
}

/* An invalid identify followed by 8 MiB more: the error and the 1008 close arrive. */
static void test_policy_close_arrives_while_sending(void **state) {
    struct fe_cluster *c = *state;
    enum { CHUNK = 60000, CHUNKS = 140, RUNS = 5 };
    char *chunk = malloc(CHUNK);
    assert_non_null(chunk);
    memset(chunk, 'y', CHUNK);
    for (int run = 0; run < RUNS; run++) {
        struct wsc *a = fe_connect(c, 0);
        assert_non_null(a);
        assert_int_equal(wsc_send_text(a, "{\"type\":\"hello\"}"), 0);
        int sr = 0;
        for (int i = 0; i < CHUNKS && sr == 0; i++)
            sr = wsc_send(a, WSC_OP_BINARY, chunk, CHUNK);
        if (sr != 0)
            fail_msg("run %d: sending failed (%d): the node reset the connection", run, sr);
        assert_int_equal(fe_expect_error(a, "invalid_identify", T), 0);
        int code = fe_expect_close(a, T);
        if (code != 1008)
            fail_msg("run %d: close code %d, want 1008", run, code);
        fe_close(c, a);
    }
    free(chunk);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_is_slowed_not_refused, setup_defaults,
                                        fe_teardown),
        cmocka_unit_test_setup_teardown(test_redis_blip_loses_nothing, setup_long_hold,
                                        fe_teardown),
        cmocka_unit_test_setup_teardown(test_redis_outage_longer_than_hold, setup_short_hold,
                                        fe_teardown),
        cmocka_unit_test_setup_teardown(test_drain_while_holding, setup_drain_while_holding,
                                        fe_teardown),
        cmocka_unit_test_setup_teardown(test_too_big_close_arrives, setup_defaults, fe_teardown),
        cmocka_unit_test_setup_teardown(test_too_big_close_arrives_slowly, setup_defaults,
                                        fe_teardown),
        cmocka_unit_test_setup_teardown(test_policy_close_arrives_while_sending, setup_defaults,
                                        fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
