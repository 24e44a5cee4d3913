/* Human and JSON reports (see report.h). */
#include "report.h"

#include <inttypes.h>
#include <jansson.h>
#include <string.h>

static int matches(const char *comm, const char *want) {
    return !want || strcmp(comm, want) == 0;
}

double report_cpu_per_delivery(const struct bench_opts *o, const struct stage_result *st,
                               const char *comm) {
    if (!st->proc_ok || st->delivered == 0)
        return 0;
    uint64_t us = 0;
    for (int i = 0; i < o->npids; i++)
        if (matches(st->proc_end[i].comm, comm))
            us += st->proc_end[i].cpu_us - st->proc_start[i].cpu_us;
    return (double)us / (double)st->delivered;
}

double report_rss_per_conn(const struct bench_opts *o, const struct run_result *r,
                           const char *comm) {
    if (!r->proc_ok || r->connected == 0)
        return 0;
    double kib = 0;
    for (int i = 0; i < o->npids; i++)
        if (matches(r->proc_ready[i].comm, comm))
            kib += (double)r->proc_ready[i].rss_kib - (double)r->proc_before[i].rss_kib;
    return kib / (double)r->connected;
}

/* The distinct process names among --pids, in order of first appearance. */
static int names(const struct bench_opts *o, const struct procstat *ps, const char **out) {
    int n = 0;
    for (int i = 0; i < o->npids; i++) {
        int seen = 0;
        for (int j = 0; j < n; j++)
            seen |= strcmp(out[j], ps[i].comm) == 0;
        if (!seen)
            out[n++] = ps[i].comm;
    }
    return n;
}

static double ms(uint64_t us) {
    return (double)us / 1000.0;
}

void report_table(FILE *out, const struct bench_opts *o, const struct run_result *r) {
    fprintf(out, "rrm-bench: %ld clients in %ld rooms over %d frontend%s, %ld-byte %s messages\n",
            o->clients, o->rooms, o->nurls, o->nurls > 1 ? "s" : "", o->size,
            o->binary ? "binary" : "text");
    fprintf(out, "connected %ld/%ld in %.1f s; connect failures %ld; disconnected later %ld\n",
            r->connected, r->clients, r->connect_seconds, r->connect_failed, r->disconnects);
    if (r->first_error[0])
        fprintf(out, "first connection error: %s\n", r->first_error);
    const char *nm[ARGS_MAX_PIDS];
    int nn = r->proc_ok ? names(o, r->proc_ready, nm) : 0;
    if (nn) {
        fprintf(out, "RSS per connection (all ready vs before connecting):");
        for (int i = 0; i < nn; i++)
            fprintf(out, "  %s %.2f KiB", nm[i], report_rss_per_conn(o, r, nm[i]));
        fprintf(out, "\n");
    }
    if (r->nstages) {
        fprintf(out, "\n%7s %10s %11s %9s %10s %6s %5s %5s %7s %7s %7s %8s %8s %9s  %s\n",
                "rate/cl", "offered/s", "delivered/s", "sent", "delivered", "lost", "dup", "order",
                "p50 ms", "p90 ms", "p99 ms", "p999 ms", "max ms", "cpu us/d", "result");
    }
    for (int k = 0; k < r->nstages; k++) {
        const struct stage_result *st = &r->stages[k];
        double secs = st->seconds > 0 ? st->seconds : 1;
        char cpu[16] = "-";
        if (o->npids && st->proc_ok)
            snprintf(cpu, sizeof(cpu), "%.2f", report_cpu_per_delivery(o, st, NULL));
        fprintf(out,
                "%7.1f %10.0f %11.0f %9" PRIu64 " %10" PRIu64 " %6" PRIu64 " %5" PRIu64 " %5" PRIu64
                " %7.2f %7.2f %7.2f %8.2f %8.2f %9s  %s%s\n",
                st->rate, (double)st->expected / secs, (double)st->delivered / secs, st->sent,
                st->delivered, st->lost, st->dups, st->reordered,
                ms(hist_percentile(&st->lat, 0.50)), ms(hist_percentile(&st->lat, 0.90)),
                ms(hist_percentile(&st->lat, 0.99)), ms(hist_percentile(&st->lat, 0.999)),
                ms(st->lat.max), cpu, st->failed ? "FAIL: " : "ok", st->why);
    }
    for (int k = 0; k < r->nstages; k++) {
        const struct stage_result *st = &r->stages[k];
        int n = st->proc_ok ? names(o, st->proc_end, nm) : 0;
        if (!n || !st->delivered)
            continue;
        fprintf(out, "stage %d (%.1f/s per client): server CPU per delivery", k + 1, st->rate);
        for (int i = 0; i < n; i++)
            fprintf(out, "  %s %.2f us", nm[i], report_cpu_per_delivery(o, st, nm[i]));
        fprintf(out, "; bench send lag max %.1f ms\n", ms(st->max_lag_us));
    }
    if (r->ncodes) {
        fprintf(out, "server error frames and close codes:");
        for (int i = 0; i < r->ncodes; i++)
            fprintf(out, "  %s=%" PRIu64, r->codes[i].code, r->codes[i].n);
        fprintf(out, "\n");
    }
    if (r->proc_ok && o->npids) {
        const struct procstat *last =
            r->nstages ? r->stages[r->nstages - 1].proc_end : r->proc_ready;
        fprintf(out, "\n%-16s %8s %14s %14s %14s\n", "process", "pid", "RSS before KiB",
                "RSS ready KiB", "RSS end KiB");
        for (int i = 0; i < o->npids; i++)
            fprintf(out, "%-16s %8ld %14" PRIu64 " %14" PRIu64 " %14" PRIu64 "\n",
                    r->proc_before[i].comm, (long)o->pids[i], r->proc_before[i].rss_kib,
                    r->proc_ready[i].rss_kib, last[i].rss_kib);
    }
    if (r->interrupted)
        fprintf(out, "interrupted: the last stage is incomplete\n");
}

static json_t *procs_json(const struct bench_opts *o, const struct procstat *ps) {
    json_t *a = json_array();
    for (int i = 0; i < o->npids; i++)
        json_array_append_new(a, json_pack("{s:I, s:s, s:I, s:I}", "pid", (json_int_t)o->pids[i],
                                           "name", ps[i].comm, "cpu_us", (json_int_t)ps[i].cpu_us,
                                           "rss_kib", (json_int_t)ps[i].rss_kib));
    return a;
}

int report_json(FILE *out, const struct bench_opts *o, const struct run_result *r) {
    json_t *urls = json_array(), *stages = json_array(), *codes = json_object();
    for (int i = 0; i < o->nurls; i++)
        json_array_append_new(
            urls, json_sprintf("ws://%s:%d%s", o->urls[i].host, o->urls[i].port, o->urls[i].path));
    for (int i = 0; i < r->ncodes; i++)
        json_object_set_new(codes, r->codes[i].code, json_integer((json_int_t)r->codes[i].n));
    for (int k = 0; k < r->nstages; k++) {
        const struct stage_result *st = &r->stages[k];
        const struct hist *h = &st->lat;
        double secs = st->seconds > 0 ? st->seconds : 1;
        json_t *s = json_pack(
            "{s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f,"
            " s:{s:f, s:f, s:f, s:f, s:f, s:f}, s:f, s:b, s:s}",
            "rate_per_client", st->rate, "seconds", st->seconds, "sent", (json_int_t)st->sent,
            "expected", (json_int_t)st->expected, "delivered", (json_int_t)st->delivered, "lost",
            (json_int_t)st->lost, "duplicates", (json_int_t)st->dups, "reordered",
            (json_int_t)st->reordered, "late", (json_int_t)st->late, "errors",
            (json_int_t)st->errors, "disconnects", (json_int_t)st->disconnects, "offered_per_s",
            (double)st->expected / secs, "delivered_per_s", (double)st->delivered / secs,
            "latency_ms", "p50", ms(hist_percentile(h, 0.5)), "p90", ms(hist_percentile(h, 0.9)),
            "p99", ms(hist_percentile(h, 0.99)), "p999", ms(hist_percentile(h, 0.999)), "max",
            ms(h->max), "mean", hist_mean(h) / 1000.0, "bench_send_lag_max_ms", ms(st->max_lag_us),
            "ok", !st->failed, "why", st->why);
        if (o->npids && st->proc_ok) {
            json_object_set_new(s, "server_cpu_us_per_delivery",
                                json_real(report_cpu_per_delivery(o, st, NULL)));
            json_object_set_new(s, "processes_start", procs_json(o, st->proc_start));
            json_object_set_new(s, "processes_end", procs_json(o, st->proc_end));
        }
        json_array_append_new(stages, s);
    }
    json_t *doc = json_pack(
        "{s:{s:o, s:I, s:I, s:I, s:b, s:f}, s:I, s:I, s:I, s:f, s:s, s:o, s:o, s:b}", "config",
        "urls", urls, "clients", (json_int_t)o->clients, "rooms", (json_int_t)o->rooms, "size",
        (json_int_t)o->size, "binary", o->binary, "duration_s", o->duration_s, "connected",
        (json_int_t)r->connected, "connect_failed", (json_int_t)r->connect_failed, "disconnects",
        (json_int_t)r->disconnects, "connect_seconds", r->connect_seconds, "first_error",
        r->first_error, "stages", stages, "errors", codes, "interrupted", r->interrupted);
    if (!doc)
        return -1;
    if (o->npids && r->proc_ok) {
        json_object_set_new(doc, "processes_before", procs_json(o, r->proc_before));
        json_object_set_new(doc, "processes_ready", procs_json(o, r->proc_ready));
        json_object_set_new(doc, "rss_kib_per_connection",
                            json_real(report_rss_per_conn(o, r, NULL)));
    }
    int rc = json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(doc);
    return rc;
}
