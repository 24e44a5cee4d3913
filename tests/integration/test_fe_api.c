/*
 * test_fe_api.c - the server API on the admin port (README "Server API"), across two nodes:
 * publish (text, from, binary) reaching members on both nodes with the room's seq, in the history
 * (a resume recovers it) and in the archive stream of the room's shard; Idempotency-Key; the room,
 * the room list paged over more rooms than a page, a device, and disconnecting a device on the
 * other node (error frame "disconnected", close 1008); authentication (missing, wrong key), the API
 * off without RRM_API_KEY; errors (bad JSON, unknown room, oversize body, wrong method, unknown
 * path, Redis down) as JSON with their statuses, every call counted in rrm_api_requests_total.
 *
 * One cluster of two nodes (node-a, node-b) for the suite; the API-off test starts its own node.
 * Runs on one Redis and, as it_test_fe_api_on_cluster, on a Redis Cluster of 3+3.
 */
#include "fe_harness.h"
#include "keys.h"
#include "proc.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS
#define KEY "test-api-key-0123456789"
#define AUTH "Authorization: Bearer " KEY "\r\n"
#define MAX_FRAME 4096

/* One HTTP answer. */
struct answer {
    int status;
    char head[4096]; /* status line and headers */
    char *body;      /* malloc'd, NUL-terminated */
    json_t *json;    /* the body parsed, or NULL */
};

static void answer_free(struct answer *a) {
    free(a->body);
    json_decref(a->json);
    memset(a, 0, sizeof(*a));
}

/* One request on a new connection: method, path, extra header lines ("K: V\r\n"...), a body
 * (NULL: none and no Content-Length; send_body 0: announce blen bytes but send none). Reads the
 * answer to the end of the connection. Returns the status, or a negative errno value. */
static int http(int port, const char *method, const char *path, const char *headers,
                const void *body, size_t blen, int send_body, struct answer *a) {
    memset(a, 0, sizeof(*a));
    int fd = proc_tcp_connect("127.0.0.1", port, T);
    if (fd < 0)
        return fd;
    char req[2048];
    int n =
        snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s",
                 method, path, headers ? headers : "");
    if (body)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "Content-Length: %zu\r\n", blen);
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n ||
        (body && send_body && blen && send(fd, body, blen, MSG_NOSIGNAL) != (ssize_t)blen)) {
        close(fd);
        return -ECONNRESET;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    int64_t deadline = proc_now_ms() + T;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (len == cap - 1 || proc_remaining_ms(deadline) == 0 ||
            poll(&p, 1, proc_remaining_ms(deadline)) <= 0)
            break;
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.1 ", 9) != 0 || !sep) {
        free(buf);
        return -EPROTO;
    }
    a->status = atoi(buf + 9);
    snprintf(a->head, sizeof(a->head), "%.*s", (int)(sep - buf), buf);
    a->body = strdup(sep + 4);
    free(buf);
    a->json = json_loads(a->body, JSON_DECODE_ANY, NULL);
    return a->status;
}

/* The admin port of node i. */
static int admin(void **state, int i) {
    return fe_admin_port(*state, i);
}

/* The answer must be the JSON error with this status and code. */
static void expect_error(struct answer *a, int status, const char *code) {
    if (a->status != status)
        fail_msg("status %d, wanted %d: %s", a->status, status, a->body ? a->body : "");
    json_t *e = json_object_get(a->json, "error");
    assert_non_null(e);
    assert_string_equal(fe_str(e, "code"), code);
    assert_non_null(fe_str(e, "message"));
    assert_non_null(strcasestr(a->head, "Content-Type: application/json"));
}

static int post_json(int port, const char *path, const char *extra, const char *body,
                     struct answer *a) {
    char h[512];
    snprintf(h, sizeof(h), AUTH "Content-Type: application/json\r\n%s", extra ? extra : "");
    return http(port, "POST", path, h, body, strlen(body), 1, a);
}

static int get(int port, const char *path, struct answer *a) {
    return http(port, "GET", path, AUTH, NULL, 0, 0, a);
}

static long long api_count(int port, const char *endpoint, int code) {
    char s[128];
    snprintf(s, sizeof(s), "rrm_api_requests_total{endpoint=\"%s\",code=\"%d\"}", endpoint, code);
    return fe_metric(port, s);
}

static int setup(void **state) {
    static const char *const env[] = {"RRM_API_KEY=" KEY, "RRM_MAX_FRAME_BYTES=4096",
                                      "RRM_STREAM_MAXLEN=100000", NULL};
    struct fe_cluster *c = fe_cluster_start(2, env);
    *state = c;
    return c ? 0 : -1;
}

/* The relayed frame that must come next on ws: a server message of type text with content, from
 * `from`, in room; returns its seq. */
static long long expect_server_text(struct wsc *ws, const char *from, const char *room,
                                    const char *content) {
    json_t *m = fe_expect_relay(ws, "text", from, room);
    assert_string_equal(fe_str(m, "content"), content);
    long long seq = json_integer_value(json_object_get(m, "seq"));
    json_decref(m);
    return seq;
}

/* ---- authentication ---------------------------------------------------------------------------
 */

static void test_auth(void **state) {
    int port = admin(state, 0);
    struct answer a;
    long long before = api_count(port, "rooms", 401);
    assert_true(before >= 0);
    assert_int_equal(http(port, "GET", "/api/rooms", NULL, NULL, 0, 0, &a), 401);
    expect_error(&a, 401, "unauthorized");
    assert_non_null(strcasestr(a.head, "WWW-Authenticate: Bearer"));
    answer_free(&a);
    assert_int_equal(
        http(port, "GET", "/api/rooms", "Authorization: Bearer wrong\r\n", NULL, 0, 0, &a), 401);
    answer_free(&a);
    /* the key with one more byte, one byte less, and one byte changed */
    assert_int_equal(
        http(port, "GET", "/api/rooms", "Authorization: Bearer " KEY "x\r\n", NULL, 0, 0, &a), 401);
    answer_free(&a);
    char shorter[128];
    snprintf(shorter, sizeof(shorter), "Authorization: Bearer %.*s\r\n", (int)strlen(KEY) - 1, KEY);
    assert_int_equal(http(port, "GET", "/api/rooms", shorter, NULL, 0, 0, &a), 401);
    answer_free(&a);
    assert_int_equal(
        http(port, "GET", "/api/rooms", "Authorization: Basic " KEY "\r\n", NULL, 0, 0, &a), 401);
    answer_free(&a);
    /* and a POST without the key gets nothing done */
    assert_int_equal(http(port, "POST", "/api/rooms/auth-room/publish", NULL, "{}", 2, 1, &a), 401);
    answer_free(&a);
    assert_int_equal(get(port, "/api/rooms", &a), 200);
    assert_true(json_is_array(json_object_get(a.json, "rooms")));
    answer_free(&a);
    assert_int_equal(api_count(port, "rooms", 401), before + 5);
    assert_true(api_count(port, "rooms", 200) >= 1);
    /* the public port has no API */
    assert_int_equal(get(fe_port(*state, 0), "/api/rooms", &a), 404);
    answer_free(&a);
}

/* Without RRM_API_KEY every /api/ path is 404, with or without a key, whatever the method. */
static void test_api_off(void **state) {
    (void)state;
    struct fe_cluster *c = fe_cluster_start(1, NULL);
    assert_non_null(c);
    int port = fe_admin_port(c, 0);
    struct answer a;
    int st1 = get(port, "/api/rooms", &a);
    answer_free(&a);
    int st2 = http(port, "POST", "/api/rooms/x/publish", AUTH, "{}", 2, 1, &a);
    answer_free(&a);
    int st3 = http(port, "GET", "/api/devices/d", NULL, NULL, 0, 0, &a);
    answer_free(&a);
    int st4 = get(port, "/metrics", &a);
    answer_free(&a);
    assert_int_equal(fe_cluster_stop(c), 0);
    assert_int_equal(st1, 404);
    assert_int_equal(st2, 404);
    assert_int_equal(st3, 404);
    assert_int_equal(st4, 200);
}

/* ---- publish ----------------------------------------------------------------------------------
 */

/* A publish through node-a reaches members on both nodes, with the room's next seq, from "server"
 * or the from_device_id named; binary too; it is in the history (a resume recovers it) and in the
 * archive stream of the room's shard. Through node-b the same. */
static void test_publish(void **state) {
    struct fe_cluster *c = *state;
    const char *room = "pub-room";
    struct wsc *a = fe_join(c, 0, "pub-a", "alice", room, NULL);
    struct wsc *b = fe_join(c, 1, "pub-b", "bob", room, NULL);
    assert_non_null(a);
    assert_non_null(b);
    /* a client message first: the API's message takes the next seq */
    fe_send_text(a, "before");
    json_t *m = fe_expect_relay(b, "text", "pub-a", room);
    long long seq0 = json_integer_value(json_object_get(m, "seq"));
    json_decref(m);
    long long before = api_count(admin(state, 0), "publish", 200);

    struct answer r;
    assert_int_equal(post_json(admin(state, 0), "/api/rooms/pub-room/publish", NULL,
                               "{\"type\":\"text\",\"content\":\"from the backend\"}", &r),
                     200);
    assert_non_null(strcasestr(r.head, "Content-Type: application/json"));
    long long seq1 = json_integer_value(json_object_get(r.json, "seq"));
    assert_int_equal(seq1, seq0 + 1);
    answer_free(&r);
    assert_int_equal(expect_server_text(a, "server", room, "from the backend"), seq1);
    assert_int_equal(expect_server_text(b, "server", room, "from the backend"), seq1);

    /* a sender named in the body; through node-b */
    assert_int_equal(post_json(admin(state, 1), "/api/rooms/pub-room/publish", NULL,
                               "{\"type\":\"text\",\"content\":\"invoice\","
                               "\"from_device_id\":\"billing\"}",
                               &r),
                     200);
    long long seq2 = json_integer_value(json_object_get(r.json, "seq"));
    assert_int_equal(seq2, seq1 + 1);
    answer_free(&r);
    assert_int_equal(expect_server_text(a, "billing", room, "invoice"), seq2);
    assert_int_equal(expect_server_text(b, "billing", room, "invoice"), seq2);

    /* a value that is not an object is wrapped, as a client's */
    assert_int_equal(post_json(admin(state, 0), "/api/rooms/pub-room/publish", NULL, "42", &r),
                     200);
    long long seq3 = json_integer_value(json_object_get(r.json, "seq"));
    answer_free(&r);
    m = fe_expect_relay(b, "message", "server", room);
    assert_int_equal(json_integer_value(json_object_get(m, "data")), 42);
    assert_int_equal(json_integer_value(json_object_get(m, "seq")), seq3);
    json_decref(m);
    json_decref(fe_expect_relay(a, "message", "server", room));

    /* binary, byte for byte */
    static const unsigned char bin[] = {0, 1, 2, 0xff, 0x80, '\n', 0};
    assert_int_equal(http(admin(state, 0), "POST", "/api/rooms/pub-room/publish",
                          AUTH "Content-Type: application/octet-stream\r\n", bin, sizeof(bin), 1,
                          &r),
                     200);
    long long seq4 = json_integer_value(json_object_get(r.json, "seq"));
    assert_int_equal(seq4, seq3 + 1);
    answer_free(&r);
    fe_expect_binary(a, bin, sizeof(bin));
    fe_expect_binary(b, bin, sizeof(bin));
    assert_int_equal(api_count(admin(state, 0), "publish", 200), before + 3);

    /* the history: a device that saw seq0 resumes and gets the three JSON messages (and the
     * binary one) in order */
    assert_int_equal(get(admin(state, 1), "/api/rooms/pub-room", &r), 200);
    json_t *id = json_pack("{s:s,s:s,s:I,s:s}", "device_id", "pub-late", "room_id", room,
                           "last_seq", (json_int_t)seq0, "epoch", fe_str(r.json, "epoch"));
    answer_free(&r);
    json_t *rf = NULL;
    struct wsc *late = fe_track(c, client_join_ex(fe_port(c, 1), id, NULL, &rf));
    json_decref(id);
    assert_non_null(late);
    assert_true(json_is_true(json_object_get(rf, "recovered")));
    json_decref(rf);
    assert_int_equal(expect_server_text(late, "server", room, "from the backend"), seq1);
    assert_int_equal(expect_server_text(late, "billing", room, "invoice"), seq2);
    json_decref(fe_expect_relay(late, "message", "server", room));
    fe_expect_binary(late, bin, sizeof(bin));
    /* binary from a sender named in the URL (the frame is the bytes only: the archive shows it) */
    assert_int_equal(http(admin(state, 1), "POST",
                          "/api/rooms/pub-room/publish?from_device_id=camera-7",
                          AUTH "Content-Type: application/octet-stream\r\n", bin, 3, 1, &r),
                     200);
    long long seq5 = json_integer_value(json_object_get(r.json, "seq"));
    answer_free(&r);
    fe_expect_binary(a, bin, 3);

    /* the archive: message events of the room's shard, from "server" and "billing" */
    struct fe_events ev;
    assert_int_equal(fe_events_load(c, &ev), 0);
    int found = 0;
    for (size_t i = 0; i < ev.n; i++) {
        struct rrm_event *e = &ev.ev[i];
        if (!ev.ok[i] || e->type != EV_MESSAGE || !fe_str_eq(e->room, room))
            continue;
        if (e->seq == seq1) {
            assert_true(fe_str_eq(e->device, "server"));
            assert_true(fe_str_eq(e->kind, "text"));
            assert_true(fe_str_eq(e->node, "node-a"));
            found |= 1;
        } else if (e->seq == seq2) {
            assert_true(fe_str_eq(e->device, "billing"));
            assert_true(fe_str_eq(e->node, "node-b"));
            found |= 2;
        } else if (e->seq == seq4) {
            assert_true(fe_str_eq(e->kind, "binary"));
            assert_true(fe_str_eq(e->device, "server"));
            assert_true(fe_str_eq(e->conn, "api"));
            found |= 4;
        } else if (e->seq == seq5) {
            assert_true(fe_str_eq(e->device, "camera-7"));
            found |= 8;
        }
        if (e->seq == seq1 || e->seq == seq2 || e->seq == seq4) /* the room's shard's stream */
            assert_int_equal(ev.shard[i], keys_event_shard(room, strlen(room), FE_EVENT_SHARDS));
    }
    fe_events_free(&ev);
    assert_int_equal(found, 15);
}

/* The same Idempotency-Key within the ack window: the same seq, not relayed again. */
static void test_idempotency(void **state) {
    struct fe_cluster *c = *state;
    const char *room = "idem-room";
    struct wsc *a = fe_join(c, 1, "idem-a", NULL, room, NULL);
    assert_non_null(a);
    struct answer r;
    const char *body = "{\"type\":\"text\",\"content\":\"once\"}";
    assert_int_equal(post_json(admin(state, 0), "/api/rooms/idem-room/publish",
                               "Idempotency-Key: order-17\r\n", body, &r),
                     200);
    long long seq = json_integer_value(json_object_get(r.json, "seq"));
    assert_true(json_is_false(json_object_get(r.json, "duplicate")));
    answer_free(&r);
    /* again, through the other node */
    assert_int_equal(post_json(admin(state, 1), "/api/rooms/idem-room/publish",
                               "Idempotency-Key: order-17\r\n", body, &r),
                     200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "seq")), seq);
    assert_true(json_is_true(json_object_get(r.json, "duplicate")));
    answer_free(&r);
    /* another key is another message */
    assert_int_equal(post_json(admin(state, 0), "/api/rooms/idem-room/publish",
                               "Idempotency-Key: order-18\r\n",
                               "{\"type\":\"text\",\"content\":\"twice\"}", &r),
                     200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "seq")), seq + 1);
    answer_free(&r);
    /* the member got "once" once, then "twice" */
    assert_int_equal(expect_server_text(a, "server", room, "once"), seq);
    assert_int_equal(expect_server_text(a, "server", room, "twice"), seq + 1);
    /* a key outside the id set */
    assert_int_equal(post_json(admin(state, 0), "/api/rooms/idem-room/publish",
                               "Idempotency-Key: a/b\r\n", body, &r),
                     400);
    expect_error(&r, 400, "invalid_idempotency_key");
    answer_free(&r);
}

/* ---- errors -----------------------------------------------------------------------------------
 */

static void test_errors(void **state) {
    struct fe_cluster *c = *state;
    int port = admin(state, 0);
    struct wsc *a = fe_join(c, 0, "err-a", NULL, "err-room", NULL);
    assert_non_null(a);
    struct answer r;
    long long bad_before = api_count(port, "publish", 400);
    post_json(port, "/api/rooms/err-room/publish", NULL, "{\"type\":", &r);
    expect_error(&r, 400, "invalid_json");
    answer_free(&r);
    post_json(port, "/api/rooms/err-room/publish", NULL, "{\"type\":\"room\"}", &r);
    expect_error(&r, 400, "reserved_type");
    answer_free(&r);
    post_json(port, "/api/rooms/err-room/publish", NULL,
              "{\"type\":\"text\",\"from_device_id\":\"no spaces\"}", &r);
    expect_error(&r, 400, "invalid_from");
    answer_free(&r);
    assert_int_equal(api_count(port, "publish", 400), bad_before + 3);
    /* an unknown room is not created */
    post_json(port, "/api/rooms/no-such-room/publish", NULL, "{\"type\":\"text\"}", &r);
    expect_error(&r, 404, "room_not_found");
    answer_free(&r);
    assert_int_equal(fe_redis_exists(c, fe_room_key("no-such-room", "")), 0);
    get(port, "/api/rooms/no-such-room", &r);
    expect_error(&r, 404, "room_not_found");
    answer_free(&r);
    /* a room id outside the id set */
    post_json(port, "/api/rooms/bad%20room/publish", NULL, "{}", &r);
    assert_true(r.status == 400 || r.status == 404);
    answer_free(&r);
    /* a body over the limit (RRM_MAX_FRAME_BYTES): 413 before it is sent */
    http(port, "POST", "/api/rooms/err-room/publish", AUTH, "", MAX_FRAME + 1, 0, &r);
    expect_error(&r, 413, "too_large");
    answer_free(&r);
    assert_true(api_count(port, "publish", 413) >= 1);
    /* a body at the limit is taken */
    char *big = malloc(MAX_FRAME + 1);
    assert_non_null(big);
    int n = snprintf(big, MAX_FRAME + 1, "{\"type\":\"text\",\"content\":\"");
    memset(big + n, 'x', (size_t)(MAX_FRAME - n - 2));
    memcpy(big + MAX_FRAME - 2, "\"}", 3);
    assert_int_equal(post_json(port, "/api/rooms/err-room/publish", NULL, big, &r), 200);
    answer_free(&r);
    free(big);
    json_decref(fe_expect_relay(a, "text", "server", "err-room"));
    /* wrong methods: 405 with Allow */
    http(port, "GET", "/api/rooms/err-room/publish", AUTH, NULL, 0, 0, &r);
    expect_error(&r, 405, "method_not_allowed");
    assert_non_null(strcasestr(r.head, "Allow: POST"));
    answer_free(&r);
    http(port, "DELETE", "/api/rooms", AUTH, NULL, 0, 0, &r);
    expect_error(&r, 405, "method_not_allowed");
    assert_non_null(strcasestr(r.head, "Allow: GET"));
    answer_free(&r);
    http(port, "POST", "/api/devices/err-a", AUTH, "{}", 2, 1, &r);
    expect_error(&r, 405, "method_not_allowed");
    answer_free(&r);
    /* a POST without Content-Length */
    http(port, "POST", "/api/rooms/err-room/publish", AUTH, NULL, 0, 0, &r);
    expect_error(&r, 411, "length_required");
    answer_free(&r);
    /* unknown paths */
    get(port, "/api/nothing", &r);
    expect_error(&r, 404, "not_found");
    answer_free(&r);
    get(port, "/api/rooms/err-room/members", &r);
    expect_error(&r, 404, "not_found");
    answer_free(&r);
    assert_true(api_count(port, "unknown", 404) >= 2);
    /* bad paging arguments */
    get(port, "/api/rooms?limit=0", &r);
    expect_error(&r, 400, "invalid_limit");
    answer_free(&r);
    get(port, "/api/rooms?cursor=zz", &r);
    expect_error(&r, 400, "invalid_cursor");
    answer_free(&r);
    /* the node took all of it in its stride */
    assert_int_equal(fe_wait_ready(fe_port(c, 0), 200, T), 0);
}

/* ---- room, rooms, device ----------------------------------------------------------------------
 */

/* GET /api/rooms/{room}: every member, on both nodes, in the same answer from either node. */
static void test_room(void **state) {
    struct fe_cluster *c = *state;
    struct wsc *a = fe_join(c, 0, "room-a", "alice", "info-room", NULL);
    struct wsc *b = fe_join(c, 1, "room-b", "bob", "info-room", NULL);
    assert_non_null(a);
    assert_non_null(b);
    struct answer r0, r1;
    assert_int_equal(get(admin(state, 0), "/api/rooms/info-room", &r0), 200);
    assert_int_equal(get(admin(state, 1), "/api/rooms/info-room", &r1), 200);
    assert_string_equal(r0.body, r1.body);
    json_t *v = r0.json;
    assert_string_equal(fe_str(v, "room_id"), "info-room");
    assert_int_equal(json_integer_value(json_object_get(v, "total_clients")), 2);
    assert_non_null(fe_str(v, "epoch"));
    assert_true(json_is_integer(json_object_get(v, "seq")));
    assert_null(json_object_get(v, "truncated"));
    json_t *cl = json_object_get(v, "clients");
    assert_int_equal(json_array_size(cl), 2);
    json_t *x = json_array_get(cl, 0), *y = json_array_get(cl, 1);
    assert_string_equal(fe_str(x, "device_id"), "room-a");
    assert_string_equal(fe_str(x, "identity"), "alice");
    assert_string_equal(fe_str(x, "node"), "node-a");
    assert_non_null(strstr(fe_str(x, "conn"), "node-a#"));
    assert_string_equal(fe_str(y, "device_id"), "room-b");
    assert_string_equal(fe_str(y, "node"), "node-b");
    answer_free(&r0);
    answer_free(&r1);
}

/* GET /api/rooms pages through every room, each once with its member count, over more rooms than
 * a page holds, from either node. */
static void test_rooms_paging(void **state) {
    struct fe_cluster *c = *state;
    enum { ROOMS = 40, LIMIT = 3 };
    for (int i = 0; i < ROOMS; i++) {
        char room[32], dev[32];
        snprintf(room, sizeof(room), "page-%02d", i);
        snprintf(dev, sizeof(dev), "page-dev-%02d", i);
        assert_non_null(fe_join(c, i % 2, dev, NULL, room, NULL));
        if (i == 0) /* a second member in one room */
            assert_non_null(fe_join(c, 1, "page-dev-extra", NULL, room, NULL));
    }
    int seen[ROOMS] = {0};
    char cursor[128] = "";
    int pages = 0, total = 0;
    for (;;) {
        char path[256];
        snprintf(path, sizeof(path), "/api/rooms?limit=%d&cursor=%s", LIMIT, cursor);
        struct answer r;
        assert_int_equal(get(admin(state, pages % 2), path, &r), 200);
        json_t *rooms = json_object_get(r.json, "rooms");
        assert_true(json_is_array(rooms));
        assert_true(json_array_size(rooms) <= LIMIT);
        size_t i;
        json_t *e;
        json_array_foreach(rooms, i, e) {
            const char *id = fe_str(e, "room_id");
            int k;
            total++;
            if (id && sscanf(id, "page-%d", &k) == 1 && k >= 0 && k < ROOMS) {
                seen[k]++;
                assert_int_equal(json_integer_value(json_object_get(e, "total_clients")),
                                 k == 0 ? 2 : 1);
            }
        }
        pages++;
        json_t *next = json_object_get(r.json, "next_cursor");
        if (json_is_null(next)) {
            answer_free(&r);
            break;
        }
        assert_true(json_is_string(next));
        snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        answer_free(&r);
        assert_true(pages < 100);
    }
    for (int i = 0; i < ROOMS; i++)
        if (seen[i] != 1)
            fail_msg("room page-%02d listed %d times", i, seen[i]);
    assert_true(pages >= ROOMS / LIMIT);
    assert_true(total >= ROOMS);
}

/* GET /api/devices/{device}: connected where and since when, from either node; not connected after
 * it left; unknown devices 404. */
static void test_device(void **state) {
    struct fe_cluster *c = *state;
    int64_t before = fe_wall_ms();
    struct wsc *ws = fe_join(c, 1, "dev-1", "sensor", "dev-room", NULL);
    assert_non_null(ws);
    int64_t after = fe_wall_ms();
    struct answer r, r1;
    assert_int_equal(get(admin(state, 0), "/api/devices/dev-1", &r), 200);
    assert_int_equal(get(admin(state, 1), "/api/devices/dev-1", &r1), 200);
    assert_string_equal(r.body, r1.body);
    answer_free(&r1);
    assert_string_equal(fe_str(r.json, "device_id"), "dev-1");
    assert_true(json_is_true(json_object_get(r.json, "connected")));
    assert_string_equal(fe_str(r.json, "node"), "node-b");
    assert_non_null(strstr(fe_str(r.json, "conn"), "node-b#"));
    assert_string_equal(fe_str(r.json, "room"), "dev-room");
    assert_string_equal(fe_str(r.json, "identity"), "sensor");
    long long since = json_integer_value(json_object_get(r.json, "since"));
    assert_true(since >= before - 1000 && since <= after + 1000);
    answer_free(&r);
    fe_close(c, ws);
    int64_t deadline = proc_now_ms() + T;
    int connected = 1;
    while (connected && proc_remaining_ms(deadline) > 0) {
        assert_int_equal(get(admin(state, 0), "/api/devices/dev-1", &r), 200);
        connected = json_is_true(json_object_get(r.json, "connected"));
        if (!connected) {
            assert_true(json_is_null(json_object_get(r.json, "node")));
            assert_string_equal(fe_str(r.json, "room"), "dev-room"); /* remembered */
        }
        answer_free(&r);
        if (connected)
            fe_poll_pause();
    }
    assert_false(connected);
    get(admin(state, 0), "/api/devices/never-seen", &r);
    expect_error(&r, 404, "device_not_found");
    answer_free(&r);
    get(admin(state, 0), "/api/devices/bad%20id", &r);
    assert_true(r.status == 400 || r.status == 404);
    answer_free(&r);
}

/* POST /api/devices/{device}/disconnect through node-a closes a device on node-b: an error frame
 * "disconnected" with the reason, then close 1008; a device not connected is 404. */
static void test_disconnect(void **state) {
    struct fe_cluster *c = *state;
    struct wsc *ws = fe_join(c, 1, "kick-1", NULL, "kick-room", NULL);
    struct wsc *other = fe_join(c, 1, "kick-2", NULL, "kick-room", NULL);
    assert_non_null(ws);
    assert_non_null(other);
    long long errs = fe_error_count(fe_admin_port(c, 1), "disconnected");
    struct answer r;
    assert_int_equal(post_json(admin(state, 0), "/api/devices/kick-1/disconnect", NULL,
                               "{\"reason\":\"spamming the room\"}", &r),
                     200);
    assert_true(json_is_true(json_object_get(r.json, "disconnected")));
    assert_string_equal(fe_str(r.json, "node"), "node-b");
    assert_non_null(strstr(fe_str(r.json, "conn"), "node-b#"));
    answer_free(&r);
    json_t *e = fe_expect_type(ws, "error", T);
    assert_non_null(e);
    assert_string_equal(fe_str(e, "code"), "disconnected");
    assert_string_equal(fe_str(e, "message"), "spamming the room");
    json_decref(e);
    assert_int_equal(fe_expect_close(ws, T), 1008);
    assert_true(fe_wait_metric(fe_admin_port(c, 1),
                               "rrm_client_errors_total{code=\"disconnected\"}", errs + 1,
                               T) >= errs + 1);
    /* the other member stays, and still talks to its room */
    struct wsc *third = fe_join(c, 0, "kick-3", NULL, "kick-room", NULL);
    assert_non_null(third);
    fe_send_text(other, "hello third");
    fe_expect_text(third, "kick-2", "kick-room", "hello third");
    /* once it is gone, not connected; a bad reason is refused before anything is done */
    int64_t deadline = proc_now_ms() + T;
    int status = 0;
    while (proc_remaining_ms(deadline) > 0) {
        status = post_json(admin(state, 0), "/api/devices/kick-1/disconnect", NULL, "{}", &r);
        if (status == 404) {
            expect_error(&r, 404, "not_connected");
            answer_free(&r);
            break;
        }
        answer_free(&r);
        fe_poll_pause();
    }
    assert_int_equal(status, 404);
    post_json(admin(state, 0), "/api/devices/kick-2/disconnect", NULL, "{\"reason\":5}", &r);
    expect_error(&r, 400, "invalid_reason");
    answer_free(&r);
    post_json(admin(state, 0), "/api/devices/kick-2/disconnect", NULL, "[", &r);
    expect_error(&r, 400, "invalid_json");
    answer_free(&r);
    /* a body-less POST (Content-Length: 0) takes the default reason */
    http(admin(state, 1), "POST", "/api/devices/kick-2/disconnect", AUTH, "", 0, 1, &r);
    if (r.status != 200)
        fail_msg("%d %s", r.status, r.body);
    answer_free(&r);
    e = fe_expect_type(other, "error", T);
    assert_non_null(e);
    assert_string_equal(fe_str(e, "code"), "disconnected");
    json_decref(e);
    assert_int_equal(fe_expect_close(other, T), 1008);
}

/* Every series of rrm_api_requests_total is there, and /metrics stays lint-clean (promtool). */
static void test_metrics(void **state) {
    int port = admin(state, 0);
    struct answer r;
    assert_int_equal(http(port, "GET", "/metrics", NULL, NULL, 0, 0, &r), 200);
    static const char *const eps[] = {"publish", "rooms",      "room",
                                      "device",  "disconnect", "unknown"};
    for (size_t i = 0; i < sizeof(eps) / sizeof(eps[0]); i++) {
        char s[128];
        snprintf(s, sizeof(s), "rrm_api_requests_total{endpoint=\"%s\",code=\"200\"}", eps[i]);
        assert_non_null(strstr(r.body, s));
    }
    char out[4096] = "";
    int status = proc_promtool_check(r.body, out, sizeof(out));
    answer_free(&r);
    if (status != 0)
        fail_msg("promtool check metrics (status %d): %s", status, out);
}

/* 1 if GET /api/rooms through port lists room (every page read). */
static int listed(int port, const char *room) {
    char cursor[128] = "";
    for (int pages = 0; pages < 100; pages++) {
        char path[256];
        snprintf(path, sizeof(path), "/api/rooms?limit=50&cursor=%s", cursor);
        struct answer r;
        if (get(port, path, &r) != 200) {
            answer_free(&r);
            return 0;
        }
        size_t i;
        json_t *e;
        int found = 0;
        json_array_foreach(json_object_get(r.json, "rooms"), i, e) {
            const char *id = fe_str(e, "room_id");
            found |= id && strcmp(id, room) == 0;
        }
        json_t *next = json_object_get(r.json, "next_cursor");
        int more = json_is_string(next);
        if (more)
            snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        answer_free(&r);
        if (found || !more)
            return found;
    }
    return 0;
}

/* While Redis is down every call is 503 "unavailable" (nothing done); when it is back (empty), the
 * nodes put their members back and the rooms are listed again. One Redis only (a cluster's
 * failovers are tested on their own). Last: it empties Redis. */
static void test_redis_down(void **state) {
    struct fe_cluster *c = *state;
    if (!fe_redis(c))
        skip();
    int port = admin(state, 1);
    struct wsc *ws = fe_join(c, 0, "down-1", NULL, "down-room", NULL);
    assert_non_null(ws);
    assert_true(listed(port, "down-room"));
    long long before = api_count(port, "publish", 503);
    assert_int_equal(redis_server_stop(fe_redis(c)), 0);
    assert_int_equal(fe_wait_ready(fe_port(c, 1), 503, 15000), 0);
    struct answer r;
    post_json(port, "/api/rooms/down-room/publish", NULL, "{\"type\":\"text\"}", &r);
    expect_error(&r, 503, "unavailable");
    answer_free(&r);
    get(port, "/api/rooms", &r);
    expect_error(&r, 503, "unavailable");
    answer_free(&r);
    get(port, "/api/rooms/down-room", &r);
    expect_error(&r, 503, "unavailable");
    answer_free(&r);
    get(port, "/api/devices/down-1", &r);
    expect_error(&r, 503, "unavailable");
    answer_free(&r);
    post_json(port, "/api/devices/down-1/disconnect", NULL, "{}", &r);
    expect_error(&r, 503, "unavailable");
    answer_free(&r);
    assert_int_equal(api_count(port, "publish", 503), before + 1);
    assert_int_equal(redis_server_restart(fe_redis(c)), 0);
    assert_int_equal(fe_wait_ready(fe_port(c, 1), 200, 15000), 0);
    int back = 0;
    for (int64_t deadline = proc_now_ms() + 15000; !back && proc_now_ms() < deadline;) {
        back = listed(port, "down-room");
        if (!back)
            fe_poll_pause();
    }
    assert_true(back);
    assert_int_equal(get(port, "/api/devices/down-1", &r), 200);
    assert_true(json_is_true(json_object_get(r.json, "connected")));
    answer_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth),        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_idempotency), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_room),        cmocka_unit_test(test_rooms_paging),
        cmocka_unit_test(test_device),      cmocka_unit_test(test_disconnect),
        cmocka_unit_test(test_metrics),     cmocka_unit_test(test_redis_down),
    };
    const struct CMUnitTest off[] = {cmocka_unit_test(test_api_off)};
    int failed = cmocka_run_group_tests_name("api", tests, setup, fe_teardown);
    if (!fe_redis_mode_is("cluster"))
        failed += cmocka_run_group_tests_name("api_off", off, NULL, NULL);
    return failed;
}
