/* Unit tests for app_count_delay() in frontend/app.c: which bucket of the delivery-delay
 * histogram a wait falls into, and the running sum. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "app.h"

#include <string.h>

static int bucket_of(int64_t us) {
    static struct app app;
    memset(&app.stats, 0, sizeof(app.stats));
    app_count_delay(&app.stats, us);
    for (int i = 0; i <= APP_DELAY_BOUNDS; i++)
        if (app.stats.delay_buckets[i])
            return i;
    fail_msg("no bucket counted %lld us", (long long)us);
    return -1;
}

static void test_bounds_are_inclusive(void **state) {
    (void)state;
    for (int i = 0; i < APP_DELAY_BOUNDS; i++) {
        assert_int_equal(bucket_of(app_delay_bounds_us[i]), i);
        assert_int_equal(bucket_of(app_delay_bounds_us[i] + 1), i + 1);
    }
}

static void test_extremes(void **state) {
    (void)state;
    assert_int_equal(bucket_of(0), 0);
    assert_int_equal(bucket_of(-5), 0); /* a clock that stepped back counts as no wait */
    assert_int_equal(bucket_of(INT64_MAX), APP_DELAY_BOUNDS);
}

static void test_bounds_ascend(void **state) {
    (void)state;
    for (int i = 1; i < APP_DELAY_BOUNDS; i++)
        assert_true(app_delay_bounds_us[i] > app_delay_bounds_us[i - 1]);
}

static void test_sum(void **state) {
    (void)state;
    static struct app app;
    app_count_delay(&app.stats, 1500);
    app_count_delay(&app.stats, 2500);
    app_count_delay(&app.stats, -7);
    assert_int_equal(app.stats.delay_sum_us, 4000);
    uint64_t n = 0;
    for (int i = 0; i <= APP_DELAY_BOUNDS; i++)
        n += app.stats.delay_buckets[i];
    assert_int_equal(n, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds_are_inclusive),
        cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_bounds_ascend),
        cmocka_unit_test(test_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
