/* /proc readers for --pids (see procstat.h). */
#include "procstat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int procstat_parse_stat(const char *text, char *comm, size_t comm_cap, uint64_t *ticks) {
    /* "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so take the last ')' */
    const char *open = strchr(text, '('), *close = strrchr(text, ')');
    if (!open || !close || close < open || comm_cap == 0)
        return -1;
    size_t n = (size_t)(close - open - 1);
    if (n >= comm_cap)
        n = comm_cap - 1;
    memcpy(comm, open + 1, n);
    comm[n] = '\0';
    /* after ")": field 3 (state) .. utime is field 14, stime field 15 */
    const char *p = close + 1;
    unsigned long long utime = 0, stime = 0;
    for (int field = 3; field <= 15; field++) {
        while (*p == ' ')
            p++;
        if (!*p)
            return -1;
        if (field == 14 || field == 15) {
            char *end;
            unsigned long long v = strtoull(p, &end, 10);
            if (end == p)
                return -1;
            if (field == 14)
                utime = v;
            else
                stime = v;
            p = end;
        } else {
            while (*p && *p != ' ')
                p++;
        }
    }
    *ticks = utime + stime;
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
