/* Shared by the archiver integration tests: one private redis-server and mariadbd per test binary,
 * rrm-archiver processes started against them, events appended like the frontends do (event.h
 * encoding, XADD to rrm:events), and waits that poll a condition until a deadline. Each test gets a
 * fresh stream and its own database. Included by one .c file per test binary. */
#ifndef TEST_ARCHIVER_HARNESS_H
#define TEST_ARCHIVER_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "event.h"
#include "keys.h"
#include "mariadb_server.h"
#include "proc.h"
#include "redis_server.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <mysql.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define H_FN static __attribute__((unused))
#define H_WAIT_MS 30000
#define H_GROUP "rrm-archivers"

struct harness {
    struct redis_server *redis;
    struct mariadb_server *db;
    redisContext *rc;
    MYSQL *my; /* connected to dbname, reopened as needed */
    char *dir;
    const char *bin;
    char dbname[64];
    int logs; /* archiver log files made so far */
};

static struct harness H;

struct archiver {
    pid_t pid;
    char name[64];
    char log[512];
};

H_FN void h_sleep_ms(int ms) {
    poll(NULL, 0, ms);
}

H_FN int h_setup(void **state) {
    (void)state;
    H.bin = getenv("RRM_ARCHIVER_BIN");
    if (!H.bin) {
        fprintf(stderr, "RRM_ARCHIVER_BIN is not set (run through ctest)\n");
        return -1;
    }
    H.dir = proc_tmpdir("archiver-it");
    H.redis = redis_server_start();
    H.db = mariadb_server_start();
    if (!H.dir || !H.redis || !H.db)
        return -1;
    H.rc = redis_server_client(H.redis);
    return H.rc ? 0 : -1;
}

H_FN int h_teardown(void **state) {
    (void)state;
    if (H.my)
        mysql_close(H.my);
    if (H.rc)
        redisFree(H.rc);
    redis_server_destroy(H.redis);
    mariadb_server_destroy(H.db);
    if (H.dir) {
        /* RRM_KEEP_TEST_LOGS=1 keeps the archivers' logs for a look after the run. */
        if (getenv("RRM_KEEP_TEST_LOGS"))
            fprintf(stderr, "archiver logs kept in %s\n", H.dir);
        else
            proc_rmtree(H.dir);
        free(H.dir);
    }
    mysql_library_end();
    memset(&H, 0, sizeof(H));
    return 0;
}

/* A Redis command with printf-style arguments (no binary values); caller frees the reply. */
H_FN redisReply *h_redis(const char *fmt, ...) {
    if (!H.rc) {
        H.rc = redis_server_client(H.redis);
        if (!H.rc)
            return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(H.rc, fmt, ap);
    va_end(ap);
    if (!r) {
        redisFree(H.rc);
        H.rc = NULL;
    }
    return r;
}

H_FN void h_redis_ok(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (!H.rc)
        H.rc = redis_server_client(H.redis);
    assert_non_null(H.rc);
    redisReply *r = redisvCommand(H.rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis: %s", r->str);
    freeReplyObject(r);
}

H_FN long long h_redis_int(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = H.rc ? redisvCommand(H.rc, fmt, ap) : NULL;
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Drops the connection to the test database (e.g. after a restart). */
H_FN void h_db_reset(void) {
    if (H.my)
        mysql_close(H.my);
    H.my = NULL;
}

/* A fresh stream and database for one test. */
H_FN void h_fresh(const char *dbname) {
    h_redis_ok("FLUSHALL");
    h_db_reset();
    snprintf(H.dbname, sizeof(H.dbname), "%s", dbname);
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS `%s`", dbname);
    assert_int_equal(mariadb_server_exec(H.db, sql), 0);
}

/* Runs sql in the test database; returns its result (caller frees) or NULL on any error, which is
 * printed unless quiet. Statements without a result return NULL with *ok set. */
H_FN MYSQL_RES *h_query(const char *sql, int quiet, int *ok) {
    if (ok)
        *ok = 0;
    if (!H.my) {
        MYSQL *m = mysql_init(NULL);
        unsigned int t = 10;
        mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
        mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &t);
        mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &t);
        if (!mysql_real_connect(m, "127.0.0.1", MARIADB_SERVER_USER, MARIADB_SERVER_PASSWORD,
                                H.dbname, (unsigned int)mariadb_server_port(H.db), NULL, 0)) {
            if (!quiet)
                fprintf(stderr, "connect %s: %s\n", H.dbname, mysql_error(m));
            mysql_close(m);
            return NULL;
        }
        mysql_query(m, "SET time_zone = '+00:00'");
        H.my = m;
    }
    if (mysql_query(H.my, sql)) {
        if (!quiet)
            fprintf(stderr, "query failed: %s\n  %s\n", mysql_error(H.my), sql);
        if (mysql_errno(H.my) >= 2000)
            h_db_reset();
        return NULL;
    }
    MYSQL_RES *res = mysql_store_result(H.my);
    if (!res && ok && mysql_field_count(H.my) == 0)
        *ok = 1;
    return res;
}

H_FN void h_exec(const char *sql) {
    int ok = 0;
    MYSQL_RES *res = h_query(sql, 0, &ok);
    if (res) {
        mysql_free_result(res);
        ok = 1;
    }
    assert_true(ok);
}

/* First column of the first row as a string (malloc'd; "NULL" for SQL NULL), or NULL on error. */
H_FN char *h_query_str_q(const char *sql, int quiet) {
    MYSQL_RES *res = h_query(sql, quiet, NULL);
    if (!res)
        return NULL;
    MYSQL_ROW row = mysql_fetch_row(res);
    char *out = strdup(row ? (row[0] ? row[0] : "NULL") : "(no row)");
    mysql_free_result(res);
    return out;
}

H_FN char *h_str(const char *fmt, ...) {
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    char *s = h_query_str_q(sql, 0);
    if (!s)
        fail_msg("query failed: %s", sql);
    return s;
}

/* Asserts that the first column of the first row of the query equals want. */
H_FN void h_expect(const char *want, const char *fmt, ...) {
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    char *got = h_query_str_q(sql, 0);
    if (!got)
        fail_msg("query failed: %s", sql);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "query: %s\n  want: %s\n  got:  %s\n", sql, want, got);
        free(got);
        fail_msg("unexpected query result");
    }
    free(got);
}

H_FN long long h_int_q(const char *sql) {
    char *s = h_query_str_q(sql, 1);
    long long v =
        (s && strcmp(s, "NULL") != 0 && strcmp(s, "(no row)") != 0) ? strtoll(s, NULL, 10) : -1;
    free(s);
    return v;
}

H_FN void h_dump_logs(void) {
    char path[600];
    for (int i = 1; i <= H.logs; i++) {
        snprintf(path, sizeof(path), "%s/archiver-%d.log", H.dir, i);
        proc_dump_file_tail(path, 4000);
    }
}

/* Polls sql (one integer) until it equals want; fails with the archivers' logs at the deadline. */
H_FN void h_wait_int(long long want, int timeout_ms, const char *fmt, ...) {
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    int64_t deadline = proc_now_ms() + timeout_ms;
    long long got = -1;
    while (proc_remaining_ms(deadline) > 0) {
        got = h_int_q(sql);
        if (got == want)
            return;
        h_sleep_ms(20);
    }
    h_dump_logs();
    fail_msg("timed out waiting for %s = %lld (last %lld)", sql, want, got);
}

/* Like h_wait_int but waits for a value >= want; returns the value seen. */
H_FN long long h_wait_at_least(long long want, int timeout_ms, const char *sql) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    long long got = -1;
    while (proc_remaining_ms(deadline) > 0) {
        got = h_int_q(sql);
        if (got >= want)
            return got;
        h_sleep_ms(10);
    }
    h_dump_logs();
    fail_msg("timed out waiting for %s >= %lld (last %lld)", sql, want, got);
    return got;
}

/* Pending entries and lag of the archivers' group (-1 if the group does not exist). */
H_FN void h_group_state(long long *pending, long long *lag, long long *entries_read) {
    *pending = *lag = *entries_read = -1;
    redisReply *r = h_redis("XINFO GROUPS %s", KEYS_EVENTS);
    if (!r)
        return;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *g = r->element[i];
        int ours = 0;
        for (size_t k = 0; k + 1 < g->elements; k += 2)
            if (strcmp(g->element[k]->str, "name") == 0 &&
                strcmp(g->element[k + 1]->str, H_GROUP) == 0)
                ours = 1;
        if (!ours)
            continue;
        for (size_t k = 0; k + 1 < g->elements; k += 2) {
            redisReply *v = g->element[k + 1];
            long long n = v->type == REDIS_REPLY_INTEGER ? v->integer : -1;
            if (strcmp(g->element[k]->str, "pending") == 0)
                *pending = n;
            else if (strcmp(g->element[k]->str, "lag") == 0)
                *lag = n;
            else if (strcmp(g->element[k]->str, "entries-read") == 0)
                *entries_read = n;
        }
    }
    freeReplyObject(r);
}

/* Waits until the group has read every entry and acknowledged it: everything is committed. */
H_FN void h_wait_drained(int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    long long pending = -1, lag = -1, read = -1;
    long long len = -1;
    while (proc_remaining_ms(deadline) > 0) {
        h_group_state(&pending, &lag, &read);
        redisReply *r = h_redis("XLEN %s", KEYS_EVENTS);
        len = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        if (r)
            freeReplyObject(r);
        if (pending == 0 && lag == 0)
            return;
        h_sleep_ms(20);
    }
    h_dump_logs();
    fail_msg("group not drained: pending %lld lag %lld entries-read %lld length %lld", pending, lag,
             read, len);
}

/* Appends ev to rrm:events like a frontend; the entry id goes to id (if not NULL). */
H_FN void h_xadd(const struct rrm_event *ev, char *id, size_t idcap) {
    struct event_numbers nums;
    const char *argv[3 + 2 * EVENT_MAX_FIELDS] = {"XADD", KEYS_EVENTS, "*"};
    size_t lens[3 + 2 * EVENT_MAX_FIELDS] = {4, strlen(KEYS_EVENTS), 1};
    size_t n = 3 + event_encode_argv(ev, &nums, argv + 3, lens + 3);
    redisReply *r = redisCommandArgv(H.rc, (int)n, argv, lens);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    if (id)
        snprintf(id, idcap, "%s", r->str);
    freeReplyObject(r);
}

/* Appends a raw entry (names[i] = values[i], given lengths) to rrm:events. */
H_FN void h_xadd_raw(size_t n, const char *const *names, const char *const *values,
                     const size_t *value_lens, char *id, size_t idcap) {
    const char *argv[64];
    size_t lens[64];
    assert_true(3 + 2 * n <= 64);
    argv[0] = "XADD";
    argv[1] = KEYS_EVENTS;
    argv[2] = "*";
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    for (size_t i = 0; i < n; i++) {
        argv[3 + 2 * i] = names[i];
        lens[3 + 2 * i] = strlen(names[i]);
        argv[4 + 2 * i] = values[i];
        lens[4 + 2 * i] = value_lens ? value_lens[i] : strlen(values[i]);
    }
    redisReply *r = redisCommandArgv(H.rc, (int)(3 + 2 * n), argv, lens);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_STRING)
        fail_msg("XADD: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    if (id)
        snprintf(id, idcap, "%s", r->str);
    freeReplyObject(r);
}

/* Appends `count` message events numbered first.. (room "R<k % rooms>", seq = number), pipelined;
 * every tenth is a query event instead when with_queries is set. Returns how many were queries. */
H_FN int h_xadd_messages(int first, int count, int rooms, int with_queries) {
    int queries = 0;
    for (int i = first; i < first + count; i++) {
        char room[16], device[24], body[96];
        snprintf(room, sizeof(room), "R%d", i % rooms);
        snprintf(device, sizeof(device), "dev-%d", i % 97);
        int len = snprintf(body, sizeof(body), "{\"type\":\"text\",\"content\":\"message %d\"}", i);
        struct rrm_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.ts = 1732550000000LL + i;
        ev.node = (struct event_str){"node-t", 6};
        ev.conn = (struct event_str){"node-t#1", 8};
        ev.device = (struct event_str){device, strlen(device)};
        ev.room = (struct event_str){room, strlen(room)};
        if (with_queries && i % 10 == 0) {
            ev.type = EV_QUERY;
            ev.total = i % 7;
            queries++;
        } else {
            ev.type = EV_MESSAGE;
            ev.kind = (struct event_str){"text", 4};
            ev.body = (struct event_str){body, (size_t)len};
            ev.seq = i;
        }
        struct event_numbers nums;
        const char *argv[3 + 2 * EVENT_MAX_FIELDS] = {"XADD", KEYS_EVENTS, "*"};
        size_t lens[3 + 2 * EVENT_MAX_FIELDS] = {4, strlen(KEYS_EVENTS), 1};
        size_t n = 3 + event_encode_argv(&ev, &nums, argv + 3, lens + 3);
        assert_int_equal(redisAppendCommandArgv(H.rc, (int)n, argv, lens), REDIS_OK);
        /* Drain replies now and then so neither side buffers the whole run. */
        if ((i - first) % 1000 == 999 || i == first + count - 1) {
            int pending = (i - first) % 1000 + 1;
            for (int k = 0; k < pending; k++) {
                redisReply *r = NULL;
                assert_int_equal(redisGetReply(H.rc, (void **)&r), REDIS_OK);
                assert_int_equal(r->type, REDIS_REPLY_STRING);
                freeReplyObject(r);
            }
        }
    }
    return queries;
}

/* Starts rrm-archiver as consumer `name` on the test's servers and database. extra ("K=V", NULL
 * terminated, may be NULL) override the defaults below. */
H_FN void h_start(struct archiver *a, const char *name, const char *const *extra) {
    char redis_port[40], mysql_port[40], db[96], consumer[96];
    snprintf(redis_port, sizeof(redis_port), "RRM_REDIS_PORT=%d", redis_server_port(H.redis));
    snprintf(mysql_port, sizeof(mysql_port), "RRM_MYSQL_PORT=%d", mariadb_server_port(H.db));
    snprintf(db, sizeof(db), "RRM_MYSQL_DATABASE=%s", H.dbname);
    snprintf(consumer, sizeof(consumer), "RRM_CONSUMER=%s", name);
    const char *defaults[] = {
        "RRM_REDIS_HOST=127.0.0.1",
        redis_port,
        "RRM_MYSQL_HOST=127.0.0.1",
        mysql_port,
        "RRM_MYSQL_USER=" MARIADB_SERVER_USER,
        "RRM_MYSQL_PASSWORD=" MARIADB_SERVER_PASSWORD,
        db,
        consumer,
        "RRM_LOG_LEVEL=debug",
        "RRM_FLUSH_MS=50",
        "RRM_BATCH_SIZE=500",
        "RRM_RETRY_MAX_MS=400",
        "RRM_STATUS_INTERVAL_MS=1000",
        "RRM_DRAIN_TIMEOUT_MS=5000",
    };
    const char *env[64];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        size_t klen = strchr(defaults[i], '=') - defaults[i] + 1;
        int overridden = 0;
        for (size_t k = 0; extra && extra[k]; k++)
            overridden |= strncmp(extra[k], defaults[i], klen) == 0;
        if (!overridden)
            env[n++] = defaults[i];
    }
    for (size_t k = 0; extra && extra[k]; k++)
        env[n++] = extra[k];
    env[n] = NULL;
    memset(a, 0, sizeof(*a));
    snprintf(a->name, sizeof(a->name), "%s", name);
    snprintf(a->log, sizeof(a->log), "%s/archiver-%d.log", H.dir, ++H.logs);
    const char *argv[] = {H.bin, NULL};
    a->pid = proc_spawn(argv, env, a->log);
    assert_true(a->pid > 0);
}

/* Stops an archiver with sig and returns its raw wait status. */
H_FN int h_stop(struct archiver *a, int sig) {
    int status = -1;
    if (a->pid <= 0)
        return status;
    proc_stop(a->pid, sig, 20000, &status);
    a->pid = 0;
    return status;
}

/* Number of lines of an archiver's log that contain needle. */
H_FN int h_log_count(const struct archiver *a, const char *needle) {
    FILE *f = fopen(a->log, "r");
    if (!f)
        return 0;
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* Waits until an archiver's log has at least `count` lines containing needle. */
H_FN void h_wait_log(const struct archiver *a, const char *needle, int count, int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    while (proc_remaining_ms(deadline) > 0) {
        if (h_log_count(a, needle) >= count)
            return;
        h_sleep_ms(20);
    }
    h_dump_logs();
    fail_msg("timed out waiting for %d log lines with '%s'", count, needle);
}

/* Whole content of a file (malloc'd) or NULL. */
H_FN char *h_read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[size] = '\0';
    fclose(f);
    return buf;
}

#endif
