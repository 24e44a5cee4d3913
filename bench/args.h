/* rrm-bench's command line: one typed options struct, filled and checked in one place. */
#ifndef RRM_BENCH_ARGS_H
#define RRM_BENCH_ARGS_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#define ARGS_MAX_URLS 16
#define ARGS_MAX_BINDS 256
#define ARGS_MAX_RATES 64
#define ARGS_MAX_PIDS 16

struct bench_url {
    char host[128];
    int port;
    char path[128];
};

struct bench_opts {
    struct bench_url urls[ARGS_MAX_URLS];
    int nurls;
    char binds[ARGS_MAX_BINDS][16]; /* IPv4 source addresses, round-robin over clients */
    int nbinds;
    long clients;
    long rooms;
    double rates[ARGS_MAX_RATES]; /* messages per second per client, one stage each */
    int nrates;
    long size;         /* bytes of each message the client sends */
    double duration_s; /* of each stage; of the hold when idle */
    double warmup_s;
    long ramp;           /* connections started per second */
    long drain_ms;       /* how long a stage waits for its last deliveries */
    double p99_limit_ms; /* a stage fails above it */
    int stop_on_fail;
    int binary;
    int doc;     /* text messages carry a realistic JSON document (an order), not padding */
    int deflate; /* offer permessage-deflate (lws's own client extension) */
    int json;
    int verbose;
    pid_t pids[ARGS_MAX_PIDS];
    int npids;
    char prefix[48];      /* device and room ids start with it */
    int workers;          /* client processes; 0 = as many as the open-file limit needs */
    char jwt_secret[256]; /* sign one HS256 token per device with it ("" = no token) */

    /* set for a worker process by workers.c */
    long id_base, room_base; /* numbering of its devices and rooms */
    int ctl_in, ctl_out;     /* commands from and messages to the coordinator; -1 if alone */
};

#define ARGS_HELP 1
#define ARGS_VERSION 2

/* Parses argv into o (defaults first). Returns 0, ARGS_HELP, ARGS_VERSION, or -1 with a one-line
 * message in err. */
int args_parse(struct bench_opts *o, int argc, char **argv, char *err, size_t errlen);
void args_usage(FILE *out);

/* Parses "ws://host:port/path". 0 or -1. */
int args_parse_url(const char *s, struct bench_url *u);

/* Appends the IPv4 addresses of "a.b.c.d", "a.b.c.d-e" or "a.b.c.d-a.b.c.e" (a range of the
 * last octet) to o's bind list. 0 or -1. */
int args_add_binds(struct bench_opts *o, const char *s);

#endif
