/* Receive assembly of one WebSocket message (see rxbuf.h). */
#include "rxbuf.h"

#include <stdlib.h>
#include <string.h>

static int reserve(struct rxbuf *rb, size_t need) {
    if (need <= rb->cap)
        return 0;
    size_t cap = rb->cap ? rb->cap : 4096;
    while (cap < need)
        cap *= 2; /* need <= max, far below SIZE_MAX / 2 */
    unsigned char *p = realloc(rb->buf, cap);
    if (!p)
        return -1;
    rb->buf = p;
    rb->cap = cap;
    return 0;
}

enum rxbuf_status rxbuf_add(struct rxbuf *rb, int first, int final, size_t remaining,
                            const void *data, size_t len, size_t max, const void **msg,
                            size_t *msg_len) {
    if (first)
        rb->len = 0;
    /* written so that no sum can wrap: remaining comes from a peer's 64-bit frame length */
    if (len > max || remaining > max - len || rb->len > max - len - remaining) {
        rb->len = 0;
        return RXBUF_TOO_BIG;
    }
    int done = final && remaining == 0;
    if (first && done) {
        *msg = data ? data : "";
        *msg_len = len;
        return RXBUF_COMPLETE;
    }
    if (len > 0) {
        if (reserve(rb, rb->len + len)) {
            rb->len = 0;
            return RXBUF_NOMEM;
        }
        memcpy(rb->buf + rb->len, data, len);
        rb->len += len;
    }
    if (!done)
        return RXBUF_MORE;
    *msg = rb->buf ? (const void *)rb->buf : "";
    *msg_len = rb->len;
    return RXBUF_COMPLETE;
}

void rxbuf_done(struct rxbuf *rb) {
    rb->len = 0;
    if (rb->cap > RXBUF_KEEP_CAP)
        rxbuf_free(rb);
}

void rxbuf_free(struct rxbuf *rb) {
    free(rb->buf);
    rb->buf = NULL;
    rb->len = rb->cap = 0;
}
