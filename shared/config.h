/* Configuration from RRM_* environment variables and matching --flags, described by one table per
 * program. Each option lives at an offset inside the program's own typed config struct; defaults,
 * environment and flags are merged here, in that order, and validated in one place. */
#ifndef RRM_CONFIG_H
#define RRM_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum cfg_type {
    CFG_INT, /* long, checked against [min, max] */
    CFG_STR, /* char array of size `max` inside the struct (NUL-terminated) */
};

struct cfg_option {
    const char *name; /* flag name: "redis-port" is --redis-port and RRM_REDIS_PORT */
    enum cfg_type type;
    size_t offset;      /* offsetof(struct your_config, field) */
    const char *defval; /* default as text; NULL means "" for strings */
    long min, max;      /* CFG_INT: allowed range; CFG_STR: min length, buffer size */
    const char *help;
};

#define CFG_HELP 1    /* cfg_load() result: --help was given */
#define CFG_VERSION 2 /* cfg_load() result: --version was given */

/* Fills conf from defaults, then the environment, then argv. Returns 0, CFG_HELP, CFG_VERSION,
 * or -1 with a one-line message in err naming the variable and flag. */
int cfg_load(const struct cfg_option *opts, size_t n, void *conf, int argc, char **argv, char *err,
             size_t errlen);

/* Writes the --help text (every option, its variable, default and meaning) to out. */
void cfg_usage(FILE *out, const char *prog, const char *summary, const struct cfg_option *opts,
               size_t n);

/* Writes "RRM_X" for option name "x-y" into buf. */
void cfg_env_name(const char *name, char *buf, size_t cap);

#endif
