/* A latency histogram: log-linear buckets over microseconds (exact below 64 us, then 32 buckets
 * per power of two, so a percentile is within about 3% of the true value), fixed size, no
 * allocation. Recording is O(1); percentiles walk the buckets. */
#ifndef RRM_BENCH_HIST_H
#define RRM_BENCH_HIST_H

#include <stdint.h>

#define HIST_LINEAR 64
#define HIST_SUB 32
#define HIST_MAX_EXP 40 /* values up to 2^40 us (12 days) */
#define HIST_BUCKETS (HIST_LINEAR + (HIST_MAX_EXP - 6) * HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min, max;
    uint64_t b[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t us);
/* Adds every value of src into dst. */
void hist_merge(struct hist *dst, const struct hist *src);
/* The smallest recorded-bucket bound below which a fraction q (0..1) of the values lie; the
 * exact maximum for q >= 1; 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double q);
double hist_mean(const struct hist *h);

#endif
