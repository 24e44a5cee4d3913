/* rrm-archiver under failure: killed mid-stream and restarted, a dead consumer's pending entries
 * reclaimed, MySQL stopped and crashed under traffic, Redis restarted, two archivers sharing the
 * stream, and SIGTERM finishing the batch in flight. In every case each event is archived exactly
 * once. */
#include "test_archiver_harness.h"

/* Every event these tests send is a message (one row each) or, with queries, a room query. */
#define MESSAGES "SELECT COUNT(*) FROM messages"
#define DISTINCT_MESSAGES "SELECT COUNT(DISTINCT room_id, seq) FROM messages"
#define QUERIES "SELECT COUNT(*) FROM room_queries"

static void assert_exit_status(int status, int code) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != code) {
        h_dump_logs();
        fail_msg("archiver ended with status 0x%x, expected exit %d", status, code);
    }
}

static void expect_exactly_once(long long messages, long long queries) {
    h_wait_int(messages, H_WAIT_MS, MESSAGES);
    h_wait_int(queries, H_WAIT_MS, QUERIES);
    h_wait_drained(H_WAIT_MS);
    h_wait_int(messages, 1000, DISTINCT_MESSAGES);
    h_wait_int(messages, 1000, "SELECT COUNT(DISTINCT event_id) FROM messages");
}

static void test_sigkill_then_restart(void **state) {
    (void)state;
    h_fresh("arch_kill");
    const int n = 20000;
    int queries = h_xadd_messages(1, n, 50, 1);
    const char *small_batches[] = {"RRM_BATCH_SIZE=200", NULL};
    struct archiver a;
    h_start(&a, "killed-1", small_batches);
    h_wait_at_least(2000, H_WAIT_MS, MESSAGES);
    h_stop(&a, SIGKILL);
    long long at_kill = h_int_q(MESSAGES);
    assert_true(at_kill < n - queries);

    /* Same consumer name: its own pending entries come first. */
    h_start(&a, "killed-1", small_batches);
    expect_exactly_once(n - queries, queries);
    assert_exit_status(h_stop(&a, SIGTERM), 0);
}

static void test_reclaims_dead_consumer(void **state) {
    (void)state;
    h_fresh("arch_reclaim");
    int queries = h_xadd_messages(1, 3000, 10, 1);
    /* A consumer that reads 1000 entries and dies before writing them. */
    h_redis_ok("XGROUP CREATE %s %s 0 MKSTREAM", KEYS_EVENTS, H_GROUP);
    redisReply *r =
        h_redis("XREADGROUP GROUP %s ghost COUNT 1000 STREAMS %s >", H_GROUP, KEYS_EVENTS);
    assert_non_null(r);
    freeReplyObject(r);

    const char *fast_claim[] = {"RRM_CLAIM_IDLE_MS=500", NULL};
    struct archiver a;
    h_start(&a, "reclaimer", fast_claim);
    expect_exactly_once(3000 - queries, queries);
    h_wait_log(&a, "reclaimed entries of a stale consumer", 1, 1000);
    r = h_redis("XPENDING %s %s - + 10 ghost", KEYS_EVENTS, H_GROUP);
    assert_non_null(r);
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
    assert_exit_status(h_stop(&a, SIGTERM), 0);
}

static void test_mysql_outages(void **state) {
    (void)state;
    h_fresh("arch_mysql_down");
    struct archiver a;
    h_start(&a, "outage-1", NULL);
    int queries = h_xadd_messages(1, 5000, 20, 1);
    h_wait_at_least(500, H_WAIT_MS, MESSAGES);

    /* A clean stop under traffic: the archiver retries, nothing is acknowledged, nothing lost. */
    assert_int_equal(mariadb_server_stop(H.db), 0);
    h_db_reset();
    queries += h_xadd_messages(5001, 5000, 20, 1);
    h_wait_log(&a, "\"attempt\":12", 1, H_WAIT_MS);
    assert_int_equal(mariadb_server_restart(H.db), 0);
    expect_exactly_once(10000 - queries, queries);

    /* A crash (SIGKILL) while batches are in flight: InnoDB recovery, possibly a commit whose
     * acknowledgement never happened, and redelivery that must not duplicate. */
    long long archived = h_int_q(MESSAGES);
    int before = h_log_count(&a, "MySQL write failed, retrying");
    queries += h_xadd_messages(10001, 20000, 20, 1);
    h_wait_at_least(archived + 2000, H_WAIT_MS, MESSAGES);
    assert_int_equal(mariadb_server_kill(H.db), 0);
    h_db_reset();
    queries += h_xadd_messages(30001, 1000, 20, 1); /* traffic while it is down */
    h_wait_log(&a, "MySQL write failed, retrying", before + 2, H_WAIT_MS);
    assert_int_equal(mariadb_server_restart(H.db), 0);
    expect_exactly_once(31000 - queries, queries);

    assert_true(proc_check_exited(a.pid, NULL) == 1); /* it never gave up */
    assert_exit_status(h_stop(&a, SIGTERM), 0);
}

static void test_redis_restart(void **state) {
    (void)state;
    h_fresh("arch_redis_down");
    struct archiver a;
    h_start(&a, "redis-1", NULL);
    int queries = h_xadd_messages(1, 1000, 5, 1);
    expect_exactly_once(1000 - queries, queries);

    /* The test server keeps no data: after the restart the stream and group are gone, and the
     * archiver must reconnect and recreate its group by itself. */
    assert_int_equal(redis_server_stop(H.redis), 0);
    redisFree(H.rc);
    H.rc = NULL;
    h_wait_log(&a, "redis unavailable, retrying", 2, H_WAIT_MS);
    assert_int_equal(redis_server_restart(H.redis), 0);
    H.rc = redis_server_client(H.redis);
    assert_non_null(H.rc);
    queries += h_xadd_messages(1001, 1000, 5, 1);
    expect_exactly_once(2000 - queries, queries);
    assert_exit_status(h_stop(&a, SIGTERM), 0);
}

static void test_two_archivers_share_the_stream(void **state) {
    (void)state;
    h_fresh("arch_two");
    const char *small_batches[] = {"RRM_BATCH_SIZE=100", NULL};
    struct archiver a, b;
    h_start(&a, "pair-a", small_batches);
    h_start(&b, "pair-b", small_batches);
    int queries = h_xadd_messages(1, 20000, 30, 1);
    expect_exactly_once(20000 - queries, queries);
    assert_exit_status(h_stop(&a, SIGTERM), 0);
    assert_exit_status(h_stop(&b, SIGTERM), 0);
    /* Both took part. */
    assert_true(h_log_count(&a, "\"msg\":\"batch\"") > 0);
    assert_true(h_log_count(&b, "\"msg\":\"batch\"") > 0);
}

static void test_sigterm_finishes_batch_in_flight(void **state) {
    (void)state;
    h_fresh("arch_term");
    h_xadd_messages(1, 30000, 10, 0);
    const char *big_batches[] = {"RRM_BATCH_SIZE=5000", NULL};
    struct archiver a;
    h_start(&a, "term-1", big_batches);
    h_wait_at_least(1, H_WAIT_MS, MESSAGES);
    assert_exit_status(h_stop(&a, SIGTERM), 0);
    /* Whatever it read was committed and acknowledged before it exited. */
    long long pending, lag, read;
    h_group_state(&pending, &lag, &read);
    assert_int_equal(pending, 0);
    assert_true(read > 0);
    assert_int_equal(h_int_q(MESSAGES), read);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_then_restart),
        cmocka_unit_test(test_reclaims_dead_consumer),
        cmocka_unit_test(test_two_archivers_share_the_stream),
        cmocka_unit_test(test_sigterm_finishes_batch_in_flight),
        cmocka_unit_test(test_redis_restart),
        cmocka_unit_test(test_mysql_outages),
    };
    return cmocka_run_group_tests(tests, h_setup, h_teardown);
}
