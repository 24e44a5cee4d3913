/* Unit tests of frontend/deflate.c and utf8.c: offer negotiation (RFC 7692 7.1), the response
 * line, one compression shared by every recipient, inflation bounded by the limit, garbage, and
 * UTF-8 validation. */
#include "deflate.h"
#include "frame.h"
#include "utf8.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

static int negotiate(const char *h, struct deflate_params *p) {
    return deflate_negotiate(h, strlen(h), p);
}

static void test_offers_accepted(void **state) {
    (void)state;
    struct deflate_params p;
    assert_int_equal(negotiate("permessage-deflate", &p), 1);
    assert_int_equal(p.server_bits, 15);
    assert_int_equal(p.bits_asked, 0);
    /* Chromium, Firefox, ws, websockets */
    assert_int_equal(negotiate("permessage-deflate; client_max_window_bits", &p), 1);
    assert_int_equal(negotiate("permessage-deflate;client_max_window_bits=12", &p), 1);
    assert_int_equal(negotiate("permessage-deflate; server_no_context_takeover; "
                               "client_no_context_takeover",
                               &p),
                     1);
    assert_int_equal(negotiate("permessage-deflate; server_max_window_bits=10", &p), 1);
    assert_int_equal(p.server_bits, 10);
    assert_int_equal(p.bits_asked, 1);
    assert_int_equal(negotiate("permessage-deflate; server_max_window_bits=\"9\"", &p), 1);
    assert_int_equal(p.server_bits, 9);
    /* another extension first; our offer with parameters, then a fallback offer */
    assert_int_equal(negotiate("x-webkit-deflate-frame, permessage-deflate", &p), 1);
    assert_int_equal(negotiate("permessage-deflate; client_max_window_bits=10, "
                               "permessage-deflate",
                               &p),
                     1);
}

static void test_offers_declined(void **state) {
    (void)state;
    struct deflate_params p;
    assert_int_equal(negotiate("", &p), 0);
    assert_int_equal(negotiate("x-webkit-deflate-frame", &p), 0);
    assert_int_equal(negotiate("permessage-deflate; server_max_window_bits=8", &p), 0);
    assert_int_equal(negotiate("permessage-deflate; server_max_window_bits=16", &p), 0);
    assert_int_equal(negotiate("permessage-deflate; server_max_window_bits=010", &p), 0);
    assert_int_equal(negotiate("permessage-deflate; server_max_window_bits", &p), 0);
    assert_int_equal(negotiate("permessage-deflate; client_max_window_bits=7", &p), 0);
    assert_int_equal(negotiate("permessage-deflate; server_no_context_takeover=1", &p), 0);
    assert_int_equal(negotiate("permessage-deflate; client_no_context_takeover; "
                               "client_no_context_takeover",
                               &p),
                     0);
    assert_int_equal(negotiate("permessage-deflate; foo", &p), 0);
    assert_int_equal(negotiate("permessage-deflate; server_max_window_bits=\"10", &p), 0);
    /* only the first offer counts; and a bare first offer followed by another is declined (lws
     * would fail the handshake on the repeated name) */
    assert_int_equal(
        negotiate("permessage-deflate; server_max_window_bits=8, permessage-deflate", &p), 0);
    assert_int_equal(
        negotiate("permessage-deflate, permessage-deflate; client_max_window_bits", &p), 0);
}

static void test_response_line(void **state) {
    (void)state;
    char buf[200];
    struct deflate_params p = {.server_bits = 15, .bits_asked = 0};
    int n = deflate_response_line(&p, buf, sizeof(buf));
    assert_string_equal(buf, "Sec-WebSocket-Extensions: permessage-deflate; "
                             "server_no_context_takeover; client_no_context_takeover\r\n");
    assert_int_equal(n, (int)strlen(buf));
    p = (struct deflate_params){.server_bits = 10, .bits_asked = 1};
    deflate_response_line(&p, buf, sizeof(buf));
    assert_non_null(strstr(buf, "; server_max_window_bits=10\r\n"));
    assert_int_equal(deflate_response_line(&p, buf, 20), -1);
}

static char *json_doc(size_t *len) {
    size_t cap = 8192, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n, "{\"type\":\"doc\",\"items\":[");
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(s + n, cap - n,
                              "%s{\"sku\":\"SKU-%05d\",\"title\":\"Coffee beans\",\"qty\":%d}",
                              i ? "," : "", 1000 + i * 37, i % 3 + 1);
    n += (size_t)snprintf(s + n, cap - n, "]}");
    *len = n;
    return s;
}

/* Inflates a compressed frame's payload as a client would (fresh inflater, tail put back). */
static char *client_inflate(const struct frame *z, size_t *out_len) {
    z_stream s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(inflateInit2(&s, -15), Z_OK);
    size_t cap = 1 << 20;
    unsigned char *in = malloc(z->len + 4), *out = malloc(cap);
    memcpy(in, z->buf + FRAME_MAX_HEADER, z->len);
    memcpy(in + z->len, "\x00\x00\xff\xff", 4);
    s.next_in = in;
    s.avail_in = (uInt)z->len + 4;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    int rc = inflate(&s, Z_SYNC_FLUSH);
    assert_true(rc == Z_OK || rc == Z_STREAM_END);
    *out_len = cap - s.avail_out;
    inflateEnd(&s);
    free(in);
    return (char *)out;
}

static void test_compressed_once_and_shared(void **state) {
    (void)state;
    struct deflate *d = deflate_create(512);
    size_t len;
    char *doc = json_doc(&len);
    struct frame *f = frame_new(doc, len, 0);
    struct frame *a = deflate_frame_for(d, f, 15);
    struct frame *b = deflate_frame_for(d, f, 15);
    assert_ptr_not_equal(a, f);
    assert_ptr_equal(a, b); /* the same shared twin */
    assert_int_equal(deflate_stats(d)->compressions, 1);
    assert_int_equal(deflate_stats(d)->deliveries, 2);
    assert_true(a->len < len / 2);
    /* RSV1 and FIN set, text opcode; the 00 00 ff ff tail stripped */
    const unsigned char *w = frame_wire(a);
    assert_int_equal(w[0], 0xC1);
    assert_memory_not_equal(a->buf + FRAME_MAX_HEADER + a->len - 4, "\x00\x00\xff\xff", 4);
    size_t n;
    char *back = client_inflate(a, &n);
    assert_int_equal(n, len);
    assert_memory_equal(back, doc, len);
    free(back);
    /* another window size: its own compression; no deflate: the frame itself */
    struct frame *c10 = deflate_frame_for(d, f, 10);
    assert_ptr_not_equal(c10, a);
    assert_ptr_not_equal(c10, f);
    struct frame *plain = deflate_frame_for(d, f, 0);
    assert_ptr_equal(plain, f);
    frame_unref(plain);
    frame_unref(c10);
    frame_unref(a);
    frame_unref(b);
    frame_unref(f); /* frees the twin with it (ASan: no leak) */
    /* below the threshold: plain */
    struct frame *small = frame_new(doc, 100, 0);
    struct frame *s2 = deflate_frame_for(d, small, 15);
    assert_ptr_equal(s2, small);
    frame_unref(s2);
    frame_unref(small);
    free(doc);
    deflate_destroy(d);
}

static void test_incompressible_plain(void **state) {
    (void)state;
    struct deflate *d = deflate_create(16);
    unsigned char rnd[1024];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(rnd); i++) {
        x = x * 1103515245u + 12345u;
        rnd[i] = (unsigned char)(x >> 16);
    }
    struct frame *f = frame_new(rnd, sizeof(rnd), 1);
    struct frame *z = deflate_frame_for(d, f, 15);
    assert_ptr_equal(z, f);
    assert_int_equal(deflate_stats(d)->skipped, 1);
    frame_unref(z);
    frame_unref(f);
    deflate_destroy(d);
}

/* Raw deflate of data, sync-flushed, tail stripped: what a client sends. */
static unsigned char *client_deflate(const void *data, size_t len, size_t *out_len) {
    z_stream s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(deflateInit2(&s, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&s, (uLong)len) + 16;
    unsigned char *out = malloc(cap);
    s.next_in = (Bytef *)(uintptr_t)data;
    s.avail_in = (uInt)len;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    assert_int_equal(deflate(&s, Z_SYNC_FLUSH), Z_OK);
    *out_len = cap - s.avail_out - 4;
    deflateEnd(&s);
    return out;
}

static void test_inflate(void **state) {
    (void)state;
    struct deflate *d = deflate_create(512);
    size_t len, zlen, n;
    const void *out;
    char *doc = json_doc(&len);
    unsigned char *z = client_deflate(doc, len, &zlen);
    for (int round = 0; round < 2; round++) { /* the stream is reset between messages */
        assert_int_equal(deflate_inflate(d, z, zlen, 65536, &out, &n), DEFLATE_RX_OK);
        assert_int_equal(n, len);
        assert_memory_equal(out, doc, len);
        deflate_rx_done(d);
    }
    /* exactly at the limit is fine, one byte less is too big */
    assert_int_equal(deflate_inflate(d, z, zlen, len, &out, &n), DEFLATE_RX_OK);
    assert_int_equal(deflate_inflate(d, z, zlen, len - 1, &out, &n), DEFLATE_RX_TOO_BIG);
    free(z);
    /* a bomb: 16 MiB of zeros in a few KiB, refused at the limit */
    size_t big = 16u << 20;
    char *zeros = calloc(1, big);
    z = client_deflate(zeros, big, &zlen);
    assert_true(zlen < 65536);
    assert_int_equal(deflate_inflate(d, z, zlen, 65536, &out, &n), DEFLATE_RX_TOO_BIG);
    assert_int_equal(deflate_stats(d)->inflate_too_big, 2);
    free(z);
    free(zeros);
    /* garbage: a block of the reserved type */
    assert_int_equal(deflate_inflate(d, "\xff\xfe\xfd\xfc", 4, 65536, &out, &n),
                     DEFLATE_RX_INVALID);
    assert_int_equal(deflate_stats(d)->inflate_invalid, 1);
    /* an empty message (RFC 7692 7.2.3.6: 00) */
    assert_int_equal(deflate_inflate(d, "\x00", 1, 65536, &out, &n), DEFLATE_RX_OK);
    assert_int_equal(n, 0);
    free(doc);
    deflate_destroy(d);
}

static void test_utf8(void **state) {
    (void)state;
    assert_true(utf8_valid("", 0));
    assert_true(utf8_valid("caf\xc3\xa9 \xe6\x88\xbf \xf0\x9f\x98\x80", 14));
    assert_false(utf8_valid("caf\xe9", 4));          /* Latin-1 */
    assert_false(utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(utf8_valid("\xe6\x88", 2));         /* cut short */
    assert_false(utf8_valid("\x80", 1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offers_accepted),
        cmocka_unit_test(test_offers_declined),
        cmocka_unit_test(test_response_line),
        cmocka_unit_test(test_compressed_once_and_shared),
        cmocka_unit_test(test_incompressible_plain),
        cmocka_unit_test(test_inflate),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
