/* Several client processes under one coordinator (see workers.h). Each worker owns whole rooms,
 * so its loss and order checks need nothing from the others; the coordinator holds every worker
 * at a gate between stages, so the stages run in step and the server processes' CPU and memory
 * are sampled once, around all of them. */
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

struct worker {
    pid_t pid;
    int to;   /* commands to the worker */
    int from; /* messages from the worker */
    int done;
};

int workers_needed(const struct bench_opts *o) {
    if (o->workers > 0)
        return o->workers;
    struct rlimit rl;
    long per = 1L << 20;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY)
        per = (long)rl.rlim_max - 1024;
    if (per < 1024)
        per = 1024;
    long n = (o->clients + per - 1) / per;
    if (n > o->rooms)
        n = o->rooms;
    return n < 1 ? 1 : (int)n;
}

/* Reads exactly len bytes; -1 on error or end of file. */
static int read_full(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void merge_stage(struct stage_result *dst, const struct stage_result *src) {
    dst->rate = src->rate;
    if (src->seconds > dst->seconds)
        dst->seconds = src->seconds;
    dst->sent += src->sent;
    dst->expected += src->expected;
    dst->delivered += src->delivered;
    dst->dups += src->dups;
    dst->reordered += src->reordered;
    dst->late += src->late;
    dst->errors += src->errors;
    dst->disconnects += src->disconnects;
    if (src->max_lag_us > dst->max_lag_us)
        dst->max_lag_us = src->max_lag_us;
    hist_merge(&dst->lat, &src->lat);
}

static void merge_run(struct run_result *dst, const struct run_result *src) {
    dst->connected += src->connected;
    dst->connect_failed += src->connect_failed;
    dst->disconnects += src->disconnects;
    if (src->connect_seconds > dst->connect_seconds)
        dst->connect_seconds = src->connect_seconds;
    if (!dst->first_error[0])
        memcpy(dst->first_error, src->first_error, sizeof(dst->first_error));
    dst->interrupted |= src->interrupted;
    for (int i = 0; i < src->ncodes; i++) {
        int j = 0;
        while (j < dst->ncodes && strcmp(dst->codes[j].code, src->codes[i].code) != 0)
            j++;
        if (j == dst->ncodes) {
            if (j == LOAD_MAX_CODES)
                continue;
            dst->codes[dst->ncodes++] = src->codes[i];
        } else {
            dst->codes[j].n += src->codes[i].n;
        }
    }
}

/* The options of worker w of n: a contiguous share of the rooms and of the clients. */
static void share(const struct bench_opts *o, int w, int n, struct bench_opts *wo) {
    *wo = *o;
    long r0 = o->rooms * w / n, r1 = o->rooms * (w + 1) / n;
    long c0 = o->clients * r0 / o->rooms, c1 = o->clients * r1 / o->rooms;
    wo->rooms = r1 - r0;
    wo->clients = c1 - c0;
    wo->room_base = r0;
    wo->id_base = c0;
    wo->npids = 0; /* the coordinator samples the servers */
    wo->workers = 1;
}

static int spawn(const struct bench_opts *o, int w, int n, struct worker *wk,
                 volatile sig_atomic_t *stop) {
    int to[2], from[2];
    if (pipe(to))
        return -1;
    if (pipe(from)) {
        close(to[0]);
        close(to[1]);
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(to[1]);
        close(from[0]);
        fcntl(to[0], F_SETFL, O_NONBLOCK);
        struct bench_opts wo;
        share(o, w, n, &wo);
        wo.ctl_in = to[0];
        wo.ctl_out = from[1];
        struct run_result *r = malloc(sizeof(*r));
        int rc = r && load_run(&wo, stop, r) == 0 ? 0 : 1;
        if (rc == 0)
            rc = load_write_msg(from[1], LOAD_MSG_DONE, r, sizeof(*r)) ? 1 : 0;
        free(r);
        _exit(rc);
    }
    close(to[0]);
    close(from[1]);
    wk->pid = pid;
    wk->to = to[1];
    wk->from = from[0];
    return 0;
}

static void tell(struct worker *wk, int n, char cmd) {
    for (int i = 0; i < n; i++)
        if (!wk[i].done && write(wk[i].to, &cmd, 1) != 1)
            wk[i].done = 1;
}

/* Collects one message from every worker still running: a gate (merged into *st) or the final
 * result (merged into *r). Returns the number of workers that reached the gate. */
static int collect(struct worker *wk, int n, struct stage_result *st, struct run_result *r,
                   struct stage_result *tmp_st, struct run_result *tmp_r) {
    int gated = 0;
    for (int i = 0; i < n; i++) {
        if (wk[i].done)
            continue;
        char kind;
        if (read_full(wk[i].from, &kind, 1)) {
            wk[i].done = 1;
            continue;
        }
        if (kind == LOAD_MSG_GATE && read_full(wk[i].from, tmp_st, sizeof(*tmp_st)) == 0) {
            merge_stage(st, tmp_st);
            gated++;
        } else if (kind == LOAD_MSG_DONE && read_full(wk[i].from, tmp_r, sizeof(*tmp_r)) == 0) {
            merge_run(r, tmp_r);
            wk[i].done = 1;
        } else {
            wk[i].done = 1;
        }
    }
    return gated;
}

int workers_run(const struct bench_opts *o, int n, volatile sig_atomic_t *stop,
                struct run_result *r) {
    memset(r, 0, sizeof(*r));
    r->clients = o->clients;
    struct worker *wk = calloc((size_t)n, sizeof(*wk));
    struct stage_result *st = malloc(sizeof(*st)), *tmp_st = malloc(sizeof(*tmp_st));
    struct run_result *tmp_r = malloc(sizeof(*tmp_r));
    int rc = -1, spawned = 0;
    if (!wk || !st || !tmp_st || !tmp_r)
        goto out;
    r->proc_ok = procstat_sample(o->pids, o->npids, r->proc_before);
    for (; spawned < n; spawned++)
        if (spawn(o, spawned, n, &wk[spawned], stop)) {
            fprintf(stderr, "rrm-bench: could not start worker %d: %s\n", spawned, strerror(errno));
            tell(wk, spawned, 'Q');
            goto reap;
        }

    /* gate 0: everyone connected */
    memset(st, 0, sizeof(*st));
    hist_init(&st->lat);
    int gated = collect(wk, n, st, r, tmp_st, tmp_r);
    r->proc_ok = procstat_sample(o->pids, o->npids, r->proc_ready);
    int has_warmup = 0;
    for (int i = 0; i < o->nrates && o->warmup_s > 0; i++)
        has_warmup |= o->rates[i] > 0;
    for (int k = has_warmup ? 0 : 1; k <= o->nrates && gated == n && !*stop; k++) {
        memset(st, 0, sizeof(*st));
        hist_init(&st->lat);
        st->proc_ok = procstat_sample(o->pids, o->npids, st->proc_start);
        tell(wk, n, 'G');
        gated = collect(wk, n, st, r, tmp_st, tmp_r);
        st->proc_ok = procstat_sample(o->pids, o->npids, st->proc_end);
        if (k == 0)
            continue; /* the warm-up is not reported */
        load_judge(o, st);
        r->stages[r->nstages++] = *st;
        if (st->failed && o->stop_on_fail)
            break;
    }
    tell(wk, n, 'Q');
    collect(wk, n, st, r, tmp_st, tmp_r); /* the final results */
    rc = 0;
reap:
    for (int i = 0; i < spawned; i++) {
        int status;
        close(wk[i].to);
        close(wk[i].from);
        while (waitpid(wk[i].pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            rc = -1;
    }
    if (*stop)
        r->interrupted = 1;
out:
    free(wk);
    free(st);
    free(tmp_st);
    free(tmp_r);
    return rc;
}
