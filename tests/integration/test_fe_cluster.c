/*
 * test_fe_cluster.c - rrm-frontend as a cluster (BRIEF §3): relay across nodes, reconnecting to
 * the same room through another node, the same device on two nodes, a SIGKILLed node's members
 * being removed, recovery after a Redis restart, the SIGTERM drain, recycling of empty rooms,
 * and the archive events a scripted session leaves in the streams rrm:events:{N} (a room's events
 * in its shard, in order; rooms spread over the shards).
 *
 * Every test gets a fresh cluster (redis + node-a + node-b) because several of them kill or stop
 * a node or Redis; the teardown asserts that every node still running exits 0 on SIGTERM.
 */
#include "fe_harness.h"
#include "keys.h"
#include "proc.h"
#include "redis_cluster.h"

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

static int setup_cluster(void **state, const char *const env[]) {
    struct fe_cluster *c = fe_cluster_start(2, env);
    *state = c;
    return c ? 0 : -1;
}

static int setup(void **state) {
    return setup_cluster(state, NULL);
}

/* Empty rooms are recycled half a second after their last member left. */
static int setup_fast_recycle(void **state) {
    static const char *const env[] = {"RRM_ROOM_GRACE_MS=500", NULL};
    return setup_cluster(state, env);
}

/* Poll query_room on ws until the room has `total` members and device is (not) listed. */
static void wait_room_info(struct wsc *ws, json_int_t total, const char *device, int listed,
                           int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    for (;;) {
        json_t *info = fe_query_room(ws, T);
        assert_non_null(info);
        json_int_t got = json_integer_value(json_object_get(info, "total_clients"));
        int has = device ? fe_has_client(info, device) : listed;
        if (got == total && has == listed) {
            json_decref(info);
            return;
        }
        if (proc_remaining_ms(deadline) == 0) {
            char *text = json_dumps(info, JSON_COMPACT);
            json_decref(info);
            fail_msg("room_info still %s after %d ms (want total %d, %s %s)", text, timeout_ms,
                     (int)total, device ? device : "-", listed ? "listed" : "absent");
        }
        json_decref(info);
        fe_poll_pause();
    }
}

/* Subscribers of the room's channel as a sharded channel (PUBSUB SHARDNUMSUB). */
static long long shard_subscribers(struct fe_cluster *c, const char *room) {
    char ch[KEYS_MAX];
    keys_room_channel(ch, sizeof(ch), keys_room_shard(room, FE_EVENT_SHARDS), room);
    redisReply *n = fe_redis_command(c, "PUBSUB SHARDNUMSUB %s", ch);
    assert_non_null(n);
    assert_int_equal(n->type, REDIS_REPLY_ARRAY);
    assert_int_equal(n->elements, 2);
    long long v = n->element[1]->integer;
    freeReplyObject(n);
    return v;
}

/* Plain (not sharded) channels of rooms, on the Redis or on every master of the cluster. */
static long long plain_room_channels(struct fe_cluster *c) {
    int ports[16], n = 1;
    struct redis_cluster *rcl = fe_redis_cluster(c);
    if (rcl)
        n = redis_cluster_master_ports(rcl, ports, 16);
    assert_true(n > 0 && n <= 16);
    long long total = 0;
    for (int i = 0; i < n; i++) {
        redisContext *r = rcl ? redis_cluster_client(rcl, ports[i]) : fe_redis_client(c);
        assert_non_null(r);
        redisReply *plain = redisCommand(r, "PUBSUB CHANNELS rrm:room:*");
        assert_non_null(plain);
        assert_int_equal(plain->type, REDIS_REPLY_ARRAY);
        total += (long long)plain->elements;
        freeReplyObject(plain);
        redisFree(r);
    }
    return total;
}

static void test_cross_node_relay(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "cl-relay-a", "A", NULL, room);
    assert_non_null(a);
    struct wsc *b = fe_join(c, 1, "cl-relay-b", "B", room, NULL);
    struct wsc *b2 = fe_join(c, 1, "cl-relay-b2", "B2", room, NULL);
    assert_non_null(b);
    assert_non_null(b2);
    /* each node holds one subscription to the room, a sharded channel (a member is answered
     * once it is confirmed); no plain channel of a room exists */
    assert_int_equal(shard_subscribers(c, room), 2);
    assert_int_equal(plain_room_channels(c), 0);

    fe_send_text(a, "a-to-b");
    fe_expect_text(b, "cl-relay-a", room, "a-to-b");
    fe_expect_text(b2, "cl-relay-a", room, "a-to-b");
    fe_send_text(b, "b-to-a");
    fe_expect_text(a, "cl-relay-b", room, "b-to-a");
    fe_expect_text(b2, "cl-relay-b", room, "b-to-a");
    static const unsigned char bin[] = {0x00, 0xff, 0x10, 0x00, 0x7f};
    assert_int_equal(wsc_send(b2, WSC_OP_BINARY, bin, sizeof(bin)), 0);
    fe_expect_binary(a, bin, sizeof(bin));
    fe_expect_binary(b, bin, sizeof(bin));
    assert_int_equal(wsc_send(a, WSC_OP_BINARY, bin, sizeof(bin)), 0);
    fe_expect_binary(b, bin, sizeof(bin));
    fe_expect_binary(b2, bin, sizeof(bin));
    /* every relayed message written is timed from its sender's node: node 1 wrote a-to-b and a's
     * binary to b and b2, b-to-a to b2 and b2's binary to b (6); node 0 wrote b-to-a and b2's
     * binary to a (2) */
    assert_true(fe_wait_metric(fe_admin_port(c, 1), "rrm_relay_latency_seconds_count", 6, T) >= 6);
    assert_true(fe_wait_metric(fe_admin_port(c, 0), "rrm_relay_latency_seconds_count", 2, T) >= 2);

    /* the last local member gone, the node leaves the channel */
    fe_close(c, a);
    int64_t deadline = fe_wall_ms() + T;
    while (shard_subscribers(c, room) != 1 && fe_wall_ms() < deadline)
        fe_poll_pause();
    assert_int_equal(shard_subscribers(c, room), 1);
}

/* GET /status.json on port (a node's admin port); caller frees. */
static char *status_page(int port) {
    int code = 0;
    char *body = NULL;
    assert_int_equal(proc_http_get(port, "/status.json", T, &code, &body), 0);
    assert_int_equal(code, 200);
    assert_non_null(body);
    return body;
}

static void test_status_shows_the_cluster(void **state) {
    struct fe_cluster *c = *state;
    struct wsc *a = fe_join(c, 0, "cl-st-a", "A", "cl-st-room1", NULL);
    struct wsc *b = fe_join(c, 1, "cl-st-b", "B", "cl-st-room2", NULL);
    struct wsc *b2 = fe_join(c, 1, "cl-st-b2", "<b2>", "cl-st-room1", NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(b2);
    /* either node shows every node, and every room with its members, their identities and
     * nodes (test_fe_pages looks at the rest of /status) */
    for (int i = 0; i < 2; i++) {
        char *page = status_page(fe_admin_port(c, i));
        for (int n = 0; n < 2; n++) {
            char h[64];
            snprintf(h, sizeof(h), "{\"node_id\":\"%s\",\"connections\":", fe_node_id(c, n));
            if (!strstr(page, h))
                fail_msg("node %d's /status lacks %s:\n%s", i, h, page);
        }
        if (!strstr(page, "{\"room_id\":\"cl-st-room1\",\"total_clients\":2,") ||
            !strstr(page, "{\"device_id\":\"cl-st-a\",\"identity\":\"A\",\"node\":\"node-a\"") ||
            !strstr(page, "{\"device_id\":\"cl-st-b\",\"identity\":\"B\",\"node\":\"node-b\"") ||
            !strstr(page, "{\"device_id\":\"cl-st-b2\",\"identity\":\"<b2>\",\"node\":\"node-b\""))
            fail_msg("node %d's /status lacks a member:\n%s", i, page);
        free(page);
    }
    /* a device that leaves disappears from the page */
    fe_close(c, b2);
    int64_t deadline = proc_now_ms() + 10000;
    for (;;) {
        char *page = status_page(fe_admin_port(c, 0));
        int listed = strstr(page, "cl-st-b2") != NULL;
        free(page);
        if (!listed)
            break;
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("cl-st-b2 still on /status after it closed");
        fe_poll_pause();
    }
}

static void test_reconnect_via_other_node(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP], again[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "cl-recon-a", "A", NULL, room);
    assert_non_null(a);
    struct wsc *b = fe_join(c, 0, "cl-recon-b", "B", room, NULL);
    assert_non_null(b);

    /* a leaves cleanly, and b sees it gone */
    assert_int_equal(wsc_send_close(a, 1000, "bye"), 0);
    assert_true(fe_wait_close(a, T) >= 1000);
    fe_close(c, a);
    wait_room_info(b, 1, "cl-recon-a", 0, 10000);

    /* back without a room id, through the other node: same room, "rejoined" */
    json_t *id = json_pack("{s:s, s:s}", "device_id", "cl-recon-a", "identity", "A");
    json_t *rf = NULL;
    a = fe_track(c, client_join_ex(fe_port(c, 1), id, NULL, &rf));
    json_decref(id);
    assert_non_null(a);
    assert_string_equal(fe_str(rf, "room_id"), room);
    assert_string_equal(fe_str(rf, "action"), "rejoined");
    assert_int_equal(json_integer_value(json_object_get(rf, "total_clients")), 2);
    json_decref(rf);

    fe_send_text(b, "welcome back");
    fe_expect_text(a, "cl-recon-b", room, "welcome back");
    fe_send_text(a, "thanks");
    fe_expect_text(b, "cl-recon-a", room, "thanks");

    /* an abrupt disconnect (no close frame) and a reconnect at once work the same way */
    fe_close(c, a);
    a = fe_join(c, 0, "cl-recon-a", "A", NULL, again);
    assert_non_null(a);
    assert_string_equal(again, room);
    fe_send_text(a, "abrupt");
    fe_expect_text(b, "cl-recon-a", room, "abrupt");
    wait_room_info(b, 2, "cl-recon-a", 1, 10000);
}

static void test_duplicate_device_two_nodes(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    struct wsc *old = fe_join(c, 0, "cl-dup", "first", NULL, room);
    assert_non_null(old);
    struct wsc *b = fe_join(c, 0, "cl-dup-peer", "peer", room, NULL);
    assert_non_null(b);
    long long replaced_before = fe_error_count(fe_admin_port(c, 0), "replaced");
    assert_true(replaced_before >= 0);

    json_t *rf = NULL;
    json_t *id = json_pack("{s:s, s:s}", "device_id", "cl-dup", "identity", "second");
    struct wsc *new_ws = fe_track(c, client_join_ex(fe_port(c, 1), id, NULL, &rf));
    json_decref(id);
    assert_non_null(new_ws);
    assert_string_equal(fe_str(rf, "room_id"), room);
    json_decref(rf);

    assert_int_equal(fe_expect_error(old, "replaced", T), 0);
    assert_int_equal(fe_wait_close(old, T), 4001);
    assert_int_equal(fe_error_count(fe_admin_port(c, 0), "replaced"), replaced_before + 1);

    /* the new connection is the member: relays both ways, listed once with its identity */
    fe_send_text(b, "to-new");
    fe_expect_text(new_ws, "cl-dup-peer", room, "to-new");
    fe_send_text(new_ws, "from-new");
    fe_expect_text(b, "cl-dup", room, "from-new");
    json_t *info = fe_query_room(b, T);
    assert_non_null(info);
    assert_int_equal(json_integer_value(json_object_get(info, "total_clients")), 2);
    json_t *clients = json_object_get(info, "clients");
    assert_int_equal(json_array_size(clients), 1);
    assert_string_equal(fe_str(json_array_get(clients, 0), "device_id"), "cl-dup");
    assert_string_equal(fe_str(json_array_get(clients, 0), "identity"), "second");
    json_decref(info);
    info = fe_query_room(new_ws, T);
    assert_non_null(info);
    assert_int_equal(json_integer_value(json_object_get(info, "total_clients")), 2);
    json_decref(info);

    /* and the same on one node, the other way round */
    struct wsc *third = fe_join(c, 1, "cl-dup-peer", "peer again", NULL, NULL);
    assert_non_null(third);
    assert_int_equal(fe_expect_error(b, "replaced", T), 0);
    assert_int_equal(fe_wait_close(b, T), 4001);
    fe_send_text(new_ws, "to-third");
    fe_expect_text(third, "cl-dup", room, "to-third");

    /* twice on the same node: the newest wins there too */
    struct wsc *newest = fe_join(c, 1, "cl-dup", "third", NULL, NULL);
    assert_non_null(newest);
    assert_int_equal(fe_expect_error(new_ws, "replaced", T), 0);
    assert_int_equal(fe_wait_close(new_ws, T), 4001);
    fe_send_text(third, "to-newest");
    fe_expect_text(newest, "cl-dup-peer", room, "to-newest");
    info = fe_query_room(third, T);
    assert_non_null(info);
    assert_int_equal(json_integer_value(json_object_get(info, "total_clients")), 2);
    assert_string_equal(fe_str(json_array_get(json_object_get(info, "clients"), 0), "identity"),
                        "third");
    json_decref(info);
}

/* A connection whose membership vanished from Redis (here: deleted behind the node's back) is
 * told so with "not_member" instead of having its messages relayed. */
static void test_not_member(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP], key[128];
    struct wsc *a = fe_join(c, 0, "cl-nm-a", NULL, NULL, room);
    assert_non_null(a);
    struct wsc *b = fe_join(c, 1, "cl-nm-b", NULL, room, NULL);
    assert_non_null(b);
    long long before = fe_error_count(fe_admin_port(c, 0), "not_member");
    assert_true(before >= 0);

    snprintf(key, sizeof(key), "%s", fe_room_key(room, ":members"));
    redisReply *r = fe_redis_command(c, "HDEL %s %s", key, "cl-nm-a");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);

    fe_send_text(a, "orphan");
    assert_int_equal(fe_expect_error(a, "not_member", T), 0);
    assert_int_equal(fe_error_count(fe_admin_port(c, 0), "not_member"), before + 1);
    /* b got nothing from a */
    struct wsc *d = fe_join(c, 0, "cl-nm-d", NULL, room, NULL);
    assert_non_null(d);
    fe_send_text(d, "marker");
    fe_expect_text(b, "cl-nm-d", room, "marker");
}

static void test_sigkill_node_members_removed(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "cl-kill-a", "A", NULL, room);
    assert_non_null(a);
    struct wsc *b = fe_join(c, 1, "cl-kill-b", "B", room, NULL);
    struct wsc *d = fe_join(c, 1, "cl-kill-c", "C", room, NULL);
    assert_non_null(b);
    assert_non_null(d);
    wait_room_info(a, 3, "cl-kill-b", 1, T);

    assert_int_equal(fe_node_stop(c, 1, SIGKILL, 10000), 128 + SIGKILL);
    int64_t killed_at = proc_now_ms();
    wait_room_info(a, 1, "cl-kill-b", 0, 15000);
    print_message("members of the killed node were gone from room_info after %lld ms\n",
                  (long long)(proc_now_ms() - killed_at));
    json_t *info = fe_query_room(a, T);
    assert_non_null(info);
    assert_int_equal(json_array_size(json_object_get(info, "clients")), 0);
    json_decref(info);

    /* the survivor keeps serving the room */
    struct wsc *e = fe_join(c, 0, "cl-kill-e", "E", room, NULL);
    assert_non_null(e);
    fe_send_text(a, "still here");
    fe_expect_text(e, "cl-kill-a", room, "still here");
    /* the killed devices can come back through the survivor */
    char back[FE_ROOM_CAP];
    struct wsc *b2 = fe_join(c, 0, "cl-kill-b", "B", NULL, back);
    assert_non_null(b2);
    assert_string_equal(back, room);
    fe_send_text(b2, "back");
    fe_expect_text(a, "cl-kill-b", room, "back");
    fe_expect_text(e, "cl-kill-b", room, "back");
}

/* Runs a command on c's Redis that must not fail; returns the reply (caller frees). */
#define cmd_ok(c, ...) checked(fe_redis_command(c, __VA_ARGS__))
#define cmd_do(c, ...) freeReplyObject(cmd_ok(c, __VA_ARGS__))

static redisReply *checked(redisReply *reply) {
    assert_non_null(reply);
    if (reply->type == REDIS_REPLY_ERROR)
        fail_msg("Redis: %s", reply->str);
    return reply;
}

static int key_exists(struct fe_cluster *c, const char *key) {
    redisReply *e = cmd_ok(c, "EXISTS %s", key);
    int v = (int)e->integer;
    freeReplyObject(e);
    return v;
}

static void expect_hget(struct fe_cluster *r, const char *key, const char *field,
                        const char *want) {
    redisReply *v = cmd_ok(r, "HGET %s %s", key, field);
    if (!want)
        assert_int_equal(v->type, REDIS_REPLY_NIL);
    else {
        assert_int_equal(v->type, REDIS_REPLY_STRING);
        assert_string_equal(v->str, want);
    }
    freeReplyObject(v);
}

/* Dead nodes left by a crash between the steps of an identify (keys.h, room.c): one member
 * joined (g#1), one registered that never joined (g#2), one whose device was taken over and
 * whose membership belongs to a newer connection (g#3). The reaper removes what is the dead
 * node's, records one disconnect, for g#1 only, and leaves the newer connection's state alone.
 * A dead node whose reaper lock another holds is left alone until the lock is gone. */
static void test_reaper_repairs_partial_steps(void **state) {
    struct fe_cluster *c = *state;
    const char *room = "rp-room";
    struct wsc *live = fe_join(c, 0, "rp-live", "L", room, NULL);
    assert_non_null(live);
    struct fe_cluster *r = c;
    char kconns[KEYS_MAX], kconns2[KEYS_MAX], klock2[KEYS_MAX], kdev[3][KEYS_MAX];
    keys_node_conns(kconns, sizeof(kconns), "ghost");
    keys_node_conns(kconns2, sizeof(kconns2), "ghost2");
    keys_node_reaper(klock2, sizeof(klock2), "ghost2");
    const char *devs[] = {"rp-a", "rp-b", "rp-c"};
    for (int i = 0; i < 3; i++)
        keys_device(kdev[i], sizeof(kdev[i]), devs[i]);
    const char *members = fe_room_key(room, ":members");
    long long before = fe_metric(fe_admin_port(c, 0), "rrm_reaped_members_total") +
                       fe_metric(fe_admin_port(c, 1), "rrm_reaped_members_total");

    /* ghost2 first, locked by another reaper: its member must outlive ghost's reaping */
    cmd_do(r, "SET %s someone PX 60000", klock2);
    cmd_do(r, "HSET %s rp-d %s", members, "g2#1\tghost2\tD");
    cmd_do(r, "HSET %s g2#1 %s", kconns2, "rp-room\trp-d");
    cmd_do(r, "HSET %s g#1 %s g#2 %s g#3 %s", kconns, "rp-room\trp-a", "rp-room\trp-b",
           "rp-room\trp-c");
    cmd_do(r, "HSET %s rp-a %s rp-c %s", members, "g#1\tghost\tA", "other#9\tother\tC");
    cmd_do(r, "HSET %s room rp-room conn g#1 node ghost", kdev[0]);
    cmd_do(r, "HSET %s conn g#2 node ghost", kdev[1]);
    cmd_do(r, "HSET %s room rp-room conn other#9 node other", kdev[2]);
    cmd_do(r, "ZADD " KEYS_NODES " 1 ghost 1 ghost2");

    int64_t deadline = proc_now_ms() + 15000;
    while (key_exists(r, kconns) && proc_remaining_ms(deadline) > 0)
        fe_poll_pause();
    assert_int_equal(key_exists(r, kconns), 0);
    /* g#1 left; the newer connection keeps rp-c; the devices of g#1 and g#2 are released */
    expect_hget(r, members, "rp-a", NULL);
    expect_hget(r, members, "rp-c", "other#9\tother\tC");
    redisReply *lv = cmd_ok(r, "HEXISTS %s rp-live", members);
    assert_int_equal(lv->integer, 1); /* a live node's member is not touched */
    freeReplyObject(lv);
    expect_hget(r, kdev[0], "conn", NULL);
    expect_hget(r, kdev[1], "conn", NULL);
    expect_hget(r, kdev[2], "conn", "other#9");
    redisReply *score = cmd_ok(r, "ZSCORE " KEYS_NODES " ghost");
    assert_int_equal(score->type, REDIS_REPLY_NIL);
    freeReplyObject(score);
    /* the locked one is untouched */
    expect_hget(r, members, "rp-d", "g2#1\tghost2\tD");
    assert_int_equal(key_exists(r, kconns2), 1);

    /* once the lock is gone, ghost2 is reaped too */
    cmd_do(r, "DEL %s", klock2);
    deadline = proc_now_ms() + 15000;
    while (key_exists(r, kconns2) && proc_remaining_ms(deadline) > 0)
        fe_poll_pause();
    assert_int_equal(key_exists(r, kconns2), 0);
    expect_hget(r, members, "rp-d", NULL);

    /* one disconnect each for g#1 and g2#1, none for g#2 and g#3 */
    struct fe_events ev;
    assert_int_equal(fe_events_load(c, &ev), 0);
    size_t n1 = 0, n2 = 0, n3 = 0, nd = 0;
    for (size_t i = 0; i < ev.n; i++) {
        if (!ev.ok[i] || ev.ev[i].type != EV_DISCONNECT)
            continue;
        n1 += fe_str_eq(ev.ev[i].conn, "g#1");
        n2 += fe_str_eq(ev.ev[i].conn, "g#2") + fe_str_eq(ev.ev[i].conn, "g#3");
        nd += fe_str_eq(ev.ev[i].conn, "g2#1");
        if (fe_str_eq(ev.ev[i].conn, "g#1")) {
            assert_true(fe_str_eq(ev.ev[i].reason, "node_lost"));
            assert_true(fe_str_eq(ev.ev[i].node, "ghost"));
            assert_true(fe_str_eq(ev.ev[i].room, room));
            assert_int_equal(ev.shard[i], keys_room_shard(room, FE_EVENT_SHARDS));
            n3++;
        }
    }
    fe_events_free(&ev);
    assert_int_equal(n1, 1);
    assert_int_equal(n3, 1);
    assert_int_equal(n2, 0);
    assert_int_equal(nd, 1);
    long long after = fe_metric(fe_admin_port(c, 0), "rrm_reaped_members_total") +
                      fe_metric(fe_admin_port(c, 1), "rrm_reaped_members_total");
    assert_int_equal(after - before, 2);
    fe_close(c, live);
}

/* Wait until every node has noticed a Redis drop (drops > before) and is ready again. */
static void wait_redis_recovered(struct fe_cluster *c, const long long before[]) {
    for (int i = 0; i < fe_nodes(c); i++) {
        long long v =
            fe_wait_metric(fe_admin_port(c, i), "rrm_redis_drops_total", before[i] + 1, 15000);
        assert_true(v > before[i]);
        assert_int_equal(fe_wait_ready(fe_port(c, i), 200, 15000), 0);
    }
}

static void test_redis_restart_recovers(void **state) {
    struct fe_cluster *c = *state;
    if (!fe_redis(c))
        skip(); /* a restart of one Redis: a cluster's failovers are tested on their own */
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "cl-rr-a", "A", NULL, room);
    assert_non_null(a);
    struct wsc *b = fe_join(c, 1, "cl-rr-b", "B", room, NULL);
    struct wsc *d = fe_join(c, 0, "cl-rr-c", "C", "cl-rr-other", NULL);
    assert_non_null(b);
    assert_non_null(d);
    fe_send_text(a, "before");
    fe_expect_text(b, "cl-rr-a", room, "before");

    long long drops[FE_MAX_NODES];
    for (int i = 0; i < fe_nodes(c); i++) {
        drops[i] = fe_metric(fe_admin_port(c, i), "rrm_redis_drops_total");
        assert_true(drops[i] >= 0);
    }
    /* no persistence: the restarted Redis is empty */
    assert_int_equal(redis_server_restart(fe_redis(c)), 0);
    wait_redis_recovered(c, drops);
    /* each member is told once its membership is back: its room starts again (new epoch) */
    fe_expect_restored(a, room);
    fe_expect_restored(b, room);
    fe_expect_restored(d, "cl-rr-other");

    /* the connections were kept and relay again, both ways and across nodes */
    fe_send_text(a, "after");
    fe_expect_text(b, "cl-rr-a", room, "after");
    fe_send_text(b, "after-b");
    fe_expect_text(a, "cl-rr-b", room, "after-b");
    /* memberships are back in Redis */
    json_t *info = fe_query_room(a, T);
    assert_non_null(info);
    assert_string_equal(fe_str(info, "room_id"), room);
    assert_int_equal(json_integer_value(json_object_get(info, "total_clients")), 2);
    assert_true(fe_has_client(info, "cl-rr-b"));
    json_decref(info);
    info = fe_query_room(d, T);
    assert_non_null(info);
    assert_string_equal(fe_str(info, "room_id"), "cl-rr-other");
    assert_int_equal(json_integer_value(json_object_get(info, "total_clients")), 1);
    json_decref(info);
    char key[128];
    snprintf(key, sizeof(key), "%s", fe_room_key(room, ":members"));
    assert_int_equal(fe_redis_exists(c, key), 1);

    /* new clients are served, and the device memory was restored too */
    struct wsc *e = fe_join(c, 1, "cl-rr-e", "E", room, NULL);
    assert_non_null(e);
    fe_send_text(a, "to-all");
    fe_expect_text(b, "cl-rr-a", room, "to-all");
    fe_expect_text(e, "cl-rr-a", room, "to-all");
}

static void test_sigterm_drain(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "cl-drain-a", "A", NULL, room);
    assert_non_null(a);
    struct wsc *b = fe_join(c, 0, "cl-drain-b", "B", room, NULL);
    struct wsc *keep = fe_join(c, 1, "cl-drain-c", "C", room, NULL);
    assert_non_null(b);
    assert_non_null(keep);
    wait_room_info(keep, 3, "cl-drain-a", 1, T);
    fe_send_text(keep, "last words");
    fe_expect_text(a, "cl-drain-c", room, "last words");
    fe_expect_text(b, "cl-drain-c", room, "last words");

    assert_int_equal(fe_node_signal(c, 0, SIGTERM), 0);
    /* our clients answer the server's close frame when they read it, so the drain completes */
    assert_int_equal(fe_wait_close(a, 15000), 1001);
    assert_int_equal(fe_wait_close(b, 15000), 1001);
    assert_int_equal(fe_node_wait(c, 0, 20000), 0);

    /* the drained node's members are gone from the cluster, and node-b keeps serving */
    wait_room_info(keep, 1, "cl-drain-a", 0, T);
    assert_int_equal(fe_wait_ready(fe_port(c, 1), 200, T), 0);
    struct wsc *d = fe_join(c, 1, "cl-drain-a", "A", room, NULL);
    assert_non_null(d);
    fe_send_text(d, "moved");
    fe_expect_text(keep, "cl-drain-a", room, "moved");
}

/* While a drain waits for its clients, readiness is false and new connections are refused with
 * error "draining" and close 1001, so a load balancer sends them elsewhere. */
static void test_drain_refuses_new_connections(void **state) {
    struct fe_cluster *c = *state;
    char room[FE_ROOM_CAP];
    struct wsc *x = fe_join(c, 0, "cl-dr2-x", NULL, NULL, room);
    assert_non_null(x);
    struct wsc *keep = fe_join(c, 1, "cl-dr2-k", NULL, room, NULL);
    assert_non_null(keep);

    /* x does not read yet, so it cannot acknowledge the server's close: the drain waits */
    assert_int_equal(fe_node_signal(c, 0, SIGTERM), 0);
    assert_int_equal(fe_wait_ready(fe_port(c, 0), 503, T), 0);
    struct wsc *y = fe_connect(c, 0);
    assert_non_null(y);
    assert_int_equal(fe_expect_error(y, "draining", T), 0);
    assert_int_equal(fe_expect_close(y, T), 1001);
    /* node-b is unaffected */
    assert_int_equal(fe_wait_ready(fe_port(c, 1), 200, T), 0);

    assert_int_equal(fe_wait_close(x, 15000), 1001);
    assert_int_equal(fe_node_wait(c, 0, 20000), 0);
    wait_room_info(keep, 1, "cl-dr2-x", 0, T);
}

static void test_empty_room_recycled(void **state) {
    struct fe_cluster *c = *state;
    char key_room[128], key_members[128];
    struct wsc *a = fe_join(c, 0, "cl-rec-a", NULL, "cl-recycle-me", NULL);
    struct wsc *b = fe_join(c, 1, "cl-rec-b", NULL, "cl-recycle-me", NULL);
    struct wsc *k = fe_join(c, 0, "cl-rec-k", NULL, "cl-keep-me", NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(k);
    fe_send_text(a, "hi");
    fe_expect_text(b, "cl-rec-a", "cl-recycle-me", "hi");
    snprintf(key_room, sizeof(key_room), "%s", fe_room_key("cl-recycle-me", ""));
    snprintf(key_members, sizeof(key_members), "%s", fe_room_key("cl-recycle-me", ":members"));
    assert_int_equal(fe_redis_exists(c, key_room), 1);
    assert_int_equal(fe_redis_exists(c, key_members), 1);

    fe_close(c, a);
    assert_int_equal(wsc_send_close(b, 1000, NULL), 0);
    assert_true(fe_wait_close(b, T) >= 1000);
    fe_close(c, b);

    int64_t deadline = proc_now_ms() + 15000;
    while (fe_redis_exists(c, key_room) != 0 || fe_redis_exists(c, key_members) != 0) {
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("%s still exists 15 s after its last member left (grace 500 ms)", key_room);
        fe_poll_pause();
    }
    /* the occupied room is kept */
    assert_int_equal(fe_redis_exists(c, fe_room_key("cl-keep-me", "")), 1);
    assert_int_equal(fe_redis_exists(c, fe_room_key("cl-keep-me", ":members")), 1);

    struct fe_events ev;
    assert_int_equal(fe_events_load(c, &ev), 0);
    assert_int_equal(ev.decode_errors, 0);
    int recycled = 0;
    for (size_t i = 0; i < ev.n; i++)
        if (ev.ok[i] && ev.ev[i].type == EV_ROOM_RECYCLED &&
            fe_str_eq(ev.ev[i].room, "cl-recycle-me"))
            recycled++;
    fe_events_free(&ev);
    assert_int_equal(recycled, 1);

    /* the id can be used again: a fresh room */
    json_t *rf = NULL;
    json_t *id = json_pack("{s:s, s:s}", "device_id", "cl-rec-new", "room_id", "cl-recycle-me");
    struct wsc *n = fe_track(c, client_join_ex(fe_port(c, 1), id, NULL, &rf));
    json_decref(id);
    assert_non_null(n);
    assert_string_equal(fe_str(rf, "action"), "created");
    json_decref(rf);
}

/* Index of the first event of type t (in stream order, from `from`) whose conn or room
 * matches; -1 if none. */
static long find_event(const struct fe_events *ev, size_t from, enum event_type t, const char *conn,
                       const char *room) {
    for (size_t i = from; i < ev->n; i++) {
        const struct rrm_event *e = &ev->ev[i];
        if (!ev->ok[i] || e->type != t)
            continue;
        if (conn && !fe_str_eq(e->conn, conn))
            continue;
        if (room && !fe_str_eq(e->room, room))
            continue;
        return (long)i;
    }
    return -1;
}

static size_t count_events(const struct fe_events *ev, enum event_type t, const char *room) {
    size_t n = 0;
    for (size_t i = 0; i < ev->n; i++)
        if (ev->ok[i] && ev->ev[i].type == t && (!room || fe_str_eq(ev->ev[i].room, room)))
            n++;
    return n;
}

static void test_archive_events(void **state) {
    struct fe_cluster *c = *state;
    json_t *conn_frame = NULL, *room_frame = NULL;
    char conn_a[96], conn_b[96], room[FE_ROOM_CAP];

    json_t *id = json_pack("{s:s, s:s}", "device_id", "ev-a", "identity", "Alice");
    struct wsc *a = fe_track(c, client_join_ex(fe_port(c, 0), id, &conn_frame, &room_frame));
    json_decref(id);
    assert_non_null(a);
    snprintf(conn_a, sizeof(conn_a), "%s", fe_str(conn_frame, "conn_id"));
    snprintf(room, sizeof(room), "%s", fe_str(room_frame, "room_id"));
    json_decref(conn_frame);
    json_decref(room_frame);

    id = json_pack("{s:s, s:s, s:s}", "device_id", "ev-b", "identity", "Bob", "room_id", room);
    struct wsc *b = fe_track(c, client_join_ex(fe_port(c, 1), id, &conn_frame, NULL));
    json_decref(id);
    assert_non_null(b);
    snprintf(conn_b, sizeof(conn_b), "%s", fe_str(conn_frame, "conn_id"));
    json_decref(conn_frame);

    /* four messages of every kind; b's copies give the seq numbers the server assigned */
    static const char *const texts[] = {"{\"type\":\"text\",\"content\":\"hello events\"}",
                                        "{\"type\":\"custom\",\"n\":[1,2]}", "\"just a string\""};
    static const char *const kinds[] = {"text", "json", "json", "binary"};
    static const unsigned char bin[] = {0x00, 0xff, 'x', 0x00};
    json_int_t seqs[4] = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wsc_send_text(a, texts[i]), 0);
        json_t *m = wsc_recv_json(b, T);
        assert_non_null(m);
        seqs[i] = json_integer_value(json_object_get(m, "seq"));
        assert_true(seqs[i] > 0);
        json_decref(m);
    }
    assert_int_equal(wsc_send(a, WSC_OP_BINARY, bin, sizeof(bin)), 0);
    fe_expect_binary(b, bin, sizeof(bin));
    json_t *info = fe_query_room(b, T);
    assert_non_null(info);
    json_decref(info);

    /* a leaves cleanly, b drops the TCP connection; the empty room is then recycled */
    assert_int_equal(wsc_send_close(a, 1000, "done"), 0);
    assert_true(fe_wait_close(a, T) >= 1000);
    fe_close(c, a);
    fe_close(c, b);
    char key_room[128];
    snprintf(key_room, sizeof(key_room), "%s", fe_room_key(room, ""));
    int64_t deadline = proc_now_ms() + 15000;
    struct fe_events ev;
    for (;;) {
        assert_int_equal(fe_events_load(c, &ev), 0);
        if (fe_redis_exists(c, key_room) == 0 &&
            find_event(&ev, 0, EV_ROOM_RECYCLED, NULL, room) >= 0)
            break;
        fe_events_free(&ev);
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("room %s was not recycled within 15 s", room);
        fe_poll_pause();
    }

    /* every entry decodes */
    assert_int_equal(ev.decode_errors, 0);
    for (size_t i = 0; i < ev.n; i++)
        assert_true(ev.ev[i].ts > 0);

    /* connect */
    long ca = find_event(&ev, 0, EV_CONNECT, conn_a, NULL);
    long cb = find_event(&ev, 0, EV_CONNECT, conn_b, NULL);
    assert_true(ca >= 0 && cb >= 0);
    assert_true(fe_str_eq(ev.ev[ca].device, "ev-a"));
    assert_true(fe_str_eq(ev.ev[ca].identity, "Alice"));
    assert_true(fe_str_eq(ev.ev[ca].node, "node-a"));
    assert_true(ev.ev[ca].ip.p && ev.ev[ca].ip.len > 0);
    assert_true(fe_str_eq(ev.ev[cb].device, "ev-b"));
    assert_true(fe_str_eq(ev.ev[cb].identity, "Bob"));
    assert_true(fe_str_eq(ev.ev[cb].node, "node-b"));

    /* room_created once, by a; room assignment for both */
    assert_int_equal(count_events(&ev, EV_ROOM_CREATED, room), 1);
    long rc = find_event(&ev, 0, EV_ROOM_CREATED, NULL, room);
    assert_true(fe_str_eq(ev.ev[rc].device, "ev-a"));
    long ra = find_event(&ev, 0, EV_ROOM, conn_a, room);
    long rb = find_event(&ev, 0, EV_ROOM, conn_b, room);
    assert_true(ra >= 0 && rb >= 0);
    assert_true(fe_str_eq(ev.ev[ra].action, "created"));
    assert_true(fe_str_eq(ev.ev[ra].device, "ev-a"));
    assert_true(fe_str_eq(ev.ev[rb].action, "joined"));
    assert_true(fe_str_eq(ev.ev[rb].device, "ev-b"));
    assert_true(ca < ra && cb < rb && rc < rb);

    /* messages: in order, the seq b saw, the kind, and the exact bytes a sent */
    assert_int_equal(count_events(&ev, EV_MESSAGE, room), 4);
    long at = 0;
    for (int i = 0; i < 4; i++) {
        long m = find_event(&ev, (size_t)at, EV_MESSAGE, conn_a, room);
        assert_true(m >= 0);
        const struct rrm_event *e = &ev.ev[m];
        assert_true(fe_str_eq(e->device, "ev-a"));
        assert_true(fe_str_eq(e->kind, kinds[i]));
        if (i < 3) {
            assert_int_equal(e->seq, seqs[i]);
            assert_true(fe_str_eq(e->body, texts[i]));
        } else {
            assert_true(e->seq > seqs[2]);
            assert_int_equal(e->body.len, sizeof(bin));
            assert_memory_equal(e->body.p, bin, sizeof(bin));
        }
        assert_true(m > rb);
        at = m + 1;
    }

    /* the query */
    long q = find_event(&ev, 0, EV_QUERY, conn_b, room);
    assert_true(q >= 0);
    assert_true(fe_str_eq(ev.ev[q].device, "ev-b"));
    assert_int_equal(ev.ev[q].total, 2);

    /* both disconnects, then the recycling */
    long da = find_event(&ev, 0, EV_DISCONNECT, conn_a, NULL);
    long db = find_event(&ev, 0, EV_DISCONNECT, conn_b, NULL);
    assert_true(da >= 0 && db >= 0);
    assert_true(fe_str_eq(ev.ev[da].device, "ev-a"));
    assert_true(fe_str_eq(ev.ev[db].device, "ev-b"));
    assert_true(fe_str_eq(ev.ev[da].room, room));
    assert_true(fe_str_eq(ev.ev[db].room, room));
    assert_true(ev.ev[da].reason.p && ev.ev[da].reason.len > 0);
    assert_true(ev.ev[db].reason.p && ev.ev[db].reason.len > 0);
    assert_true(ev.ev[da].connected_at > 0 && ev.ev[db].connected_at > 0);
    assert_true(da > q && db > q);
    assert_int_equal(count_events(&ev, EV_ROOM_RECYCLED, room), 1);
    long rr = find_event(&ev, 0, EV_ROOM_RECYCLED, NULL, room);
    assert_true(rr > da && rr > db);

    /* The room was picked by the identify (a named none): all of its events, its recycling
     * too, are in the room's shard of the default 16, so the order checked above is that
     * stream's order. */
    unsigned shard = keys_event_shard(room, strlen(room), 16);
    size_t in_room = 0;
    for (size_t i = 0; i < ev.n; i++) {
        if (!ev.ok[i] || !fe_str_eq(ev.ev[i].room, room))
            continue;
        assert_int_equal(ev.shard[i], shard);
        in_room++;
    }
    assert_int_equal(in_room, 2 + 1 + 2 + 4 + 1 + 2 + 1); /* connects, created, rooms, messages,
                                                             query, disconnects, recycled */
    assert_int_equal(count_events(&ev, EV_ROOM_RECYCLED, NULL),
                     count_events(&ev, EV_ROOM_RECYCLED, room));
    fe_events_free(&ev);
}

/* Named rooms on both nodes: each room's events are in the stream of its shard
 * (keys_event_shard of the room id, of `shards`), in the order they happened, and the rooms are
 * spread over several shards. Rooms the identify script picks (none named) have their events in
 * their shard too: the script's Lua copy of keys_event_shard agrees with it. */
static void check_events_sharded_by_room(struct fe_cluster *c, unsigned shards) {
    enum { ROOMS = 6, MSGS = 5, AUTO = 12 };
    struct wsc *ws[ROOMS];
    char conn[ROOMS][96], room[ROOMS][32];
    char auto_room[AUTO][FE_ROOM_CAP];
    for (int r = 0; r < AUTO; r++) {
        char dev[32];
        snprintf(dev, sizeof(dev), "auto-dev-%d", r);
        json_t *rf = NULL;
        json_t *id = json_pack("{s:s}", "device_id", dev);
        struct wsc *a = fe_track(c, client_join_ex(fe_port(c, r % 2), id, NULL, &rf));
        json_decref(id);
        assert_non_null(a);
        snprintf(auto_room[r], sizeof(auto_room[r]), "%s", fe_str(rf, "room_id"));
        json_decref(rf);
    }
    for (int r = 0; r < ROOMS; r++) {
        snprintf(room[r], sizeof(room[r]), "room-%d", r + 1);
        char dev[32];
        snprintf(dev, sizeof(dev), "shard-dev-%d", r);
        json_t *cf = NULL;
        json_t *id = json_pack("{s:s, s:s}", "device_id", dev, "room_id", room[r]);
        ws[r] = fe_track(c, client_join_ex(fe_port(c, r % 2), id, &cf, NULL));
        json_decref(id);
        assert_non_null(ws[r]);
        snprintf(conn[r], sizeof(conn[r]), "%s", fe_str(cf, "conn_id"));
        json_decref(cf);
    }
    for (int i = 0; i < MSGS; i++)
        for (int r = 0; r < ROOMS; r++) {
            char text[64];
            snprintf(text, sizeof(text), "{\"type\":\"text\",\"content\":\"%d\"}", i);
            assert_int_equal(wsc_send_text(ws[r], text), 0);
        }
    for (int r = 0; r < ROOMS; r++)
        fe_close(c, ws[r]);

    /* wait for every disconnect */
    int64_t deadline = proc_now_ms() + 15000;
    struct fe_events ev;
    for (;;) {
        assert_int_equal(fe_events_load(c, &ev), 0);
        int done = 1;
        for (int r = 0; r < ROOMS && done; r++)
            done = find_event(&ev, 0, EV_DISCONNECT, conn[r], room[r]) >= 0;
        if (done)
            break;
        fe_events_free(&ev);
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("the disconnects were not all archived within 15 s");
        fe_poll_pause();
    }
    assert_int_equal(ev.decode_errors, 0);

    for (int r = 0; r < AUTO; r++) {
        unsigned shard = keys_event_shard(auto_room[r], strlen(auto_room[r]), shards);
        size_t k = 0;
        for (size_t i = 0; i < ev.n; i++) {
            if (!ev.ok[i] || !fe_str_eq(ev.ev[i].room, auto_room[r]))
                continue;
            if (ev.shard[i] != shard)
                fail_msg("event %zu of room %s (picked by the script) in shard %u, not %u", i,
                         auto_room[r], ev.shard[i], shard);
            k++;
        }
        assert_int_equal(k, 3); /* connect, room_created, room */
    }

    unsigned used[KEYS_EVENT_SHARDS_MAX] = {0};
    for (int r = 0; r < ROOMS; r++) {
        unsigned shard = keys_event_shard(room[r], strlen(room[r]), shards);
        used[shard] = 1;
        char key[KEYS_MAX];
        keys_events(key, sizeof(key), shard);
        /* the room's events, read back from its stream alone: connect, room, the messages by seq,
         * disconnect */
        redisReply *x = fe_redis_command(c, "XRANGE %s - +", key);
        assert_non_null(x);
        assert_int_equal(x->type, REDIS_REPLY_ARRAY);
        enum event_type want[] = {EV_CONNECT, EV_ROOM_CREATED, EV_ROOM,    EV_MESSAGE,   EV_MESSAGE,
                                  EV_MESSAGE, EV_MESSAGE,      EV_MESSAGE, EV_DISCONNECT};
        size_t k = 0;
        long long last_seq = 0;
        for (size_t i = 0; i < ev.n; i++) {
            if (!ev.ok[i] || !fe_str_eq(ev.ev[i].room, room[r]))
                continue;
            assert_int_equal(ev.shard[i], shard);
            assert_true(k < sizeof(want) / sizeof(want[0]));
            assert_int_equal(ev.ev[i].type, want[k]);
            if (want[k] == EV_MESSAGE) {
                assert_true(ev.ev[i].seq == last_seq + 1);
                last_seq = ev.ev[i].seq;
            }
            k++;
        }
        assert_int_equal(k, sizeof(want) / sizeof(want[0]));
        /* and in the stream itself they come in this order (other rooms of the shard between) */
        size_t got = 0;
        for (size_t i = 0; i < x->elements; i++) {
            struct rrm_event e;
            redisReply *f = x->element[i]->element[1];
            const char *names[32], *values[32];
            size_t nl[32], vl[32];
            size_t n = f->elements / 2;
            assert_true(n <= 32);
            for (size_t j = 0; j < n; j++) {
                names[j] = f->element[2 * j]->str;
                nl[j] = f->element[2 * j]->len;
                values[j] = f->element[2 * j + 1]->str;
                vl[j] = f->element[2 * j + 1]->len;
            }
            char err[128];
            assert_int_equal(event_decode(&e, names, nl, values, vl, n, err, sizeof(err)), 0);
            if (!fe_str_eq(e.room, room[r]))
                continue;
            assert_true(got < sizeof(want) / sizeof(want[0]));
            assert_int_equal(e.type, want[got]);
            got++;
        }
        assert_int_equal(got, sizeof(want) / sizeof(want[0]));
        freeReplyObject(x);
    }
    unsigned shards_used = 0;
    for (unsigned s = 0; s < shards; s++)
        shards_used += used[s];
    assert_true(shards_used >= 3); /* room-1..6: shards 12 5 2 3 0 9 of 16, 4 5 0 3 5 6 of 7 */
    /* every stream is one of the shards; nothing went to the single stream of older versions */
    for (size_t i = 0; i < ev.n; i++)
        assert_true(ev.shard[i] < shards);
    assert_int_equal(fe_redis_exists(c, KEYS_EVENTS), 0);
    fe_events_free(&ev);
}

static void test_events_sharded_by_room(void **state) {
    check_events_sharded_by_room(*state, 16);
}

/* The same with RRM_EVENT_SHARDS=7. */
static int setup_seven_shards(void **state) {
    static const char *const env[] = {"RRM_EVENT_SHARDS=7", NULL};
    return setup_cluster(state, env);
}

static void test_events_sharded_seven(void **state) {
    check_events_sharded_by_room(*state, 7);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cross_node_relay, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_status_shows_the_cluster, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_via_other_node, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_device_two_nodes, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_not_member, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_node_members_removed, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_reaper_repairs_partial_steps, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_redis_restart_recovers, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_drain, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_drain_refuses_new_connections, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_empty_room_recycled, setup_fast_recycle, fe_teardown),
        cmocka_unit_test_setup_teardown(test_archive_events, setup_fast_recycle, fe_teardown),
        cmocka_unit_test_setup_teardown(test_events_sharded_by_room, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_events_sharded_seven, setup_seven_shards, fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
