/* /proc readers (see procstat.h). */
#include "procstat.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int procstat_parse_stat_fields(const char *text, char *comm, size_t comm_cap,
                               struct procstat_stat *out) {
    /* "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so take the last ')' */
    const char *open = strchr(text, '('), *close = strrchr(text, ')');
    if (!open || !close || close < open || comm_cap == 0)
        return -1;
    size_t n = (size_t)(close - open - 1);
    if (n >= comm_cap)
        n = comm_cap - 1;
    memcpy(comm, open + 1, n);
    comm[n] = '\0';
    /* after ")": field 3 (state) .. utime 14, stime 15, starttime 22, vsize 23, rss 24 */
    const char *p = close + 1;
    struct procstat_stat st = {0};
    for (int field = 3; field <= 24; field++) {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n') {
            if (field <= 15)
                return -1;
            break; /* a shorter line: the later fields stay 0 */
        }
        uint64_t *dst = field == 14   ? &st.utime
                        : field == 15 ? &st.stime
                        : field == 22 ? &st.starttime
                        : field == 23 ? &st.vsize
                        : field == 24 ? &st.rss_pages
                                      : NULL;
        if (dst) {
            char *end;
            unsigned long long v = strtoull(p, &end, 10);
            if (end == p)
                return -1;
            *dst = v;
            p = end;
        } else {
            while (*p && *p != ' ' && *p != '\n')
                p++;
        }
    }
    *out = st;
    return 0;
}

int procstat_parse_stat(const char *text, char *comm, size_t comm_cap, uint64_t *ticks) {
    struct procstat_stat st;
    if (procstat_parse_stat_fields(text, comm, comm_cap, &st))
        return -1;
    *ticks = st.utime + st.stime;
    return 0;
}

int procstat_parse_rss(const char *text, uint64_t *kib) {
    const char *p = strstr(text, "\nVmRSS:");
    if (!p)
        return -1;
    char *end;
    unsigned long long v = strtoull(p + 7, &end, 10);
    if (end == p + 7)
        return -1;
    *kib = v;
    return 0;
}

static int slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n ? 0 : -1;
}

int procstat_sample(const pid_t *pids, int n, struct procstat *ps) {
    int ok = n > 0;
    for (int i = 0; i < n; i++)
        if (procstat_read(pids[i], &ps[i]))
            ok = 0;
    return ok;
}

int procstat_read(pid_t pid, struct procstat *out) {
    char path[64], buf[4096];
    uint64_t ticks;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if (slurp(path, buf, sizeof(buf)) ||
        procstat_parse_stat(buf, out->comm, sizeof(out->comm), &ticks))
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    out->cpu_us = ticks * 1000000ull / (uint64_t)(hz > 0 ? hz : 100);
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    if (slurp(path, buf, sizeof(buf)) || procstat_parse_rss(buf, &out->rss_kib))
        return -1;
    return 0;
}

int procstat_parse_btime(const char *text, uint64_t *sec) {
    const char *p = strncmp(text, "btime ", 6) == 0 ? text : strstr(text, "\nbtime ");
    if (!p)
        return -1;
    p += p == text ? 6 : 7;
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p)
        return -1;
    *sec = v;
    return 0;
}

static long count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own */
}

/* /proc/stat line by line: its "intr" line, before "btime", can be far longer than a page. */
static int read_btime(uint64_t *sec) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t len = 0;
    int rc = -1;
    while (rc && getline(&line, &len, f) > 0)
        if (strncmp(line, "btime ", 6) == 0)
            rc = procstat_parse_btime(line, sec);
    free(line);
    fclose(f);
    return rc;
}

size_t procstat_self_metrics(char *buf, size_t cap) {
    char text[4096], comm[32];
    struct procstat_stat st;
    uint64_t btime = 0;
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    hz = hz > 0 ? hz : 100;
    if (slurp("/proc/self/stat", text, sizeof(text)) ||
        procstat_parse_stat_fields(text, comm, sizeof(comm), &st))
        return 0;
    if (read_btime(&btime))
        btime = 0;
    struct rlimit rl;
    long long max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                            ? (long long)rl.rlim_cur
                            : -1;
    int n = snprintf(
        buf, cap,
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n"
        "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
        "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n"
        "# HELP process_open_fds Number of open file descriptors.\n"
        "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n"
        "# HELP process_max_fds Maximum number of open file descriptors.\n"
        "# TYPE process_max_fds gauge\nprocess_max_fds %lld\n"
        "# HELP process_start_time_seconds Start time of the process since unix epoch in "
        "seconds.\n"
        "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
        (double)(st.utime + st.stime) / (double)hz,
        (unsigned long long)st.rss_pages * (unsigned long long)(page > 0 ? page : 4096),
        (unsigned long long)st.vsize, count_fds(), max_fds,
        (double)btime + (double)st.starttime / (double)hz);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}
