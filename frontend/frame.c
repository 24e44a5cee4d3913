/* Shared, reference-counted outgoing frames (RFC 6455 section 5.2 framing, server side). */
#include "frame.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

struct frame *frame_new(const void *data, size_t len, int binary) {
    return frame_new_ex(data, len, binary, 0);
}

struct frame *frame_new_ex(const void *data, size_t len, int binary, int compressed) {
    struct frame *f = malloc(sizeof(*f) + FRAME_MAX_HEADER + len);
    if (!f)
        return NULL;
    f->born_us = util_mono_us();
    f->refs = 1;
    f->seq = 0;
    f->sent_us = 0;
    f->binary = (uint8_t)(binary != 0);
    f->twin_bits = 0;
    f->twin = NULL;
    f->len = len;
    unsigned char h[FRAME_MAX_HEADER];
    h[0] = (unsigned char)(0x80 | (compressed ? 0x40 : 0) | (binary ? 0x2 : 0x1)); /* FIN RSV1 op */
    if (len < 126) {
        h[1] = (unsigned char)len;
        f->hlen = 2;
    } else if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        f->hlen = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        f->hlen = 10;
    }
    memcpy(f->buf + FRAME_MAX_HEADER - f->hlen, h, f->hlen);
    memcpy(f->buf + FRAME_MAX_HEADER, data, len);
    return f;
}

void frame_unref(struct frame *f) {
    if (f && --f->refs == 0) {
        frame_unref(f->twin);
        free(f);
    }
}
