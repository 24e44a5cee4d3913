/* Growing text buffers (see textbuf.h). */
#include "textbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int textbuf_init(struct textbuf *b, size_t initial) {
    b->len = 0;
    b->cap = LWS_PRE + initial;
    b->buf = malloc(b->cap);
    return b->buf ? 0 : -1;
}

void textbuf_free(struct textbuf *b) {
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
}

void textbuf_add(struct textbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        size_t room = b->cap - LWS_PRE - b->len;
        va_start(ap, fmt);
        int n = vsnprintf((char *)b->buf + LWS_PRE + b->len, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        unsigned char *p = realloc(b->buf, cap);
        if (!p)
            return;
        b->buf = p;
        b->cap = cap;
    }
}

void textbuf_add_html(struct textbuf *b, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        switch (p[i]) {
        case '&':
            textbuf_add(b, "&amp;");
            break;
        case '<':
            textbuf_add(b, "&lt;");
            break;
        case '>':
            textbuf_add(b, "&gt;");
            break;
        case '"':
            textbuf_add(b, "&quot;");
            break;
        default:
            textbuf_add(b, "%c", p[i]);
        }
    }
}
