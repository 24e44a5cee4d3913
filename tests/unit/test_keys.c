/* Unit tests for the Redis key and channel names in shared/keys.c: hash-tagged layout and
 * buffer bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "keys.h"

#include <stdio.h>
#include <string.h>

typedef int (*key_fn)(char *buf, size_t cap, const char *id);

/* Room keys in shard 8 (keys_room_shard("ROOM42", 16) is 8). */
static int room_8(char *b, size_t c, const char *id) {
    return keys_room(b, c, 8, id);
}
static int members_8(char *b, size_t c, const char *id) {
    return keys_room_members(b, c, 8, id);
}
static int channel_8(char *b, size_t c, const char *id) {
    return keys_room_channel(b, c, 8, id);
}
static int history_8(char *b, size_t c, const char *id) {
    return keys_room_history(b, c, 8, id);
}

static const struct {
    const char *what;
    key_fn fn;
    const char *id;
    const char *want;
    const char *tag; /* what the hash tag holds */
} cases[] = {
    {"room", room_8, "ROOM42", "rrm:room:{8}:ROOM42", "8"},
    {"room members", members_8, "ROOM42", "rrm:room:{8}:ROOM42:members", "8"},
    {"room channel", channel_8, "ROOM42", "rrm:room:{8}:ROOM42:ch", "8"},
    {"room history", history_8, "ROOM42", "rrm:room:{8}:ROOM42:history", "8"},
    {"device", keys_device, "dev-1@x.y", "rrm:device:{dev-1@x.y}", "dev-1@x.y"},
    {"node conns", keys_node_conns, "node-a", "rrm:node:{node-a}:conns", "node-a"},
    {"node version", keys_node_version, "node-a", "rrm:node:{node-a}:version", "node-a"},
    {"node channel", keys_node_channel, "node-a", "rrm:node:{node-a}:ch", "node-a"},
    {"node reaper", keys_node_reaper, "node-a", "rrm:node:{node-a}:reaper", "node-a"},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void test_names(void **state) {
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        char buf[KEYS_MAX];
        int n = cases[i].fn(buf, sizeof(buf), cases[i].id);
        assert_int_equal(n, (int)strlen(cases[i].want));
        assert_string_equal(buf, cases[i].want);
    }
    assert_int_equal(keys_room_shard("ROOM42", 16), 8);
    assert_int_equal(keys_room_shard("ROOM42", 16), keys_event_shard("ROOM42", 6, 16));
    char buf[KEYS_MAX];
    assert_int_equal(keys_empty_rooms(buf, sizeof(buf), 15), 20);
    assert_string_equal(buf, "rrm:rooms:empty:{15}");
    assert_int_equal(keys_rooms(buf, sizeof(buf), 15), 14);
    assert_string_equal(buf, "rrm:rooms:{15}");
}

static void test_hash_tag(void **state) {
    (void)state;
    /* Redis Cluster hashes only what is between the first '{' and the next '}': a room's keys
     * carry its shard there (the tag of the shard's events stream), the others their id. */
    for (size_t i = 0; i < NCASES; i++) {
        char buf[KEYS_MAX];
        assert_true(cases[i].fn(buf, sizeof(buf), cases[i].id) > 0);
        const char *open = strchr(buf, '{');
        assert_non_null(open);
        const char *close = strchr(open, '}');
        assert_non_null(close);
        assert_int_equal((size_t)(close - open - 1), strlen(cases[i].tag));
        assert_memory_equal(open + 1, cases[i].tag, strlen(cases[i].tag));
    }
}

static void test_exact_fit_and_too_small(void **state) {
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        size_t len = strlen(cases[i].want);
        char buf[KEYS_MAX];
        /* len + 1 bytes (for the NUL) is enough... */
        memset(buf, '#', sizeof(buf));
        assert_int_equal(cases[i].fn(buf, len + 1, cases[i].id), (int)len);
        assert_string_equal(buf, cases[i].want);
        /* ...one less is not, and nothing is written past cap. */
        memset(buf, '#', sizeof(buf));
        assert_int_equal(cases[i].fn(buf, len, cases[i].id), -1);
        assert_int_equal(buf[len], '#');
        assert_int_equal(cases[i].fn(buf, 1, cases[i].id), -1);
        assert_int_equal(cases[i].fn(buf, 0, cases[i].id), -1);
    }
}

static void test_longest_ids_fit_keys_max(void **state) {
    (void)state;
    /* KEYS_MAX must hold keys built from the longest valid ids (128-byte device ids). */
    char id[129];
    memset(id, 'x', 128);
    id[128] = '\0';
    for (size_t i = 0; i < NCASES; i++) {
        char buf[KEYS_MAX];
        assert_true(cases[i].fn(buf, sizeof(buf), id) > 0);
    }
}

static void test_ack_key(void **state) {
    (void)state;
    char buf[KEYS_ACK_MAX];
    int n = keys_room_ack(buf, sizeof(buf), 8, "ROOM42", "dev:1", "m-7");
    assert_string_equal(buf, "rrm:room:{8}:ROOM42:ack:dev:1/m-7");
    assert_int_equal(n, (int)strlen(buf));
    assert_int_equal(keys_room_ack(buf, (size_t)n, 8, "ROOM42", "dev:1", "m-7"), -1);
    /* the longest room (64), device (128) and ack_id (64) fit KEYS_ACK_MAX, in shard 1023 */
    char room[65], dev[129], ack[65];
    memset(room, 'r', 64);
    room[64] = '\0';
    memset(dev, 'd', 128);
    dev[128] = '\0';
    memset(ack, 'a', 64);
    ack[64] = '\0';
    assert_true(keys_room_ack(buf, sizeof(buf), 1023, room, dev, ack) > 0);
}

static void test_event_shard_is_fnv1a(void **state) {
    (void)state;
    /* The published FNV-1a 32-bit vectors: "" 0x811c9dc5, "a" 0xe40c292c, "foobar" 0xbf9cf968.
     * With 0xffffffff shards the shard is the hash itself (none of these hashes is that value). */
    assert_int_equal(keys_event_shard("", 0, 0xffffffffu), 0x811c9dc5u);
    assert_int_equal(keys_event_shard("a", 1, 0xffffffffu), 0xe40c292cu);
    assert_int_equal(keys_event_shard("foobar", 6, 0xffffffffu), 0xbf9cf968u);
    /* Values this function must keep forever (computed with an independent implementation):
     * FNV-1a("ROOM42") = 0xcbbc00a8, "lobby" = 0x1c5a0ed3, "room-1" = 0xbe84ce8c. */
    assert_int_equal(keys_event_shard("ROOM42", 6, 16), 8);
    assert_int_equal(keys_event_shard("ROOM42", 6, 1024), 168);
    assert_int_equal(keys_event_shard("lobby", 5, 16), 3);
    assert_int_equal(keys_event_shard("lobby", 5, 1024), 723);
    assert_int_equal(keys_event_shard("room-1", 6, 16), 12);
    assert_int_equal(keys_event_shard("room-2", 6, 16), 5);
    assert_int_equal(keys_event_shard("room-3", 6, 16), 2);
    assert_int_equal(keys_event_shard("room-3", 6, 7), 0);
    /* One shard: everything in shard 0; only len bytes count. */
    assert_int_equal(keys_event_shard("ROOM42", 6, 1), 0);
    assert_int_equal(keys_event_shard("ROOM42xyz", 6, 1024), 168);
    /* Bytes above 0x7f are taken unsigned. */
    assert_int_equal(keys_event_shard("\xff", 1, 0xffffffffu), (0x811c9dc5u ^ 0xffu) * 16777619u);
}

static void test_events_key(void **state) {
    (void)state;
    char buf[KEYS_MAX];
    assert_int_equal(keys_events(buf, sizeof(buf), 0), 14);
    assert_string_equal(buf, "rrm:events:{0}");
    assert_int_equal(keys_events(buf, sizeof(buf), 1023), 17);
    assert_string_equal(buf, "rrm:events:{1023}");
    /* the hash tag is exactly {N}: the shard's slot is the slot of "N" */
    for (unsigned n = 0; n < KEYS_EVENT_SHARDS_MAX; n++) {
        char want[16];
        snprintf(want, sizeof(want), "%u", n);
        assert_true(keys_events(buf, sizeof(buf), n) > 0);
        const char *open = strchr(buf, '{');
        assert_non_null(open);
        const char *close = strchr(open, '}');
        assert_non_null(close);
        assert_int_equal((size_t)(close - open - 1), strlen(want));
        assert_memory_equal(open + 1, want, strlen(want));
        assert_string_equal(close + 1, "");
        /* and it is not the legacy stream nor the dead letters */
        assert_string_not_equal(buf, KEYS_EVENTS);
        assert_string_not_equal(buf, KEYS_DEAD_LETTER);
    }
    /* exact fit and too small */
    assert_int_equal(keys_events(buf, 15, 0), 14);
    assert_int_equal(keys_events(buf, 14, 0), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_hash_tag),
        cmocka_unit_test(test_exact_fit_and_too_small),
        cmocka_unit_test(test_longest_ids_fit_keys_max),
        cmocka_unit_test(test_ack_key),
        cmocka_unit_test(test_event_shard_is_fnv1a),
        cmocka_unit_test(test_events_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
