/* A growing text buffer for HTTP bodies, with LWS_PRE bytes of headroom before the text so that
 * lws can write it in place. Appending never fails loudly: out of memory, the text is cut short.
 * The owner frees it with textbuf_free. */
#ifndef RRM_TEXTBUF_H
#define RRM_TEXTBUF_H

#include <libwebsockets.h>
#include <stddef.h>

struct textbuf {
    unsigned char *buf; /* LWS_PRE headroom, then len bytes of text */
    size_t len, cap;
};

/* Returns 0, or -1 when out of memory. */
int textbuf_init(struct textbuf *b, size_t initial);
void textbuf_free(struct textbuf *b);

void textbuf_add(struct textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends n bytes of p escaped for HTML text and attribute values. */
void textbuf_add_html(struct textbuf *b, const char *p, size_t n);

static inline unsigned char *textbuf_text(struct textbuf *b) {
    return b->buf + LWS_PRE;
}

#endif
