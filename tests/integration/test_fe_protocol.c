/*
 * test_fe_protocol.c - the client protocol of rrm-frontend end to end (BRIEF §2): identify
 * answers, room ids, named rooms, relay envelope and anti-spoofing, per-room seq, wrapping of
 * non-object values, binary relay, query_room across two nodes, room isolation and frames
 * pipelined behind the identify.
 *
 * One cluster (redis + node-a + node-b) serves the whole file; every test uses its own device
 * and room ids, and its clients are closed by the per-test teardown.
 */
#include "fe_harness.h"
#include "proc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS

static int group_setup(void **state) {
    static const char *const env[] = {"RRM_MAX_MSGS_PER_SEC=1000", NULL};
    struct fe_cluster *c = fe_cluster_start(2, env);
    *state = c;
    return c ? 0 : -1;
}

static int group_teardown(void **state) {
    return fe_cluster_stop(*state);
}

static int close_clients(void **state) {
    fe_close_all(*state);
    return 0;
}

/* 1 if s is a 6-character id of A-Z and 0-9. */
static int is_auto_room_id(const char *s) {
    if (!s || strlen(s) != 6)
        return 0;
    for (size_t i = 0; i < 6; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

static void test_identify_answers(void **state) {
    struct fe_cluster *c = *state;
    json_t *conn = NULL, *room = NULL;
    /* unknown fields in the identify are ignored */
    json_t *id = json_pack("{s:s, s:s, s:s, s:i}", "device_id", "proto-ident-1", "identity",
                           "Alice", "client_version", "1.2.3", "extra", 7);
    int64_t before = fe_wall_ms();
    struct wsc *ws = fe_track(c, client_join_ex(fe_port(c, 0), id, &conn, &room));
    int64_t after = fe_wall_ms();
    json_decref(id);
    assert_non_null(ws);

    assert_string_equal(fe_str(conn, "type"), "connection");
    assert_string_equal(fe_str(conn, "status"), "connected");
    assert_string_equal(fe_str(conn, "device_id"), "proto-ident-1");
    assert_string_equal(fe_str(conn, "node_id"), "node-a");
    char conn_id[96];
    assert_non_null(fe_str(conn, "conn_id"));
    snprintf(conn_id, sizeof(conn_id), "%s", fe_str(conn, "conn_id"));
    assert_true(strlen(conn_id) > 0);
    json_t *st = json_object_get(conn, "server_time");
    assert_true(json_is_integer(st));
    /* the server's wall clock is this machine's: the answer was stamped between before/after */
    assert_true(json_integer_value(st) >= before - 1000);
    assert_true(json_integer_value(st) <= after + 1000);

    assert_string_equal(fe_str(room, "type"), "room");
    assert_true(is_auto_room_id(fe_str(room, "room_id")));
    assert_string_equal(fe_str(room, "action"), "created");
    assert_int_equal(json_integer_value(json_object_get(room, "total_clients")), 1);
    json_decref(conn);
    json_decref(room);

    /* a second connection has a different conn_id, on node-b with node-b's id */
    id = json_pack("{s:s}", "device_id", "proto-ident-2");
    struct wsc *ws2 = fe_track(c, client_join_ex(fe_port(c, 1), id, &conn, &room));
    json_decref(id);
    assert_non_null(ws2);
    assert_string_equal(fe_str(conn, "node_id"), "node-b");
    assert_string_equal(fe_str(conn, "device_id"), "proto-ident-2");
    assert_string_not_equal(fe_str(conn, "conn_id"), conn_id);
    json_decref(conn);
    json_decref(room);
}

static void test_auto_room_ids(void **state) {
    struct fe_cluster *c = *state;
    enum { N = 12 };
    char rooms[N][FE_ROOM_CAP];
    for (int i = 0; i < N; i++) {
        char dev[32];
        snprintf(dev, sizeof(dev), "proto-auto-%d", i);
        /* "" and null also mean "no room" */
        json_t *id = i % 3 == 0   ? json_pack("{s:s}", "device_id", dev)
                     : i % 3 == 1 ? json_pack("{s:s, s:s}", "device_id", dev, "room_id", "")
                                  : json_pack("{s:s, s:n}", "device_id", dev, "room_id");
        json_t *room = NULL;
        struct wsc *ws = fe_track(c, client_join_ex(fe_port(c, i % 2), id, NULL, &room));
        json_decref(id);
        assert_non_null(ws);
        const char *r = fe_str(room, "room_id");
        assert_true(is_auto_room_id(r));
        assert_string_equal(fe_str(room, "action"), "created");
        assert_int_equal(json_integer_value(json_object_get(room, "total_clients")), 1);
        snprintf(rooms[i], sizeof(rooms[i]), "%s", r);
        json_decref(room);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(rooms[i], rooms[j]);
    }
}

static void test_named_room_create_join(void **state) {
    struct fe_cluster *c = *state;
    json_t *room = NULL;
    json_t *id = json_pack("{s:s, s:s}", "device_id", "proto-named-a", "room_id", "proto-named");
    struct wsc *a = fe_track(c, client_join_ex(fe_port(c, 0), id, NULL, &room));
    json_decref(id);
    assert_non_null(a);
    assert_string_equal(fe_str(room, "room_id"), "proto-named");
    assert_string_equal(fe_str(room, "action"), "created");
    assert_int_equal(json_integer_value(json_object_get(room, "total_clients")), 1);
    json_decref(room);

    id = json_pack("{s:s, s:s}", "device_id", "proto-named-b", "room_id", "proto-named");
    struct wsc *b = fe_track(c, client_join_ex(fe_port(c, 1), id, NULL, &room));
    json_decref(id);
    assert_non_null(b);
    assert_string_equal(fe_str(room, "room_id"), "proto-named");
    assert_string_equal(fe_str(room, "action"), "joined");
    assert_int_equal(json_integer_value(json_object_get(room, "total_clients")), 2);
    json_decref(room);

    id = json_pack("{s:s, s:s}", "device_id", "proto-named-c", "room_id", "proto-named");
    struct wsc *cc = fe_track(c, client_join_ex(fe_port(c, 0), id, NULL, &room));
    json_decref(id);
    assert_non_null(cc);
    assert_string_equal(fe_str(room, "action"), "joined");
    assert_int_equal(json_integer_value(json_object_get(room, "total_clients")), 3);
    json_decref(room);
}

static void test_relay_others_only_no_spoofing(void **state) {
    struct fe_cluster *c = *state;
    const char *room = "proto-relay";
    struct wsc *a = fe_join(c, 0, "proto-relay-a", "A", room, NULL);
    struct wsc *b = fe_join(c, 0, "proto-relay-b", "B", room, NULL);
    struct wsc *d = fe_join(c, 1, "proto-relay-c", "C", room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(d);

    int64_t before = fe_wall_ms();
    assert_int_equal(wsc_send_text(a, "{\"type\":\"text\",\"content\":\"hello\","
                                      "\"from_device_id\":\"evil\",\"room_id\":\"OTHER\","
                                      "\"ts\":1,\"seq\":999,\"extra\":{\"k\":[1,2,\"x\"]}}"),
                     0);
    struct wsc *receivers[] = {b, d};
    for (size_t i = 0; i < 2; i++) {
        json_t *m = fe_expect_relay(receivers[i], "text", "proto-relay-a", room);
        int64_t after = fe_wall_ms();
        assert_string_equal(fe_str(m, "content"), "hello");
        json_t *want_extra = json_pack("{s:[i,i,s]}", "k", 1, 2, "x");
        assert_true(json_equal(json_object_get(m, "extra"), want_extra));
        json_decref(want_extra);
        json_int_t ts = json_integer_value(json_object_get(m, "ts"));
        assert_true(ts >= before - 1000 && ts <= after + 1000);
        assert_int_not_equal(json_integer_value(json_object_get(m, "seq")), 999);
        /* nothing but the client's fields and the four server fields */
        assert_int_equal(json_object_size(m), 7);
        json_decref(m);
    }

    /* The sender never gets its own message: b answers after receiving it, and a's next frame
     * must be b's answer (an echo would have been published, and delivered, before it). */
    fe_send_text(b, "answer");
    fe_expect_text(a, "proto-relay-b", room, "answer");
    fe_expect_text(d, "proto-relay-b", room, "answer");
    /* the same check for the sender on the other node */
    fe_send_text(d, "from-c");
    fe_expect_text(a, "proto-relay-c", room, "from-c");
    fe_expect_text(b, "proto-relay-c", room, "from-c");
    fe_send_text(a, "last");
    fe_expect_text(b, "proto-relay-a", room, "last");
    fe_expect_text(d, "proto-relay-a", room, "last");
}

static void test_seq_strictly_increasing(void **state) {
    struct fe_cluster *c = *state;
    const char *room = "proto-seq";
    struct wsc *a = fe_join(c, 0, "proto-seq-a", NULL, room, NULL);
    struct wsc *b = fe_join(c, 1, "proto-seq-b", NULL, room, NULL);
    struct wsc *r = fe_join(c, 0, "proto-seq-r", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(r);
    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        struct wsc *s = i % 2 ? b : a;
        assert_int_equal(fe_send_json(s, json_pack("{s:s, s:i}", "type", "tick", "i", i)), 0);
    }
    json_int_t last = 0;
    int next_a = 0, next_b = 1;
    for (int i = 0; i < N; i++) {
        json_t *m = fe_expect_type(r, "tick", T);
        assert_non_null(m);
        json_int_t seq = json_integer_value(json_object_get(m, "seq"));
        assert_true(seq > last);
        last = seq;
        /* each sender's own messages stay in order */
        int idx = (int)json_integer_value(json_object_get(m, "i"));
        if (strcmp(fe_str(m, "from_device_id"), "proto-seq-a") == 0) {
            assert_int_equal(idx, next_a);
            next_a += 2;
        } else {
            assert_string_equal(fe_str(m, "from_device_id"), "proto-seq-b");
            assert_int_equal(idx, next_b);
            next_b += 2;
        }
        json_decref(m);
    }
    assert_int_equal(next_a, N);
    assert_int_equal(next_b, N + 1);
    /* b saw a's messages with the same room sequence: increasing too */
    last = 0;
    for (int i = 0; i < N / 2; i++) {
        json_t *m = fe_expect_relay(b, "tick", "proto-seq-a", room);
        json_int_t seq = json_integer_value(json_object_get(m, "seq"));
        assert_true(seq > last);
        last = seq;
        json_decref(m);
    }
}

static void test_non_object_wrapping(void **state) {
    struct fe_cluster *c = *state;
    const char *room = "proto-wrap";
    struct wsc *a = fe_join(c, 0, "proto-wrap-a", NULL, room, NULL);
    struct wsc *b = fe_join(c, 1, "proto-wrap-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    static const char *const values[] = {
        "42", "\"hi\"", "[1,2]", "null", "true", "3.5", "[{\"type\":\"text\"}]", "\"\""};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        assert_int_equal(wsc_send_text(a, values[i]), 0);
        json_t *m = fe_expect_relay(b, "message", "proto-wrap-a", room);
        json_error_t err;
        json_t *want = json_loads(values[i], JSON_DECODE_ANY, &err);
        assert_non_null(want);
        json_t *data = json_object_get(m, "data");
        if (!data || !json_equal(data, want))
            fail_msg("value %s was relayed as data=%s", values[i],
                     data ? json_dumps(data, JSON_ENCODE_ANY) : "(missing)");
        assert_int_equal(json_object_size(m), 6); /* type, data + 4 server fields */
        json_decref(want);
        json_decref(m);
    }
    /* an empty object is relayed as an object carrying only the server fields */
    assert_int_equal(wsc_send_text(a, "{}"), 0);
    json_t *m = wsc_recv_json(b, T);
    assert_non_null(m);
    assert_int_equal(json_object_size(m), 4);
    assert_string_equal(fe_str(m, "from_device_id"), "proto-wrap-a");
    assert_string_equal(fe_str(m, "room_id"), room);
    assert_true(json_integer_value(json_object_get(m, "seq")) > 0);
    json_decref(m);
}

static void test_binary_byte_for_byte(void **state) {
    struct fe_cluster *c = *state;
    const char *room = "proto-bin";
    struct wsc *a = fe_join(c, 0, "proto-bin-a", NULL, room, NULL);
    struct wsc *b = fe_join(c, 1, "proto-bin-b", NULL, room, NULL);
    struct wsc *d = fe_join(c, 0, "proto-bin-c", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(d);
    /* every byte value, a NUL-heavy and a 0xFF-heavy block, and something that looks like JSON */
    size_t lens[] = {256, 1, 3000, 13};
    for (size_t t = 0; t < sizeof(lens) / sizeof(lens[0]); t++) {
        unsigned char *buf = malloc(lens[t]);
        assert_non_null(buf);
        for (size_t i = 0; i < lens[t]; i++) {
            switch (t) {
            case 0:
                buf[i] = (unsigned char)i;
                break;
            case 1:
                buf[i] = 0x00;
                break;
            case 2:
                buf[i] = (unsigned char)(i % 7 == 0 ? 0x00 : i % 5 == 0 ? 0xFF : (i * 31) & 0xFF);
                break;
            default:
                buf[i] = (unsigned char)"{\"type\":\"x\"}\xff"[i];
                break;
            }
        }
        assert_int_equal(wsc_send(a, WSC_OP_BINARY, buf, lens[t]), 0);
        struct wsc *receivers[] = {b, d};
        for (size_t r = 0; r < 2; r++) {
            struct wsc_msg m;
            assert_int_equal(wsc_recv(receivers[r], &m, T), 0);
            assert_int_equal(m.opcode, WSC_OP_BINARY);
            assert_int_equal(m.len, lens[t]);
            assert_memory_equal(m.data, buf, lens[t]);
            wsc_msg_free(&m);
        }
        free(buf);
    }
    /* fragmented messages are reassembled and relayed as one message of the same kind */
    unsigned char big[5000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)(255 - i % 256);
    assert_int_equal(wsc_send_fragmented(a, WSC_OP_BINARY, big, sizeof(big), 999), 0);
    struct wsc_msg m;
    assert_int_equal(wsc_recv(b, &m, T), 0);
    assert_int_equal(m.opcode, WSC_OP_BINARY);
    assert_int_equal(m.len, sizeof(big));
    assert_memory_equal(m.data, big, sizeof(big));
    wsc_msg_free(&m);
    static const char frag_text[] = "{\"type\":\"text\",\"content\":\"in pieces\"}";
    assert_int_equal(wsc_send_fragmented(a, WSC_OP_TEXT, frag_text, strlen(frag_text), 5), 0);
    json_t *j = fe_expect_type(b, "text", T);
    assert_non_null(j);
    assert_string_equal(fe_str(j, "content"), "in pieces");
    json_decref(j);
    assert_int_equal(wsc_recv(d, &m, T), 0);
    assert_int_equal(m.opcode, WSC_OP_BINARY);
    assert_int_equal(m.len, sizeof(big));
    wsc_msg_free(&m);
    fe_expect_text(d, "proto-bin-a", room, "in pieces");

    /* the sender got none of it: its next frame is b's text */
    fe_send_text(b, "after-binary");
    fe_expect_text(a, "proto-bin-b", room, "after-binary");
    fe_expect_text(d, "proto-bin-b", room, "after-binary");
}

/* Finds the clients entry for device in a room_info and checks its exact shape. */
static void expect_client(json_t *info, const char *device, const char *identity) {
    json_t *clients = json_object_get(info, "clients");
    size_t i;
    json_t *cl;
    json_array_foreach(clients, i, cl) {
        if (strcmp(fe_str(cl, "device_id"), device) == 0) {
            assert_string_equal(fe_str(cl, "identity"), identity);
            assert_int_equal(json_object_size(cl), 2);
            return;
        }
    }
    fail_msg("room_info does not list %s", device);
}

static void test_query_room_cross_node(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "proto-q-a", "Alice", NULL, room);
    assert_non_null(a);
    struct wsc *b = fe_join(c, 1, "proto-q-b", "Bob", room, NULL);
    struct wsc *d = fe_join(c, 1, "proto-q-c", "Carol \xc3\xa9 \"q\"", room, NULL);
    assert_non_null(b);
    assert_non_null(d);

    json_t *info = fe_query_room(a, T);
    assert_non_null(info);
    assert_string_equal(fe_str(info, "type"), "room_info");
    assert_string_equal(fe_str(info, "room_id"), room);
    assert_int_equal(json_integer_value(json_object_get(info, "total_clients")), 3);
    assert_true(json_is_array(json_object_get(info, "clients")));
    assert_int_equal(json_array_size(json_object_get(info, "clients")), 2);
    expect_client(info, "proto-q-b", "Bob");
    expect_client(info, "proto-q-c", "Carol \xc3\xa9 \"q\"");
    assert_false(fe_has_client(info, "proto-q-a"));
    assert_int_equal(json_object_size(info), 4);
    json_decref(info);

    info = fe_query_room(b, T);
    assert_non_null(info);
    assert_string_equal(fe_str(info, "room_id"), room);
    assert_int_equal(json_integer_value(json_object_get(info, "total_clients")), 3);
    assert_int_equal(json_array_size(json_object_get(info, "clients")), 2);
    expect_client(info, "proto-q-a", "Alice");
    expect_client(info, "proto-q-c", "Carol \xc3\xa9 \"q\"");
    json_decref(info);

    /* a query is answered to the asker only: the others' next frame is a later relay */
    fe_send_text(a, "after-query");
    fe_expect_text(b, "proto-q-a", room, "after-query");
    fe_expect_text(d, "proto-q-a", room, "after-query");

    /* a member that leaves is no longer listed (wait for the node to process the close) */
    fe_close(c, d);
    int64_t deadline = proc_now_ms() + 10000;
    for (;;) {
        info = fe_query_room(a, T);
        assert_non_null(info);
        json_int_t total = json_integer_value(json_object_get(info, "total_clients"));
        int listed = fe_has_client(info, "proto-q-c");
        json_decref(info);
        if (total == 2 && !listed)
            break;
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("proto-q-c still in room_info 10 s after it disconnected");
        fe_poll_pause();
    }
}

static void test_room_isolation(void **state) {
    struct fe_cluster *c = *state;
    struct wsc *a = fe_join(c, 0, "proto-iso-a", NULL, "proto-iso-1", NULL);
    struct wsc *b = fe_join(c, 1, "proto-iso-b", NULL, "proto-iso-1", NULL);
    struct wsc *x = fe_join(c, 0, "proto-iso-x", NULL, "proto-iso-2", NULL);
    struct wsc *y = fe_join(c, 1, "proto-iso-y", NULL, "proto-iso-2", NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(x);
    assert_non_null(y);

    fe_send_text(a, "for-room-1");
    fe_send_text(x, "for-room-2");
    assert_int_equal(wsc_send(x, WSC_OP_BINARY, "\x00\x01", 2), 0);
    fe_expect_text(b, "proto-iso-a", "proto-iso-1", "for-room-1");
    fe_expect_text(y, "proto-iso-x", "proto-iso-2", "for-room-2");
    struct wsc_msg m;
    assert_int_equal(wsc_recv(y, &m, T), 0);
    assert_int_equal(m.opcode, WSC_OP_BINARY);
    wsc_msg_free(&m);

    /* Room 2's frames were published before these markers; had they leaked into room 1, a and
     * b would see them first. */
    fe_send_text(b, "marker-1");
    fe_expect_text(a, "proto-iso-b", "proto-iso-1", "marker-1");
    fe_send_text(a, "marker-2");
    fe_expect_text(b, "proto-iso-a", "proto-iso-1", "marker-2");
    fe_send_text(y, "marker-3");
    fe_expect_text(x, "proto-iso-y", "proto-iso-2", "marker-3");

    json_t *info = fe_query_room(a, T);
    assert_non_null(info);
    assert_int_equal(json_integer_value(json_object_get(info, "total_clients")), 2);
    assert_true(fe_has_client(info, "proto-iso-b"));
    assert_false(fe_has_client(info, "proto-iso-x"));
    assert_false(fe_has_client(info, "proto-iso-y"));
    json_decref(info);
}

static void test_pipelined_after_identify(void **state) {
    struct fe_cluster *c = *state;
    const char *room = "proto-pipe";
    struct wsc *b = fe_join(c, 1, "proto-pipe-b", NULL, room, NULL);
    assert_non_null(b);
    struct wsc *a = fe_connect(c, 0);
    assert_non_null(a);

    /* identify, three messages, a query and a binary frame in one burst, before any answer */
    assert_int_equal(
        wsc_send_text(a, "{\"device_id\":\"proto-pipe-a\",\"room_id\":\"proto-pipe\"}"), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fe_send_json(a, json_pack("{s:s, s:i}", "type", "piped", "i", i)), 0);
    assert_int_equal(wsc_send_text(a, "{\"type\":\"query_room\"}"), 0);
    assert_int_equal(wsc_send(a, WSC_OP_BINARY, "\xff\x00piped", 7), 0);

    json_t *conn = fe_expect_type(a, "connection", T);
    assert_non_null(conn);
    json_decref(conn);
    json_t *rf = fe_expect_type(a, "room", T);
    assert_non_null(rf);
    assert_string_equal(fe_str(rf, "action"), "joined");
    json_decref(rf);
    json_t *info = fe_expect_type(a, "room_info", T);
    assert_non_null(info);
    assert_int_equal(json_integer_value(json_object_get(info, "total_clients")), 2);
    assert_true(fe_has_client(info, "proto-pipe-b"));
    json_decref(info);

    for (int i = 0; i < 3; i++) {
        json_t *m = fe_expect_relay(b, "piped", "proto-pipe-a", room);
        assert_int_equal(json_integer_value(json_object_get(m, "i")), i);
        json_decref(m);
    }
    struct wsc_msg m;
    assert_int_equal(wsc_recv(b, &m, T), 0);
    assert_int_equal(m.opcode, WSC_OP_BINARY);
    assert_int_equal(m.len, 7);
    assert_memory_equal(m.data, "\xff\x00piped", 7);
    wsc_msg_free(&m);
}

static void test_ping_answered_not_relayed(void **state) {
    struct fe_cluster *c = *state;
    const char *room = "proto-ping";
    struct wsc *a = fe_join(c, 0, "proto-ping-a", NULL, room, NULL);
    struct wsc *b = fe_join(c, 1, "proto-ping-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(wsc_send(a, WSC_OP_PING, "are you there", 13), 0);
    /* b's marker is a's next data frame: the ping was not relayed */
    fe_send_text(b, "marker");
    fe_expect_text(a, "proto-ping-b", room, "marker");
    /* The pong may come before or after relayed frames (control frames may be interleaved):
     * read until it is counted; no data frame may arrive meanwhile. */
    int64_t deadline = proc_now_ms() + T;
    while (wsc_pong_count(a) < 1 && proc_remaining_ms(deadline) > 0) {
        struct wsc_msg m;
        int rc = wsc_recv(a, &m, 50);
        if (rc == 0) {
            wsc_msg_free(&m);
            fail_msg("a data frame arrived instead of the pong");
        }
        assert_int_equal(rc, -ETIMEDOUT);
    }
    assert_int_equal(wsc_pong_count(a), 1);
    fe_send_text(a, "marker-2");
    fe_expect_text(b, "proto-ping-a", room, "marker-2");
}

static void expect_http(int port, const char *path, int want_status, char **body) {
    int status = 0;
    char *b = NULL;
    assert_int_equal(proc_http_get(port, path, T, &status, &b), 0);
    if (status != want_status)
        fail_msg("GET %s: status %d, want %d (body '%.200s')", path, status, want_status,
                 b ? b : "");
    if (body)
        *body = b;
    else
        free(b);
}

static void test_http_endpoints(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    int admin = fe_admin_port(c, 0);
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "proto-http-a", NULL, NULL, room);
    assert_non_null(a);

    expect_http(port, "/healthz", 200, NULL);
    expect_http(port, "/readyz", 200, NULL);
    expect_http(port, "/no-such-page", 404, NULL);
    char *body = NULL;
    expect_http(admin, "/metrics", 200, &body);
    assert_non_null(strstr(body, "# TYPE rrm_open_connections gauge"));
    assert_non_null(strstr(body, "rrm_client_errors_total{code=\"invalid_json\"}"));
    free(body);
    assert_true(fe_metric(admin, "rrm_open_connections") >= 1);
    assert_true(fe_metric(admin, "rrm_messages_in_total") >= 0);
    assert_true(fe_metric(admin, "rrm_slow_consumers_total") >= 0);
    /* the status page's data shows this node and its rooms */
    expect_http(admin, "/status", 200, NULL);
    expect_http(admin, "/status.json", 200, &body);
    assert_non_null(strstr(body, "\"node_id\":\"node-a\""));
    assert_non_null(strstr(body, room));
    free(body);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_identify_answers, close_clients),
        cmocka_unit_test_teardown(test_auto_room_ids, close_clients),
        cmocka_unit_test_teardown(test_named_room_create_join, close_clients),
        cmocka_unit_test_teardown(test_relay_others_only_no_spoofing, close_clients),
        cmocka_unit_test_teardown(test_seq_strictly_increasing, close_clients),
        cmocka_unit_test_teardown(test_non_object_wrapping, close_clients),
        cmocka_unit_test_teardown(test_binary_byte_for_byte, close_clients),
        cmocka_unit_test_teardown(test_query_room_cross_node, close_clients),
        cmocka_unit_test_teardown(test_room_isolation, close_clients),
        cmocka_unit_test_teardown(test_pipelined_after_identify, close_clients),
        cmocka_unit_test_teardown(test_ping_answered_not_relayed, close_clients),
        cmocka_unit_test_teardown(test_http_endpoints, close_clients),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
