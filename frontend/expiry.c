/* A min-heap of deadlines on one lws timer (see expiry.h). */
#include "expiry.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

static void fire(lws_sorted_usec_list_t *sul);

static void put(struct expiry *q, size_t i, struct expiry_entry *e) {
    q->heap[i] = e;
    e->slot = i + 1;
}

static void sift_up(struct expiry *q, size_t i) {
    struct expiry_entry *e = q->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (q->heap[parent]->at_ms <= e->at_ms)
            break;
        put(q, i, q->heap[parent]);
        i = parent;
    }
    put(q, i, e);
}

static void sift_down(struct expiry *q, size_t i) {
    struct expiry_entry *e = q->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n)
            break;
        if (c + 1 < q->n && q->heap[c + 1]->at_ms < q->heap[c]->at_ms)
            c++;
        if (q->heap[c]->at_ms >= e->at_ms)
            break;
        put(q, i, q->heap[c]);
        i = c;
    }
    put(q, i, e);
}

/* Has the timer due at the earliest entry unless it is due earlier already. A timer due earlier
 * than the head (its entry was removed or moved later) fires, finds nothing and sets itself
 * again. */
static void schedule(struct expiry *q) {
    if (q->n == 0 || (q->sul_at_ms && q->sul_at_ms <= q->heap[0]->at_ms))
        return;
    int64_t wait_ms = q->heap[0]->at_ms - q->now_ms();
    q->sul_at_ms = q->heap[0]->at_ms;
    lws_sul_schedule(q->cx, 0, &q->sul, fire,
                     (lws_usec_t)(wait_ms > 0 ? wait_ms : 0) * LWS_US_PER_MS);
}

static void fire(lws_sorted_usec_list_t *sul) {
    struct expiry *q = lws_container_of(sul, struct expiry, sul);
    int64_t now = q->now_ms();
    q->sul_at_ms = 0;
    while (q->n > 0 && q->heap[0]->at_ms <= now) {
        struct expiry_entry *e = q->heap[0];
        expiry_remove(q, e);
        q->expired(e, q->arg);
    }
    schedule(q);
}

void expiry_init(struct expiry *q, struct lws_context *cx,
                 void (*expired)(struct expiry_entry *e, void *arg), void *arg) {
    expiry_init_clock(q, cx, util_now_ms, expired, arg);
}

void expiry_init_clock(struct expiry *q, struct lws_context *cx, int64_t (*now_ms)(void),
                       void (*expired)(struct expiry_entry *e, void *arg), void *arg) {
    memset(q, 0, sizeof(*q));
    q->cx = cx;
    q->now_ms = now_ms;
    q->expired = expired;
    q->arg = arg;
}

void expiry_fini(struct expiry *q) {
    lws_sul_cancel(&q->sul);
    q->sul_at_ms = 0;
    for (size_t i = 0; i < q->n; i++)
        q->heap[i]->slot = 0;
    free(q->heap);
    q->heap = NULL;
    q->n = q->cap = 0;
}

int expiry_set(struct expiry *q, struct expiry_entry *e, int64_t at_ms) {
    if (e->slot) {
        int64_t was = e->at_ms;
        e->at_ms = at_ms;
        if (at_ms < was)
            sift_up(q, e->slot - 1);
        else
            sift_down(q, e->slot - 1);
    } else {
        if (q->n == q->cap) {
            size_t cap = q->cap ? q->cap * 2 : 64;
            struct expiry_entry **h = realloc(q->heap, cap * sizeof(*h));
            if (!h)
                return -1;
            q->heap = h;
            q->cap = cap;
        }
        e->at_ms = at_ms;
        put(q, q->n++, e);
        sift_up(q, q->n - 1);
    }
    schedule(q);
    return 0;
}

void expiry_remove(struct expiry *q, struct expiry_entry *e) {
    if (!e->slot)
        return;
    size_t i = e->slot - 1;
    e->slot = 0;
    struct expiry_entry *last = q->heap[--q->n];
    if (i == q->n)
        return;
    put(q, i, last);
    sift_up(q, i);
    sift_down(q, last->slot - 1);
}
