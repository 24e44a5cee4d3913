/* Retry delays: capped exponential backoff with jitter, for every reconnect and retry loop (the
 * frontend's Redis links, the archiver's Redis and MySQL retries). Pure: the caller owns the
 * struct, there is no clock, and the randomness comes from a seeded generator or from a function
 * the caller supplies, so the policy is testable without servers or luck. */
#ifndef RRM_BACKOFF_H
#define RRM_BACKOFF_H

#include <stdint.h>

/* Returns random bits for one delay; arg is the one given to backoff_set_random. */
typedef uint64_t backoff_random_fn(void *arg);

struct backoff {
    int64_t base_ms; /* ceiling of the first delay */
    int64_t cap_ms;  /* no delay is ever longer than this */
    unsigned attempt;
    backoff_random_fn *random; /* NULL: the built-in xorshift on rng */
    void *random_arg;
    uint64_t rng; /* xorshift state, never 0 */
};

/* base_ms >= 1, cap_ms >= base_ms (others are clamped); seed may be anything (0 is replaced). */
void backoff_init(struct backoff *b, int64_t base_ms, int64_t cap_ms, uint64_t seed);

/* Draws the jitter from fn(arg) instead of the seeded generator; fn NULL restores it. */
void backoff_set_random(struct backoff *b, backoff_random_fn *fn, void *arg);

/* Ceiling of the delay before retry number `attempt` (0-based): min(cap, base * 2^attempt). */
int64_t backoff_ceiling(const struct backoff *b, unsigned attempt);

/* Delay before the next retry, then counts the attempt. "Equal jitter": uniformly in
 * [ceiling/2, ceiling], so retries of many processes spread out yet the wait still grows. */
int64_t backoff_next(struct backoff *b);

/* After a success: the next failure starts again from base_ms. */
void backoff_reset(struct backoff *b);

#endif
