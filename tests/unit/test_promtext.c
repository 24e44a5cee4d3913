/* The Prometheus text writers both programs' /metrics use (shared/promtext.h): one-sample
 * families, histograms in seconds with cumulative buckets, the bucket an observation falls in, and
 * the growing buffer, also for text longer than prom_printf's stack buffer. */
#include "promtext.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

static void test_metric_and_histogram(void **state) {
    (void)state;
    struct prom_buf b = {0};
    struct prom_out o = prom_buf_out(&b);
    prom_metric(&o, "x_total", "counter", "Things.", 42);
    static const int64_t bounds[] = {5000, 250000, 1000000};
    const uint64_t buckets[] = {1, 0, 2, 3};
    prom_histogram(&o, "d_seconds", "Durations.", bounds, 3, buckets, 12500000);
    assert_false(b.failed);
    assert_string_equal(b.text, "# HELP x_total Things.\n# TYPE x_total counter\nx_total 42\n"
                                "# HELP d_seconds Durations.\n# TYPE d_seconds histogram\n"
                                "d_seconds_bucket{le=\"0.005\"} 1\n"
                                "d_seconds_bucket{le=\"0.25\"} 1\n"
                                "d_seconds_bucket{le=\"1\"} 3\n"
                                "d_seconds_bucket{le=\"+Inf\"} 6\n"
                                "d_seconds_sum 12.500000\nd_seconds_count 6\n");
    assert_int_equal(b.len, strlen(b.text));
    prom_buf_free(&b);
    assert_null(b.text);
}

static void test_bucket(void **state) {
    (void)state;
    static const int64_t bounds[] = {10, 20, 30};
    assert_int_equal(prom_bucket(bounds, 3, 0), 0);
    assert_int_equal(prom_bucket(bounds, 3, 10), 0); /* le: the bound itself is inside */
    assert_int_equal(prom_bucket(bounds, 3, 11), 1);
    assert_int_equal(prom_bucket(bounds, 3, 30), 2);
    assert_int_equal(prom_bucket(bounds, 3, 31), 3);
}

static void test_long_text(void **state) {
    (void)state;
    char help[3000];
    memset(help, 'h', sizeof(help) - 1);
    help[sizeof(help) - 1] = '\0';
    struct prom_buf b = {0};
    struct prom_out o = prom_buf_out(&b);
    for (int i = 0; i < 20; i++)
        prom_family(&o, "long_family", "gauge", help);
    assert_false(b.failed);
    assert_int_equal(
        b.len, 20 * (strlen("# HELP long_family \n# TYPE long_family gauge\n") + sizeof(help) - 1));
    assert_int_equal(b.len, strlen(b.text));
    prom_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric_and_histogram),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_long_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
