/* rrm-bench options (see args.h). */
#include "args.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int args_parse_url(const char *s, struct bench_url *u) {
    const char *p;
    if (strncmp(s, "ws://", 5) == 0)
        p = s + 5;
    else
        return -1;
    const char *slash = strchr(p, '/');
    const char *hostend = slash ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(hostend - p));
    const char *he = colon ? colon : hostend;
    if (he == p || (size_t)(he - p) >= sizeof(u->host))
        return -1;
    memcpy(u->host, p, (size_t)(he - p));
    u->host[he - p] = '\0';
    u->port = 80;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != hostend || port < 1 || port > 65535)
            return -1;
        u->port = (int)port;
    }
    const char *path = slash ? slash : "/";
    if (strlen(path) >= sizeof(u->path))
        return -1;
    strcpy(u->path, path);
    return 0;
}

int args_add_binds(struct bench_opts *o, const char *s) {
    char base[32];
    const char *dash = strchr(s, '-');
    size_t n = dash ? (size_t)(dash - s) : strlen(s);
    if (n >= sizeof(base))
        return -1;
    memcpy(base, s, n);
    base[n] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, base, &a) != 1)
        return -1;
    uint32_t first = ntohl(a.s_addr), last = first;
    if (dash) {
        /* the end of the range: a last octet, or a whole address in the same /24 */
        long e;
        if (strchr(dash + 1, '.')) {
            struct in_addr b;
            if (inet_pton(AF_INET, dash + 1, &b) != 1 ||
                (ntohl(b.s_addr) & ~0xffu) != (first & ~0xffu))
                return -1;
            e = (long)(ntohl(b.s_addr) & 0xff);
        } else {
            char *end;
            e = strtol(dash + 1, &end, 10);
            if (end == dash + 1 || *end)
                return -1;
        }
        if (e < (long)(first & 0xff) || e > 255)
            return -1;
        last = (first & ~0xffu) | (uint32_t)e;
    }
    for (uint32_t ip = first; ip <= last; ip++) {
        if (o->nbinds == ARGS_MAX_BINDS)
            return -1;
        struct in_addr x = {htonl(ip)};
        inet_ntop(AF_INET, &x, o->binds[o->nbinds++], sizeof(o->binds[0]));
    }
    return 0;
}

static int parse_num(const char *s, double min, double max, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static const struct option longopts[] = {
    {"url", required_argument, NULL, 'u'},
    {"clients", required_argument, NULL, 'c'},
    {"rooms", required_argument, NULL, 'r'},
    {"rate", required_argument, NULL, 'R'},
    {"size", required_argument, NULL, 's'},
    {"duration", required_argument, NULL, 'd'},
    {"warmup", required_argument, NULL, 'w'},
    {"ramp", required_argument, NULL, 'a'},
    {"drain", required_argument, NULL, 'D'},
    {"p99-limit", required_argument, NULL, 'P'},
    {"stop-on-fail", no_argument, NULL, 'S'},
    {"binary", no_argument, NULL, 'b'},
    {"doc", no_argument, NULL, 'o'},
    {"deflate", no_argument, NULL, 'z'},
    {"json", no_argument, NULL, 'j'},
    {"pids", required_argument, NULL, 'p'},
    {"bind", required_argument, NULL, 'B'},
    {"prefix", required_argument, NULL, 'x'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"workers", required_argument, NULL, 'W'},
    {"jwt-secret", required_argument, NULL, 'J'},
    {NULL, 0, NULL, 0},
};

void args_usage(FILE *out) {
    fputs(
        "usage: rrm-bench [options]\n"
        "\n"
        "Load generator for rrm-frontend: opens --clients WebSocket connections spread over the\n"
        "--url frontends and --rooms rooms (client i joins room i mod rooms, so every room spans\n"
        "the frontends), then each client sends --rate messages per second to its room. Every\n"
        "delivery is checked (loss, duplicates, per-sender order) and timed end to end.\n"
        "\n"
        "  --url ws://HOST:PORT/    a frontend; repeat for several (default ws://127.0.0.1:8765/)\n"
        "  --clients N              connections (default 500)\n"
        "  --rooms N                rooms (default 50)\n"
        "  --rate R[,R...]          messages/s per client; several values run one stage each, on\n"
        "                           the same connections; 0 holds the connections idle (default "
        "8)\n"
        "  --size BYTES             size of each sent message (default 100, minimum 64 text / 24\n"
        "                           binary)\n"
        "  --binary                 send binary frames instead of JSON text\n"
        "  --doc                    each text message carries a JSON document of about --size\n"
        "                           bytes (an order with line items) instead of padding\n"
        "  --deflate                offer permessage-deflate (libwebsockets' own extension,\n"
        "                           client_max_window_bits): sent and received messages are\n"
        "                           compressed where the frontend accepts it\n"
        "  --duration S             seconds of each stage, or of the idle hold (default 10)\n"
        "  --warmup S               seconds of unreported traffic before the first stage (default "
        "1)\n"
        "  --ramp N                 connections opened per second (default 2000)\n"
        "  --drain MS               wait for late deliveries after a stage (default 3000)\n"
        "  --p99-limit MS           a stage with a higher p99 fails (default 50)\n"
        "  --stop-on-fail           stop at the first failing stage (loss, errors or p99 limit)\n"
        "  --bind A.B.C.D[-E]       source address(es) for the connections, round-robin; repeat "
        "or\n"
        "                           give a range (127.0.0.2-127.0.0.40) to go past ~28k\n"
        "                           connections per address\n"
        "  --pids PID[,PID...]      server processes: CPU per delivered message and RSS\n"
        "  --prefix P               device and room ids start with P (default bench-<pid>)\n"
        "  --workers N              client processes, each with whole rooms (default: as many\n"
        "                           as the open-file limit requires, usually 1)\n"
        "  --jwt-secret S           authentication on the frontends (RRM_JWT_SECRET=S): each\n"
        "                           device identifies with its own HS256 token, made at start\n"
        "  --json                   one JSON document instead of the table\n"
        "  --verbose                libwebsockets warnings\n"
        "  --help                   this text\n"
        "  --version                the version of rrm-bench and of its libwebsockets\n",
        out);
}

int args_parse(struct bench_opts *o, int argc, char **argv, char *err, size_t errlen) {
    memset(o, 0, sizeof(*o));
    o->clients = 500;
    o->rooms = 50;
    o->size = 100;
    o->duration_s = 10;
    o->warmup_s = 1;
    o->ramp = 2000;
    o->drain_ms = 3000;
    o->p99_limit_ms = 50;
    o->ctl_in = o->ctl_out = -1;
    snprintf(o->prefix, sizeof(o->prefix), "bench-%ld-%ld", (long)getpid(),
             (long)(time(NULL) % 100000));
    optind = 1;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            if (o->nurls == ARGS_MAX_URLS || args_parse_url(optarg, &o->urls[o->nurls]))
                return fail(err, errlen, "--url %s: expected ws://HOST:PORT/PATH (at most %d)",
                            optarg, ARGS_MAX_URLS);
            o->nurls++;
            break;
        case 'c':
            if (parse_num(optarg, 1, 1000000, &v))
                return fail(err, errlen, "--clients %s: expected 1..1000000", optarg);
            o->clients = (long)v;
            break;
        case 'r':
            if (parse_num(optarg, 1, 1000000, &v))
                return fail(err, errlen, "--rooms %s: expected 1..1000000", optarg);
            o->rooms = (long)v;
            break;
        case 'R': {
            o->nrates = 0;
            char *copy = strdup(optarg), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (o->nrates == ARGS_MAX_RATES || parse_num(t, 0, 100000, &v)) {
                    free(copy);
                    return fail(err, errlen, "--rate %s: expected numbers 0..100000", optarg);
                }
                o->rates[o->nrates++] = v;
            }
            free(copy);
            break;
        }
        case 's':
            if (parse_num(optarg, 24, 1 << 20, &v))
                return fail(err, errlen, "--size %s: expected 24..1048576", optarg);
            o->size = (long)v;
            break;
        case 'd':
            if (parse_num(optarg, 0.1, 86400, &o->duration_s))
                return fail(err, errlen, "--duration %s: expected seconds 0.1..86400", optarg);
            break;
        case 'w':
            if (parse_num(optarg, 0, 3600, &o->warmup_s))
                return fail(err, errlen, "--warmup %s: expected seconds 0..3600", optarg);
            break;
        case 'a':
            if (parse_num(optarg, 1, 1000000, &v))
                return fail(err, errlen, "--ramp %s: expected 1..1000000 per second", optarg);
            o->ramp = (long)v;
            break;
        case 'D':
            if (parse_num(optarg, 0, 600000, &v))
                return fail(err, errlen, "--drain %s: expected 0..600000 ms", optarg);
            o->drain_ms = (long)v;
            break;
        case 'P':
            if (parse_num(optarg, 0.001, 1e6, &o->p99_limit_ms))
                return fail(err, errlen, "--p99-limit %s: expected milliseconds", optarg);
            break;
        case 'S':
            o->stop_on_fail = 1;
            break;
        case 'b':
            o->binary = 1;
            break;
        case 'o':
            o->doc = 1;
            break;
        case 'z':
            o->deflate = 1;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'v':
            o->verbose = 1;
            break;
        case 'p': {
            char *copy = strdup(optarg), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (o->npids == ARGS_MAX_PIDS || parse_num(t, 1, 4194304, &v)) {
                    free(copy);
                    return fail(err, errlen, "--pids %s: expected process ids (at most %d)", optarg,
                                ARGS_MAX_PIDS);
                }
                o->pids[o->npids++] = (pid_t)v;
            }
            free(copy);
            break;
        }
        case 'B':
            if (args_add_binds(o, optarg))
                return fail(err, errlen, "--bind %s: expected A.B.C.D or A.B.C.D-E (at most %d)",
                            optarg, ARGS_MAX_BINDS);
            break;
        case 'x':
            if (strlen(optarg) < 1 || strlen(optarg) > 40 ||
                strspn(optarg,
                       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@-") !=
                    strlen(optarg))
                return fail(err, errlen, "--prefix %s: 1-40 characters from A-Z a-z 0-9 _ . : @ -",
                            optarg);
            strcpy(o->prefix, optarg);
            break;
        case 'W':
            if (parse_num(optarg, 1, 64, &v))
                return fail(err, errlen, "--workers %s: expected 1..64", optarg);
            o->workers = (int)v;
            break;
        case 'J':
            if (strlen(optarg) < 1 || strlen(optarg) >= sizeof(o->jwt_secret))
                return fail(err, errlen, "--jwt-secret: 1-255 bytes");
            strcpy(o->jwt_secret, optarg);
            break;
        case 'h':
            return ARGS_HELP;
        case 'V':
            return ARGS_VERSION;
        default:
            return fail(err, errlen, "%s: unknown option or missing value; see --help",
                        optind > 1 && optind <= argc ? argv[optind - 1] : "?");
        }
    }
    if (optind < argc)
        return fail(err, errlen, "unexpected argument '%s'; see --help", argv[optind]);
    if (o->nurls == 0)
        args_parse_url("ws://127.0.0.1:8765/", &o->urls[o->nurls++]);
    if (o->nrates == 0)
        o->rates[o->nrates++] = 8;
    if (o->doc && o->binary)
        return fail(err, errlen, "--doc is for text messages, not --binary");
    if (o->doc && o->size < 512)
        return fail(err, errlen, "--size %ld: --doc needs at least 512 bytes", o->size);
    if (!o->binary && o->size < 64)
        return fail(err, errlen, "--size %ld: text messages need at least 64 bytes", o->size);
    if (o->workers > o->rooms)
        return fail(err, errlen, "--workers %d is more than --rooms %ld", o->workers, o->rooms);
    if (o->rooms > o->clients)
        return fail(err, errlen, "--rooms %ld is more than --clients %ld", o->rooms, o->clients);
    return 0;
}
