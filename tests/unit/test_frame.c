/* Unit tests for shared outgoing frames in frontend/frame.c: the WebSocket header built in front
 * of the payload (RFC 6455 section 5.2) and reference counting. Leaks and double frees are
 * caught by the sanitizer build. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "frame.h"

#include <stdlib.h>
#include <string.h>

static void test_new_copies_payload(void **state) {
    (void)state;
    char data[] = "{\"type\":\"chat\",\"seq\":1}";
    size_t len = strlen(data);
    struct frame *f = frame_new(data, len, 0);
    assert_non_null(f);
    assert_int_equal(f->refs, 1);
    assert_int_equal(f->binary, 0);
    assert_int_equal(f->len, len);
    assert_memory_equal(frame_payload(f), data, len);
    /* A copy, not a reference to the caller's buffer. */
    assert_ptr_not_equal(frame_payload(f), (unsigned char *)data);
    memset(data, 'x', len);
    assert_memory_equal(frame_payload(f), "{\"type\":\"chat\",\"seq\":1}", len);
    frame_unref(f);
}

/* The wire bytes are header + payload, contiguous. */
static void check_wire(size_t len, int binary, const unsigned char *header, size_t hlen) {
    unsigned char *data = malloc(len ? len : 1);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)(i * 7u + 1);
    struct frame *f = frame_new(data, len, binary);
    assert_non_null(f);
    assert_int_equal(f->hlen, hlen);
    assert_int_equal(frame_wire_len(f), hlen + len);
    assert_memory_equal(frame_wire(f), header, hlen);
    assert_ptr_equal(frame_wire(f) + hlen, frame_payload(f));
    if (len)
        assert_memory_equal(frame_payload(f), data, len);
    frame_unref(f);
    free(data);
}

static void test_header_lengths(void **state) {
    (void)state;
    /* FIN + text opcode 0x1, no mask bit (server to client) */
    check_wire(0, 0, (const unsigned char[]){0x81, 0}, 2);
    check_wire(125, 0, (const unsigned char[]){0x81, 125}, 2);
    /* 126..65535: 16-bit extended length, network order */
    check_wire(126, 0, (const unsigned char[]){0x81, 126, 0x00, 126}, 4);
    check_wire(65535, 0, (const unsigned char[]){0x81, 126, 0xff, 0xff}, 4);
    /* 65536 and up: 64-bit extended length */
    check_wire(65536, 0, (const unsigned char[]){0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}, 10);
    check_wire(1 << 20, 1, (const unsigned char[]){0x82, 127, 0, 0, 0, 0, 0, 0x10, 0, 0}, 10);
}

static void test_binary_flag(void **state) {
    (void)state;
    const unsigned char bytes[] = {0x00, 0xff, '\n', 0x7f};
    struct frame *f = frame_new(bytes, sizeof(bytes), 1);
    assert_non_null(f);
    assert_int_equal(f->binary, 1);
    assert_int_equal(f->len, sizeof(bytes));
    assert_int_equal(frame_wire(f)[0], 0x82); /* FIN + binary opcode 0x2 */
    assert_memory_equal(frame_payload(f), bytes, sizeof(bytes));
    frame_unref(f);

    f = frame_new(bytes, sizeof(bytes), 42); /* any non-zero means binary */
    assert_non_null(f);
    assert_int_equal(f->binary, 1);
    assert_int_equal(frame_wire(f)[0], 0x82);
    frame_unref(f);
}

static void test_empty_payload(void **state) {
    (void)state;
    struct frame *f = frame_new("", 0, 0);
    assert_non_null(f);
    assert_int_equal(f->len, 0);
    assert_int_equal(f->refs, 1);
    frame_unref(f);
}

static void test_large_payload(void **state) {
    (void)state;
    size_t len = 1 << 20;
    unsigned char *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)(i * 31u);
    struct frame *f = frame_new(data, len, 1);
    assert_non_null(f);
    assert_memory_equal(frame_payload(f), data, len);
    free(data);
    frame_unref(f);
}

static void test_refcount(void **state) {
    (void)state;
    struct frame *f = frame_new("hello", 5, 0);
    assert_non_null(f);
    /* Shared among three recipients' queues. */
    assert_ptr_equal(frame_ref(f), f);
    assert_ptr_equal(frame_ref(f), f);
    assert_int_equal(f->refs, 3);
    frame_unref(f);
    assert_int_equal(f->refs, 2);
    assert_memory_equal(frame_payload(f), "hello", 5);
    frame_unref(f);
    assert_int_equal(f->refs, 1);
    assert_memory_equal(frame_payload(f), "hello", 5);
    frame_unref(f); /* the last reference frees it (the sanitizer build checks for leaks) */
}

static void test_unref_null(void **state) {
    (void)state;
    frame_unref(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_copies_payload), cmocka_unit_test(test_header_lengths),
        cmocka_unit_test(test_binary_flag),        cmocka_unit_test(test_empty_payload),
        cmocka_unit_test(test_large_payload),      cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_unref_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
