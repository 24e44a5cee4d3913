/* rrm-archiver under failure: killed mid-stream and restarted, a dead consumer's pending entries
 * reclaimed, MySQL stopped and crashed under traffic, Redis restarted, two archivers sharing the
 * stream, and SIGTERM finishing the batch in flight. In every case each event is archived exactly
 * once. */
#include "archiver_harness.h"

#include "keys.h"
#include "mariadb_server.h"
#include "proc.h"
#include "redis_server.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Every event these tests send is a message (one row each) or, with queries, a room query. */
#define MESSAGES "SELECT COUNT(*) FROM messages"
#define DISTINCT_MESSAGES "SELECT COUNT(DISTINCT room_id, seq) FROM messages"
#define QUERIES "SELECT COUNT(*) FROM room_queries"

static void assert_exit_status(struct arch_harness *h, int status, int code) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != code) {
        ah_dump_logs(h);
        fail_msg("archiver ended with status 0x%x, expected exit %d", status, code);
    }
}

static void expect_exactly_once(struct arch_harness *h, long long messages, long long queries) {
    ah_wait_int(h, messages, AH_WAIT_MS, MESSAGES);
    ah_wait_int(h, queries, AH_WAIT_MS, QUERIES);
    ah_wait_drained(h, AH_WAIT_MS);
    ah_wait_int(h, messages, 1000, DISTINCT_MESSAGES);
    ah_wait_int(h, messages, 1000, "SELECT COUNT(DISTINCT event_id) FROM messages");
}

static void test_sigkill_then_restart(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_kill");
    const int n = 20000;
    int queries = ah_xadd_messages(h, 1, n, 50, 1);
    const char *small_batches[] = {"RRM_BATCH_SIZE=200", NULL};
    struct ah_archiver a;
    ah_start(h, &a, "killed-1", small_batches);
    ah_wait_at_least(h, 2000, AH_WAIT_MS, MESSAGES);
    ah_stop(&a, SIGKILL);
    long long at_kill = ah_int_q(h, MESSAGES);
    assert_true(at_kill < n - queries);

    /* Same consumer name: its own pending entries come first. */
    ah_start(h, &a, "killed-1", small_batches);
    expect_exactly_once(h, n - queries, queries);
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
}

static void test_reclaims_dead_consumer(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_reclaim");
    int queries = ah_xadd_messages(h, 1, 3000, 10, 1);
    /* A consumer that reads up to 200 entries of every shard and sits on them. Its alive mark is
     * still there (a stuck process, or one of a version without marks and a leftover key), so
     * takeover leaves it alone: only the claim by idle time gets the entries. */
    int ghost_streams = 0;
    for (unsigned s = 0; s < ah_shards(h); s++) {
        char key[KEYS_MAX];
        keys_events(key, sizeof(key), s);
        if (ah_redis_int(h, "EXISTS %s", key) == 0)
            continue;
        ah_redis_ok(h, "XGROUP CREATE %s %s 0", key, AH_GROUP);
        redisReply *r =
            ah_redis(h, "XREADGROUP GROUP %s ghost COUNT 200 STREAMS %s >", AH_GROUP, key);
        assert_non_null(r);
        freeReplyObject(r);
        ghost_streams++;
    }
    assert_true(ghost_streams >= 5); /* R0..R9 are spread over several shards */
    redisReply *r;
    char mark[512];
    assert_true(keys_archiver_alive(mark, sizeof(mark), AH_GROUP, "ghost") > 0);
    ah_redis_ok(h, "SET %s 1 PX 600000", mark);

    const char *fast_claim[] = {"RRM_CLAIM_IDLE_MS=500", NULL};
    struct ah_archiver a;
    ah_start(h, &a, "reclaimer", fast_claim);
    expect_exactly_once(h, 3000 - queries, queries);
    ah_wait_log(h, &a, "reclaimed entries of a stale consumer", 1, 1000);
    for (unsigned s = 0; s < ah_shards(h); s++) {
        char key[KEYS_MAX];
        keys_events(key, sizeof(key), s);
        if (ah_redis_int(h, "EXISTS %s", key) == 0)
            continue;
        r = ah_redis(h, "XPENDING %s %s - + 10 ghost", key, AH_GROUP);
        assert_non_null(r);
        assert_int_equal(r->elements, 0);
        freeReplyObject(r);
    }
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
}

static void test_mysql_outages(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_mysql_down");
    struct ah_archiver a;
    ah_start(h, &a, "outage-1", NULL);
    int queries = ah_xadd_messages(h, 1, 5000, 20, 1);
    ah_wait_at_least(h, 500, AH_WAIT_MS, MESSAGES);

    /* A clean stop under traffic: the archiver retries, nothing is acknowledged, nothing lost. */
    assert_int_equal(mariadb_server_stop(ah_db(h)), 0);
    ah_db_reset(h);
    queries += ah_xadd_messages(h, 5001, 5000, 20, 1);
    ah_wait_log(h, &a, "\"attempt\":12", 1, AH_WAIT_MS);
    assert_int_equal(mariadb_server_restart(ah_db(h)), 0);
    expect_exactly_once(h, 10000 - queries, queries);

    /* A crash (SIGKILL) while batches are in flight: InnoDB recovery, possibly a commit whose
     * acknowledgement never happened, and redelivery that must not duplicate. */
    long long archived = ah_int_q(h, MESSAGES);
    int before = ah_log_count(&a, "MySQL write failed, retrying");
    queries += ah_xadd_messages(h, 10001, 20000, 20, 1);
    ah_wait_at_least(h, archived + 2000, AH_WAIT_MS, MESSAGES);
    assert_int_equal(mariadb_server_kill(ah_db(h)), 0);
    ah_db_reset(h);
    queries += ah_xadd_messages(h, 30001, 1000, 20, 1); /* traffic while it is down */
    ah_wait_log(h, &a, "MySQL write failed, retrying", before + 2, AH_WAIT_MS);
    assert_int_equal(mariadb_server_restart(ah_db(h)), 0);
    expect_exactly_once(h, 31000 - queries, queries);

    assert_true(proc_check_exited(a.pid, NULL) == 1); /* it never gave up */
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
}

static void test_redis_restart(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_redis_down");
    struct ah_archiver a;
    ah_start(h, &a, "redis-1", NULL);
    int queries = ah_xadd_messages(h, 1, 1000, 5, 1);
    expect_exactly_once(h, 1000 - queries, queries);

    /* The test server keeps no data: after the restart the stream and group are gone, and the
     * archiver must reconnect and recreate its group by itself. */
    assert_int_equal(redis_server_stop(ah_redis_server(h)), 0);
    ah_redis_close(h);
    ah_wait_log(h, &a, "redis unavailable, retrying", 2, AH_WAIT_MS);
    assert_int_equal(redis_server_restart(ah_redis_server(h)), 0);
    assert_non_null(ah_redis_client(h));
    queries += ah_xadd_messages(h, 1001, 1000, 5, 1);
    expect_exactly_once(h, 2000 - queries, queries);
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
}

static void test_two_archivers_share_the_stream(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_two");
    const char *small_batches[] = {"RRM_BATCH_SIZE=100", NULL};
    struct ah_archiver a, b;
    ah_start(h, &a, "pair-a", small_batches);
    ah_start(h, &b, "pair-b", small_batches);
    int queries = ah_xadd_messages(h, 1, 20000, 30, 1);
    expect_exactly_once(h, 20000 - queries, queries);
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
    assert_exit_status(h, ah_stop(&b, SIGTERM), 0);
    /* Both took part. */
    assert_true(ah_log_count(&a, "\"msg\":\"batch\"") > 0);
    assert_true(ah_log_count(&b, "\"msg\":\"batch\"") > 0);
}

static void test_sigterm_finishes_batch_in_flight(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_term");
    ah_xadd_messages(h, 1, 30000, 10, 0);
    const char *big_batches[] = {"RRM_BATCH_SIZE=5000", NULL};
    struct ah_archiver a;
    ah_start(h, &a, "term-1", big_batches);
    ah_wait_at_least(h, 1, AH_WAIT_MS, MESSAGES);
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
    /* Whatever it read was committed and acknowledged before it exited. */
    long long pending, lag, read;
    ah_group_state(h, &pending, &lag, &read);
    assert_int_equal(pending, 0);
    assert_true(read > 0);
    assert_int_equal(ah_int_q(h, MESSAGES), read);
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
    return cmocka_run_group_tests(tests, ah_setup, ah_teardown);
}
