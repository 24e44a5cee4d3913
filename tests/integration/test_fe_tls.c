/*
 * test_fe_tls.c - wss on the client port (RRM_TLS_CERT / RRM_TLS_KEY), with a CA and server
 * certificates made by the openssl CLI in the test: identify and relay between two wss clients,
 * /healthz over https, plain ws and http refused on the TLS port, a client that never starts its
 * TLS handshake closed at the handshake deadline, the certificate renewed on
 * SIGHUP and by the file watch (a new handshake sees the new serial, a connection opened before
 * keeps relaying), a broken renewal refused while the old certificate keeps serving, and the
 * start-up errors for missing, unreadable or mismatched files.
 *
 * Every test starts its own redis + one node (node-a); the node's certificate files are copies
 * in the CA's temp dir ("live.crt", "live.key") that the test replaces like the kubelet does
 * (a new file renamed over the old one).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "fe_harness.h"
#include "proc.h"
#include "tls_certs.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS

struct tls_fixture {
    struct fe_cluster *c;
    struct tls_certs *ca;
    struct tls_cert_files first; /* serial 0x1001, 10 days */
    char live_cert[TLS_CERTS_PATH_MAX], live_key[TLS_CERTS_PATH_MAX];
    char env_cert[TLS_CERTS_PATH_MAX + 16], env_key[TLS_CERTS_PATH_MAX + 16];
};

/* Copies src over dst the way the kubelet renews a mounted Secret: a new file, renamed. */
static void replace_file(const char *src, const char *dst) {
    char tmp[TLS_CERTS_PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.new", dst);
    FILE *in = fopen(src, "r"), *out = fopen(tmp, "w");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(rename(tmp, dst), 0);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* The CA, the first certificate and its live copies; no node yet. */
static struct tls_fixture *fixture_new(void) {
    struct tls_fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->ca = tls_certs_create(NULL);
    if (!f->ca || tls_certs_issue(f->ca, "first", 0x1001, 10, NULL, &f->first) < 0)
        return f;
    snprintf(f->live_cert, sizeof(f->live_cert), "%s/live.crt", tls_certs_dir(f->ca));
    snprintf(f->live_key, sizeof(f->live_key), "%s/live.key", tls_certs_dir(f->ca));
    replace_file(f->first.cert, f->live_cert);
    replace_file(f->first.key, f->live_key);
    snprintf(f->env_cert, sizeof(f->env_cert), "RRM_TLS_CERT=%s", f->live_cert);
    snprintf(f->env_key, sizeof(f->env_key), "RRM_TLS_KEY=%s", f->live_key);
    return f;
}

static int start(void **state, const char *watch_ms) {
    struct tls_fixture *f = fixture_new();
    *state = f;
    if (!f || !f->ca || !f->env_cert[0])
        return -1;
    const char *env[] = {f->env_cert, f->env_key, watch_ms, NULL};
    f->c = fe_cluster_start_tls(1, env, tls_certs_ca(f->ca));
    return f->c ? 0 : -1;
}

static int setup(void **state) {
    return start(state, "RRM_TLS_WATCH_MS=0");
}

static int setup_watch(void **state) {
    return start(state, "RRM_TLS_WATCH_MS=200");
}

static int setup_short_handshake(void **state) {
    struct tls_fixture *f = fixture_new();
    *state = f;
    if (!f || !f->ca || !f->env_cert[0])
        return -1;
    const char *env[] = {f->env_cert, f->env_key, "RRM_HANDSHAKE_TIMEOUT_MS=800", NULL};
    f->c = fe_cluster_start_tls(1, env, tls_certs_ca(f->ca));
    return f->c ? 0 : -1;
}

static int setup_certs_only(void **state) {
    struct tls_fixture *f = fixture_new();
    *state = f;
    return f && f->ca && f->env_cert[0] ? 0 : -1;
}

static int teardown(void **state) {
    struct tls_fixture *f = *state;
    int rc = 0;
    if (!f)
        return 0;
    if (f->c)
        rc = fe_cluster_stop(f->c);
    tls_certs_destroy(f->ca);
    free(f);
    return rc;
}

static struct wsc *wss_connect(struct tls_fixture *f) {
    struct wsc_tls tls = {.ca_file = tls_certs_ca(f->ca)};
    return fe_track(f->c, wsc_connect_tls("127.0.0.1", fe_port(f->c, 0), "/", &tls, NULL, T));
}

/* A wss client that identified as device and joined room (NULL: a new room, written to
 * room_out). */
static struct wsc *wss_join(struct tls_fixture *f, const char *device, const char *room,
                            char *room_out) {
    struct wsc *ws = wss_connect(f);
    assert_non_null(ws);
    json_t *id = json_pack("{s:s}", "device_id", device);
    if (room)
        json_object_set_new(id, "room_id", json_string(room));
    assert_int_equal(fe_send_json(ws, id), 0);
    json_t *conn = fe_expect_type(ws, "connection", T);
    assert_non_null(conn);
    json_decref(conn);
    json_t *r = fe_expect_type(ws, "room", T);
    assert_non_null(r);
    if (room_out)
        snprintf(room_out, FE_ROOM_CAP, "%s", fe_str(r, "room_id"));
    json_decref(r);
    return ws;
}

/* The certificate a new handshake gets. */
static void current_cert(struct tls_fixture *f, struct wsc_cert_info *info) {
    struct wsc_tls tls = {.ca_file = tls_certs_ca(f->ca)};
    int code = 0;
    assert_int_equal(
        wsc_https_get("127.0.0.1", fe_port(f->c, 0), "/healthz", &tls, T, &code, NULL, info), 0);
    assert_int_equal(code, 200);
}

/* Waits until new handshakes present the certificate with this serial. */
static void wait_serial(struct tls_fixture *f, const char *serial) {
    int64_t deadline = proc_now_ms() + T;
    struct wsc_cert_info info;
    for (;;) {
        current_cert(f, &info);
        if (strcmp(info.serial, serial) == 0)
            return;
        if (proc_remaining_ms(deadline) == 0) {
            fprintf(stderr, "still serial %s, want %s\n", info.serial, serial);
            fe_dump_log(f->c, 0);
            fail();
        }
        fe_poll_pause();
    }
}

static long long metric(struct tls_fixture *f, const char *series) {
    return fe_metric(fe_admin_port(f->c, 0), series);
}

static long long wait_metric(struct tls_fixture *f, const char *series, long long min) {
    int64_t deadline = proc_now_ms() + T;
    for (;;) {
        long long v = metric(f, series);
        if (v >= min || proc_remaining_ms(deadline) == 0)
            return v;
        fe_poll_pause();
    }
}

#define RELOADS_OK "rrm_tls_reloads_total{result=\"ok\"}"
#define RELOADS_ERROR "rrm_tls_reloads_total{result=\"error\"}"
#define EXPIRY "rrm_tls_cert_expiry_timestamp_seconds"

/* Two wss clients in one room relay both ways. */
static void relay_both_ways(struct wsc *a, struct wsc *b, const char *room, const char *tag) {
    char text[64];
    snprintf(text, sizeof(text), "from a %s", tag);
    fe_send_text(a, text);
    fe_expect_text(b, "dev-a", room, text);
    snprintf(text, sizeof(text), "from b %s", tag);
    fe_send_text(b, text);
    fe_expect_text(a, "dev-b", room, text);
}

static void test_wss_relay_and_https_probes(void **state) {
    struct tls_fixture *f = *state;
    char room[FE_ROOM_CAP];
    struct wsc *a = wss_join(f, "dev-a", NULL, room);
    struct wsc *b = wss_join(f, "dev-b", room, NULL);
    relay_both_ways(a, b, room, "over wss");

    struct wsc_cert_info info;
    assert_int_equal(wsc_peer_cert(a, &info), 0);
    assert_string_equal(info.serial, "1001");

    struct wsc_tls tls = {.ca_file = tls_certs_ca(f->ca)};
    int code = 0;
    char *body = NULL;
    assert_int_equal(
        wsc_https_get("127.0.0.1", fe_port(f->c, 0), "/healthz", &tls, T, &code, &body, NULL), 0);
    assert_int_equal(code, 200);
    assert_string_equal(body, "ok\n");
    free(body);
    /* The certificate names localhost too. */
    tls.server_name = "localhost";
    assert_int_equal(
        wsc_https_get("127.0.0.1", fe_port(f->c, 0), "/readyz", &tls, T, &code, NULL, NULL), 0);
    assert_int_equal(code, 200);
    /* A name the certificate does not carry is rejected by the client. */
    tls.server_name = "elsewhere.example";
    assert_int_equal(
        wsc_https_get("127.0.0.1", fe_port(f->c, 0), "/healthz", &tls, T, &code, NULL, NULL),
        -EPROTO);

    assert_int_equal(metric(f, EXPIRY), info.not_after);
    assert_int_equal(metric(f, RELOADS_OK), 0);
    assert_int_equal(metric(f, RELOADS_ERROR), 0);
}

static void test_plain_refused(void **state) {
    struct tls_fixture *f = *state;
    int port = fe_port(f->c, 0);
    /* Plain ws: no HTTP answer at all, the connection is dropped. */
    int r = wsc_probe_upgrade("127.0.0.1", port, "/", NULL, T);
    assert_true(r < 0);
    assert_int_not_equal(r, -ETIMEDOUT);
    /* Plain HTTP to a probe: the same. */
    int code = 0;
    r = proc_http_get(port, "/healthz", T, &code, NULL);
    assert_true(r < 0);
    assert_int_not_equal(r, -ETIMEDOUT);
    /* wss still works after them. */
    char room[FE_ROOM_CAP];
    struct wsc *a = wss_join(f, "dev-a", NULL, room);
    struct wsc *b = wss_join(f, "dev-b", room, NULL);
    relay_both_ways(a, b, room, "after plain attempts");
}

/* A client that opens TCP and never starts its TLS handshake is closed at the handshake
 * deadline, like a slow plain client, and counted. */
static void test_silent_client_closed(void **state) {
    struct tls_fixture *f = *state;
    int fd = proc_tcp_connect("127.0.0.1", fe_port(f->c, 0), T);
    assert_true(fd >= 0);
    int64_t start = proc_now_ms();
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, T), 1);
    char c;
    assert_true(read(fd, &c, 1) <= 0); /* closed without a byte */
    close(fd);
    assert_true(proc_now_ms() - start < 5000);
    assert_true(wait_metric(f, "rrm_handshake_timeouts_total", 1) >= 1);
}

/* Renews the live files with a certificate of serial 0x2002, valid 20 days (key first, then
 * the certificate, as separate renames). */
static void renew(struct tls_fixture *f) {
    struct tls_cert_files renewed;
    assert_int_equal(tls_certs_issue(f->ca, "renewed", 0x2002, 20, NULL, &renewed), 0);
    replace_file(renewed.key, f->live_key);
    replace_file(renewed.cert, f->live_cert);
}

static void test_reload_on_sighup(void **state) {
    struct tls_fixture *f = *state;
    char room[FE_ROOM_CAP];
    struct wsc *a = wss_join(f, "dev-a", NULL, room);
    struct wsc *b = wss_join(f, "dev-b", room, NULL);
    struct wsc_cert_info before, after;
    current_cert(f, &before);
    assert_string_equal(before.serial, "1001");

    renew(f);
    /* Without a signal (and with the watch off) nothing changes. */
    current_cert(f, &after);
    assert_string_equal(after.serial, "1001");

    assert_int_equal(fe_node_signal(f->c, 0, SIGHUP), 0);
    wait_serial(f, "2002");
    current_cert(f, &after);
    assert_true(after.not_after > before.not_after);
    assert_int_equal(wait_metric(f, RELOADS_OK, 1), 1);
    assert_int_equal(metric(f, RELOADS_ERROR), 0);
    assert_int_equal(metric(f, EXPIRY), after.not_after);

    /* The connections opened before the reload keep their session and relay. */
    struct wsc_cert_info old;
    assert_int_equal(wsc_peer_cert(a, &old), 0);
    assert_string_equal(old.serial, "1001");
    relay_both_ways(a, b, room, "across the reload");
    /* ... also with a client that connected after it. */
    struct wsc *c = wss_join(f, "dev-c", room, NULL);
    struct wsc_cert_info fresh;
    assert_int_equal(wsc_peer_cert(c, &fresh), 0);
    assert_string_equal(fresh.serial, "2002");
    fe_send_text(c, "from c");
    fe_expect_text(a, "dev-c", room, "from c");
    fe_expect_text(b, "dev-c", room, "from c");
}

static void test_broken_renewal_refused(void **state) {
    struct tls_fixture *f = *state;
    char room[FE_ROOM_CAP];
    struct wsc *a = wss_join(f, "dev-a", NULL, room);
    struct wsc *b = wss_join(f, "dev-b", room, NULL);

    /* A certificate file that is not PEM. */
    char broken[TLS_CERTS_PATH_MAX + 16];
    snprintf(broken, sizeof(broken), "%s/broken.crt", tls_certs_dir(f->ca));
    write_text(broken, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n");
    replace_file(broken, f->live_cert);
    assert_int_equal(fe_node_signal(f->c, 0, SIGHUP), 0);
    assert_int_equal(wait_metric(f, RELOADS_ERROR, 1), 1);

    /* A valid certificate with a key that is not its own. */
    struct tls_cert_files other, renewed;
    assert_int_equal(tls_certs_issue(f->ca, "other", 0x3003, 20, NULL, &other), 0);
    assert_int_equal(tls_certs_issue(f->ca, "renewed", 0x2002, 20, NULL, &renewed), 0);
    replace_file(renewed.cert, f->live_cert);
    replace_file(other.key, f->live_key);
    assert_int_equal(fe_node_signal(f->c, 0, SIGHUP), 0);
    assert_int_equal(wait_metric(f, RELOADS_ERROR, 2), 2);
    assert_int_equal(metric(f, RELOADS_OK), 0);

    /* The old certificate keeps serving new handshakes, and the old connections relay. */
    struct wsc_cert_info info;
    current_cert(f, &info);
    assert_string_equal(info.serial, "1001");
    assert_int_equal(metric(f, EXPIRY), info.not_after);
    relay_both_ways(a, b, room, "after refused reloads");
    struct wsc *c = wss_join(f, "dev-c", room, NULL);
    assert_int_equal(wsc_peer_cert(c, &info), 0);
    assert_string_equal(info.serial, "1001");

    /* Once the key matches, the next reload installs it. */
    replace_file(renewed.key, f->live_key);
    assert_int_equal(fe_node_signal(f->c, 0, SIGHUP), 0);
    wait_serial(f, "2002");
    assert_int_equal(wait_metric(f, RELOADS_OK, 1), 1);
}

/* A renewal with a key of another type (RSA after EC) is refused: it would sit beside the old
 * certificate in the TLS context instead of replacing it. */
static void test_key_type_change_refused(void **state) {
    struct tls_fixture *f = *state;
    struct tls_cert_files rsa;
    struct tls_cert_spec spec = {.name = "rsa", .serial = 0x4004, .days = 20, .rsa = 1};
    assert_int_equal(tls_certs_issue_spec(f->ca, &spec, &rsa), 0);
    replace_file(rsa.key, f->live_key);
    replace_file(rsa.cert, f->live_cert);
    assert_int_equal(fe_node_signal(f->c, 0, SIGHUP), 0);
    assert_int_equal(wait_metric(f, RELOADS_ERROR, 1), 1);
    struct wsc_cert_info info;
    current_cert(f, &info);
    assert_string_equal(info.serial, "1001");
    assert_int_equal(metric(f, RELOADS_OK), 0);
}

static void test_reload_on_file_change(void **state) {
    struct tls_fixture *f = *state;
    char room[FE_ROOM_CAP];
    struct wsc *a = wss_join(f, "dev-a", NULL, room);
    struct wsc *b = wss_join(f, "dev-b", room, NULL);
    renew(f);
    /* No signal: the node sees the files change. */
    wait_serial(f, "2002");
    assert_true(wait_metric(f, RELOADS_OK, 1) >= 1);
    relay_both_ways(a, b, room, "after the automatic reload");
}

/* Runs the frontend with env until it exits; its exit status, with its output in *log. */
static int run_frontend(struct tls_fixture *f, const char *const env[], char **log) {
    char path[TLS_CERTS_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/fe-start.log", tls_certs_dir(f->ca));
    unlink(path);
    char port[32];
    snprintf(port, sizeof(port), "RRM_PORT=%d", proc_free_port());
    const char *full[8] = {port, "RRM_REDIS_PORT=1"};
    size_t k = 2;
    for (size_t i = 0; env[i] && k < 7; i++)
        full[k++] = env[i];
    full[k] = NULL;
    const char *const argv[] = {getenv("RRM_FRONTEND_BIN"), NULL};
    pid_t pid = proc_spawn(argv, full, path);
    assert_true(pid > 0);
    int st = 0;
    if (proc_wait_exit(pid, 5000, &st) == -ETIMEDOUT) {
        proc_stop(pid, SIGKILL, 5000, &st);
        st = -1;
    }
    FILE *in = fopen(path, "r");
    *log = calloc(1, 8192);
    assert_non_null(*log);
    if (in) {
        size_t n = fread(*log, 1, 8191, in);
        (*log)[n] = '\0';
        fclose(in);
    }
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_start_error(struct tls_fixture *f, const char *const env[], const char *names) {
    char *log = NULL;
    int rc = run_frontend(f, env, &log);
    if (rc != 2 || !strstr(log, names))
        fprintf(stderr, "exit %d, want 2 and '%s' in:\n%s\n", rc, names, log);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(log, names));
    free(log);
}

static void test_start_errors(void **state) {
    struct tls_fixture *f = *state;
    char missing[TLS_CERTS_PATH_MAX + 32], other_key[TLS_CERTS_PATH_MAX + 16];
    struct tls_cert_files other;
    assert_int_equal(tls_certs_issue(f->ca, "other", 0x3003, 20, NULL, &other), 0);
    snprintf(missing, sizeof(missing), "RRM_TLS_CERT=%s/none.crt", tls_certs_dir(f->ca));
    snprintf(other_key, sizeof(other_key), "RRM_TLS_KEY=%s", other.key);

    const char *cert_only[] = {f->env_cert, NULL};
    expect_start_error(f, cert_only, "RRM_TLS_KEY");
    const char *key_only[] = {f->env_key, NULL};
    expect_start_error(f, key_only, "RRM_TLS_CERT");
    const char *no_file[] = {missing, f->env_key, NULL};
    expect_start_error(f, no_file, "RRM_TLS_CERT: cannot read");
    const char *mismatch[] = {f->env_cert, other_key, NULL};
    expect_start_error(f, mismatch, "does not match");
    const char *key_as_cert[] = {"RRM_TLS_CERT=/dev/null", f->env_key, NULL};
    expect_start_error(f, key_as_cert, "RRM_TLS_CERT");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wss_relay_and_https_probes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_client_closed, setup_short_handshake, teardown),
        cmocka_unit_test_setup_teardown(test_reload_on_sighup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_renewal_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_type_change_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_on_file_change, setup_watch, teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, setup_certs_only, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
