/* CPU time and memory of processes, read from /proc: the load generator's view of the servers
 * (--pids), and the standard process_* metrics of the calling process (each program's /metrics).
 * The parsers are separate from the file reading so they can be tested on fixed text. */
#ifndef RRM_PROCSTAT_H
#define RRM_PROCSTAT_H

#include <stddef.h>
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

/* Fields of /proc/<pid>/stat. */
struct procstat_stat {
    uint64_t utime, stime; /* clock ticks */
    uint64_t starttime;    /* clock ticks after boot */
    uint64_t vsize;        /* bytes */
    uint64_t rss_pages;
};

/* Parses the text of /proc/<pid>/stat: comm and the fields above (those after stime are 0 if the
 * line ends before them). 0, or -1 if it ends before stime or is malformed. */
int procstat_parse_stat_fields(const char *text, char *comm, size_t comm_cap,
                               struct procstat_stat *out);

/* Parses the text of /proc/<pid>/stat: comm and utime + stime in clock ticks. 0 or -1. */
int procstat_parse_stat(const char *text, char *comm, size_t comm_cap, uint64_t *ticks);

/* Parses VmRSS (KiB) out of the text of /proc/<pid>/status. 0 or -1. */
int procstat_parse_rss(const char *text, uint64_t *kib);

/* Parses the boot time (seconds since the epoch) out of the text of /proc/stat. 0 or -1. */
int procstat_parse_btime(const char *text, uint64_t *sec);

/* Writes the standard process_* metrics of the calling process in Prometheus text format (CPU
 * seconds, resident and virtual memory bytes, open and max fds, start time) into buf. Returns
 * the length, or 0 if /proc could not be read or cap is too small. */
size_t procstat_self_metrics(char *buf, size_t cap);

#endif
