/* Per-address connection count and handshake rate (see addrlimit.h). */
#include "addrlimit.h"

#include "hmap.h"

#include <stdlib.h>
#include <string.h>

/* 24 bytes per address (the map keeps the address itself): with every client on its own address,
 * this is all the limits add per connection, besides the map's entry. */
struct entry {
    long connections;
    double tokens; /* handshakes the address may still start now */
    int64_t at_ms; /* when tokens was last brought up to date */
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

static void remove_entry(struct addrlimit *l, const char *addr, size_t len) {
    struct entry *e = hmap_del(l->by_addr, addr, len);
    if (e && !e->connections)
        l->idle--;
    free(e);
}

/* The length of addr as a key (addresses are shorter; anything longer is cut). */
static size_t key_len(const char *addr) {
    size_t len = strlen(addr);
    return len < CLIENTADDR_MAX ? len : CLIENTADDR_MAX - 1;
}

enum addrlimit_verdict addrlimit_admit(struct addrlimit *l, const char *addr, int64_t now_ms,
                                       long *retry_after_s) {
    size_t len = key_len(addr);
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
        e->tokens = (double)l->o.burst;
        e->at_ms = now_ms;
        if (hmap_put(l->by_addr, addr, len, e)) {
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
    size_t len = key_len(addr);
    struct entry *e = hmap_get(l->by_addr, addr, len);
    if (!e || e->connections <= 0)
        return;
    if (--e->connections)
        return;
    l->idle++;
    if (refill(l, e, now_ms))
        remove_entry(l, addr, len);
}

/* What a sweep collects: the addresses whose entries are to go (the map may not change while it
 * is walked). */
struct sweep {
    const struct addrlimit *l;
    int64_t now_ms;
    char (*done)[CLIENTADDR_MAX];
    size_t n, cap;
};

static void sweep_one(const char *key, void *value, void *arg) {
    struct sweep *sw = arg;
    struct entry *e = value;
    if (!e->connections && sw->n < sw->cap && refill(sw->l, e, sw->now_ms)) {
        size_t len = key_len(key);
        memcpy(sw->done[sw->n], key, len);
        sw->done[sw->n++][len] = '\0';
    }
}

size_t addrlimit_sweep(struct addrlimit *l, int64_t now_ms) {
    if (!l->idle)
        return 0;
    struct sweep sw = {l, now_ms, malloc(l->idle * sizeof(*sw.done)), 0, l->idle};
    if (!sw.done)
        return l->idle;
    hmap_each(l->by_addr, sweep_one, &sw);
    for (size_t i = 0; i < sw.n; i++)
        remove_entry(l, sw.done[i], strlen(sw.done[i]));
    free(sw.done);
    return l->idle;
}

struct top {
    struct addrlimit_usage *out;
    size_t n, cap;
};

static void top_one(const char *key, void *value, void *arg) {
    struct top *t = arg;
    const struct entry *e = value;
    if (!e->connections || (t->n == t->cap && t->out[t->n - 1].connections >= e->connections))
        return;
    size_t i = t->n < t->cap ? t->n++ : t->cap - 1; /* the last one drops out */
    for (; i > 0 && t->out[i - 1].connections < e->connections; i--)
        t->out[i] = t->out[i - 1];
    size_t len = key_len(key);
    memcpy(t->out[i].addr, key, len);
    t->out[i].addr[len] = '\0';
    t->out[i].connections = e->connections;
}

size_t addrlimit_top(const struct addrlimit *l, struct addrlimit_usage *out, size_t n) {
    struct top t = {out, 0, n};
    if (n)
        hmap_each(l->by_addr, top_one, &t);
    return t.n;
}

size_t addrlimit_count(const struct addrlimit *l) {
    return hmap_count(l->by_addr);
}

long addrlimit_connections(const struct addrlimit *l, const char *addr) {
    const struct entry *e = hmap_get(l->by_addr, addr, key_len(addr));
    return e ? e->connections : 0;
}
