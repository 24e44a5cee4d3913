/* Retry policy for the archiver: capped exponential backoff with jitter. Pure and deterministic for
 * a given seed, so the policy is testable without clocks or servers. The caller owns the struct. */
#ifndef ARCH_BACKOFF_H
#define ARCH_BACKOFF_H

#include <stdint.h>

struct arch_backoff {
    int64_t base_ms; /* ceiling of the first delay */
    int64_t cap_ms;  /* no delay is ever longer than this */
    unsigned attempt;
    uint64_t rng; /* xorshift state, never 0 */
};

/* base_ms >= 1, cap_ms >= base_ms; seed may be anything (0 is replaced). */
void arch_backoff_init(struct arch_backoff *b, int64_t base_ms, int64_t cap_ms, uint64_t seed);

/* Ceiling of the delay before retry number `attempt` (0-based): min(cap, base * 2^attempt). */
int64_t arch_backoff_ceiling(const struct arch_backoff *b, unsigned attempt);

/* Delay before the next retry, then counts the attempt. "Equal jitter": uniformly in
 * [ceiling/2, ceiling], so retries of many archivers spread out yet the wait still grows. */
int64_t arch_backoff_next(struct arch_backoff *b);

/* After a success: the next failure starts again from base_ms. */
void arch_backoff_reset(struct arch_backoff *b);

#endif
