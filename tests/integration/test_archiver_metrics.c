/* rrm-archiver's metrics port (RRM_METRICS_PORT): /metrics passes `promtool check metrics`, counts
 * exactly the rows written and the batches, and has the length, lag and pending entries of every
 * shard (as Redis has them); /healthz answers 200 while Redis and MySQL answer, 503 with the
 * reason while MySQL is stopped, and 200 again once it is back; garbage requests are answered
 * (400, 405, 404, 431, 408) and counted, and neither they nor idle connections holding every slot
 * of the listener stop the archiving. */
#include "archiver_harness.h"

#include "httpd.h"
#include "keys.h"
#include "mariadb_server.h"
#include "proc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MESSAGES "SELECT COUNT(*) FROM messages"
#define ROWS_MESSAGES "rrm_archiver_rows_total{table=\"messages\"}"

static void assert_exited_0(struct arch_harness *h, int status) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        ah_dump_logs(h);
        fail_msg("archiver ended with status 0x%x", status);
    }
}

static char *get_metrics(const struct ah_archiver *a) {
    char *body = NULL;
    assert_int_equal(ah_http_get(a, "/metrics", &body), 200);
    assert_non_null(body);
    return body;
}

/* promtool (Debian's prometheus package) accepts text. */
static void expect_promtool_clean(const char *text) {
    char out[4096] = "";
    int status = proc_promtool_check(text, out, sizeof(out));
    if (status != 0)
        fail_msg("promtool check metrics (status %d): %s", status, out);
}

static double shard_series(const char *text, const char *name, unsigned shard) {
    char series[128];
    snprintf(series, sizeof(series), "%s{shard=\"%u\"}", name, shard);
    return ah_series(text, series);
}

static void test_metrics_count_what_is_written(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_metrics");
    struct ah_archiver a;
    ah_start(h, &a, "metrics-1", NULL);
    /* Before anything is written: every shard is there, and nothing is counted. */
    char *text = get_metrics(&a);
    expect_promtool_clean(text);
    assert_true(ah_series(text, ROWS_MESSAGES) == 0);
    assert_true(ah_series(text, "rrm_archiver_batches_total") == 0);
    assert_non_null(strstr(text, "\nrrm_build_info{version=\""));
    assert_non_null(strstr(text, "\nprocess_cpu_seconds_total "));
    assert_true(ah_series(text, "process_resident_memory_bytes") > 1000000);
    assert_true(ah_series(text, "rrm_archiver_mysql_pool_size") == 5);
    free(text);

    const int n = 1200;
    ah_xadd_messages(h, 1, n, 30, 0);
    ah_wait_int(h, n, AH_WAIT_MS, MESSAGES);
    ah_wait_drained(h, AH_WAIT_MS);
    /* The counters follow the acknowledgement closely; then they stay exactly there. */
    ah_wait_metric(h, &a, ROWS_MESSAGES, n, AH_WAIT_MS);
    ah_wait_metric(h, &a, "rrm_archiver_events_total", n, AH_WAIT_MS);
    text = get_metrics(&a);
    expect_promtool_clean(text);
    assert_true(ah_series(text, ROWS_MESSAGES) == n);
    assert_true(ah_series(text, "rrm_archiver_rows_total{table=\"room_queries\"}") == 0);
    double batches = ah_series(text, "rrm_archiver_batches_total");
    /* batches of at most RRM_BATCH_SIZE (500) entries of one shard */
    assert_true(batches >= (double)n / 500);
    assert_true(ah_series(text, "rrm_archiver_batch_duration_seconds_count") == batches);
    assert_true(ah_series(text, "rrm_archiver_batch_duration_seconds_bucket{le=\"+Inf\"}") ==
                batches);
    assert_true(ah_series(text, "rrm_archiver_batch_duration_seconds_sum") > 0);
    assert_true(ah_series(text, "rrm_archiver_dead_letters_total") == 0);
    assert_true(ah_series(text, "rrm_archiver_redis_up") == 1);
    assert_true(ah_series(text, "rrm_archiver_mysql_up") == 1);
    assert_true(ah_series(text, "rrm_archiver_mysql_connections_open") >= 1);
    assert_true(ah_series(text, "rrm_archiver_mysql_connections_in_use") >= 0);
    /* Every shard's stream as Redis has it, once the lag check (every 10 s) has run since the
     * events were written: the archiver never trims, so the lengths are final; lag and pending
     * are between 0 and the length. */
    char key0[KEYS_MAX];
    keys_events(key0, sizeof(key0), 0);
    int64_t deadline = proc_now_ms() + AH_WAIT_MS;
    while (ah_series(text, "rrm_archiver_stream_entries{shard=\"0\"}") !=
           (double)ah_redis_int(h, "XLEN %s", key0)) {
        if (proc_remaining_ms(deadline) == 0)
            fail_msg("rrm_archiver_stream_entries was not refreshed");
        free(text);
        ah_sleep_ms(200);
        text = get_metrics(&a);
    }
    double total = 0;
    for (unsigned s = 0; s < ah_shards(h); s++) {
        char key[KEYS_MAX];
        keys_events(key, sizeof(key), s);
        double len = shard_series(text, "rrm_archiver_stream_entries", s);
        double lag = shard_series(text, "rrm_archiver_stream_lag", s);
        double pending = shard_series(text, "rrm_archiver_pending", s);
        if (len != (double)ah_redis_int(h, "XLEN %s", key))
            fail_msg("shard %u: rrm_archiver_stream_entries %g, XLEN %lld", s, len,
                     ah_redis_int(h, "XLEN %s", key));
        if (lag < 0 || lag > len || pending < 0 || pending > len)
            fail_msg("shard %u: lag %g, pending %g of %g entries", s, lag, pending, len);
        total += len;
    }
    assert_true(total == n);
    assert_true(ah_series(text, "rrm_archiver_stream_entries{shard=\"legacy\"}") == -1);
    free(text);
    assert_exited_0(h, ah_stop(&a, SIGTERM));
}

/* The body of GET /healthz and its status, which must be want. */
static char *expect_health(const struct ah_archiver *a, int want) {
    char *body = NULL;
    int status = ah_http_get(a, "/healthz", &body);
    if (status != want)
        fail_msg("/healthz answered %d, not %d: %s", status, want, body ? body : "");
    return body;
}

static int wait_health(struct arch_harness *h, const struct ah_archiver *a, int want,
                       int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    int status;
    while ((status = ah_http_get(a, "/healthz", NULL)) != want) {
        if (proc_remaining_ms(deadline) == 0) {
            ah_dump_logs(h);
            fail_msg("/healthz answered %d, not %d, for %d ms", status, want, timeout_ms);
        }
        ah_sleep_ms(100);
    }
    return status;
}

static void test_healthz_follows_mysql(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_health");
    struct ah_archiver a;
    ah_start(h, &a, "health-1", NULL);
    wait_health(h, &a, 200, AH_WAIT_MS);
    char *body = expect_health(&a, 200);
    assert_non_null(strstr(body, "\"status\":\"ok\""));
    assert_non_null(strstr(body, "\"reasons\":[]"));
    free(body);

    /* Nothing is being written: the archiver notices the outage by itself. */
    assert_int_equal(mariadb_server_stop(ah_db(h)), 0);
    ah_db_reset(h);
    wait_health(h, &a, 503, 20000);
    body = expect_health(&a, 503);
    assert_non_null(strstr(body, "\"status\":\"failing\""));
    assert_non_null(strstr(body, "\"mysql\":false"));
    assert_non_null(strstr(body, "\"redis\":true"));
    assert_non_null(strstr(body, "\"reasons\":[\"mysql: "));
    free(body);
    assert_true(ah_metric(&a, "rrm_archiver_mysql_up") == 0);
    assert_true(ah_metric(&a, "rrm_archiver_redis_up") == 1);

    /* Events arriving meanwhile wait; once MySQL is back, health returns and they are written. */
    ah_xadd_messages(h, 1, 100, 5, 0);
    assert_int_equal(mariadb_server_restart(ah_db(h)), 0);
    ah_db_reset(h);
    wait_health(h, &a, 200, AH_WAIT_MS);
    ah_wait_int(h, 100, AH_WAIT_MS, MESSAGES);
    assert_true(ah_metric(&a, "rrm_archiver_mysql_up") == 1);
    assert_exited_0(h, ah_stop(&a, SIGTERM));
}

/* Sends req on a new connection; returns the status of the answer (negative: none). */
static int exchange(const struct ah_archiver *a, const char *req, size_t len, int timeout_ms) {
    int fd = proc_tcp_connect("127.0.0.1", a->metrics_port, 5000);
    assert_true(fd >= 0);
    ssize_t sent = send(fd, req, len, MSG_NOSIGNAL);
    (void)sent; /* the server may answer and close before taking all of it */
    char buf[4096];
    size_t got = 0;
    int64_t deadline = proc_now_ms() + timeout_ms;
    while (got < sizeof(buf) - 1 && proc_remaining_ms(deadline) > 0) {
        struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (r == 0)
            break;
        if (r > 0)
            got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    int status = -1;
    if (sscanf(buf, "HTTP/1.1 %d ", &status) != 1)
        return -1;
    return status;
}

static int exchange_str(const struct ah_archiver *a, const char *req) {
    return exchange(a, req, strlen(req), 10000);
}

static double count_of(const struct ah_archiver *a, int code) {
    char series[80];
    snprintf(series, sizeof(series), "rrm_archiver_http_requests_total{code=\"%d\"}", code);
    return ah_metric(a, series);
}

static void test_garbage_requests(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_http");
    struct ah_archiver a;
    ah_start(h, &a, "http-1", NULL);
    wait_health(h, &a, 200, AH_WAIT_MS);
    double bad0 = count_of(&a, 400), m405 = count_of(&a, 405), nf0 = count_of(&a, 404);
    double big0 = count_of(&a, 431), slow0 = count_of(&a, 408);

    static const char *const malformed[] = {
        "hello\r\n\r\n",
        "GET\r\n\r\n",
        "GET /metrics\r\n\r\n",
        "GET /metrics HTTP/2.0\r\n\r\n",
        "GET  /metrics HTTP/1.1\r\n\r\n",
        "GET metrics HTTP/1.1\r\n\r\n",
        "get /metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/1.1\n\n",
        "GET /met\x01rics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\x7f\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
    };
    int nbad = (int)(sizeof(malformed) / sizeof(malformed[0]));
    for (int i = 0; i < nbad; i++) {
        int st = exchange_str(&a, malformed[i]);
        if (st != 400)
            fail_msg("malformed request %d answered %d, not 400", i, st);
    }
    /* a request line with a NUL in it */
    static const char nul[] = "GET /metrics\0 HTTP/1.1\r\n\r\n";
    assert_int_equal(exchange(&a, nul, sizeof(nul) - 1, 10000), 400);
    nbad++;
    /* fuzz-ish: random bytes, each ending as a head would */
    unsigned seed = 12345;
    for (int i = 0; i < 200; i++) {
        char req[600];
        size_t len = 1 + (size_t)(rand_r(&seed) % 500);
        for (size_t k = 0; k < len; k++)
            req[k] = (char)(rand_r(&seed) & 0xff);
        memcpy(req + len, "\r\n\r\n", 4);
        int st = exchange(&a, req, len + 4, 10000);
        if (st != 400)
            fail_msg("random request %d (%zu bytes) answered %d, not 400", i, len, st);
        nbad++;
    }
    assert_int_equal(exchange_str(&a, "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
                     405);
    assert_int_equal(exchange_str(&a, "DELETE /healthz HTTP/1.0\r\n\r\n"), 405);
    assert_int_equal(exchange_str(&a, "GET /status HTTP/1.1\r\n\r\n"), 404);
    assert_int_equal(exchange_str(&a, "GET /metrics/../etc/passwd HTTP/1.1\r\n\r\n"), 404);
    assert_int_equal(exchange_str(&a, "HEAD /metrics HTTP/1.1\r\n\r\n"), 200);
    assert_int_equal(exchange_str(&a, "GET /healthz?verbose=1 HTTP/1.1\r\n\r\n"), 200);
    /* a head that never ends */
    char big[12000];
    int off = snprintf(big, sizeof(big), "GET /metrics HTTP/1.1\r\n");
    while (off < (int)sizeof(big) - 100)
        off += snprintf(big + off, sizeof(big) - (size_t)off, "X-Filler: %090d\r\n", off);
    assert_int_equal(exchange(&a, big, (size_t)off, 10000), 431);

    /* Every slot of the listener held by clients that send nothing, and one that stops halfway:
     * the archiving goes on meanwhile, and the silent ones are answered 408. */
    int idle[ARCH_HTTPD_MAX_CONNS];
    for (int i = 0; i < ARCH_HTTPD_MAX_CONNS; i++) {
        idle[i] = proc_tcp_connect("127.0.0.1", a.metrics_port, 5000);
        assert_true(idle[i] >= 0);
    }
    assert_int_equal(send(idle[0], "GET /metrics HTTP/1.1\r\n", 23, MSG_NOSIGNAL), 23);
    ah_xadd_messages(h, 1, 500, 10, 0);
    ah_wait_int(h, 500, AH_WAIT_MS, MESSAGES);
    for (int i = 0; i < ARCH_HTTPD_MAX_CONNS; i++) {
        char head[64] = "";
        struct timeval tv = {.tv_sec = 15, .tv_usec = 0};
        setsockopt(idle[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssize_t r = recv(idle[i], head, sizeof(head) - 1, 0);
        head[r > 0 ? r : 0] = '\0';
        if (strncmp(head, "HTTP/1.1 408 ", 13) != 0)
            fail_msg("idle connection %d got '%s', not a 408", i, head);
        close(idle[i]);
    }

    /* Each answer counted by its status; the archiver is still there and healthy. */
    ah_wait_metric(h, &a, "rrm_archiver_http_requests_total{code=\"408\"}",
                   slow0 + ARCH_HTTPD_MAX_CONNS, AH_WAIT_MS);
    assert_true(count_of(&a, 400) == bad0 + nbad);
    assert_true(count_of(&a, 405) == m405 + 2);
    assert_true(count_of(&a, 404) == nf0 + 2);
    assert_true(count_of(&a, 431) == big0 + 1);
    free(expect_health(&a, 200));
    assert_exited_0(h, ah_stop(&a, SIGTERM));
}

/* RRM_METRICS_PORT=0: no listener; a port taken by another socket: exit 1, naming the setting. */
static void test_metrics_port_settings(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_port");
    struct ah_archiver a;
    const char *off[] = {"RRM_METRICS_PORT=0", NULL};
    ah_start(h, &a, "port-off", off);
    assert_int_equal(a.metrics_port, 0);
    ah_xadd_messages(h, 1, 10, 2, 0);
    ah_wait_int(h, 10, AH_WAIT_MS, MESSAGES);
    assert_exited_0(h, ah_stop(&a, SIGTERM));

    struct ah_archiver first, second;
    ah_start(h, &first, "port-1", NULL);
    wait_health(h, &first, 200, AH_WAIT_MS);
    char taken[40];
    snprintf(taken, sizeof(taken), "RRM_METRICS_PORT=%d", first.metrics_port);
    const char *same[] = {taken, NULL};
    ah_start(h, &second, "port-2", same);
    int status = -1;
    assert_int_equal(proc_wait_exit(second.pid, 20000, &status), 0);
    second.pid = 0;
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    assert_true(ah_log_count(&second, "RRM_METRICS_PORT") >= 1);
    assert_exited_0(h, ah_stop(&first, SIGTERM));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_count_what_is_written),
        cmocka_unit_test(test_healthz_follows_mysql),
        cmocka_unit_test(test_garbage_requests),
        cmocka_unit_test(test_metrics_port_settings),
    };
    return cmocka_run_group_tests(tests, ah_setup, ah_teardown);
}
