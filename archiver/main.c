/* rrm-archiver: reads the archive event streams (rrm:events:{N}, and rrm:events of older versions
 * while it exists) as a member of a consumer group and writes them into MySQL in batched,
 * idempotent transactions. This file owns the configuration, the signals and the
 * main loop: read a batch, archive it, and on timers refresh the alive mark, take over dead
 * consumers' entries, reclaim stale entries, check the lag (published for /metrics) and log the
 * status record. /metrics and /healthz are served by a thread of their own (httpd.h, monitor.h). */
#include "backoff.h"
#include "batch.h"
#include "config.h"
#include "consumer.h"
#include "keys.h"
#include "httpd.h"
#include "log.h"
#include "monitor.h"
#include "pipeline.h"
#include "rconn.h"
#include "util.h"
#include "writer.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <mysql.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LAG_CHECK_MS 10000
#define FORGET_EVERY_MS 600000
#define FORGET_IDLE_MIN_MS 3600000LL

struct arch_config {
    char redis_host[256];
    long redis_port;
    char redis_password[256];
    long redis_cluster;
    char redis_nodes[1024];
    char mysql_host[256];
    long mysql_port;
    char mysql_user[129];
    char mysql_password[256];
    char mysql_database[65];
    long mysql_pool_size;
    long writers;
    long mysql_timeout_s;
    char mysql_ssl_mode[16];
    char mysql_ssl_ca[1024];
    char mysql_ssl_cert[1024];
    char mysql_ssl_key[1024];
    long batch_size;
    long flush_ms;
    char consumer[200];
    char group[200];
    long claim_idle_ms;
    long alive_ttl_ms;
    long status_interval_ms;
    long retry_max_ms;
    long drain_timeout_ms;
    long stream_maxlen;
    long event_shards;
    long dead_letter_maxlen;
    long metrics_port;
    char metrics_bind[256];
    char log_level[16];
};

#define OPT(name, type, field, def, min, max, help)                                                \
    { name, type, offsetof(struct arch_config, field), def, min, max, help }
#define STR_OPT(name, field, def, min, help)                                                       \
    OPT(name, CFG_STR, field, def, min, (long)sizeof(((struct arch_config *)0)->field), help)

static const struct cfg_option options[] = {
    STR_OPT("redis-host", redis_host, "127.0.0.1", 1, "Redis host"),
    OPT("redis-port", CFG_INT, redis_port, "6379", 1, 65535, "Redis port"),
    STR_OPT("redis-password", redis_password, "", 0, "Redis password (AUTH), empty for none"),
    OPT("redis-cluster", CFG_INT, redis_cluster, "0", 0, 1,
        "1: Redis is a Redis Cluster (RRM_REDIS_HOST:PORT and RRM_REDIS_NODES are seeds)"),
    STR_OPT("redis-nodes", redis_nodes, "", 0,
            "Redis Cluster: more seeds, host:port,host:port (empty: none)"),
    STR_OPT("mysql-host", mysql_host, "127.0.0.1", 1, "MySQL host (seed DB_CONFIG host)"),
    OPT("mysql-port", CFG_INT, mysql_port, "3306", 1, 65535, "MySQL port"),
    STR_OPT("mysql-user", mysql_user, "websocketdata", 1, "MySQL user"),
    STR_OPT("mysql-password", mysql_password, "", 0, "MySQL password"),
    STR_OPT("mysql-database", mysql_database, "websocketdata", 1,
            "MySQL database, created if missing (letters, digits, _ and $)"),
    OPT("mysql-pool-size", CFG_INT, mysql_pool_size, "5", 1, 100,
        "MySQL connections the writer may open"),
    OPT("writers", CFG_INT, writers, "2", 1, 32,
        "batches written to MySQL at once, each in its own transaction on a pooled connection "
        "(at most mysql-pool-size)"),
    OPT("mysql-timeout-s", CFG_INT, mysql_timeout_s, "60", 1, 3600,
        "longest wait for MySQL to answer one statement"),
    STR_OPT("mysql-ssl-mode", mysql_ssl_mode, "auto", 1,
            "TLS to MySQL: off, required (encrypted, server not checked), verify (encrypted, the "
            "server's certificate checked against mysql-ssl-ca and the host name) or auto "
            "(verify with a CA, required with only a client certificate, else off)"),
    STR_OPT("mysql-ssl-ca", mysql_ssl_ca, "", 0,
            "PEM file of the CA that signed MySQL's certificate"),
    STR_OPT("mysql-ssl-cert", mysql_ssl_cert, "", 0,
            "PEM file of this client's certificate, if MySQL asks for one (X509 users)"),
    STR_OPT("mysql-ssl-key", mysql_ssl_key, "", 0, "PEM file of the key of mysql-ssl-cert"),
    OPT("batch-size", CFG_INT, batch_size, "2000", 1, 100000,
        "stream entries read and written per transaction at most"),
    OPT("flush-ms", CFG_INT, flush_ms, "200", 1, 60000,
        "longest a read blocks waiting for new entries"),
    STR_OPT("consumer", consumer, "", 0,
            "consumer name in the group; default hostname-pid (keep it stable across restarts "
            "to resume its own pending entries at once)"),
    STR_OPT("group", group, "rrm-archivers", 1, "consumer group name"),
    OPT("claim-idle-ms", CFG_INT, claim_idle_ms, "60000", 100, 86400000,
        "entries pending this long for another consumer are reclaimed"),
    OPT("alive-ttl-ms", CFG_INT, alive_ttl_ms, "10000", 1000, 3600000,
        "lifetime of this archiver's alive mark in Redis, refreshed every third of it; the "
        "pending entries of an archiver whose mark expired are taken over at once"),
    OPT("status-interval-ms", CFG_INT, status_interval_ms, "60000", 100, 86400000,
        "interval of the status log record"),
    OPT("retry-max-ms", CFG_INT, retry_max_ms, "5000", 100, 600000,
        "cap of the exponential backoff when MySQL or Redis fail"),
    OPT("drain-timeout-ms", CFG_INT, drain_timeout_ms, "10000", 0, 600000,
        "on SIGTERM, how long the batch in flight may still retry before the process exits"),
    OPT("stream-maxlen", CFG_INT, stream_maxlen, "9000", 0, 2000000000,
        "the frontends' RRM_STREAM_MAXLEN: each shard is capped at its share (rounded up); a "
        "shard's backlog past half of its share is warned about (0: no warning)"),
    OPT("event-shards", CFG_INT, event_shards, "16", 1, KEYS_EVENT_SHARDS_MAX,
        "the frontends' RRM_EVENT_SHARDS: the streams rrm:events:{0..N-1} read, each with its "
        "own consumer group"),
    OPT("dead-letter-maxlen", CFG_INT, dead_letter_maxlen, "100000", 0, 2000000000,
        "approximate cap of rrm:events:dead (0: unbounded)"),
    OPT("metrics-port", CFG_INT, metrics_port, "9102", 0, 65535,
        "TCP port of the HTTP listener for /metrics and /healthz (plain HTTP; 0: none)"),
    STR_OPT("metrics-bind", metrics_bind, "", 0,
            "address the metrics listener binds (empty: all interfaces)"),
    STR_OPT("log-level", log_level, "info", 1, "debug, info, warn or error"),
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* A write to a Redis or MySQL socket the peer closed must be an error, not death. */
    signal(SIGPIPE, SIG_IGN);
}

/* A TLS file option: empty, or a file this process can read. */
static int check_file(const char *var, const char *flag, const char *path) {
    if (!path[0] || access(path, R_OK) == 0)
        return 0;
    fprintf(stderr, "rrm-archiver: invalid %s (%s): cannot read '%s': %s\n", var, flag, path,
            strerror(errno));
    return -1;
}

/* RRM_MYSQL_SSL_MODE and the files it needs. */
static int validate_ssl(const struct arch_config *cfg, enum arch_ssl_mode *mode) {
    const char *m = cfg->mysql_ssl_mode;
    int any = cfg->mysql_ssl_ca[0] || cfg->mysql_ssl_cert[0] || cfg->mysql_ssl_key[0];
    if (strcmp(m, "auto") == 0)
        *mode = cfg->mysql_ssl_ca[0] ? ARCH_SSL_VERIFY : any ? ARCH_SSL_REQUIRED : ARCH_SSL_OFF;
    else if (strcmp(m, "off") == 0)
        *mode = ARCH_SSL_OFF;
    else if (strcmp(m, "required") == 0)
        *mode = ARCH_SSL_REQUIRED;
    else if (strcmp(m, "verify") == 0)
        *mode = ARCH_SSL_VERIFY;
    else {
        fprintf(stderr,
                "rrm-archiver: invalid RRM_MYSQL_SSL_MODE (--mysql-ssl-mode): '%s' is not one of "
                "auto, off, required, verify\n",
                m);
        return -1;
    }
    if (*mode == ARCH_SSL_OFF && any) {
        fprintf(stderr, "rrm-archiver: invalid RRM_MYSQL_SSL_MODE (--mysql-ssl-mode): 'off' with "
                        "RRM_MYSQL_SSL_CA, RRM_MYSQL_SSL_CERT or RRM_MYSQL_SSL_KEY set\n");
        return -1;
    }
    if (*mode == ARCH_SSL_VERIFY && !cfg->mysql_ssl_ca[0]) {
        fprintf(stderr, "rrm-archiver: invalid RRM_MYSQL_SSL_MODE (--mysql-ssl-mode): 'verify' "
                        "needs RRM_MYSQL_SSL_CA (--mysql-ssl-ca)\n");
        return -1;
    }
    if (!cfg->mysql_ssl_cert[0] != !cfg->mysql_ssl_key[0]) {
        fprintf(stderr,
                "rrm-archiver: invalid %s: set both RRM_MYSQL_SSL_CERT and "
                "RRM_MYSQL_SSL_KEY, or neither\n",
                cfg->mysql_ssl_cert[0] ? "RRM_MYSQL_SSL_CERT (--mysql-ssl-cert)"
                                       : "RRM_MYSQL_SSL_KEY (--mysql-ssl-key)");
        return -1;
    }
    if (check_file("RRM_MYSQL_SSL_CA", "--mysql-ssl-ca", cfg->mysql_ssl_ca) ||
        check_file("RRM_MYSQL_SSL_CERT", "--mysql-ssl-cert", cfg->mysql_ssl_cert) ||
        check_file("RRM_MYSQL_SSL_KEY", "--mysql-ssl-key", cfg->mysql_ssl_key))
        return -1;
    return 0;
}

/* Checks what the option table cannot; prints one line naming the variable. */
static int validate(struct arch_config *cfg, enum log_level *level) {
    if (log_level_parse(cfg->log_level, level)) {
        fprintf(stderr,
                "rrm-archiver: invalid RRM_LOG_LEVEL (--log-level): '%s' is not one of "
                "debug, info, warn, error\n",
                cfg->log_level);
        return -1;
    }
    if (strspn(cfg->mysql_database, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789_$") != strlen(cfg->mysql_database)) {
        fprintf(stderr,
                "rrm-archiver: invalid RRM_MYSQL_DATABASE (--mysql-database): '%s' may "
                "only contain letters, digits, _ and $\n",
                cfg->mysql_database);
        return -1;
    }
    if (rconn_check_nodes(cfg->redis_nodes)) {
        fprintf(stderr,
                "rrm-archiver: invalid RRM_REDIS_NODES (--redis-nodes): '%s' is not a list of "
                "host:port separated by commas\n",
                cfg->redis_nodes);
        return -1;
    }
    if (cfg->writers > cfg->mysql_pool_size) {
        fprintf(stderr,
                "rrm-archiver: invalid RRM_WRITERS (--writers): %ld writers need at least "
                "as many MySQL connections, but RRM_MYSQL_POOL_SIZE is %ld\n",
                cfg->writers, cfg->mysql_pool_size);
        return -1;
    }
    if (!cfg->consumer[0]) {
        char host[128] = "archiver";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(cfg->consumer, sizeof(cfg->consumer), "%s-%ld", host, (long)getpid());
    }
    return 0;
}

static void log_status(const struct logger *lg, struct arch_pipeline *p, struct arch_writer *w,
                       const struct arch_lag *lag, long shards, int64_t interval_ms, int final) {
    struct arch_stats s;
    arch_pipeline_take_stats(p, &s);
    json_t *rows = json_object();
    uint64_t total = 0;
    for (int t = 0; t < ARCH_TABLE_COUNT; t++) {
        json_object_set_new(rows, arch_table_name((enum arch_table)t),
                            json_integer((json_int_t)s.rows[t]));
        total += s.rows[t];
    }
    double avg = s.batches ? (double)s.batch_us_sum / (double)s.batches / 1000.0 : 0.0;
    json_t *rec = json_pack(
        "{s:b, s:I, s:I, s:I, s:o, s:I, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:I, s:I, s:I, s:I, s:I, s:i}",
        "final", final, "interval_ms", (json_int_t)interval_ms, "events", (json_int_t)s.events,
        "batches", (json_int_t)s.batches, "rows", rows, "rows_total", (json_int_t)total,
        "batch_ms_avg", log_round(avg, 3), "batch_ms_max",
        log_round((double)s.batch_us_max / 1000.0, 3), "stream_length", (json_int_t)lag->length,
        "pending", (json_int_t)lag->pending, "lag", (json_int_t)lag->lag, "retries",
        (json_int_t)s.retries, "dead_letters", (json_int_t)s.dead_letters, "lost",
        (json_int_t)s.lost, "reclaimed", (json_int_t)s.reclaimed, "takeovers",
        (json_int_t)s.takeovers, "taken_over", (json_int_t)s.taken_over, "consumers_removed",
        (json_int_t)s.consumers_removed, "lag_warnings", (json_int_t)s.lag_warnings,
        "mysql_connections", arch_writer_connections(w));
    /* stream_length, pending and lag are sums over the streams; the shard with the largest
     * backlog, and the backlog left in the single stream of older versions, are named */
    if (rec) {
        json_object_set_new(rec, "shards", json_integer(shards));
        json_object_set_new(rec, "shard_backlog_max", json_integer(lag->shard_backlog_max));
        json_object_set_new(rec, "shard_backlog_max_shard", json_integer(lag->shard_max));
        json_object_set_new(rec, "legacy_backlog", json_integer(lag->legacy_backlog));
    }
    log_json(lg, LOG_INFO, "status", rec);
}

/* The frontends trim each shard's stream to about its share of stream_maxlen entries (rounded up),
 * and an older frontend rrm:events to stream_maxlen; what the group has not archived by then is
 * lost, so a backlog past half of a stream's cap is worth an operator's attention. */
static void check_lag(const struct arch_config *cfg, const struct logger *lg,
                      struct arch_consumer *c, struct arch_pipeline *p, struct arch_monitor *m,
                      struct arch_lag *lag, int64_t *last_warn_ms) {
    struct arch_stream_lag streams[KEYS_EVENT_SHARDS_MAX + 1];
    int n = 0;
    if (arch_consumer_lag(c, lag, streams, KEYS_EVENT_SHARDS_MAX + 1, &n))
        return;
    arch_monitor_set_lag(m, streams, n);
    long long backlog = lag->pending + (lag->lag > 0 ? lag->lag : 0);
    long long shard_cap = (cfg->stream_maxlen + cfg->event_shards - 1) / cfg->event_shards;
    if (cfg->stream_maxlen <= 0 ||
        (lag->shard_backlog_max * 2 < shard_cap && lag->legacy_backlog * 2 < cfg->stream_maxlen))
        return;
    arch_pipeline_count(p, 0, 0, 1);
    int64_t now = util_mono_ms();
    if (*last_warn_ms && now - *last_warn_ms < 60000)
        return;
    *last_warn_ms = now;
    log_json(lg, LOG_WARN,
             "archive backlog approaching the stream cap; unarchived entries "
             "will be trimmed if it is reached",
             json_pack("{s:I, s:I, s:I, s:I, s:I, s:i, s:I, s:I}", "backlog", (json_int_t)backlog,
                       "pending", (json_int_t)lag->pending, "lag", (json_int_t)lag->lag,
                       "stream_maxlen", (json_int_t)cfg->stream_maxlen, "shard_backlog_max",
                       (json_int_t)lag->shard_backlog_max, "shard", lag->shard_max, "shard_cap",
                       shard_cap, "legacy_backlog", (json_int_t)lag->legacy_backlog));
}

/* Claims entries of dead consumers and hands them to a writer (one must be free). Returns 1 if
 * the scan should continue at once (more to look at), 0 when it reached the end, -1 on a Redis
 * error. */
static int reclaim_step(const struct logger *lg, struct arch_consumer *c, struct arch_pipeline *p) {
    struct arch_entries claimed;
    int wrapped = 0;
    long long lost = 0;
    if (arch_consumer_reclaim(c, &claimed, &wrapped, &lost))
        return -1;
    arch_pipeline_count(p, claimed.n, (uint64_t)lost, 0);
    if (lost)
        log_json(lg, LOG_ERROR, "pending entries were trimmed before they were archived",
                 json_pack("{s:I}", "count", (json_int_t)lost));
    if (claimed.n) {
        log_json(lg, LOG_INFO, "reclaimed entries of a stale consumer",
                 json_pack("{s:I}", "entries", (json_int_t)claimed.n));
        arch_pipeline_submit(p, &claimed);
    }
    arch_entries_free(&claimed);
    return wrapped ? 0 : 1;
}

/* Takes over entries of consumers whose alive mark is gone and hands them to a writer (one must
 * be free). Returns 1 if the scan should go on at once (it stopped at a claim), 0 when it found
 * nothing more to claim, -1 on a Redis error. */
static int takeover_step(const struct logger *lg, struct arch_consumer *c,
                         struct arch_pipeline *p) {
    struct arch_entries claimed;
    struct arch_takeover t;
    int rc = arch_consumer_takeover(c, &claimed, &t);
    arch_pipeline_count_takeover(p, rc == 1, claimed.n, (uint64_t)t.removed);
    if (rc == 1) {
        arch_pipeline_count(p, 0, (uint64_t)t.lost, 0);
        log_json(lg, LOG_INFO, "took over the entries of a dead consumer",
                 json_pack("{s:s, s:I, s:I}", "consumer", t.dead, "entries", (json_int_t)claimed.n,
                           "lost", (json_int_t)t.lost));
        if (t.lost)
            log_json(lg, LOG_ERROR, "pending entries were trimmed before they were archived",
                     json_pack("{s:I}", "count", (json_int_t)t.lost));
        if (claimed.n)
            arch_pipeline_submit(p, &claimed);
    } else if (rc == 0 && lg->min <= LOG_DEBUG) {
        log_json(lg, LOG_DEBUG, "takeover scan",
                 json_pack("{s:i, s:i, s:i}", "consumers", t.consumers, "alive", t.alive, "removed",
                           t.removed));
    }
    arch_entries_free(&claimed);
    return rc;
}

static int run(const struct arch_config *cfg, const struct logger *lg, struct arch_consumer *c,
               struct arch_writer *w, struct arch_pipeline *p, struct arch_monitor *m) {
    char err[256];
    while (!stop_requested && arch_consumer_connect(c))
        arch_pipeline_redis_wait(p, "connect");
    if (!stop_requested)
        arch_pipeline_redis_ok(p);
    struct backoff prep_bo;
    backoff_init(&prep_bo, 100, cfg->retry_max_ms, (uint64_t)getpid());
    while (!stop_requested && arch_writer_prepare(w, err, sizeof(err))) {
        log_json(lg, LOG_WARN, "MySQL not ready, retrying", json_pack("{s:s}", "error", err));
        arch_pipeline_sleep(p, backoff_next(&prep_bo));
    }
    if (stop_requested)
        return 0;
    log_json(lg, LOG_INFO, "archiving",
             json_pack("{s:s, s:i, s:s, s:s, s:i, s:i, s:i}", "streams", KEYS_EVENTS_PREFIX "{N}",
                       "shards", (int)cfg->event_shards, "group", cfg->group, "consumer",
                       cfg->consumer, "batch_size", (int)cfg->batch_size, "writers",
                       (int)cfg->writers, "mysql_pool_size", (int)cfg->mysql_pool_size));

    long reclaim_every = cfg->claim_idle_ms / 2 > 1000 ? cfg->claim_idle_ms / 2 : 1000;
    /* The mark is refreshed three times per lifetime, so a live archiver keeps it through a
     * missed refresh; peers look for dead ones five times per lifetime. */
    long alive_every = cfg->alive_ttl_ms / 3, takeover_every = cfg->alive_ttl_ms / 5;
    int64_t now = util_mono_ms();
    int64_t next_alive = now, next_takeover = now;
    int mark_failing = 0;
    int64_t next_reclaim = now, next_lag = now, next_forget = now + FORGET_EVERY_MS;
    int64_t status_start = now, next_status = now + cfg->status_interval_ms, last_warn = 0;
    long long forget_idle = cfg->claim_idle_ms * 10LL > FORGET_IDLE_MIN_MS
                                ? cfg->claim_idle_ms * 10LL
                                : FORGET_IDLE_MIN_MS;
    struct arch_lag lag = {0, 0, -1, 0, -1, 0};

    while (!stop_requested) {
        arch_pipeline_settle(p, 0);
        now = util_mono_ms();
        if (now >= next_alive) {
            /* Before any read: a consumer without a mark is fair game for takeover. */
            if (arch_consumer_mark_alive(c, cfg->alive_ttl_ms) == 0) {
                if (mark_failing)
                    log_msg(lg, LOG_INFO, "alive mark refreshed again");
                mark_failing = 0;
                next_alive = now + alive_every;
            } else {
                /* Redis down (the reads say so too) or full: peers may take over our entries
                 * meanwhile, which costs work, not correctness (writes are idempotent). */
                if (!mark_failing)
                    log_json(lg, LOG_WARN, "alive mark not refreshed",
                             json_pack("{s:s}", "error", arch_consumer_error(c)));
                mark_failing = 1;
                next_alive = now + 500;
            }
        }
        if (now >= next_lag) {
            check_lag(cfg, lg, c, p, m, &lag, &last_warn);
            next_lag = now + LAG_CHECK_MS;
        }
        if (now >= next_status) {
            check_lag(cfg, lg, c, p, m, &lag, &last_warn);
            next_lag = now + LAG_CHECK_MS;
            log_status(lg, p, w, &lag, cfg->event_shards, now - status_start, 0);
            status_start = now;
            next_status = now + cfg->status_interval_ms;
        }
        if (!arch_pipeline_can_submit(p)) {
            /* Every writer is busy: wait for one to finish rather than read ahead. */
            arch_pipeline_settle(p, 50);
            continue;
        }
        /* Our own pending entries come first; then those of consumers whose mark expired; then
         * those pending too long for anyone (consumers of older versions, missed takeovers). */
        if (!arch_consumer_in_backlog(c) && now >= next_takeover) {
            int more = takeover_step(lg, c, p);
            if (more < 0) {
                arch_pipeline_redis_wait(p, "takeover");
                continue;
            }
            next_takeover = more ? now : now + takeover_every;
            continue;
        }
        if (!arch_consumer_in_backlog(c) && now >= next_reclaim) {
            int more = reclaim_step(lg, c, p);
            if (more < 0) {
                arch_pipeline_redis_wait(p, "XAUTOCLAIM");
                continue;
            }
            next_reclaim = more ? now : now + reclaim_every;
            if (!more && now >= next_forget) {
                arch_consumer_forget_idle(c, forget_idle);
                next_forget = now + FORGET_EVERY_MS;
            }
            continue;
        }
        /* With batches in flight, block only briefly so that finished ones are acknowledged
         * promptly. When idle, wait the flush interval, but at most a second at a time: a
         * blocked read does not notice SIGTERM. */
        long block = cfg->flush_ms < 1000 ? cfg->flush_ms : 1000;
        if (arch_pipeline_in_flight(p) && block > 10)
            block = 10;
        struct arch_entries batch;
        if (arch_consumer_read(c, &batch, block)) {
            arch_pipeline_redis_wait(p, "XREADGROUP");
            continue;
        }
        arch_pipeline_redis_ok(p);
        if (batch.n)
            arch_pipeline_submit(p, &batch);
        arch_entries_free(&batch);
    }
    /* The mark covers the drain, then goes: whatever stays pending (a drain that timed out) is
     * taken over by a peer at its next scan instead of after the mark's expiry. With Redis
     * already failing, the drain does not wait for one more connection timeout. */
    if (!mark_failing)
        arch_consumer_mark_alive(c, cfg->drain_timeout_ms + cfg->alive_ttl_ms);
    arch_pipeline_drain(p);
    check_lag(cfg, lg, c, p, m, &lag, &last_warn);
    log_status(lg, p, w, &lag, cfg->event_shards, util_mono_ms() - status_start, 1);
    if (arch_consumer_unmark(c) == 0)
        log_msg(lg, LOG_INFO, "alive mark removed");
    return 0;
}

int main(int argc, char **argv) {
    struct arch_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof(cfg));
    int rc = cfg_load(options, N_OPTIONS, &cfg, argc, argv, err, sizeof(err));
    if (rc == CFG_HELP) {
        cfg_usage(stdout, "rrm-archiver",
                  "Archives RealTime Room Manager events from the Redis streams rrm:events:{N} "
                  "(and rrm:events of older versions) into MySQL.",
                  options, N_OPTIONS);
        return 0;
    }
    if (rc == CFG_VERSION) {
        printf("rrm-archiver %s\nhiredis %d.%d.%d\nMariaDB Connector/C %s\n", RRM_VERSION,
               HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH, mysql_get_client_info());
        return 0;
    }
    enum log_level level = LOG_INFO;
    if (rc < 0) {
        fprintf(stderr, "rrm-archiver: %s\n", err);
        return 2;
    }
    enum arch_ssl_mode ssl_mode = ARCH_SSL_OFF;
    if (validate(&cfg, &level) || validate_ssl(&cfg, &ssl_mode))
        return 2;

    struct logger lg = {.program = "rrm-archiver", .node = cfg.consumer, .min = level};
    install_signals();
    if (mysql_library_init(0, NULL, NULL)) {
        log_msg(&lg, LOG_ERROR, "cannot initialise the MySQL client library");
        return 1;
    }

    struct arch_consumer_config ccfg = {
        .host = cfg.redis_host,
        .password = cfg.redis_password,
        .group = cfg.group,
        .name = cfg.consumer,
        .port = (int)cfg.redis_port,
        .cluster = (int)cfg.redis_cluster,
        .nodes = cfg.redis_nodes,
        .shards = (unsigned)cfg.event_shards,
        .batch = cfg.batch_size,
        .block_ms = cfg.flush_ms,
        .claim_idle_ms = cfg.claim_idle_ms,
        .dead_maxlen = cfg.dead_letter_maxlen,
        .timeout_ms = 5000,
    };
    struct arch_db_config dcfg = {
        .host = cfg.mysql_host,
        .user = cfg.mysql_user,
        .password = cfg.mysql_password,
        .database = cfg.mysql_database,
        .ssl_mode = ssl_mode,
        .ssl_ca = cfg.mysql_ssl_ca,
        .ssl_cert = cfg.mysql_ssl_cert,
        .ssl_key = cfg.mysql_ssl_key,
        .port = (int)cfg.mysql_port,
        .pool_size = (int)cfg.mysql_pool_size,
        .connect_timeout_s = 5,
        .io_timeout_s = (int)cfg.mysql_timeout_s,
        .max_stmt_cap = 64u << 20,
    };
    struct arch_pipeline_config pcfg = {
        .writers = (int)cfg.writers,
        .claim_idle_ms = cfg.claim_idle_ms,
        .retry_base_ms = 100,
        .retry_max_ms = cfg.retry_max_ms,
        .drain_timeout_ms = cfg.drain_timeout_ms,
    };
    /* A main loop that blocks on Redis for at most a few command timeouts and sleeps for at most
     * one backoff step turns well within this. */
    struct arch_monitor_config mcfg = {
        .shards = (int)cfg.event_shards,
        .pool_size = (int)cfg.mysql_pool_size,
        .stall_ms = 30000 + cfg.retry_max_ms,
    };
    struct arch_consumer *c = arch_consumer_create(&ccfg, &lg);
    struct arch_writer *w = arch_writer_create(&dcfg, &lg);
    struct arch_pipeline *p =
        c && w ? arch_pipeline_create(&pcfg, c, w, &lg, &stop_requested) : NULL;
    struct arch_monitor *m = p ? arch_monitor_create(&mcfg, p, w) : NULL;
    struct arch_httpd *httpd = NULL;
    rc = 1;
    if (!m) {
        log_msg(&lg, LOG_ERROR, "out of memory");
    } else if (cfg.metrics_port &&
               !(httpd = arch_httpd_start(cfg.metrics_bind, (int)cfg.metrics_port,
                                          &arch_monitor_http_ops, m, &lg, err, sizeof(err)))) {
        log_json(&lg, LOG_ERROR, "cannot serve /metrics (RRM_METRICS_PORT)",
                 json_pack("{s:s}", "error", err));
    } else {
        if (httpd)
            log_json(&lg, LOG_INFO, "serving /metrics and /healthz",
                     json_pack("{s:s, s:i}", "bind", cfg.metrics_bind[0] ? cfg.metrics_bind : "*",
                               "port", (int)cfg.metrics_port));
        rc = run(&cfg, &lg, c, w, p, m);
    }
    if (rc == 0)
        log_msg(&lg, LOG_INFO, "stopped");
    arch_httpd_stop(httpd);
    arch_monitor_destroy(m);
    arch_pipeline_destroy(p);
    arch_writer_destroy(w);
    arch_consumer_destroy(c);
    mysql_library_end();
    return rc;
}
