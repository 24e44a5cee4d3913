/* rrm-archiver and the sharded archive: entries of every shard rrm:events:{N} are archived exactly
 * once, with event ids that name the shard (equal stream ids in two shards are two events); the
 * shards are read in turn, so a shard with a large backlog does not hold back the others; the
 * single stream rrm:events of older versions is drained too (its ids stay bare), also when it
 * appears while the archiver runs and when an archiver of an older version died holding some of
 * its entries; and a database of the older version is upgraded by migration 002 keeping its rows.
 */
#include "archiver_harness.h"

#include "batch.h"
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

static void assert_exited_0(struct arch_harness *h, int status) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        ah_dump_logs(h);
        fail_msg("archiver ended with status 0x%x", status);
    }
}

/* A message event of room `room`, number i. body must outlive the call that uses the event. */
static struct rrm_event message(const char *room, int i, char *body, size_t cap) {
    struct rrm_event ev;
    memset(&ev, 0, sizeof(ev));
    int len = snprintf(body, cap, "{\"type\":\"text\",\"content\":\"%s %d\"}", room, i);
    ev.type = EV_MESSAGE;
    ev.ts = 1732550000000LL + i;
    ev.node = (struct event_str){"node-s", 6};
    ev.conn = (struct event_str){"node-s#1", 8};
    ev.device = (struct event_str){"dev-s", 5};
    ev.room = (struct event_str){room, strlen(room)};
    ev.kind = (struct event_str){"text", 4};
    ev.body = (struct event_str){body, (size_t)len};
    ev.seq = i;
    return ev;
}

/* XADD of ev to stream with the explicit entry id `id`. */
static void xadd_at(struct arch_harness *h, const char *stream, const char *id,
                    const struct rrm_event *ev) {
    struct event_numbers nums;
    const char *argv[3 + 2 * EVENT_MAX_FIELDS] = {"XADD", stream, id};
    size_t lens[3 + 2 * EVENT_MAX_FIELDS] = {4, strlen(stream), strlen(id)};
    size_t n = 3 + event_encode_argv(ev, &nums, argv + 3, lens + 3);
    redisReply *r = redisCommandArgv(ah_redis_client(h), (int)n, argv, lens);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_STRING)
        fail_msg("XADD %s %s: %s", stream, id, r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
}

/* Two rooms of different shards (of AH_SHARDS). */
static void two_rooms(char *a, char *b, size_t cap) {
    snprintf(a, cap, "room-1"); /* shard 12 of 16 */
    snprintf(b, cap, "room-2"); /* shard 5 of 16 */
    assert_int_not_equal(keys_event_shard(a, strlen(a), AH_SHARDS),
                         keys_event_shard(b, strlen(b), AH_SHARDS));
}

/* The same stream ids in two shards and in the legacy stream are three events each, archived
 * once each, under ids that say where they came from. */
static void test_equal_ids_in_shards_and_legacy(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_shards_ids");
    char ra[16], rb[16], ka[KEYS_MAX], kb[KEYS_MAX], body[96];
    two_rooms(ra, rb, sizeof(ra));
    ah_events_key(h, ra, ka, sizeof(ka));
    ah_events_key(h, rb, kb, sizeof(kb));
    unsigned sa = keys_event_shard(ra, strlen(ra), AH_SHARDS);
    unsigned sb = keys_event_shard(rb, strlen(rb), AH_SHARDS);
    for (int i = 1; i <= 3; i++) {
        char id[32];
        snprintf(id, sizeof(id), "5-%d", i);
        struct rrm_event ev = message(ra, i, body, sizeof(body));
        xadd_at(h, ka, id, &ev);
        ev = message(rb, i, body, sizeof(body));
        xadd_at(h, kb, id, &ev);
        ev = message("room-old", i, body, sizeof(body));
        xadd_at(h, KEYS_EVENTS, id, &ev);
    }
    struct ah_archiver a;
    ah_start(h, &a, "ids-1", NULL);
    ah_wait_int(h, 9, AH_WAIT_MS, MESSAGES);
    ah_wait_drained(h, AH_WAIT_MS);
    ah_wait_int(h, 9, 1000, "SELECT COUNT(DISTINCT event_id) FROM messages");
    char want[256];
    snprintf(want, sizeof(want), "%u/5-1 %u/5-2 %u/5-3", sa, sa, sa);
    ah_expect(h, want,
              "SELECT GROUP_CONCAT(event_id ORDER BY seq SEPARATOR ' ') FROM messages "
              "WHERE room_id = '%s'",
              ra);
    snprintf(want, sizeof(want), "%u/5-1 %u/5-2 %u/5-3", sb, sb, sb);
    ah_expect(h, want,
              "SELECT GROUP_CONCAT(event_id ORDER BY seq SEPARATOR ' ') FROM messages "
              "WHERE room_id = '%s'",
              rb);
    /* the legacy stream's ids stay as an older archiver recorded them */
    ah_expect(h, "5-1 5-2 5-3",
              "SELECT GROUP_CONCAT(event_id ORDER BY seq SEPARATOR ' ') FROM messages "
              "WHERE room_id = 'room-old'");
    ah_wait_log(h, &a, "reading the single stream of older versions too", 1, 1000);
    assert_exited_0(h, ah_stop(&a, SIGTERM));

    /* Redelivery of everything changes nothing. */
    ah_redis_ok(h, "XGROUP SETID %s %s 0", ka, AH_GROUP);
    ah_redis_ok(h, "XGROUP SETID %s %s 0", KEYS_EVENTS, AH_GROUP);
    ah_start(h, &a, "ids-2", NULL);
    ah_wait_drained(h, AH_WAIT_MS);
    assert_exited_0(h, ah_stop(&a, SIGTERM));
    ah_expect(h, "9", MESSAGES);
}

/* A rolling upgrade: frontends of the older version still append to rrm:events after the archiver
 * started without it; an archiver of the older version died with entries of rrm:events pending.
 * Everything is archived once, and the group's backlog on rrm:events goes to 0. */
static void test_legacy_stream_drained(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_shards_legacy");
    struct ah_archiver a;
    ah_start(h, &a, "upgrade-1", NULL);
    ah_wait_log(h, &a, "\"msg\":\"archiving\"", 1, AH_WAIT_MS);
    assert_int_equal(ah_redis_int(h, "EXISTS %s", KEYS_EVENTS), 0); /* not made by the archiver */

    /* New frontends write to the shards, older ones to rrm:events, at the same time. */
    char body[96];
    int n = 0;
    for (int i = 1; i <= 50; i++) {
        struct rrm_event ev = message(i % 2 ? "room-1" : "room-2", i, body, sizeof(body));
        ah_xadd(h, &ev, NULL, 0);
        ev = message("room-legacy", i, body, sizeof(body));
        ah_xadd_legacy(h, &ev, NULL, 0);
        n += 2;
    }
    /* rrm:events is looked for every 5 s: well within the wait */
    ah_wait_int(h, n, AH_WAIT_MS, MESSAGES);
    ah_wait_int(h, 50, 1000, "SELECT COUNT(*) FROM messages WHERE room_id = 'room-legacy'");
    ah_wait_log(h, &a, "reading the single stream of older versions too", 1, 1000);
    assert_exited_0(h, ah_stop(&a, SIGTERM));

    /* An archiver of the older version read 10 more entries of rrm:events and died (no alive
     * mark); its successor of this version takes them over at once. */
    for (int i = 51; i <= 60; i++) {
        struct rrm_event ev = message("room-legacy", i, body, sizeof(body));
        ah_xadd_legacy(h, &ev, NULL, 0);
    }
    redisReply *r = ah_redis(h, "XREADGROUP GROUP %s old-archiver COUNT 10 STREAMS %s >", AH_GROUP,
                             KEYS_EVENTS);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    ah_start(h, &a, "upgrade-2", NULL);
    ah_wait_int(h, 60, AH_WAIT_MS, "SELECT COUNT(*) FROM messages WHERE room_id = 'room-legacy'");
    ah_wait_drained(h, AH_WAIT_MS);
    ah_wait_log(h, &a, "\"consumer\":\"old-archiver\",\"entries\":10", 1, 1000);
    ah_wait_int(h, n + 10, 1000, "SELECT COUNT(DISTINCT event_id) FROM messages");
    ah_wait_int(h, 60, 1000,
                "SELECT COUNT(DISTINCT seq) FROM messages WHERE room_id = 'room-legacy'");
    /* the status record says nothing is left in it */
    ah_wait_log(h, &a, "\"legacy_backlog\":0", 1, AH_WAIT_MS);
    assert_exited_0(h, ah_stop(&a, SIGTERM));
}

/* A database written by the older version (migration 001 only, 41-character ids) is upgraded by
 * migration 002 when the archiver starts: the rows it holds stay, and new events with shard ids
 * are written next to them. */
static void test_upgrade_of_an_older_database(void **state) {
    struct arch_harness *h = *state;
#define OLD_DB "arch_shards_upgrade"
    ah_fresh(h, OLD_DB);
    const char *src = getenv("RRM_SOURCE_DIR");
    assert_non_null(src);
    char path[1024];
    snprintf(path, sizeof(path), "%s/sql/migrations/001_init.sql", src);
    char *init = ah_read_file(path);
    assert_non_null(init);
    size_t len = strlen(init) + 64;
    char *sql = malloc(len);
    assert_non_null(sql);
    snprintf(sql, len, "CREATE DATABASE " OLD_DB "; USE " OLD_DB ";\n%s", init);
    free(init);
    assert_int_equal(mariadb_server_exec(ah_db(h), sql), 0);
    free(sql);
    assert_int_equal(
        mariadb_server_exec(ah_db(h),
                            "USE " OLD_DB
                            "; CREATE TABLE schema_migrations (version INT UNSIGNED NOT NULL, "
                            "name VARCHAR(255) NOT NULL, applied_at DATETIME(3) NOT NULL, "
                            "PRIMARY KEY (version)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
                            "COLLATE=utf8mb4_bin; "
                            "INSERT INTO schema_migrations VALUES (1, 'init', UTC_TIMESTAMP(3)); "
                            "INSERT INTO messages (event_id, room_id, from_device_id, seq, "
                            "message_type, message_size, message_content, node, sent_at) VALUES "
                            "('18446744073709551615-18446744073709551615', 'room-1', 'dev-s', 1, "
                            "'text', 2, '{}', 'node-s', '2024-11-25 15:53:20.000')"),
        0);
    ah_expect(h, "41",
              "SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS WHERE "
              "TABLE_SCHEMA = '" OLD_DB
              "' AND TABLE_NAME = 'messages' AND COLUMN_NAME = 'event_id'");

    /* the longest event id this version makes */
    char body[96];
    char key[KEYS_MAX];
    const char *room = "room-3"; /* shard 2 of 16 */
    ah_events_key(h, room, key, sizeof(key));
    struct rrm_event ev = message(room, 2, body, sizeof(body));
    xadd_at(h, key, "18446744073709551615-18446744073709551614", &ev);
    struct ah_archiver a;
    ah_start(h, &a, "migrate-1", NULL);
    ah_wait_int(h, 2, AH_WAIT_MS, MESSAGES);
    assert_int_equal(ah_log_count(&a, "schema migration applied"), 1);
    ah_expect(h, "1:init 2:sharded_event_ids",
              "SELECT GROUP_CONCAT(CONCAT(version, ':', name) ORDER BY version SEPARATOR ' ') "
              "FROM schema_migrations");
    char want[32];
    snprintf(want, sizeof(want), "%d", ARCH_EVENT_ID_MAX);
    ah_expect(h, want,
              "SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS WHERE "
              "TABLE_SCHEMA = '" OLD_DB
              "' AND TABLE_NAME = 'messages' AND COLUMN_NAME = 'event_id'");
    ah_expect(h,
              "18446744073709551615-18446744073709551615 "
              "2/18446744073709551615-18446744073709551614",
              "SELECT GROUP_CONCAT(event_id ORDER BY seq SEPARATOR ' ') FROM messages");
    assert_exited_0(h, ah_stop(&a, SIGTERM));
}

/* One shard with a large backlog and a later shard with a few entries: the few are archived while
 * most of the large backlog is still waiting, because the reads take the shards in turn (a reader
 * that drained the shards one after the other, from 0, would come to them last). */
static void test_shards_read_in_turn(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_shards_fair");
    enum { BIG = 20000, SMALL = 200 };
    char body[96];
    const char *big = "room-5", *small = "room-2"; /* shards 0 and 5 of 16 */
    assert_int_equal(keys_event_shard(big, strlen(big), AH_SHARDS), 0);
    assert_int_equal(keys_event_shard(small, strlen(small), AH_SHARDS), 5);
    for (int i = 1; i <= BIG; i++) {
        struct rrm_event ev = message(big, i, body, sizeof(body));
        ah_xadd(h, &ev, NULL, 0);
    }
    for (int i = 1; i <= SMALL; i++) {
        struct rrm_event ev = message(small, i, body, sizeof(body));
        ah_xadd(h, &ev, NULL, 0);
    }
    const char *batches[] = {"RRM_BATCH_SIZE=500", NULL};
    struct ah_archiver a;
    ah_start(h, &a, "fair-1", batches);
    ah_wait_int(h, SMALL, AH_WAIT_MS, "SELECT COUNT(*) FROM messages WHERE room_id = 'room-2'");
    long long big_done = ah_int_q(h, "SELECT COUNT(*) FROM messages WHERE room_id = 'room-5'");
    print_message("room-2 complete with %lld of %d room-5 messages archived\n", big_done, BIG);
    assert_true(big_done < BIG / 2);
    ah_wait_int(h, BIG + SMALL, AH_WAIT_MS, MESSAGES);
    ah_wait_drained(h, AH_WAIT_MS);
    ah_wait_int(h, BIG + SMALL, 1000, "SELECT COUNT(DISTINCT event_id) FROM messages");
    assert_exited_0(h, ah_stop(&a, SIGTERM));
}

/* The frontends cap each shard at its share of RRM_STREAM_MAXLEN: 400 entries waiting in one room's
 * shard are far below half of the whole cap (1000) but past half of the shard's 63, and that is
 * warned about, naming the shard. */
static void test_backlog_warning_per_shard(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_shards_backlog");
    char body[96];
    const char *room = "room-1"; /* shard 12 of 16 */
    for (int i = 1; i <= 400; i++) {
        struct rrm_event ev = message(room, i, body, sizeof(body));
        ah_xadd(h, &ev, NULL, 0);
    }
    const char *small_cap[] = {"RRM_STREAM_MAXLEN=1000", NULL};
    struct ah_archiver a;
    ah_start(h, &a, "backlog-shard", small_cap);
    ah_wait_log(h, &a, "archive backlog approaching the stream cap", 1, AH_WAIT_MS);
    ah_wait_log(h, &a, "\"shard\":12,\"shard_cap\":63", 1, 1000);
    ah_wait_int(h, 400, AH_WAIT_MS, MESSAGES);
    ah_wait_drained(h, AH_WAIT_MS);
    assert_exited_0(h, ah_stop(&a, SIGTERM));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_ids_in_shards_and_legacy),
        cmocka_unit_test(test_legacy_stream_drained),
        cmocka_unit_test(test_upgrade_of_an_older_database),
        cmocka_unit_test(test_shards_read_in_turn),
        cmocka_unit_test(test_backlog_warning_per_shard),
    };
    return cmocka_run_group_tests(tests, ah_setup, ah_teardown);
}
