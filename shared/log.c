/* JSON-lines logger. A line is built completely before one fputs so that lines from concurrent
 * processes sharing a file never interleave mid-line. */
#include "log.h"

#include "util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *s, enum log_level *out) {
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_json(const struct logger *lg, enum log_level level, const char *msg, json_t *fields) {
    if (level < lg->min) {
        json_decref(fields);
        return;
    }
    json_t *line = json_object();
    json_object_set_new(line, "ts", json_integer(util_now_ms()));
    json_object_set_new(line, "level", json_string(level_names[level]));
    json_object_set_new(line, "prog", json_string(lg->program));
    if (lg->node)
        json_object_set_new(line, "node", json_string(lg->node));
    json_object_set_new(line, "msg", json_string(msg));
    if (fields) {
        json_object_update(line, fields);
        json_decref(fields);
    }
    /* 15 significant digits: what a rounded field holds, without the 17th digit's binary noise */
    char *text = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(line);
    if (!text)
        return;
    FILE *out = lg->out ? lg->out : stderr;
    size_t n = strlen(text);
    char *nl = realloc(text, n + 2);
    if (!nl) {
        free(text);
        return;
    }
    nl[n] = '\n';
    nl[n + 1] = '\0';
    fputs(nl, out);
    fflush(out);
    free(nl);
}

double log_round(double v, int decimals) {
    double scale = 1;
    for (int i = 0; i < decimals && i < 9; i++)
        scale *= 10;
    double x = v * scale;
    if (!(x > -9e15 && x < 9e15))
        return v;
    long long n = (long long)(x < 0 ? x - 0.5 : x + 0.5);
    return (double)n / scale;
}

void log_msg(const struct logger *lg, enum log_level level, const char *fmt, ...) {
    if (level < lg->min)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    log_json(lg, level, buf, NULL);
}
