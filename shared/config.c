/* Option-table driven configuration: defaults < environment < flags. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void cfg_env_name(const char *name, char *buf, size_t cap) {
    size_t j = 0;
    const char *prefix = "RRM_";
    for (const char *p = prefix; *p && j + 1 < cap; p++)
        buf[j++] = *p;
    for (const char *p = name; *p && j + 1 < cap; p++)
        buf[j++] = (*p == '-') ? '_' : (char)toupper((unsigned char)*p);
    buf[j] = '\0';
}

static int set_value(const struct cfg_option *o, void *conf, const char *value, const char *source,
                     char *err, size_t errlen) {
    char env[64];
    cfg_env_name(o->name, env, sizeof(env));
    char *field = (char *)conf + o->offset;
    if (o->type == CFG_INT) {
        char *end = NULL;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end != '\0' || v < o->min || v > o->max) {
            snprintf(err, errlen, "invalid %s (--%s) from %s: '%s' is not an integer in %ld..%ld",
                     env, o->name, source, value, o->min, o->max);
            return -1;
        }
        *(long *)field = v;
        return 0;
    }
    size_t len = strlen(value);
    if ((long)len < o->min || (long)len >= o->max) {
        snprintf(err, errlen, "invalid %s (--%s) from %s: length %zu is outside %ld..%ld", env,
                 o->name, source, len, o->min, o->max - 1);
        return -1;
    }
    memcpy(field, value, len + 1);
    return 0;
}

static const struct cfg_option *find_flag(const struct cfg_option *opts, size_t n, const char *arg,
                                          size_t len) {
    for (size_t i = 0; i < n; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, arg, len) == 0)
            return &opts[i];
    return NULL;
}

int cfg_load(const struct cfg_option *opts, size_t n, void *conf, int argc, char **argv, char *err,
             size_t errlen) {
    for (size_t i = 0; i < n; i++)
        if (set_value(&opts[i], conf, opts[i].defval ? opts[i].defval : "", "default", err, errlen))
            return -1;

    for (size_t i = 0; i < n; i++) {
        char env[64];
        cfg_env_name(opts[i].name, env, sizeof(env));
        const char *v = getenv(env);
        if (v && set_value(&opts[i], conf, v, "environment", err, errlen))
            return -1;
    }

    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return CFG_HELP;
        if (strcmp(arg, "--version") == 0)
            return CFG_VERSION;
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", arg);
            return -1;
        }
        arg += 2;
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const struct cfg_option *o = find_flag(opts, n, arg, len);
        if (!o) {
            snprintf(err, errlen, "unknown option '--%.*s' (see --help)", (int)len, arg);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (a + 1 >= argc) {
                snprintf(err, errlen, "option '--%s' needs a value", o->name);
                return -1;
            }
            value = argv[++a];
        }
        if (set_value(o, conf, value, "command line", err, errlen))
            return -1;
    }
    return 0;
}

void cfg_usage(FILE *out, const char *prog, const char *summary, const struct cfg_option *opts,
               size_t n) {
    fprintf(out, "Usage: %s [--option value]...\n%s\n\n", prog, summary);
    fprintf(out, "Every option can also be set by its environment variable; flags win.\n"
                 "--version prints the version and those of the libraries, and exits.\n\n");
    for (size_t i = 0; i < n; i++) {
        char env[64];
        cfg_env_name(opts[i].name, env, sizeof(env));
        fprintf(out, "  --%-24s %-28s default: %s\n      %s\n", opts[i].name, env,
                (opts[i].defval && *opts[i].defval) ? opts[i].defval : "(empty)", opts[i].help);
    }
}
