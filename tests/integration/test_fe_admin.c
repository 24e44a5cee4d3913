/*
 * test_fe_admin.c - what each listener of rrm-frontend exposes, and to which browsers: /metrics,
 * /status, /status.json and / (the status page) only on the admin port (RRM_ADMIN_PORT), /healthz
 * and /readyz on both, no WebSocket on the admin port, no admin listener at all with
 * RRM_ADMIN_PORT=0, the admin listener only on RRM_ADMIN_BIND, and upgrades refused with 403 when
 * their Origin is not in RRM_ALLOWED_ORIGINS (counted by reason), while requests without Origin
 * and, by default, any Origin are accepted.
 *
 * Every test starts its own redis + one node (node-a).
 */
#include "fe_harness.h"
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS
#define ORIGIN_REFUSED "rrm_handshakes_refused_total{reason=\"origin\"}"
#define ADMIN_REFUSED "rrm_handshakes_refused_total{reason=\"admin_port\"}"

static int start(void **state, const char *const env[]) {
    struct fe_cluster *c = fe_cluster_start(1, env);
    *state = c;
    return c ? 0 : -1;
}

static int setup(void **state) {
    return start(state, NULL);
}

static int setup_no_admin(void **state) {
    static const char *const env[] = {"RRM_ADMIN_PORT=0", NULL};
    return start(state, env);
}

static int setup_admin_bind(void **state) {
    static const char *const env[] = {"RRM_ADMIN_BIND=127.0.0.2", NULL};
    return start(state, env);
}

static int setup_origins(void **state) {
    static const char *const env[] = {
        "RRM_ALLOWED_ORIGINS=https://app.example.com, http://localhost:8080/", NULL};
    return start(state, env);
}

/* GET path from host:port on a new connection; returns the status (the body, if body is not
 * NULL, is stored there: caller frees) or a negative errno value (-ECONNREFUSED: nothing
 * listens there). */
static int http_get(const char *host, int port, const char *path, char **body) {
    int fd = proc_tcp_connect(host, port, T);
    if (fd < 0)
        return fd;
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, host);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
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
    int code = 0;
    if (sscanf(buf, "HTTP/1.1 %d", &code) != 1) {
        free(buf);
        return -EPROTO;
    }
    char *start = strstr(buf, "\r\n\r\n");
    if (body)
        *body = strdup(start ? start + 4 : "");
    free(buf);
    return code;
}

/* Status of a WebSocket upgrade to host:port with an Origin header (none if origin is NULL). */
static int upgrade_with_origin(const char *host, int port, const char *origin) {
    char line[600];
    snprintf(line, sizeof(line), "Origin: %s", origin ? origin : "");
    const char *const hdr[] = {line, NULL};
    return wsc_probe_upgrade(host, port, "/", origin ? hdr : NULL, T);
}

/* A WebSocket connection that identifies and gets its answers: a working session. */
static void expect_session(struct fe_cluster *c, const char *origin, const char *device) {
    char line[600];
    snprintf(line, sizeof(line), "Origin: %s", origin ? origin : "");
    const char *const hdr[] = {line, NULL};
    struct wsc *ws =
        fe_track(c, wsc_connect_ex("127.0.0.1", fe_port(c, 0), "/", origin ? hdr : NULL, T));
    if (!ws)
        fail_msg("an upgrade with origin '%s' was not accepted", origin ? origin : "(none)");
    assert_int_equal(fe_send_json(ws, json_pack("{s:s}", "device_id", device)), 0);
    json_t *conn = fe_expect_type(ws, "connection", T);
    assert_non_null(conn);
    json_decref(conn);
    fe_close(c, ws);
}

static void expect_status(const char *host, int port, const char *path, int want) {
    char *body = NULL;
    int got = http_get(host, port, path, &body);
    if (got != want)
        fail_msg("GET %s on %s:%d: %d, want %d (body '%.200s')", path, host, port, got, want,
                 body ? body : "");
    free(body);
}

/* The ports the process pid listens on (TCP over IPv4), from /proc: its socket inodes, looked up
 * in its network namespace's table. Returns how many (at most cap stored in ports). */
static int listening_ports(pid_t pid, int *ports, int cap) {
    char path[64], link[64], fdpath[320];
    unsigned long inodes[256];
    int ninodes = 0;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && ninodes < 256) {
        snprintf(fdpath, sizeof(fdpath), "%s/%s", path, e->d_name);
        ssize_t n = readlink(fdpath, link, sizeof(link) - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        unsigned long ino;
        if (sscanf(link, "socket:[%lu]", &ino) == 1)
            inodes[ninodes++] = ino;
    }
    closedir(d);
    snprintf(path, sizeof(path), "/proc/%d/net/tcp", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    int found = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned addr, port, state;
        unsigned long ino;
        if (sscanf(line, " %*d: %x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &addr, &port,
                   &state, &ino) != 4 ||
            state != 0x0A /* LISTEN */)
            continue;
        for (int i = 0; i < ninodes; i++)
            if (inodes[i] == ino) {
                if (found < cap)
                    ports[found] = (int)port;
                found++;
            }
    }
    fclose(f);
    return found;
}

/* /metrics, /status and /status.json live on the admin port only; the public port answers them
 * like any unknown path, without naming the admin endpoints (its / is the browser client:
 * test_fe_pages). Probes answer on both. */
static void test_endpoints_by_port(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0), admin = fe_admin_port(c, 0);
    assert_true(admin > 0 && admin != port);
    char room[FE_ROOM_CAP];
    assert_non_null(fe_join(c, 0, "admin-1", NULL, "admin-room", room));

    static const char *const admin_only[] = {"/metrics", "/status", "/status.json"};
    for (size_t i = 0; i < sizeof(admin_only) / sizeof(admin_only[0]); i++) {
        char *body = NULL;
        int got = http_get("127.0.0.1", port, admin_only[i], &body);
        if (got != 404)
            fail_msg("GET %s on the public port: %d, want 404", admin_only[i], got);
        assert_string_equal(body, "not found\n");
        free(body);
        expect_status("127.0.0.1", admin, admin_only[i], 200);
    }
    for (int i = 0; i < 2; i++) {
        int p = i ? admin : port;
        expect_status("127.0.0.1", p, "/healthz", 200);
        expect_status("127.0.0.1", p, "/readyz", 200);
        expect_status("127.0.0.1", p, "/no-such-page", 404);
    }
    /* and the admin port's pages are the real ones: the status page draws /status.json */
    char *page = NULL;
    assert_int_equal(http_get("127.0.0.1", admin, "/status", &page), 200);
    assert_non_null(strstr(page, "status.json"));
    free(page);
    assert_int_equal(http_get("127.0.0.1", port, "/status.json", NULL), 404);
    assert_int_equal(http_get("127.0.0.1", admin, "/status.json", &page), 200);
    assert_non_null(strstr(page, "\"room_id\":\"admin-room\""));
    /* the node's connections, each with the client address it was accepted from */
    assert_non_null(strstr(page, "{\"device_id\":\"admin-1\","));
    assert_non_null(
        strstr(strstr(page, "{\"device_id\":\"admin-1\","), "\"client_address\":\"127.0.0.1\""));
    free(page);
    assert_true(fe_metric(admin, "rrm_open_connections") >= 1);
}

/* What /metrics writes passes Prometheus's own linter (promtool, from Debian's prometheus
 * package), and carries the standard process metrics and the build's info. */
static void test_metrics_lint(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    struct wsc *ws = fe_join(c, 0, "lint-1", NULL, "lint-room", NULL);
    assert_non_null(ws);
    char *body = NULL;
    assert_int_equal(http_get("127.0.0.1", admin, "/metrics", &body), 200);
    assert_non_null(body);
    char out[4096] = "";
    int status = proc_promtool_check(body, out, sizeof(out));
    if (status != 0)
        fail_msg("promtool check metrics (status %d): %s", status, out);
    assert_true(fe_metric(admin, "process_resident_memory_bytes") > 1000000);
    assert_true(fe_metric(admin, "process_open_fds") >= 3);
    assert_true(fe_metric(admin, "process_max_fds") >= 1024);
    assert_true(fe_metric(admin, "process_start_time_seconds") > 1700000000);
    assert_true(fe_metric(admin, "rrm_redis_rtt_seconds") >= 0);
    assert_non_null(strstr(body, "\nrrm_build_info{version=\""));
    assert_non_null(strstr(body, "\nprocess_cpu_seconds_total "));
    assert_null(strstr(body, "rrm_connections "));
    free(body);
}

/* The admin port carries no WebSocket: an upgrade there gets 404 and is counted; the public port
 * still upgrades. */
static void test_upgrade_refused_on_admin_port(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_metric(admin, ADMIN_REFUSED);
    assert_true(before >= 0);
    assert_int_equal(upgrade_with_origin("127.0.0.1", admin, NULL), 404);
    static const char *const rrm[] = {"Sec-WebSocket-Protocol: rrm", NULL};
    assert_int_equal(wsc_probe_upgrade("127.0.0.1", admin, "/metrics", rrm, T), 404);
    assert_null(wsc_connect("127.0.0.1", admin, "/", T));
    assert_int_equal(fe_metric(admin, ADMIN_REFUSED), before + 3);
    expect_status("127.0.0.1", admin, "/healthz", 200);
    expect_session(c, NULL, "admin-ws-public");
}

/* RRM_ADMIN_PORT=0: the node listens on its public port only, and the admin endpoints are
 * nowhere. */
static void test_no_admin_listener(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    assert_int_equal(fe_admin_port(c, 0), 0);
    int ports[8];
    int n = listening_ports(fe_node_pid(c, 0), ports, 8);
    if (n != 1 || ports[0] != port)
        fail_msg("the node listens on %d ports (first %d), want only %d", n, n ? ports[0] : 0,
                 port);
    expect_status("127.0.0.1", port, "/metrics", 404);
    expect_status("127.0.0.1", port, "/status", 404);
    expect_status("127.0.0.1", port, "/readyz", 200);
    expect_session(c, NULL, "no-admin-1");
}

/* RRM_ADMIN_BIND: the admin listener answers on that address only. */
static void test_admin_bind(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    expect_status("127.0.0.2", admin, "/metrics", 200);
    expect_status("127.0.0.2", admin, "/healthz", 200);
    int got = http_get("127.0.0.1", admin, "/metrics", NULL);
    if (got != -ECONNREFUSED)
        fail_msg("127.0.0.1:%d (admin port bound to 127.0.0.2): %d, want refused", admin, got);
    /* the public listener keeps its own bind (all interfaces) */
    expect_status("127.0.0.1", fe_port(c, 0), "/readyz", 200);
}

/* RRM_ALLOWED_ORIGINS: an Origin outside the list gets 403 and counts; one in it (scheme and host
 * in any case, the default port written or not, a trailing slash) and none at all upgrade to a
 * working session. */
static void test_origins_restricted(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0), admin = fe_admin_port(c, 0);
    long long before = fe_metric(admin, ORIGIN_REFUSED);
    assert_true(before >= 0);
    static const char *const refused[] = {
        "https://evil.example.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com.evil.com",
        "https://sub.app.example.com",
        "http://localhost",
        "http://localhost:8081",
        "null",
        "https://app.example.com/x",
        "https://user@app.example.com",
        "file://",
    };
    size_t n = sizeof(refused) / sizeof(refused[0]);
    for (size_t i = 0; i < n; i++) {
        int got = upgrade_with_origin("127.0.0.1", port, refused[i]);
        if (got != 403)
            fail_msg("Origin '%s': %d, want 403", refused[i], got);
    }
    assert_int_equal(fe_metric(admin, ORIGIN_REFUSED), before + (long long)n);

    static const char *const allowed[] = {
        "https://app.example.com",  "HTTPS://App.Example.COM", "https://app.example.com:443",
        "https://app.example.com/", "http://localhost:8080",   "http://LOCALHOST:8080/",
    };
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        int got = upgrade_with_origin("127.0.0.1", port, allowed[i]);
        if (got != 101)
            fail_msg("Origin '%s': %d, want 101", allowed[i], got);
    }
    expect_session(c, "https://app.example.com", "origin-ok-1");
    expect_session(c, NULL, "origin-none-1"); /* a native client sends no Origin */
    /* an empty header is no origin either */
    assert_int_equal(upgrade_with_origin("127.0.0.1", port, ""), 101);
    assert_int_equal(fe_metric(admin, ORIGIN_REFUSED), before + (long long)n);
}

/* The default (*) lets any Origin in, and refuses none for it. */
static void test_any_origin_by_default(void **state) {
    struct fe_cluster *c = *state;
    static const char *const any[] = {"https://evil.example.com", "null", "http://x:1"};
    for (size_t i = 0; i < sizeof(any) / sizeof(any[0]); i++)
        assert_int_equal(upgrade_with_origin("127.0.0.1", fe_port(c, 0), any[i]), 101);
    expect_session(c, "https://anything.example.org", "any-origin-1");
    assert_int_equal(fe_metric(fe_admin_port(c, 0), ORIGIN_REFUSED), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_endpoints_by_port, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_lint, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_refused_on_admin_port, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_no_admin_listener, setup_no_admin, fe_teardown),
        cmocka_unit_test_setup_teardown(test_admin_bind, setup_admin_bind, fe_teardown),
        cmocka_unit_test_setup_teardown(test_origins_restricted, setup_origins, fe_teardown),
        cmocka_unit_test_setup_teardown(test_any_origin_by_default, setup, fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
