/* rrm-bench's output: the human table and the --json document, from a finished run. */
#ifndef RRM_BENCH_REPORT_H
#define RRM_BENCH_REPORT_H

#include "args.h"
#include "load.h"

#include <stdio.h>

void report_table(FILE *out, const struct bench_opts *o, const struct run_result *r);
/* Returns 0 or -1 (out of memory). */
int report_json(FILE *out, const struct bench_opts *o, const struct run_result *r);

/* Server CPU per delivered message in microseconds, over every --pids process whose name
 * matches comm (NULL: all of them); 0 when nothing was delivered or /proc was unreadable. */
double report_cpu_per_delivery(const struct bench_opts *o, const struct stage_result *st,
                               const char *comm);

/* RSS added per connection (KiB) between before-connect and all-ready, over the --pids
 * processes named comm (NULL: all). */
double report_rss_per_conn(const struct bench_opts *o, const struct run_result *r,
                           const char *comm);

#endif
