/* An outgoing WebSocket frame built once and shared, by reference count, among every local
 * recipient's queue. The payload sits after LWS_PRE bytes of headroom for lws_write(); lws
 * writes the same header bytes there for every recipient, so sharing is safe on one thread. */
#ifndef RRM_FRAME_H
#define RRM_FRAME_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

struct frame {
    uint32_t refs;
    uint8_t binary;
    size_t len;
    unsigned char buf[]; /* LWS_PRE headroom, then len payload bytes */
};

/* Copies data into a new frame with one reference; NULL on allocation failure. */
struct frame *frame_new(const void *data, size_t len, int binary);

static inline struct frame *frame_ref(struct frame *f) {
    f->refs++;
    return f;
}

/* Drops one reference; frees the frame with the last. */
void frame_unref(struct frame *f);

static inline unsigned char *frame_payload(struct frame *f) {
    return f->buf + LWS_PRE;
}

#endif
