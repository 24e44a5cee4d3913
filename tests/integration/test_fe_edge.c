/*
 * test_fe_edge.c - the node's edge, checked on the wire with raw sockets: the internal Redis
 * protocol cannot be asked for, unknown subprotocols are accepted with none selected, upgrade
 * requests with a wrong version or Upgrade get an HTTP refusal instead of a 101, invalid close
 * frames are answered with 1002, and connections that never finish their handshake (slowloris,
 * from several loopback addresses) neither keep a real client out nor outlive
 * RRM_HANDSHAKE_TIMEOUT_MS, with at most RRM_MAX_HANDSHAKES_PER_IP of them per address.
 *
 * Every test starts its own redis + one node (node-a).
 */
#include "fe_harness.h"
#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define UPGRADE "Upgrade: websocket\r\nConnection: Upgrade\r\n"

static int start(void **state, const char *const env[]) {
    struct fe_cluster *c = fe_cluster_start(1, env);
    *state = c;
    return c ? 0 : -1;
}

static int setup(void **state) {
    static const char *const env[] = {"RRM_IDENTIFY_TIMEOUT_MS=500", NULL};
    return start(state, env);
}

static int setup_slow(void **state) {
    static const char *const env[] = {"RRM_HANDSHAKE_TIMEOUT_MS=1500", NULL};
    return start(state, env);
}

static int setup_cap(void **state) {
    static const char *const env[] = {"RRM_HANDSHAKE_TIMEOUT_MS=5000",
                                      "RRM_MAX_HANDSHAKES_PER_IP=20", NULL};
    return start(state, env);
}

/* A TCP connection to 127.0.0.1:port from source address src; the fd, or -1. */
static int connect_from(const char *src, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    inet_pton(AF_INET, src, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    a.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends req on a new connection and reads the response head into head (cap bytes). */
static int exchange(int port, const char *req, char *head, size_t cap) {
    return proc_http_exchange(NULL, port, req, T, head, cap);
}

/* Status of an upgrade request with the given extra header lines ("Name: value\r\n"...). */
static int upgrade(int port, const char *extra, char *head, size_t cap) {
    char req[1024];
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s\r\n", UPGRADE, KEY,
             extra);
    return exchange(port, req, head, cap);
}

/* 1 once the server has closed fd (EOF or reset), 0 while it is open. */
static int peer_closed(int fd) {
    char b[64];
    ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
    if (n == 0)
        return 1;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK;
}

/* The internal protocol of the Redis links cannot be selected: a client asking for it is an
 * ordinary session (counted, and closed by the identify timeout), with no subprotocol named. */
static void test_internal_protocol_unreachable(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    int admin = fe_admin_port(c, 0);
    char head[2048];
    assert_int_equal(upgrade(port,
                             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: rrm-redis\r\n",
                             head, sizeof(head)),
                     101);
    assert_null(strcasestr(head, "Sec-WebSocket-Protocol"));

    static const char *const hdr[] = {"Sec-WebSocket-Protocol: rrm-redis", NULL};
    struct wsc *ws = fe_track(c, wsc_connect_ex("127.0.0.1", port, "/", hdr, T));
    assert_non_null(ws);
    assert_true(fe_wait_metric(admin, "rrm_open_connections", 1, T) >= 1);
    assert_int_equal(fe_wait_close(ws, T), 1008);
    assert_true(fe_wait_metric(admin, "rrm_identify_timeouts_total", 1, T) >= 1);
    fe_close(c, ws);

    /* Nor the HTTP endpoints' protocol, whatever name is offered: each is an ordinary session
     * (it identifies and gets its answers), and plain HTTP still reaches the endpoints after. */
    static const char *const names[] = {"Sec-WebSocket-Protocol: rrm/http",
                                        "Sec-WebSocket-Protocol: rrm-http",
                                        "Sec-WebSocket-Protocol: http", NULL};
    for (int i = 0; names[i]; i++) {
        const char *one[] = {names[i], NULL};
        struct wsc *w = fe_track(c, wsc_connect_ex("127.0.0.1", port, "/", one, T));
        assert_non_null(w);
        char device[32];
        snprintf(device, sizeof(device), "edge-http-%d", i);
        assert_int_equal(fe_send_json(w, json_pack("{s:s}", "device_id", device)), 0);
        json_t *conn = fe_expect_type(w, "connection", T);
        assert_non_null(conn);
        json_decref(conn);
        fe_close(c, w);
        int code = 0;
        assert_int_equal(proc_http_get(port, "/healthz", T, &code, NULL), 0);
        assert_int_equal(code, 200);
    }
}

/* RFC 6455 4.2.2: a server may accept and select none of the offered subprotocols. */
static void test_unknown_subprotocol_accepted(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    char head[2048];
    assert_int_equal(upgrade(port, "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n",
                             head, sizeof(head)),
                     101);
    assert_null(strcasestr(head, "Sec-WebSocket-Protocol"));
    assert_int_equal(upgrade(port, "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: x\r\n",
                             head, sizeof(head)),
                     101);
    assert_null(strcasestr(head, "Sec-WebSocket-Protocol"));
    /* Offered among others, ours is selected. */
    assert_int_equal(upgrade(port,
                             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, rrm\r\n",
                             head, sizeof(head)),
                     101);
    assert_non_null(strstr(head, "Sec-WebSocket-Protocol: rrm\r\n"));

    /* And the accepted connection is a working session. */
    static const char *const hdr[] = {"Sec-WebSocket-Protocol: chat", NULL};
    struct wsc *ws = fe_track(c, wsc_connect_ex("127.0.0.1", port, "/", hdr, T));
    assert_non_null(ws);
    assert_int_equal(fe_send_json(ws, json_pack("{s:s}", "device_id", "edge-1")), 0);
    json_t *conn = fe_expect_type(ws, "connection", T);
    assert_non_null(conn);
    json_decref(conn);
    fe_close(c, ws);
}

static void test_wrong_version_or_upgrade_refused(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    int admin = fe_admin_port(c, 0);
    char head[2048];
    static const char *const versions[] = {"Sec-WebSocket-Version: 8\r\n",
                                           "Sec-WebSocket-Version: 99999999999\r\n", ""};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        assert_int_equal(upgrade(port, versions[i], head, sizeof(head)), 426);
        assert_non_null(strcasestr(head, "Sec-WebSocket-Version: 13\r\n"));
    }
    char req[1024];
    snprintf(req, sizeof(req),
             "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: h2c\r\nConnection: Upgrade, "
             "HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
    int st = exchange(port, req, head, sizeof(head));
    assert_true(st >= 400 && st < 500);
    /* No "Connection: Upgrade": an answer, not a dropped connection. */
    snprintf(req, sizeof(req),
             "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" KEY
             "Sec-WebSocket-Version: 13\r\n\r\n");
    assert_int_equal(exchange(port, req, head, sizeof(head)), 400);
    assert_true(fe_metric(admin, "rrm_handshakes_refused_total{reason=\"version\"}") >= 3);
    assert_true(fe_metric(admin, "rrm_handshakes_refused_total{reason=\"bad_request\"}") >= 2);
    /* A correct upgrade is still accepted. */
    assert_int_equal(upgrade(port, "Sec-WebSocket-Version: 13\r\n", head, sizeof(head)), 101);
}

static void test_close_frames(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    int admin = fe_admin_port(c, 0);
    struct wsc *ws = fe_track(c, wsc_connect("127.0.0.1", port, "/", T));
    assert_non_null(ws);
    assert_int_equal(wsc_send_close(ws, 5000, NULL), 0);
    assert_int_equal(fe_wait_close(ws, T), 1002);
    fe_close(c, ws);

    ws = fe_track(c, wsc_connect("127.0.0.1", port, "/", T));
    assert_non_null(ws);
    assert_int_equal(wsc_send_frame(ws, 1, WSC_OP_CLOSE, "\x03", 1, 1), 0);
    assert_int_equal(fe_wait_close(ws, T), 1002);
    fe_close(c, ws);
    assert_true(fe_metric(admin, "rrm_bad_close_frames_total") >= 2);

    ws = fe_track(c, wsc_connect("127.0.0.1", port, "/", T));
    assert_non_null(ws);
    assert_int_equal(wsc_send_close(ws, 1000, "bye"), 0);
    assert_int_equal(fe_wait_close(ws, T), 1000);
    fe_close(c, ws);
}

#define SLOW_ADDRS 4
#define SLOW_PER_ADDR 50
#define SLOW_N (SLOW_ADDRS * SLOW_PER_ADDR)

/* A header that never ends, sent a byte at a time. */
static const char slow_req[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/* Sends the next byte on every fd still open; returns how many the server has closed. */
static int trickle(int *fds, size_t *sent, int n) {
    int closed = 0;
    for (int i = 0; i < n; i++) {
        if (fds[i] < 0) {
            closed++;
            continue;
        }
        if (peer_closed(fds[i])) {
            close(fds[i]);
            fds[i] = -1;
            closed++;
            continue;
        }
        if (sent[i] < sizeof(slow_req) - 1 &&
            send(fds[i], slow_req + sent[i], 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
            sent[i]++;
    }
    return closed;
}

/* Slowloris from several addresses: a real client still gets its 101 at once, and the slow
 * connections are closed after the handshake timeout (1.5 s here), not lws's 10-20 s. */
static void test_slowloris(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    int admin = fe_admin_port(c, 0);
    int fds[SLOW_N];
    size_t sent[SLOW_N] = {0};
    for (int i = 0; i < SLOW_N; i++) {
        char src[32];
        snprintf(src, sizeof(src), "127.0.0.%d", 2 + i / SLOW_PER_ADDR);
        fds[i] = connect_from(src, port);
        assert_true(fds[i] >= 0);
    }
    int64_t t0 = proc_now_ms();
    assert_int_equal(trickle(fds, sent, SLOW_N), 0);

    struct wsc *ws = fe_track(c, wsc_connect("127.0.0.1", port, "/", 1000));
    assert_non_null(ws); /* a 101 within one second */

    int closed = 0;
    while (proc_now_ms() < t0 + 1500 + 4000 && (closed = trickle(fds, sent, SLOW_N)) < SLOW_N)
        fe_poll_pause();
    for (int i = 0; i < SLOW_N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    assert_int_equal(closed, SLOW_N);
    assert_true(fe_metric(admin, "rrm_handshake_timeouts_total") >= SLOW_N);

    /* The real client outlived the handshake deadline: its handshake had ended. */
    assert_int_equal(fe_send_json(ws, json_pack("{s:s}", "device_id", "edge-real")), 0);
    json_t *conn = fe_expect_type(ws, "connection", T);
    assert_non_null(conn);
    json_decref(conn);
    fe_close(c, ws);
}

/* One address gets no more than RRM_MAX_HANDSHAKES_PER_IP connections in their handshake; the
 * rest are closed at accept, long before the handshake timeout, and others are not affected. */
static void test_per_address_cap(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    int admin = fe_admin_port(c, 0);
    enum { N = 50, CAP = 20 };
    int fds[N];
    size_t sent[N] = {0};
    for (int i = 0; i < N; i++) {
        fds[i] = connect_from("127.0.0.2", port);
        assert_true(fds[i] >= 0);
    }
    int64_t t0 = proc_now_ms();
    int closed = 0;
    while (proc_now_ms() < t0 + 3000 && (closed = trickle(fds, sent, N)) < N - CAP)
        fe_poll_pause();
    assert_int_equal(closed, N - CAP);
    assert_true(fe_metric(admin, "rrm_handshakes_refused_total{reason=\"per_ip\"}") >= N - CAP);

    struct wsc *ws = fe_track(c, wsc_connect("127.0.0.1", port, "/", 1000));
    assert_non_null(ws);
    fe_close(c, ws);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_internal_protocol_unreachable, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_subprotocol_accepted, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_version_or_upgrade_refused, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_close_frames, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_slowloris, setup_slow, fe_teardown),
        cmocka_unit_test_setup_teardown(test_per_address_cap, setup_cap, fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
