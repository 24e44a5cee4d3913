/* Many deadlines of one fixed length (every handshake gets the same time, every identify the
 * same time): kept in a list in the order they were armed, which is also the order they expire,
 * and served by one lws timer due at the oldest. Arming or disarming one is O(1); an lws timer
 * per connection costs a walk of lws's sorted timer list each, quadratic in a burst of thousands
 * of connections, which stalled the node.
 *
 * The caller embeds a struct deadline in whatever it times and owns the struct deadlines; both
 * are plain memory (zeroed is disarmed), released by their owner after deadlines_fini /
 * deadline_stop. */
#ifndef RRM_DEADLINES_H
#define RRM_DEADLINES_H

#include <libwebsockets.h>
#include <stdint.h>

struct deadline {
    lws_dll2_t link; /* in its struct deadlines while armed */
    int64_t at_ms;   /* monotonic */
};

struct deadlines {
    struct lws_context *cx;
    int64_t length_ms;
    /* Called once per deadline that passed, already disarmed; it may stop or start others. */
    void (*expired)(struct deadline *d, void *arg);
    void *arg;
    lws_dll2_owner_t armed; /* oldest first */
    lws_sorted_usec_list_t sul;
    int64_t sul_at_ms; /* when sul is due; 0 when it is not scheduled */
};

void deadlines_init(struct deadlines *q, struct lws_context *cx, int64_t length_ms,
                    void (*expired)(struct deadline *d, void *arg), void *arg);

/* Cancels the timer; armed deadlines are forgotten (their owners free them). */
void deadlines_fini(struct deadlines *q);

/* Arms d to expire length_ms from now (d must not be armed). */
void deadline_start(struct deadlines *q, struct deadline *d);

/* Disarms d; nothing happens if it is not armed. */
void deadline_stop(struct deadline *d);

/* Calls fn for every armed deadline, oldest first; fn may stop d (and no other). */
void deadlines_each(struct deadlines *q, void (*fn)(struct deadline *d, void *arg), void *arg);

#endif
