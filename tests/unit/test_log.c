/* Unit tests for log.c: real-valued fields rounded and written without binary noise, one JSON
 * object per line. */
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_round(void **state) {
    (void)state;
    assert_true(log_round(23.10004999, 3) == 23.1);
    assert_true(log_round(23.1005, 3) == 23.101 || log_round(23.1005, 3) == 23.1);
    assert_true(log_round(0.49975012493753124, 2) == 0.5);
    assert_true(log_round(-1.25001, 1) == -1.3 || log_round(-1.25001, 1) == -1.2);
    assert_true(log_round(-1.26, 1) == -1.3);
    assert_true(log_round(7.0, 0) == 7.0);
    assert_true(log_round(1e300, 3) == 1e300); /* too large to round: as it is */
}

/* The line log_json writes for one field. */
static char *line_for(json_t *field) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    assert_non_null(f);
    struct logger lg = {.program = "test", .node = NULL, .min = LOG_INFO, .out = f};
    log_json(&lg, LOG_INFO, "m", json_pack("{s:o}", "x", field));
    fclose(f);
    return text;
}

static void test_reals_written_short(void **state) {
    (void)state;
    char *a = line_for(json_real(log_round(23.100000049, 3)));
    assert_non_null(strstr(a, "\"x\":23.1}\n"));
    free(a);
    char *b = line_for(json_real(0.1 + 0.2)); /* 0.30000000000000004 */
    assert_non_null(strstr(b, "\"x\":0.3}\n"));
    free(b);
    char *c = line_for(json_real(log_round(2.0 / 3.0, 2)));
    assert_non_null(strstr(c, "\"x\":0.67}\n"));
    free(c);
    char *d = line_for(json_real(0.0));
    assert_non_null(strstr(d, "\"x\":0.0}\n"));
    free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round),
        cmocka_unit_test(test_reals_written_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
