/* The archiver's Redis connections (rconn.h) without a server: the RRM_REDIS_NODES seed list it
 * accepts and refuses, and that nothing is connected before rconn_up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rconn.h"

#include <string.h>

static void test_seed_lists(void **state) {
    (void)state;
    assert_int_equal(rconn_check_nodes(NULL), 0);
    assert_int_equal(rconn_check_nodes(""), 0);
    assert_int_equal(rconn_check_nodes("127.0.0.1:7000"), 0);
    assert_int_equal(rconn_check_nodes("a:1,b.example:65535,[::1]:7001"), 0);
    assert_int_equal(rconn_check_nodes("::1:7001"), 0); /* the port after the last ':' */

    assert_int_equal(rconn_check_nodes("127.0.0.1"), -1);  /* no port */
    assert_int_equal(rconn_check_nodes("127.0.0.1:"), -1); /* empty port */
    assert_int_equal(rconn_check_nodes(":7000"), -1);      /* no host */
    assert_int_equal(rconn_check_nodes("h:0"), -1);        /* port 0 */
    assert_int_equal(rconn_check_nodes("h:65536"), -1);    /* port too large */
    assert_int_equal(rconn_check_nodes("h:70x"), -1);      /* not a number */
    assert_int_equal(rconn_check_nodes("a:1,,b:2"), -1);   /* empty item */
    assert_int_equal(rconn_check_nodes("a:1,"), 0);        /* a trailing comma ends the list */
    assert_int_equal(rconn_check_nodes("[]:7000"), -1);    /* empty bracketed host */
}

static void test_not_up_before_connect(void **state) {
    (void)state;
    struct logger lg = {.program = "test", .node = "t", .min = LOG_ERROR};
    struct rconn_config cfg = {.host = "127.0.0.1",
                               .port = 1,
                               .password = "",
                               .cluster = 1,
                               .nodes = "127.0.0.1:2",
                               .timeout_ms = 100};
    struct rconn *r = rconn_create(&cfg, &lg);
    assert_non_null(r);
    assert_int_equal(rconn_is_up(r), 0);
    const char *argv[] = {"PING"};
    assert_null(rconn_command(r, "k", 1, 1, argv, NULL));
    assert_string_equal(rconn_error(r), "not connected");
    assert_null(rconn_context(r, "k", 1));
    rconn_destroy(r);

    cfg.nodes = "nonsense";
    assert_null(rconn_create(&cfg, &lg));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_lists),
        cmocka_unit_test(test_not_up_before_connect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
