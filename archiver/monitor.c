/* /metrics and /healthz of the archiver (see monitor.h). */
#include "monitor.h"

#include "procstat.h"
#include "promtext.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <mysql.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arch_monitor {
    struct arch_monitor_config cfg;
    struct arch_pipeline *pipeline;
    struct arch_writer *writer;
    pthread_mutex_t lock;            /* guards the published lag */
    struct arch_stream_lag *streams; /* cfg.shards + 1 */
    int nstreams;
};

struct arch_monitor *arch_monitor_create(const struct arch_monitor_config *cfg,
                                         struct arch_pipeline *pipeline,
                                         struct arch_writer *writer) {
    struct arch_monitor *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->cfg = *cfg;
    m->pipeline = pipeline;
    m->writer = writer;
    m->streams = calloc((size_t)cfg->shards + 1, sizeof(*m->streams));
    if (!m->streams) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void arch_monitor_destroy(struct arch_monitor *m) {
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m->streams);
    free(m);
}

void arch_monitor_set_lag(struct arch_monitor *m, const struct arch_stream_lag *streams, int n) {
    if (n > m->cfg.shards + 1)
        n = m->cfg.shards + 1;
    pthread_mutex_lock(&m->lock);
    memcpy(m->streams, streams, (size_t)n * sizeof(*streams));
    m->nstreams = n;
    pthread_mutex_unlock(&m->lock);
}

static void shard_label(const struct arch_stream_lag *s, char *buf, size_t cap) {
    if (s->shard < 0)
        snprintf(buf, cap, "legacy");
    else
        snprintf(buf, cap, "%d", s->shard);
}

/* One gauge family with a sample per stream; field picks the value (a negative lag: unknown). */
static void per_stream(const struct prom_out *o, const char *name, const char *help,
                       const struct arch_stream_lag *streams, int n, int field) {
    prom_family(o, name, "gauge", help);
    for (int i = 0; i < n; i++) {
        char shard[16];
        shard_label(&streams[i], shard, sizeof(shard));
        long long v = field == 0   ? streams[i].length
                      : field == 1 ? streams[i].lag
                                   : streams[i].pending;
        if (v < 0)
            prom_printf(o, "%s{shard=\"%s\"} NaN\n", name, shard);
        else
            prom_printf(o, "%s{shard=\"%s\"} %lld\n", name, shard, v);
    }
}

static void write_metrics(struct arch_monitor *m, struct arch_httpd *h, const struct prom_out *o) {
    struct arch_stats st;
    struct arch_pipeline_health ph;
    arch_pipeline_totals(m->pipeline, &st);
    arch_pipeline_health(m->pipeline, &ph);
    char err[256];
    int mysql_ok = arch_writer_health(m->writer, err, sizeof(err));
    int open, in_use;
    arch_writer_pool(m->writer, &open, &in_use);

    prom_family(
        o, "rrm_archiver_rows_total", "counter",
        "Rows written to MySQL (committed), by table; an upsert of an existing row counts.");
    for (int t = 0; t < ARCH_TABLE_COUNT; t++)
        prom_printf(o, "rrm_archiver_rows_total{table=\"%s\"} %" PRIu64 "\n",
                    arch_table_name((enum arch_table)t), st.rows[t]);
    prom_metric(o, "rrm_archiver_events_total", "counter",
                "Stream entries settled: committed to MySQL or dead-lettered, then acknowledged.",
                st.events);
    prom_metric(o, "rrm_archiver_batches_total", "counter", "Batches committed and acknowledged.",
                st.batches);
    prom_histogram(o, "rrm_archiver_batch_duration_seconds",
                   "Time from a batch being read to its acknowledgement (decoding, the MySQL "
                   "transaction with its retries, dead letters, XACK).",
                   arch_batch_bounds_us, ARCH_BATCH_BOUNDS, st.batch_buckets,
                   (uint64_t)st.batch_us_sum);
    prom_metric(o, "rrm_archiver_batches_in_flight", "gauge",
                "Batches read and not yet acknowledged (at most RRM_WRITERS).",
                (uint64_t)ph.in_flight);
    prom_metric(o, "rrm_archiver_retries_total", "counter",
                "Failed Redis commands and MySQL transactions, each retried after a backoff.",
                st.retries);
    prom_metric(o, "rrm_archiver_dead_letters_total", "counter",
                "Entries that can never be written, moved to rrm:events:dead.", st.dead_letters);
    prom_metric(o, "rrm_archiver_lost_total", "counter",
                "Pending entries trimmed from their stream before they were archived.", st.lost);
    prom_metric(o, "rrm_archiver_reclaimed_total", "counter",
                "Entries claimed from consumers that held them longer than RRM_CLAIM_IDLE_MS.",
                st.reclaimed);
    prom_metric(o, "rrm_archiver_taken_over_total", "counter",
                "Entries taken over from consumers whose alive mark expired.", st.taken_over);
    prom_metric(o, "rrm_archiver_lag_warnings_total", "counter",
                "Lag checks that found a stream's backlog past half of its cap.", st.lag_warnings);

    pthread_mutex_lock(&m->lock);
    per_stream(o, "rrm_archiver_stream_entries",
               "Entries in the stream rrm:events:{shard} (shard=\"legacy\": rrm:events), "
               "updated every 10 s.",
               m->streams, m->nstreams, 0);
    per_stream(o, "rrm_archiver_stream_lag",
               "Entries of the stream not yet read by the group (XINFO GROUPS lag; NaN when "
               "Redis cannot tell), updated every 10 s.",
               m->streams, m->nstreams, 1);
    per_stream(o, "rrm_archiver_pending",
               "Entries of the stream read by the group and not yet acknowledged, updated "
               "every 10 s.",
               m->streams, m->nstreams, 2);
    pthread_mutex_unlock(&m->lock);

    prom_metric(o, "rrm_archiver_mysql_pool_size", "gauge",
                "MySQL connections the pool may open (RRM_MYSQL_POOL_SIZE).",
                (uint64_t)m->cfg.pool_size);
    prom_metric(o, "rrm_archiver_mysql_connections_open", "gauge",
                "MySQL connections open in the pool.", (uint64_t)open);
    prom_metric(o, "rrm_archiver_mysql_connections_in_use", "gauge",
                "MySQL connections of the pool busy with a transaction or a check.",
                (uint64_t)in_use);
    prom_metric(o, "rrm_archiver_redis_up", "gauge",
                "1 when the last Redis command of the archiving loop succeeded.",
                (uint64_t)ph.redis_ok);
    prom_metric(o, "rrm_archiver_mysql_up", "gauge",
                "1 when MySQL answered the last connection, transaction or check.",
                (uint64_t)mysql_ok);
    arch_httpd_write_metrics(h, o);
    char proc[2048];
    size_t plen = procstat_self_metrics(proc, sizeof(proc));
    o->write(o->ctx, proc, plen);
    prom_printf(o,
                "# HELP rrm_build_info The build: version (git describe of its source), and the "
                "hiredis and MySQL client library it runs with.\n# TYPE rrm_build_info gauge\n"
                "rrm_build_info{version=\"%s\",hiredis=\"%d.%d.%d\",mysqlclient=\"%s\"} 1\n",
                RRM_VERSION, HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH, mysql_get_client_info());
}

/* Appends the /healthz body; returns 200 or 503. */
static int write_health(struct arch_monitor *m, const struct prom_out *o) {
    struct arch_pipeline_health ph;
    arch_pipeline_health(m->pipeline, &ph);
    char mysql_err[256];
    int mysql_ok = arch_writer_health(m->writer, mysql_err, sizeof(mysql_err));
    int64_t age = util_mono_ms() - ph.progress_ms;
    json_t *reasons = json_array();
    if (!ph.redis_ok)
        json_array_append_new(reasons, json_sprintf("redis: %s", ph.redis_error));
    if (!mysql_ok)
        json_array_append_new(reasons, json_sprintf("mysql: %s", mysql_err));
    if (age > m->cfg.stall_ms)
        json_array_append_new(reasons,
                              json_sprintf("loop: no progress for %lld ms", (long long)age));
    int healthy = json_array_size(reasons) == 0;
    json_t *body =
        json_pack("{s:s, s:b, s:b, s:I, s:i, s:o}", "status", healthy ? "ok" : "failing", "redis",
                  ph.redis_ok, "mysql", mysql_ok, "loop_age_ms", (json_int_t)age,
                  "batches_in_flight", ph.in_flight, "reasons", reasons);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return 500;
    prom_printf(o, "%s\n", text);
    free(text);
    return healthy ? 200 : 503;
}

static int monitor_get(void *ctx, struct arch_httpd *h, const char *path, struct prom_buf *body,
                       const char **content_type) {
    struct arch_monitor *m = ctx;
    struct prom_out o = prom_buf_out(body);
    if (strcmp(path, "/metrics") == 0) {
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        write_metrics(m, h, &o);
        return 200;
    }
    if (strcmp(path, "/healthz") == 0) {
        *content_type = "application/json";
        return write_health(m, &o);
    }
    prom_printf(&o, "not found: /metrics and /healthz only\n");
    return 404;
}

const struct arch_httpd_ops arch_monitor_http_ops = {.get = monitor_get};
