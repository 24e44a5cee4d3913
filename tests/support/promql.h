/* promql.h - the metric names a PromQL expression selects, for checking dashboards against the
 * programs' live /metrics. A small lexer, not a parser: it knows enough of the grammar to tell
 * metric names from functions and aggregations, label names (in matchers and in by, without, on,
 * ignoring, group_left, group_right lists), keywords, numbers, durations, strings and Grafana's
 * $variables. {__name__="x"} selects x. */
#ifndef RRM_TESTSUPPORT_PROMQL_H
#define RRM_TESTSUPPORT_PROMQL_H

#include <stddef.h>

/* Called once per metric name found, in order (name borrowed, len bytes, not NUL-terminated). */
typedef void (*promql_name_fn)(void *ctx, const char *name, size_t len);

/* Reports every metric name of expr to fn. Returns 0, or -1 when expr cannot be read
 * (unbalanced brackets or an unterminated string); names before the error have been reported. */
int promql_metric_names(const char *expr, promql_name_fn fn, void *ctx);

#endif
