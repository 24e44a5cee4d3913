/* Unit tests for the pure checks of frontend/edge.c: which close-frame payloads RFC 6455 allows
 * a client to send (section 7.4), finding a name in a comma-separated header value, and matching
 * an Origin header against RRM_ALLOWED_ORIGINS. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "edge.h"
#include "origin.h"

#include <string.h>

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

static void test_origin_star_allows_any(void **state) {
    (void)state;
    assert_true(origin_allowed("*", "https://evil.example.com"));
    assert_true(origin_allowed("*", "null"));
    assert_true(origin_allowed("https://a.example.com, *", "whatever"));
    assert_true(origin_allowed("*", NULL));
}

static void test_origin_absent_is_allowed(void **state) {
    (void)state;
    /* no Origin header: a native client */
    assert_true(origin_allowed("https://app.example.com", NULL));
}

static void test_origin_exact_match_only(void **state) {
    (void)state;
    const char *list = "https://app.example.com, http://localhost:8080/ ,\thttp://[::1]:3000";
    static const char *const yes[] = {
        "https://app.example.com",     "https://app.example.com/", "HTTPS://APP.EXAMPLE.COM",
        "https://app.example.com:443", "http://localhost:8080",    "http://LocalHost:8080/",
        "http://[::1]:3000",
    };
    static const char *const no[] = {
        "http://app.example.com",          /* other scheme */
        "https://app.example.com:8443",    /* other port */
        "https://app.example.com.evil.io", /* suffix */
        "https://evil.io/app.example.com", /* path */
        "https://sub.app.example.com",     /* subdomain */
        "https://app.example.co",          /* prefix */
        "http://localhost",                /* default port is not 8080 */
        "http://localhost:80800",          /* not a port */
        "https://app.example.com/x",       /* a path */
        "https://app.example.com//",       /* two slashes */
        "https://user@app.example.com",    /* user info */
        "https://app.example.com?x",       /* query */
        "null",                            /* opaque origin */
        "",
        "https://",
        "://app.example.com",
        "https:/app.example.com",
        "http://[::1]:3001",
    };
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!origin_allowed(list, yes[i]))
            fail_msg("'%s' refused", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (origin_allowed(list, no[i]))
            fail_msg("'%s' allowed", no[i]);
}

static void test_origin_default_ports_are_implied(void **state) {
    (void)state;
    assert_true(origin_allowed("http://a.example:80", "http://a.example"));
    assert_true(origin_allowed("http://a.example", "http://a.example:80"));
    assert_true(origin_allowed("wss://a.example", "wss://a.example:443"));
    assert_false(origin_allowed("http://a.example", "http://a.example:443"));
    assert_false(origin_allowed("https://a.example", "https://a.example:80"));
    /* an unknown scheme has no default: written ports must match, absent ones too */
    assert_true(origin_allowed("app://a.example", "app://a.example"));
    assert_false(origin_allowed("app://a.example", "app://a.example:80"));
    assert_true(origin_allowed("chrome-extension://abcdef", "chrome-extension://ABCDEF"));
}

static void test_origin_blanks_around_are_ignored(void **state) {
    (void)state;
    /* blanks around the header value are not part of it; inside, they are */
    assert_true(origin_allowed("https://a.example", " https://a.example\t"));
    assert_false(origin_allowed("https://a.example", "https:// a.example"));
    assert_false(origin_allowed("https://a.example", " "));
}

static void test_origins_checked_at_start(void **state) {
    (void)state;
    char err[512];
    assert_int_equal(origins_check("*", err, sizeof(err)), 0);
    assert_int_equal(origins_check("https://a.example, http://b.example:8080/", err, sizeof(err)),
                     0);
    assert_int_equal(origins_check("https://a.example,,", err, sizeof(err)), 0);
    static const char *const bad[] = {"",
                                      " , ",
                                      "https://a.example/path",
                                      "a.example",
                                      "https://a.example:0",
                                      "https://a.example, x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (origins_check(bad[i], err, sizeof(err)) == 0)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(err, "RRM_ALLOWED_ORIGINS"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_empty_and_short),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_list_has),
        cmocka_unit_test(test_origin_star_allows_any),
        cmocka_unit_test(test_origin_absent_is_allowed),
        cmocka_unit_test(test_origin_exact_match_only),
        cmocka_unit_test(test_origin_default_ports_are_implied),
        cmocka_unit_test(test_origin_blanks_around_are_ignored),
        cmocka_unit_test(test_origins_checked_at_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
