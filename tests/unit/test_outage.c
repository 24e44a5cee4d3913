/* Unit tests for outage.c: when an unreachable Redis is reported (after the grace period, then
 * once per interval) and when its return is. */
#include "outage.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_start_within_grace_says_nothing(void **state) {
    (void)state;
    struct outage o;
    int64_t d = -1;
    outage_init(&o, 1000, 1000, 30000);
    assert_int_equal(outage_update(&o, 0, 1000, &d), OUTAGE_NONE);
    assert_int_equal(outage_update(&o, 0, 1999, &d), OUTAGE_NONE);
    assert_int_equal(outage_update(&o, 1, 2005, &d), OUTAGE_NONE); /* connected in time */
    assert_int_equal(outage_update(&o, 1, 90000, &d), OUTAGE_NONE);
}

static void test_unreachable_at_start(void **state) {
    (void)state;
    struct outage o;
    int64_t d = -1;
    outage_init(&o, 1000, 1000, 30000);
    assert_int_equal(outage_update(&o, 0, 1500, &d), OUTAGE_NONE);
    assert_int_equal(outage_update(&o, 0, 2000, &d), OUTAGE_DOWN);
    assert_int_equal(d, 1000);
    assert_int_equal(outage_update(&o, 0, 31999, &d), OUTAGE_NONE);
    assert_int_equal(outage_update(&o, 0, 32000, &d), OUTAGE_STILL_DOWN);
    assert_int_equal(d, 31000);
    assert_int_equal(outage_update(&o, 0, 32100, &d), OUTAGE_NONE);
    assert_int_equal(outage_update(&o, 0, 62000, &d), OUTAGE_STILL_DOWN);
    assert_int_equal(outage_update(&o, 1, 62500, &d), OUTAGE_BACK);
    assert_int_equal(d, 61500);
    assert_int_equal(outage_update(&o, 1, 62600, &d), OUTAGE_NONE);
}

static void test_each_outage_reported_once(void **state) {
    (void)state;
    struct outage o;
    int64_t d = -1;
    outage_init(&o, 0, 1000, 5000);
    assert_int_equal(outage_update(&o, 1, 10, &d), OUTAGE_NONE);
    /* a blip shorter than the grace: nothing (the links' own lines tell of it) */
    assert_int_equal(outage_update(&o, 0, 100000, &d), OUTAGE_NONE);
    assert_int_equal(outage_update(&o, 0, 100900, &d), OUTAGE_NONE);
    assert_int_equal(outage_update(&o, 1, 101000, &d), OUTAGE_NONE);
    /* a real outage: its own grace counts from its start, not the blip's */
    assert_int_equal(outage_update(&o, 0, 200000, &d), OUTAGE_NONE);
    assert_int_equal(outage_update(&o, 0, 200999, &d), OUTAGE_NONE);
    assert_int_equal(outage_update(&o, 0, 201000, &d), OUTAGE_DOWN);
    assert_int_equal(d, 1000);
    assert_int_equal(outage_update(&o, 0, 205999, &d), OUTAGE_NONE);
    assert_int_equal(outage_update(&o, 0, 206000, &d), OUTAGE_STILL_DOWN);
    assert_int_equal(d, 6000);
    assert_int_equal(outage_update(&o, 1, 207000, &d), OUTAGE_BACK);
    assert_int_equal(d, 7000);
    /* the next outage is new: first a DOWN again */
    assert_int_equal(outage_update(&o, 0, 300000, &d), OUTAGE_NONE);
    assert_int_equal(outage_update(&o, 0, 301000, &d), OUTAGE_DOWN);
    assert_int_equal(d, 1000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_within_grace_says_nothing),
        cmocka_unit_test(test_unreachable_at_start),
        cmocka_unit_test(test_each_outage_reported_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
