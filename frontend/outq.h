/* Outbound queues: what the node owes its clients, and the writing of it.
 *
 * Each client has a bounded ring of shared frames (struct outq_client, embedded by its owner in
 * whatever it serves). The node's struct outq writes them: every client given frames while a
 * Redis read is handled (outq_batch_begin/end) is written when the read ends, its whole queue in
 * one system call, straight away when its socket has nothing pending, else from the writeable
 * callback (outq_write). Writing then and there spares the two epoll changes and the loop pass
 * that a writeable callback costs. Under load (more than coalesce-above deliveries per second,
 * measured by outq_load_tick) the batch waits up to coalesce-ms so that each client's frames go
 * out in fewer, larger writes: at 100,000 deliveries/s a client is sent a frame every few ms, and
 * one send() per frame is most of the node's CPU.
 *
 * struct outq owns the gathering buffer, the batch, the load measure and the flush timer; an
 * outq_client owns references to its queued frames until they are written or it is freed.
 * Delivery counters go to the fe_stats the outq is given. */
#ifndef RRM_OUTQ_H
#define RRM_OUTQ_H

#include "frame.h"

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

struct fe_stats;
struct outq;

/* Bytes gathered into one write at most; more waits for the next writeable callback. Also the
 * protocol's tx_packet_size: lws would otherwise cut every send() to rx_buffer_size. */
#define OUTQ_WRITE_BATCH (256 * 1024)

/* One client's queue. Zeroed and given its wsi by outq_client_init. */
struct outq_client {
    struct lws *wsi;
    struct frame **ring; /* capacity a power of two */
    uint32_t head, len, cap;
    size_t bytes;
    lws_dll2_t batch_link; /* in the outq's batch while it has frames from the current read */
};

struct outq_options {
    size_t limit_bytes;  /* a queue over this is a slow consumer (send-queue-bytes) */
    long coalesce_above; /* deliveries/s above which writes are coalesced (0: never) */
    long coalesce_ms;    /* longest a frame waits when coalescing */
};

/* failed(c, why) is called when a client must be cut off: its queue is full ("slow_consumer"),
 * memory ran out ("out_of_memory") or a write failed ("write_failed"). Returns NULL when out of
 * memory. */
struct outq *outq_create(struct lws_context *cx, const struct outq_options *o,
                         struct fe_stats *stats,
                         void (*failed)(struct outq_client *c, const char *why));
void outq_destroy(struct outq *q);

void outq_client_init(struct outq_client *c, struct lws *wsi);
/* Drops every queued frame and leaves the batch. */
void outq_client_free(struct outq_client *c);

/* Queues f (takes a reference). Returns 0, or -1 after failed() was called. */
int outq_push(struct outq *q, struct outq_client *c, struct frame *f);

/* Number of frames waiting. */
static inline uint32_t outq_pending(const struct outq_client *c) {
    return c->len;
}

/* From the writeable callback: writes up to OUTQ_WRITE_BATCH bytes of c's queue in one
 * lws_write() and asks for another callback if frames remain. Returns 0, or -1 if the write
 * failed (the connection is to be closed). */
int outq_write(struct outq *q, struct outq_client *c);

/* Around the handling of one Redis read (rl_ops' on_read_begin/end; arg is the struct outq). */
void outq_batch_begin(void *q);
void outq_batch_end(void *q);

/* Measures the delivery rate and decides whether to coalesce; call it every ~100 ms. */
void outq_load_tick(struct outq *q, int64_t now_ms);

/* 1 while coalescing (the node is above coalesce-above). */
int outq_busy(const struct outq *q);

#endif
