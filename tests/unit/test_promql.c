/* The metric names the dashboard check reads out of PromQL expressions (tests/support/promql.h):
 * functions, aggregations with their modifiers before or after the arguments, label matchers and
 * label lists, ranges, offsets, numbers, strings, keywords and Grafana variables are not names. */
#include "promql.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

struct names {
    char text[512]; /* the names found, separated by spaces */
};

static void collect(void *ctx, const char *name, size_t len) {
    struct names *n = ctx;
    size_t used = strlen(n->text);
    snprintf(n->text + used, sizeof(n->text) - used, "%s%.*s", used ? " " : "", (int)len, name);
}

static void expect_names(const char *expr, const char *want) {
    struct names n = {""};
    assert_int_equal(promql_metric_names(expr, collect, &n), 0);
    if (strcmp(n.text, want) != 0)
        fail_msg("%s: found '%s', expected '%s'", expr, n.text, want);
}

static void test_names(void **state) {
    (void)state;
    expect_names("rrm_open_connections", "rrm_open_connections");
    expect_names("sum(rate(rrm_messages_out_total{namespace=~\"$namespace\"}[$__rate_interval]))",
                 "rrm_messages_out_total");
    expect_names("histogram_quantile(0.99, sum by (le) "
                 "(rate(rrm_relay_latency_seconds_bucket[5m])))",
                 "rrm_relay_latency_seconds_bucket");
    expect_names("sum(rate(a_total[1m])) by (pod, le) / on(pod) group_left(version) b",
                 "a_total b");
    expect_names("sum without (instance) (x) > bool 0.5 and y offset -5m or z @ start()", "x y z");
    expect_names("max_over_time(rrm_redis_rtt_seconds[10m:1m]) * 1e3 + 0x1f - .5",
                 "rrm_redis_rtt_seconds");
    expect_names("{__name__=\"process_open_fds\", job=\"a\"}", "process_open_fds");
    expect_names("{__name__=~\"rrm_.*\"}", "");
    expect_names("label_replace(up, \"x\", \"$1\", \"instance\", \"(.*):.*\")", "up");
    expect_names("count_values(\"version\", rrm_build_info) unless ignoring (le) nan",
                 "rrm_build_info");
    expect_names("rate(x[${__rate_interval}]) / ${scale:raw} + $scale", "x");
    expect_names("abs(sum_1:rule)", "sum_1:rule");
}

static void test_unreadable(void **state) {
    (void)state;
    struct names n = {""};
    assert_int_equal(promql_metric_names("sum(rate(x[5m])", collect, &n), -1);
    assert_int_equal(promql_metric_names("x{a=\"b}", collect, &n), -1);
    assert_int_equal(promql_metric_names("x}", collect, &n), -1);
    assert_int_equal(promql_metric_names("rate(x[5m)", collect, &n), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_unreadable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
