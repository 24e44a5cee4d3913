/* More connections than one process may open: the clients are split over worker processes,
 * each running load_run() on whole rooms, coordinated stage by stage from the parent, which
 * samples the server processes and merges the results. */
#ifndef RRM_BENCH_WORKERS_H
#define RRM_BENCH_WORKERS_H

#include "args.h"
#include "load.h"

#include <signal.h>

/* How many processes o needs: --workers, or enough for the open-file limit. */
int workers_needed(const struct bench_opts *o);

/* Runs o over n worker processes and merges their results into r. 0, or -1 if a worker could
 * not be started or failed. */
int workers_run(const struct bench_opts *o, int n, volatile sig_atomic_t *stop,
                struct run_result *r);

#endif
