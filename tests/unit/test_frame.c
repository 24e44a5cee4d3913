/* Unit tests for shared outgoing frames in frontend/frame.c: payload placement after LWS_PRE and
 * reference counting. Leaks and double frees are caught by the sanitizer build. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "frame.h"

#include <stdlib.h>
#include <string.h>

static void test_new_copies_payload_after_pre(void **state) {
    (void)state;
    char data[] = "{\"type\":\"chat\",\"seq\":1}";
    size_t len = strlen(data);
    struct frame *f = frame_new(data, len, 0);
    assert_non_null(f);
    assert_int_equal(f->refs, 1);
    assert_int_equal(f->binary, 0);
    assert_int_equal(f->len, len);
    assert_ptr_equal(frame_payload(f), f->buf + LWS_PRE);
    assert_memory_equal(frame_payload(f), data, len);
    /* A copy, not a reference to the caller's buffer. */
    assert_ptr_not_equal(frame_payload(f), (unsigned char *)data);
    memset(data, 'x', len);
    assert_memory_equal(frame_payload(f), "{\"type\":\"chat\",\"seq\":1}", len);
    frame_unref(f);
}

static void test_headroom_is_writable(void **state) {
    (void)state;
    /* lws_write() writes the WebSocket header into the LWS_PRE bytes before the payload. */
    struct frame *f = frame_new("abc", 3, 0);
    assert_non_null(f);
    memset(f->buf, 0xee, LWS_PRE);
    assert_memory_equal(frame_payload(f), "abc", 3);
    frame_unref(f);
}

static void test_binary_flag(void **state) {
    (void)state;
    const unsigned char bytes[] = {0x00, 0xff, '\n', 0x7f};
    struct frame *f = frame_new(bytes, sizeof(bytes), 1);
    assert_non_null(f);
    assert_int_equal(f->binary, 1);
    assert_int_equal(f->len, sizeof(bytes));
    assert_memory_equal(frame_payload(f), bytes, sizeof(bytes));
    frame_unref(f);

    f = frame_new(bytes, sizeof(bytes), 42); /* any non-zero means binary */
    assert_non_null(f);
    assert_int_equal(f->binary, 1);
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
        cmocka_unit_test(test_new_copies_payload_after_pre),
        cmocka_unit_test(test_headroom_is_writable),
        cmocka_unit_test(test_binary_flag),
        cmocka_unit_test(test_empty_payload),
        cmocka_unit_test(test_large_payload),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_unref_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
