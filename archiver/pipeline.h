/* One batch's way from stream entries to acknowledged rows, with several batches in flight at once.
 *
 * The main thread (the only one that talks to Redis) submits batches it has read; writer threads
 * decode and check the entries, write the good ones in one MySQL transaction on a pooled
 * connection, isolate rows MySQL rejects (by bisection) and retry anything transient with backoff.
 * Back on the main thread, a finished batch is settled: unwritable entries go to the dead-letter
 * stream and everything else is acknowledged, only after COMMIT. Batches may commit in any order;
 * the SQL is built so that the result does not depend on it (batch.h). The pipeline also owns the
 * counters of the status record and of /metrics, and what /healthz says of the main loop. While
 * idle, writer threads check MySQL every few seconds (arch_writer_check), so that an outage shows
 * before the next batch. */
#ifndef ARCH_PIPELINE_H
#define ARCH_PIPELINE_H

#include "batch.h"
#include "consumer.h"
#include "log.h"
#include "writer.h"

#include <signal.h>
#include <stdint.h>

struct arch_pipeline_config {
    int writers;           /* batches written concurrently, each on its own connection */
    long claim_idle_ms;    /* peers reclaim entries idle this long; waiting batches are touched */
    long retry_base_ms;    /* first backoff delay */
    long retry_max_ms;     /* backoff cap */
    long drain_timeout_ms; /* after a stop request, how long a batch in flight may still retry */
};

/* Upper bounds (microseconds) of the buckets of the batch duration histogram (from submission to
 * acknowledgement); one more bucket takes everything above the last. */
#define ARCH_BATCH_BOUNDS 12
extern const int64_t arch_batch_bounds_us[ARCH_BATCH_BOUNDS];

/* Counters: since the start (arch_pipeline_totals) or since the last status record
 * (arch_pipeline_take_stats). */
struct arch_stats {
    uint64_t events, batches, retries, dead_letters, lost, reclaimed, lag_warnings;
    uint64_t takeovers, taken_over, consumers_removed;
    uint64_t rows[ARCH_TABLE_COUNT];
    uint64_t batch_buckets[ARCH_BATCH_BOUNDS + 1]; /* not cumulative */
    int64_t batch_us_sum;
    int64_t batch_us_max; /* always since the last status record */
};

/* What /healthz reports of the main loop. */
struct arch_pipeline_health {
    int redis_ok;          /* the last Redis command of the main loop succeeded */
    char redis_error[256]; /* the last failure, while !redis_ok */
    int64_t progress_ms;   /* util_mono_ms() of the main loop's last turn */
    int in_flight;         /* batches submitted and not yet settled */
};

struct arch_pipeline;

/* Starts the writer threads. consumer, writer, lg and stop are borrowed and must outlive the
 * pipeline. Returns NULL on failure. */
struct arch_pipeline *arch_pipeline_create(const struct arch_pipeline_config *cfg,
                                           struct arch_consumer *consumer,
                                           struct arch_writer *writer, const struct logger *lg,
                                           volatile sig_atomic_t *stop);

/* Waits for the batches in flight (see arch_pipeline_drain), stops the threads and frees. */
void arch_pipeline_destroy(struct arch_pipeline *p);

/* 1 if a writer is free to take another batch. */
int arch_pipeline_can_submit(struct arch_pipeline *p);

/* Batches submitted and not yet settled. */
int arch_pipeline_in_flight(struct arch_pipeline *p);

/* Hands a batch to the writers; takes ownership of its contents (batch is emptied). Only call when
 * arch_pipeline_can_submit. Returns 0, or -1 when out of memory (the batch is freed; its entries
 * stay pending and are delivered again). */
int arch_pipeline_submit(struct arch_pipeline *p, struct arch_entries *batch);

/* Settles every batch the writers have finished (dead letters, acknowledgements), waiting up to
 * wait_ms for one to finish if none has. Redis failures are retried with backoff. Also keeps
 * long-waiting batches from being reclaimed by peers. Returns the number settled. */
int arch_pipeline_settle(struct arch_pipeline *p, int wait_ms);

/* After a stop request: waits until every batch in flight is settled or, past the drain timeout,
 * given up (its entries stay pending and are delivered again later). */
void arch_pipeline_drain(struct arch_pipeline *p);

/* Sleeps for the next delay of the Redis backoff, waking early on a stop request; `what` failed
 * (logged with the consumer's error). Returns -1 if the caller should give up (stopping). */
int arch_pipeline_redis_wait(struct arch_pipeline *p, const char *what);

/* Redis answered again: the next failure starts from the shortest delay. Also marks the main
 * loop's Redis link healthy (arch_pipeline_redis_wait marks it failing). */
void arch_pipeline_redis_ok(struct arch_pipeline *p);

/* Sleeps ms, returning early (-1) when a stop is requested. */
int arch_pipeline_sleep(struct arch_pipeline *p, int64_t ms);

/* Adds counters the main loop produces (reclaimed, lost, lag warnings). */
void arch_pipeline_count(struct arch_pipeline *p, uint64_t reclaimed, uint64_t lost,
                         uint64_t lag_warnings);

/* Adds what a takeover scan did: claims from dead consumers, entries claimed, dead consumers
 * removed. */
void arch_pipeline_count_takeover(struct arch_pipeline *p, uint64_t takeovers, uint64_t entries,
                                  uint64_t removed);

/* The counters since the last call (since the start for the first) into out. */
void arch_pipeline_take_stats(struct arch_pipeline *p, struct arch_stats *out);

/* The counters since the start into out; any thread may call it. */
void arch_pipeline_totals(struct arch_pipeline *p, struct arch_stats *out);

/* The main loop's state into out; any thread may call it. */
void arch_pipeline_health(struct arch_pipeline *p, struct arch_pipeline_health *out);

#endif
