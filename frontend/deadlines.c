/* Fixed-length deadlines on one lws timer (see deadlines.h). */
#include "deadlines.h"

#include "util.h"

#include <string.h>

static void fire(lws_sorted_usec_list_t *sul);

/* Has the timer due at the oldest deadline, unless it already is. The timer may be due earlier
 * than the head (the deadline it was set for was stopped): it then fires, finds nothing due and
 * sets itself again. */
static void schedule(struct deadlines *q) {
    struct lws_dll2 *head = lws_dll2_get_head(&q->armed);
    if (!head || q->sul_at_ms)
        return;
    struct deadline *d = lws_container_of(head, struct deadline, link);
    int64_t wait_ms = d->at_ms - util_mono_ms();
    q->sul_at_ms = d->at_ms;
    lws_sul_schedule(q->cx, 0, &q->sul, fire,
                     (lws_usec_t)(wait_ms > 0 ? wait_ms : 0) * LWS_US_PER_MS);
}

static void fire(lws_sorted_usec_list_t *sul) {
    struct deadlines *q = lws_container_of(sul, struct deadlines, sul);
    int64_t now = util_mono_ms();
    q->sul_at_ms = 0;
    struct lws_dll2 *head;
    while ((head = lws_dll2_get_head(&q->armed)) != NULL) {
        struct deadline *d = lws_container_of(head, struct deadline, link);
        if (d->at_ms > now)
            break;
        lws_dll2_remove(&d->link);
        q->expired(d, q->arg);
    }
    schedule(q);
}

void deadlines_init(struct deadlines *q, struct lws_context *cx, int64_t length_ms,
                    void (*expired)(struct deadline *d, void *arg), void *arg) {
    memset(q, 0, sizeof(*q));
    q->cx = cx;
    q->length_ms = length_ms;
    q->expired = expired;
    q->arg = arg;
}

void deadlines_fini(struct deadlines *q) {
    lws_sul_cancel(&q->sul);
    q->sul_at_ms = 0;
}

void deadline_start(struct deadlines *q, struct deadline *d) {
    d->at_ms = util_mono_ms() + q->length_ms;
    lws_dll2_add_tail(&d->link, &q->armed);
    schedule(q);
}

void deadline_stop(struct deadline *d) {
    lws_dll2_remove(&d->link);
}

void deadlines_each(struct deadlines *q, void (*fn)(struct deadline *d, void *arg), void *arg) {
    lws_start_foreach_dll_safe(struct lws_dll2 *, p, p1, lws_dll2_get_head(&q->armed)) {
        fn(lws_container_of(p, struct deadline, link), arg);
    }
    lws_end_foreach_dll_safe(p, p1);
}
