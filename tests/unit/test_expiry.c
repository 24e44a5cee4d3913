/* Unit tests for frontend/expiry.c: the heap of deadlines on one lws timer. Entries are armed,
 * moved and removed in a random order; the timer must fire each armed entry once, in the order of
 * their times, never one that was removed, and never before its time. A heap on the monotonic
 * clock (when paused connections may read again) fires on that clock, not the wall clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "expiry.h"
#include "util.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

#define N 300

struct item {
    struct expiry_entry e;
    int armed, fired;
    int64_t fired_at;
};

static struct item items[N];
static int64_t last_fired_due;
static int order_ok = 1, early = 0, fired_count = 0;

static void expired(struct expiry_entry *e, void *arg) {
    (void)arg;
    struct item *it = lws_container_of(e, struct item, e);
    int64_t now = util_now_ms();
    if (e->slot != 0 || !it->armed || it->fired)
        order_ok = 0;
    if (e->at_ms < last_fired_due)
        order_ok = 0;
    if (now < e->at_ms)
        early = 1;
    last_fired_due = e->at_ms;
    it->fired = 1;
    it->fired_at = now;
    fired_count++;
}

static void test_heap_order(void **state) {
    (void)state;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context *cx = lws_create_context(&info);
    assert_non_null(cx);
    struct expiry q;
    expiry_init(&q, cx, expired, NULL);
    srand(7);
    int64_t base = util_now_ms();
    for (int i = 0; i < N; i++) {
        items[i].armed = 1;
        assert_int_equal(expiry_set(&q, &items[i].e, base + 50 + rand() % 400), 0);
    }
    /* move some (earlier and later), remove others, re-arm a few removed ones */
    int expected = N;
    for (int i = 0; i < N; i += 3)
        assert_int_equal(expiry_set(&q, &items[i].e, base + 20 + rand() % 600), 0);
    for (int i = 1; i < N; i += 4) {
        expiry_remove(&q, &items[i].e);
        assert_int_equal(items[i].e.slot, 0);
        items[i].armed = 0;
        expected--;
    }
    expiry_remove(&q, &items[1].e); /* twice: nothing happens */
    for (int i = 1; i < N; i += 20) {
        items[i].armed = 1;
        assert_int_equal(expiry_set(&q, &items[i].e, base + 100 + rand() % 100), 0);
        expected++;
    }
    int64_t end = util_mono_ms() + 5000;
    /* -1: a poll that does not wait (lws 4.1's poll loop, without descriptors, would sleep
     * through its timers) */
    while (fired_count < expected && util_mono_ms() < end)
        lws_service(cx, -1);
    assert_int_equal(fired_count, expected);
    assert_true(order_ok);
    assert_false(early);
    for (int i = 0; i < N; i++)
        assert_int_equal(items[i].fired, items[i].armed);
    expiry_fini(&q);
    lws_context_destroy(cx);
}

static int mono_fired;
static int mono_early;

static void mono_expired(struct expiry_entry *e, void *arg) {
    (void)arg;
    if (util_mono_ms() < e->at_ms)
        mono_early = 1;
    mono_fired++;
}

/* Times on the monotonic clock are far in the past of the wall clock's: on the wrong clock the
 * entries would all fire at once. */
static void test_monotonic_clock(void **state) {
    (void)state;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context *cx = lws_create_context(&info);
    assert_non_null(cx);
    struct expiry q;
    expiry_init_clock(&q, cx, util_mono_ms, mono_expired, NULL);
    struct expiry_entry e[3];
    memset(e, 0, sizeof(e));
    int64_t base = util_mono_ms();
    for (int i = 0; i < 3; i++)
        assert_int_equal(expiry_set(&q, &e[i], base + 100 + 50 * i), 0);
    int64_t end = util_mono_ms() + 5000;
    while (mono_fired < 3 && util_mono_ms() < end)
        lws_service(cx, -1);
    assert_int_equal(mono_fired, 3);
    assert_false(mono_early);
    assert_true(util_mono_ms() >= base + 200);
    expiry_fini(&q);
    lws_context_destroy(cx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_order),
        cmocka_unit_test(test_monotonic_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
