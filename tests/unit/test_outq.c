/* Unit tests for frontend/outq.c: the batch a client's queue joins while a Redis read is handled,
 * and its flush. libwebsockets' write, writeable request and timer are replaced by fakes here
 * (the executable's definitions take the place of the library's), so that a test can drive
 * the writeable callback and the coalescing timer itself. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "app.h"
#include "frame.h"
#include "outq.h"

#include <string.h>

/* ---- fakes ---- */

static char written[4096];
static size_t written_len;
static int writes, writable_requests;
static sul_cb_t scheduled;
static lws_sorted_usec_list_t *scheduled_sul;

int lws_write(struct lws *wsi, unsigned char *buf, size_t len, enum lws_write_protocol wp) {
    (void)wsi;
    (void)wp;
    assert_true(written_len + len <= sizeof(written));
    memcpy(written + written_len, buf, len);
    written_len += len;
    writes++;
    return (int)len;
}

int lws_partial_buffered(struct lws *wsi) {
    (void)wsi;
    return 0;
}

int lws_callback_on_writable(struct lws *wsi) {
    (void)wsi;
    writable_requests++;
    return 1;
}

void lws_sul_schedule(struct lws_context *ctx, int tsi, lws_sorted_usec_list_t *sul, sul_cb_t cb,
                      lws_usec_t us) {
    (void)ctx;
    (void)tsi;
    (void)us;
    scheduled = cb;
    scheduled_sul = sul;
}

/* ---- helpers ---- */

static void failed(struct outq_client *c, const char *why) {
    (void)c;
    fail_msg("cut off: %s", why);
}

static struct fe_stats stats;

static struct outq *busy_outq(void) {
    struct outq_options o = {.limit_bytes = 1 << 20, .coalesce_above = 1, .coalesce_ms = 4};
    struct outq *q = outq_create(NULL, &o, &stats, failed);
    assert_non_null(q);
    stats.messages_out += 1000000; /* far above coalesce-above: writes are coalesced */
    outq_load_tick(q, 1000);
    assert_true(outq_busy(q));
    return q;
}

static void push_text(struct outq *q, struct outq_client *c, const char *text) {
    struct frame *f = frame_new(text, strlen(text), 0);
    assert_non_null(f);
    assert_int_equal(outq_push(q, c, f), 0);
    frame_unref(f);
}

/* The payloads written so far appear in order in what went out. */
static void expect_written(const char *first, const char *second) {
    const char *a = memmem(written, written_len, first, strlen(first));
    const char *b = memmem(written, written_len, second, strlen(second));
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
}

/* A client in the coalescing batch whose queue the writeable callback emptied meanwhile is
 * given a frame in the next Redis read: it is still in the batch, and the frame goes out with
 * the batch's flush. */
static void test_emptied_while_in_batch(void **state) {
    (void)state;
    struct outq *q = busy_outq();
    struct outq_client c;
    outq_client_init(&c, (struct lws *)&c);
    scheduled = NULL;
    written_len = 0;
    writes = 0;

    outq_batch_begin(q);
    push_text(q, &c, "first");
    outq_batch_end(q);
    assert_non_null(scheduled); /* the batch waits for the coalescing timer */
    assert_int_equal(writes, 0);

    /* its socket became writeable for another reason: the queue goes out now */
    assert_int_equal(outq_write(q, &c), 0);
    assert_int_equal(outq_pending(&c), 0);
    assert_int_equal(writes, 1);

    outq_batch_begin(q);
    push_text(q, &c, "second");
    outq_batch_end(q);
    assert_int_equal(outq_pending(&c), 1);

    scheduled(scheduled_sul); /* the timer: the batch is flushed */
    assert_int_equal(outq_pending(&c), 0);
    assert_int_equal(writes, 2);
    expect_written("first", "second");

    outq_client_free(&c);
    outq_destroy(q);
}

/* A client given frames in two reads before the timer is in the batch once and written once. */
static void test_two_reads_one_flush(void **state) {
    (void)state;
    struct outq *q = busy_outq();
    struct outq_client c;
    outq_client_init(&c, (struct lws *)&c);
    scheduled = NULL;
    written_len = 0;
    writes = 0;
    for (int i = 0; i < 2; i++) {
        outq_batch_begin(q);
        push_text(q, &c, i ? "two" : "one");
        outq_batch_end(q);
    }
    assert_non_null(scheduled);
    scheduled(scheduled_sul);
    assert_int_equal(writes, 1);
    assert_int_equal(outq_pending(&c), 0);
    expect_written("one", "two");
    outq_client_free(&c);
    outq_destroy(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emptied_while_in_batch),
        cmocka_unit_test(test_two_reads_one_flush),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
