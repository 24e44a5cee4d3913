/* rrm-archiver takeover: an archiver killed while it holds read but uncommitted entries is replaced
 * by one with another name, which takes them over as soon as the dead one's alive mark expires
 * (not after RRM_CLAIM_IDLE_MS); two live archivers never take over each other; consumers without
 * a mark are removed once they hold nothing; an archiver stopped with SIGTERM removes its mark so
 * that its successor takes over at once. */
#include "archiver_harness.h"

#include "event.h"
#include "keys.h"
#include "mariadb_server.h"
#include "proc.h"

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

#define MESSAGES "SELECT COUNT(*) FROM messages"

/* The archivers a test started, killed by its teardown if a failure left them running (they
 * would read the next test's stream). */
static struct ah_archiver *started[8];
static int nstarted;

static void spawn(struct arch_harness *h, struct ah_archiver *a, const char *name,
                  const char *const *extra) {
    ah_start(h, a, name, extra);
    assert_true(nstarted < 8);
    started[nstarted++] = a;
}

static int kill_leftovers(void **state) {
    (void)state;
    for (int i = 0; i < nstarted; i++)
        ah_stop(started[i], SIGKILL);
    nstarted = 0;
    return 0;
}

/* Pending entries of consumer `name` in the archivers' group on one stream, -1 when it is not a
 * consumer there. */
static long long consumer_pending_in(struct arch_harness *h, const char *stream, const char *name) {
    redisReply *r = ah_redis(h, "XINFO CONSUMERS %s %s", stream, AH_GROUP);
    assert_non_null(r);
    long long pending = -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *c = r->element[i];
        int ours = 0;
        long long n = -1;
        for (size_t k = 0; k + 1 < c->elements; k += 2) {
            if (strcmp(c->element[k]->str, "name") == 0)
                ours = strcmp(c->element[k + 1]->str, name) == 0;
            else if (strcmp(c->element[k]->str, "pending") == 0)
                n = c->element[k + 1]->integer;
        }
        if (ours)
            pending = n;
    }
    freeReplyObject(r);
    return pending;
}

/* Pending entries of consumer `name` summed over the shard streams, -1 when it is a consumer in
 * none; *streams (if not NULL) gets the number of streams it is a consumer in. */
static long long consumer_pending_n(struct arch_harness *h, const char *name, int *streams) {
    long long sum = -1;
    int in = 0;
    for (unsigned s = 0; s < ah_shards(h); s++) {
        char key[KEYS_MAX];
        keys_events(key, sizeof(key), s);
        if (ah_redis_int(h, "EXISTS %s", key) == 0)
            continue;
        long long n = consumer_pending_in(h, key, name);
        if (n >= 0) {
            sum = (sum < 0 ? 0 : sum) + n;
            in++;
        }
    }
    if (streams)
        *streams = in;
    return sum;
}

static long long consumer_pending(struct arch_harness *h, const char *name) {
    return consumer_pending_n(h, name, NULL);
}

/* Number of shard streams in which consumer `name` holds pending entries. */
static int streams_pending(struct arch_harness *h, const char *name) {
    int in = 0;
    for (unsigned s = 0; s < ah_shards(h); s++) {
        char key[KEYS_MAX];
        keys_events(key, sizeof(key), s);
        if (ah_redis_int(h, "EXISTS %s", key) && consumer_pending_in(h, key, name) > 0)
            in++;
    }
    return in;
}

static void wait_pending(struct arch_harness *h, const char *name, long long want, int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    long long seen;
    while ((seen = consumer_pending(h, name)) != want) {
        if (proc_now_ms() > deadline) {
            ah_dump_logs(h);
            fail_msg("consumer %s holds %lld pending entries, expected %lld", name, seen, want);
        }
        ah_sleep_ms(20);
    }
}

/* Sum of a counter over an archiver's status records. */
static long long status_sum(const struct ah_archiver *a, const char *counter) {
    char *log = ah_read_file(a->log), needle[64];
    assert_non_null(log);
    snprintf(needle, sizeof(needle), "\"%s\":", counter);
    long long sum = 0;
    for (char *line = log; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        char *at = strstr(line, "\"msg\":\"status\"") ? strstr(line, needle) : NULL;
        if (at)
            sum += strtoll(at + strlen(needle), NULL, 10);
        line = end ? end + 1 : NULL;
    }
    free(log);
    return sum;
}

/* Waits until the sum of a status counter reaches want. */
static void wait_status_sum(struct arch_harness *h, const struct ah_archiver *a,
                            const char *counter, long long want) {
    int64_t deadline = proc_now_ms() + AH_WAIT_MS;
    long long seen;
    while ((seen = status_sum(a, counter)) < want) {
        if (proc_now_ms() > deadline) {
            ah_dump_logs(h);
            fail_msg("%s: status records sum to %lld, expected %lld", counter, seen, want);
        }
        ah_sleep_ms(50);
    }
    assert_int_equal(seen, want);
}

static void mark_key(char *buf, size_t cap, const char *consumer) {
    assert_true(keys_archiver_alive(buf, cap, AH_GROUP, consumer) > 0);
}

/* Appends `count` messages numbered first.. and reads them as consumer `name` in one MULTI/EXEC,
 * so that no archiver reads them first: they are pending for `name`, which never saw them. */
static void inject(struct arch_harness *h, const char *name, int first, int count) {
    char stream[KEYS_MAX]; /* room RI's shard */
    ah_events_key(h, "RI", stream, sizeof(stream));
    redisContext *rc = ah_redis_client(h);
    assert_non_null(rc);
    assert_int_equal(redisAppendCommand(rc, "MULTI"), REDIS_OK);
    for (int i = first; i < first + count; i++) {
        char body[96];
        int len =
            snprintf(body, sizeof(body), "{\"type\":\"text\",\"content\":\"injected %d\"}", i);
        struct rrm_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = EV_MESSAGE;
        ev.ts = 1732550000000LL + i;
        ev.node = (struct event_str){"node-t", 6};
        ev.conn = (struct event_str){"node-t#1", 8};
        ev.device = (struct event_str){"dev-inject", 10};
        ev.room = (struct event_str){"RI", 2};
        ev.kind = (struct event_str){"text", 4};
        ev.body = (struct event_str){body, (size_t)len};
        ev.seq = i;
        struct event_numbers nums;
        const char *argv[3 + 2 * EVENT_MAX_FIELDS] = {"XADD", stream, "*"};
        size_t lens[3 + 2 * EVENT_MAX_FIELDS] = {4, strlen(stream), 1};
        size_t n = 3 + event_encode_argv(&ev, &nums, argv + 3, lens + 3);
        assert_int_equal(redisAppendCommandArgv(rc, (int)n, argv, lens), REDIS_OK);
    }
    assert_int_equal(redisAppendCommand(rc, "XREADGROUP GROUP %s %s COUNT %d STREAMS %s >",
                                        AH_GROUP, name, count, stream),
                     REDIS_OK);
    assert_int_equal(redisAppendCommand(rc, "EXEC"), REDIS_OK);
    for (int i = 0; i < count + 3; i++) {
        redisReply *r = NULL;
        assert_int_equal(redisGetReply(rc, (void **)&r), REDIS_OK);
        assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
        freeReplyObject(r);
    }
    assert_int_equal(consumer_pending(h, name), count);
}

static void assert_exited_0(struct arch_harness *h, int status) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        ah_dump_logs(h);
        fail_msg("archiver ended with status 0x%x", status);
    }
}

static void expect_exactly_once(struct arch_harness *h, long long n) {
    ah_wait_int(h, n, AH_WAIT_MS, MESSAGES);
    ah_wait_drained(h, AH_WAIT_MS);
    ah_wait_int(h, n, 1000, "SELECT COUNT(DISTINCT event_id) FROM messages");
    ah_wait_int(h, n, 1000, "SELECT COUNT(DISTINCT room_id, seq) FROM messages");
}

static void test_sigkill_replacement_takes_over(void **state) {
    struct arch_harness *h = *state;
    const char *db = "arch_takeover";
    ah_fresh(h, db);
    /* A first archiver creates the schema and the group, and goes. */
    struct ah_archiver a;
    spawn(h, &a, "schema", NULL);
    ah_wait_log(h, &a, "\"msg\":\"archiving\"", 1, AH_WAIT_MS);
    assert_exited_0(h, ah_stop(&a, SIGTERM));

    /* With the messages table locked, the archiver reads two batches, each of one shard, and its
     * writers wait: entries of two shards read and not committed, for as long as the lock is held.
     * The 10 rooms are spread over several shards. */
    MYSQL *lock = mariadb_server_client(ah_db(h), db);
    assert_non_null(lock);
    assert_int_equal(mysql_query(lock, "LOCK TABLES messages WRITE"), 0);
    const int n = 1000;
    ah_xadd_messages(h, 1, n, 10, 0);
    unsigned used[AH_SHARDS] = {0}, nused = 0;
    for (int r = 0; r < 10; r++) {
        char room[8];
        snprintf(room, sizeof(room), "R%d", r);
        unsigned s = keys_event_shard(room, strlen(room), AH_SHARDS);
        nused += !used[s];
        used[s] = 1;
    }
    assert_true(nused >= 5);
    spawn(h, &a, "pod-a", NULL); /* RRM_BATCH_SIZE=500, 2 writers */
    int64_t deadline = proc_now_ms() + AH_WAIT_MS;
    while (streams_pending(h, "pod-a") < 2) {
        if (proc_remaining_ms(deadline) == 0) {
            ah_dump_logs(h);
            fail_msg("pod-a did not read two batches");
        }
        ah_sleep_ms(20);
    }

    ah_stop(&a, SIGKILL);
    /* pod-a is a consumer of each shard's group it read from (empty reads included) */
    int pod_a_streams = 0;
    long long held = consumer_pending_n(h, "pod-a", &pod_a_streams);
    assert_true(held > 0 && held < n);
    assert_true(pod_a_streams >= 2);
    assert_int_equal(mysql_query(lock, "UNLOCK TABLES"), 0);
    mysql_close(lock);
    assert_int_equal(ah_int_q(h, MESSAGES), 0);

    /* A new pod, a new name; the claim by idle time (60 s by default) cannot be what does it. */
    struct ah_archiver b;
    int64_t start = proc_now_ms();
    spawn(h, &b, "pod-b", NULL);
    ah_wait_int(h, n, 15000, MESSAGES);
    fprintf(stderr, "all %d rows archived %lld ms after the replacement started\n", n,
            (long long)(proc_now_ms() - start));
    expect_exactly_once(h, n);
    ah_wait_log(h, &b, "\"msg\":\"took over the entries of a dead consumer\"", 1, 1000);
    assert_true(ah_log_count(&b, "\"consumer\":\"pod-a\"") >= 1);
    assert_int_equal(ah_log_count(&b, "reclaimed entries of a stale consumer"), 0);
    /* pod-a, now empty, leaves the group (pod-a itself had removed the schema archiver). */
    wait_pending(h, "pod-a", -1, AH_WAIT_MS);
    assert_int_equal(consumer_pending(h, "schema"), -1);
    /* The status records count it. */
    wait_status_sum(h, &b, "taken_over", held);
    wait_status_sum(h, &b, "consumers_removed", pod_a_streams); /* counted per stream */
    assert_exited_0(h, ah_stop(&b, SIGTERM));
}

static void test_two_live_archivers_keep_their_entries(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_takeover_two");
    /* short enough to see expiry soon, long enough that a loaded machine still refreshes in time */
    const char *short_ttl[] = {"RRM_ALIVE_TTL_MS=4000", NULL};
    struct ah_archiver a, b;
    spawn(h, &a, "live-a", short_ttl);
    spawn(h, &b, "live-b", short_ttl);
    ah_wait_log(h, &a, "\"msg\":\"archiving\"", 1, AH_WAIT_MS);
    ah_wait_log(h, &b, "\"msg\":\"archiving\"", 1, AH_WAIT_MS);
    int n = 200;
    ah_xadd_messages(h, 1, n, 5, 0);
    ah_wait_int(h, n, AH_WAIT_MS, MESSAGES);
    ah_wait_drained(h, AH_WAIT_MS);

    /* Entries pending for each live archiver (it will not look at them before a reconnect). */
    inject(h, "live-a", 1001, 5);
    inject(h, "live-b", 2001, 5);
    n += 10;
    /* Several scans each, over more than two mark lifetimes: nobody takes anything. */
    int scans_a = ah_log_count(&a, "\"msg\":\"takeover scan\"");
    int scans_b = ah_log_count(&b, "\"msg\":\"takeover scan\"");
    ah_wait_log(h, &a, "\"msg\":\"takeover scan\"", scans_a + 12, AH_WAIT_MS);
    ah_wait_log(h, &b, "\"msg\":\"takeover scan\"", scans_b + 12, AH_WAIT_MS);
    assert_int_equal(consumer_pending(h, "live-a"), 5);
    assert_int_equal(consumer_pending(h, "live-b"), 5);
    assert_int_equal(ah_log_count(&a, "took over"), 0);
    assert_int_equal(ah_log_count(&b, "took over"), 0);
    assert_int_equal(ah_log_count(&a, "dead consumer removed"), 0);
    assert_int_equal(ah_log_count(&b, "dead consumer removed"), 0);

    /* A dies: B takes over its five once its mark expires, and removes it. */
    ah_stop(&a, SIGKILL);
    ah_wait_log(h, &b, "\"consumer\":\"live-a\",\"entries\":5", 1, AH_WAIT_MS);
    ah_wait_int(h, n - 5, AH_WAIT_MS, MESSAGES);
    wait_pending(h, "live-a", -1, AH_WAIT_MS);

    /* B stops cleanly: its mark is gone at once, so a successor with a long mark lifetime of its
     * own takes over B's five without waiting for any expiry. */
    char key[512];
    mark_key(key, sizeof(key), "live-b");
    long long ttl = ah_redis_int(h, "PTTL %s", key);
    assert_true(ttl > 0 && ttl <= 4000);
    assert_exited_0(h, ah_stop(&b, SIGTERM));
    assert_int_equal(ah_redis_int(h, "EXISTS %s", key), 0);
    assert_int_equal(consumer_pending(h, "live-b"), 5);
    const char *long_ttl[] = {"RRM_ALIVE_TTL_MS=60000", NULL};
    struct ah_archiver c;
    spawn(h, &c, "successor", long_ttl);
    ah_wait_int(h, n, 10000, MESSAGES); /* well before its own 60 s or any idle claim */
    expect_exactly_once(h, n);
    ah_wait_log(h, &c, "\"consumer\":\"live-b\",\"entries\":5", 1, 1000);
    assert_exited_0(h, ah_stop(&c, SIGTERM));
}

static void test_dead_consumers_removed(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_takeover_ghosts");
    char ri[KEYS_MAX], key[512];
    ah_events_key(h, "RI", ri, sizeof(ri));
    ah_redis_ok(h, "XGROUP CREATE %s %s 0 MKSTREAM", ri, AH_GROUP);
    /* Consumers in name order, which is the order the archiver looks at them. */
    inject(h, "a-live", 1, 5);
    mark_key(key, sizeof(key), "a-live");
    ah_redis_ok(h, "SET %s 1 PX 120000", key);
    ah_redis_ok(h, "XGROUP CREATECONSUMER %s %s b-live-idle", ri, AH_GROUP);
    mark_key(key, sizeof(key), "b-live-idle");
    ah_redis_ok(h, "SET %s 1 PX 120000", key);
    inject(h, "c-dead", 101, 5);
    ah_redis_ok(h, "XGROUP CREATECONSUMER %s %s d-dead-empty", ri, AH_GROUP);

    struct ah_archiver a;
    spawn(h, &a, "sweeper", NULL);
    /* Removing d-dead-empty means a pass went past the two live ones. */
    wait_pending(h, "d-dead-empty", -1, AH_WAIT_MS);
    wait_pending(h, "c-dead", -1, AH_WAIT_MS);
    ah_wait_int(h, 5, AH_WAIT_MS, MESSAGES);
    assert_int_equal(consumer_pending(h, "a-live"), 5);
    assert_int_equal(consumer_pending(h, "b-live-idle"), 0);
    wait_status_sum(h, &a, "consumers_removed", 2);

    /* Their marks go: a-live's entries are taken over, then both leave the group. */
    mark_key(key, sizeof(key), "a-live");
    ah_redis_ok(h, "DEL %s", key);
    mark_key(key, sizeof(key), "b-live-idle");
    ah_redis_ok(h, "DEL %s", key);
    ah_wait_int(h, 10, AH_WAIT_MS, MESSAGES);
    wait_pending(h, "a-live", -1, AH_WAIT_MS);
    wait_pending(h, "b-live-idle", -1, AH_WAIT_MS);
    expect_exactly_once(h, 10);
    wait_status_sum(h, &a, "consumers_removed", 4);
    wait_status_sum(h, &a, "taken_over", 10);
    assert_exited_0(h, ah_stop(&a, SIGTERM));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sigkill_replacement_takes_over, kill_leftovers),
        cmocka_unit_test_teardown(test_two_live_archivers_keep_their_entries, kill_leftovers),
        cmocka_unit_test_teardown(test_dead_consumers_removed, kill_leftovers),
    };
    return cmocka_run_group_tests(tests, ah_setup, ah_teardown);
}
