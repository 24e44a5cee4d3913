/* Structured logging: one JSON object per line on stderr, owned by the caller's logger struct. */
#ifndef RRM_LOG_H
#define RRM_LOG_H

#include <jansson.h>
#include <stdio.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

struct logger {
    const char *program; /* borrowed, must outlive the logger */
    const char *node;    /* borrowed, may be NULL */
    enum log_level min;
    FILE *out; /* NULL means stderr */
};

/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int log_level_parse(const char *s, enum log_level *out);

/* Writes {"ts":..,"level":..,"prog":..,"node":..,"msg":msg, ...fields}. Takes ownership of
 * fields (a JSON object or NULL). */
void log_json(const struct logger *lg, enum log_level level, const char *msg, json_t *fields);

/* v rounded to `decimals` (0-9) digits after the point, for real-valued fields: a duration in ms
 * with 3 decimals is logged as 23.1, not 23.100000000000001 (log_json writes reals with at most
 * 15 significant digits). NaN, infinities and values too large to round are returned as they
 * are. */
double log_round(double v, int decimals);

/* printf-style message without extra fields. */
void log_msg(const struct logger *lg, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
