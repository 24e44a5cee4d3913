/* Prometheus text writers (see promtext.h). */
#include "promtext.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void prom_printf(const struct prom_out *o, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        o->write(o->ctx, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big)
        return;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    o->write(o->ctx, big, (size_t)n);
    free(big);
}

void prom_family(const struct prom_out *o, const char *name, const char *type, const char *help) {
    prom_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void prom_metric(const struct prom_out *o, const char *name, const char *type, const char *help,
                 uint64_t v) {
    prom_family(o, name, type, help);
    prom_printf(o, "%s %" PRIu64 "\n", name, v);
}

void prom_histogram(const struct prom_out *o, const char *name, const char *help,
                    const int64_t *bounds_us, int n, const uint64_t *buckets, uint64_t sum_us) {
    prom_family(o, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < n; i++) {
        cum += buckets[i];
        prom_printf(o, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, (double)bounds_us[i] / 1e6, cum);
    }
    cum += buckets[n];
    prom_printf(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.6f\n%s_count %" PRIu64 "\n", name,
                cum, name, (double)sum_us / 1e6, name, cum);
}

int prom_bucket(const int64_t *bounds_us, int n, int64_t value_us) {
    int i = 0;
    while (i < n && value_us > bounds_us[i])
        i++;
    return i;
}

static void buf_write(void *ctx, const char *text, size_t len) {
    struct prom_buf *b = ctx;
    if (b->failed)
        return;
    if (b->len + len + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 4096) + len;
        char *p = realloc(b->text, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->text = p;
        b->cap = cap;
    }
    memcpy(b->text + b->len, text, len);
    b->len += len;
    b->text[b->len] = '\0';
}

struct prom_out prom_buf_out(struct prom_buf *b) {
    return (struct prom_out){.write = buf_write, .ctx = b};
}

void prom_buf_free(struct prom_buf *b) {
    free(b->text);
    memset(b, 0, sizeof(*b));
}
