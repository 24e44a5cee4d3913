/* Unit tests for lwslog.c: libwebsockets' lines become JSON records of our log (level, text
 * without its newline, "source"), notices only at debug, and at most LWSLOG_MAX_PER_SEC a second
 * with the number dropped carried by the next record. */
#include "lwslog.h"

#include <libwebsockets.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static char *text;
static size_t size;
static FILE *out;
static struct logger lg = {.program = "test", .node = "n1", .min = LOG_INFO};

static int open_log(void **state) {
    (void)state;
    out = open_memstream(&text, &size);
    lg.out = out;
    return out ? 0 : -1;
}

static int close_log(void **state) {
    (void)state;
    fclose(out);
    free(text);
    text = NULL;
    return 0;
}

/* The records written so far, one per line, as a JSON array (caller json_decref's). */
static json_t *records(void) {
    fflush(out);
    json_t *all = json_array();
    char *copy = strndup(text, size);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *rec = json_loads(line, 0, NULL);
        assert_non_null(rec);
        json_array_append_new(all, rec);
    }
    free(copy);
    return all;
}

static const char *str(json_t *rec, const char *key) {
    return json_string_value(json_object_get(rec, key));
}

/* Waits for the next second's rate window, polling a monotonic clock (no fixed sleep). */
static void next_window(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t until = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1001;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= until)
            return;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

static void test_lines_become_records(void **state) {
    (void)state;
    next_window();
    lg.min = LOG_INFO;
    lwslog_attach(&lg);
    _lws_log(LLL_ERR, "ERROR on binding fd %d to port %d (%d %d)\n", 6, 8765, -1, 98);
    _lws_log(LLL_WARN, "header %d exceeds limit\n", 3);
    _lws_log(LLL_NOTICE, "a notice, not at info\n");
    _lws_log(LLL_ERR, "odd \x01 bytes \xff kept readable\n");
    json_t *all = records();
    assert_int_equal(json_array_size(all), 3);
    json_t *e = json_array_get(all, 0);
    assert_string_equal(str(e, "level"), "error");
    assert_string_equal(str(e, "msg"), "ERROR on binding fd 6 to port 8765 (-1 98)");
    assert_string_equal(str(e, "source"), "libwebsockets");
    assert_string_equal(str(e, "prog"), "test");
    assert_null(json_object_get(e, "suppressed"));
    json_t *w = json_array_get(all, 1);
    assert_string_equal(str(w, "level"), "warn");
    assert_string_equal(str(w, "msg"), "header 3 exceeds limit");
    assert_string_equal(str(json_array_get(all, 2), "msg"), "odd   bytes   kept readable");
    json_decref(all);

    lg.min = LOG_DEBUG;
    lwslog_attach(&lg);
    _lws_log(LLL_NOTICE, "a notice at debug\n");
    all = records();
    assert_int_equal(json_array_size(all), 4);
    assert_string_equal(str(json_array_get(all, 3), "level"), "debug");
    assert_string_equal(str(json_array_get(all, 3), "msg"), "a notice at debug");
    json_decref(all);
}

static void test_flood_is_limited(void **state) {
    (void)state;
    lg.min = LOG_INFO;
    lwslog_attach(&lg);
    next_window();
    for (int i = 0; i < LWSLOG_MAX_PER_SEC + 7; i++)
        _lws_log(LLL_ERR, "line %d\n", i);
    json_t *all = records();
    assert_int_equal(json_array_size(all), LWSLOG_MAX_PER_SEC);
    json_decref(all);
    next_window();
    _lws_log(LLL_WARN, "after the flood\n");
    all = records();
    assert_int_equal(json_array_size(all), LWSLOG_MAX_PER_SEC + 1);
    json_t *last = json_array_get(all, LWSLOG_MAX_PER_SEC);
    assert_string_equal(str(last, "msg"), "after the flood");
    assert_int_equal(json_integer_value(json_object_get(last, "suppressed")), 7);
    json_decref(all);
    _lws_log(LLL_WARN, "and the next\n");
    all = records();
    assert_null(json_object_get(json_array_get(all, LWSLOG_MAX_PER_SEC + 1), "suppressed"));
    json_decref(all);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lines_become_records, open_log, close_log),
        cmocka_unit_test_setup_teardown(test_flood_is_limited, open_log, close_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
