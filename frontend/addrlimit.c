/* Per-address connection count and handshake rate (see addrlimit.h). */
#include "addrlimit.h"

#include "clientaddr.h"
#include "hmap.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    long connections;
    double tokens;  /* handshakes the address may still start now */
    int64_t at_ms;  /* when tokens was last brought up to date */
    size_t key_len; /* the address, for removing the entry */
    char key[CLIENTADDR_MAX];
};

struct addrlimit {
    struct addrlimit_options o;
    struct hmap *by_addr; /* address -> struct entry (owned) */
    size_t idle;          /* entries without connections */
};

struct addrlimit *addrlimit_create(const struct addrlimit_options *o) {
    struct addrlimit *l = calloc(1, sizeof(*l));
    if (!l || !(l->by_addr = hmap_create())) {
        free(l);
        return NULL;
    }
    l->o = *o;
    if (l->o.burst < 1)
        l->o.burst = 1;
    return l;
}

static void free_entry(const char *key, void *value, void *arg) {
    (void)key;
    (void)arg;
    free(value);
}

void addrlimit_destroy(struct addrlimit *l) {
    if (!l)
        return;
    hmap_each(l->by_addr, free_entry, NULL);
    hmap_destroy(l->by_addr);
    free(l);
}

/* Brings the bucket up to now; 1 if it is full. */
static int refill(const struct addrlimit *l, struct entry *e, int64_t now_ms) {
    if (!l->o.rate_per_sec)
        return 1;
    if (now_ms > e->at_ms) {
        e->tokens += (double)(now_ms - e->at_ms) * (double)l->o.rate_per_sec / 1000.0;
        e->at_ms = now_ms;
    }
    if (e->tokens >= (double)l->o.burst) {
        e->tokens = (double)l->o.burst;
        return 1;
    }
    return 0;
}

static void remove_entry(struct addrlimit *l, struct entry *e) {
    if (!e->connections)
        l->idle--;
    hmap_del(l->by_addr, e->key, e->key_len);
    free(e);
}

enum addrlimit_verdict addrlimit_admit(struct addrlimit *l, const char *addr, int64_t now_ms,
                                       long *retry_after_s) {
    size_t len = strlen(addr);
    if (len >= CLIENTADDR_MAX)
        len = CLIENTADDR_MAX - 1;
    *retry_after_s = 1;
    struct entry *e = hmap_get(l->by_addr, addr, len);
    if (!e) {
        if (hmap_count(l->by_addr) >= l->o.max_addresses)
            addrlimit_sweep(l, now_ms);
        if (hmap_count(l->by_addr) >= l->o.max_addresses)
            return ADDRLIMIT_FULL;
        e = calloc(1, sizeof(*e));
        if (!e)
            return ADDRLIMIT_FULL;
        memcpy(e->key, addr, len);
        e->key_len = len;
        e->tokens = (double)l->o.burst;
        e->at_ms = now_ms;
        if (hmap_put(l->by_addr, e->key, len, e)) {
            free(e);
            return ADDRLIMIT_FULL;
        }
        l->idle++;
    }
    if (l->o.max_connections && e->connections >= l->o.max_connections) {
        *retry_after_s = 5; /* nobody knows when one closes: not at once, in any case */
        return ADDRLIMIT_CONNECTIONS;
    }
    refill(l, e, now_ms);
    if (l->o.rate_per_sec) {
        if (e->tokens < 1.0) {
            double wait_s = (1.0 - e->tokens) / (double)l->o.rate_per_sec;
            *retry_after_s = (long)wait_s + ((double)(long)wait_s < wait_s);
            if (*retry_after_s < 1)
                *retry_after_s = 1;
            return ADDRLIMIT_RATE;
        }
        e->tokens -= 1.0;
    }
    if (!e->connections++)
        l->idle--;
    return ADDRLIMIT_OK;
}

void addrlimit_release(struct addrlimit *l, const char *addr, int64_t now_ms) {
    size_t len = strlen(addr);
    if (len >= CLIENTADDR_MAX)
        len = CLIENTADDR_MAX - 1;
    struct entry *e = hmap_get(l->by_addr, addr, len);
    if (!e || e->connections <= 0)
        return;
    if (--e->connections)
        return;
    l->idle++;
    if (refill(l, e, now_ms))
        remove_entry(l, e);
}

size_t addrlimit_sweep(struct addrlimit *l, int64_t now_ms) {
    size_t n = hmap_count(l->by_addr);
    if (!l->idle || !n)
        return l->idle;
    void **all = malloc(n * sizeof(*all));
    if (!all)
        return l->idle;
    n = hmap_values(l->by_addr, all, n);
    for (size_t i = 0; i < n; i++) {
        struct entry *e = all[i];
        if (!e->connections && refill(l, e, now_ms))
            remove_entry(l, e);
    }
    free(all);
    return l->idle;
}

size_t addrlimit_count(const struct addrlimit *l) {
    return hmap_count(l->by_addr);
}

long addrlimit_connections(const struct addrlimit *l, const char *addr) {
    const struct entry *e = hmap_get(l->by_addr, addr, strlen(addr));
    return e ? e->connections : 0;
}
