/* The load engine: the WebSocket clients (libwebsockets), their ramp, the send schedule, the
 * stages, and the check of every delivery. run() owns the lws context for its duration and
 * fills a run_result; nothing outlives it. */
#ifndef RRM_BENCH_LOAD_H
#define RRM_BENCH_LOAD_H

#include "args.h"
#include "hist.h"
#include "procstat.h"

#include <signal.h>
#include <stdint.h>

#define LOAD_MAX_CODES 16

struct code_count {
    char code[32];
    uint64_t n;
};

struct stage_result {
    double rate;        /* messages per second per client */
    double seconds;     /* length of the send window */
    uint64_t sent;      /* messages written */
    uint64_t expected;  /* deliveries owed: for each message, the other ready room members */
    uint64_t delivered; /* bench messages received within the stage and its drain */
    uint64_t lost;      /* expected - (delivered - duplicates), never negative */
    uint64_t dups;      /* the same message twice in a row at one receiver */
    uint64_t reordered; /* a sender's message older than one already seen */
    uint64_t late;      /* arrived after the drain window (already counted lost) */
    uint64_t errors;    /* error frames from the server */
    uint64_t disconnects;
    uint64_t max_lag_us; /* how far the bench's own sending fell behind its schedule */
    struct hist lat;     /* send -> receive, microseconds */
    struct procstat proc_start[ARGS_MAX_PIDS], proc_end[ARGS_MAX_PIDS];
    int proc_ok;
    int failed; /* loss, duplicates, errors, disconnects or p99 over the limit */
    char why[96];
};

struct run_result {
    long clients;
    long connected; /* reached the room answer */
    long connect_failed;
    long disconnects; /* closed by the peer after connecting */
    double connect_seconds;
    struct procstat proc_before[ARGS_MAX_PIDS], proc_ready[ARGS_MAX_PIDS];
    int proc_ok;
    struct stage_result stages[ARGS_MAX_RATES];
    int nstages;                             /* stages that ran */
    struct code_count codes[LOAD_MAX_CODES]; /* error frames by code */
    int ncodes;
    char first_error[160]; /* first connection error, for the report */
    int interrupted;
};

/* Sets st->lost, st->failed and st->why from its counts and o's limits. */
void load_judge(const struct bench_opts *o, struct stage_result *st);

/* Worker messages to the coordinator (workers.c): a kind byte, then a fixed-size struct.
 * LOAD_MSG_GATE + struct stage_result: the stage just ended (zeroes after connecting), and the
 * worker now waits for 'G' (next stage) or 'Q' (finish) on o->ctl_in. LOAD_MSG_DONE + struct
 * run_result: the worker's whole result, the last message. */
#define LOAD_MSG_GATE 'W'
#define LOAD_MSG_DONE 'D'
int load_write_msg(int fd, char kind, const void *data, size_t len);

/* Runs the whole benchmark. stop is polled; setting it ends the run early with what was
 * measured. Returns 0, or -1 if the client could not start at all (message on stderr).
 * r is large: allocate it. */
int load_run(const struct bench_opts *o, volatile sig_atomic_t *stop, struct run_result *r);

#endif
