/*
 * test_fe_badinput.c - what rrm-frontend does with bad input and at its limits (BRIEF §2.7, §7):
 * every invalid first frame, the identify timeout, oversized frames (whole and fragmented), the
 * message rate limit (the sender slowed, not refused), reserved types and invalid JSON after
 * identify, the connection limit, a slow consumer, and Redis being down. Each rule is checked for
 * its error code, its close code, and its counter in /metrics; and garbage from one client never
 * disturbs the others.
 *
 * Every test starts its own redis + one node (node-a) with the limits it needs.
 */
#include "fe_harness.h"
#include "proc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS
#define MAX_FRAME 8192

static int start(void **state, const char *const env[]) {
    struct fe_cluster *c = fe_cluster_start(1, env);
    *state = c;
    return c ? 0 : -1;
}

/* Small frames, a short identify timeout, a generous rate. */
static int setup(void **state) {
    static const char *const env[] = {"RRM_MAX_FRAME_BYTES=8192", "RRM_IDENTIFY_TIMEOUT_MS=500",
                                      "RRM_MAX_MSGS_PER_SEC=1000", NULL};
    return start(state, env);
}

static int setup_rate(void **state) {
    static const char *const env[] = {"RRM_MAX_MSGS_PER_SEC=5", NULL};
    return start(state, env);
}

static int setup_full(void **state) {
    static const char *const env[] = {"RRM_MAX_CONNECTIONS=2", NULL};
    return start(state, env);
}

static int setup_slow(void **state) {
    static const char *const env[] = {"RRM_SEND_QUEUE_BYTES=262144", "RRM_MAX_MSGS_PER_SEC=100000",
                                      "RRM_MAX_BYTES_PER_SEC=1073741824",
                                      "RRM_MAX_FRAME_BYTES=65536", NULL};
    return start(state, env);
}

/* a sends a marker; b's very next frame must be it (nothing else reached b meanwhile). */
static void marker(struct wsc *a, const char *from, struct wsc *b, const char *content) {
    fe_send_text(a, content);
    fe_expect_text(b, from, NULL, content);
}

/* The connection still works: a query is answered (after any error frames before it). */
static void expect_alive(struct wsc *ws) {
    json_t *info = fe_query_room(ws, T);
    assert_non_null(info);
    json_decref(info);
}

/*
 * Open a fresh connection, send `payload` as its first frame (text, or binary if binary is set)
 * and expect error `code` followed by close `close_code` and nothing else.
 */
static void expect_rejected_first(struct fe_cluster *c, const void *payload, size_t len, int binary,
                                  const char *code, int close_code) {
    struct wsc *ws = fe_connect(c, 0);
    assert_non_null(ws);
    assert_int_equal(wsc_send(ws, binary ? WSC_OP_BINARY : WSC_OP_TEXT, payload, len), 0);
    if (fe_expect_error(ws, code, T) != 0)
        fail_msg("first frame '%.*s' was not answered with error %s", (int)(len > 200 ? 200 : len),
                 (const char *)payload, code);
    int got = fe_expect_close(ws, T);
    if (got != close_code)
        fail_msg("first frame '%.*s': close code %d, want %d", (int)(len > 200 ? 200 : len),
                 (const char *)payload, got, close_code);
    fe_close(c, ws);
}

static void expect_rejected_text(struct fe_cluster *c, const char *text, const char *code) {
    expect_rejected_first(c, text, strlen(text), 0, code, 1008);
}

/* The identify object `id` (borrowed) is accepted: the connection gets both answers. */
static void expect_accepted(struct fe_cluster *c, json_t *id) {
    json_t *room = NULL;
    struct wsc *ws = fe_track(c, client_join_ex(fe_port(c, 0), id, NULL, &room));
    if (!ws) {
        char *text = json_dumps(id, JSON_COMPACT);
        fail_msg("identify %s was not accepted", text);
    }
    assert_non_null(fe_str(room, "room_id"));
    json_decref(room);
    fe_close(c, ws);
}

static char *repeat(char ch, size_t n) {
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

/* Send a JSON identify built from a device_id JSON fragment. */
static void expect_rejected_device(struct fe_cluster *c, json_t *device_value) {
    json_t *id = json_object();
    json_object_set_new(id, "device_id", device_value);
    char *text = json_dumps(id, JSON_COMPACT);
    json_decref(id);
    expect_rejected_text(c, text, "invalid_device_id");
    free(text);
}

static void test_first_frame_invalid_json(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "invalid_json");
    static const char *const bad[] = {
        "{not json",     "", "{\"device_id\":\"x\",}", "device_id", "{\"device_id\":\"x\"",
        "\"unterminated"};
    size_t n = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < n; i++)
        expect_rejected_text(c, bad[i], "invalid_json");
    assert_int_equal(fe_error_count(admin, "invalid_json"), before + (long long)n);
}

static void test_first_frame_not_identify(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "invalid_identify");
    /* not an object, or an object without device_id */
    static const char *const bad[] = {"[1,2]",
                                      "42",
                                      "\"dev-1\"",
                                      "null",
                                      "true",
                                      "{}",
                                      "{\"identity\":\"x\"}",
                                      "{\"room_id\":\"ROOM01\"}",
                                      "{\"type\":\"text\",\"content\":\"hi\"}",
                                      "{\"type\":\"query_room\"}"};
    size_t n = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < n; i++)
        expect_rejected_text(c, bad[i], "invalid_identify");
    assert_int_equal(fe_error_count(admin, "invalid_identify"), before + (long long)n);
}

static void test_bad_device_id(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "invalid_device_id");
    char *long_id = repeat('d', 129);
    expect_rejected_device(c, json_string(""));
    expect_rejected_device(c, json_string(long_id));
    expect_rejected_device(c, json_string("bad id"));
    expect_rejected_device(c, json_string("caf\xc3\xa9"));
    expect_rejected_device(c, json_string("a/b"));
    expect_rejected_device(c, json_string("a{b}"));
    expect_rejected_device(c, json_string("tab\there"));
    expect_rejected_device(c, json_integer(42));
    expect_rejected_device(c, json_null());
    expect_rejected_device(c, json_true());
    expect_rejected_device(c, json_pack("[s]", "dev"));
    expect_rejected_device(c, json_pack("{s:s}", "id", "dev"));
    assert_int_equal(fe_error_count(admin, "invalid_device_id"), before + 12);
    free(long_id);

    /* the limits themselves are fine: 128 characters, every allowed character class */
    char ok_id[129];
    static const char allowed[] = "aZ09_.:@-";
    for (size_t i = 0; i < 128; i++)
        ok_id[i] = allowed[i % (sizeof(allowed) - 1)];
    ok_id[128] = '\0';
    json_t *id = json_pack("{s:s}", "device_id", ok_id);
    expect_accepted(c, id);
    json_decref(id);
    id = json_pack("{s:s}", "device_id", "x");
    expect_accepted(c, id);
    json_decref(id);
}

static void test_bad_room_id(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "invalid_room_id");
    char *long_room = repeat('R', 65);
    json_t *bad[] = {json_string("bad room"),    json_string(long_room),  json_integer(123),
                     json_string("ROOM/1"),      json_string("\xc3\xbc"), json_true(),
                     json_pack("[s]", "ROOM01"), json_string("{ROOM}")};
    size_t n = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < n; i++) {
        json_t *id = json_pack("{s:s, s:o}", "device_id", "bad-room-dev", "room_id", bad[i]);
        char *text = json_dumps(id, JSON_COMPACT);
        json_decref(id);
        expect_rejected_text(c, text, "invalid_room_id");
        free(text);
    }
    free(long_room);
    assert_int_equal(fe_error_count(admin, "invalid_room_id"), before + (long long)n);

    char *max_room = repeat('M', 64);
    json_t *id = json_pack("{s:s, s:s}", "device_id", "bad-room-dev", "room_id", max_room);
    expect_accepted(c, id);
    json_decref(id);
    free(max_room);
}

static void test_bad_identity(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "invalid_identity");
    char *long_ident = repeat('i', 257);
    json_t *bad[] = {json_string(long_ident),    json_string("a\001b"),
                     json_string("tab\there"),   json_string("new\nline"),
                     json_string("del\x7f"),     json_integer(5),
                     json_pack("{s:i}", "x", 1), json_false()};
    size_t n = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < n; i++) {
        json_t *id = json_pack("{s:s, s:o}", "device_id", "bad-ident-dev", "identity", bad[i]);
        char *text = json_dumps(id, JSON_COMPACT);
        json_decref(id);
        expect_rejected_text(c, text, "invalid_identity");
        free(text);
    }
    free(long_ident);
    assert_int_equal(fe_error_count(admin, "invalid_identity"), before + (long long)n);

    /* 256 bytes, multi-byte UTF-8 and null are accepted */
    char *max_ident = repeat('i', 256);
    json_t *ok[] = {json_pack("{s:s, s:s}", "device_id", "ok-ident-1", "identity", max_ident),
                    json_pack("{s:s, s:s}", "device_id", "ok-ident-2", "identity",
                              "Jos\xc3\xa9 \xf0\x9f\x98\x80 \"quoted\" \\ <b>"),
                    json_pack("{s:s, s:n}", "device_id", "ok-ident-3", "identity")};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        expect_accepted(c, ok[i]);
        json_decref(ok[i]);
    }
    free(max_ident);
}

static void test_binary_first_frame(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "not_identified");
    static const char id[] = "{\"device_id\":\"bin-first\"}";
    /* even a valid identify, sent as binary, is refused */
    expect_rejected_first(c, id, strlen(id), 1, "not_identified", 1008);
    expect_rejected_first(c, "\x00\xff\x01", 3, 1, "not_identified", 1008);
    assert_int_equal(fe_error_count(admin, "not_identified"), before + 2);
}

static void test_identify_timeout(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "identify_timeout");
    long long timeouts = fe_metric(admin, "rrm_identify_timeouts_total");
    assert_true(before >= 0 && timeouts >= 0);
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "to-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "to-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);

    struct wsc *idle = fe_connect(c, 0);
    assert_non_null(idle);
    int64_t t0 = proc_now_ms();
    assert_int_equal(fe_expect_error(idle, "identify_timeout", T), 0);
    assert_int_equal(fe_expect_close(idle, T), 1008);
    print_message("identify timeout (configured 500 ms) closed the idle connection after %lld ms\n",
                  (long long)(proc_now_ms() - t0));
    assert_int_equal(fe_error_count(admin, "identify_timeout"), before + 1);
    assert_int_equal(fe_metric(admin, "rrm_identify_timeouts_total"), timeouts + 1);

    /* identified clients are not subject to it */
    marker(a, "to-a", b, "still fine");
    marker(b, "to-b", a, "me too");
}

static void expect_closed_too_big(struct wsc *ws, const char *what) {
    int code = fe_expect_close(ws, T);
    if (code != 1009)
        fail_msg("%s: close code %d, want 1009 (and no frame before it)", what, code);
}

static void test_frame_too_big(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "message_too_big");
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "big-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "big-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);

    /* exactly the limit is fine: {"type":"text","content":"xxx..."} of MAX_FRAME bytes */
    static const char head[] = "{\"type\":\"text\",\"content\":\"";
    char *msg = malloc(MAX_FRAME + 2);
    assert_non_null(msg);
    size_t hl = strlen(head);
    memcpy(msg, head, hl);
    memset(msg + hl, 'x', MAX_FRAME - hl - 2);
    memcpy(msg + MAX_FRAME - 2, "\"}", 3);
    assert_int_equal(strlen(msg), MAX_FRAME);
    assert_int_equal(wsc_send_text(a, msg), 0);
    json_t *m = fe_expect_type(b, "text", T);
    assert_non_null(m);
    assert_int_equal(strlen(fe_str(m, "content")), MAX_FRAME - hl - 2);
    json_decref(m);
    /* the same size in fragments, too */
    assert_int_equal(wsc_send_fragmented(a, WSC_OP_TEXT, msg, MAX_FRAME, 1000), 0);
    m = fe_expect_type(b, "text", T);
    assert_non_null(m);
    json_decref(m);

    /* one byte more: closed with 1009, no error frame */
    memcpy(msg + MAX_FRAME - 2, "x\"}", 4);
    assert_int_equal(strlen(msg), MAX_FRAME + 1);
    assert_int_equal(wsc_send_text(a, msg), 0);
    expect_closed_too_big(a, "text frame of limit + 1");

    /* fragmented: each fragment is small, the message is not */
    struct wsc *f = fe_join(c, 0, "big-f", NULL, room, NULL);
    assert_non_null(f);
    assert_int_equal(wsc_send_fragmented(f, WSC_OP_TEXT, msg, MAX_FRAME + 1, 1000), 0);
    expect_closed_too_big(f, "fragmented text message of limit + 1");

    /* binary, and as the very first frame */
    struct wsc *g = fe_join(c, 0, "big-g", NULL, room, NULL);
    assert_non_null(g);
    assert_int_equal(wsc_send(g, WSC_OP_BINARY, msg, MAX_FRAME + 1), 0);
    expect_closed_too_big(g, "binary frame of limit + 1");
    struct wsc *h = fe_connect(c, 0);
    assert_non_null(h);
    assert_int_equal(wsc_send_text(h, msg), 0);
    expect_closed_too_big(h, "first frame of limit + 1");
    free(msg);

    assert_int_equal(fe_error_count(admin, "message_too_big"), before + 4);
    /* b saw none of it and still works */
    struct wsc *d = fe_join(c, 0, "big-d", NULL, room, NULL);
    assert_non_null(d);
    marker(d, "big-d", b, "after big");
}

/* Over the rate the sender is slowed, not refused: reading its socket pauses until the bucket
 * allows the next message, so every message is relayed, in order, and no error is sent. */
static void test_rate_limited(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "rate_limited");
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "rate-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "rate-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);

    /* 5 per second with a burst of 5: a quick burst of 15 takes about 2 s */
    enum { N = 15 };
    int64_t t0 = proc_now_ms();
    for (int i = 0; i < N; i++)
        assert_int_equal(fe_send_json(a, json_pack("{s:s, s:i}", "type", "burst", "i", i)), 0);
    for (int i = 0; i < N; i++) {
        json_t *j = fe_expect_type(b, "burst", T);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(j, "i")), i);
        json_decref(j);
    }
    int64_t took = proc_now_ms() - t0;
    print_message("burst of %d at 5 msg/s relayed in %lld ms\n", N, (long long)took);
    assert_true(took >= 1500);
    assert_true(fe_metric(admin, "rrm_read_paused_seconds_total{reason=\"rate\"}") >= 1);

    /* nothing was sent back to the sender: the next frame is the answer to its query */
    json_t *info = fe_query_room(a, T);
    assert_non_null(info);
    json_decref(info);
    assert_int_equal(fe_error_count(admin, "rate_limited"), before);
    /* the other client is not limited by a's traffic */
    marker(b, "rate-b", a, "b is fine");
}

static void test_reserved_types_after_identify(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "reserved_type");
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "res-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "res-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    static const char *const types[] = {"connection", "room", "room_info", "error"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(fe_send_json(a, json_pack("{s:s, s:s, s:s}", "type", types[i], "room_id",
                                                   room, "code", "fake")),
                         0);
        assert_int_equal(fe_expect_error(a, "reserved_type", T), 0);
    }
    assert_int_equal(fe_error_count(admin, "reserved_type"), before + 4);
    /* nothing reached b, and a is still connected */
    marker(a, "res-a", b, "after reserved");
    expect_alive(a);
}

static void test_invalid_json_after_identify(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "invalid_json");
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "ij-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "ij-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    static const char *const bad[] = {"{oops",
                                      "",
                                      "[1,",
                                      "{\"a\":1}{",
                                      "nul",
                                      "{'a':1}",
                                      "{\"type\":\"text\",\"content\":\"x\"} trailing"};
    size_t n = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(wsc_send_text(a, bad[i]), 0);
        if (fe_expect_error(a, "invalid_json", T) != 0)
            fail_msg("'%s' after identify was not answered with invalid_json", bad[i]);
    }
    /* a raw NUL is not JSON either, also where jansson skips it (after a number): not relayed */
    static const char nul[] = "{\"type\":\"text\",\"n\":1\0}";
    assert_int_equal(wsc_send(a, WSC_OP_TEXT, nul, sizeof(nul) - 1), 0);
    assert_int_equal(fe_expect_error(a, "invalid_json", T), 0);
    assert_int_equal(fe_error_count(admin, "invalid_json"), before + (long long)n + 1);
    marker(a, "ij-a", b, "after invalid json");
    expect_alive(a);
}

/* Poll until the gauge rrm_open_connections equals want. */
static void wait_connections(int admin_port, long long want) {
    int64_t deadline = proc_now_ms() + 10000;
    long long v;
    while ((v = fe_metric(admin_port, "rrm_open_connections")) != want) {
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("rrm_open_connections stayed %lld, want %lld", v, want);
        fe_poll_pause();
    }
}

static void test_server_full(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    int admin = fe_admin_port(c, 0);
    long long before = fe_error_count(admin, "server_full");
    long long refused = fe_metric(admin, "rrm_connections_refused_total");
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "full-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "full-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    wait_connections(admin, 2);

    for (int i = 0; i < 2; i++) {
        struct wsc *x = fe_connect(c, 0);
        assert_non_null(x);
        assert_int_equal(fe_expect_error(x, "server_full", T), 0);
        assert_int_equal(fe_expect_close(x, T), 1013);
        fe_close(c, x);
    }
    assert_int_equal(fe_error_count(admin, "server_full"), before + 2);
    assert_int_equal(fe_metric(admin, "rrm_connections_refused_total"), refused + 2);
    /* probes keep working at the limit, and so do the admitted clients */
    assert_int_equal(fe_wait_ready(port, 200, T), 0);
    marker(a, "full-a", b, "at the limit");

    /* a freed slot can be used again */
    fe_close(c, a);
    wait_connections(admin, 1);
    struct wsc *d = fe_join(c, 0, "full-d", NULL, room, NULL);
    assert_non_null(d);
    marker(d, "full-d", b, "took the slot");
}

static void test_garbage_does_not_affect_others(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "gb-a", "A", NULL, room);
    struct wsc *b = fe_join(c, 0, "gb-b", "B", room, NULL);
    struct wsc *g = fe_join(c, 0, "gb-g", "G", room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(g);

    /* fatal garbage on several connections: invalid UTF-8, a reserved opcode, a continuation
     * without a start, a truncated frame header followed by a close, bytes with the reserved
     * bits set, a ping and then a bad identify */
    struct wsc *bad[6];
    for (int i = 0; i < 4; i++) {
        char dev[32];
        snprintf(dev, sizeof(dev), "gb-bad-%d", i);
        bad[i] = fe_join(c, 0, dev, NULL, room, NULL);
        assert_non_null(bad[i]);
    }
    assert_int_equal(wsc_send(bad[0], WSC_OP_TEXT, "{\"content\":\"\xff\xfe\"}", 16), 0);
    assert_int_equal(wsc_send(bad[1], 0x3, "x", 1), 0);
    assert_int_equal(wsc_send_frame(bad[2], 1, WSC_OP_CONT, "{\"a\":1}", 7, 1), 0);
    assert_int_equal(wsc_send_raw(bad[3], "\x81\xfe\xff", 3), 0);
    assert_int_equal(wsc_send_close(bad[3], 1000, NULL), 0);
    bad[4] = fe_connect(c, 0);
    bad[5] = fe_connect(c, 0);
    assert_non_null(bad[4]);
    assert_non_null(bad[5]);
    assert_int_equal(wsc_send_raw(bad[4], "GET / HTTP/1.1\r\n\r\n\x00\x01\x02", 21), 0);
    assert_int_equal(wsc_send(bad[5], WSC_OP_PING, "hello?", 6), 0);
    assert_int_equal(wsc_send_text(bad[5], "{\"device_id\":\"\"}"), 0);
    for (int i = 0; i < 6; i++) {
        int code = fe_wait_close(bad[i], T);
        if (code < 1000)
            fail_msg("garbage connection %d was not closed (%d)", i, code);
        fe_close(c, bad[i]);
    }
    /* the members that sent garbage left; the others noticed nothing and carry on */
    marker(a, "gb-a", b, "m1");
    marker(b, "gb-b", a, "m2");
    /* g, a member all along, got exactly the others' messages, in order */
    fe_expect_text(g, "gb-a", NULL, "m1");
    fe_expect_text(g, "gb-b", NULL, "m2");
    marker(g, "gb-g", a, "g is fine");
    fe_expect_text(b, "gb-g", NULL, "g is fine");
    int code = 0;
    assert_int_equal(proc_http_get(port, "/healthz", T, &code, NULL), 0);
    assert_int_equal(code, 200);
    int64_t deadline = proc_now_ms() + 10000;
    for (;;) {
        json_t *info = fe_query_room(a, T);
        assert_non_null(info);
        json_int_t total = json_integer_value(json_object_get(info, "total_clients"));
        json_decref(info);
        if (total == 3)
            break;
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("room still has %d members, want 3 (a, b, g)", (int)total);
        fe_poll_pause();
    }

    /* recoverable garbage from a member: each answered to g alone, g stays */
    assert_int_equal(wsc_send_text(g, "}{"), 0);
    assert_int_equal(fe_expect_error(g, "invalid_json", T), 0);
    assert_int_equal(wsc_send_text(g, "{\"type\":\"error\",\"code\":\"replaced\"}"), 0);
    assert_int_equal(fe_expect_error(g, "reserved_type", T), 0);
    assert_int_equal(wsc_send_text(g, "{\"type\":\"connection\",\"status\":\"connected\"}"), 0);
    assert_int_equal(fe_expect_error(g, "reserved_type", T), 0);
    marker(a, "gb-a", b, "m3");
    marker(b, "gb-b", a, "m4");
    fe_expect_text(g, "gb-a", NULL, "m3");
    fe_expect_text(g, "gb-b", NULL, "m4");
    marker(g, "gb-g", b, "g still fine");
}

/* Connections that close before a request (port probes, scanners) or in the middle of one must
 * not take the node down. */
static void test_aborted_connections(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    static const char partial[] = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websock";
    for (int i = 0; i < 20; i++) {
        int fd = proc_tcp_connect("127.0.0.1", port, T);
        assert_true(fd >= 0);
        if (i % 2)
            assert_int_equal(write(fd, partial, sizeof(partial) - 1), (ssize_t)sizeof(partial) - 1);
        close(fd);
    }
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "probe-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "probe-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    marker(a, "probe-a", b, "still serving");
    int status = 0;
    char *body = NULL;
    assert_int_equal(proc_http_get(port, "/healthz", T, &status, &body), 0);
    assert_int_equal(status, 200);
    free(body);
}

static void test_slow_consumer_cut_off(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long slow_before = fe_metric(admin, "rrm_slow_consumers_total");
    assert_true(slow_before >= 0);
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "slow-sender", NULL, NULL, room);
    struct wsc *s = fe_join(c, 0, "slow-reader", NULL, room, NULL);
    struct wsc *f = fe_join(c, 0, "fast-reader", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(s);
    assert_non_null(f);

    /* ~60 KB messages; s never reads, f reads every one as it comes */
    enum { PAD = 60000, MAX_MSGS = 800 };
    char *pad = repeat('p', PAD);
    int sent = 0;
    long long slow = slow_before;
    while (sent < MAX_MSGS && slow == slow_before) {
        assert_int_equal(
            fe_send_json(a, json_pack("{s:s, s:i, s:s}", "type", "bulk", "i", sent, "pad", pad)),
            0);
        json_t *m = fe_expect_type(f, "bulk", T);
        assert_non_null(m);
        assert_int_equal(json_integer_value(json_object_get(m, "i")), sent);
        json_decref(m);
        sent++;
        if (sent % 10 == 0)
            slow = fe_metric(admin, "rrm_slow_consumers_total");
    }
    free(pad);
    print_message("slow consumer cut off after %d messages (%.1f MB)\n", sent,
                  sent * (PAD + 100) / 1e6);
    assert_int_equal(slow, slow_before + 1);

    /* s's connection ends (after whatever was already in its socket buffers) */
    int code = fe_wait_close(s, 30000);
    assert_true(code >= 1000);
    /* the sender and the fast reader are unaffected; s is no longer a member */
    marker(a, "slow-sender", f, "after the cut");
    marker(f, "fast-reader", a, "f is fine");
    int64_t deadline = proc_now_ms() + 10000;
    for (;;) {
        json_t *info = fe_query_room(a, T);
        assert_non_null(info);
        int listed = fe_has_client(info, "slow-reader");
        json_decref(info);
        if (!listed)
            break;
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("slow-reader still listed in room_info after it was cut off");
        fe_poll_pause();
    }
}

static void test_redis_down_unavailable(void **state) {
    struct fe_cluster *c = *state;
    if (!fe_redis(c))
        skip(); /* one Redis stopped: a cluster's failovers are tested on their own */
    int port = fe_port(c, 0);
    int admin = fe_admin_port(c, 0);
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "down-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "down-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    long long before = fe_error_count(admin, "unavailable");
    assert_true(before >= 0);

    assert_int_equal(redis_server_stop(fe_redis(c)), 0);
    assert_int_equal(fe_wait_ready(port, 503, 15000), 0);
    /* /status still answers, with this node only */
    int code = 0;
    char *page = NULL;
    assert_int_equal(proc_http_get(admin, "/status.json", T, &code, &page), 0);
    assert_int_equal(code, 200);
    assert_non_null(strstr(page, "\"cluster\":null"));
    assert_non_null(strstr(page, "\"redis_up\":false"));
    free(page);

    /* the node stays up and answers every action with "unavailable" */
    code = 0;
    assert_int_equal(proc_http_get(port, "/healthz", T, &code, NULL), 0);
    assert_int_equal(code, 200);
    fe_send_text(a, "lost");
    assert_int_equal(fe_expect_error(a, "unavailable", T), 0);
    assert_int_equal(wsc_send_text(a, "{\"type\":\"query_room\"}"), 0);
    assert_int_equal(fe_expect_error(a, "unavailable", T), 0);
    assert_int_equal(wsc_send(a, WSC_OP_BINARY, "\x01", 1), 0);
    assert_int_equal(fe_expect_error(a, "unavailable", T), 0);
    struct wsc *n = fe_connect(c, 0);
    assert_non_null(n);
    assert_int_equal(wsc_send_text(n, "{\"device_id\":\"down-new\"}"), 0);
    assert_int_equal(fe_expect_error(n, "unavailable", T), 0);
    assert_int_equal(fe_expect_close(n, T), 1013);
    fe_close(c, n);
    assert_int_equal(fe_error_count(admin, "unavailable"), before + 4);

    /* Redis comes back (empty): the node recovers by itself. Ready comes first; the node puts
     * its members back one Redis round trip later (a message sent in between would find no
     * membership), so the test waits for the room to be whole again. */
    assert_int_equal(redis_server_restart(fe_redis(c)), 0);
    assert_int_equal(fe_wait_ready(port, 200, 15000), 0);
    redisContext *r = fe_redis_client(c);
    assert_non_null(r);
    long long members = 0;
    for (int64_t deadline = proc_now_ms() + 15000; members < 2 && proc_now_ms() < deadline;) {
        redisReply *reply = redisCommand(r, "HLEN %s", fe_room_key(room, ":members"));
        members = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
        freeReplyObject(reply);
        if (members < 2)
            fe_poll_pause();
    }
    redisFree(r);
    assert_int_equal(members, 2);
    fe_expect_restored(a, room);
    fe_expect_restored(b, room);
    marker(a, "down-a", b, "back");
    marker(b, "down-b", a, "back too");
    json_t *info = fe_query_room(a, T);
    assert_non_null(info);
    assert_int_equal(json_integer_value(json_object_get(info, "total_clients")), 2);
    assert_true(fe_has_client(info, "down-b"));
    json_decref(info);
    struct wsc *d = fe_join(c, 0, "down-new", NULL, room, NULL);
    assert_non_null(d);
    marker(d, "down-new", b, "new after outage");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_aborted_connections, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_first_frame_invalid_json, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_first_frame_not_identify, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_bad_device_id, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_bad_room_id, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_bad_identity, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_binary_first_frame, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_identify_timeout, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_frame_too_big, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_rate_limited, setup_rate, fe_teardown),
        cmocka_unit_test_setup_teardown(test_reserved_types_after_identify, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_json_after_identify, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_server_full, setup_full, fe_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_does_not_affect_others, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_slow_consumer_cut_off, setup_slow, fe_teardown),
        cmocka_unit_test_setup_teardown(test_redis_down_unavailable, setup, fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
