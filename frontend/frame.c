/* Shared, reference-counted outgoing frames. */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

struct frame *frame_new(const void *data, size_t len, int binary) {
    struct frame *f = malloc(sizeof(*f) + LWS_PRE + len);
    if (!f)
        return NULL;
    f->refs = 1;
    f->binary = (uint8_t)(binary != 0);
    f->len = len;
    memcpy(f->buf + LWS_PRE, data, len);
    return f;
}

void frame_unref(struct frame *f) {
    if (f && --f->refs == 0)
        free(f);
}
