/* Connection ids "<node>#<n>": what connid_parse accepts is exactly what connid_format writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connid.h"

#include <string.h>

static int parse(const char *node, const char *conn, uint64_t *no) {
    return connid_parse(node, conn, strlen(conn), no);
}

static void test_round_trip(void **state) {
    (void)state;
    const uint64_t nums[] = {0, 1, 9, 10, 1764480000000001ULL, UINT64_MAX};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        char buf[96];
        int n = connid_format("fe-1", nums[i], buf, sizeof(buf));
        assert_true(n > 0 && (size_t)n < sizeof(buf));
        uint64_t no = 12345;
        assert_int_equal(connid_parse("fe-1", buf, (size_t)n, &no), 0);
        assert_true(no == nums[i]);
    }
    char buf[32];
    connid_format("fe-1", 42, buf, sizeof(buf));
    assert_string_equal(buf, "fe-1#42");
}

static void test_other_node(void **state) {
    (void)state;
    uint64_t no = 7;
    assert_int_equal(parse("fe-1", "fe-2#5", &no), -1);
    assert_int_equal(parse("fe-1", "fe-10#5", &no), -1); /* our id is a prefix of theirs */
    assert_int_equal(parse("fe-10", "fe-1#5", &no), -1); /* theirs is a prefix of ours */
    assert_int_equal(parse("fe-1", "FE-1#5", &no), -1);
    assert_int_equal(parse("fe-1", "", &no), -1);
    assert_int_equal(parse("fe-1", "fe-", &no), -1);
    assert_true(no == 7); /* untouched on failure */
}

static void test_missing_hash_or_number(void **state) {
    (void)state;
    uint64_t no = 7;
    assert_int_equal(parse("fe-1", "fe-1", &no), -1);
    assert_int_equal(parse("fe-1", "fe-15", &no), -1);
    assert_int_equal(parse("fe-1", "fe-1:5", &no), -1);
    assert_int_equal(parse("fe-1", "fe-1#", &no), -1);
    assert_int_equal(parse("fe-1", "#5", &no), -1);
    assert_true(no == 7);
}

static void test_non_digits(void **state) {
    (void)state;
    uint64_t no = 7;
    const char *bad[] = {"fe-1#5a",  "fe-1#a5",  "fe-1#-5",  "fe-1#+5", "fe-1# 5",
                         "fe-1#5 ",  "fe-1#0x5", "fe-1#5#6", "fe-1##5", "fe-1#1e3",
                         "fe-1#5\n", "fe-1#/",   "fe-1#:"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse("fe-1", bad[i], &no), -1);
    /* an embedded NUL is a non-digit, not the end of the id */
    assert_int_equal(connid_parse("fe-1",
                                  "fe-1#5\0"
                                  "6",
                                  8, &no),
                     -1);
    assert_true(no == 7);
}

static void test_leading_zero(void **state) {
    (void)state;
    /* connid_format never writes one, so "node#012" names no connection (not number 12). */
    uint64_t no = 7;
    assert_int_equal(parse("fe-1", "fe-1#012", &no), -1);
    assert_int_equal(parse("fe-1", "fe-1#00", &no), -1);
    assert_int_equal(parse("fe-1", "fe-1#0", &no), 0);
    assert_true(no == 0);
}

static void test_overflow(void **state) {
    (void)state;
    uint64_t no = 7;
    assert_int_equal(parse("fe-1", "fe-1#18446744073709551615", &no), 0);
    assert_true(no == UINT64_MAX);
    no = 7;
    /* one past UINT64_MAX would wrap to 0; 2^64 + 1 would wrap to 1, a real local number */
    assert_int_equal(parse("fe-1", "fe-1#18446744073709551616", &no), -1);
    assert_int_equal(parse("fe-1", "fe-1#18446744073709551617", &no), -1);
    assert_int_equal(parse("fe-1", "fe-1#99999999999999999999", &no), -1);
    assert_int_equal(parse("fe-1", "fe-1#184467440737095516150", &no), -1);
    assert_true(no == 7);
}

static void test_length_not_nul(void **state) {
    (void)state;
    /* conn comes from Redis replies and pub/sub payloads: only len bytes count. */
    uint64_t no = 0;
    assert_int_equal(connid_parse("fe-1", "fe-1#123456", 7, &no), 0);
    assert_true(no == 12);
    assert_int_equal(connid_parse("fe-1", "fe-1#123456", 5, &no), -1);
    assert_int_equal(connid_parse("fe-1", "fe-1#123456", 4, &no), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_other_node),
        cmocka_unit_test(test_missing_hash_or_number),
        cmocka_unit_test(test_non_digits),
        cmocka_unit_test(test_leading_zero),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_length_not_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
