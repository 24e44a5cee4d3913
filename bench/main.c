/* rrm-bench: a load generator for rrm-frontend clusters (see args.c for the options). */
#include "args.h"
#include "load.h"
#include "report.h"
#include "workers.h"

#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

int main(int argc, char **argv) {
    struct bench_opts o;
    char err[256];
    int rc = args_parse(&o, argc, argv, err, sizeof(err));
    if (rc == ARGS_HELP) {
        args_usage(stdout);
        return 0;
    }
    if (rc == ARGS_VERSION) {
        printf("rrm-bench %s\nlibwebsockets %s\n", RRM_VERSION, lws_get_library_version());
        return 0;
    }
    if (rc) {
        fprintf(stderr, "rrm-bench: %s\n", err);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct run_result *r = malloc(sizeof(*r));
    int n = workers_needed(&o);
    if (!r || (n > 1 ? workers_run(&o, n, &stop_flag, r) : load_run(&o, &stop_flag, r))) {
        free(r);
        return 1;
    }
    if (o.json)
        report_json(stdout, &o, r);
    else
        report_table(stdout, &o, r);
    /* 0: everyone connected and every stage held; with --stop-on-fail, at least one held */
    int passed = 0, failed = 0;
    for (int k = 0; k < r->nstages; k++)
        r->stages[k].failed ? failed++ : passed++;
    int ok = r->connected == r->clients && !r->interrupted &&
             (o.stop_on_fail ? passed > 0 || r->nstages == 0 : failed == 0);
    free(r);
    return ok ? 0 : 1;
}
