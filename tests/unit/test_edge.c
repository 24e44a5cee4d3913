/* Unit tests for the pure checks of frontend/edge.c: which close-frame payloads RFC 6455 allows
 * a client to send (section 7.4), and finding a name in a comma-separated header value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "edge.h"

static int code_valid(unsigned code, const char *reason) {
    unsigned char p[64];
    size_t n = 2;
    p[0] = (unsigned char)(code >> 8);
    p[1] = (unsigned char)code;
    while (reason && *reason && n < sizeof(p))
        p[n++] = (unsigned char)*reason++;
    return edge_close_payload_valid(p, n);
}

static void test_close_empty_and_short(void **state) {
    (void)state;
    assert_true(edge_close_payload_valid(NULL, 0));
    const unsigned char one[1] = {0x03};
    assert_false(edge_close_payload_valid(one, 1));
}

static void test_close_codes(void **state) {
    (void)state;
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                     1010, 1011, 1012, 1013, 1014, 3000, 4999};
    static const unsigned invalid[] = {0,    999,  1004, 1005, 1006, 1015,
                                       1016, 2999, 5000, 5001, 65535};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        assert_true(code_valid(valid[i], NULL));
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        assert_false(code_valid(invalid[i], NULL));
    assert_true(code_valid(1000, "bye"));
    assert_false(code_valid(5000, "bye"));
}

static void test_list_has(void **state) {
    (void)state;
    assert_true(edge_list_has("rrm", "rrm", 0));
    assert_true(edge_list_has("chat, rrm", "rrm", 0));
    assert_true(edge_list_has(" chat ,\trrm\t, x", "rrm", 0));
    assert_false(edge_list_has("rrm-redis", "rrm", 0));
    assert_false(edge_list_has("xrrm, rrmx", "rrm", 0));
    assert_false(edge_list_has("RRM", "rrm", 0));
    assert_true(edge_list_has("keep-alive, Upgrade", "upgrade", 1));
    assert_false(edge_list_has("", "rrm", 0));
    assert_false(edge_list_has(",,", "rrm", 0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_empty_and_short),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_list_has),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
