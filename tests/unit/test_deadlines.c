/* Unit tests for frontend/deadlines.c: fixed-length deadlines on one lws timer. They expire in
 * the order they were armed, never early, never after being stopped; deadlines_each visits the
 * armed ones oldest first and lets the visitor stop the one it is given. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "deadlines.h"
#include "util.h"

#include <libwebsockets.h>
#include <string.h>

#define N 8

struct item {
    struct deadline d;
    int no;
};

static struct item items[N];
static int fired[N], fired_count, early, order_ok = 1, last_fired = -1;

static void expired(struct deadline *d, void *arg) {
    (void)arg;
    struct item *it = lws_container_of(d, struct item, d);
    if (util_mono_ms() < d->at_ms)
        early = 1;
    if (it->no < last_fired)
        order_ok = 0;
    last_fired = it->no;
    fired[it->no]++;
    fired_count++;
}

static int visited[N], visit_count;

/* Visits in order and stops every odd one. */
static void visit(struct deadline *d, void *arg) {
    (void)arg;
    struct item *it = lws_container_of(d, struct item, d);
    visited[visit_count++] = it->no;
    if (it->no % 2)
        deadline_stop(d);
}

static void test_each_then_expire(void **state) {
    (void)state;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context *cx = lws_create_context(&info);
    assert_non_null(cx);
    struct deadlines q;
    deadlines_init(&q, cx, 100, expired, NULL);
    for (int i = 0; i < N; i++) {
        items[i].no = i;
        deadline_start(&q, &items[i].d);
    }
    deadline_stop(&items[2].d);
    deadlines_each(&q, visit, NULL);
    assert_int_equal(visit_count, N - 1);
    for (int i = 0, k = 0; i < N; i++)
        if (i != 2)
            assert_int_equal(visited[k++], i);
    int64_t end = util_mono_ms() + 5000;
    int want = N / 2 - 1; /* the even ones but 2 */
    while (fired_count < want && util_mono_ms() < end)
        lws_service(cx, -1);
    assert_int_equal(fired_count, want);
    for (int i = 0; i < N; i++)
        assert_int_equal(fired[i], i % 2 == 0 && i != 2);
    assert_false(early);
    assert_true(order_ok);
    deadlines_each(&q, visit, NULL); /* nothing armed any more */
    assert_int_equal(visit_count, N - 1);
    deadlines_fini(&q);
    lws_context_destroy(cx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_then_expire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
