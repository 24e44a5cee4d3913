/* The archiver integration tests' servers and helpers (see archiver_harness.h).
 *
 * Archiver logs are numbered in the order they were made (<dir>/archiver-<n>.log), so that
 * ah_dump_logs can show every one of them when a wait times out. */
#include "archiver_harness.h"

#include "keys.h"
#include "mariadb_server.h"
#include "proc.h"
#include "redis_server.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arch_harness {
    struct redis_server *redis;
    struct mariadb_server *db;
    redisContext *rc; /* reopened by ah_redis_client after it was lost or closed */
    MYSQL *my;        /* connected to dbname, reopened as needed */
    char *dir;
    const char *bin;
    char dbname[64];
    int logs;        /* log files named by ah_log_path so far */
    unsigned shards; /* RRM_EVENT_SHARDS of the archivers started, and of the events added */
};

void ah_sleep_ms(int ms) {
    poll(NULL, 0, ms);
}

int ah_setup(void **state) {
    return ah_setup_opts(state, NULL);
}

int ah_setup_opts(void **state, const struct mariadb_server_options *db_opts) {
    return ah_setup_full(state, NULL, db_opts);
}

int ah_setup_full(void **state, const struct redis_server_options *redis_opts,
                  const struct mariadb_server_options *db_opts) {
    struct arch_harness *h = calloc(1, sizeof(*h));
    *state = h;
    if (!h)
        return -1;
    h->bin = getenv("RRM_ARCHIVER_BIN");
    if (!h->bin) {
        fprintf(stderr, "RRM_ARCHIVER_BIN is not set (run through ctest)\n");
        return -1;
    }
    h->shards = AH_SHARDS;
    h->dir = proc_tmpdir("archiver-it");
    h->redis = redis_server_start_opts(redis_opts);
    h->db = mariadb_server_start_opts(db_opts);
    if (!h->dir || !h->redis || !h->db)
        return -1;
    h->rc = redis_server_client(h->redis);
    return h->rc ? 0 : -1;
}

int ah_teardown(void **state) {
    struct arch_harness *h = *state;
    if (!h)
        return 0;
    if (h->my)
        mysql_close(h->my);
    if (h->rc)
        redisFree(h->rc);
    redis_server_destroy(h->redis);
    mariadb_server_destroy(h->db);
    if (h->dir) {
        /* RRM_KEEP_TEST_LOGS=1 keeps the archivers' logs for a look after the run. */
        if (getenv("RRM_KEEP_TEST_LOGS"))
            fprintf(stderr, "archiver logs kept in %s\n", h->dir);
        else
            proc_rmtree(h->dir);
        free(h->dir);
    }
    mysql_library_end();
    free(h);
    *state = NULL;
    return 0;
}

struct redis_server *ah_redis_server(const struct arch_harness *h) {
    return h->redis;
}

struct mariadb_server *ah_db(const struct arch_harness *h) {
    return h->db;
}

const char *ah_dir(const struct arch_harness *h) {
    return h->dir;
}

const char *ah_bin(const struct arch_harness *h) {
    return h->bin;
}

void ah_log_path(struct arch_harness *h, const char *prefix, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s-%d.log", h->dir, prefix, ++h->logs);
}

redisContext *ah_redis_client(struct arch_harness *h) {
    if (!h->rc)
        h->rc = redis_server_client(h->redis);
    return h->rc;
}

void ah_redis_close(struct arch_harness *h) {
    if (h->rc)
        redisFree(h->rc);
    h->rc = NULL;
}

redisReply *ah_redis(struct arch_harness *h, const char *fmt, ...) {
    if (!ah_redis_client(h))
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(h->rc, fmt, ap);
    va_end(ap);
    if (!r) {
        redisFree(h->rc);
        h->rc = NULL;
    }
    return r;
}

void ah_redis_ok(struct arch_harness *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    assert_non_null(ah_redis_client(h));
    redisReply *r = redisvCommand(h->rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis: %s", r->str);
    freeReplyObject(r);
}

long long ah_redis_int(struct arch_harness *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = h->rc ? redisvCommand(h->rc, fmt, ap) : NULL;
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

void ah_db_reset(struct arch_harness *h) {
    if (h->my)
        mysql_close(h->my);
    h->my = NULL;
}

void ah_fresh(struct arch_harness *h, const char *dbname) {
    ah_redis_ok(h, "FLUSHALL");
    h->shards = AH_SHARDS;
    ah_db_reset(h);
    snprintf(h->dbname, sizeof(h->dbname), "%s", dbname);
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS `%s`", dbname);
    assert_int_equal(mariadb_server_exec(h->db, sql), 0);
}

MYSQL_RES *ah_query(struct arch_harness *h, const char *sql, int quiet, int *ok) {
    if (ok)
        *ok = 0;
    if (!h->my) {
        MYSQL *m = mysql_init(NULL);
        unsigned int t = 10;
        mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
        mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &t);
        mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &t);
        if (!mysql_real_connect(m, "127.0.0.1", MARIADB_SERVER_USER, MARIADB_SERVER_PASSWORD,
                                h->dbname, (unsigned int)mariadb_server_port(h->db), NULL, 0)) {
            if (!quiet)
                fprintf(stderr, "connect %s: %s\n", h->dbname, mysql_error(m));
            mysql_close(m);
            return NULL;
        }
        mysql_query(m, "SET time_zone = '+00:00'");
        h->my = m;
    }
    if (mysql_query(h->my, sql)) {
        if (!quiet)
            fprintf(stderr, "query failed: %s\n  %s\n", mysql_error(h->my), sql);
        if (mysql_errno(h->my) >= 2000)
            ah_db_reset(h);
        return NULL;
    }
    MYSQL_RES *res = mysql_store_result(h->my);
    if (!res && ok && mysql_field_count(h->my) == 0)
        *ok = 1;
    return res;
}

void ah_exec(struct arch_harness *h, const char *sql) {
    int ok = 0;
    MYSQL_RES *res = ah_query(h, sql, 0, &ok);
    if (res) {
        mysql_free_result(res);
        ok = 1;
    }
    assert_true(ok);
}

/* First column of the first row as a string (malloc'd; "NULL" for SQL NULL), or NULL on error. */
static char *query_str_q(struct arch_harness *h, const char *sql, int quiet) {
    MYSQL_RES *res = ah_query(h, sql, quiet, NULL);
    if (!res)
        return NULL;
    MYSQL_ROW row = mysql_fetch_row(res);
    char *out = strdup(row ? (row[0] ? row[0] : "NULL") : "(no row)");
    mysql_free_result(res);
    return out;
}

char *ah_str(struct arch_harness *h, const char *fmt, ...) {
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    char *s = query_str_q(h, sql, 0);
    if (!s)
        fail_msg("query failed: %s", sql);
    return s;
}

void ah_expect(struct arch_harness *h, const char *want, const char *fmt, ...) {
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    char *got = query_str_q(h, sql, 0);
    if (!got)
        fail_msg("query failed: %s", sql);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "query: %s\n  want: %s\n  got:  %s\n", sql, want, got);
        free(got);
        fail_msg("unexpected query result");
    }
    free(got);
}

long long ah_int_q(struct arch_harness *h, const char *sql) {
    char *s = query_str_q(h, sql, 1);
    long long v =
        (s && strcmp(s, "NULL") != 0 && strcmp(s, "(no row)") != 0) ? strtoll(s, NULL, 10) : -1;
    free(s);
    return v;
}

void ah_dump_logs(struct arch_harness *h) {
    char path[600];
    for (int i = 1; i <= h->logs; i++) {
        snprintf(path, sizeof(path), "%s/archiver-%d.log", h->dir, i);
        proc_dump_file_tail(path, 4000);
    }
}

void ah_wait_int(struct arch_harness *h, long long want, int timeout_ms, const char *fmt, ...) {
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    int64_t deadline = proc_now_ms() + timeout_ms;
    long long got = -1;
    while (proc_remaining_ms(deadline) > 0) {
        got = ah_int_q(h, sql);
        if (got == want)
            return;
        ah_sleep_ms(20);
    }
    ah_dump_logs(h);
    fail_msg("timed out waiting for %s = %lld (last %lld)", sql, want, got);
}

long long ah_wait_at_least(struct arch_harness *h, long long want, int timeout_ms,
                           const char *sql) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    long long got = -1;
    while (proc_remaining_ms(deadline) > 0) {
        got = ah_int_q(h, sql);
        if (got >= want)
            return got;
        ah_sleep_ms(10);
    }
    ah_dump_logs(h);
    fail_msg("timed out waiting for %s >= %lld (last %lld)", sql, want, got);
    return got;
}

void ah_set_shards(struct arch_harness *h, unsigned shards) {
    h->shards = shards;
}

unsigned ah_shards(const struct arch_harness *h) {
    return h->shards;
}

void ah_events_key(const struct arch_harness *h, const char *id, char *buf, size_t cap) {
    assert_true(keys_events_for(buf, cap, id, h->shards) > 0);
}

/* Adds the group's numbers on one stream to the sums; 1 if the group exists there. An empty
 * stream adds nothing (a group made on it has no entries-read until it reads something). */
/* Adds stream's counts of our group to the sums; returns 1 if the stream has our group. A stream
 * with entries but without our group yet counts in *ungrouped. */
static int group_state_of(struct arch_harness *h, const char *stream, long long *pending,
                          long long *lag, long long *entries_read, int *ungrouped) {
    redisReply *r = ah_redis(h, "XLEN %s", stream);
    int empty = r && r->type == REDIS_REPLY_INTEGER && r->integer == 0;
    if (r)
        freeReplyObject(r);
    r = ah_redis(h, "XINFO GROUPS %s", stream);
    if (!r)
        return 0;
    int found = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *g = r->element[i];
        int ours = 0;
        for (size_t k = 0; k + 1 < g->elements; k += 2)
            if (strcmp(g->element[k]->str, "name") == 0 &&
                strcmp(g->element[k + 1]->str, AH_GROUP) == 0)
                ours = 1;
        if (!ours)
            continue;
        found = 1;
        /* a group that has read nothing has no entries-read either: that is 0 */
        int unread = 0;
        for (size_t k = 0; k + 1 < g->elements; k += 2)
            if (strcmp(g->element[k]->str, "last-delivered-id") == 0)
                unread = strcmp(g->element[k + 1]->str, "0-0") == 0;
        for (size_t k = 0; k + 1 < g->elements; k += 2) {
            redisReply *v = g->element[k + 1];
            long long n = v->type == REDIS_REPLY_INTEGER ? v->integer : -1;
            if (n < 0 && unread && strcmp(g->element[k]->str, "entries-read") == 0)
                n = 0;
            long long *sum = strcmp(g->element[k]->str, "pending") == 0        ? pending
                             : strcmp(g->element[k]->str, "lag") == 0          ? lag
                             : strcmp(g->element[k]->str, "entries-read") == 0 ? entries_read
                                                                               : NULL;
            if (sum && !empty)
                *sum = (*sum < 0 || n < 0) ? -1 : *sum + n;
        }
    }
    freeReplyObject(r);
    if (!found && !empty)
        (*ungrouped)++;
    return found;
}

/* The group's counts summed over every stream (-1 each when no stream has the group yet);
 * returns how many streams hold entries but not the group yet. */
static int group_state(struct arch_harness *h, long long *pending, long long *lag,
                       long long *entries_read) {
    *pending = *lag = *entries_read = 0;
    int groups = 0, ungrouped = 0;
    for (unsigned s = 0; s < h->shards; s++) {
        char key[KEYS_MAX];
        keys_events(key, sizeof(key), s);
        groups += group_state_of(h, key, pending, lag, entries_read, &ungrouped);
    }
    groups += group_state_of(h, KEYS_EVENTS, pending, lag, entries_read, &ungrouped);
    if (!groups)
        *pending = *lag = *entries_read = -1;
    return ungrouped;
}

void ah_group_state(struct arch_harness *h, long long *pending, long long *lag,
                    long long *entries_read) {
    group_state(h, pending, lag, entries_read);
}

long long ah_events_len(struct arch_harness *h) {
    long long len = 0;
    for (unsigned s = 0; s <= h->shards; s++) {
        char key[KEYS_MAX];
        if (s < h->shards)
            keys_events(key, sizeof(key), s);
        else
            snprintf(key, sizeof(key), "%s", KEYS_EVENTS);
        redisReply *r = ah_redis(h, "XLEN %s", key);
        if (!r || r->type != REDIS_REPLY_INTEGER) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        len += r->integer;
        freeReplyObject(r);
    }
    return len;
}

void ah_wait_drained(struct arch_harness *h, int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    long long pending = -1, lag = -1, read = -1;
    long long len = -1;
    int ungrouped = -1;
    while (proc_remaining_ms(deadline) > 0) {
        /* The archiver creates its group stream by stream: entries in a stream it has not
         * reached yet are not drained, though every group so far says so. */
        ungrouped = group_state(h, &pending, &lag, &read);
        len = ah_events_len(h);
        if (pending == 0 && lag == 0 && ungrouped == 0)
            return;
        ah_sleep_ms(20);
    }
    ah_dump_logs(h);
    fail_msg("group not drained: pending %lld lag %lld entries-read %lld length %lld, %d streams "
             "without the group",
             pending, lag, read, len, ungrouped);
}

/* The id of the stream the event goes to: its room, else its device, else its node (as the
 * frontends choose). */
static const char *shard_id(const struct rrm_event *ev, char *buf, size_t cap) {
    const struct event_str *s = ev->room.p ? &ev->room : ev->device.p ? &ev->device : &ev->node;
    snprintf(buf, cap, "%.*s", (int)s->len, s->p ? s->p : "");
    return buf;
}

/* XADD of an encoded event to stream; the entry id goes to id as written (if not NULL). */
static void xadd_to(struct arch_harness *h, const char *stream, const struct rrm_event *ev,
                    char *id, size_t idcap) {
    struct event_numbers nums;
    const char *argv[3 + 2 * EVENT_MAX_FIELDS] = {"XADD", stream, "*"};
    size_t lens[3 + 2 * EVENT_MAX_FIELDS] = {4, strlen(stream), 1};
    size_t n = 3 + event_encode_argv(ev, &nums, argv + 3, lens + 3);
    redisReply *r = redisCommandArgv(h->rc, (int)n, argv, lens);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    if (id)
        snprintf(id, idcap, "%s", r->str);
    freeReplyObject(r);
}

void ah_xadd(struct arch_harness *h, const struct rrm_event *ev, char *id, size_t idcap) {
    char sid[256], raw[64];
    shard_id(ev, sid, sizeof(sid));
    unsigned shard = keys_event_shard(sid, strlen(sid), h->shards);
    char key[KEYS_MAX];
    keys_events(key, sizeof(key), shard);
    xadd_to(h, key, ev, raw, sizeof(raw));
    if (id)
        snprintf(id, idcap, "%u/%s", shard, raw);
}

void ah_xadd_legacy(struct arch_harness *h, const struct rrm_event *ev, char *id, size_t idcap) {
    xadd_to(h, KEYS_EVENTS, ev, id, idcap);
}

void ah_xadd_raw(struct arch_harness *h, size_t n, const char *const *names,
                 const char *const *values, const size_t *value_lens, char *id, size_t idcap) {
    const char *argv[64];
    size_t lens[64];
    assert_true(3 + 2 * n <= 64);
    /* the shard of the room field if there is one, else shard 0 */
    unsigned shard = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], "room") == 0)
            shard = keys_event_shard(values[i], value_lens ? value_lens[i] : strlen(values[i]),
                                     h->shards);
    char key[KEYS_MAX];
    keys_events(key, sizeof(key), shard);
    argv[0] = "XADD";
    argv[1] = key;
    argv[2] = "*";
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    for (size_t i = 0; i < n; i++) {
        argv[3 + 2 * i] = names[i];
        lens[3 + 2 * i] = strlen(names[i]);
        argv[4 + 2 * i] = values[i];
        lens[4 + 2 * i] = value_lens ? value_lens[i] : strlen(values[i]);
    }
    redisReply *r = redisCommandArgv(h->rc, (int)(3 + 2 * n), argv, lens);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_STRING)
        fail_msg("XADD: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    if (id)
        snprintf(id, idcap, "%u/%s", shard, r->str);
    freeReplyObject(r);
}

int ah_xadd_messages(struct arch_harness *h, int first, int count, int rooms, int with_queries) {
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
        char key[KEYS_MAX];
        keys_events(key, sizeof(key), keys_event_shard(room, strlen(room), h->shards));
        const char *argv[3 + 2 * EVENT_MAX_FIELDS] = {"XADD", key, "*"};
        size_t lens[3 + 2 * EVENT_MAX_FIELDS] = {4, strlen(key), 1};
        size_t n = 3 + event_encode_argv(&ev, &nums, argv + 3, lens + 3);
        assert_int_equal(redisAppendCommandArgv(h->rc, (int)n, argv, lens), REDIS_OK);
        /* Drain replies now and then so neither side buffers the whole run. */
        if ((i - first) % 1000 == 999 || i == first + count - 1) {
            int pending = (i - first) % 1000 + 1;
            for (int k = 0; k < pending; k++) {
                redisReply *r = NULL;
                assert_int_equal(redisGetReply(h->rc, (void **)&r), REDIS_OK);
                assert_int_equal(r->type, REDIS_REPLY_STRING);
                freeReplyObject(r);
            }
        }
    }
    return queries;
}

void ah_start(struct arch_harness *h, struct ah_archiver *a, const char *name,
              const char *const *extra) {
    char redis_port[40], mysql_port[40], db[96], consumer[96];
    snprintf(redis_port, sizeof(redis_port), "RRM_REDIS_PORT=%d", redis_server_port(h->redis));
    snprintf(mysql_port, sizeof(mysql_port), "RRM_MYSQL_PORT=%d", mariadb_server_port(h->db));
    snprintf(db, sizeof(db), "RRM_MYSQL_DATABASE=%s", h->dbname);
    snprintf(consumer, sizeof(consumer), "RRM_CONSUMER=%s", name);
    char shards[40];
    snprintf(shards, sizeof(shards), "RRM_EVENT_SHARDS=%u", h->shards);
    char metrics[40];
    snprintf(metrics, sizeof(metrics), "RRM_METRICS_PORT=%d", proc_free_port());
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
        shards,
        metrics,
        "RRM_METRICS_BIND=127.0.0.1",
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
    for (size_t i = 0; i < n; i++)
        if (strncmp(env[i], "RRM_METRICS_PORT=", 17) == 0)
            a->metrics_port = atoi(env[i] + 17);
    snprintf(a->name, sizeof(a->name), "%s", name);
    ah_log_path(h, "archiver", a->log, sizeof(a->log));
    const char *argv[] = {h->bin, NULL};
    a->pid = proc_spawn(argv, env, a->log);
    assert_true(a->pid > 0);
}

int ah_http_get(const struct ah_archiver *a, const char *path, char **body) {
    if (body)
        *body = NULL;
    int64_t deadline = proc_now_ms() + AH_WAIT_MS;
    for (;;) {
        int status = 0;
        int rc = proc_http_get(a->metrics_port, path, 10000, &status, body);
        if (rc == 0)
            return status;
        if (rc != -ECONNREFUSED || proc_remaining_ms(deadline) == 0)
            return rc;
        ah_sleep_ms(50);
    }
}

double ah_series(const char *text, const char *series) {
    size_t slen = strlen(series);
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        if (*p != '#' && strncmp(p, series, slen) == 0 && p[slen] == ' ') {
            char *end = NULL;
            double v = strtod(p + slen + 1, &end);
            return end == p + slen + 1 ? -1 : v;
        }
        p = eol ? eol + 1 : NULL;
    }
    return -1;
}

double ah_metric(const struct ah_archiver *a, const char *series) {
    char *body = NULL;
    int status = ah_http_get(a, "/metrics", &body);
    double v = status == 200 && body ? ah_series(body, series) : -1;
    free(body);
    return v;
}

void ah_wait_metric(struct arch_harness *h, const struct ah_archiver *a, const char *series,
                    double want, int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    double v;
    while ((v = ah_metric(a, series)) != want) {
        if (proc_remaining_ms(deadline) == 0) {
            ah_dump_logs(h);
            fail_msg("%s is %g, not %g, after %d ms", series, v, want, timeout_ms);
        }
        ah_sleep_ms(50);
    }
}

int ah_stop(struct ah_archiver *a, int sig) {
    int status = -1;
    if (a->pid <= 0)
        return status;
    proc_stop(a->pid, sig, 20000, &status);
    a->pid = 0;
    return status;
}

int ah_log_count(const struct ah_archiver *a, const char *needle) {
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

void ah_wait_log(struct arch_harness *h, const struct ah_archiver *a, const char *needle, int count,
                 int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    while (proc_remaining_ms(deadline) > 0) {
        if (ah_log_count(a, needle) >= count)
            return;
        ah_sleep_ms(20);
    }
    ah_dump_logs(h);
    fail_msg("timed out waiting for %d log lines with '%s'", count, needle);
}

char *ah_read_file(const char *path) {
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
