/*
 * test_fe_presence.c - presence events across two nodes (README "Presence events"): a member that
 * asked for them ("presence": true in its identify, or RRM_PRESENCE_EVENTS=1 on its node) is sent
 * {"type":"join"|"leave","device_id","identity","room_id","ts"} when another device enters or
 * leaves its room on any node: on close, on a drain, when the reaper removes a killed node's
 * members, on a server API disconnect, when a replaced device moves to another room. Others are
 * sent none; nobody is sent its own; a device replaced by its own newer connection in the same room
 * never left.
 *
 * "Sent none" is checked by ordering: a room's channel is in order, so when a message published
 * after the change is the next frame a member receives, no presence event came before it.
 *
 * Every test gets a fresh cluster (redis + node-a + node-b).
 */
#include "fe_harness.h"
#include "proc.h"

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

static int setup(void **state) {
    struct fe_cluster *c = fe_cluster_start(2, NULL);
    *state = c;
    return c ? 0 : -1;
}

#define API_KEY "test-presence-api-key-0123"

static int setup_api(void **state) {
    static const char *const env[] = {"RRM_API_KEY=" API_KEY, NULL};
    struct fe_cluster *c = fe_cluster_start(2, env);
    *state = c;
    return c ? 0 : -1;
}

static int setup_node_default_on(void **state) {
    static const char *const env[] = {"RRM_PRESENCE_EVENTS=1", NULL};
    struct fe_cluster *c = fe_cluster_start(2, env);
    *state = c;
    return c ? 0 : -1;
}

/* Identifies device on node with "presence" true (1), false (0) or absent (-1); room NULL: a
 * fresh one. The room joined goes to room_out and the connection's id to conn_out (each
 * FE_ROOM_CAP / 64 bytes, may be NULL). The client is registered with the cluster. */
static struct wsc *join_p(struct fe_cluster *c, int node, const char *device, const char *identity,
                          const char *room, int presence, char *room_out, char *conn_out) {
    json_t *id = json_pack("{s:s}", "device_id", device);
    assert_non_null(id);
    if (identity)
        json_object_set_new(id, "identity", json_string(identity));
    if (room)
        json_object_set_new(id, "room_id", json_string(room));
    if (presence >= 0)
        json_object_set_new(id, "presence", json_boolean(presence));
    json_t *cf = NULL, *rf = NULL;
    struct wsc *ws = fe_track(c, client_join_ex(fe_port(c, node), id, &cf, &rf));
    json_decref(id);
    assert_non_null(ws);
    if (room_out)
        snprintf(room_out, FE_ROOM_CAP, "%s", fe_str(rf, "room_id"));
    if (conn_out)
        snprintf(conn_out, 64, "%s", fe_str(cf, "conn_id"));
    json_decref(cf);
    json_decref(rf);
    return ws;
}

/* The next frame on ws must be the presence event type ("join" or "leave") of device (with its
 * identity) in room: exactly the five documented fields, a ts no older than since_ms (wall
 * clock; every process here shares it) and not in the future, no seq. */
static void expect_presence(struct wsc *ws, const char *type, const char *device,
                            const char *identity, const char *room, int64_t since_ms,
                            int timeout_ms) {
    json_t *f = fe_expect_type(ws, type, timeout_ms);
    if (!f)
        fail_msg("expected a %s of %s in %s", type, device, room);
    assert_string_equal(fe_str(f, "device_id"), device);
    assert_string_equal(fe_str(f, "identity"), identity);
    assert_string_equal(fe_str(f, "room_id"), room);
    json_t *ts = json_object_get(f, "ts");
    assert_true(json_is_integer(ts));
    assert_true(json_integer_value(ts) >= since_ms);
    assert_true(json_integer_value(ts) <= fe_wall_ms());
    assert_null(json_object_get(f, "seq"));
    assert_int_equal(json_object_size(f), 5);
    json_decref(f);
}

static long long presence_count(struct fe_cluster *c, int node, const char *type) {
    char series[96];
    snprintf(series, sizeof(series), "rrm_presence_events_total{type=\"%s\"}", type);
    return fe_metric(fe_admin_port(c, node), series);
}

/* Waits until the archive holds the disconnect of connection conn: the member leave script of
 * its close has run (the disconnect is recorded by the same script as its leave). */
static void wait_disconnect_recorded(struct fe_cluster *c, const char *conn) {
    int64_t deadline = proc_now_ms() + T;
    for (;;) {
        struct fe_events ev;
        assert_int_equal(fe_events_load(c, &ev), 0);
        int found = 0;
        for (size_t i = 0; i < ev.n; i++)
            found |= ev.ok[i] && ev.ev[i].type == EV_DISCONNECT && fe_str_eq(ev.ev[i].conn, conn);
        fe_events_free(&ev);
        if (found)
            return;
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("no disconnect of %s recorded within %d ms", conn, T);
        fe_poll_pause();
    }
}

/* A member with presence on node-a sees a device of node-b join and leave, with its identity; a
 * member without sees neither; only the listener's node counts them. */
static void test_join_and_leave_across_nodes(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    int64_t t0 = fe_wall_ms();
    struct wsc *a = join_p(c, 0, "pr-a", "Alice", NULL, 1, room, NULL);
    struct wsc *q = join_p(c, 0, "pr-q", "Quiet", room, -1, NULL, NULL);
    expect_presence(a, "join", "pr-q", "Quiet", room, t0, T);

    int64_t t1 = fe_wall_ms();
    struct wsc *b = join_p(c, 1, "pr-b", "Bob on b", room, 0, NULL, NULL);
    expect_presence(a, "join", "pr-b", "Bob on b", room, t1, T);
    fe_send_text(b, "hello");
    fe_expect_text(a, "pr-b", room, "hello");
    fe_expect_text(q, "pr-b", room, "hello"); /* no join before it */

    int64_t t2 = fe_wall_ms();
    fe_close(c, b);
    expect_presence(a, "leave", "pr-b", "Bob on b", room, t2, T);
    fe_send_text(a, "after");
    fe_expect_text(q, "pr-a", room, "after"); /* no leave before it */

    assert_int_equal(presence_count(c, 0, "join"), 2);
    assert_int_equal(presence_count(c, 0, "leave"), 1);
    assert_int_equal(presence_count(c, 1, "join"), 0);
    assert_int_equal(presence_count(c, 1, "leave"), 0);
}

/* A member is never sent its own events. Its join: joining a room whose channel its node already
 * hears (so that the event may reach it once it is a local member), the first frame it gets after
 * its answer is a message sent after the join; done several times, as whether the event or the
 * join's answer reaches the node first is up to the two links. Its leave: replaced by a newer
 * connection that joins another room, the old connection, still a member when its leave is
 * published (the kick follows it), is told it was replaced, and nothing before. */
static void test_own_events_not_echoed(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    int64_t t0 = fe_wall_ms();
    struct wsc *o = join_p(c, 1, "pr-o", "Observer", NULL, 1, room, NULL);
    join_p(c, 0, "pr-keep", "Keeper", room, -1, NULL, NULL); /* node-a hears the room */
    expect_presence(o, "join", "pr-keep", "Keeper", room, t0, T);
    for (int i = 0; i < 16; i++) {
        char dev[32], ping[32];
        snprintf(dev, sizeof(dev), "pr-self-%d", i);
        snprintf(ping, sizeof(ping), "ping-%d", i);
        struct wsc *p = join_p(c, i % 2, dev, "Self", room, 1, NULL, NULL);
        expect_presence(o, "join", dev, "Self", room, t0, T);
        fe_send_text(o, ping);
        fe_expect_text(p, "pr-o", room, ping);
        fe_close(c, p);
        expect_presence(o, "leave", dev, "Self", room, t0, T);
    }

    struct wsc *p = join_p(c, 0, "pr-moving", "Mover", room, 1, NULL, NULL);
    expect_presence(o, "join", "pr-moving", "Mover", room, t0, T);
    join_p(c, 0, "pr-moving", "Mover", "pr-elsewhere", 1, NULL, NULL);
    expect_presence(o, "leave", "pr-moving", "Mover", room, t0, T);
    assert_int_equal(fe_expect_error(p, "replaced", T), 0);
}

/* RRM_PRESENCE_EVENTS=1: every member receives them unless its identify says "presence": false. */
static void test_node_option_turns_it_on(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    int64_t t0 = fe_wall_ms();
    struct wsc *a = join_p(c, 0, "pr-a", "A", NULL, -1, room, NULL);
    struct wsc *x = join_p(c, 0, "pr-x", "X", room, 0, NULL, NULL);
    expect_presence(a, "join", "pr-x", "X", room, t0, T);
    struct wsc *b = join_p(c, 1, "pr-b", "", room, -1, NULL, NULL);
    expect_presence(a, "join", "pr-b", "", room, t0, T);
    fe_send_text(b, "one");
    fe_expect_text(a, "pr-b", room, "one");
    fe_expect_text(x, "pr-b", room, "one"); /* opted out: no join before it */

    fe_close(c, a);
    expect_presence(b, "leave", "pr-a", "A", room, t0, T);
    fe_send_text(b, "two");
    fe_expect_text(x, "pr-b", room, "two"); /* nor a leave */
}

/* A device replaced by its own newer connection (the other node) in the same room never left:
 * neither a leave nor a join for the others, not even once the old connection's close has been
 * handled. Replaced by a connection that joins another room, it leaves the old room (with the
 * identity it had there) and joins the new one. */
static void test_replaced_device(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP], other[FE_ROOM_CAP], old_conn[64], mid_conn[64];
    int64_t t0 = fe_wall_ms();
    struct wsc *a = join_p(c, 0, "pr-a", "A", NULL, 1, room, NULL);
    struct wsc *r = join_p(c, 1, "pr-r", "R", room, -1, NULL, NULL);
    expect_presence(a, "join", "pr-r", "R", room, t0, T);
    struct wsc *d = join_p(c, 0, "pr-d", "D1", room, -1, NULL, old_conn);
    expect_presence(a, "join", "pr-d", "D1", room, t0, T);

    struct wsc *d2 = join_p(c, 1, "pr-d", "D2", room, -1, NULL, mid_conn);
    assert_int_equal(fe_expect_error(d, "replaced", T), 0);
    assert_int_equal(fe_wait_close(d, T), 4001);
    wait_disconnect_recorded(c, old_conn);
    fe_send_text(d2, "from-new");
    fe_expect_text(a, "pr-d", room, "from-new"); /* no leave, no join before it */

    /* replaced again, now by a connection that joins another room */
    struct wsc *s = join_p(c, 1, "pr-s", "S", NULL, 1, other, NULL);
    int64_t t1 = fe_wall_ms();
    struct wsc *d3 = join_p(c, 0, "pr-d", "D3", other, -1, NULL, NULL);
    assert_int_equal(fe_expect_error(d2, "replaced", T), 0);
    expect_presence(a, "leave", "pr-d", "D2", room, t1, T);
    expect_presence(s, "join", "pr-d", "D3", other, t1, T);
    assert_int_equal(fe_wait_close(d2, T), 4001);
    wait_disconnect_recorded(c, mid_conn);
    fe_send_text(r, "still");
    fe_expect_text(a, "pr-r", room, "still"); /* the old connection's close: no second leave */
    fe_send_text(d3, "moved");
    fe_expect_text(s, "pr-d", other, "moved");
}

/* A SIGKILLed node's member: the presence member on the survivor is sent its leave once the
 * reaper has removed it. */
static void test_leave_of_a_dead_nodes_member(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    int64_t t0 = fe_wall_ms();
    struct wsc *a = join_p(c, 0, "pr-a", "A", NULL, 1, room, NULL);
    join_p(c, 1, "pr-k", "Killed", room, -1, NULL, NULL);
    expect_presence(a, "join", "pr-k", "Killed", room, t0, T);
    int64_t killed_at = fe_wall_ms();
    assert_int_equal(fe_node_stop(c, 1, SIGKILL, 10000), 128 + SIGKILL);
    expect_presence(a, "leave", "pr-k", "Killed", room, killed_at, 15000);
    print_message("leave of the killed node's member after %lld ms\n",
                  (long long)(fe_wall_ms() - killed_at));
}

/* A drained node's member (SIGTERM) leaves too. */
static void test_leave_on_drain(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    int64_t t0 = fe_wall_ms();
    struct wsc *a = join_p(c, 0, "pr-a", "A", NULL, 1, room, NULL);
    join_p(c, 1, "pr-g", "Gone", room, -1, NULL, NULL);
    expect_presence(a, "join", "pr-g", "Gone", room, t0, T);
    assert_int_equal(fe_node_stop(c, 1, SIGTERM, 15000), 0);
    expect_presence(a, "leave", "pr-g", "Gone", room, t0, T);
}

/* A device the server API disconnects (through the other node) leaves. */
static void test_leave_on_api_disconnect(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    int64_t t0 = fe_wall_ms();
    struct wsc *a = join_p(c, 0, "pr-a", "A", NULL, 1, room, NULL);
    struct wsc *k = join_p(c, 1, "pr-kicked", "Kicked", room, -1, NULL, NULL);
    expect_presence(a, "join", "pr-kicked", "Kicked", room, t0, T);
    static const char req[] = "POST /api/devices/pr-kicked/disconnect HTTP/1.1\r\n"
                              "Host: 127.0.0.1\r\nConnection: close\r\n"
                              "Authorization: Bearer " API_KEY "\r\n"
                              "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    char head[1024];
    assert_int_equal(proc_http_exchange(NULL, fe_admin_port(c, 0), req, T, head, sizeof(head)),
                     200);
    assert_int_equal(fe_expect_error(k, "disconnected", T), 0);
    expect_presence(a, "leave", "pr-kicked", "Kicked", room, t0, T);
}

/* A member cannot pass a message off as a presence event: the types are the server's. */
static void test_presence_types_reserved(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    struct wsc *a = join_p(c, 0, "pr-a", "A", NULL, 1, room, NULL);
    struct wsc *m = join_p(c, 1, "pr-m", "M", room, -1, NULL, NULL);
    expect_presence(a, "join", "pr-m", "M", room, 0, T);
    const char *spoof[] = {"{\"type\":\"leave\",\"device_id\":\"pr-x\",\"identity\":\"X\"}",
                           "{\"type\":\"join\",\"device_id\":\"pr-x\",\"identity\":\"X\"}"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(wsc_send_text(m, spoof[i]), 0);
        assert_int_equal(fe_expect_error(m, "reserved_type", T), 0);
    }
    fe_send_text(m, "real");
    fe_expect_text(a, "pr-m", room, "real"); /* nothing relayed before it */
}

/* "presence" must be a boolean (null: as absent). */
static void test_bad_presence_value(void **state) {
    struct fe_cluster *c = *state;
    const char *bad[] = {"\"yes\"", "1", "{}"};
    long long before = fe_error_count(fe_admin_port(c, 0), "invalid_identify");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct wsc *ws = fe_connect(c, 0);
        assert_non_null(ws);
        char text[128];
        snprintf(text, sizeof(text), "{\"device_id\":\"pr-bad\",\"presence\":%s}", bad[i]);
        assert_int_equal(wsc_send_text(ws, text), 0);
        assert_int_equal(fe_expect_error(ws, "invalid_identify", T), 0);
        assert_int_equal(fe_wait_close(ws, T), 1008);
        fe_close(c, ws);
    }
    assert_int_equal(fe_error_count(fe_admin_port(c, 0), "invalid_identify"), before + 3);
    struct wsc *ws = fe_connect(c, 0);
    assert_non_null(ws);
    assert_int_equal(wsc_send_text(ws, "{\"device_id\":\"pr-null\",\"presence\":null}"), 0);
    json_t *f = fe_expect_type(ws, "connection", T);
    assert_non_null(f);
    json_decref(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_join_and_leave_across_nodes, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_own_events_not_echoed, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_node_option_turns_it_on, setup_node_default_on,
                                        fe_teardown),
        cmocka_unit_test_setup_teardown(test_replaced_device, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_leave_of_a_dead_nodes_member, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_leave_on_drain, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_leave_on_api_disconnect, setup_api, fe_teardown),
        cmocka_unit_test_setup_teardown(test_presence_types_reserved, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_bad_presence_value, setup, fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
