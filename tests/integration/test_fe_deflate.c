/*
 * test_fe_deflate.c - permessage-deflate (RFC 7692) with real clients that offer it by default:
 * Python `websockets` (tests/scripts/deflate_py.py, Debian's python3-websockets) and Node `ws`
 * (tests/node/deflate_ws.js; scripts/test installs the packages of tests/package.json). Each
 * check is one run of a client script against a node, which exits 0 when the check holds:
 * - the answer names server_no_context_takeover and client_no_context_takeover; Chromium's offer
 *   (client_max_window_bits) is answered so, server_max_window_bits=10 honoured, =8 and unknown
 *   parameters declined (the connection is accepted without the extension);
 * - large JSON arrives compressed (RSV1 seen by the client) and intact, compressed once on the
 *   node for all its deflate recipients, small JSON plain, plain clients get plain frames;
 * - a client's compressed message (also fragmented) is relayed intact to a plain client;
 * - a zip bomb closes 1009, data that is not deflate 1007, invalid UTF-8 (inflated or plain)
 *   1007, each counted;
 * - RRM_DEFLATE=0 declines, and the node counts no deflate connection.
 *
 * Every group starts its own redis + one node (node-a).
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

static int setup(void **state) {
    struct fe_cluster *c = fe_cluster_start(1, NULL);
    *state = c;
    return c ? 0 : -1;
}

static int setup_off(void **state) {
    static const char *const env[] = {"RRM_DEFLATE=0", NULL};
    struct fe_cluster *c = fe_cluster_start(1, env);
    *state = c;
    return c ? 0 : -1;
}

static int teardown(void **state) {
    return fe_cluster_stop(*state);
}

/* Runs argv to its end (60 s at most); its output goes to a log printed when it fails. Returns
 * its exit status, or -1. */
static int run(const char *const argv[]) {
    char log[] = "/tmp/rrm-deflate-client-XXXXXX";
    int fd = mkstemp(log);
    if (fd < 0)
        return -1;
    close(fd);
    pid_t pid = proc_spawn(argv, NULL, log);
    int status = 0, rc = -1;
    if (pid > 0) {
        if (proc_wait_exit(pid, 60000, &status) == -ETIMEDOUT)
            proc_stop(pid, SIGKILL, 5000, &status);
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    FILE *f = fopen(log, "r");
    if (f) {
        char line[1024];
        while (fgets(line, sizeof(line), f))
            fputs(line, stderr);
        fclose(f);
    }
    unlink(log);
    return rc;
}

static const char *source_dir(void) {
    const char *s = getenv("RRM_SOURCE_DIR");
    return s ? s : ".";
}

/* deflate_py.py's check against node-a. */
static void py(void **state, const char *check) {
    struct fe_cluster *c = *state;
    char script[1024], port[16], admin[16];
    snprintf(script, sizeof(script), "%s/tests/scripts/deflate_py.py", source_dir());
    snprintf(port, sizeof(port), "%d", fe_port(c, 0));
    snprintf(admin, sizeof(admin), "%d", fe_admin_port(c, 0));
    /* Debian's interpreter: python3-websockets is installed for it */
    const char *python = getenv("RRM_TEST_PYTHON") ? getenv("RRM_TEST_PYTHON") : "/usr/bin/python3";
    const char *const argv[] = {python, script, port, admin, check, NULL};
    assert_int_equal(run(argv), 0);
}

/* deflate_ws.js's check against node-a. */
static void js(void **state, const char *check) {
    struct fe_cluster *c = *state;
    char script[1024], modules[1024], port[16];
    snprintf(script, sizeof(script), "%s/tests/node/deflate_ws.js", source_dir());
    snprintf(modules, sizeof(modules), "%s/tests/node_modules/ws/package.json", source_dir());
    if (access(modules, R_OK) != 0)
        fail_msg("%s is missing: run scripts/test, or npm ci in tests", modules);
    snprintf(port, sizeof(port), "%d", fe_port(c, 0));
    const char *const argv[] = {"node", script, port, check, NULL};
    assert_int_equal(run(argv), 0);
}

static void test_py_negotiated(void **state) {
    py(state, "negotiated");
}

static void test_py_large_compressed_small_plain(void **state) {
    py(state, "large_compressed_small_plain");
}

static void test_py_client_compressed_relayed(void **state) {
    py(state, "client_compressed_relayed");
}

static void test_py_fragmented(void **state) {
    py(state, "fragmented");
}

static void test_py_zip_bomb(void **state) {
    py(state, "zip_bomb");
}

static void test_py_garbage(void **state) {
    py(state, "garbage");
}

static void test_py_invalid_utf8(void **state) {
    py(state, "invalid_utf8");
}

static void test_py_browser_offer(void **state) {
    py(state, "browser_offer");
}

static void test_py_window_bits(void **state) {
    py(state, "window_bits");
}

static void test_js_negotiated(void **state) {
    js(state, "negotiated");
}

static void test_js_relay(void **state) {
    js(state, "relay");
}

/* RRM_DEFLATE=0: both clients are declined and the node counts no deflate connection. */
static void test_declined(void **state) {
    struct fe_cluster *c = *state;
    py(state, "declined");
    js(state, "declined");
    int admin = fe_admin_port(c, 0);
    assert_int_equal(fe_metric(admin, "rrm_deflate_connections"), 0);
    assert_int_equal(fe_metric(admin, "rrm_deflate_compressed_messages_total"), 0);
}

int main(void) {
    const struct CMUnitTest on[] = {
        cmocka_unit_test(test_py_negotiated),
        cmocka_unit_test(test_py_large_compressed_small_plain),
        cmocka_unit_test(test_py_client_compressed_relayed),
        cmocka_unit_test(test_py_fragmented),
        cmocka_unit_test(test_py_zip_bomb),
        cmocka_unit_test(test_py_garbage),
        cmocka_unit_test(test_py_invalid_utf8),
        cmocka_unit_test(test_py_browser_offer),
        cmocka_unit_test(test_py_window_bits),
        cmocka_unit_test(test_js_negotiated),
        cmocka_unit_test(test_js_relay),
    };
    const struct CMUnitTest off[] = {
        cmocka_unit_test(test_declined),
    };
    int failed = cmocka_run_group_tests_name("deflate on", on, setup, teardown);
    failed += cmocka_run_group_tests_name("RRM_DEFLATE=0", off, setup_off, teardown);
    return failed;
}
