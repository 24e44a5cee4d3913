/* An outgoing WebSocket frame built once, header included, and shared by reference count among
 * every local recipient's queue. Server frames are unmasked, so the bytes on the wire are the
 * same for every recipient: a session writes them as they are, several frames in one write. */
#ifndef RRM_FRAME_H
#define RRM_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX_HEADER 10

struct frame {
    int64_t born_us; /* monotonic time it was built: its wait is measured when written */
    uint64_t seq;    /* a relayed message's seq in its room (0: not one, or not known) */
    /* a relayed message: when the sender's node took it (wall-clock us; 0: not one, or not
     * known): its relay latency is measured when written */
    uint64_t sent_us;
    uint32_t refs;
    uint8_t binary;
    uint8_t hlen; /* header bytes just before the payload */
    /* permessage-deflate (deflate.h): the compressed twin of this frame, made for a window of
     * twin_bits (0: never tried; twin NULL: compressing did not pay); owned */
    uint8_t twin_bits;
    struct frame *twin;

    size_t len;          /* payload bytes */
    unsigned char buf[]; /* FRAME_MAX_HEADER bytes of room, then the payload */
};

/* Copies data into a new final text (or binary) frame with one reference; NULL on allocation
 * failure. */
struct frame *frame_new(const void *data, size_t len, int binary);

/* The same with RSV1 set when compressed (a permessage-deflate message, RFC 7692). */
struct frame *frame_new_ex(const void *data, size_t len, int binary, int compressed);

static inline struct frame *frame_ref(struct frame *f) {
    f->refs++;
    return f;
}

/* Drops one reference; frees the frame (and its twin) with the last. */
void frame_unref(struct frame *f);

static inline unsigned char *frame_payload(struct frame *f) {
    return f->buf + FRAME_MAX_HEADER;
}

/* The whole frame as it goes on the wire: header then payload. */
static inline const unsigned char *frame_wire(const struct frame *f) {
    return f->buf + FRAME_MAX_HEADER - f->hlen;
}

static inline size_t frame_wire_len(const struct frame *f) {
    return f->hlen + f->len;
}

#endif
