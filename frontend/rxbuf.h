/* Receive assembly: gathers one incoming WebSocket message from the pieces lws hands over (a
 * frame may arrive in several pieces, a message in several frames, and any piece may be empty)
 * and refuses a message over the size limit as soon as its announced size says so. It owns the
 * gathering buffer; a message that arrives in one piece is handed back without a copy. Pure: it
 * knows nothing of lws, so that it can be unit-tested and fuzzed. */
#ifndef RRM_RXBUF_H
#define RRM_RXBUF_H

#include <stddef.h>

/* Zero-initialised it is empty and owns nothing. */
struct rxbuf {
    unsigned char *buf; /* owned; NULL until a message needs gathering */
    size_t len, cap;
};

enum rxbuf_status {
    RXBUF_MORE,     /* the message goes on in later pieces */
    RXBUF_COMPLETE, /* *msg and *msg_len hold the whole message */
    RXBUF_TOO_BIG,  /* the message would exceed max; what was gathered is dropped */
    RXBUF_NOMEM,    /* out of memory; what was gathered is dropped */
};

/* Buffers above this size are given back after each message (rxbuf_done): an idle connection
 * should not hold on to what its largest message needed. */
#define RXBUF_KEEP_CAP 65536

/*
 * Adds one piece of a message: len bytes at data (data may be NULL when len is 0). first: the
 * piece starts a message (anything gathered before is dropped); final: its frame is the last of
 * the message; remaining: bytes of its frame still to come. A message whose size so far plus
 * remaining exceeds max is refused.
 * On RXBUF_COMPLETE, *msg (never NULL) is borrowed: data itself for a message in one piece, else
 * the buffer; valid until the next rxbuf_add, rxbuf_done or rxbuf_free.
 */
enum rxbuf_status rxbuf_add(struct rxbuf *rb, int first, int final, size_t remaining,
                            const void *data, size_t len, size_t max, const void **msg,
                            size_t *msg_len);

/* Call once a complete message has been handled: forgets it and frees a buffer larger than
 * RXBUF_KEEP_CAP. */
void rxbuf_done(struct rxbuf *rb);

/* Frees the buffer; rb is empty again. */
void rxbuf_free(struct rxbuf *rb);

#endif
