/* libwebsockets' log lines into the JSON log (see lwslog.h). lws 4.1 calls one process-wide emit
 * function without a user pointer, so the logger it writes to is kept here, set once at start;
 * the node is single-threaded, so the rate window needs no lock. */
#include "lwslog.h"

#include "util.h"

#include <libwebsockets.h>
#include <string.h>

static const struct logger *lwslog_logger;
static int64_t window_start_ms;
static unsigned window_lines;
static unsigned long suppressed;

static void emit(int lll, const char *line) {
    const struct logger *lg = lwslog_logger;
    if (!lg || !line)
        return;
    enum log_level level = lll & LLL_ERR ? LOG_ERROR : lll & LLL_WARN ? LOG_WARN : LOG_DEBUG;
    if (level < lg->min)
        return;
    int64_t now = util_mono_ms();
    if (now - window_start_ms >= 1000) {
        window_start_ms = now;
        window_lines = 0;
    }
    if (window_lines >= LWSLOG_MAX_PER_SEC) {
        suppressed++;
        return;
    }
    window_lines++;
    /* lws's lines are ASCII, but some quote what a client sent: keep what JSON can carry */
    char msg[512];
    size_t n = 0;
    for (const char *p = line; *p && n < sizeof(msg) - 1; p++)
        msg[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : ' ';
    while (n && msg[n - 1] == ' ')
        n--; /* the trailing newline */
    msg[n] = '\0';
    json_t *fields = json_pack("{s:s}", "source", "libwebsockets");
    if (fields && suppressed) {
        json_object_set_new(fields, "suppressed", json_integer((json_int_t)suppressed));
        suppressed = 0;
    }
    log_json(lg, level, msg, fields);
}

void lwslog_attach(const struct logger *lg) {
    lwslog_logger = lg;
    int levels = LLL_ERR | LLL_WARN;
    if (lg->min <= LOG_DEBUG)
        levels |= LLL_NOTICE;
    lws_set_log_level(levels, emit);
}
