/* Archiver retry policy: exponential growth, the cap, jitter bounds, reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backoff.h"

static void test_ceiling_doubles_up_to_cap(void **state) {
    (void)state;
    struct arch_backoff b;
    arch_backoff_init(&b, 100, 5000, 1);
    int64_t want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(arch_backoff_ceiling(&b, i), want[i]);
    assert_int_equal(arch_backoff_ceiling(&b, 1000000), 5000);
}

static void test_delays_within_jitter_bounds(void **state) {
    (void)state;
    struct arch_backoff b;
    arch_backoff_init(&b, 100, 5000, 12345);
    for (unsigned i = 0; i < 200; i++) {
        int64_t ceiling = arch_backoff_ceiling(&b, i);
        int64_t d = arch_backoff_next(&b);
        assert_true(d >= ceiling / 2);
        assert_true(d <= ceiling);
    }
    assert_true(arch_backoff_next(&b) <= 5000);
}

static void test_jitter_spreads(void **state) {
    (void)state;
    /* Two archivers failing together should not retry in lockstep. */
    struct arch_backoff a, b;
    arch_backoff_init(&a, 1000, 1000, 1);
    arch_backoff_init(&b, 1000, 1000, 2);
    int differ = 0, distinct_a = 0;
    int64_t first = arch_backoff_next(&a);
    differ += first != arch_backoff_next(&b);
    for (int i = 0; i < 50; i++) {
        int64_t x = arch_backoff_next(&a);
        differ += x != arch_backoff_next(&b);
        distinct_a += x != first;
    }
    assert_true(differ > 40);
    assert_true(distinct_a > 40);
}

static void test_reset(void **state) {
    (void)state;
    struct arch_backoff b;
    arch_backoff_init(&b, 50, 10000, 7);
    for (int i = 0; i < 10; i++)
        arch_backoff_next(&b);
    assert_true(b.attempt == 10);
    arch_backoff_reset(&b);
    int64_t d = arch_backoff_next(&b);
    assert_true(d >= 25 && d <= 50);
}

static void test_degenerate_settings(void **state) {
    (void)state;
    struct arch_backoff b;
    arch_backoff_init(&b, 0, -5, 0); /* clamped to base 1, cap 1; seed 0 replaced */
    for (int i = 0; i < 100; i++) {
        int64_t d = arch_backoff_next(&b);
        assert_true(d >= 0 && d <= 1);
    }
    /* attempts saturate instead of overflowing */
    for (int i = 0; i < 1000; i++)
        arch_backoff_next(&b);
    assert_true(b.attempt <= 64);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_doubles_up_to_cap),
        cmocka_unit_test(test_delays_within_jitter_bounds),
        cmocka_unit_test(test_jitter_spreads),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_degenerate_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
