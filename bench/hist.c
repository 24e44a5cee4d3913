/* Log-linear latency histogram (see hist.h). */
#include "hist.h"

#include <string.h>

void hist_init(struct hist *h) {
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v) {
    if (v < HIST_LINEAR)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* 6 .. 63 */
    if (e >= HIST_MAX_EXP)
        return HIST_BUCKETS - 1;
    unsigned sub = (unsigned)(v >> (e - 5)) & (HIST_SUB - 1);
    return HIST_LINEAR + (e - 6) * HIST_SUB + sub;
}

/* The largest value that falls into bucket i. */
static uint64_t bucket_high(unsigned i) {
    if (i < HIST_LINEAR)
        return i;
    unsigned e = 6 + (i - HIST_LINEAR) / HIST_SUB, sub = (i - HIST_LINEAR) % HIST_SUB;
    uint64_t low = (1ull << e) + ((uint64_t)sub << (e - 5));
    return low + (1ull << (e - 5)) - 1;
}

void hist_record(struct hist *h, uint64_t us) {
    h->b[bucket_of(us)]++;
    h->count++;
    h->sum += us;
    if (us < h->min)
        h->min = us;
    if (us > h->max)
        h->max = us;
}

void hist_merge(struct hist *dst, const struct hist *src) {
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_percentile(const struct hist *h, double q) {
    if (h->count == 0)
        return 0;
    if (q >= 1.0)
        return h->max;
    /* nearest rank: the ceil(q * count)-th smallest value */
    double x = q > 0 ? q * (double)h->count : 0;
    uint64_t rank = (uint64_t)x;
    if ((double)rank < x)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = bucket_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h) {
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
