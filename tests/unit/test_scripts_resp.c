/* Unit tests for scripts_resp_argv() in frontend/scripts.c: the Redis request it writes must be
 * byte for byte what hiredis's own formatter writes, for any arguments. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "scripts.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

static void check_same_as_hiredis(int argc, const char **argv, const size_t *lens) {
    char *want = NULL;
    int wn = redisFormatCommandArgv(&want, argc, argv, lens);
    assert_true(wn > 0);
    char small[8];
    size_t need = scripts_resp_argv(small, sizeof(small), argc, argv, lens);
    assert_true(need >= (size_t)wn); /* an upper bound when it does not fit */
    char *buf = malloc(need);
    assert_non_null(buf);
    size_t n = scripts_resp_argv(buf, need, argc, argv, lens);
    assert_int_equal(n, (size_t)wn);
    assert_memory_equal(buf, want, n);
    free(buf);
    free(want);
}

static void test_simple(void **state) {
    (void)state;
    const char *argv[] = {"EVALSHA", "0123456789012345678901234567890123456789", "2", "k1", "k2"};
    size_t lens[] = {7, 40, 1, 2, 2};
    check_same_as_hiredis(5, argv, lens);
}

static void test_binary_and_empty(void **state) {
    (void)state;
    const char bin[] = {'a', '\0', '\r', '\n', '$', '*', (char)0xff};
    const char *argv[] = {"SET", "", bin, "{\"type\":\"x\"}\r\n"};
    size_t lens[] = {3, 0, sizeof(bin), 14};
    check_same_as_hiredis(4, argv, lens);
}

static void test_large_argument(void **state) {
    (void)state;
    size_t big = 200000;
    char *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)(i * 13);
    const char *argv[] = {"EVALSHA", data, "1234567890"};
    size_t lens[] = {7, big, 10};
    check_same_as_hiredis(3, argv, lens);
    free(data);
}

static void test_many_arguments(void **state) {
    (void)state;
    enum { N = 67 };
    const char *argv[N];
    size_t lens[N];
    char store[N][8];
    for (int i = 0; i < N; i++) {
        lens[i] = (size_t)snprintf(store[i], sizeof(store[i]), "a%d", i * 37);
        argv[i] = store[i];
    }
    check_same_as_hiredis(N, argv, lens);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_binary_and_empty),
        cmocka_unit_test(test_large_argument),
        cmocka_unit_test(test_many_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
