/* CPU time and resident memory of server processes, read from /proc. The parsers are separate
 * from the file reading so they can be tested on fixed text. */
#ifndef RRM_BENCH_PROCSTAT_H
#define RRM_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

struct procstat {
    char comm[32];
    uint64_t cpu_us; /* user + system time of every thread, alive or exited */
    uint64_t rss_kib;
};

/* Reads /proc/<pid>/stat and /proc/<pid>/status. Returns 0 or -1 (no such process). */
int procstat_read(pid_t pid, struct procstat *out);

/* Reads every one of n processes into ps[]. Returns 1 if n > 0 and all were read, else 0. */
int procstat_sample(const pid_t *pids, int n, struct procstat *ps);

/* Parses the text of /proc/<pid>/stat: comm and utime + stime in clock ticks. 0 or -1. */
int procstat_parse_stat(const char *text, char *comm, size_t comm_cap, uint64_t *ticks);

/* Parses VmRSS (KiB) out of the text of /proc/<pid>/status. 0 or -1. */
int procstat_parse_rss(const char *text, uint64_t *kib);

#endif
