/* Small helpers shared by every module: clocks, bounded string copies, comma-separated lists,
 * randomness, own memory use. */
#ifndef RRM_UTIL_H
#define RRM_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock milliseconds since the Unix epoch (what events and frames carry). */
int64_t util_now_ms(void);

/* Wall-clock microseconds since the Unix epoch (a relayed message's time across nodes). */
int64_t util_now_us(void);

/* Monotonic milliseconds, for timeouts and durations. */
int64_t util_mono_ms(void);

/* Monotonic microseconds, for latency measurements. */
int64_t util_mono_us(void);

/* Writes v in decimal and a NUL into out (at least 21 bytes); returns the digits' length. */
size_t util_u64_dec(char *out, uint64_t v);

/* Writes the n strings of parts one after the other and a NUL into buf; returns the length, or
 * -1 (buf unspecified) if that does not fit in cap bytes. A key or header costs a few copies
 * instead of a printf. */
int util_concat(char *buf, size_t cap, const char *const *parts, size_t n);

/* Copies at most cap-1 bytes of src into dst and NUL-terminates; returns -1 if it had to cut. */
int util_strlcpy(char *dst, const char *src, size_t cap);

/* Calls fn(entry, len, arg) for each entry of the comma-separated list (NUL-terminated): blanks
 * (spaces, tabs) around an entry trimmed, empty entries skipped. Stops at and returns the first
 * non-zero result of fn; 0 when every entry was visited. */
int util_list_each(const char *list, int (*fn)(const char *entry, size_t len, void *arg),
                   void *arg);

/* Fills buf with n random bytes from the kernel; returns 0 or -errno. */
int util_random(void *buf, size_t n);

/* This process's resident memory in KiB (from /proc/self/statm); 0 if it cannot be read. */
int64_t util_rss_kib(void);

#endif
