/* When to tell the operator that a dependency (Redis) is unreachable: once it has been so for a
 * grace period, then at most once per interval while it stays so, and once when it is back.
 * Pure logic: the caller says whether the dependency is up and what time it is. */
#ifndef RRM_OUTAGE_H
#define RRM_OUTAGE_H

#include <stdint.h>

enum outage_report {
    OUTAGE_NONE,       /* nothing to say */
    OUTAGE_DOWN,       /* unreachable for grace_ms: the first warning of this outage */
    OUTAGE_STILL_DOWN, /* still unreachable, interval_ms after the previous warning */
    OUTAGE_BACK,       /* reachable again after an outage that was reported */
};

struct outage {
    int64_t grace_ms, interval_ms;
    int64_t down_since_ms; /* -1 while up */
    int64_t last_report_ms;
    int reported; /* OUTAGE_DOWN was returned for the current outage */
};

/* Starts in the unreachable state at now_ms (nothing is connected yet at start): a dependency not
 * up within grace_ms of the start is reported like one that went away. */
void outage_init(struct outage *o, int64_t now_ms, int64_t grace_ms, int64_t interval_ms);

/* Feeds the current state; returns what to report now (at most one report per call) and, with
 * any report, how long the outage has lasted (for OUTAGE_BACK: how long it lasted) in
 * *duration_ms. */
enum outage_report outage_update(struct outage *o, int up, int64_t now_ms, int64_t *duration_ms);

#endif
