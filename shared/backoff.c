/* Capped, jittered exponential backoff (policy in backoff.h). */
#include "backoff.h"

#include <stddef.h>

void backoff_init(struct backoff *b, int64_t base_ms, int64_t cap_ms, uint64_t seed) {
    b->base_ms = base_ms < 1 ? 1 : base_ms;
    b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
    b->attempt = 0;
    b->random = NULL;
    b->random_arg = NULL;
    b->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

void backoff_set_random(struct backoff *b, backoff_random_fn *fn, void *arg) {
    b->random = fn;
    b->random_arg = arg;
}

int64_t backoff_ceiling(const struct backoff *b, unsigned attempt) {
    int64_t d = b->base_ms;
    /* Doubling stops at the cap, so the shift count never matters past ~62 attempts. */
    for (unsigned i = 0; i < attempt && d < b->cap_ms; i++)
        d *= 2;
    return d > b->cap_ms ? b->cap_ms : d;
}

static uint64_t next_random(struct backoff *b) {
    if (b->random)
        return b->random(b->random_arg);
    uint64_t x = b->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b->rng = x;
    return x;
}

int64_t backoff_next(struct backoff *b) {
    int64_t ceiling = backoff_ceiling(b, b->attempt);
    int64_t half = ceiling / 2;
    int64_t span = ceiling - half; /* [half, ceiling] has span + 1 values */
    int64_t d = half + (int64_t)(next_random(b) % (uint64_t)(span + 1));
    if (b->attempt < 64)
        b->attempt++;
    return d;
}

void backoff_reset(struct backoff *b) {
    b->attempt = 0;
}
