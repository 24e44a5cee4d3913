/* Unit tests for rrm-bench's command line (bench/args.c): defaults, repeated and parsed --url,
 * --rate stages, --bind ranges, --help, and every rejection naming its flag. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 32

struct parsed {
    struct bench_opts o;
    char err[256];
    int rc;
};

/* Runs args_parse on "rrm-bench" followed by the NULL-terminated arguments. The strings are
 * literals (getopt_long permutes the pointer array, never the strings, and may keep a pointer
 * into the last one between calls). */
static struct parsed *parse(const char *first, ...) {
    static struct parsed p;
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = (char *)"rrm-bench";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        assert_true(argc < MAX_ARGS);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;
    memset(&p, 0, sizeof(p));
    p.rc = args_parse(&p.o, argc, argv, p.err, sizeof(p.err));
    return &p;
}

/* The arguments must be rejected with a message that names flag. */
#define REJECT(flag, ...) expect_rejected(flag, parse(__VA_ARGS__, NULL))

static void expect_rejected(const char *flag, const struct parsed *p) {
    if (p->rc != -1)
        fail_msg("expected a rejection naming %s, got rc %d", flag, p->rc);
    if (p->err[0] == '\0' || !strstr(p->err, flag))
        fail_msg("the message '%s' does not name %s", p->err, flag);
}

static void test_defaults(void **state) {
    (void)state;
    struct parsed *p = parse(NULL);
    assert_int_equal(p->rc, 0);
    const struct bench_opts *o = &p->o;
    assert_int_equal(o->clients, 500);
    assert_int_equal(o->rooms, 50);
    assert_int_equal(o->nrates, 1);
    assert_true(o->rates[0] == 8.0);
    assert_int_equal(o->nurls, 1);
    assert_string_equal(o->urls[0].host, "127.0.0.1");
    assert_int_equal(o->urls[0].port, 8765);
    assert_string_equal(o->urls[0].path, "/");
    assert_int_equal(o->size, 100);
    assert_int_equal(o->binary, 0);
    assert_int_equal(o->json, 0);
    assert_int_equal(o->nbinds, 0);
    assert_int_equal(o->npids, 0);
    assert_int_equal(o->workers, 0);
    assert_int_equal(o->ctl_in, -1);
    assert_int_equal(o->ctl_out, -1);
    assert_true(strncmp(o->prefix, "bench-", 6) == 0);
    assert_string_equal(o->jwt_secret, ""); /* no tokens */
}

static void test_all_options(void **state) {
    (void)state;
    struct parsed *p = parse("--clients", "40", "--rooms", "4", "--size", "200", "--duration",
                             "1.5", "--warmup", "0", "--ramp", "100", "--drain", "250",
                             "--p99-limit", "7.5", "--stop-on-fail", "--json", "--verbose",
                             "--pids", "11,22,33", "--prefix", "t-1", "--workers", "2", NULL);
    assert_int_equal(p->rc, 0);
    const struct bench_opts *o = &p->o;
    assert_int_equal(o->clients, 40);
    assert_int_equal(o->rooms, 4);
    assert_int_equal(o->size, 200);
    assert_true(o->duration_s == 1.5);
    assert_true(o->warmup_s == 0.0);
    assert_int_equal(o->ramp, 100);
    assert_int_equal(o->drain_ms, 250);
    assert_true(o->p99_limit_ms == 7.5);
    assert_int_equal(o->stop_on_fail, 1);
    assert_int_equal(o->json, 1);
    assert_int_equal(o->verbose, 1);
    assert_int_equal(o->npids, 3);
    assert_int_equal(o->pids[0], 11);
    assert_int_equal(o->pids[2], 33);
    assert_string_equal(o->prefix, "t-1");
    assert_int_equal(o->workers, 2);

    p = parse("--jwt-secret", "s3cret", NULL);
    assert_int_equal(p->rc, 0);
    assert_string_equal(p->o.jwt_secret, "s3cret");

    /* binary frames may be as small as their 24-byte header */
    p = parse("--binary", "--size", "24", NULL);
    assert_int_equal(p->rc, 0);
    assert_int_equal(p->o.binary, 1);
    assert_int_equal(p->o.size, 24);
}

static void test_repeated_url(void **state) {
    (void)state;
    struct parsed *p = parse("--url", "ws://127.0.0.1:9001/", "--url", "ws://localhost:9002/ws",
                             "--url", "ws://example.org", NULL);
    assert_int_equal(p->rc, 0);
    assert_int_equal(p->o.nurls, 3);
    assert_string_equal(p->o.urls[0].host, "127.0.0.1");
    assert_int_equal(p->o.urls[0].port, 9001);
    assert_string_equal(p->o.urls[0].path, "/");
    assert_string_equal(p->o.urls[1].host, "localhost");
    assert_int_equal(p->o.urls[1].port, 9002);
    assert_string_equal(p->o.urls[1].path, "/ws");
    assert_string_equal(p->o.urls[2].host, "example.org");
    assert_int_equal(p->o.urls[2].port, 80);
    assert_string_equal(p->o.urls[2].path, "/");
}

static void test_parse_url(void **state) {
    (void)state;
    struct bench_url u;
    assert_int_equal(args_parse_url("ws://h:1/", &u), 0);
    assert_int_equal(u.port, 1);
    assert_int_equal(args_parse_url("ws://h:65535/a/b", &u), 0);
    assert_int_equal(u.port, 65535);
    assert_string_equal(u.path, "/a/b");
    static const char *const bad[] = {
        "http://127.0.0.1:8765/",
        "wss://127.0.0.1:8765/",
        "127.0.0.1:8765",
        "ws://",
        "ws://:8765/",
        "ws://h:0/",
        "ws://h:70000/",
        "ws://h:/",
        "ws://h:-5/",
        "ws://h:12x/",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (args_parse_url(bad[i], &u) != -1)
            fail_msg("accepted the url '%s'", bad[i]);
}

static void test_rate_stages(void **state) {
    (void)state;
    struct parsed *p = parse("--rate", "8,16,24", NULL);
    assert_int_equal(p->rc, 0);
    assert_int_equal(p->o.nrates, 3);
    assert_true(p->o.rates[0] == 8.0);
    assert_true(p->o.rates[1] == 16.0);
    assert_true(p->o.rates[2] == 24.0);

    /* a later --rate replaces an earlier one; 0 is an idle stage; fractions are allowed */
    p = parse("--rate", "1,2", "--rate", "0,0.5", NULL);
    assert_int_equal(p->rc, 0);
    assert_int_equal(p->o.nrates, 2);
    assert_true(p->o.rates[0] == 0.0);
    assert_true(p->o.rates[1] == 0.5);
}

static void test_bind_ranges(void **state) {
    (void)state;
    struct parsed *p = parse("--bind", "127.0.0.2-127.0.0.4", NULL);
    assert_int_equal(p->rc, 0);
    assert_int_equal(p->o.nbinds, 3);
    assert_string_equal(p->o.binds[0], "127.0.0.2");
    assert_string_equal(p->o.binds[1], "127.0.0.3");
    assert_string_equal(p->o.binds[2], "127.0.0.4");

    /* the short form, a single address, and repetition all append */
    p = parse("--bind", "10.1.2.250-255", "--bind", "192.168.0.1", "--bind", "127.0.0.7-127.0.0.7",
              NULL);
    assert_int_equal(p->rc, 0);
    assert_int_equal(p->o.nbinds, 8);
    assert_string_equal(p->o.binds[0], "10.1.2.250");
    assert_string_equal(p->o.binds[5], "10.1.2.255");
    assert_string_equal(p->o.binds[6], "192.168.0.1");
    assert_string_equal(p->o.binds[7], "127.0.0.7");

    /* args_add_binds directly: bad ranges add nothing */
    static const char *const bad[] = {
        "127.0.0.9-127.0.0.3",
        "127.0.0.9-3",
        "127.0.0.2-256",
        "127.0.0.2-127.0.1.4",
        "127.0.0.2-",
        "127.0.0.2-x",
        "127.0.0",
        "300.0.0.1",
        "",
        "-4",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct bench_opts *o = calloc(1, sizeof(*o));
        assert_non_null(o);
        if (args_add_binds(o, bad[i]) != -1)
            fail_msg("accepted the bind range '%s'", bad[i]);
        assert_int_equal(o->nbinds, 0);
        free(o);
    }
}

static void test_help(void **state) {
    (void)state;
    assert_int_equal(parse("--help", NULL)->rc, ARGS_HELP);
    assert_int_equal(parse("-h", NULL)->rc, ARGS_HELP);
    assert_int_equal(parse("--clients", "10", "--help", "--rooms", "5", NULL)->rc, ARGS_HELP);
}

static void test_rejections(void **state) {
    (void)state;
    REJECT("--url", "--url", "http://127.0.0.1:8765/");
    REJECT("--url", "--url", "ws://127.0.0.1:0/");
    REJECT("--url", "--url", "ws://127.0.0.1:70000/");
    REJECT("--rooms", "--clients", "10", "--rooms", "11");
    REJECT("--rooms", "--rooms", "600"); /* more than the default 500 clients */
    REJECT("--size", "--size", "10");
    REJECT("--size", "--size", "30"); /* valid for binary, too small for text */
    REJECT("--bogus", "--bogus");
    REJECT("--bogus", "--clients", "10", "--bogus", "1");
    REJECT("--workers", "--clients", "40", "--rooms", "4", "--workers", "5");
    REJECT("--bind", "--bind", "127.0.0.9-127.0.0.3");
    REJECT("--clients", "--clients", "0");
    REJECT("--clients", "--clients", "ten");
    REJECT("--rooms", "--rooms", "0");
    REJECT("--rate", "--rate", "8,x,24");
    REJECT("--rate", "--rate", "-1");
    REJECT("--duration", "--duration", "0");
    REJECT("--warmup", "--warmup", "-1");
    REJECT("--drain", "--drain", "soon");
    REJECT("--p99-limit", "--p99-limit", "0");
    REJECT("--pids", "--pids", "12,abc");
    REJECT("--prefix", "--prefix", "has space");
    REJECT("--workers", "--workers", "0");
    REJECT("--jwt-secret", "--jwt-secret", "");
    REJECT("--url", "--url"); /* the value is missing */
    REJECT("stray", "--clients", "10", "stray");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_all_options),
        cmocka_unit_test(test_repeated_url), cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_rate_stages),  cmocka_unit_test(test_bind_ranges),
        cmocka_unit_test(test_help),         cmocka_unit_test(test_rejections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
