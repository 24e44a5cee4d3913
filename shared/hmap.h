/* A string-keyed hash map of borrowed pointers (keys are copied). Used for local sessions by
 * connection number and local rooms by id. */
#ifndef RRM_HMAP_H
#define RRM_HMAP_H

#include <stddef.h>

struct hmap;

struct hmap *hmap_create(void);
/* Frees the map and its key copies, not the values. */
void hmap_destroy(struct hmap *m);

/* Returns the value or NULL. */
void *hmap_get(const struct hmap *m, const char *key, size_t len);
/* Inserts or replaces; returns 0 or -1 on allocation failure. */
int hmap_put(struct hmap *m, const char *key, size_t len, void *value);
/* Removes key; returns the old value or NULL. */
void *hmap_del(struct hmap *m, const char *key, size_t len);
size_t hmap_count(const struct hmap *m);

/* Calls fn for every entry; fn must not change the map. */
void hmap_each(const struct hmap *m, void (*fn)(const char *key, void *value, void *arg),
               void *arg);

/* Collects up to cap values into out (safe to change the map afterwards); returns the number. */
size_t hmap_values(const struct hmap *m, void **out, size_t cap);

#endif
