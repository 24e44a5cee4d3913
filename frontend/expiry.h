/* Deadlines at arbitrary times in milliseconds, on the wall clock (token expiry) or the monotonic
 * one (when a paused connection may read again): a binary min-heap of the entries the
 * owner embeds in whatever it times, served by one lws timer due at the earliest. Adding,
 * moving or removing an entry is O(log n) and touches lws's sorted timer list only when the
 * earliest time moves earlier; a timer per connection would cost a walk of that list each (see
 * deadlines.h).
 *
 * The caller owns the struct expiry and the entries (plain memory, zeroed is not armed); the
 * heap's array is the module's, freed by expiry_fini. */
#ifndef RRM_EXPIRY_H
#define RRM_EXPIRY_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

struct expiry_entry {
    int64_t at_ms; /* on the heap's clock */
    size_t slot;   /* index in the heap + 1; 0 when not armed */
};

struct expiry {
    struct lws_context *cx;
    int64_t (*now_ms)(void); /* the clock at_ms is on */
    /* Called once per entry whose time passed, already disarmed; it may arm or disarm others. */
    void (*expired)(struct expiry_entry *e, void *arg);
    void *arg;
    struct expiry_entry **heap;
    size_t n, cap;
    lws_sorted_usec_list_t sul;
    int64_t sul_at_ms; /* when sul is due; 0 when it is not scheduled */
};

/* A heap on the wall clock (util_now_ms). */
void expiry_init(struct expiry *q, struct lws_context *cx,
                 void (*expired)(struct expiry_entry *e, void *arg), void *arg);

/* A heap on the clock now_ms (e.g. util_mono_ms). */
void expiry_init_clock(struct expiry *q, struct lws_context *cx, int64_t (*now_ms)(void),
                       void (*expired)(struct expiry_entry *e, void *arg), void *arg);

/* Cancels the timer and frees the heap; armed entries are forgotten. */
void expiry_fini(struct expiry *q);

/* Arms e for at_ms (on the heap's clock), or moves it there if it is armed. -1 when out of memory
 * (e is then left as it was). */
int expiry_set(struct expiry *q, struct expiry_entry *e, int64_t at_ms);

/* Disarms e; nothing happens if it is not armed. */
void expiry_remove(struct expiry *q, struct expiry_entry *e);

#endif
