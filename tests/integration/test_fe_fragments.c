/*
 * test_fe_fragments.c - rrm-frontend assembles fragmented messages whatever the pieces look like:
 * empty first fragments, empty continuations and empty whole messages, before and after the
 * identify, text and binary. A message is what its fragments add up to; an empty one is answered
 * like any other invalid frame; the node keeps serving and exits cleanly (a sanitizer report
 * would make fe_teardown fail).
 *
 * Every test starts its own redis + one node (node-a).
 */
#include "fe_harness.h"
#include "proc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS

static int setup(void **state) {
    static const char *const env[] = {"RRM_MAX_FRAME_BYTES=8192", "RRM_MAX_MSGS_PER_SEC=1000",
                                      NULL};
    struct fe_cluster *c = fe_cluster_start(1, env);
    *state = c;
    return c ? 0 : -1;
}

/* One masked frame: FIN bit, opcode, payload (may be empty). */
static void send_piece(struct wsc *ws, int fin, int opcode, const char *data) {
    assert_int_equal(wsc_send_frame(ws, fin, opcode, data, strlen(data), 1), 0);
}

/* The node still answers on ws, and to a newcomer. */
static void expect_alive(struct fe_cluster *c, struct wsc *ws) {
    json_t *info = fe_query_room(ws, T);
    assert_non_null(info);
    json_decref(info);
    struct wsc *n = fe_join(c, 0, "frag-newcomer", NULL, NULL, NULL);
    assert_non_null(n);
    fe_close(c, n);
}

static void test_empty_first_fragment_before_identify(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);

    /* 01 80 <mask>: text, FIN=0, no payload; the identify follows in the continuation */
    struct wsc *a = fe_connect(c, 0);
    assert_non_null(a);
    send_piece(a, 0, WSC_OP_TEXT, "");
    send_piece(a, 1, WSC_OP_CONT, "{\"device_id\":\"frag-a\"}");
    json_t *m = fe_expect_type(a, "connection", T);
    assert_non_null(m);
    assert_string_equal(fe_str(m, "device_id"), "frag-a");
    json_decref(m);
    m = fe_expect_type(a, "room", T);
    assert_non_null(m);
    json_decref(m);

    /* empty pieces everywhere around the identify */
    struct wsc *b = fe_connect(c, 0);
    assert_non_null(b);
    send_piece(b, 0, WSC_OP_TEXT, "");
    send_piece(b, 0, WSC_OP_CONT, "");
    send_piece(b, 0, WSC_OP_CONT, "{\"device_id\":");
    send_piece(b, 0, WSC_OP_CONT, "");
    send_piece(b, 0, WSC_OP_CONT, "\"frag-b\"}");
    send_piece(b, 1, WSC_OP_CONT, "");
    m = fe_expect_type(b, "connection", T);
    assert_non_null(m);
    assert_string_equal(fe_str(m, "device_id"), "frag-b");
    json_decref(m);
    m = fe_expect_type(b, "room", T);
    assert_non_null(m);
    json_decref(m);

    /* a message of empty fragments only is an empty identify: invalid JSON */
    long long before = fe_error_count(admin, "invalid_json");
    struct wsc *e = fe_connect(c, 0);
    assert_non_null(e);
    send_piece(e, 0, WSC_OP_TEXT, "");
    send_piece(e, 1, WSC_OP_CONT, "");
    assert_int_equal(fe_expect_error(e, "invalid_json", T), 0);
    assert_int_equal(fe_expect_close(e, T), 1008);
    assert_int_equal(fe_error_count(admin, "invalid_json"), before + 1);
    fe_close(c, e);

    expect_alive(c, a);
    expect_alive(c, b);
}

static void test_empty_fragments_after_identify(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "frag-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "frag-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);

    send_piece(a, 0, WSC_OP_TEXT, "");
    send_piece(a, 1, WSC_OP_CONT, "{\"type\":\"text\",\"content\":\"after an empty start\"}");
    fe_expect_text(b, "frag-a", room, "after an empty start");

    send_piece(a, 0, WSC_OP_TEXT, "");
    send_piece(a, 0, WSC_OP_CONT, "{\"type\":\"text\",");
    send_piece(a, 0, WSC_OP_CONT, "");
    send_piece(a, 0, WSC_OP_CONT, "\"content\":\"in pieces\"}");
    send_piece(a, 1, WSC_OP_CONT, "");
    fe_expect_text(b, "frag-a", room, "in pieces");

    send_piece(a, 0, WSC_OP_BINARY, "");
    send_piece(a, 1, WSC_OP_CONT, "\x01\x02");
    fe_expect_binary(b, "\x01\x02", 2);

    /* nothing at all: an invalid JSON message, answered to the sender only */
    long long before = fe_error_count(admin, "invalid_json");
    send_piece(a, 0, WSC_OP_TEXT, "");
    send_piece(a, 1, WSC_OP_CONT, "");
    assert_int_equal(fe_expect_error(a, "invalid_json", T), 0);
    assert_int_equal(fe_error_count(admin, "invalid_json"), before + 1);

    fe_send_text(a, "still here");
    fe_expect_text(b, "frag-a", room, "still here");
    expect_alive(c, a);
    expect_alive(c, b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_first_fragment_before_identify, setup,
                                        fe_teardown),
        cmocka_unit_test_setup_teardown(test_empty_fragments_after_identify, setup, fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
