/* Unit tests for the option-table configuration in shared/config.c: defaults < environment <
 * flags, both flag forms, validation messages, --help and string limits. Uses a small option table
 * of its own. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_conf {
    long port;
    char name[8]; /* at most 7 characters */
    long ratio;
    char host[32]; /* at least 1 character */
};

static const struct cfg_option test_opts[] = {
    {"port", CFG_INT, offsetof(struct test_conf, port), "8080", 1, 65535, "listen port"},
    {"name", CFG_STR, offsetof(struct test_conf, name), NULL, 0, 8, "a short name"},
    {"ratio", CFG_INT, offsetof(struct test_conf, ratio), "-5", -10, 10, "signed value"},
    {"host-name", CFG_STR, offsetof(struct test_conf, host), "localhost", 1, 32, "host"},
};
#define NOPTS (sizeof(test_opts) / sizeof(test_opts[0]))

static const char *const env_vars[] = {"RRM_PORT", "RRM_NAME", "RRM_RATIO", "RRM_HOST_NAME"};

/* Every test starts and ends with none of the table's variables set. */
static int clear_env(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        unsetenv(env_vars[i]);
    return 0;
}

struct result {
    int rc;
    struct test_conf conf;
    char err[256];
};

/* Runs cfg_load over a NULL-terminated argument list (program name added). */
static void load(struct result *r, const char *const *args) {
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)"prog";
    for (; args && *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    memset(&r->conf, 0x5a, sizeof(r->conf));
    r->err[0] = '\0';
    r->rc = cfg_load(test_opts, NOPTS, &r->conf, argc, argv, r->err, sizeof(r->err));
}

static void expect_error_naming(const struct result *r, const char *env, const char *flag) {
    assert_int_equal(r->rc, -1);
    if (!strstr(r->err, env) || !strstr(r->err, flag))
        fail_msg("error '%s' should name %s and %s", r->err, env, flag);
}

/* ---- cfg_env_name ---- */

static void test_env_name(void **state) {
    (void)state;
    char buf[64];
    cfg_env_name("redis-port", buf, sizeof(buf));
    assert_string_equal(buf, "RRM_REDIS_PORT");
    cfg_env_name("port", buf, sizeof(buf));
    assert_string_equal(buf, "RRM_PORT");
    cfg_env_name("a-b-c", buf, sizeof(buf));
    assert_string_equal(buf, "RRM_A_B_C");
    /* Bounded by cap, always terminated. */
    cfg_env_name("redis-port", buf, 7);
    assert_string_equal(buf, "RRM_RE");
    cfg_env_name("redis-port", buf, 3);
    assert_string_equal(buf, "RR");
}

/* ---- precedence ---- */

static void test_defaults(void **state) {
    (void)state;
    struct result r;
    load(&r, NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.conf.port, 8080);
    assert_string_equal(r.conf.name, ""); /* NULL default means empty */
    assert_int_equal(r.conf.ratio, -5);
    assert_string_equal(r.conf.host, "localhost");
}

static void test_env_overrides_default(void **state) {
    (void)state;
    setenv("RRM_PORT", "9000", 1);
    setenv("RRM_NAME", "envname", 1);
    setenv("RRM_RATIO", "10", 1);
    setenv("RRM_HOST_NAME", "redis.local", 1);
    struct result r;
    load(&r, NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.conf.port, 9000);
    assert_string_equal(r.conf.name, "envname");
    assert_int_equal(r.conf.ratio, 10);
    assert_string_equal(r.conf.host, "redis.local");
}

static void test_env_empty_string(void **state) {
    (void)state;
    /* A set but empty variable is a value: fine for a string that may be empty... */
    setenv("RRM_NAME", "", 1);
    struct result r;
    load(&r, NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.conf.name, "");
    /* ...and not an integer. */
    setenv("RRM_PORT", "", 1);
    load(&r, NULL);
    expect_error_naming(&r, "RRM_PORT", "--port");
}

static void test_flag_overrides_env(void **state) {
    (void)state;
    setenv("RRM_PORT", "9000", 1);
    setenv("RRM_HOST_NAME", "from-env", 1);
    struct result r;
    const char *args[] = {"--port", "9100", "--host-name=from-flag", NULL};
    load(&r, args);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.conf.port, 9100);
    assert_string_equal(r.conf.host, "from-flag");
    assert_int_equal(r.conf.ratio, -5); /* untouched options keep their defaults */
}

static void test_flag_forms(void **state) {
    (void)state;
    struct result r;
    const char *eq[] = {"--port=1", "--name=abc", "--ratio=-10", NULL};
    load(&r, eq);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.conf.port, 1);
    assert_string_equal(r.conf.name, "abc");
    assert_int_equal(r.conf.ratio, -10);

    const char *sep[] = {"--port", "65535", "--name", "xyz", "--ratio", "-1", NULL};
    load(&r, sep);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.conf.port, 65535);
    assert_string_equal(r.conf.name, "xyz");
    assert_int_equal(r.conf.ratio, -1);

    /* "=" splits at the first one; the value may contain more. */
    const char *more[] = {"--host-name=a=b", "--name=", NULL};
    load(&r, more);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.conf.host, "a=b");
    assert_string_equal(r.conf.name, "");
}

static void test_last_flag_wins(void **state) {
    (void)state;
    struct result r;
    const char *args[] = {"--port=10", "--port", "20", NULL};
    load(&r, args);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.conf.port, 20);
}

/* ---- integer validation ---- */

static void test_int_out_of_range(void **state) {
    (void)state;
    struct result r;
    const char *hi[] = {"--port=65536", NULL};
    load(&r, hi);
    expect_error_naming(&r, "RRM_PORT", "--port");
    assert_non_null(strstr(r.err, "65536"));

    const char *lo[] = {"--port", "0", NULL};
    load(&r, lo);
    expect_error_naming(&r, "RRM_PORT", "--port");

    const char *neg[] = {"--ratio=-11", NULL};
    load(&r, neg);
    expect_error_naming(&r, "RRM_RATIO", "--ratio");

    setenv("RRM_RATIO", "11", 1);
    load(&r, NULL);
    expect_error_naming(&r, "RRM_RATIO", "--ratio");
    assert_non_null(strstr(r.err, "environment"));
}

static void test_int_not_an_integer(void **state) {
    (void)state;
    const char *bad[] = {
        "abc",  "12abc", "1.5", "0x10", "", "99999999999999999999999", "-99999999999999999999999",
        "8080 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char arg[64];
        snprintf(arg, sizeof(arg), "--port=%s", bad[i]);
        const char *args[] = {arg, NULL};
        struct result r;
        load(&r, args);
        expect_error_naming(&r, "RRM_PORT", "--port");

        clear_env(NULL);
        setenv("RRM_PORT", bad[i], 1);
        load(&r, NULL);
        expect_error_naming(&r, "RRM_PORT", "--port");
        clear_env(NULL);
    }
}

static void test_env_error_even_if_flag_given(void **state) {
    (void)state;
    /* The environment is validated before flags are read: a bad variable is reported. */
    setenv("RRM_PORT", "nope", 1);
    struct result r;
    const char *args[] = {"--port=80", NULL};
    load(&r, args);
    expect_error_naming(&r, "RRM_PORT", "--port");
}

/* ---- strings ---- */

static void test_string_too_long(void **state) {
    (void)state;
    struct result r;
    const char *ok[] = {"--name=1234567", NULL}; /* 7 fits in char[8] */
    load(&r, ok);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.conf.name, "1234567");

    const char *bad[] = {"--name=12345678", NULL};
    load(&r, bad);
    expect_error_naming(&r, "RRM_NAME", "--name");

    setenv("RRM_NAME", "waytoolongforthis", 1);
    load(&r, NULL);
    expect_error_naming(&r, "RRM_NAME", "--name");
}

static void test_string_too_short(void **state) {
    (void)state;
    struct result r;
    const char *args[] = {"--host-name=", NULL};
    load(&r, args);
    expect_error_naming(&r, "RRM_HOST_NAME", "--host-name");
}

/* ---- argument errors and help ---- */

static void test_unknown_flag(void **state) {
    (void)state;
    struct result r;
    const char *args[] = {"--nope=1", NULL};
    load(&r, args);
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.err, "--nope"));

    /* A prefix of a known name is not that name. */
    const char *prefix[] = {"--po", "1", NULL};
    load(&r, prefix);
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.err, "--po"));

    const char *longer[] = {"--portx=1", NULL};
    load(&r, longer);
    assert_int_equal(r.rc, -1);
}

static void test_positional_argument(void **state) {
    (void)state;
    struct result r;
    const char *args[] = {"stray", NULL};
    load(&r, args);
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.err, "stray"));

    const char *single_dash[] = {"-port", "1", NULL};
    load(&r, single_dash);
    assert_int_equal(r.rc, -1);
}

static void test_missing_value(void **state) {
    (void)state;
    struct result r;
    const char *args[] = {"--port", NULL};
    load(&r, args);
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.err, "--port"));
}

static void test_help(void **state) {
    (void)state;
    struct result r;
    const char *help[] = {"--help", NULL};
    load(&r, help);
    assert_int_equal(r.rc, CFG_HELP);

    const char *h[] = {"-h", NULL};
    load(&r, h);
    assert_int_equal(r.rc, CFG_HELP);

    const char *after[] = {"--port=1", "--help", NULL};
    load(&r, after);
    assert_int_equal(r.rc, CFG_HELP);
}

static void test_version(void **state) {
    (void)state;
    struct result r;
    const char *version[] = {"--version", NULL};
    load(&r, version);
    assert_int_equal(r.rc, CFG_VERSION);

    const char *after[] = {"--port=1", "--version", NULL};
    load(&r, after);
    assert_int_equal(r.rc, CFG_VERSION);

    /* a value that happens to read --version is a value */
    const char *as_value[] = {"--host-name", "--version", NULL};
    load(&r, as_value);
    assert_int_equal(r.rc, 0);
}

static void test_usage_lists_every_option(void **state) {
    (void)state;
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    assert_non_null(f);
    cfg_usage(f, "prog", "does things", test_opts, NOPTS);
    fclose(f);
    assert_non_null(strstr(text, "prog"));
    assert_non_null(strstr(text, "does things"));
    for (size_t i = 0; i < NOPTS; i++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", test_opts[i].name);
        assert_non_null(strstr(text, flag));
        assert_non_null(strstr(text, env_vars[i]));
        assert_non_null(strstr(text, test_opts[i].help));
    }
    assert_non_null(strstr(text, "8080"));
    assert_non_null(strstr(text, "(empty)"));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_env_name, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_defaults, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_env_overrides_default, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_env_empty_string, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_flag_overrides_env, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_flag_forms, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_last_flag_wins, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_int_out_of_range, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_int_not_an_integer, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_env_error_even_if_flag_given, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_string_too_long, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_string_too_short, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_unknown_flag, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_positional_argument, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_missing_value, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_help, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_version, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_usage_lists_every_option, clear_env, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
