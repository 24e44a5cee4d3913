/* util_rss_kib: this process's resident memory, checked against the kernel's own VmRSS line and
 * against memory the test touches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* VmRSS from /proc/self/status, already in KiB whatever the page size. */
static int64_t status_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    long long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %lld kB", &kib) == 1)
            break;
    fclose(f);
    assert_true(kib > 0);
    return kib;
}

static void test_rss_matches_status(void **state) {
    (void)state;
    int64_t before = status_rss_kib();
    int64_t rss = util_rss_kib();
    int64_t after = status_rss_kib();
    /* The two files are read moments apart; allow what a few page faults in between can add. */
    int64_t lo = (before < after ? before : after) - 512,
            hi = (before > after ? before : after) + 512;
    assert_true(rss >= lo);
    assert_true(rss <= hi);
}

static void test_rss_grows_with_touched_memory(void **state) {
    (void)state;
    enum { MIB = 32 };
    int64_t before = util_rss_kib();
    char *p = malloc((size_t)MIB << 20);
    assert_non_null(p);
    memset(p, 1, (size_t)MIB << 20);
    int64_t after = util_rss_kib();
    assert_true(after - before >= (MIB - 2) * 1024);
    free(p);
}

/* Collects the entries it is shown as "[entry]" into arg; stops on "stop". */
static int collect(const char *entry, size_t len, void *arg) {
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "[%.*s]", (int)len, entry);
    return len == 4 && memcmp(entry, "stop", 4) == 0 ? 7 : 0;
}

static void test_list_each(void **state) {
    (void)state;
    char out[256] = "";
    assert_int_equal(util_list_each(" a ,\tb c\t,, ,d,", collect, out), 0);
    assert_string_equal(out, "[a][b c][d]");
    out[0] = '\0';
    assert_int_equal(util_list_each("", collect, out), 0);
    assert_string_equal(out, "");
    assert_int_equal(util_list_each("x, stop, y", collect, out), 7);
    assert_string_equal(out, "[x][stop]");
}

/* Decimal digits of every power of ten and its neighbours, and the extremes. */
static void test_u64_dec(void **state) {
    (void)state;
    char out[21], want[32];
    uint64_t v = 1;
    for (int i = 0; i < 20; i++, v *= 10) {
        uint64_t around[] = {v - 1, v, v + 1};
        for (int j = 0; j < 3; j++) {
            snprintf(want, sizeof(want), "%llu", (unsigned long long)around[j]);
            assert_int_equal(util_u64_dec(out, around[j]), strlen(want));
            assert_string_equal(out, want);
        }
    }
    assert_int_equal(util_u64_dec(out, UINT64_MAX), 20);
    assert_string_equal(out, "18446744073709551615");
}

static void test_concat(void **state) {
    (void)state;
    char buf[12];
    const char *parts[] = {"rrm:", "{", "ab", "}", ":x"};
    assert_int_equal(util_concat(buf, sizeof(buf), parts, 5), 10);
    assert_string_equal(buf, "rrm:{ab}:x");
    assert_int_equal(util_concat(buf, 11, parts, 5), 10);
    assert_int_equal(util_concat(buf, 10, parts, 5), -1); /* no room for the NUL */
    assert_int_equal(util_concat(buf, 12, parts, 0), 0);
    assert_string_equal(buf, "");
    assert_int_equal(util_concat(buf, 0, parts, 0), -1);
    const char *one[] = {"0123456789A"};
    assert_int_equal(util_concat(buf, sizeof(buf), one, 1), 11);
    const char *two[] = {"0123456789", "AB"};
    assert_int_equal(util_concat(buf, sizeof(buf), two, 2), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rss_matches_status),
        cmocka_unit_test(test_rss_grows_with_touched_memory),
        cmocka_unit_test(test_list_each),
        cmocka_unit_test(test_u64_dec),
        cmocka_unit_test(test_concat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
