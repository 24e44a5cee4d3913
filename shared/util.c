/* Clocks, bounded copies, comma-separated lists, kernel randomness and resident memory. */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static int64_t clock_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_now_ms(void) {
    return clock_ms(CLOCK_REALTIME);
}

int64_t util_mono_ms(void) {
    return clock_ms(CLOCK_MONOTONIC);
}

static int64_t clock_us(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t util_now_us(void) {
    return clock_us(CLOCK_REALTIME);
}

int64_t util_mono_us(void) {
    return clock_us(CLOCK_MONOTONIC);
}

size_t util_u64_dec(char *out, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

int util_concat(char *buf, size_t cap, const char *const *parts, size_t n) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        if (l >= cap - len)
            return -1;
        memcpy(buf + len, parts[i], l);
        len += l;
    }
    if (cap == 0)
        return -1;
    buf[len] = '\0';
    return (int)len;
}

int util_strlcpy(char *dst, const char *src, size_t cap) {
    size_t n = strlen(src);
    if (cap == 0)
        return -1;
    if (n >= cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = '\0';
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

int util_list_each(const char *list, int (*fn)(const char *entry, size_t len, void *arg),
                   void *arg) {
    for (const char *p = list; *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t len = n;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        int r = len ? fn(p, len, arg) : 0;
        if (r)
            return r;
        p += n;
    }
    return 0;
}

int util_random(void *buf, size_t n) {
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int64_t util_rss_kib(void) {
    long pages = 0, resident = 0, page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2 || page <= 0)
        resident = 0;
    fclose(f);
    return (int64_t)resident * (page / 1024);
}
