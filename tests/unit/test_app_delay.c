/* Unit tests for the histograms of frontend/app.c: which bucket of the delivery-delay and relay
 * histograms a time falls into, the running sums, and what a written frame counts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "app.h"
#include "frame.h"
#include "util.h"

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

/* The relay histogram: its own bounds; a frame written counts in both histograms when it is a
 * relayed message (sent_us set), in the delay one only otherwise. */
static void test_relay_and_written(void **state) {
    (void)state;
    static struct app app;
    memset(&app.stats, 0, sizeof(app.stats));
    for (int i = 1; i < APP_RELAY_BOUNDS; i++)
        assert_true(app_relay_bounds_us[i] > app_relay_bounds_us[i - 1]);
    app_count_relay(&app.stats, app_relay_bounds_us[2]);
    assert_int_equal(app.stats.relay_buckets[2], 1);
    app_count_relay(&app.stats, -3); /* a sender's clock ahead of ours */
    assert_int_equal(app.stats.relay_buckets[0], 1);
    assert_int_equal(app.stats.relay_sum_us, (uint64_t)app_relay_bounds_us[2]);

    memset(&app.stats, 0, sizeof(app.stats));
    struct frame *f = frame_new("{}", 2, 0);
    assert_non_null(f);
    int64_t wall = 0, now = f->born_us + 700;
    app_count_written(&app.stats, f, now, &wall);
    assert_int_equal(app.stats.delay_buckets[1], 1); /* 700 us: over 500, within 1000 */
    assert_int_equal(wall, 0);                       /* not a relayed message: no clock read */
    uint64_t relays = 0;
    for (int i = 0; i <= APP_RELAY_BOUNDS; i++)
        relays += app.stats.relay_buckets[i];
    assert_int_equal(relays, 0);
    f->sent_us = (uint64_t)(util_now_us() - 3000);
    app_count_written(&app.stats, f, now, &wall);
    assert_true(wall > 0);
    int64_t waited = wall - (int64_t)f->sent_us;
    assert_true(waited >= 3000);
    assert_int_equal(app.stats.relay_sum_us, (uint64_t)waited);
    frame_unref(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds_are_inclusive), cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_bounds_ascend),        cmocka_unit_test(test_sum),
        cmocka_unit_test(test_relay_and_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
