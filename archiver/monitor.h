/* What the archiver shows operators on its metrics port: GET /metrics (Prometheus text 0.0.4:
 * the pipeline's counters, the batch duration histogram, stream length, lag and pending entries
 * per shard, the MySQL pool, the health of both links, the HTTP answers, process_* and
 * rrm_build_info) and GET /healthz (200 while Redis and MySQL answer and the main loop turns, else
 * 503, with a JSON body giving the reasons). It owns the last per-shard lag the main loop published
 * and reads everything else from the pipeline and the writer, which guard their own state: the
 * listener's thread renders the pages without ever waiting for the archiving loop. */
#ifndef ARCH_MONITOR_H
#define ARCH_MONITOR_H

#include "consumer.h"
#include "httpd.h"
#include "pipeline.h"
#include "writer.h"

#include <stdint.h>

struct arch_monitor_config {
    int shards;       /* RRM_EVENT_SHARDS */
    int pool_size;    /* RRM_MYSQL_POOL_SIZE */
    int64_t stall_ms; /* /healthz fails when the main loop has not turned for this long */
};

struct arch_monitor;

/* pipeline and writer are borrowed and must outlive the monitor. Returns NULL when out of memory.
 */
struct arch_monitor *arch_monitor_create(const struct arch_monitor_config *cfg,
                                         struct arch_pipeline *pipeline,
                                         struct arch_writer *writer);
void arch_monitor_destroy(struct arch_monitor *m);

/* Publishes the state of every stream (arch_consumer_lag) for /metrics. */
void arch_monitor_set_lag(struct arch_monitor *m, const struct arch_stream_lag *streams, int n);

/* The listener's callbacks (ctx: the monitor): /metrics, /healthz, 404 for anything else. */
extern const struct arch_httpd_ops arch_monitor_http_ops;

#endif
