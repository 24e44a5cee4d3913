/* permessage-deflate: negotiation, shared compression, stateless inflation (see deflate.h). */
#include "deflate.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define EXT_NAME "permessage-deflate"
#define LINE_PREFIX "Sec-WebSocket-Extensions: "
/* Longest Sec-WebSocket-Extensions request header looked at; a longer one is declined. */
#define OFFER_MAX 1024
/* Buffers above this size are given back after each message: an idle node keeps little. */
#define KEEP_CAP 65536

/* The tail RFC 7692 7.2.1 strips from each compressed message, and 7.2.2 puts back. */
static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};

struct deflate {
    size_t min_bytes;
    z_stream def[16]; /* by window bits, 9-15, made on first use */
    uint8_t def_ready[16];
    z_stream inf; /* window 15: inflates what any window size made */
    int inf_ready;
    unsigned char *zbuf; /* compressed output before it becomes a frame */
    size_t zcap;
    unsigned char *ibuf; /* an inflated message */
    size_t icap;
    struct deflate_stats stats;
};

/* ---- negotiation ---------------------------------------------------------------------------- */

/* lws asks for the callback of every extension it activates: frames pass untouched. */
static const struct lws_ext_options no_options[] = {{NULL, EXTARG_NONE}};

static int ext_callback(struct lws_context *cx, const struct lws_extension *ext, struct lws *wsi,
                        enum lws_extension_callback_reasons reason, void *user, void *in,
                        size_t len) {
    (void)cx;
    (void)ext;
    (void)wsi;
    (void)user;
    (void)len;
    /* No options: lws's handshake then echoes none of the offer's parameters. */
    if (reason == LWS_EXT_CB_CONSTRUCT)
        *(const struct lws_ext_options **)in = no_options;
    return 0;
}

const struct lws_extension deflate_extensions[] = {
    {EXT_NAME, ext_callback, EXT_NAME},
    {NULL, NULL, NULL},
};

static int is_space(char c) {
    return c == ' ' || c == '\t';
}

static int is_tchar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

struct cursor {
    const char *p, *end;
};

static void skip_space(struct cursor *c) {
    while (c->p < c->end && is_space(*c->p))
        c->p++;
}

/* A token into [*s, *s + *n); 0 if there is none. */
static int token(struct cursor *c, const char **s, size_t *n) {
    skip_space(c);
    const char *b = c->p;
    while (c->p < c->end && is_tchar(*c->p))
        c->p++;
    *s = b;
    *n = (size_t)(c->p - b);
    return *n > 0;
}

/* A parameter value: a token or a quoted string (RFC 7692 7.1: the unquoted form is what counts;
 * quoted-pairs are taken literally). Returns 0 on a malformed one. */
static int value(struct cursor *c, char *out, size_t cap) {
    skip_space(c);
    const char *s;
    size_t n;
    if (c->p < c->end && *c->p == '"') {
        s = ++c->p;
        while (c->p < c->end && *c->p != '"')
            c->p++;
        if (c->p == c->end)
            return 0;
        n = (size_t)(c->p - s);
        c->p++;
    } else if (!token(c, &s, &n)) {
        return 0;
    }
    if (n >= cap)
        return 0;
    memcpy(out, s, n);
    out[n] = '\0';
    return 1;
}

/* Window bits as RFC 7692 7.1.2 writes them: 1*DIGIT, 8-15, no leading zero. */
static int window_bits(const char *v) {
    if (v[0] < '1' || v[0] > '9')
        return -1;
    if (!v[1])
        return v[0] == '8' || v[0] == '9' ? v[0] - '0' : -1;
    if (v[0] != '1' || v[1] < '0' || v[1] > '5' || v[2])
        return -1;
    return 10 + v[1] - '0';
}

/* Moves past the rest of the current element (to after its comma). */
static void next_element(struct cursor *c) {
    int quoted = 0;
    while (c->p < c->end && (quoted || *c->p != ',')) {
        if (*c->p == '"')
            quoted = !quoted;
        c->p++;
    }
    if (c->p < c->end)
        c->p++;
}

enum { P_SERVER_NCT, P_CLIENT_NCT, P_SERVER_BITS, P_CLIENT_BITS };

/* The parameters of the element c is in (after its name), to its end. 1 if acceptable. */
static int offer_params(struct cursor *c, struct deflate_params *p, int *had_params) {
    unsigned seen = 0;
    *had_params = 0;
    p->server_bits = 15;
    p->bits_asked = 0;
    for (;;) {
        skip_space(c);
        if (c->p == c->end || *c->p == ',')
            return 1;
        if (*c->p != ';')
            return 0;
        c->p++;
        const char *name;
        size_t n;
        if (!token(c, &name, &n))
            return 0;
        *had_params = 1;
        char v[16];
        int has_value = 0;
        skip_space(c);
        if (c->p < c->end && *c->p == '=') {
            c->p++;
            if (!value(c, v, sizeof(v)))
                return 0;
            has_value = 1;
        }
        int which;
        if (n == 26 && memcmp(name, "server_no_context_takeover", n) == 0)
            which = P_SERVER_NCT;
        else if (n == 26 && memcmp(name, "client_no_context_takeover", n) == 0)
            which = P_CLIENT_NCT;
        else if (n == 22 && memcmp(name, "server_max_window_bits", n) == 0)
            which = P_SERVER_BITS;
        else if (n == 22 && memcmp(name, "client_max_window_bits", n) == 0)
            which = P_CLIENT_BITS;
        else
            return 0; /* 7.1: an unknown parameter declines the offer */
        if (seen & (1u << which))
            return 0; /* 7.1: each at most once */
        seen |= 1u << which;
        switch (which) {
        case P_SERVER_NCT:
        case P_CLIENT_NCT:
            if (has_value)
                return 0;
            break;
        case P_SERVER_BITS: {
            int b = has_value ? window_bits(v) : -1;
            if (b < 0)
                return 0;
            if (b < 9)
                return 0; /* zlib's raw deflate cannot keep to a 256-byte window */
            p->server_bits = (uint8_t)b;
            p->bits_asked = 1;
            break;
        }
        case P_CLIENT_BITS:
            /* Without a value the client only says it understands the parameter; the node
             * inflates with a 32 KiB window, enough for any size the client picks, and so
             * leaves it out of the answer. */
            if (has_value && window_bits(v) < 0)
                return 0;
            break;
        }
    }
}

int deflate_negotiate(const char *header, size_t len, struct deflate_params *p) {
    struct cursor c = {header, header + len};
    int found = 0, accept = 0, had_params = 0;
    while (c.p < c.end) {
        const char *name;
        size_t n;
        int is_pmd =
            token(&c, &name, &n) && n == sizeof(EXT_NAME) - 1 && memcmp(name, EXT_NAME, n) == 0;
        if (is_pmd && found) {
            /* lws 4.1.6 fails the handshake when it sees the extension offered again after an
             * accepted offer without parameters: decline rather than lose the client. */
            return accept && !had_params ? 0 : accept;
        }
        if (is_pmd) {
            found = 1;
            accept = offer_params(&c, p, &had_params);
        }
        next_element(&c);
    }
    return accept;
}

int deflate_response_line(const struct deflate_params *p, char *buf, size_t cap) {
    int n = lws_snprintf(buf, cap,
                         LINE_PREFIX EXT_NAME "; server_no_context_takeover; "
                                              "client_no_context_takeover");
    if (p->bits_asked)
        n += lws_snprintf(buf + n, cap - (size_t)n, "; server_max_window_bits=%d", p->server_bits);
    n += lws_snprintf(buf + n, cap - (size_t)n, "\r\n");
    return (size_t)n + 1 < cap ? n : -1;
}

/* The offer of wsi's upgrade request; 0 if none or declined. */
static int offer_of(struct lws *wsi, struct deflate_params *p) {
    char h[OFFER_MAX];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS);
    if (n <= 0 || n >= (int)sizeof(h) || lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_EXTENSIONS) < 0)
        return 0;
    return deflate_negotiate(h, strlen(h), p);
}

int deflate_confirm(struct lws *wsi, const char *ext) {
    struct deflate_params p;
    if (!ext || strcmp(ext, EXT_NAME) != 0)
        return 1;
    return offer_of(wsi, &p) ? 0 : 1;
}

int deflate_headers_take(struct lws_process_html_args *args) {
    static const char line[] = LINE_PREFIX EXT_NAME "\r\n";
    size_t n = sizeof(line) - 1;
    /* the 101 so far is in lws's buffer, well over n bytes before args->p */
    if (memcmp(args->p - n, line, n) != 0)
        return 0;
    args->p -= n;
    args->max_len += (int)n;
    return 1;
}

int deflate_headers_put(struct lws *wsi, struct lws_process_html_args *args,
                        struct deflate_params *p) {
    if (!offer_of(wsi, p)) /* lws accepted what deflate_confirm accepted: cannot happen */
        return -1;
    int n = deflate_response_line(p, args->p, (size_t)args->max_len);
    if (n < 0)
        return -1;
    args->p += n;
    args->max_len -= n;
    return 0;
}

/* ---- the node's streams -----------------------------------------------------------------------
 */

struct deflate *deflate_create(size_t min_bytes) {
    struct deflate *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->min_bytes = min_bytes;
    return d;
}

void deflate_destroy(struct deflate *d) {
    if (!d)
        return;
    for (int b = 0; b < 16; b++)
        if (d->def_ready[b])
            deflateEnd(&d->def[b]);
    if (d->inf_ready)
        inflateEnd(&d->inf);
    free(d->zbuf);
    free(d->ibuf);
    free(d);
}

struct deflate_stats *deflate_stats(struct deflate *d) {
    return &d->stats;
}

static int reserve(unsigned char **buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    unsigned char *p = realloc(*buf, c);
    if (!p)
        return -1;
    *buf = p;
    *cap = c;
    return 0;
}

/* The deflate stream for a window of bits, reset for a new message; NULL when out of memory. */
static z_stream *deflater(struct deflate *d, int bits) {
    z_stream *z = &d->def[bits];
    if (d->def_ready[bits])
        return deflateReset(z) == Z_OK ? z : NULL;
    memset(z, 0, sizeof(*z));
    /* memLevel 8, zlib's default: 9 would take twice the memory for a few bytes on 2 KB */
    if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    d->def_ready[bits] = 1;
    return z;
}

/* f's payload compressed for a window of bits into a new frame; NULL when it does not pay. */
static struct frame *compress_frame(struct deflate *d, const struct frame *f, int bits) {
    z_stream *z = deflater(d, bits);
    if (!z)
        return NULL;
    size_t bound = deflateBound(z, (uLong)f->len) + 16; /* + the sync flush's empty block */
    if (reserve(&d->zbuf, &d->zcap, bound))
        return NULL;
    z->next_in = (Bytef *)(uintptr_t)(f->buf + FRAME_MAX_HEADER);
    z->avail_in = (uInt)f->len;
    z->next_out = d->zbuf;
    z->avail_out = (uInt)bound;
    /* A sync flush ends the message on a byte boundary with an empty stored block, 00 00 ff ff,
     * which RFC 7692 7.2.1 strips. */
    if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in != 0 || z->avail_out == 0)
        return NULL;
    size_t n = (size_t)(z->next_out - d->zbuf);
    if (n < 4 || memcmp(d->zbuf + n - 4, tail, 4) != 0)
        return NULL;
    n -= 4;
    d->stats.compressions++;
    d->stats.compress_in_bytes += f->len;
    d->stats.compress_out_bytes += n;
    if (n >= f->len) {
        d->stats.skipped++;
        return NULL;
    }
    struct frame *z_f = frame_new_ex(d->zbuf, n, f->binary, 1);
    if (z_f) {
        z_f->born_us = f->born_us;
        z_f->seq = f->seq;
        z_f->sent_us = f->sent_us;
    }
    if (d->zcap > KEEP_CAP) {
        free(d->zbuf);
        d->zbuf = NULL;
        d->zcap = 0;
    }
    return z_f;
}

struct frame *deflate_frame_for(struct deflate *d, struct frame *f, int bits) {
    if (!d || bits < 9 || bits > 15 || f->len < d->min_bytes || f->len == 0)
        return frame_ref(f);
    struct frame *z;
    if (f->twin_bits == bits) {
        z = f->twin;
    } else if (f->twin_bits == 0) {
        f->twin = z = compress_frame(d, f, bits);
        f->twin_bits = (uint8_t)bits;
    } else {
        /* another recipient's window size already has the twin: this one gets its own copy,
         * made anew for each such recipient (clients that ask for a smaller window are rare) */
        z = compress_frame(d, f, bits);
        if (!z)
            return frame_ref(f);
        d->stats.deliveries++;
        d->stats.delivered_plain_bytes += f->len;
        d->stats.delivered_bytes += z->len;
        return z;
    }
    if (!z)
        return frame_ref(f);
    d->stats.deliveries++;
    d->stats.delivered_plain_bytes += f->len;
    d->stats.delivered_bytes += z->len;
    return frame_ref(z);
}

/* ---- inflation ------------------------------------------------------------------------------ */

/* Runs the inflater over in (len bytes) into d->ibuf from *have, up to max bytes. */
static enum deflate_rx inflate_some(struct deflate *d, const unsigned char *in, size_t len,
                                    size_t max, size_t *have, int *ended) {
    z_stream *z = &d->inf;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    /* until the input is used up and the output was not cut short by the buffer's end */
    while (!*ended && (z->avail_in > 0 || *have == d->icap)) {
        if (*have == d->icap) {
            /* one byte past max tells that it is too big; never more than that is allocated */
            size_t want = d->icap ? d->icap * 2 : 4096;
            if (want > max + 1)
                want = max + 1;
            if (want <= d->icap)
                return DEFLATE_RX_TOO_BIG;
            if (reserve(&d->ibuf, &d->icap, want))
                return DEFLATE_RX_NOMEM;
            d->icap = want;
        }
        z->next_out = d->ibuf + *have;
        z->avail_out = (uInt)(d->icap - *have);
        int rc = inflate(z, Z_SYNC_FLUSH);
        *have = (size_t)(z->next_out - d->ibuf);
        if (*have > max)
            return DEFLATE_RX_TOO_BIG;
        if (rc == Z_STREAM_END)
            *ended = 1;
        else if (rc == Z_MEM_ERROR)
            return DEFLATE_RX_NOMEM;
        else if (rc == Z_BUF_ERROR && z->avail_in == 0 && z->avail_out > 0)
            break; /* nothing more to make of this input */
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            return DEFLATE_RX_INVALID;
    }
    return DEFLATE_RX_OK;
}

enum deflate_rx deflate_inflate(struct deflate *d, const void *in, size_t len, size_t max,
                                const void **out, size_t *out_len) {
    z_stream *z = &d->inf;
    if (!d->inf_ready) {
        memset(z, 0, sizeof(*z));
        if (inflateInit2(z, -15) != Z_OK)
            return DEFLATE_RX_NOMEM;
        d->inf_ready = 1;
    } else if (inflateReset(z) != Z_OK) {
        return DEFLATE_RX_NOMEM;
    }
    size_t have = 0;
    int ended = 0;
    enum deflate_rx r = inflate_some(d, in, len, max, &have, &ended);
    if (r == DEFLATE_RX_OK && ended && z->avail_in > 0)
        r = DEFLATE_RX_INVALID; /* bytes after the final block */
    if (r == DEFLATE_RX_OK && !ended)
        r = inflate_some(d, tail, sizeof(tail), max, &have, &ended);
    if (r == DEFLATE_RX_OK && !ended && z->avail_in > 0)
        r = DEFLATE_RX_INVALID;
    d->stats.inflate_in_bytes += len;
    if (r == DEFLATE_RX_INVALID)
        d->stats.inflate_invalid++;
    else if (r == DEFLATE_RX_TOO_BIG)
        d->stats.inflate_too_big++;
    if (r != DEFLATE_RX_OK) {
        deflate_rx_done(d);
        return r;
    }
    d->stats.inflations++;
    d->stats.inflate_out_bytes += have;
    *out = d->ibuf ? (const void *)d->ibuf : "";
    *out_len = have;
    return DEFLATE_RX_OK;
}

void deflate_rx_done(struct deflate *d) {
    if (d->icap > KEEP_CAP) {
        free(d->ibuf);
        d->ibuf = NULL;
        d->icap = 0;
    }
}
