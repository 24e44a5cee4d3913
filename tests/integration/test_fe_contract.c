/*
 * test_fe_contract.c - what a node promises where a hostile or unlucky peer would find out
 * otherwise: HTTP endpoints take GET and HEAD only and never corrupt a kept-alive connection,
 * a message whose fate is unknown is not reported as "not delivered", empty rooms are recycled
 * however many empty at once, and a draining node says so before it closes.
 *
 * Every test starts its own cluster (redis + one node): some stall or fill Redis.
 */
#include "fe_harness.h"
#include "keys.h"
#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS

static int setup(void **state) {
    static const char *const env[] = {"RRM_MAX_MSGS_PER_SEC=1000", NULL};
    struct fe_cluster *c = fe_cluster_start(1, env);
    *state = c;
    return c ? 0 : -1;
}

/* ---- raw HTTP ------------------------------------------------------------------------------ */

/* Sends req on a new connection and reads until the server closes or nothing more arrives for
 * quiet_ms (a kept-alive connection); at most `cap - 1` bytes, NUL-terminated. Returns the
 * number of bytes read; *closed tells whether the server closed. */
static size_t http_exchange(int port, const char *req, size_t req_len, char *buf, size_t cap,
                            int quiet_ms, int *closed) {
    int fd = proc_tcp_connect("127.0.0.1", port, T);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, req, req_len), (ssize_t)req_len);
    size_t n = 0;
    *closed = 0;
    int64_t deadline = proc_now_ms() + T;
    while (n + 1 < cap && proc_now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, quiet_ms) == 0)
            break; /* quiet: everything the server meant to send has arrived */
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0) {
            *closed = 1;
            break;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    close(fd);
    return n;
}

/* Number of non-overlapping occurrences of needle in hay. */
static int count_of(const char *hay, const char *needle) {
    int k = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        k++;
    return k;
}

static void test_http_methods(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_admin_port(c, 0); /* where /metrics and /status are served */
    char buf[16384];
    int closed;

    /* A POST with a body gets 405 once the body is consumed; the request pipelined behind it
     * is answered on its own, not glued to the 405. */
    static const char post[] = "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
                               "0123456789"
                               "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    http_exchange(port, post, sizeof(post) - 1, buf, sizeof(buf), 500, &closed);
    assert_true(strncmp(buf, "HTTP/1.1 405 ", 13) == 0);
    assert_non_null(strcasestr(buf, "\r\nallow: GET, HEAD\r\n"));
    static const char refusal[] = "\r\n\r\nmethod not allowed: use GET or HEAD\n";
    char *second = strstr(buf, refusal);
    assert_non_null(second);
    second += sizeof(refusal) - 1; /* past the 405's body */
    assert_true(strncmp(second, "HTTP/1.1 200 ", 13) == 0);
    assert_non_null(strstr(second, "\r\n\r\nok\n"));
    assert_int_equal(count_of(buf, "HTTP/1.1 "), 2);
    assert_null(strstr(buf, "rrm_connections")); /* no metrics leaked into the answer */

    /* A body lws cannot measure: 405, and the connection ends behind it. */
    static const char post_nolen[] = "POST /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    http_exchange(port, post_nolen, sizeof(post_nolen) - 1, buf, sizeof(buf), T, &closed);
    assert_true(strncmp(buf, "HTTP/1.1 405 ", 13) == 0);
    assert_true(closed);

    static const char del[] = "DELETE /status HTTP/1.1\r\nHost: t\r\n\r\n";
    http_exchange(port, del, sizeof(del) - 1, buf, sizeof(buf), T, &closed);
    assert_true(strncmp(buf, "HTTP/1.1 405 ", 13) == 0);

    /* HEAD: the GET's headers (with its Content-Length) and no body; the next request's answer
     * follows the blank line directly. */
    static const char head[] = "HEAD /readyz HTTP/1.1\r\nHost: t\r\n\r\n"
                               "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    http_exchange(port, head, sizeof(head) - 1, buf, sizeof(buf), 500, &closed);
    assert_true(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    assert_non_null(strcasestr(buf, "\r\ncontent-length: 6\r\n")); /* "ready\n" */
    second = strstr(buf, "\r\n\r\n");
    assert_non_null(second);
    assert_true(strncmp(second + 4, "HTTP/1.1 200 ", 13) == 0);
    assert_null(strstr(buf, "ready\n"));
    assert_non_null(strstr(second + 4, "\r\n\r\nok\n"));

    /* the node is fine and still serves GET */
    int code = 0;
    assert_int_equal(proc_http_get(port, "/healthz", T, &code, NULL), 0);
    assert_int_equal(code, 200);
}

/* ---- delivery outcome ---------------------------------------------------------------------- */

/* 1 once the process is stopped (state T in /proc/PID/stat). */
static int process_stopped(pid_t pid) {
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' && paren[2] == 'T';
}

static void test_stalled_redis_outcome_unknown(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    int admin = fe_admin_port(c, 0);
    char room[FE_ROOM_CAP];
    struct wsc *a = fe_join(c, 0, "stall-a", NULL, NULL, room);
    struct wsc *b = fe_join(c, 0, "stall-b", NULL, room, NULL);
    assert_non_null(a);
    assert_non_null(b);

    /* Redis stops answering (frozen, as by a long DEBUG SLEEP or a stalled disk) but keeps
     * what it was sent and runs it when it wakes. */
    pid_t rpid = redis_server_pid(fe_redis(c));
    assert_int_equal(kill(rpid, SIGSTOP), 0);
    int64_t deadline = proc_now_ms() + T;
    while (!process_stopped(rpid) && proc_now_ms() < deadline)
        fe_poll_pause();
    assert_true(process_stopped(rpid));

    fe_send_text(a, "sent into the stall");
    /* The node gives up on the link (PING timeout) while the script is in Redis's hands: it
     * cannot know whether it ran. */
    assert_int_equal(fe_expect_error(a, "outcome_unknown", 15000), 0);
    /* ... and indeed Redis ran it once it woke. */
    assert_int_equal(kill(rpid, SIGCONT), 0);
    fe_expect_text(b, "stall-a", room, "sent into the stall");
    assert_true(fe_error_count(admin, "outcome_unknown") >= 1);

    /* Once the node is back, messages flow without errors. */
    assert_int_equal(fe_wait_ready(port, 200, 15000), 0);
    deadline = proc_now_ms() + 15000;
    for (;;) { /* the first messages may still meet the link reconnecting */
        fe_send_text(a, "after the stall");
        json_t *m = wsc_recv_json(b, 1000);
        int got = m && json_is_string(json_object_get(m, "content")) &&
                  strcmp(fe_str(m, "content"), "after the stall") == 0;
        json_decref(m);
        if (got || proc_now_ms() > deadline)
            break;
    }
    fe_send_text(b, "reply");
    fe_expect_text(a, "stall-b", room, "reply");
}

/* ---- recycling ----------------------------------------------------------------------------- */

#define RECYCLE_ROOMS 6000

static int setup_recycle(void **state) {
    static const char *const env[] = {"RRM_ROOM_GRACE_MS=1000", "RRM_HEARTBEAT_MS=500", NULL};
    struct fe_cluster *c = fe_cluster_start(1, env);
    *state = c;
    return c ? 0 : -1;
}

/* A burst of rooms that all emptied at once (as after a mass disconnect) are all recycled
 * within a few heartbeats, not a fixed number per heartbeat. */
static void test_recycle_keeps_pace(void **state) {
    struct fe_cluster *c = *state;
    int admin = fe_admin_port(c, 0);
    long long before = fe_metric(admin, "rrm_rooms_recycled_total");
    assert_true(before >= 0);
    redisContext *r = fe_redis_client(c);
    assert_non_null(r);
    long long past = fe_wall_ms() - 60000;
    for (int i = 0; i < RECYCLE_ROOMS; i++) {
        char room[16], kempty[KEYS_MAX];
        snprintf(room, sizeof(room), "RCY%05d", i);
        keys_empty_rooms(kempty, sizeof(kempty), keys_room_shard(room, FE_EVENT_SHARDS));
        assert_int_equal(
            redisAppendCommand(r, "HSET %s created_at %lld seq 0", fe_room_key(room, ""), past),
            REDIS_OK);
        assert_int_equal(redisAppendCommand(r, "ZADD %s %lld %s", kempty, past, room), REDIS_OK);
    }
    for (int i = 0; i < 2 * RECYCLE_ROOMS; i++) {
        redisReply *reply = NULL;
        assert_int_equal(redisGetReply(r, (void **)&reply), REDIS_OK);
        assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
        freeReplyObject(reply);
    }

    /* 100 rooms per 500 ms heartbeat would take 30 s; keeping pace takes about one heartbeat. */
    int64_t deadline = proc_now_ms() + 5000;
    long long left = -1;
    while (proc_now_ms() < deadline) {
        left = 0;
        for (unsigned s = 0; s < FE_EVENT_SHARDS; s++) {
            char kempty[KEYS_MAX];
            keys_empty_rooms(kempty, sizeof(kempty), s);
            redisReply *reply = redisCommand(r, "ZCARD %s", kempty);
            assert_non_null(reply);
            left += reply->integer;
            freeReplyObject(reply);
        }
        if (left == 0)
            break;
        fe_poll_pause();
    }
    assert_int_equal(left, 0);
    assert_int_equal(fe_redis_exists(c, fe_room_key("RCY00000", "")), 0);
    assert_int_equal(fe_redis_exists(c, fe_room_key("RCY05999", "")), 0);
    assert_true(fe_wait_metric(admin, "rrm_rooms_recycled_total", before + RECYCLE_ROOMS, T) >=
                before + RECYCLE_ROOMS);
    redisFree(r);
}

/* ---- draining ------------------------------------------------------------------------------ */

static void test_drain_says_draining(void **state) {
    struct fe_cluster *c = *state;
    struct wsc *a = fe_join(c, 0, "drain-a", NULL, NULL, NULL);
    assert_non_null(a);
    struct wsc *fresh = fe_connect(c, 0); /* not identified yet: told as well */
    assert_non_null(fresh);
    assert_int_equal(fe_node_signal(c, 0, SIGTERM), 0);
    assert_int_equal(fe_expect_error(a, "draining", T), 0);
    assert_int_equal(fe_expect_close(a, T), 1001);
    assert_int_equal(fe_expect_error(fresh, "draining", T), 0);
    assert_int_equal(fe_expect_close(fresh, T), 1001);
    assert_int_equal(fe_node_wait(c, 0, 15000), 0);
}

/* ---- dead peers ---------------------------------------------------------------------------- */

/* The "tr" (timer) field of the TCP socket 127.0.0.1:local -> 127.0.0.1:remote in
 * /proc/net/tcp (2: keepalive timer armed), or -1 if not found. */
static int tcp_timer(int local, int remote) {
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return -1;
    char line[512], want_local[16], want_remote[16];
    snprintf(want_local, sizeof(want_local), "0100007F:%04X", local);
    snprintf(want_remote, sizeof(want_remote), "0100007F:%04X", remote);
    int timer = -1;
    while (fgets(line, sizeof(line), f)) {
        char l[32], r[32];
        int tr;
        if (sscanf(line, "%*d: %31s %31s %*x %*x:%*x %x:", l, r, &tr) == 3 &&
            strcmp(l, want_local) == 0 && strcmp(r, want_remote) == 0)
            timer = tr;
    }
    fclose(f);
    return timer;
}

/* A client that vanishes without closing is found by TCP keepalive: the node's side of an idle
 * connection has the keepalive timer armed. */
static void test_dead_peer_keepalive(void **state) {
    struct fe_cluster *c = *state;
    struct wsc *a = fe_join(c, 0, "ka-a", NULL, NULL, NULL);
    assert_non_null(a);
    struct sockaddr_in sa;
    socklen_t slen = sizeof(sa);
    assert_int_equal(getsockname(wsc_fd(a), (struct sockaddr *)&sa, &slen), 0);
    int timer = -1;
    for (int64_t deadline = proc_now_ms() + T; proc_now_ms() < deadline;) {
        timer = tcp_timer(fe_port(c, 0), ntohs(sa.sin_port));
        if (timer == 2)
            break;
        fe_poll_pause();
    }
    assert_int_equal(timer, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_methods, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_stalled_redis_outcome_unknown, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_recycle_keeps_pace, setup_recycle, fe_teardown),
        cmocka_unit_test_setup_teardown(test_drain_says_draining, setup, fe_teardown),
        cmocka_unit_test_setup_teardown(test_dead_peer_keepalive, setup, fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
