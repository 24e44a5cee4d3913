/* Batches in flight: writer threads for MySQL, settling on the main thread (see pipeline.h).
 *
 * Threading rules: a job's entries are immutable from submission until it is settled and freed,
 * which only the main thread does; a writer thread owns the rest of the job while it writes it.
 * Queues, the list of jobs in flight, the stop bookkeeping and the counters are under `lock`. */
#include "pipeline.h"

#include "backoff.h"
#include "promtext.h"
#include "util.h"

#include <mysql.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How often an idle writer thread pings MySQL (arch_writer_check). */
#define MYSQL_CHECK_MS 2000

const int64_t arch_batch_bounds_us[ARCH_BATCH_BOUNDS] = {5000,    10000,   25000,    50000,
                                                         100000,  250000,  500000,   1000000,
                                                         2500000, 5000000, 10000000, 30000000};

enum job_state { JOB_QUEUED, JOB_WRITING, JOB_DONE, JOB_ABANDONED };

struct job {
    struct job *next; /* in the work queue or the done list */
    struct arch_entries batch;
    enum job_state state;
    struct arch_row *rows; /* decoded entries that go to MySQL */
    size_t *row_entry;     /* rows[i] came from batch.items[row_entry[i]] */
    size_t nrows;
    char **dead_reason; /* per entry; non-NULL means it goes to the dead letters */
    size_t ndead, lost;
    uint64_t rows_written[ARCH_TABLE_COUNT];
    int64_t submitted_us;
    int64_t touched_ms; /* main thread only */
};

struct arch_pipeline {
    struct arch_pipeline_config cfg;
    struct arch_consumer *consumer;
    struct arch_writer *writer;
    const struct logger *lg;
    volatile sig_atomic_t *stop;

    pthread_mutex_t lock;
    pthread_cond_t work_cv, done_cv;
    struct job *queue_head, *queue_tail, *done_head, *done_tail;
    struct job **flight; /* every job not yet settled; cfg.writers slots */
    int nflight;
    int quitting;
    int64_t stop_seen_ms;       /* when the stop request was first noticed, 0 before */
    struct arch_stats stats;    /* since the start */
    struct arch_stats reported; /* stats at the last arch_pipeline_take_stats */
    int redis_ok;
    char redis_error[256];
    int64_t progress_ms;
    int64_t mysql_checked_ms; /* the last idle check of MySQL by a writer thread */

    pthread_t *threads;
    int nthreads;
    struct backoff redis_bo; /* main thread only */
};

static uint64_t random_seed(void) {
    uint64_t seed = 0;
    util_random(&seed, sizeof(seed));
    return seed;
}

/* ---- waiting ---- */

/* 1 once a stop was requested and the drain timeout has passed since. */
static int giving_up(struct arch_pipeline *p) {
    if (!*p->stop)
        return 0;
    int64_t now = util_mono_ms();
    pthread_mutex_lock(&p->lock);
    if (!p->stop_seen_ms)
        p->stop_seen_ms = now;
    int over = now - p->stop_seen_ms >= p->cfg.drain_timeout_ms;
    pthread_mutex_unlock(&p->lock);
    return over;
}

static void nap_ms(int64_t ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int arch_pipeline_sleep(struct arch_pipeline *p, int64_t ms) {
    int64_t until = util_mono_ms() + ms;
    pthread_mutex_lock(&p->lock);
    p->progress_ms = util_mono_ms();
    pthread_mutex_unlock(&p->lock);
    while (!*p->stop) {
        int64_t left = until - util_mono_ms();
        if (left <= 0)
            return 0;
        /* A signal ends the nap early (EINTR) and the loop sees the stop flag. */
        nap_ms(left > 100 ? 100 : left);
    }
    return -1;
}

/* Waits out one backoff step; while a stop is pending, never past the drain deadline.
 * Returns -1 when it is time to give up. */
static int backoff_wait(struct arch_pipeline *p, struct backoff *b) {
    if (giving_up(p))
        return -1;
    int64_t delay = backoff_next(b);
    if (!*p->stop) {
        arch_pipeline_sleep(p, delay);
        return giving_up(p) ? -1 : 0;
    }
    int64_t until = util_mono_ms() + delay;
    while (util_mono_ms() < until && !giving_up(p))
        nap_ms(20);
    return giving_up(p) ? -1 : 0;
}

int arch_pipeline_redis_wait(struct arch_pipeline *p, const char *what) {
    const char *err = arch_consumer_error(p->consumer);
    log_json(p->lg, LOG_WARN, "redis unavailable, retrying",
             json_pack("{s:s, s:s, s:i}", "op", what, "error", err, "attempt",
                       (int)p->redis_bo.attempt + 1));
    pthread_mutex_lock(&p->lock);
    p->stats.retries++;
    p->redis_ok = 0;
    snprintf(p->redis_error, sizeof(p->redis_error), "%s: %s", what, err);
    p->progress_ms = util_mono_ms();
    pthread_mutex_unlock(&p->lock);
    int rc = backoff_wait(p, &p->redis_bo);
    pthread_mutex_lock(&p->lock);
    p->progress_ms = util_mono_ms();
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void arch_pipeline_redis_ok(struct arch_pipeline *p) {
    backoff_reset(&p->redis_bo);
    pthread_mutex_lock(&p->lock);
    p->redis_ok = 1;
    pthread_mutex_unlock(&p->lock);
}

/* ---- counters ---- */

void arch_pipeline_count(struct arch_pipeline *p, uint64_t reclaimed, uint64_t lost,
                         uint64_t lag_warnings) {
    pthread_mutex_lock(&p->lock);
    p->stats.reclaimed += reclaimed;
    p->stats.lost += lost;
    p->stats.lag_warnings += lag_warnings;
    pthread_mutex_unlock(&p->lock);
}

void arch_pipeline_count_takeover(struct arch_pipeline *p, uint64_t takeovers, uint64_t entries,
                                  uint64_t removed) {
    pthread_mutex_lock(&p->lock);
    p->stats.takeovers += takeovers;
    p->stats.taken_over += entries;
    p->stats.consumers_removed += removed;
    pthread_mutex_unlock(&p->lock);
}

void arch_pipeline_take_stats(struct arch_pipeline *p, struct arch_stats *out) {
    pthread_mutex_lock(&p->lock);
    const struct arch_stats *now = &p->stats, *was = &p->reported;
    *out = (struct arch_stats){
        .events = now->events - was->events,
        .batches = now->batches - was->batches,
        .retries = now->retries - was->retries,
        .dead_letters = now->dead_letters - was->dead_letters,
        .lost = now->lost - was->lost,
        .reclaimed = now->reclaimed - was->reclaimed,
        .lag_warnings = now->lag_warnings - was->lag_warnings,
        .takeovers = now->takeovers - was->takeovers,
        .taken_over = now->taken_over - was->taken_over,
        .consumers_removed = now->consumers_removed - was->consumers_removed,
        .batch_us_sum = now->batch_us_sum - was->batch_us_sum,
        .batch_us_max = now->batch_us_max,
    };
    for (int t = 0; t < ARCH_TABLE_COUNT; t++)
        out->rows[t] = now->rows[t] - was->rows[t];
    for (int i = 0; i <= ARCH_BATCH_BOUNDS; i++)
        out->batch_buckets[i] = now->batch_buckets[i] - was->batch_buckets[i];
    p->stats.batch_us_max = 0;
    p->reported = p->stats;
    pthread_mutex_unlock(&p->lock);
}

void arch_pipeline_totals(struct arch_pipeline *p, struct arch_stats *out) {
    pthread_mutex_lock(&p->lock);
    *out = p->stats;
    pthread_mutex_unlock(&p->lock);
}

void arch_pipeline_health(struct arch_pipeline *p, struct arch_pipeline_health *out) {
    pthread_mutex_lock(&p->lock);
    out->redis_ok = p->redis_ok;
    snprintf(out->redis_error, sizeof(out->redis_error), "%s", p->redis_ok ? "" : p->redis_error);
    out->progress_ms = p->progress_ms;
    out->in_flight = p->nflight;
    pthread_mutex_unlock(&p->lock);
}

/* ---- writing (writer threads) ---- */

static void job_free(struct job *j) {
    if (!j)
        return;
    if (j->dead_reason)
        for (size_t i = 0; i < j->batch.n; i++)
            free(j->dead_reason[i]);
    free(j->dead_reason);
    free(j->rows);
    free(j->row_entry);
    arch_entries_free(&j->batch);
    free(j);
}

static void mark_dead(struct arch_pipeline *p, struct job *j, size_t entry, const char *reason) {
    const struct arch_entry *e = &j->batch.items[entry];
    if (j->dead_reason[entry])
        return;
    j->dead_reason[entry] = strdup(reason);
    if (!j->dead_reason[entry])
        j->dead_reason[entry] = strdup("unwritable");
    j->ndead++;
    log_json(p->lg, LOG_WARN, "entry cannot be archived, dead-lettering",
             json_pack("{s:s%, s:s}", "id", e->event_id, e->event_id_len, "reason", reason));
}

/* Writes rows [lo, hi). A range MySQL rejects for its data is halved until the rejected row is
 * alone, which costs about log2(n) extra transactions per bad row instead of n. Returns 0 when
 * every row of the range is committed or marked dead, -1 when giving up (stopping). */
static int write_range(struct arch_pipeline *p, struct job *j, struct backoff *bo, size_t lo,
                       size_t hi) {
    while (lo < hi) {
        struct arch_write_result res;
        int rc = arch_writer_write(p->writer, j->rows + lo, hi - lo, &res);
        switch (rc) {
        case ARCH_W_OK:
            for (int t = 0; t < ARCH_TABLE_COUNT; t++)
                j->rows_written[t] += res.rows[t];
            backoff_reset(bo);
            return 0;
        case ARCH_W_TOO_BIG: {
            size_t bad = lo + res.bad;
            if (write_range(p, j, bo, lo, bad))
                return -1;
            mark_dead(p, j, j->row_entry[bad], res.err);
            lo = bad + 1;
            break;
        }
        case ARCH_W_DATA:
            if (hi - lo == 1) {
                mark_dead(p, j, j->row_entry[lo], res.err);
                return 0;
            }
            log_json(p->lg, LOG_INFO, "MySQL rejected a batch, isolating the row",
                     json_pack("{s:i, s:s}", "rows", (int)(hi - lo), "error", res.err));
            {
                size_t mid = lo + (hi - lo) / 2;
                if (write_range(p, j, bo, lo, mid))
                    return -1;
                lo = mid;
            }
            break;
        default:
            pthread_mutex_lock(&p->lock);
            p->stats.retries++;
            pthread_mutex_unlock(&p->lock);
            log_json(p->lg, LOG_WARN, "MySQL write failed, retrying",
                     json_pack("{s:s, s:i, s:i}", "error", res.err, "rows", (int)(hi - lo),
                               "attempt", (int)bo->attempt + 1));
            if (backoff_wait(p, bo))
                return -1;
            break;
        }
    }
    return 0;
}

/* Decodes the job's entries and writes them. Returns 0 or -1 (given up). */
static int write_job(struct arch_pipeline *p, struct job *j, struct backoff *bo) {
    const struct arch_entries *b = &j->batch;
    for (size_t i = 0; i < b->n; i++) {
        const struct arch_entry *e = &b->items[i];
        char err[200];
        if (e->deleted) {
            /* Trimmed from the stream while pending: nothing is left to write. */
            j->lost++;
            log_json(p->lg, LOG_ERROR, "pending entry was trimmed before it was archived",
                     json_pack("{s:s%}", "id", e->event_id, e->event_id_len));
            continue;
        }
        if (arch_row_decode(&j->rows[j->nrows], e->event_id, e->event_id_len, e->names,
                            e->name_lens, e->values, e->value_lens, e->nfields, err, sizeof(err))) {
            mark_dead(p, j, i, err);
            continue;
        }
        j->row_entry[j->nrows++] = i;
    }
    return write_range(p, j, bo, 0, j->nrows);
}

static void *writer_main(void *arg) {
    struct arch_pipeline *p = arg;
    struct backoff bo;
    backoff_init(&bo, p->cfg.retry_base_ms, p->cfg.retry_max_ms, random_seed());
    mysql_thread_init();
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->queue_head && !p->quitting) {
            int64_t now = util_mono_ms();
            if (now - p->mysql_checked_ms >= MYSQL_CHECK_MS) {
                /* One idle writer at a time checks that MySQL still answers. */
                p->mysql_checked_ms = now;
                pthread_mutex_unlock(&p->lock);
                arch_writer_check(p->writer);
                pthread_mutex_lock(&p->lock);
                continue;
            }
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += MYSQL_CHECK_MS / 1000;
            pthread_cond_timedwait(&p->work_cv, &p->lock, &until);
        }
        if (!p->queue_head)
            break;
        struct job *j = p->queue_head;
        p->queue_head = j->next;
        if (!p->queue_head)
            p->queue_tail = NULL;
        j->next = NULL;
        j->state = JOB_WRITING;
        pthread_mutex_unlock(&p->lock);

        int rc = write_job(p, j, &bo);

        pthread_mutex_lock(&p->lock);
        j->state = rc ? JOB_ABANDONED : JOB_DONE;
        if (p->done_tail)
            p->done_tail->next = j;
        else
            p->done_head = j;
        p->done_tail = j;
        pthread_cond_broadcast(&p->done_cv);
    }
    pthread_mutex_unlock(&p->lock);
    mysql_thread_end();
    return NULL;
}

/* ---- main thread ---- */

struct arch_pipeline *arch_pipeline_create(const struct arch_pipeline_config *cfg,
                                           struct arch_consumer *consumer,
                                           struct arch_writer *writer, const struct logger *lg,
                                           volatile sig_atomic_t *stop) {
    struct arch_pipeline *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->cfg = *cfg;
    if (p->cfg.writers < 1)
        p->cfg.writers = 1;
    p->consumer = consumer;
    p->writer = writer;
    p->lg = lg;
    p->stop = stop;
    backoff_init(&p->redis_bo, cfg->retry_base_ms, cfg->retry_max_ms, random_seed());
    snprintf(p->redis_error, sizeof(p->redis_error), "not connected yet");
    p->progress_ms = util_mono_ms();
    pthread_mutex_init(&p->lock, NULL);
    /* Timed waits on the monotonic clock, so a wall-clock jump cannot stall settling or the
     * writers' checks. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->work_cv, &ca);
    pthread_cond_init(&p->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    p->flight = calloc((size_t)p->cfg.writers, sizeof(*p->flight));
    p->threads = calloc((size_t)p->cfg.writers, sizeof(*p->threads));
    if (!p->flight || !p->threads) {
        arch_pipeline_destroy(p);
        return NULL;
    }
    /* Writers inherit a mask that blocks every signal, so SIGTERM always reaches the main
     * thread, whose sleeps it is meant to cut short. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int failed = 0;
    for (int i = 0; i < p->cfg.writers && !failed; i++) {
        failed = pthread_create(&p->threads[i], NULL, writer_main, p) != 0;
        if (!failed)
            p->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (failed) {
        arch_pipeline_destroy(p);
        return NULL;
    }
    return p;
}

int arch_pipeline_can_submit(struct arch_pipeline *p) {
    pthread_mutex_lock(&p->lock);
    int ok = p->nflight < p->cfg.writers;
    pthread_mutex_unlock(&p->lock);
    return ok;
}

int arch_pipeline_in_flight(struct arch_pipeline *p) {
    pthread_mutex_lock(&p->lock);
    int n = p->nflight;
    pthread_mutex_unlock(&p->lock);
    return n;
}

int arch_pipeline_submit(struct arch_pipeline *p, struct arch_entries *batch) {
    struct job *j = calloc(1, sizeof(*j));
    size_t n = batch->n ? batch->n : 1;
    if (j) {
        j->batch = *batch;
        memset(batch, 0, sizeof(*batch));
        j->rows = malloc(n * sizeof(*j->rows));
        j->row_entry = malloc(n * sizeof(*j->row_entry));
        j->dead_reason = calloc(n, sizeof(*j->dead_reason));
    }
    if (!j || !j->rows || !j->row_entry || !j->dead_reason) {
        log_msg(p->lg, LOG_ERROR, "out of memory for a batch of %zu entries", n);
        if (j)
            job_free(j);
        else
            arch_entries_free(batch);
        return -1;
    }
    j->submitted_us = util_mono_us();
    j->touched_ms = util_mono_ms();
    pthread_mutex_lock(&p->lock);
    p->flight[p->nflight++] = j;
    if (p->queue_tail)
        p->queue_tail->next = j;
    else
        p->queue_head = j;
    p->queue_tail = j;
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* Dead letters first, then the XACK of every entry (per stream): an entry is never acknowledged
 * before its row is committed or its dead letter written. */
static int settle_job(struct arch_pipeline *p, struct job *j) {
    const struct arch_entries *b = &j->batch;
    size_t n = b->n ? b->n : 1;
    const struct arch_entry **dead = malloc(n * sizeof(*dead));
    const char **reasons = malloc(n * sizeof(*reasons));
    const struct arch_entry **ack = malloc(n * sizeof(*ack));
    size_t nd = 0, na = 0;
    int rc = -1;
    if (!dead || !reasons || !ack)
        goto out;
    for (size_t i = 0; i < b->n; i++) {
        if (j->dead_reason[i]) {
            dead[nd] = &b->items[i];
            reasons[nd++] = j->dead_reason[i];
        }
        ack[na++] = &b->items[i];
    }
    while (arch_consumer_dead_letter(p->consumer, dead, reasons, nd))
        if (arch_pipeline_redis_wait(p, "dead letter"))
            goto out;
    while (arch_consumer_ack(p->consumer, ack, na))
        if (arch_pipeline_redis_wait(p, "XACK"))
            goto out;
    arch_pipeline_redis_ok(p);
    rc = 0;
out:
    free(dead);
    free(reasons);
    free(ack);
    return rc;
}

/* Keeps peers from reclaiming batches that are only waiting for MySQL to come back. */
static void touch_waiting(struct arch_pipeline *p) {
    int64_t now = util_mono_ms();
    struct job **due = malloc((size_t)p->cfg.writers * sizeof(*due));
    if (!due)
        return;
    pthread_mutex_lock(&p->lock);
    int ndue = 0;
    for (int i = 0; i < p->nflight; i++)
        if (now - p->flight[i]->touched_ms >= p->cfg.claim_idle_ms / 2)
            due[ndue++] = p->flight[i];
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < ndue; i++) {
        struct job *j = due[i];
        const struct arch_entry **all = malloc((j->batch.n ? j->batch.n : 1) * sizeof(*all));
        if (!all)
            continue;
        for (size_t k = 0; k < j->batch.n; k++)
            all[k] = &j->batch.items[k];
        if (arch_consumer_touch(p->consumer, all, j->batch.n) == 0)
            j->touched_ms = now;
        free(all);
    }
    free(due);
}

static void forget(struct arch_pipeline *p, struct job *j) {
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->nflight; i++) {
        if (p->flight[i] == j) {
            p->flight[i] = p->flight[--p->nflight];
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    job_free(j);
}

int arch_pipeline_settle(struct arch_pipeline *p, int wait_ms) {
    touch_waiting(p);
    pthread_mutex_lock(&p->lock);
    p->progress_ms = util_mono_ms();
    if (!p->done_head && wait_ms > 0 && p->nflight > 0) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += wait_ms / 1000;
        until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->done_cv, &p->lock, &until);
    }
    struct job *done = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->lock);

    int settled = 0;
    while (done) {
        struct job *j = done;
        done = j->next;
        if (j->state == JOB_DONE && settle_job(p, j) == 0) {
            int64_t us = util_mono_us() - j->submitted_us;
            uint64_t rows = 0;
            pthread_mutex_lock(&p->lock);
            for (int t = 0; t < ARCH_TABLE_COUNT; t++) {
                p->stats.rows[t] += j->rows_written[t];
                rows += j->rows_written[t];
            }
            p->stats.events += j->batch.n;
            p->stats.batches++;
            p->stats.dead_letters += j->ndead;
            p->stats.lost += j->lost;
            p->stats.batch_us_sum += us;
            p->stats.batch_buckets[prom_bucket(arch_batch_bounds_us, ARCH_BATCH_BOUNDS, us)]++;
            if (us > p->stats.batch_us_max)
                p->stats.batch_us_max = us;
            pthread_mutex_unlock(&p->lock);
            if (p->lg->min <= LOG_DEBUG)
                log_json(p->lg, LOG_DEBUG, "batch",
                         json_pack("{s:I, s:I, s:I, s:f}", "entries", (json_int_t)j->batch.n,
                                   "rows", (json_int_t)rows, "dead", (json_int_t)j->ndead, "ms",
                                   log_round((double)us / 1000.0, 3)));
            settled++;
        } else {
            log_json(p->lg, LOG_WARN, "batch left pending for redelivery",
                     json_pack("{s:I}", "entries", (json_int_t)j->batch.n));
        }
        forget(p, j);
    }
    return settled;
}

void arch_pipeline_drain(struct arch_pipeline *p) {
    /* Writers give up by themselves past the drain deadline, so this ends. */
    while (arch_pipeline_in_flight(p) > 0)
        arch_pipeline_settle(p, 100);
}

void arch_pipeline_destroy(struct arch_pipeline *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->quitting = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    /* Nothing runs any more: free whatever was never settled. */
    for (int i = 0; i < p->nflight; i++)
        job_free(p->flight[i]);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->lock);
    free(p->flight);
    free(p->threads);
    free(p);
}
