/*
 * test_fe_pages.c - the pages a node serves from its binary, in a real headless Chromium
 * (tests/browser:  playwright-core driving Debian's chromium) and from C:
 * - /status.json (admin port): the whole cluster from Redis: both nodes with their connections
 *   and versions, the rooms busiest first with their member counts, the nodes hosting them and
 *   the members' identities; search by part of a room id or by device id; paging.
 * - /status (admin port) in Chromium: the same drawn as a page that refreshes itself, searches,
 *   pages, and shows an identity made of HTML as text.
 * - / (public port, RRM_DEMO_PAGE) in Chromium: two browser clients on two nodes join one room,
 *   exchange text both ways, and one resumes after its connection is dropped without missing what
 *   was sent meanwhile; they see each other's presence join and leave (presence events).
 * - the pages' security headers; RRM_DEMO_PAGE=0 answers 404 at / on the public port.
 *
 * Every test starts its own redis + two nodes (node-a, node-b).
 */
#include "fe_harness.h"
#include "proc.h"

#include <errno.h>
#include <setjmp.h>
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
/* An identity a client chose that is HTML (tests/browser/status.mjs has the same). */
#define EVIL "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"
#define FILLERS 12

static int setup(void **state) {
    struct fe_cluster *c = fe_cluster_start(2, NULL);
    *state = c;
    return c ? 0 : -1;
}

static int setup_no_demo(void **state) {
    static const char *const env[] = {"RRM_DEMO_PAGE=0", NULL};
    struct fe_cluster *c = fe_cluster_start(2, env);
    *state = c;
    return c ? 0 : -1;
}

/* GET path on 127.0.0.1:port: the status, and the body (caller frees) as JSON when json is not
 * NULL. */
static json_t *get_json(int port, const char *path) {
    int status = 0;
    char *body = NULL;
    int rc = proc_http_get(port, path, T, &status, &body);
    if (rc != 0 || status != 200)
        fail_msg("GET %s on %d: rc %d, status %d, body '%.300s'", path, port, rc, status,
                 body ? body : "");
    json_error_t e;
    json_t *v = json_loads(body, 0, &e);
    if (!v)
        fail_msg("GET %s: not JSON (%s): '%.300s'", path, e.text, body);
    free(body);
    return v;
}

/* The room entry of a /status.json answer's page, or NULL. */
static json_t *room_of(json_t *st, const char *room) {
    json_t *rooms = json_object_get(json_object_get(st, "cluster"), "rooms"), *r;
    size_t i;
    json_array_foreach(rooms, i, r) {
        if (strcmp(fe_str(r, "room_id"), room) == 0)
            return r;
    }
    return NULL;
}

static long long num(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", key);
    return (long long)json_integer_value(v);
}

/* Members of pages-room on both nodes (one with an HTML identity), and FILLERS rooms of one
 * member each on node-a: what both status tests look at. */
static void populate(struct fe_cluster *c) {
    assert_non_null(fe_join(c, 0, "status-a1", "Anna", "pages-room", NULL));
    assert_non_null(fe_join(c, 1, "status-b1", EVIL, "pages-room", NULL));
    for (int i = 1; i <= FILLERS; i++) {
        char dev[32], room[32];
        snprintf(dev, sizeof(dev), "filler-%02d", i);
        snprintf(room, sizeof(room), "fill-%02d", i);
        assert_non_null(fe_join(c, 0, dev, NULL, room, NULL));
    }
}

/* Polls /status.json on port until every node has a version recorded (written with their
 * heartbeats), within the deadline; returns the answer. */
static json_t *status_with_versions(int port, const char *path) {
    int64_t deadline = proc_now_ms() + T;
    for (;;) {
        json_t *st = get_json(port, path);
        json_t *nodes = json_object_get(json_object_get(st, "cluster"), "nodes"), *n;
        size_t i, with = 0;
        json_array_foreach(nodes, i, n) with += json_is_string(json_object_get(n, "version"));
        if (json_array_size(nodes) == 2 && with == 2)
            return st;
        json_decref(st);
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("/status.json: the nodes' versions did not appear");
        fe_poll_pause();
    }
}

/* /status.json: the cluster's nodes and rooms, from node-a's admin port, the same from
 * node-b's. */
static void test_status_json(void **state) {
    struct fe_cluster *c = *state;
    populate(c);
    for (int node = 0; node < 2; node++) {
        json_t *st = status_with_versions(fe_admin_port(c, node), "/status.json");
        json_t *cl = json_object_get(st, "cluster");
        assert_string_equal(fe_str(json_object_get(st, "node"), "node_id"), fe_node_id(c, node));
        /* nodes: connections and version */
        json_t *n;
        size_t i;
        json_array_foreach(json_object_get(cl, "nodes"), i, n) {
            int a = strcmp(fe_str(n, "node_id"), "node-a") == 0;
            assert_int_equal(num(n, "connections"), a ? 1 + FILLERS : 1);
            assert_string_equal(fe_str(n, "version"), RRM_VERSION);
            assert_true(num(n, "heartbeat_age_ms") >= 0 && num(n, "heartbeat_age_ms") < 5000);
        }
        assert_int_equal(num(cl, "rooms_total"), 1 + FILLERS);
        assert_int_equal(num(cl, "members_total"), 2 + FILLERS);
        /* busiest first: pages-room, with both nodes and both identities */
        json_t *rooms = json_object_get(cl, "rooms");
        assert_int_equal(json_array_size(rooms), 1 + FILLERS); /* one page of 20 */
        json_t *r = json_array_get(rooms, 0);
        assert_string_equal(fe_str(r, "room_id"), "pages-room");
        assert_int_equal(num(r, "total_clients"), 2);
        json_t *hosts = json_object_get(r, "nodes");
        assert_int_equal(json_array_size(hosts), 2);
        json_t *m0 = json_array_get(json_object_get(r, "clients"), 0);
        json_t *m1 = json_array_get(json_object_get(r, "clients"), 1);
        assert_string_equal(fe_str(m0, "device_id"), "status-a1");
        assert_string_equal(fe_str(m0, "identity"), "Anna");
        assert_string_equal(fe_str(m0, "node"), "node-a");
        assert_string_equal(fe_str(m1, "device_id"), "status-b1");
        assert_string_equal(fe_str(m1, "identity"), EVIL);
        assert_string_equal(fe_str(m1, "node"), "node-b");
        json_t *f = room_of(st, "fill-07");
        assert_non_null(f);
        assert_int_equal(num(f, "total_clients"), 1);
        json_decref(st);
    }
    int admin = fe_admin_port(c, 0);
    /* paging: 13 rooms, 5 a page: 3 pages, the last with 3 rooms, ranked on */
    json_t *p1 = get_json(admin, "/status.json?per_page=5");
    json_t *p3 = get_json(admin, "/status.json?per_page=5&page=3");
    json_t *past = get_json(admin, "/status.json?per_page=5&page=99");
    json_t *c1 = json_object_get(p1, "cluster"), *c3 = json_object_get(p3, "cluster");
    assert_int_equal(num(c1, "pages"), 3);
    assert_int_equal(num(c1, "page"), 1);
    assert_int_equal(json_array_size(json_object_get(c1, "rooms")), 5);
    assert_string_equal(fe_str(json_array_get(json_object_get(c1, "rooms"), 0), "room_id"),
                        "pages-room");
    assert_int_equal(num(c3, "page"), 3);
    assert_int_equal(json_array_size(json_object_get(c3, "rooms")), 3);
    assert_null(room_of(p3, "pages-room"));
    assert_string_equal(fe_str(json_array_get(json_object_get(c3, "rooms"), 2), "room_id"),
                        "fill-12");
    assert_int_equal(num(json_object_get(past, "cluster"), "page"), 3);
    json_decref(p1);
    json_decref(p3);
    json_decref(past);
    /* search: part of a room id (any case), a device id, nothing */
    json_t *s = get_json(admin, "/status.json?q=GES-ro");
    assert_int_equal(num(json_object_get(s, "cluster"), "matched"), 1);
    assert_non_null(room_of(s, "pages-room"));
    json_decref(s);
    s = get_json(admin, "/status.json?q=filler-07");
    json_t *cl = json_object_get(s, "cluster");
    assert_int_equal(num(cl, "matched"), 1);
    assert_non_null(room_of(s, "fill-07"));
    json_t *dev = json_object_get(cl, "device");
    assert_true(json_is_true(json_object_get(dev, "connected")));
    assert_string_equal(fe_str(dev, "room"), "fill-07");
    assert_string_equal(fe_str(dev, "node"), "node-a");
    json_decref(s);
    s = get_json(admin, "/status.json?q=no-such-thing");
    assert_int_equal(num(json_object_get(s, "cluster"), "matched"), 0);
    assert_int_equal(json_array_size(json_object_get(json_object_get(s, "cluster"), "rooms")), 0);
    assert_true(json_is_null(json_object_get(json_object_get(s, "cluster"), "device")));
    json_decref(s);
    /* this node's own connections, with the client address */
    s = get_json(admin, "/status.json");
    json_t *local = json_object_get(json_object_get(s, "node"), "members"), *m;
    size_t i, seen = 0;
    json_array_foreach(local, i, m) {
        if (strcmp(fe_str(m, "device_id"), "status-a1") == 0) {
            assert_string_equal(fe_str(m, "client_address"), "127.0.0.1");
            assert_string_equal(fe_str(m, "room_id"), "pages-room");
            seen++;
        }
    }
    assert_int_equal(seen, 1);
    json_decref(s);
}

/* Runs `node tests/browser/<script> args...`; fails the test with its output unless it exits 0. */
static void run_browser(const char *script, const char *a1, const char *a2, const char *a3) {
    const char *src = getenv("RRM_SOURCE_DIR");
    assert_non_null(src);
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/node_modules/playwright-core/package.json", src);
    const char *chromium = getenv("RRM_CHROMIUM") ? getenv("RRM_CHROMIUM") : "/usr/bin/chromium";
    if (access(path, R_OK) != 0 || access(chromium, X_OK) != 0)
        fail_msg(
            "the browser tests need %s and %s: scripts/test installs them (scripts/lib/deps.sh: "
            "Debian's chromium, and `npm ci` in tests)",
            chromium, path);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "cd '%s/tests/browser' && node %s '%s' '%s' '%s' 2>&1", src, script,
             a1, a2, a3);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[1024], out[16384] = "";
    size_t len = 0;
    while (fgets(line, sizeof(line), p)) {
        fputs(line, stderr); /* the browser test's progress and failure, as it happens */
        size_t n = strlen(line);
        if (len + n < sizeof(out)) {
            memcpy(out + len, line, n + 1);
            len += n;
        }
    }
    int st = pclose(p);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s failed (status %d): %s", script, st, out);
}

static void test_status_page(void **state) {
    struct fe_cluster *c = *state;
    populate(c);
    json_decref(status_with_versions(fe_admin_port(c, 0), "/status.json"));
    char admin[64], pub_b[64];
    snprintf(admin, sizeof(admin), "http://127.0.0.1:%d/", fe_admin_port(c, 0));
    snprintf(pub_b, sizeof(pub_b), "http://127.0.0.1:%d/", fe_port(c, 1));
    run_browser("status.mjs", admin, pub_b, "");
}

static void client_page(struct fe_cluster *c, const char *part) {
    char pub_a[64], pub_b[64];
    snprintf(pub_a, sizeof(pub_a), "http://127.0.0.1:%d/", fe_port(c, 0));
    snprintf(pub_b, sizeof(pub_b), "http://127.0.0.1:%d/", fe_port(c, 1));
    run_browser("client.mjs", pub_a, pub_b, part);
}

/* Two browser clients on two nodes: text both ways, and a resume after a cut connection. */
static void test_client_page(void **state) {
    client_page(*state, "messages");
}

/* Two browser clients on two nodes see each other's presence join and leave. */
static void test_client_presence(void **state) {
    client_page(*state, "presence");
}

/* The head of GET path on port, lower-cased, into head; returns the status. */
static int head_of(int port, const char *path, char *head, size_t cap) {
    char req[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             path);
    int st = proc_http_exchange(NULL, port, req, T, head, cap);
    for (char *p = head; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    return st;
}

/* The pages come with their security headers: a policy that allows nothing from elsewhere,
 * not sniffed, not framed; the public port's / is the client, the admin port's the status. */
static void test_page_headers(void **state) {
    struct fe_cluster *c = *state;
    const struct {
        int port;
        const char *path, *marker;
    } pages[] = {
        {fe_port(c, 0), "/", "browser client"},
        {fe_admin_port(c, 0), "/", "status.json"},
        {fe_admin_port(c, 0), "/status", "status.json"},
    };
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        char head[4096];
        assert_int_equal(head_of(pages[i].port, pages[i].path, head, sizeof(head)), 200);
        assert_non_null(strstr(head, "content-type: text/html; charset=utf-8"));
        assert_non_null(strstr(head, "x-content-type-options: nosniff"));
        assert_non_null(strstr(head, "x-frame-options: deny"));
        assert_non_null(strstr(head, "content-security-policy: default-src 'none'; "));
        assert_non_null(strstr(head, "connect-src 'self'"));
        assert_non_null(strstr(head, "frame-ancestors 'none'"));
        int status = 0;
        char *body = NULL;
        assert_int_equal(proc_http_get(pages[i].port, pages[i].path, T, &status, &body), 0);
        assert_non_null(strstr(body, pages[i].marker));
        assert_null(strstr(body, "src=\"http")); /* nothing loaded from elsewhere */
        assert_null(strstr(body, "href=\"http"));
        free(body);
    }
    char head[4096];
    assert_int_equal(head_of(fe_admin_port(c, 0), "/status.json", head, sizeof(head)), 200);
    assert_non_null(strstr(head, "content-type: application/json"));
    assert_non_null(strstr(head, "x-content-type-options: nosniff"));
    /* the status's data stays on the admin port */
    assert_int_equal(head_of(fe_port(c, 0), "/status.json", head, sizeof(head)), 404);
}

/* RRM_DEMO_PAGE=0: nothing at / on the public port; the admin port keeps its status page. */
static void test_no_demo_page(void **state) {
    struct fe_cluster *c = *state;
    char head[4096];
    assert_int_equal(head_of(fe_port(c, 0), "/", head, sizeof(head)), 404);
    int status = 0;
    char *body = NULL;
    assert_int_equal(proc_http_get(fe_admin_port(c, 0), "/", T, &status, &body), 0);
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, "status.json"));
    free(body);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_json, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_page_headers, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_no_demo_page, setup_no_demo, fe_teardown),
        cmocka_unit_test_setup_teardown(test_status_page, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_client_page, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_client_presence, setup, fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
