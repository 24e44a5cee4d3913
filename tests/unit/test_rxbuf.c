/* Unit tests for the receive assembly in frontend/rxbuf.c: messages in one piece (no copy), in
 * frames split into pieces, in several frames, with empty pieces anywhere, the size limit (also
 * against sizes that would wrap), and giving back large buffers. Leaks are caught by the
 * sanitizer build. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "rxbuf.h"

#include <stdlib.h>
#include <string.h>

#define MAX 100

struct piece {
    int first, final;
    size_t remaining;
    const char *data; /* NULL: no data pointer at all */
};

/* Feeds every piece; all but the last must answer RXBUF_MORE, the last RXBUF_COMPLETE with
 * want. */
static void expect_message(struct rxbuf *rb, const struct piece *p, size_t n, const char *want) {
    const void *msg = NULL;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t plen = p[i].data ? strlen(p[i].data) : 0;
        enum rxbuf_status st =
            rxbuf_add(rb, p[i].first, p[i].final, p[i].remaining, p[i].data, plen, MAX, &msg, &len);
        assert_int_equal(st, i + 1 < n ? RXBUF_MORE : RXBUF_COMPLETE);
    }
    assert_non_null(msg);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(msg, want, len);
    rxbuf_done(rb);
}

static void test_single_piece_is_not_copied(void **state) {
    (void)state;
    struct rxbuf rb = {0};
    static const char data[] = "{\"type\":\"text\"}";
    const void *msg;
    size_t len;
    assert_int_equal(rxbuf_add(&rb, 1, 1, 0, data, strlen(data), MAX, &msg, &len), RXBUF_COMPLETE);
    assert_ptr_equal(msg, data);
    assert_int_equal(len, strlen(data));
    assert_null(rb.buf); /* nothing allocated */
    rxbuf_done(&rb);
    rxbuf_free(&rb);
}

static void test_fragments(void **state) {
    (void)state;
    struct rxbuf rb = {0};
    /* one frame in three pieces */
    const struct piece split[] = {{1, 1, 4, "abc"}, {0, 1, 2, "defg"}, {0, 1, 0, "hi"}};
    expect_message(&rb, split, 3, "abcdefghi");
    /* three frames */
    const struct piece frames[] = {{1, 0, 0, "one "}, {0, 0, 0, "two "}, {0, 1, 0, "three"}};
    expect_message(&rb, frames, 3, "one two three");
    /* the buffer is kept for the next message when small */
    assert_non_null(rb.buf);
    rxbuf_free(&rb);
    assert_null(rb.buf);
    assert_int_equal(rb.cap, 0);
}

static void test_empty_pieces(void **state) {
    (void)state;
    struct rxbuf rb = {0};
    /* an empty non-final first frame (the case that once copied into a NULL buffer) */
    const struct piece empty_first[] = {{1, 0, 0, NULL}, {0, 1, 0, "x"}};
    expect_message(&rb, empty_first, 2, "x");
    rxbuf_free(&rb);
    const struct piece empty_first_str[] = {{1, 0, 0, ""}, {0, 1, 0, "{}"}};
    expect_message(&rb, empty_first_str, 2, "{}");
    rxbuf_free(&rb);
    /* empty everywhere */
    const struct piece around[] = {{1, 0, 0, ""}, {0, 0, 0, NULL}, {0, 0, 0, "a"},
                                   {0, 0, 0, ""}, {0, 0, 0, "b"},  {0, 1, 0, NULL}};
    expect_message(&rb, around, 6, "ab");
    rxbuf_free(&rb);
    /* messages with no bytes at all still come back as a valid (non-NULL) pointer */
    const struct piece nothing[] = {{1, 0, 0, NULL}, {0, 0, 0, ""}, {0, 1, 0, NULL}};
    expect_message(&rb, nothing, 3, "");
    assert_null(rb.buf);
    const struct piece whole_empty[] = {{1, 1, 0, NULL}};
    expect_message(&rb, whole_empty, 1, "");
    rxbuf_free(&rb);
}

static void test_first_drops_unfinished(void **state) {
    (void)state;
    struct rxbuf rb = {0};
    const void *msg;
    size_t len;
    assert_int_equal(rxbuf_add(&rb, 1, 0, 0, "stale", 5, MAX, &msg, &len), RXBUF_MORE);
    const struct piece fresh[] = {{1, 0, 0, "new"}, {0, 1, 0, "er"}};
    expect_message(&rb, fresh, 2, "newer");
    rxbuf_free(&rb);
}

static void test_limit(void **state) {
    (void)state;
    struct rxbuf rb = {0};
    const void *msg;
    size_t len;
    char big[MAX + 1];
    memset(big, 'b', sizeof(big));
    /* exactly max is fine, whole or gathered */
    assert_int_equal(rxbuf_add(&rb, 1, 1, 0, big, MAX, MAX, &msg, &len), RXBUF_COMPLETE);
    assert_int_equal(len, MAX);
    assert_int_equal(rxbuf_add(&rb, 1, 0, 0, big, 60, MAX, &msg, &len), RXBUF_MORE);
    assert_int_equal(rxbuf_add(&rb, 0, 1, 0, big, 40, MAX, &msg, &len), RXBUF_COMPLETE);
    assert_int_equal(len, MAX);
    rxbuf_done(&rb);
    /* one more byte: in one piece, announced by the frame's remaining bytes, or gathered */
    assert_int_equal(rxbuf_add(&rb, 1, 1, 0, big, MAX + 1, MAX, &msg, &len), RXBUF_TOO_BIG);
    assert_int_equal(rxbuf_add(&rb, 1, 1, 91, big, 10, MAX, &msg, &len), RXBUF_TOO_BIG);
    assert_int_equal(rxbuf_add(&rb, 1, 0, 0, big, 60, MAX, &msg, &len), RXBUF_MORE);
    assert_int_equal(rxbuf_add(&rb, 0, 0, 0, "", 0, MAX, &msg, &len), RXBUF_MORE);
    assert_int_equal(rxbuf_add(&rb, 0, 1, 1, big, 40, MAX, &msg, &len), RXBUF_TOO_BIG);
    assert_int_equal(rb.len, 0);
    /* a peer's 64-bit length must not wrap the sum into something small */
    assert_int_equal(rxbuf_add(&rb, 1, 0, 0, big, 10, MAX, &msg, &len), RXBUF_MORE);
    assert_int_equal(rxbuf_add(&rb, 0, 1, SIZE_MAX - 5, big, 10, MAX, &msg, &len), RXBUF_TOO_BIG);
    assert_int_equal(rxbuf_add(&rb, 1, 1, SIZE_MAX, big, 1, MAX, &msg, &len), RXBUF_TOO_BIG);
    /* and a new message is fine afterwards */
    const struct piece after[] = {{1, 0, 0, "ok"}, {0, 1, 0, "!"}};
    expect_message(&rb, after, 2, "ok!");
    rxbuf_free(&rb);
}

static void test_large_buffer_given_back(void **state) {
    (void)state;
    struct rxbuf rb = {0};
    const void *msg;
    size_t len;
    size_t total = RXBUF_KEEP_CAP + 1000;
    char *data = malloc(total);
    assert_non_null(data);
    memset(data, 'L', total);
    assert_int_equal(rxbuf_add(&rb, 1, 0, 0, data, 1000, total, &msg, &len), RXBUF_MORE);
    assert_int_equal(rxbuf_add(&rb, 0, 1, 0, data, total - 1000, total, &msg, &len),
                     RXBUF_COMPLETE);
    assert_int_equal(len, total);
    assert_memory_equal(msg, data, total);
    assert_true(rb.cap > RXBUF_KEEP_CAP);
    rxbuf_done(&rb);
    assert_null(rb.buf);
    assert_int_equal(rb.cap, 0);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_piece_is_not_copied),
        cmocka_unit_test(test_fragments),
        cmocka_unit_test(test_empty_pieces),
        cmocka_unit_test(test_first_drops_unfinished),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_large_buffer_given_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
