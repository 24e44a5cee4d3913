/* Unit tests for rrm-bench's /proc readers (bench/procstat.c): parsing /proc/<pid>/stat lines
 * (names with spaces and parentheses, utime + stime), VmRSS out of /proc/<pid>/status, malformed
 * text, and reading the test process itself and a pid that cannot exist. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "procstat.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A /proc/<pid>/stat line as Linux 6.x writes it: utime 250, stime 75, cutime 999, cstime 888. */
#define STAT_TAIL                                                                                  \
    " S 1 4242 4242 0 -1 4194560 1234 0 3 0 250 75 999 888 20 0 3 0 1000 123456789 2048 "          \
    "18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"

static void test_parse_stat_plain(void **state) {
    (void)state;
    char comm[32];
    uint64_t ticks = 0;
    assert_int_equal(
        procstat_parse_stat("4242 (rrm-frontend)" STAT_TAIL, comm, sizeof(comm), &ticks), 0);
    assert_string_equal(comm, "rrm-frontend");
    assert_int_equal(ticks, 325); /* utime + stime, not the children's times */
}

static void test_parse_stat_weird_comm(void **state) {
    (void)state;
    char comm[32];
    uint64_t ticks = 0;
    assert_int_equal(
        procstat_parse_stat("4242 (my (weird) proc)" STAT_TAIL, comm, sizeof(comm), &ticks), 0);
    assert_string_equal(comm, "my (weird) proc");
    assert_int_equal(ticks, 325);

    /* a name that looks like the fields that follow it */
    assert_int_equal(
        procstat_parse_stat("7 (a) S 1 2 3) R 9 9 9 0 -1 0 0 0 0 0 4 6 0 0 20 0 1 0 5 0 0\n", comm,
                            sizeof(comm), &ticks),
        0);
    assert_string_equal(comm, "a) S 1 2 3");
    assert_int_equal(ticks, 10);

    /* an empty name */
    assert_int_equal(procstat_parse_stat("8 ()" STAT_TAIL, comm, sizeof(comm), &ticks), 0);
    assert_string_equal(comm, "");
    assert_int_equal(ticks, 325);
}

static void test_parse_stat_truncates_comm(void **state) {
    (void)state;
    char comm[5];
    uint64_t ticks = 0;
    assert_int_equal(
        procstat_parse_stat("4242 (my (weird) proc)" STAT_TAIL, comm, sizeof(comm), &ticks), 0);
    assert_string_equal(comm, "my (");
    assert_int_equal(ticks, 325);
    assert_int_equal(procstat_parse_stat("4242 (x)" STAT_TAIL, comm, 0, &ticks), -1);
}

static void test_parse_stat_large_times(void **state) {
    (void)state;
    char comm[32];
    uint64_t ticks = 0;
    assert_int_equal(
        procstat_parse_stat("1 (busy) R 0 1 1 0 -1 0 0 0 0 0 4000000000 3000000000 0 0 20 0 64 0",
                            comm, sizeof(comm), &ticks),
        0);
    assert_int_equal(ticks, 7000000000ull);
}

static void test_parse_stat_malformed(void **state) {
    (void)state;
    static const char *const bad[] = {
        "",
        "4242",
        "4242 rrm-frontend S 1 2 3 4 5 6 7 8 9 10 11 12",
        "4242 (rrm-frontend S 1 2 3 4 5 6 7 8 9 10 11 12",
        "4242 rrm-frontend) S 1 2 3 4 5 6 7 8 9 10 11 12",
        "4242 )x( S 1 2 3 4 5 6 7 8 9 10 11 12",
        "4242 (x)",
        "4242 (x) S 1 2 3 4 5 6 7 8 9 10",       /* ends before utime */
        "4242 (x) S 1 2 3 4 5 6 7 8 9 10 11\n",  /* ends before stime */
        "4242 (x) S 1 2 3 4 5 6 7 8 9 10 11 \n", /* nothing after utime but a newline */
        "4242 (x) S 1 2 3 4 5 6 7 8 9 10 abc 75 0 0",
        "4242 (x) S 1 2 3 4 5 6 7 8 9 10 250 xyz 0 0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char comm[32];
        uint64_t ticks = 12345;
        if (procstat_parse_stat(bad[i], comm, sizeof(comm), &ticks) != -1)
            fail_msg("accepted malformed stat text '%s'", bad[i]);
        assert_int_equal(ticks, 12345); /* untouched on failure */
    }
}

static const char status_text[] = "Name:\trrm-frontend\n"
                                  "Umask:\t0022\n"
                                  "State:\tS (sleeping)\n"
                                  "Tgid:\t4242\n"
                                  "Ngid:\t0\n"
                                  "Pid:\t4242\n"
                                  "PPid:\t1\n"
                                  "TracerPid:\t0\n"
                                  "Uid:\t1000\t1000\t1000\t1000\n"
                                  "Gid:\t1000\t1000\t1000\t1000\n"
                                  "FDSize:\t1024\n"
                                  "Groups:\t4 24 27 1000 \n"
                                  "NStgid:\t4242\n"
                                  "NSpid:\t4242\n"
                                  "NSpgid:\t4242\n"
                                  "NSsid:\t4242\n"
                                  "Kthread:\t0\n"
                                  "VmPeak:\t  312644 kB\n"
                                  "VmSize:\t  246084 kB\n"
                                  "VmLck:\t       0 kB\n"
                                  "VmPin:\t       0 kB\n"
                                  "VmHWM:\t   99999 kB\n"
                                  "VmRSS:\t   18432 kB\n"
                                  "RssAnon:\t    9216 kB\n"
                                  "RssFile:\t    9216 kB\n"
                                  "RssShmem:\t       0 kB\n"
                                  "VmData:\t   41236 kB\n"
                                  "VmStk:\t     132 kB\n"
                                  "VmExe:\t     580 kB\n"
                                  "VmLib:\t    9708 kB\n"
                                  "VmPTE:\t     120 kB\n"
                                  "VmSwap:\t       0 kB\n"
                                  "HugetlbPages:\t       0 kB\n"
                                  "Threads:\t3\n"
                                  "voluntary_ctxt_switches:\t1520\n"
                                  "nonvoluntary_ctxt_switches:\t12\n";

/* The fields behind the process_* metrics: starttime 1000, vsize 123456789, rss 2048 pages. */
static void test_parse_stat_fields(void **state) {
    (void)state;
    char comm[32];
    struct procstat_stat st;
    assert_int_equal(
        procstat_parse_stat_fields("4242 (my (weird) proc)" STAT_TAIL, comm, sizeof(comm), &st), 0);
    assert_int_equal(st.utime, 250);
    assert_int_equal(st.stime, 75);
    assert_int_equal(st.starttime, 1000);
    assert_int_equal(st.vsize, 123456789);
    assert_int_equal(st.rss_pages, 2048);
    /* a line that ends after stime still gives the CPU time; the later fields are 0 */
    assert_int_equal(
        procstat_parse_stat_fields("1 (a) R 0 1 1 0 -1 0 0 0 0 0 7 8\n", comm, sizeof(comm), &st),
        0);
    assert_int_equal(st.utime + st.stime, 15);
    assert_int_equal(st.vsize, 0);
    assert_int_equal(
        procstat_parse_stat_fields("1 (a) R 0 1 1 0 -1 0 0 0 0 0 7\n", comm, sizeof(comm), &st),
        -1);
}

static void test_parse_btime(void **state) {
    (void)state;
    uint64_t sec = 0;
    assert_int_equal(procstat_parse_btime("cpu  1 2 3\nintr 5 6\nctxt 9\nbtime 1764490000\n"
                                          "processes 42\n",
                                          &sec),
                     0);
    assert_int_equal(sec, 1764490000);
    assert_int_equal(procstat_parse_btime("btime 17\n", &sec), 0);
    assert_int_equal(sec, 17);
    assert_int_equal(procstat_parse_btime("cpu 1\nbtime x\n", &sec), -1);
    assert_int_equal(procstat_parse_btime("cpu 1\nxbtime 5\n", &sec), -1);
}

/* The process_* block of this very process: every metric there, with a plausible value. */
static void test_self_metrics(void **state) {
    (void)state;
    char buf[2048];
    size_t n = procstat_self_metrics(buf, sizeof(buf));
    assert_true(n > 0 && n == strlen(buf));
    const char *names[] = {"process_cpu_seconds_total ",
                           "process_resident_memory_bytes ",
                           "process_virtual_memory_bytes ",
                           "process_open_fds ",
                           "process_max_fds ",
                           "process_start_time_seconds "};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "\n%s", names[i]);
        const char *p = strstr(buf, line);
        if (!p)
            fail_msg("%s missing from:\n%s", names[i], buf);
        double v = strtod(p + strlen(line), NULL);
        assert_true(v >= 0);
    }
    double start = strtod(strstr(buf, "\nprocess_start_time_seconds ") + 28, NULL);
    assert_true(start > (double)time(NULL) - 3600 && start <= (double)time(NULL) + 1);
    assert_true(strtod(strstr(buf, "\nprocess_resident_memory_bytes ") + 31, NULL) > 100000);
    assert_int_equal(procstat_self_metrics(buf, 10), 0); /* too small: nothing */
}

static void test_parse_rss(void **state) {
    (void)state;
    uint64_t kib = 0;
    assert_int_equal(procstat_parse_rss(status_text, &kib), 0);
    assert_int_equal(kib, 18432); /* VmRSS, not VmHWM or RssAnon */
}

static void test_parse_rss_absent(void **state) {
    (void)state;
    /* a kernel thread's status has no Vm* lines */
    static const char kthread[] = "Name:\tkworker/0:1\nState:\tI (idle)\nTgid:\t12\nPid:\t12\n"
                                  "PPid:\t2\nKthread:\t1\nThreads:\t1\n";
    uint64_t kib = 777;
    assert_int_equal(procstat_parse_rss(kthread, &kib), -1);
    assert_int_equal(procstat_parse_rss("", &kib), -1);
    assert_int_equal(procstat_parse_rss("Name:\tx\nRssAnon:\t 100 kB\n", &kib), -1);
    assert_int_equal(procstat_parse_rss("Name:\tx\nVmRSS:\n", &kib), -1);
    assert_int_equal(procstat_parse_rss("Name:\tx\nVmRSS:\t kB\n", &kib), -1);
    assert_int_equal(kib, 777);
}

static uint64_t process_cpu_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void test_read_self(void **state) {
    (void)state;
    struct procstat ps;
    memset(&ps, 0xff, sizeof(ps));
    assert_int_equal(procstat_read(getpid(), &ps), 0);
    assert_true(ps.rss_kib > 0);
    assert_true(ps.rss_kib < 64ull * 1024 * 1024); /* under 64 GiB */
    assert_true(strlen(ps.comm) > 0);
    assert_true(strlen(ps.comm) < sizeof(ps.comm));
    /* the kernel's name is the executable's name cut to 15 characters */
    assert_int_equal(strncmp(ps.comm, program_invocation_short_name, 15), 0);

    /* CPU time moves forward: spin until the kernel's tick count shows it (generous deadline) */
    uint64_t start = ps.cpu_us, spin_start = process_cpu_us();
    struct procstat later = ps;
    volatile uint64_t sink = 0;
    while (later.cpu_us <= start && process_cpu_us() - spin_start < 20000000u) {
        for (int i = 0; i < 1000000; i++)
            sink += (uint64_t)i;
        assert_int_equal(procstat_read(getpid(), &later), 0);
    }
    assert_true(later.cpu_us > start);
    /* our own CPU clock and /proc agree to within a few ticks */
    uint64_t own = process_cpu_us();
    assert_true(later.cpu_us <= own + 100000u);
}

static void test_read_missing(void **state) {
    (void)state;
    struct procstat ps;
    assert_int_equal(procstat_read((pid_t)INT_MAX, &ps), -1); /* above any pid_max */
    assert_int_equal(procstat_read((pid_t)-1, &ps), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_stat_plain),
        cmocka_unit_test(test_parse_stat_weird_comm),
        cmocka_unit_test(test_parse_stat_truncates_comm),
        cmocka_unit_test(test_parse_stat_large_times),
        cmocka_unit_test(test_parse_stat_malformed),
        cmocka_unit_test(test_parse_stat_fields),
        cmocka_unit_test(test_parse_btime),
        cmocka_unit_test(test_self_metrics),
        cmocka_unit_test(test_parse_rss),
        cmocka_unit_test(test_parse_rss_absent),
        cmocka_unit_test(test_read_self),
        cmocka_unit_test(test_read_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
