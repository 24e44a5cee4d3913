/* Writers of the Prometheus text exposition format (version 0.0.4) that both programs' /metrics
 * use: a family's HELP and TYPE lines, one-sample families and histograms in seconds. They write
 * to a sink the caller supplies (prom_out), so each program keeps its own buffer; prom_buf is a
 * plain growing buffer for callers that have none. */
#ifndef RRM_PROMTEXT_H
#define RRM_PROMTEXT_H

#include <stddef.h>
#include <stdint.h>

/* Where text goes: write(ctx, text, len) appends len bytes (not NUL-terminated). */
struct prom_out {
    void (*write)(void *ctx, const char *text, size_t len);
    void *ctx;
};

/* Appends printf-formatted text. */
void prom_printf(const struct prom_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The "# HELP" and "# TYPE" lines of a family (type: counter, gauge, histogram). */
void prom_family(const struct prom_out *o, const char *name, const char *type, const char *help);

/* A family of one sample without labels. */
void prom_metric(const struct prom_out *o, const char *name, const char *type, const char *help,
                 uint64_t v);

/* A histogram of n bounds (microseconds, ascending) and n + 1 buckets (buckets[n]: above the last
 * bound), not cumulative, with the sum of the observations in microseconds; written in seconds
 * with cumulative _bucket series, _sum and _count. */
void prom_histogram(const struct prom_out *o, const char *name, const char *help,
                    const int64_t *bounds_us, int n, const uint64_t *buckets, uint64_t sum_us);

/* Index of the bucket of a histogram of n bounds (microseconds, ascending) that takes value_us. */
int prom_bucket(const int64_t *bounds_us, int n, int64_t value_us);

/* A growing NUL-terminated buffer. Out of memory, text is dropped and `failed` is set. */
struct prom_buf {
    char *text;
    size_t len, cap;
    int failed;
};

/* A sink appending to b (which starts zeroed). */
struct prom_out prom_buf_out(struct prom_buf *b);

/* Frees b's text and zeroes it. */
void prom_buf_free(struct prom_buf *b);

#endif
