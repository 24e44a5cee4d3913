/* Unit tests for rrm-bench's latency histogram (bench/hist.c): the empty histogram, exact small
 * values, percentile accuracy on a uniform distribution, the exact maximum, merging, huge values
 * and a single value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hist.h"

#include <stdlib.h>
#include <string.h>

/* Width of the bucket holding v: 1 below HIST_LINEAR, then 2^(e-5) for v in [2^e, 2^(e+1)). */
static uint64_t bucket_width(uint64_t v) {
    if (v < HIST_LINEAR)
        return 1;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    return 1ull << (e - 5);
}

static double absd(double x) {
    return x < 0 ? -x : x;
}

static struct hist *new_hist(void) {
    struct hist *h = malloc(sizeof(*h));
    assert_non_null(h);
    hist_init(h);
    return h;
}

static void test_empty(void **state) {
    (void)state;
    struct hist *h = new_hist();
    assert_int_equal(h->count, 0);
    assert_int_equal(hist_percentile(h, 0.0), 0);
    assert_int_equal(hist_percentile(h, 0.5), 0);
    assert_int_equal(hist_percentile(h, 0.99), 0);
    assert_int_equal(hist_percentile(h, 1.0), 0);
    assert_true(hist_mean(h) == 0.0);
    free(h);
}

static void test_exact_below_linear(void **state) {
    (void)state;
    struct hist *h = new_hist();
    for (uint64_t v = 0; v < HIST_LINEAR; v++)
        hist_record(h, v);
    /* rank k+1 of 64 values 0..63 is the value k */
    for (unsigned k = 0; k < HIST_LINEAR; k++) {
        double q = (double)(k + 1) / HIST_LINEAR;
        assert_int_equal(hist_percentile(h, q), k);
    }
    assert_int_equal(h->min, 0);
    assert_int_equal(h->max, HIST_LINEAR - 1);
    assert_true(absd(hist_mean(h) - 31.5) < 1e-9);

    /* the same value many times: every percentile is that value */
    struct hist *g = new_hist();
    for (int i = 0; i < 1000; i++)
        hist_record(g, 37);
    assert_int_equal(hist_percentile(g, 0.01), 37);
    assert_int_equal(hist_percentile(g, 0.5), 37);
    assert_int_equal(hist_percentile(g, 0.999), 37);
    free(g);
    free(h);
}

static void check_uniform_percentile(const struct hist *h, double q, uint64_t truth) {
    uint64_t got = hist_percentile(h, q);
    double rel = absd((double)got - (double)truth) / (double)truth;
    if (rel > 0.035 || got + bucket_width(truth) < truth)
        fail_msg("q=%.3f: got %llu, true %llu (%.2f%% off, bucket width %llu)", q,
                 (unsigned long long)got, (unsigned long long)truth, rel * 100,
                 (unsigned long long)bucket_width(truth));
}

static void test_uniform_accuracy(void **state) {
    (void)state;
    struct hist *h = new_hist();
    const uint64_t n = 100000;
    for (uint64_t v = 1; v <= n; v++)
        hist_record(h, v);
    assert_int_equal(h->count, n);
    assert_int_equal(h->min, 1);
    assert_int_equal(h->max, n);
    assert_true(absd(hist_mean(h) - 50000.5) < 1e-6);

    check_uniform_percentile(h, 0.50, 50000);
    check_uniform_percentile(h, 0.90, 90000);
    check_uniform_percentile(h, 0.99, 99000);
    check_uniform_percentile(h, 0.999, 99900);
    check_uniform_percentile(h, 0.10, 10000);
    check_uniform_percentile(h, 0.0005, 50);

    /* percentiles never decrease with q and never pass the maximum */
    uint64_t prev = 0;
    for (int i = 0; i <= 1000; i++) {
        uint64_t p = hist_percentile(h, i / 1000.0);
        assert_true(p >= prev);
        assert_true(p <= n);
        prev = p;
    }
    free(h);
}

static void test_max_exact(void **state) {
    (void)state;
    struct hist *h = new_hist();
    hist_record(h, 100);
    hist_record(h, 1000003); /* not a bucket bound */
    hist_record(h, 2500);
    assert_int_equal(hist_percentile(h, 1.0), 1000003);
    assert_int_equal(hist_percentile(h, 1.5), 1000003);
    /* just below 1 the rank is still the largest value, clamped to the exact maximum */
    assert_int_equal(hist_percentile(h, 0.9999), 1000003);
    free(h);

    /* the rank rounds up: at least a fraction q of the values lie at or below the result */
    struct hist *g = new_hist();
    for (uint64_t v = 1; v <= 100; v++)
        hist_record(g, v);
    assert_int_equal(hist_percentile(g, 0.5), 50);
    assert_int_equal(hist_percentile(g, 0.505), 51);
    assert_int_equal(hist_percentile(g, 0.99), 99);
    assert_int_equal(hist_percentile(g, 0.995), 100);
    assert_int_equal(hist_percentile(g, 0.999), 100);
    assert_int_equal(hist_percentile(g, 0.001), 1);
    assert_int_equal(hist_percentile(g, -1.0), 1);
    free(g);
}

/* Deterministic pseudo-random latencies spanning several powers of two. */
static uint64_t next_value(uint64_t *seed) {
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t r = *seed >> 33;
    return r % (1u << (r % 24 + 1));
}

static void test_merge_equals_single(void **state) {
    (void)state;
    struct hist *all = new_hist(), *a = new_hist(), *b = new_hist(), *merged = new_hist();
    uint64_t seed = 42;
    for (int i = 0; i < 50000; i++) {
        uint64_t v = next_value(&seed);
        hist_record(all, v);
        hist_record(i % 3 ? a : b, v);
    }
    hist_merge(merged, a); /* into an empty one: min must come from a */
    hist_merge(merged, b);
    assert_memory_equal(merged, all, sizeof(*all));
    for (int i = 0; i <= 100; i++)
        assert_int_equal(hist_percentile(merged, i / 100.0), hist_percentile(all, i / 100.0));
    assert_true(hist_mean(merged) == hist_mean(all));

    /* merging an empty histogram changes nothing */
    struct hist *empty = new_hist();
    hist_merge(merged, empty);
    assert_memory_equal(merged, all, sizeof(*all));
    free(empty);
    free(all);
    free(a);
    free(b);
    free(merged);
}

static void test_huge_values(void **state) {
    (void)state;
    struct hist *h = new_hist();
    const uint64_t big = 1000000000000ull; /* 1e12 us, about 11.6 days */
    for (int i = 0; i < 1000; i++)
        hist_record(h, big);
    hist_record(h, 1);
    assert_int_equal(h->count, 1001);
    assert_int_equal(h->sum, 1000 * big + 1);
    assert_int_equal(h->max, big);
    assert_int_equal(hist_percentile(h, 0.5), big);
    assert_int_equal(hist_percentile(h, 0.99), big);
    assert_int_equal(hist_percentile(h, 1.0), big);
    assert_true(absd(hist_mean(h) - (1000.0 * (double)big + 1) / 1001.0) < 1.0);

    /* beyond the last bucket: counted, no crash, the maximum stays exact */
    struct hist *g = new_hist();
    hist_record(g, 1ull << 50);
    hist_record(g, UINT64_MAX / 4);
    hist_record(g, 5);
    assert_int_equal(g->count, 3);
    assert_int_equal(hist_percentile(g, 1.0), UINT64_MAX / 4);
    assert_true(hist_percentile(g, 0.9) <= UINT64_MAX / 4);
    assert_int_equal(hist_percentile(g, 0.3), 5);
    free(g);
    free(h);
}

static void test_single_value(void **state) {
    (void)state;
    struct hist *h = new_hist();
    hist_record(h, 12345);
    assert_int_equal(h->count, 1);
    assert_int_equal(h->min, 12345);
    assert_int_equal(h->max, 12345);
    assert_true(hist_mean(h) == 12345.0);
    assert_int_equal(hist_percentile(h, 0.0), 12345);
    assert_int_equal(hist_percentile(h, 0.5), 12345);
    assert_int_equal(hist_percentile(h, 0.99), 12345);
    assert_int_equal(hist_percentile(h, 1.0), 12345);
    free(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_exact_below_linear),
        cmocka_unit_test(test_uniform_accuracy),
        cmocka_unit_test(test_max_exact),
        cmocka_unit_test(test_merge_equals_single),
        cmocka_unit_test(test_huge_values),
        cmocka_unit_test(test_single_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
