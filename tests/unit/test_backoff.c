/* Retry backoff (shared by the frontend's Redis links and the archiver): exponential growth, the
 * cap, jitter bounds, reset, and the exact delays at both ends of the jitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backoff.h"

static void test_ceiling_doubles_up_to_cap(void **state) {
    (void)state;
    struct backoff b;
    backoff_init(&b, 100, 5000, 1);
    int64_t want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(backoff_ceiling(&b, i), want[i]);
    assert_int_equal(backoff_ceiling(&b, 1000000), 5000);
}

static void test_delays_within_jitter_bounds(void **state) {
    (void)state;
    struct backoff b;
    backoff_init(&b, 100, 5000, 12345);
    for (unsigned i = 0; i < 200; i++) {
        int64_t ceiling = backoff_ceiling(&b, i);
        int64_t d = backoff_next(&b);
        assert_true(d >= ceiling / 2);
        assert_true(d <= ceiling);
    }
    assert_true(backoff_next(&b) <= 5000);
}

static void test_jitter_spreads(void **state) {
    (void)state;
    /* Two archivers failing together should not retry in lockstep. */
    struct backoff a, b;
    backoff_init(&a, 1000, 1000, 1);
    backoff_init(&b, 1000, 1000, 2);
    int differ = 0, distinct_a = 0;
    int64_t first = backoff_next(&a);
    differ += first != backoff_next(&b);
    for (int i = 0; i < 50; i++) {
        int64_t x = backoff_next(&a);
        differ += x != backoff_next(&b);
        distinct_a += x != first;
    }
    assert_true(differ > 40);
    assert_true(distinct_a > 40);
}

static void test_reset(void **state) {
    (void)state;
    struct backoff b;
    backoff_init(&b, 50, 10000, 7);
    for (int i = 0; i < 10; i++)
        backoff_next(&b);
    assert_true(b.attempt == 10);
    backoff_reset(&b);
    int64_t d = backoff_next(&b);
    assert_true(d >= 25 && d <= 50);
}

static void test_degenerate_settings(void **state) {
    (void)state;
    struct backoff b;
    backoff_init(&b, 0, -5, 0); /* clamped to base 1, cap 1; seed 0 replaced */
    for (int i = 0; i < 100; i++) {
        int64_t d = backoff_next(&b);
        assert_true(d >= 0 && d <= 1);
    }
    /* attempts saturate instead of overflowing */
    for (int i = 0; i < 1000; i++)
        backoff_next(&b);
    assert_true(b.attempt <= 64);
}

/* A random source the test controls: returns the queued values in order. */
struct script {
    const uint64_t *values;
    size_t n, next;
};

static uint64_t scripted(void *arg) {
    struct script *sc = arg;
    assert_true(sc->next < sc->n);
    return sc->values[sc->next++];
}

static void test_frontend_numbers_at_jitter_edges(void **state) {
    (void)state;
    /* The frontend's Redis links: from 100 ms, doubling, capped at 5 s; each delay in [c/2, c]. */
    const int64_t ceilings[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    enum { N = sizeof(ceilings) / sizeof(ceilings[0]) };
    uint64_t zeros[N] = {0}, tops[N];
    for (size_t i = 0; i < N; i++)
        tops[i] = (uint64_t)(ceilings[i] - ceilings[i] / 2); /* the largest jitter */

    struct backoff b;
    backoff_init(&b, 100, 5000, 1);
    struct script low = {zeros, N, 0};
    backoff_set_random(&b, scripted, &low);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(backoff_next(&b), ceilings[i] / 2);

    backoff_reset(&b);
    struct script high = {tops, N, 0};
    backoff_set_random(&b, scripted, &high);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(backoff_next(&b), ceilings[i]);

    /* One past the largest jitter wraps to the smallest: the range is exactly span + 1 wide. */
    backoff_reset(&b);
    uint64_t wrap[] = {51, 101};
    struct script over = {wrap, 2, 0};
    backoff_set_random(&b, scripted, &over);
    assert_int_equal(backoff_next(&b), 50);
    assert_int_equal(backoff_next(&b), 100);
}

static void test_odd_ceiling_reaches_top(void **state) {
    (void)state;
    /* A ceiling of 5 (archiver settings allow any base) still spans [2, 5], both ends included. */
    struct backoff b;
    backoff_init(&b, 5, 5, 1);
    uint64_t v[] = {0, 3, 4};
    struct script sc = {v, 3, 0};
    backoff_set_random(&b, scripted, &sc);
    assert_int_equal(backoff_next(&b), 2);
    assert_int_equal(backoff_next(&b), 5);
    assert_int_equal(backoff_next(&b), 2);
}

static void test_random_source_restored(void **state) {
    (void)state;
    /* Removing the injected source goes back to the seeded generator, unchanged by the detour. */
    struct backoff a, b;
    backoff_init(&a, 1000, 1000, 99);
    backoff_init(&b, 1000, 1000, 99);
    uint64_t v[] = {0};
    struct script sc = {v, 1, 0};
    backoff_set_random(&b, scripted, &sc);
    assert_int_equal(backoff_next(&b), 500);
    backoff_set_random(&b, NULL, NULL);
    for (int i = 0; i < 10; i++)
        assert_int_equal(backoff_next(&a), backoff_next(&b));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_doubles_up_to_cap),
        cmocka_unit_test(test_delays_within_jitter_bounds),
        cmocka_unit_test(test_jitter_spreads),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_degenerate_settings),
        cmocka_unit_test(test_frontend_numbers_at_jitter_edges),
        cmocka_unit_test(test_odd_ceiling_reaches_top),
        cmocka_unit_test(test_random_source_restored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
