/* rrm-archiver against a real redis-server and mariadbd: every event type lands in its table with
 * the right fields, merges are order-independent, redelivery adds nothing, unwritable entries go to
 * the dead-letter stream, the schema and its migrations agree, configuration errors are clear, and
 * every query of sql/analytics.sql returns the expected numbers on archived data. */
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

#include "batch.h"

#define T0 1732550000000LL /* 2024-11-25 15:53:20.000 UTC */
#define STR(lit) ((struct event_str){lit, sizeof(lit) - 1})

static struct rrm_event ev_of(enum event_type t, int64_t ts) {
    struct rrm_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = t;
    ev.ts = ts;
    ev.node = STR("node-a");
    return ev;
}

static void assert_exit_status(struct arch_harness *h, int status, int code) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != code) {
        ah_dump_logs(h);
        fail_msg("archiver ended with status 0x%x, expected exit %d", status, code);
    }
}

static void test_every_type_lands(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_types");
    struct ah_archiver a;
    ah_start(h, &a, "types-1", NULL);

    char id[12][48];
    struct rrm_event ev = ev_of(EV_ROOM_CREATED, T0);
    ev.room = STR("ROOM01");
    ev.device = STR("dev-1");
    ev.conn = STR("node-a#1");
    ah_xadd(h, &ev, id[0], sizeof(id[0]));

    ev = ev_of(EV_CONNECT, T0 + 1);
    ev.conn = STR("node-a#1");
    ev.device = STR("dev-1");
    ev.identity = STR("phone \xf0\x9f\x93\xb1 'q' \\ \"x\"");
    ev.ip = STR("10.0.0.1");
    ah_xadd(h, &ev, id[1], sizeof(id[1]));

    ev = ev_of(EV_ROOM, T0 + 2);
    ev.conn = STR("node-a#1");
    ev.device = STR("dev-1");
    ev.room = STR("ROOM01");
    ev.action = STR("created");
    ah_xadd(h, &ev, id[2], sizeof(id[2]));

    ev = ev_of(EV_CONNECT, T0 + 3);
    ev.conn = STR("node-a#2");
    ev.device = STR("dev-2");
    ev.identity = STR("desk");
    ev.ip = STR("2001:db8::2");
    ah_xadd(h, &ev, id[3], sizeof(id[3]));

    ev = ev_of(EV_ROOM, T0 + 4);
    ev.conn = STR("node-a#2");
    ev.device = STR("dev-2");
    ev.room = STR("ROOM01");
    ev.action = STR("joined");
    ah_xadd(h, &ev, id[4], sizeof(id[4]));

    ev = ev_of(EV_MESSAGE, T0 + 5);
    ev.conn = STR("node-a#1");
    ev.device = STR("dev-1");
    ev.room = STR("ROOM01");
    ev.kind = STR("text");
    ev.body = STR("{\"type\":\"text\",\"content\":\"h\xc3\xa9llo \xf0\x9f\x98\x80 '\\\\'\"}");
    ev.seq = 1;
    ah_xadd(h, &ev, id[5], sizeof(id[5]));

    unsigned char bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)i;
    ev = ev_of(EV_MESSAGE, T0 + 6);
    ev.conn = STR("node-a#2");
    ev.device = STR("dev-2");
    ev.room = STR("ROOM01");
    ev.kind = STR("binary");
    ev.body = (struct event_str){(const char *)bytes, sizeof(bytes)};
    ev.seq = 2;
    ah_xadd(h, &ev, id[6], sizeof(id[6]));

    ev = ev_of(EV_MESSAGE, T0 + 7);
    ev.conn = STR("node-a#2");
    ev.device = STR("dev-2");
    ev.room = STR("ROOM01");
    ev.kind = STR("json");
    ev.body = STR("[1,\"a\\\\b\",{\"c\":null}]");
    ev.seq = 3;
    ah_xadd(h, &ev, id[7], sizeof(id[7]));

    ev = ev_of(EV_QUERY, T0 + 8);
    ev.conn = STR("node-a#2");
    ev.device = STR("dev-2");
    ev.room = STR("ROOM01");
    ev.total = 2;
    ah_xadd(h, &ev, id[8], sizeof(id[8]));

    ev = ev_of(EV_DISCONNECT, T0 + 9);
    ev.conn = STR("node-a#1");
    ev.device = STR("dev-1");
    ev.room = STR("ROOM01");
    ev.reason = STR("client closed");
    ev.connected_at = T0 + 1;
    ah_xadd(h, &ev, id[9], sizeof(id[9]));

    ev = ev_of(EV_ROOM_RECYCLED, T0 + 10);
    ev.room = STR("ROOM01");
    ah_xadd(h, &ev, id[10], sizeof(id[10]));

    ah_wait_drained(h, AH_WAIT_MS);

    /* rooms */
    ah_expect(h, "1", "SELECT COUNT(*) FROM rooms");
    ah_expect(h, "ROOM01|2024-11-25 15:53:20.000|dev-1|node-a|2024-11-25 15:53:20.010",
              "SELECT CONCAT_WS('|', room_id, created_at, created_by_device, created_node, "
              "recycled_at) FROM rooms");
    ah_expect(h, id[0], "SELECT created_event_id FROM rooms");
    ah_expect(h, id[10], "SELECT recycled_event_id FROM rooms");

    /* devices */
    ah_expect(h, "2", "SELECT COUNT(*) FROM devices");
    ah_expect(h, "phone \xf0\x9f\x93\xb1 'q' \\ \"x\"|2024-11-25 15:53:20.001|node-a|ROOM01|1",
              "SELECT CONCAT_WS('|', identity, last_connected_at, last_node, last_room_id, "
              "connect_count) FROM devices WHERE device_id = 'dev-1'");
    ah_expect(h, "desk|2024-11-25 15:53:20.003|ROOM01|1",
              "SELECT CONCAT_WS('|', identity, last_connected_at, last_room_id, connect_count) "
              "FROM devices WHERE device_id = 'dev-2'");

    /* connections: connect + room + disconnect merged into one row */
    ah_expect(h, "2", "SELECT COUNT(*) FROM connections");
    char want[512];
    snprintf(want, sizeof(want),
             "%s|dev-1|10.0.0.1|node-a|ROOM01|2024-11-25 15:53:20.001|2024-11-25 15:53:20.009|"
             "client closed|%s",
             id[1], id[9]);
    ah_expect(h, want,
              "SELECT CONCAT_WS('|', event_id, device_id, client_ip, node, room_id, "
              "connected_at, disconnected_at, disconnect_reason, disconnect_event_id) "
              "FROM connections WHERE conn_id = 'node-a#1'");
    ah_expect(h, "2001:db8::2|ROOM01|NULL",
              "SELECT CONCAT_WS('|', client_ip, room_id, "
              "COALESCE(disconnected_at, 'NULL')) FROM connections "
              "WHERE conn_id = 'node-a#2'");

    /* messages: content kept byte for byte */
    ah_expect(h, "3", "SELECT COUNT(*) FROM messages");
    ah_expect(h, "{\"type\":\"text\",\"content\":\"h\xc3\xa9llo \xf0\x9f\x98\x80 '\\\\'\"}",
              "SELECT CONVERT(message_content USING utf8mb4) FROM messages WHERE seq = 1");
    char hex[600] = "";
    for (int i = 0; i < 256; i++)
        snprintf(hex + 2 * i, 3, "%02X", i);
    ah_expect(h, hex, "SELECT HEX(message_content) FROM messages WHERE seq = 2");
    snprintf(want, sizeof(want), "%s|ROOM01|dev-2|binary|256|node-a|2024-11-25 15:53:20.006",
             id[6]);
    ah_expect(h, want,
              "SELECT CONCAT_WS('|', event_id, room_id, from_device_id, message_type, "
              "message_size, node, sent_at) FROM messages WHERE seq = 2");
    ah_expect(h, "json|[1,\"a\\\\b\",{\"c\":null}]",
              "SELECT CONCAT_WS('|', message_type, CONVERT(message_content USING utf8mb4)) "
              "FROM messages WHERE seq = 3");

    /* room_queries */
    snprintf(want, sizeof(want), "%s|ROOM01|dev-2|2|node-a|2024-11-25 15:53:20.008", id[8]);
    ah_expect(h, want,
              "SELECT CONCAT_WS('|', event_id, room_id, device_id, total_clients, node, "
              "queried_at) FROM room_queries");

    /* room_events */
    ah_expect(h, "created,joined",
              "SELECT GROUP_CONCAT(action ORDER BY assigned_at) FROM room_events");
    snprintf(want, sizeof(want), "%s|dev-2|node-a#2|2024-11-25 15:53:20.004", id[4]);
    ah_expect(h, want,
              "SELECT CONCAT_WS('|', event_id, device_id, conn_id, assigned_at) "
              "FROM room_events WHERE action = 'joined'");

    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
    assert_int_equal(ah_log_count(&a, "\"final\":true"), 1);

    /* Redelivery of everything (the group rewound to the start) changes nothing. */
    char *before =
        ah_str(h, "SELECT CONCAT_WS('|', (SELECT COUNT(*) FROM messages), "
                  "(SELECT COUNT(*) FROM connections), (SELECT COUNT(*) FROM room_events), "
                  "(SELECT COUNT(*) FROM room_queries), (SELECT connect_count FROM devices "
                  "WHERE device_id = 'dev-1'), (SELECT CONCAT(created_at, recycled_at) "
                  "FROM rooms))");
    for (unsigned s = 0; s < ah_shards(h); s++) {
        char key[KEYS_MAX];
        keys_events(key, sizeof(key), s);
        if (ah_redis_int(h, "XLEN %s", key) > 0)
            ah_redis_ok(h, "XGROUP SETID %s %s 0", key, AH_GROUP);
    }
    ah_start(h, &a, "types-2", NULL);
    ah_wait_drained(h, AH_WAIT_MS);
    long long pending, lag, read;
    ah_group_state(h, &pending, &lag, &read);
    assert_int_equal(read, 11);
    ah_expect(h, before,
              "SELECT CONCAT_WS('|', (SELECT COUNT(*) FROM messages), "
              "(SELECT COUNT(*) FROM connections), (SELECT COUNT(*) FROM room_events), "
              "(SELECT COUNT(*) FROM room_queries), (SELECT connect_count FROM devices "
              "WHERE device_id = 'dev-1'), (SELECT CONCAT(created_at, recycled_at) "
              "FROM rooms))");
    free(before);
    assert_exit_status(h, ah_stop(&a, SIGINT), 0);
}

static void test_merges_are_order_independent(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_order");
    /* Events of one connection and one room in the opposite of their real order, as two
     * archivers committing in parallel could store them. */
    struct rrm_event ev = ev_of(EV_DISCONNECT, T0 + 50);
    ev.conn = STR("node-b#7");
    ev.device = STR("dev-9");
    ev.reason = STR("replaced");
    ev.connected_at = T0 + 10;
    ah_xadd(h, &ev, NULL, 0);

    ev = ev_of(EV_ROOM, T0 + 11);
    ev.conn = STR("node-b#7");
    ev.device = STR("dev-9");
    ev.room = STR("ROOM09");
    ev.action = STR("joined");
    ah_xadd(h, &ev, NULL, 0);

    ev = ev_of(EV_CONNECT, T0 + 10);
    ev.conn = STR("node-b#7");
    ev.device = STR("dev-9");
    ev.identity = STR("old name");
    ev.ip = STR("10.1.1.1");
    ah_xadd(h, &ev, NULL, 0);

    /* A newer connection of the same device arrives before the older one... */
    ev = ev_of(EV_CONNECT, T0 + 100);
    ev.conn = STR("node-b#9");
    ev.device = STR("dev-9");
    ev.identity = STR("new name");
    ah_xadd(h, &ev, NULL, 0);

    /* ...and a room recycled after its first life and created again, in scrambled order. */
    ev = ev_of(EV_ROOM_CREATED, T0 + 200);
    ev.room = STR("ROOM09");
    ev.device = STR("dev-5");
    ah_xadd(h, &ev, NULL, 0);
    ev = ev_of(EV_ROOM_RECYCLED, T0 + 150);
    ev.room = STR("ROOM09");
    ah_xadd(h, &ev, NULL, 0);
    ev = ev_of(EV_ROOM_CREATED, T0 + 1);
    ev.room = STR("ROOM09");
    ev.device = STR("dev-9");
    ah_xadd(h, &ev, NULL, 0);

    struct ah_archiver a;
    ah_start(h, &a, "order-1", NULL);
    ah_wait_drained(h, AH_WAIT_MS);

    ah_expect(h,
              "dev-9|old name|10.1.1.1|ROOM09|2024-11-25 15:53:20.010|2024-11-25 15:53:20.050|"
              "replaced",
              "SELECT CONCAT_WS('|', device_id, identity, client_ip, room_id, connected_at, "
              "disconnected_at, disconnect_reason) FROM connections WHERE conn_id = 'node-b#7'");
    ah_expect(h, "new name|2024-11-25 15:53:20.100|2|2024-11-25 15:53:20.010|ROOM09",
              "SELECT CONCAT_WS('|', identity, last_connected_at, connect_count, first_seen_at, "
              "last_room_id) FROM devices WHERE device_id = 'dev-9'");
    ah_expect(h, "2024-11-25 15:53:20.200|dev-5|2024-11-25 15:53:20.150",
              "SELECT CONCAT_WS('|', created_at, created_by_device, recycled_at) FROM rooms");
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
}

/* The dead letter of original entry `orig` has dead_reason containing `reason`. */
static void expect_dead_letter(struct arch_harness *h, const char *orig, const char *reason,
                               const char *field, const char *value) {
    redisReply *r = ah_redis(h, "XRANGE %s - +", KEYS_DEAD_LETTER);
    assert_non_null(r);
    int found = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *f = r->element[i]->element[1];
        const char *id = NULL, *why = NULL, *v = NULL;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (strcmp(f->element[k]->str, "original_id") == 0)
                id = f->element[k + 1]->str;
            else if (strcmp(f->element[k]->str, "dead_reason") == 0)
                why = f->element[k + 1]->str;
            else if (field && strcmp(f->element[k]->str, field) == 0)
                v = f->element[k + 1]->str;
        }
        if (!id || strcmp(id, orig) != 0)
            continue;
        found = 1;
        if (!why || !strstr(why, reason))
            fail_msg("dead letter of %s has reason '%s', expected '%s'", orig, why ? why : "",
                     reason);
        if (field && (!v || strcmp(v, value) != 0))
            fail_msg("dead letter of %s lacks original field %s=%s", orig, field, value);
    }
    freeReplyObject(r);
    if (!found)
        fail_msg("no dead letter for %s", orig);
}

static void test_poison_entries_are_dead_lettered(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_poison");
    /* Let the archiver create the schema, then narrow a column so that MySQL itself rejects one
     * row that passes the archiver's own checks. */
    struct ah_archiver a;
    ah_start(h, &a, "poison-1", NULL);
    ah_wait_int(h, 1, AH_WAIT_MS, "SELECT COUNT(*) FROM schema_migrations");
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
    ah_exec(h, "ALTER TABLE room_queries MODIFY node VARCHAR(4) NULL");

    char good1[48], good2[48], good3[48], v2[48], nobody[48], seq0[48], longdev[48], badutf[48],
        rejected[48];
    ah_xadd_messages(h, 1, 1, 1, 0); /* room R0 */
    char r0[KEYS_MAX];
    ah_events_key(h, "R0", r0, sizeof(r0));
    redisReply *r = ah_redis(h, "XREVRANGE %s + - COUNT 1", r0);
    snprintf(good1, sizeof(good1), "%u/%s", keys_event_shard("R0", 2, ah_shards(h)),
             r->element[0]->element[0]->str);
    freeReplyObject(r);

    const char *n_v2[] = {"v", "type", "ts"};
    const char *v_v2[] = {"2", "message", "1"};
    ah_xadd_raw(h, 3, n_v2, v_v2, NULL, v2, sizeof(v2));

    const char *n_nb[] = {"v", "type", "ts", "room", "device", "seq", "kind"};
    const char *v_nb[] = {"1", "message", "1732550000000", "R1", "dev", "5", "text"};
    ah_xadd_raw(h, 7, n_nb, v_nb, NULL, nobody, sizeof(nobody));

    /* complete, but seq 0: rooms count from 1, and re-encoding would drop it */
    const char *n_s0[] = {"v", "type", "ts", "room", "device", "seq", "kind", "body"};
    const char *v_s0[] = {"1", "message", "1732550000000", "R1", "dev", "0", "text", "{}"};
    ah_xadd_raw(h, 8, n_s0, v_s0, NULL, seq0, sizeof(seq0));

    char dev[201];
    memset(dev, 'd', 200);
    dev[200] = '\0';
    struct rrm_event ev = ev_of(EV_QUERY, T0);
    ev.room = STR("R1");
    ev.device = (struct event_str){dev, 200};
    ev.total = 1;
    ah_xadd(h, &ev, longdev, sizeof(longdev));

    ev.device = STR("dev");
    ev.room = STR("R\xff");
    ah_xadd(h, &ev, badutf, sizeof(badutf));

    ev.room = STR("R1");
    ev.node = STR("n1");
    ah_xadd(h, &ev, good2, sizeof(good2));
    ev.node = STR("node-too-long");
    ah_xadd(h, &ev, rejected, sizeof(rejected));
    ev.node = STR("n2");
    ah_xadd(h, &ev, good3, sizeof(good3));
    ah_xadd_messages(h, 2, 1, 1, 0);

    ah_start(h, &a, "poison-2", NULL);
    ah_wait_drained(h, AH_WAIT_MS);
    assert_int_equal(ah_redis_int(h, "XLEN %s", KEYS_DEAD_LETTER), 6);
    expect_dead_letter(h, v2, "version", "v", "2");
    expect_dead_letter(h, nobody, "without body", "seq", "5");
    expect_dead_letter(h, seq0, "seq 0", "seq", "0");
    expect_dead_letter(h, longdev, "device too long", "total", "1");
    expect_dead_letter(h, badutf, "invalid UTF-8 in room", NULL, NULL);
    expect_dead_letter(h, rejected, "1406", "node", "node-too-long");
    ah_expect(h, "2", "SELECT COUNT(*) FROM messages");
    ah_expect(h, "n1,n2", "SELECT GROUP_CONCAT(node ORDER BY node) FROM room_queries");
    assert_int_equal(ah_log_count(&a, "MySQL rejected a batch, isolating the row") > 0, 1);
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
    (void)good1;
}

static void test_schema_and_migrations(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_schema");
    struct ah_archiver a;
    ah_start(h, &a, "schema-1", NULL);
    ah_wait_int(h, 1, AH_WAIT_MS,
                "SELECT COUNT(*) FROM schema_migrations WHERE version = 1 AND "
                "name = 'init'");
    ah_wait_log(h, &a, "\"archiving\"", 1, AH_WAIT_MS);
    assert_int_equal(ah_log_count(&a, "schema migration applied"), 2);
    ah_expect(h, "1:init 2:sharded_event_ids",
              "SELECT GROUP_CONCAT(CONCAT(version, ':', name) ORDER BY version SEPARATOR ' ') "
              "FROM schema_migrations");
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);

    /* A second start finds nothing to apply. */
    ah_start(h, &a, "schema-2", NULL);
    ah_wait_log(h, &a, "\"archiving\"", 1, AH_WAIT_MS);
    assert_int_equal(ah_log_count(&a, "schema migration applied"), 0);
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);

    /* sql/schema.sql creates exactly what the migrations create. */
    const char *src = getenv("RRM_SOURCE_DIR");
    assert_non_null(src);
    char path[1024];
    snprintf(path, sizeof(path), "%s/sql/schema.sql", src);
    assert_int_equal(mariadb_server_exec(ah_db(h),
                                         "DROP DATABASE IF EXISTS " MARIADB_SERVER_DATABASE
                                         "; CREATE DATABASE " MARIADB_SERVER_DATABASE),
                     0);
    assert_int_equal(mariadb_server_exec_file(ah_db(h), path), 0);
    const char *columns =
        "SELECT GROUP_CONCAT(CONCAT_WS(':', TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, "
        "COALESCE(COLLATION_NAME, '-'), COLUMN_KEY) ORDER BY TABLE_NAME, ORDINAL_POSITION "
        "SEPARATOR ' ') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '%s'";
    const char *indexes =
        "SELECT GROUP_CONCAT(CONCAT_WS(':', TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, "
        "COLUMN_NAME) ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX SEPARATOR ' ') "
        "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '%s'";
    ah_exec(h, "SET SESSION group_concat_max_len = 1000000");
    char *migrated = ah_str(h, columns, "arch_schema");
    ah_expect(h, migrated, columns, MARIADB_SERVER_DATABASE);
    free(migrated);
    migrated = ah_str(h, indexes, "arch_schema");
    ah_expect(h, migrated, indexes, MARIADB_SERVER_DATABASE);
    free(migrated);

    /* The seed's key fields, and the limits the archiver checks before writing. */
    ah_expect(h, "9",
              "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
              "'arch_schema' AND CONCAT(TABLE_NAME, '.', COLUMN_NAME) IN ('rooms.room_id', "
              "'rooms.created_at', 'devices.device_id', 'devices.last_connected_at', "
              "'connections.client_ip', 'connections.connected_at', "
              "'messages.from_device_id', 'messages.message_content', "
              "'room_queries.queried_at')");
    struct {
        const char *table, *column;
        long max;
    } limits[] = {
        {"rooms", "room_id", ARCH_ROOM_ID_MAX},
        {"messages", "room_id", ARCH_ROOM_ID_MAX},
        {"devices", "device_id", ARCH_DEVICE_ID_MAX},
        {"messages", "from_device_id", ARCH_DEVICE_ID_MAX},
        {"connections", "conn_id", ARCH_CONN_ID_MAX},
        {"connections", "client_ip", ARCH_IP_MAX},
        {"connections", "identity", ARCH_IDENTITY_MAX},
        {"connections", "disconnect_reason", ARCH_REASON_MAX},
        {"messages", "node", ARCH_NODE_MAX},
        {"messages", "message_type", ARCH_KIND_MAX},
        {"room_events", "action", ARCH_ACTION_MAX},
        {"messages", "event_id", ARCH_EVENT_ID_MAX},
        {"rooms", "created_event_id", ARCH_EVENT_ID_MAX},
        {"rooms", "recycled_event_id", ARCH_EVENT_ID_MAX},
        {"connections", "event_id", ARCH_EVENT_ID_MAX},
        {"connections", "disconnect_event_id", ARCH_EVENT_ID_MAX},
        {"room_queries", "event_id", ARCH_EVENT_ID_MAX},
        {"room_events", "event_id", ARCH_EVENT_ID_MAX},
        {"messages", "message_content", ARCH_BODY_MAX},
    };
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        char want[32];
        snprintf(want, sizeof(want), "%ld", limits[i].max);
        ah_expect(h, want,
                  "SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS WHERE "
                  "TABLE_SCHEMA = 'arch_schema' AND TABLE_NAME = '%s' AND COLUMN_NAME = '%s'",
                  limits[i].table, limits[i].column);
    }
}

static void test_backlog_warning(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_backlog");
    /* 1500 entries of 3 rooms waiting against a cap of 1000, 63 per shard: more than half of a
     * shard's outage buffer is used. */
    ah_xadd_messages(h, 1, 1500, 3, 0);
    const char *small_cap[] = {"RRM_STREAM_MAXLEN=1000", NULL};
    struct ah_archiver a;
    ah_start(h, &a, "backlog-1", small_cap);
    ah_wait_log(h, &a, "archive backlog approaching the stream cap", 1, AH_WAIT_MS);
    ah_wait_drained(h, AH_WAIT_MS);
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
    /* The archiver itself never trims the stream. */
    assert_int_equal(ah_events_len(h), 1500);
}

/* Runs the archiver with one bad setting; it must exit 2 with one line naming the variable. */
static void expect_config_error(struct arch_harness *h, const char *setting, const char *variable) {
    char log[600];
    ah_log_path(h, "config", log, sizeof(log));
    const char *env[] = {setting, NULL};
    const char *argv[] = {ah_bin(h), NULL};
    pid_t pid = proc_spawn(argv, env, log);
    assert_true(pid > 0);
    int status = -1;
    assert_int_equal(proc_wait_exit(pid, 10000, &status), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    char *out = ah_read_file(log);
    assert_non_null(out);
    if (!strstr(out, variable))
        fail_msg("error for %s does not name %s: %s", setting, variable, out);
    char *nl = strchr(out, '\n');
    assert_true(nl && nl[1] == '\0'); /* exactly one line */
    free(out);
}

static void test_config_errors(void **state) {
    struct arch_harness *h = *state;
    expect_config_error(h, "RRM_BATCH_SIZE=0", "RRM_BATCH_SIZE");
    expect_config_error(h, "RRM_MYSQL_POOL_SIZE=many", "RRM_MYSQL_POOL_SIZE");
    expect_config_error(h, "RRM_MYSQL_DATABASE=bad-name;", "RRM_MYSQL_DATABASE");
    expect_config_error(h, "RRM_LOG_LEVEL=loud", "RRM_LOG_LEVEL");
    expect_config_error(h, "RRM_REDIS_PORT=70000", "RRM_REDIS_PORT");

    char log[600];
    snprintf(log, sizeof(log), "%s/help.log", ah_dir(h));
    const char *argv[] = {ah_bin(h), "--help", NULL};
    pid_t pid = proc_spawn(argv, NULL, log);
    int status = -1;
    assert_int_equal(proc_wait_exit(pid, 10000, &status), 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *out = ah_read_file(log);
    const char *vars[] = {
        "RRM_REDIS_HOST",      "RRM_REDIS_PORT",    "RRM_REDIS_PASSWORD",     "RRM_MYSQL_HOST",
        "RRM_MYSQL_PORT",      "RRM_MYSQL_USER",    "RRM_MYSQL_PASSWORD",     "RRM_MYSQL_DATABASE",
        "RRM_MYSQL_POOL_SIZE", "RRM_BATCH_SIZE",    "RRM_FLUSH_MS",           "RRM_CONSUMER",
        "RRM_GROUP",           "RRM_CLAIM_IDLE_MS", "RRM_STATUS_INTERVAL_MS", "RRM_LOG_LEVEL"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        if (!strstr(out, vars[i]))
            fail_msg("--help does not list %s", vars[i]);
    free(out);
}

/* ---- analytics ---- */

struct named_query {
    char name[64];
    char *sql;
};

/* Splits sql/analytics.sql at its "-- name:" lines. Returns the count; caller frees each sql. */
static size_t load_analytics(struct named_query *q, size_t cap) {
    const char *src = getenv("RRM_SOURCE_DIR");
    assert_non_null(src);
    char path[1024];
    snprintf(path, sizeof(path), "%s/sql/analytics.sql", src);
    char *text = ah_read_file(path);
    assert_non_null(text);
    size_t n = 0;
    char *p = strstr(text, "\n-- name:");
    while (p) {
        assert_true(n < cap);
        p += strlen("\n-- name:");
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " \r\n");
        snprintf(q[n].name, sizeof(q[n].name), "%.*s", (int)len, p);
        char *next = strstr(p, "\n-- name:");
        size_t body = next ? (size_t)(next - p) : strlen(p);
        q[n].sql = strndup(p + len, body - len);
        /* drop the trailing ';' so the text runs as one statement */
        char *semi = strrchr(q[n].sql, ';');
        assert_non_null(semi);
        *semi = '\0';
        n++;
        p = next;
    }
    free(text);
    return n;
}

/* Runs a named query and returns all rows as "a|b|c" lines joined by '\n' (caller frees). */
static char *run_named(struct arch_harness *h, const struct named_query *q, size_t n,
                       const char *name) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(q[i].name, name) != 0)
            continue;
        MYSQL_RES *res = ah_query(h, q[i].sql, 0, NULL);
        if (!res)
            fail_msg("analytics query %s failed", name);
        size_t cap = 4096, len = 0;
        char *out = calloc(1, cap);
        unsigned int cols = mysql_num_fields(res);
        MYSQL_ROW row;
        while ((row = mysql_fetch_row(res))) {
            for (unsigned int c = 0; c < cols; c++) {
                const char *v = row[c] ? row[c] : "NULL";
                len += (size_t)snprintf(out + len, cap - len, "%s%s", c ? "|" : "", v);
            }
            len += (size_t)snprintf(out + len, cap - len, "\n");
        }
        mysql_free_result(res);
        return out;
    }
    fail_msg("no query named %s in sql/analytics.sql", name);
    return NULL;
}

static void expect_rows(struct arch_harness *h, const struct named_query *q, size_t n,
                        const char *name, const char *want) {
    char *got = run_named(h, q, n, name);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "%s\n--- want\n%s--- got\n%s", name, want, got);
        free(got);
        fail_msg("analytics query %s returned unexpected rows", name);
    }
    free(got);
}

#define HOUR10 1732528800000LL /* 2024-11-25 10:00:00 UTC */
#define MIN_MS 60000LL

static void connection(struct arch_harness *h, const char *conn, const char *device, int64_t from,
                       int64_t to) {
    struct rrm_event ev = ev_of(EV_CONNECT, from);
    ev.conn = (struct event_str){conn, strlen(conn)};
    ev.device = (struct event_str){device, strlen(device)};
    ah_xadd(h, &ev, NULL, 0);
    if (to) {
        ev = ev_of(EV_DISCONNECT, to);
        ev.conn = (struct event_str){conn, strlen(conn)};
        ev.device = (struct event_str){device, strlen(device)};
        ev.reason = STR("closed");
        ev.connected_at = from;
        ah_xadd(h, &ev, NULL, 0);
    }
}

static void message(struct arch_harness *h, const char *room, const char *device, int64_t at,
                    size_t size, int seq) {
    static const char filler[64] =
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    struct rrm_event ev = ev_of(EV_MESSAGE, at);
    ev.room = (struct event_str){room, strlen(room)};
    ev.device = (struct event_str){device, strlen(device)};
    ev.kind = STR("text");
    ev.body = (struct event_str){filler, size};
    ev.seq = seq;
    ah_xadd(h, &ev, NULL, 0);
}

static void query(struct arch_harness *h, const char *room, const char *device, int64_t at,
                  int total) {
    struct rrm_event ev = ev_of(EV_QUERY, at);
    ev.room = (struct event_str){room, strlen(room)};
    ev.device = (struct event_str){device, strlen(device)};
    ev.total = total;
    ah_xadd(h, &ev, NULL, 0);
}

static void test_analytics_queries(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_analytics");
    /* The period is 10:00-11:00. Four known devices; d4 was only online before the period. */
    connection(h, "n#1", "d1", HOUR10, HOUR10 + 30 * MIN_MS);               /* 1800 s */
    connection(h, "n#2", "d2", HOUR10 + 10 * MIN_MS, HOUR10 + 20 * MIN_MS); /* 600 s */
    connection(h, "n#3", "d1", HOUR10 + 40 * MIN_MS, 0); /* open: 1200 s in period */
    connection(h, "n#4", "d3", HOUR10 - 10 * MIN_MS, HOUR10 + 5 * MIN_MS); /* 300 s in period */
    connection(h, "n#5", "d4", HOUR10 - 60 * MIN_MS, HOUR10 - 30 * MIN_MS);
    message(h, "R1", "d1", HOUR10 + 1000, 10, 1);
    message(h, "R1", "d2", HOUR10 + 2000, 20, 2);
    message(h, "R1", "d1", HOUR10 + 59999, 30, 3);
    message(h, "R1", "d1", HOUR10 + MIN_MS, 5, 4);
    message(h, "R2", "d3", HOUR10 + MIN_MS + 1, 7, 1);
    message(h, "R2", "d3", HOUR10 + MIN_MS + 2, 8, 2);
    message(h, "R2", "d1", HOUR10 + 60 * MIN_MS - 1, 9, 3);
    message(h, "R1", "d2", HOUR10 + 60 * MIN_MS, 11, 5); /* at @to: outside */
    message(h, "R3", "d2", HOUR10 - 1, 12, 1);           /* before @from: outside */
    query(h, "R1", "d1", HOUR10 + 5 * MIN_MS, 2);
    query(h, "R1", "d2", HOUR10 + 6 * MIN_MS, 3);
    query(h, "R2", "d3", HOUR10 + 7 * MIN_MS, 1);
    query(h, "R2", "d3", HOUR10 + 61 * MIN_MS, 1); /* outside */

    struct ah_archiver a;
    ah_start(h, &a, "analytics-1", NULL);
    ah_wait_drained(h, AH_WAIT_MS);
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);

    struct named_query q[16];
    size_t n = load_analytics(q, 16);
    assert_int_equal(n, 9);
    ah_exec(h, "SET @from = '2024-11-25 10:00:00', @to = '2024-11-25 11:00:00'");

    expect_rows(h, q, n, "message_throughput_per_minute",
                "2024-11-25 10:00|3|60\n"
                "2024-11-25 10:01|3|20\n"
                "2024-11-25 10:59|1|9\n");
    expect_rows(h, q, n, "message_throughput_per_room",
                "R1|4|65|2|0.067|2024-11-25 10:00:01.000|2024-11-25 10:01:00.000\n"
                "R2|3|24|2|0.050|2024-11-25 10:01:00.001|2024-11-25 10:59:59.999\n");
    expect_rows(h, q, n, "busiest_rooms", "R1|4|2|2\nR2|3|2|1\n");
    /* 3 of 4 devices online; (1800 + 600 + 1200 + 300) s of 4 x 3600 s */
    expect_rows(h, q, n, "device_online_rate", "4|3|0.7500|3900.000|0.2708\n");
    expect_rows(h, q, n, "device_online_time",
                "d1|2|3000.000|0.8333\n"
                "d2|1|600.000|0.1667\n"
                "d3|1|300.000|0.0833\n");
    expect_rows(h, q, n, "connection_durations", "2|1200.000|600.000|1800.000\n");
    expect_rows(h, q, n, "connection_durations_per_device",
                "d1|1|1800.000|1800.000\n"
                "d2|1|600.000|600.000\n");
    expect_rows(h, q, n, "connection_duration_histogram", "3: 5-30 min|1\n4: 30 min-2 h|1\n");
    expect_rows(h, q, n, "room_query_frequency", "R1|2|2|2.000|2.50\nR2|1|1|1.000|1.00\n");
    for (size_t i = 0; i < n; i++)
        free(q[i].sql);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_every_type_lands),
        cmocka_unit_test(test_merges_are_order_independent),
        cmocka_unit_test(test_poison_entries_are_dead_lettered),
        cmocka_unit_test(test_schema_and_migrations),
        cmocka_unit_test(test_backlog_warning),
        cmocka_unit_test(test_analytics_queries),
    };
    return cmocka_run_group_tests(tests, ah_setup, ah_teardown);
}
