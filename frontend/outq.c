/* Outbound queues and their writing (see outq.h). */
#include "outq.h"

#include "app.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct outq {
    struct lws_context *cx;
    struct outq_options opt;
    struct fe_stats *stats;
    void (*failed)(struct outq_client *c, const char *why);

    unsigned char *wbuf; /* where a client's queued frames are gathered into one write */
    int batching;        /* inside a Redis read: clients given frames join the batch */
    int flushing;        /* writing the batch: its writes share one reading of the wall clock */
    int64_t flush_wall;  /* ... that reading (0: not read yet) */
    lws_dll2_owner_t batch;
    /* under load the batch is written coalesce-ms later */
    int busy;
    uint64_t busy_mark; /* messages_out at the last rate check */
    int64_t busy_mark_ms;
    int flush_pending;
    lws_sorted_usec_list_t sul_flush;
};

struct outq *outq_create(struct lws_context *cx, const struct outq_options *o,
                         struct fe_stats *stats,
                         void (*failed)(struct outq_client *c, const char *why)) {
    struct outq *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->cx = cx;
    q->opt = *o;
    q->stats = stats;
    q->failed = failed;
    return q;
}

void outq_destroy(struct outq *q) {
    if (!q)
        return;
    lws_sul_cancel(&q->sul_flush);
    free(q->wbuf);
    free(q);
}

void outq_client_init(struct outq_client *c, struct lws *wsi) {
    memset(c, 0, sizeof(*c));
    c->wsi = wsi;
}

void outq_client_free(struct outq_client *c) {
    lws_dll2_remove(&c->batch_link);
    for (uint32_t i = 0; i < c->len; i++)
        frame_unref(c->ring[(c->head + i) & (c->cap - 1)]);
    free(c->ring);
    c->ring = NULL;
    c->len = c->cap = 0;
    c->bytes = 0;
}

static struct frame *pop(struct outq_client *c) {
    struct frame *f = c->ring[c->head];
    c->head = (c->head + 1) & (c->cap - 1);
    c->len--;
    c->bytes -= f->len;
    return f;
}

int outq_push(struct outq *q, struct outq_client *c, struct frame *f) {
    if (c->bytes + f->len > q->opt.limit_bytes) {
        q->stats->slow_consumers++;
        q->failed(c, "slow_consumer");
        return -1;
    }
    if (c->len == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 8;
        struct frame **ring = malloc(cap * sizeof(*ring));
        if (!ring) {
            q->failed(c, "out_of_memory");
            return -1;
        }
        for (uint32_t i = 0; i < c->len; i++)
            ring[i] = c->ring[(c->head + i) & (c->cap - 1)];
        free(c->ring);
        c->ring = ring;
        c->head = 0;
        c->cap = cap;
    }
    c->ring[(c->head + c->len) & (c->cap - 1)] = frame_ref(f);
    c->bytes += f->len;
    if (c->len++ > 0)
        return 0;
    /* A client still in a batch waiting for its coalescing timer may have been written (and
     * emptied) by its writeable callback meanwhile: it stays in that batch. */
    if (q->batching) {
        if (lws_dll2_is_detached(&c->batch_link))
            lws_dll2_add_tail(&c->batch_link, &q->batch);
    } else {
        lws_callback_on_writable(c->wsi);
    }
    return 0;
}

/* Writes every queued frame (up to OUTQ_WRITE_BATCH bytes) in one lws_write(): frames carry
 * their own WebSocket headers, so they go out as raw bytes (LWS_WRITE_HTTP bypasses lws's framing).
 * One system call then serves every frame that arrived for this client since its last write;
 * lws keeps whatever the socket does not take and calls back only once it is flushed. */
int outq_write(struct outq *q, struct outq_client *c) {
    const unsigned char *out;
    size_t n = 0, frames = 0, payload = 0;
    struct frame *single = NULL;
    int64_t now = util_mono_us(), own_wall = 0;
    int64_t *wall = q->flushing ? &q->flush_wall : &own_wall;
    if (c->len == 0)
        return 0;
    if (c->len == 1 || frame_wire_len(c->ring[c->head]) >= OUTQ_WRITE_BATCH) {
        single = pop(c);
        app_count_written(q->stats, single, now, wall);
        out = frame_wire(single);
        n = frame_wire_len(single);
        frames = 1;
        payload = single->len;
    } else {
        if (!q->wbuf && !(q->wbuf = malloc(OUTQ_WRITE_BATCH)))
            return -1;
        while (c->len > 0) {
            struct frame *f = c->ring[c->head];
            size_t w = frame_wire_len(f);
            if (n + w > OUTQ_WRITE_BATCH)
                break;
            memcpy(q->wbuf + n, frame_wire(f), w);
            n += w;
            frames++;
            payload += f->len;
            app_count_written(q->stats, f, now, wall);
            frame_unref(pop(c));
        }
        out = q->wbuf;
    }
    /* lws_write() takes a non-const buffer but does not change raw bytes */
    int rc = lws_write(c->wsi, (unsigned char *)(uintptr_t)out, n, LWS_WRITE_HTTP);
    frame_unref(single);
    q->stats->bytes_out += payload;
    q->stats->messages_out += frames;
    q->stats->client_writes++;
    if (rc < 0)
        return -1;
    if (c->len > 0) /* more than one write holds */
        lws_callback_on_writable(c->wsi);
    return 0;
}

void outq_batch_begin(void *arg) {
    struct outq *q = arg;
    q->batching = 1;
}

/* Writes c's queue now if its socket has nothing pending, else leaves it to the writeable
 * callback (lws flushes what it holds first). */
static void flush_now(struct outq *q, struct outq_client *c) {
    if (c->len == 0)
        return;
    if (lws_partial_buffered(c->wsi)) {
        lws_callback_on_writable(c->wsi);
        return;
    }
    if (outq_write(q, c))
        q->failed(c, "write_failed");
}

static void flush_batch(struct outq *q) {
    q->flushing = 1;
    q->flush_wall = 0;
    /* (no "continue" inside lws's foreach macros: it would skip the step to the next item) */
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, lws_dll2_get_head(&q->batch)) {
        struct outq_client *c = lws_container_of(d, struct outq_client, batch_link);
        lws_dll2_remove(&c->batch_link);
        flush_now(q, c);
    }
    lws_end_foreach_dll_safe(d, d1);
    q->flushing = 0;
}

static void flush_cb(lws_sorted_usec_list_t *sul) {
    struct outq *q = lws_container_of(sul, struct outq, sul_flush);
    q->flush_pending = 0;
    flush_batch(q);
}

void outq_batch_end(void *arg) {
    struct outq *q = arg;
    q->batching = 0;
    if (!q->busy) {
        flush_batch(q);
    } else if (!q->flush_pending && q->batch.count) {
        q->flush_pending = 1;
        lws_sul_schedule(q->cx, 0, &q->sul_flush, flush_cb, q->opt.coalesce_ms * LWS_US_PER_MS);
    }
}

void outq_load_tick(struct outq *q, int64_t now_ms) {
    int64_t dt = now_ms - q->busy_mark_ms;
    if (dt < 100)
        return;
    uint64_t out = q->stats->messages_out;
    double rate = (double)(out - q->busy_mark) * 1000.0 / (double)dt;
    q->busy = q->opt.coalesce_above > 0 && rate > (double)q->opt.coalesce_above;
    q->busy_mark = out;
    q->busy_mark_ms = now_ms;
}

int outq_busy(const struct outq *q) {
    return q->busy;
}
