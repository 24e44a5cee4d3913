/* Chained hash map with FNV-1a, doubling when the load reaches one entry per bucket. */
#include "hmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *next;
    void *value;
    uint32_t hash;
    size_t len;
    char key[];
};

struct hmap {
    struct entry **buckets;
    size_t nbuckets, count;
};

static uint32_t fnv1a(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

struct hmap *hmap_create(void) {
    struct hmap *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->nbuckets = 64;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    return m;
}

void hmap_destroy(struct hmap *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i];
        while (e) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

static struct entry **find(const struct hmap *m, const char *key, size_t len, uint32_t h) {
    struct entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp && !((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->key, key, len) == 0))
        pp = &(*pp)->next;
    return pp;
}

void *hmap_get(const struct hmap *m, const char *key, size_t len) {
    struct entry **pp = find(m, key, len, fnv1a(key, len));
    return *pp ? (*pp)->value : NULL;
}

static void grow(struct hmap *m) {
    size_t n = m->nbuckets * 2;
    struct entry **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* keep working with longer chains */
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i];
        while (e) {
            struct entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

int hmap_put(struct hmap *m, const char *key, size_t len, void *value) {
    uint32_t h = fnv1a(key, len);
    struct entry **pp = find(m, key, len, h);
    if (*pp) {
        (*pp)->value = value;
        return 0;
    }
    struct entry *e = malloc(sizeof(*e) + len + 1);
    if (!e)
        return -1;
    e->next = NULL;
    e->value = value;
    e->hash = h;
    e->len = len;
    memcpy(e->key, key, len);
    e->key[len] = '\0';
    *pp = e;
    if (++m->count > m->nbuckets)
        grow(m);
    return 0;
}

void *hmap_del(struct hmap *m, const char *key, size_t len) {
    struct entry **pp = find(m, key, len, fnv1a(key, len));
    struct entry *e = *pp;
    if (!e)
        return NULL;
    void *v = e->value;
    *pp = e->next;
    free(e);
    m->count--;
    return v;
}

size_t hmap_count(const struct hmap *m) {
    return m->count;
}

void hmap_each(const struct hmap *m, void (*fn)(const char *key, void *value, void *arg),
               void *arg) {
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct entry *e = m->buckets[i]; e; e = e->next)
            fn(e->key, e->value, arg);
}

size_t hmap_values(const struct hmap *m, void **out, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < m->nbuckets && n < cap; i++)
        for (struct entry *e = m->buckets[i]; e && n < cap; e = e->next)
            out[n++] = e->value;
    return n;
}
