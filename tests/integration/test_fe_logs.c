/*
 * test_fe_logs.c - what an operator reads in rrm-frontend's log: libwebsockets' own error lines
 * arrive as JSON records of the log (a listen on a port in use), Redis unreachable is a warning
 * at the default level (at start, and when it goes away: once, then repeated every
 * RRM_REDIS_WARN_INTERVAL_MS with how long it lasted, and a line when it is back), and real
 * numbers in the status record are rounded.
 *
 * Every log is read with a deadline: a record is looked for in what the node has written so far
 * until it appears or the time is up.
 */
#include "fe_harness.h"
#include "proc.h"

#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS

/* The whole file, NUL-terminated (caller frees), or NULL. */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 4096) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/*
 * Looks in the log at path, from byte *offset on, for the first complete line that is a JSON
 * record with "msg" equal to msg; polls until it appears or timeout_ms passes. Returns the record
 * (caller json_decref's) and moves *offset past its line, or NULL. With raw not NULL, the line's
 * text is copied there (cap bytes).
 */
static json_t *wait_record(const char *path, size_t *offset, const char *msg, int timeout_ms,
                           char *raw, size_t cap) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    do {
        char *text = read_file(path);
        size_t len = text ? strlen(text) : 0;
        for (size_t pos = *offset; text && pos < len;) {
            char *nl = strchr(text + pos, '\n');
            if (!nl)
                break; /* a line still being written */
            *nl = '\0';
            json_t *rec = json_loads(text + pos, 0, NULL);
            const char *m = rec ? json_string_value(json_object_get(rec, "msg")) : NULL;
            if (m && strcmp(m, msg) == 0) {
                if (raw)
                    snprintf(raw, cap, "%s", text + pos);
                *offset = (size_t)(nl + 1 - text);
                free(text);
                return rec;
            }
            json_decref(rec);
            pos = (size_t)(nl + 1 - text);
        }
        free(text);
        fe_poll_pause();
    } while (proc_now_ms() < deadline);
    fprintf(stderr, "no log record \"%s\" in %s within %d ms\n", msg, path, timeout_ms);
    proc_dump_file_tail(path, 4096);
    return NULL;
}

/* How many records with this msg the log at path holds from byte offset on. */
static int count_records(const char *path, size_t offset, const char *msg) {
    int n = 0;
    json_t *rec;
    while ((rec = wait_record(path, &offset, msg, 0, NULL, 0)) != NULL) {
        json_decref(rec);
        n++;
    }
    return n;
}

/* The digits after the point of the number that follows "key": in the raw line (0 for an
 * integer), or -1 if the key is not there. */
static int decimals_of(const char *raw, const char *key) {
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(raw, pat);
    if (!p)
        return -1;
    p += strlen(pat);
    size_t digits = strspn(p, "-0123456789");
    if (p[digits] != '.')
        return 0;
    return (int)strspn(p + digits + 1, "0123456789");
}

static double real_field(json_t *rec, const char *key) {
    json_t *v = json_object_get(rec, key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

/* Spawns $RRM_FRONTEND_BIN with env, its output into <dir>/fe.log. */
static pid_t spawn_frontend(const char *dir, const char *const env[], char *log, size_t cap) {
    const char *bin = getenv("RRM_FRONTEND_BIN");
    assert_non_null(bin);
    snprintf(log, cap, "%s/fe.log", dir);
    const char *argv[] = {bin, NULL};
    pid_t pid = proc_spawn(argv, env, log);
    assert_true(pid > 0);
    return pid;
}

/* libwebsockets' own error lines are records of the JSON log: a listen on a port that another
 * socket holds makes lws log its bind error, and the node exits 1. */
static void test_lws_lines_are_json(void **state) {
    (void)state;
    int holder = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(holder >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(holder, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(holder, 1), 0);
    assert_int_equal(getsockname(holder, (struct sockaddr *)&a, &alen), 0);
    char port_env[32];
    snprintf(port_env, sizeof(port_env), "RRM_PORT=%d", ntohs(a.sin_port));

    char *dir = proc_tmpdir("fe-logs");
    assert_non_null(dir);
    char log[512];
    const char *const env[] = {port_env, "RRM_BIND=127.0.0.1", "RRM_ADMIN_PORT=0",
                               "RRM_LOG_LEVEL=info", NULL};
    pid_t pid = spawn_frontend(dir, env, log, sizeof(log));
    int status = 0;
    assert_int_equal(proc_wait_exit(pid, T, &status), 0);
    close(holder);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);

    char *text = read_file(log);
    assert_non_null(text);
    int lws_errors = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        /* the one-line start-up errors are for a terminal ("rrm-frontend: cannot listen...") */
        if (strncmp(line, "rrm-frontend: ", 14) == 0)
            continue;
        json_t *rec = json_loads(line, 0, NULL);
        if (!rec)
            fprintf(stderr, "not a JSON record: %s\n", line);
        assert_non_null(rec);
        const char *src = json_string_value(json_object_get(rec, "source"));
        const char *msg = json_string_value(json_object_get(rec, "msg"));
        assert_non_null(msg);
        if (src && strcmp(src, "libwebsockets") == 0) {
            assert_string_equal(json_string_value(json_object_get(rec, "prog")), "rrm-frontend");
            assert_string_equal(json_string_value(json_object_get(rec, "level")), "error");
            assert_true(msg[0] != '\0' && msg[strlen(msg) - 1] != '\n');
            if (strstr(msg, "binding"))
                lws_errors++;
        }
        json_decref(rec);
    }
    if (lws_errors == 0)
        proc_dump_file_tail(log, 4096);
    assert_int_equal(lws_errors, 1);
    free(text);
    proc_rmtree(dir);
    free(dir);
}

/* A node started while Redis cannot be reached says so at the default level, and again while it
 * lasts. */
static void test_redis_unreachable_at_start(void **state) {
    (void)state;
    int port = proc_free_port(), redis_port = proc_free_port();
    assert_true(port > 0 && redis_port > 0);
    char port_env[32], redis_env[40];
    snprintf(port_env, sizeof(port_env), "RRM_PORT=%d", port);
    snprintf(redis_env, sizeof(redis_env), "RRM_REDIS_PORT=%d", redis_port);
    char *dir = proc_tmpdir("fe-logs");
    assert_non_null(dir);
    char log[512];
    const char *const env[] = {port_env,
                               redis_env,
                               "RRM_BIND=127.0.0.1",
                               "RRM_ADMIN_PORT=0",
                               "RRM_LOG_LEVEL=info",
                               "RRM_REDIS_WARN_INTERVAL_MS=1000",
                               NULL};
    pid_t pid = spawn_frontend(dir, env, log, sizeof(log));
    size_t off = 0;
    json_t *first = wait_record(log, &off, "redis unreachable", T, NULL, 0);
    assert_non_null(first);
    assert_string_equal(json_string_value(json_object_get(first, "level")), "warn");
    assert_true(real_field(first, "down_s") >= 1.0);
    assert_int_equal(json_integer_value(json_object_get(first, "redis_port")), redis_port);
    json_t *again = wait_record(log, &off, "redis still unreachable", T, NULL, 0);
    assert_non_null(again);
    assert_true(real_field(again, "down_s") >= 2.0);
    json_decref(first);
    json_decref(again);
    assert_int_equal(count_records(log, 0, "redis unreachable"), 1);
    assert_int_equal(proc_stop(pid, SIGTERM, T, NULL), 0);
    proc_rmtree(dir);
    free(dir);
}

static int setup(void **state) {
    static const char *const env[] = {"RRM_REDIS_WARN_INTERVAL_MS=1000", NULL};
    struct fe_cluster *c = fe_cluster_start(1, env);
    *state = c;
    return c ? 0 : -1;
}

/* The real numbers of the status record are rounded: one message in about 3 s is 0.33 messages
 * per second, not 0.33322225924691771. (A node of its own: the harness's status interval of 2 s
 * could give a quotient that needs no rounding.) */
static void test_status_numbers_rounded(void **state) {
    (void)state;
    struct redis_server *redis = redis_server_start();
    assert_non_null(redis);
    int port = proc_free_port();
    assert_true(port > 0);
    char port_env[32], redis_env[40];
    snprintf(port_env, sizeof(port_env), "RRM_PORT=%d", port);
    snprintf(redis_env, sizeof(redis_env), "RRM_REDIS_PORT=%d", redis_server_port(redis));
    char *dir = proc_tmpdir("fe-logs");
    assert_non_null(dir);
    char log[512];
    const char *const env[] = {port_env,
                               redis_env,
                               "RRM_BIND=127.0.0.1",
                               "RRM_ADMIN_PORT=0",
                               "RRM_LOG_LEVEL=info",
                               "RRM_STATUS_INTERVAL_MS=3000",
                               NULL};
    pid_t pid = spawn_frontend(dir, env, log, sizeof(log));
    assert_int_equal(fe_wait_ready(port, 200, T), 0);
    struct wsc *ws = client_join(port, "logs-1", "tester", "LOGS1", NULL);
    assert_non_null(ws);
    fe_send_text(ws, "one");

    size_t off = 0;
    char raw[8192];
    json_t *st = NULL;
    int64_t deadline = proc_now_ms() + 3 * T;
    while (proc_now_ms() < deadline) {
        st = wait_record(log, &off, "status", T, raw, sizeof(raw));
        assert_non_null(st);
        if (real_field(st, "in_per_sec") > 0)
            break;
        json_decref(st);
        st = NULL;
    }
    assert_non_null(st);
    double in = real_field(st, "in_per_sec");
    if (decimals_of(raw, "in_per_sec") > 2)
        fprintf(stderr, "not rounded: %s\n", raw);
    assert_true(decimals_of(raw, "in_per_sec") >= 1 && decimals_of(raw, "in_per_sec") <= 2);
    assert_true(decimals_of(raw, "out_per_sec") >= 0 && decimals_of(raw, "out_per_sec") <= 2);
    assert_true(in > 0.2 && in < 0.4);
    json_decref(st);
    wsc_close(ws);
    assert_int_equal(proc_stop(pid, SIGTERM, T, NULL), 0);
    redis_server_destroy(redis);
    proc_rmtree(dir);
    free(dir);
}

/* Redis going away while the node runs: one warning once it lasted a second, repeated every
 * second with how long, then a line when it is back. */
static void test_redis_outage(void **state) {
    struct fe_cluster *c = *state;
    const char *log = fe_log_path(c, 0);
    assert_non_null(log);
    size_t off = 0;
    char raw[8192];
    size_t before = off;
    assert_int_equal(redis_server_stop(fe_redis(c)), 0);
    json_t *down = wait_record(log, &off, "redis unreachable", T, raw, sizeof(raw));
    assert_non_null(down);
    assert_string_equal(json_string_value(json_object_get(down, "level")), "warn");
    assert_true(real_field(down, "down_s") >= 1.0);
    assert_true(decimals_of(raw, "down_s") <= 1);
    json_t *again = wait_record(log, &off, "redis still unreachable", T, NULL, 0);
    assert_non_null(again);
    assert_string_equal(json_string_value(json_object_get(again, "level")), "warn");
    assert_true(real_field(again, "down_s") >= 2.0);
    json_decref(down);
    json_decref(again);

    assert_int_equal(redis_server_restart(fe_redis(c)), 0);
    json_t *back = wait_record(log, &off, "redis reachable again", 2 * T, NULL, 0);
    assert_non_null(back);
    assert_string_equal(json_string_value(json_object_get(back, "level")), "info");
    assert_true(real_field(back, "down_s") >= 2.0);
    json_decref(back);
    /* one first warning for the outage, however long it lasted */
    assert_int_equal(count_records(log, before, "redis unreachable"), 1);
    assert_int_equal(fe_wait_ready(fe_port(c, 0), 200, 2 * T), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lws_lines_are_json),
        cmocka_unit_test(test_redis_unreachable_at_start),
        cmocka_unit_test(test_status_numbers_rounded),
        cmocka_unit_test_setup_teardown(test_redis_outage, setup, fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
