/* Unit tests for shared/slots.c: CRC16 and key slots, MOVED/ASK parsing and the slot table built
 * from CLUSTER SLOTS replies.
 *
 * The expected slots, redirection errors and CLUSTER SLOTS replies below were measured on real
 * redis-server 7.0.15 processes (Debian 12), not computed with this code:
 * - slots: `redis-cli -p P CLUSTER KEYSLOT <key>` on a cluster-enabled node (binary keys sent as
 *   raw RESP over a socket, as redis-cli cannot pass a NUL in an argument);
 * - the cluster: three nodes started with `redis-server --port P --cluster-enabled yes
 *   --cluster-config-file D/nodes.conf --dir D`, joined with `redis-cli --cluster create
 *   127.0.0.1:50539 127.0.0.1:41549 127.0.0.1:39173 --cluster-yes`; then one replica per master
 *   added (`redis-cli --cluster add-node ... --cluster-slave --cluster-master-id ID`) and 100 slots
 *   moved from the third master to the first (`redis-cli --cluster reshard ... --cluster-slots
 *   100`); the raw RESP of `CLUSTER SLOTS` (sent on a socket, the answer copied byte for byte;
 *   `redis-cli --no-raw CLUSTER SLOTS` shows the same tree) was taken at each stage, and once
 *   more after `CONFIG SET cluster-preferred-endpoint-type unknown-endpoint`;
 * - redirections: `GET foo` (slot 12182) sent to a node that does not own the slot, with the
 *   endpoint type ip, unknown-endpoint and hostname; ASK during `CLUSTER SETSLOT 12182
 *   MIGRATING/IMPORTING`; and a two-node cluster on ::1 (ports 45011/45013, `CLUSTER
 *   ADDSLOTSRANGE` and `CLUSTER MEET ::1 45013`). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "keys.h"
#include "slots.h"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <stdlib.h>
#include <string.h>

/* ---- CRC16 and key slots ---- */

/* The spec's definition, one bit at a time, to check the table-driven function against. */
static unsigned crc16_bitwise(const unsigned char *p, size_t len) {
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)p[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

static void test_crc16_spec_vector(void **state) {
    (void)state;
    assert_int_equal(slots_crc16("123456789", 9), 0x31C3);
    assert_int_equal(slots_crc16("", 0), 0);
    assert_int_equal(slots_crc16(NULL, 0), 0);
}

static void test_crc16_matches_bitwise_definition(void **state) {
    (void)state;
    unsigned char buf[512];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 7 + (i >> 3));
    /* every single byte (each table entry), then every prefix of a varied buffer */
    for (unsigned b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        assert_int_equal(slots_crc16(&c, 1), crc16_bitwise(&c, 1));
    }
    for (size_t n = 0; n <= sizeof(buf); n++)
        assert_int_equal(slots_crc16(buf, n), crc16_bitwise(buf, n));
}

static unsigned slot_of(const char *key) {
    return slots_of_key(key, strlen(key));
}

static void test_hash_tag_spec_examples(void **state) {
    (void)state;
    unsigned whole_crc = slots_crc16("foo{}{bar}", 10) & 16383;
    assert_int_equal(slot_of("{user1000}.following"), slot_of("user1000"));
    assert_int_equal(slot_of("{user1000}.followers"), slot_of("user1000"));
    assert_int_equal(slot_of("foo{}{bar}"), whole_crc);
    assert_int_not_equal(slot_of("foo{}{bar}"), slot_of("bar"));
    assert_int_equal(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    assert_int_equal(slot_of("foo{bar}{zap}"), slot_of("bar"));
    /* no '}' after the '{', or a '}' only before it: the whole key */
    assert_int_equal(slot_of("a{b"), slots_crc16("a{b", 3) & 16383);
    assert_int_equal(slot_of("b}{a"), slots_crc16("b}{a", 4) & 16383);
    /* the tag is taken from the first '{' even when a later one would give a longer tag */
    assert_int_equal(slot_of("x{ab}{abc}"), slot_of("ab"));
    /* only len bytes are read: a tag closed after len does not count */
    assert_int_equal(slots_of_key("k{ab}", 4), slots_crc16("k{ab", 4) & 16383);
}

/* Measured with CLUSTER KEYSLOT on redis-server 7.0.15 (see the top of the file). */
static const struct {
    const char *key;
    size_t len;
    unsigned slot;
} measured[] = {
    {"foo", 3, 12182},
    {"123456789", 9, 12739},
    {"user1000", 8, 3443},
    {"{user1000}.following", 20, 3443},
    {"{user1000}.followers", 20, 3443},
    {"foo{}{bar}", 10, 8363},
    {"{bar", 4, 4015},
    {"foo{{bar}}zap", 13, 4015},
    {"foo{bar}{zap}", 13, 5061},
    {"bar", 3, 5061},
    {"foo{bar}", 8, 5061},
    {"", 0, 0},
    {"{}", 2, 15257},
    {"{", 1, 4092},
    {"}", 1, 12090},
    {"}{a}", 4, 15495},
    {"a", 1, 15495},
    {"a{b", 3, 13340},
    {"a\0{b\xff}", 6, 13240},
    {"b\xff", 2, 13240},
    {"\0\0\0", 3, 0},
    {"R1", 2, 3759},
    {"ROOM42", 6, 13707},
    {"dev-1@x.y", 9, 3102},
    {"rrm:device:{dev-1@x.y}", 22, 3102},
    {"node-a", 6, 3099},
    {"rrm:node:{node-a}:conns", 23, 3099},
    {"rrm:node:{node-a}:ch", 20, 3099},
    {"rrm:events", 10, 15910},
    {"rrm:nodes", 9, 1088},
    {"rrm:rooms:empty", 15, 11046},
};

static void test_slots_measured_on_redis(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(measured) / sizeof(measured[0]); i++) {
        unsigned got = slots_of_key(measured[i].key, measured[i].len);
        if (got != measured[i].slot)
            print_error("key #%zu (%s): slot %u, Redis says %u\n", i, measured[i].key, got,
                        measured[i].slot);
        assert_int_equal(got, measured[i].slot);
    }
}

typedef int (*key_fn)(char *buf, size_t cap, const char *id);
typedef int (*room_fn)(char *buf, size_t cap, unsigned shard, const char *room);

static void test_keys_share_the_slot_of_their_tag(void **state) {
    (void)state;
    /* valid ids (proto_valid_id: [A-Za-z0-9_.:@-], up to 128 bytes) of various shapes */
    char longest[129];
    memset(longest, 'z', 128);
    longest[128] = '\0';
    const char *ids[] = {
        "R1",    "ROOM42", "dev-1@x.y",     "node-a",
        "a",     "0",      "a:b:c@d.e_f-g", "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        longest, "_",      "....",          "abcdefghijklmnopqrstuvwxyz0123456789"};
    const room_fn room_keys[] = {keys_room, keys_room_members, keys_room_channel,
                                 keys_room_history};
    const key_fn node_keys[] = {keys_node_conns, keys_node_channel, keys_node_reaper};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        unsigned want = slot_of(ids[i]);
        assert_int_equal(want, slots_crc16(ids[i], strlen(ids[i])) & 16383);
        char buf[KEYS_ACK_MAX], num[8], events[KEYS_MAX];
        /* a room's keys: the slot of its shard's events stream and empty-rooms set */
        unsigned shard = keys_room_shard(ids[i], 16);
        snprintf(num, sizeof(num), "%u", shard);
        assert_true(keys_events(events, sizeof(events), shard) > 0);
        unsigned room_slot = slot_of(num);
        assert_int_equal(slot_of(events), room_slot);
        assert_true(keys_empty_rooms(buf, sizeof(buf), shard) > 0);
        assert_int_equal(slot_of(buf), room_slot);
        assert_true(keys_rooms(buf, sizeof(buf), shard) > 0); /* the server API's room list */
        assert_int_equal(slot_of(buf), room_slot);
        for (size_t k = 0; k < sizeof(room_keys) / sizeof(room_keys[0]); k++) {
            assert_true(room_keys[k](buf, sizeof(buf), shard, ids[i]) > 0);
            assert_int_equal(slot_of(buf), room_slot);
        }
        assert_true(keys_room_ack(buf, sizeof(buf), shard, ids[i], "dev:1", "m-7") > 0);
        assert_int_equal(slot_of(buf), room_slot);
        /* the room, device and ack ids after the tag do not move the key */
        assert_true(keys_room_ack(buf, sizeof(buf), shard, ids[i], longest, "x") > 0);
        assert_int_equal(slot_of(buf), room_slot);
        assert_true(keys_device(buf, sizeof(buf), ids[i]) > 0);
        assert_int_equal(slot_of(buf), want);
        for (size_t k = 0; k < sizeof(node_keys) / sizeof(node_keys[0]); k++) {
            assert_true(node_keys[k](buf, sizeof(buf), ids[i]) > 0);
            assert_int_equal(slot_of(buf), want);
        }
    }
    /* and against Redis's own answer (measured) for a device and a node */
    char buf[KEYS_ACK_MAX];
    assert_true(keys_device(buf, sizeof(buf), "dev-1@x.y") > 0);
    assert_int_equal(slot_of(buf), 3102);
    assert_true(keys_node_conns(buf, sizeof(buf), "node-a") > 0);
    assert_int_equal(slot_of(buf), 3099);
}

/* ---- MOVED / ASK ---- */

static int parse(const char *err, struct slots_redirect *out) {
    memset(out, 0x5a, sizeof(*out));
    return slots_parse_redirect(err, strlen(err), out);
}

static void test_redirect_measured(void **state) {
    (void)state;
    struct slots_redirect r;
    /* the errors real Redis 7.0.15 nodes sent (see the top of the file), '-' removed as hiredis
     * does */
    assert_int_equal(parse("MOVED 12182 127.0.0.1:39173", &r), 0);
    assert_int_equal(r.kind, SLOTS_MOVED);
    assert_int_equal(r.slot, 12182);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 39173);

    assert_int_equal(parse("ASK 12182 127.0.0.1:50539", &r), 0);
    assert_int_equal(r.kind, SLOTS_ASK);
    assert_int_equal(r.slot, 12182);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 50539);

    /* unknown-endpoint: empty host, meaning the host of the connection that got the error */
    assert_int_equal(parse("MOVED 12182 :39173", &r), 0);
    assert_int_equal(r.kind, SLOTS_MOVED);
    assert_string_equal(r.host, "");
    assert_int_equal(r.port, 39173);

    /* an IPv6 node: the address's own colons, the port after the last one */
    assert_int_equal(parse("MOVED 12182 ::1:45013", &r), 0);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 45013);

    /* endpoint type hostname with no hostname set: Redis sends "?", passed on as it is */
    assert_int_equal(parse("MOVED 12182 ?:39173", &r), 0);
    assert_string_equal(r.host, "?");
}

static void test_redirect_forms(void **state) {
    (void)state;
    struct slots_redirect r;
    assert_int_equal(parse("MOVED 3999 [::1]:6380", &r), 0);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 6380);
    assert_int_equal(parse("ASK 0 [2001:db8::7]:1", &r), 0);
    assert_int_equal(r.kind, SLOTS_ASK);
    assert_int_equal(r.slot, 0);
    assert_string_equal(r.host, "2001:db8::7");
    assert_int_equal(r.port, 1);
    assert_int_equal(parse("MOVED 16383 redis-0.redis.svc.cluster.local:65535", &r), 0);
    assert_int_equal(r.slot, 16383);
    assert_string_equal(r.host, "redis-0.redis.svc.cluster.local");
    assert_int_equal(r.port, 65535);
    assert_int_equal(parse("MOVED 3999 :6380", &r), 0);
    assert_string_equal(r.host, "");
    assert_int_equal(r.port, 6380);

    /* binary safe: only len bytes are read (here the text goes on after them) */
    const char *longer = "MOVED 7 h:6380 trailing";
    assert_int_equal(slots_parse_redirect(longer, 14, &r), 0);
    assert_string_equal(r.host, "h");
    assert_int_equal(r.port, 6380);

    /* the longest host that fits (SLOTS_HOST_MAX - 1 bytes), with and without brackets */
    char err[600], host[SLOTS_HOST_MAX + 2];
    memset(host, 'h', sizeof(host));
    host[SLOTS_HOST_MAX - 1] = '\0';
    snprintf(err, sizeof(err), "MOVED 1 %s:2", host);
    assert_int_equal(parse(err, &r), 0);
    assert_int_equal(strlen(r.host), SLOTS_HOST_MAX - 1);
    snprintf(err, sizeof(err), "MOVED 1 [%s]:2", host);
    assert_int_equal(parse(err, &r), 0);
    assert_int_equal(strlen(r.host), SLOTS_HOST_MAX - 1);
    /* one byte more does not */
    host[SLOTS_HOST_MAX - 1] = 'h';
    host[SLOTS_HOST_MAX] = '\0';
    snprintf(err, sizeof(err), "MOVED 1 %s:2", host);
    assert_int_equal(parse(err, &r), -1);
    snprintf(err, sizeof(err), "MOVED 1 [%s]:2", host);
    assert_int_equal(parse(err, &r), -1);
}

static void test_redirect_refused(void **state) {
    (void)state;
    static const char *bad[] = {
        "",
        "MOVED",
        "MOVED ",
        "ASK",
        "ERR unknown command 'x'",
        "CLUSTERDOWN Hash slot not served",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CROSSSLOT Keys in request don't hash to the same slot",
        "moved 1 h:1",
        "MOVEDX 1 h:1",
        " MOVED 1 h:1",
        "MOVED  1 h:1",
        "MOVED 1  h:1",
        "MOVED 1 h:1 ",
        "MOVED 1 h:1\r\n",
        "MOVED 1",
        "MOVED 1 ",
        "MOVED 1 h",
        "MOVED 1 h:",
        "MOVED 1 :",
        "MOVED h:1",
        "MOVED 16384 h:1",
        "MOVED 99999 h:1",
        "MOVED 4294967297 h:1",
        "MOVED -1 h:1",
        "MOVED +1 h:1",
        "MOVED 1x h:1",
        "MOVED 1 h:0",
        "MOVED 1 h:65536",
        "MOVED 1 h:99999",
        "MOVED 1 h:4294973632",
        "MOVED 1 h:-1",
        "MOVED 1 h:+1",
        "MOVED 1 h:1x",
        "MOVED 1 h:0x10",
        "MOVED 1 h: 1",
        "MOVED 1 h h:1",
        "MOVED 1 h\th:1",
        "MOVED 1 []:1",
        "MOVED 1 [::1:1",
        "MOVED 1 ::1]:1",
        "MOVED 1 [::1]]:1",
        "MOVED 1 [::1]x:1",
        "ASK 1 h\x7f:1",
        "ASK 1 h\xc3\xa9:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct slots_redirect r;
        if (parse(bad[i], &r) != -1)
            print_error("accepted: \"%s\"\n", bad[i]);
        assert_int_equal(parse(bad[i], &r), -1);
    }
    /* a NUL inside the text */
    struct slots_redirect r;
    assert_int_equal(slots_parse_redirect("MOVED 1 h\0x:1", 13, &r), -1);
    assert_int_equal(slots_parse_redirect("MOVED 1 h:1\0", 12, &r), -1);
    /* the text cut short by len */
    assert_int_equal(slots_parse_redirect("MOVED 1 h:1", 10, &r), -1);
}

/* ---- the slot table ---- */

/* CLUSTER SLOTS of the three masters just after `redis-cli --cluster create`. */
static const char resp_3masters[] =
    "*3\r\n*3\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:50539\r\n$40\r\n"
    "d00073110f10a7022826be8e1b152af1d36b3e1a\r\n*0\r\n*3\r\n:5461\r\n:10922\r\n*4\r\n$9\r\n"
    "127.0.0.1\r\n:41549\r\n$40\r\n97db84d021b8085bcf58785f800a79b7c996ad79\r\n*0\r\n*3\r\n"
    ":10923\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:39173\r\n$40\r\n"
    "067b62382f9437d0486589213b5f1347e96f0ef0\r\n*0\r\n";

/* The same cluster with a replica per master and slots 10923-11022 moved to the first master:
 * it now appears in two ranges. */
static const char resp_resharded[] =
    "*4\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:50539\r\n$40\r\n"
    "d00073110f10a7022826be8e1b152af1d36b3e1a\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:52125\r\n"
    "$40\r\n051e2a07fe0a82503061bf035f32e48aec6fa45c\r\n*0\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n"
    "$9\r\n127.0.0.1\r\n:41549\r\n$40\r\n97db84d021b8085bcf58785f800a79b7c996ad79\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:50965\r\n$40\r\nc4dfe40681ea1ae75660b1511bde22266ad621bb\r\n"
    "*0\r\n*4\r\n:10923\r\n:11022\r\n*4\r\n$9\r\n127.0.0.1\r\n:50539\r\n$40\r\n"
    "d00073110f10a7022826be8e1b152af1d36b3e1a\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:52125\r\n"
    "$40\r\n051e2a07fe0a82503061bf035f32e48aec6fa45c\r\n*0\r\n*4\r\n:11023\r\n:16383\r\n*4\r\n"
    "$9\r\n127.0.0.1\r\n:39173\r\n$40\r\n067b62382f9437d0486589213b5f1347e96f0ef0\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:48389\r\n$40\r\n12c978b6cf6c05c51b2f9a7833d050d3446951ec\r\n"
    "*0\r\n";

/* The three masters with cluster-preferred-endpoint-type unknown-endpoint: NULL hosts, and the
 * ip in the node's metadata (element 4). */
static const char resp_unknown_endpoint[] =
    "*3\r\n*3\r\n:0\r\n:5460\r\n*4\r\n$-1\r\n:50539\r\n$40\r\n"
    "d00073110f10a7022826be8e1b152af1d36b3e1a\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*3\r\n"
    ":5461\r\n:10922\r\n*4\r\n$-1\r\n:41549\r\n$40\r\n"
    "97db84d021b8085bcf58785f800a79b7c996ad79\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*3\r\n"
    ":10923\r\n:16383\r\n*4\r\n$-1\r\n:39173\r\n$40\r\n"
    "067b62382f9437d0486589213b5f1347e96f0ef0\r\n*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n";

/* A two-master cluster on ::1. */
static const char resp_ipv6[] =
    "*2\r\n*3\r\n:0\r\n:8191\r\n*4\r\n$3\r\n::1\r\n:45011\r\n$40\r\n"
    "9c3c924c9f3dc32bda02fdf823b05ea7eabf5bf0\r\n*0\r\n*3\r\n:8192\r\n:16383\r\n*4\r\n$3\r\n"
    "::1\r\n:45013\r\n$40\r\naf14c034d743fd775349bc736273c314bee5ed46\r\n*0\r\n";

/* One reply from RESP text, through hiredis's own reader; the whole text must be one reply.
 * Caller frees with freeReplyObject. */
static redisReply *resp(const char *text, size_t len) {
    redisReader *rd = redisReaderCreate();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, text, len), REDIS_OK);
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    void *more = NULL;
    assert_int_equal(redisReaderGetReply(rd, &more), REDIS_OK);
    assert_null(more);
    redisReaderFree(rd);
    return reply;
}

static redisReply *resp_str(const char *text) {
    return resp(text, strlen(text));
}

static struct slots_table *table_new(void) {
    struct slots_table *t = malloc(sizeof(*t));
    assert_non_null(t);
    slots_table_init(t);
    return t;
}

/* t from the RESP text; asserts that it was accepted. */
static void load(struct slots_table *t, const char *text) {
    redisReply *r = resp_str(text);
    assert_int_equal(slots_table_from_reply(t, r), 0);
    freeReplyObject(r);
}

static void assert_range(const struct slots_table *t, unsigned from, unsigned to, int owner) {
    for (unsigned s = from; s <= to; s++)
        assert_int_equal(slots_table_owner(t, s), owner);
}

static void test_table_empty(void **state) {
    (void)state;
    struct slots_table *t = table_new();
    assert_int_equal(t->nnodes, 0);
    assert_range(t, 0, SLOTS_COUNT - 1, -1);
    assert_int_equal(slots_table_owner(t, SLOTS_COUNT), -1);
    assert_int_equal(slots_table_owner(t, 0xffffffffu), -1);
    /* a cluster with no slot assigned yet answers an empty array */
    load(t, "*0\r\n");
    assert_int_equal(t->nnodes, 0);
    assert_range(t, 0, SLOTS_COUNT - 1, -1);
    free(t);
}

static void test_table_three_masters(void **state) {
    (void)state;
    struct slots_table *t = table_new();
    load(t, resp_3masters);
    assert_int_equal(t->nnodes, 3);
    assert_string_equal(t->nodes[0].host, "127.0.0.1");
    assert_int_equal(t->nodes[0].port, 50539);
    assert_string_equal(t->nodes[1].host, "127.0.0.1");
    assert_int_equal(t->nodes[1].port, 41549);
    assert_string_equal(t->nodes[2].host, "127.0.0.1");
    assert_int_equal(t->nodes[2].port, 39173);
    assert_range(t, 0, 5460, 0);
    assert_range(t, 5461, 10922, 1);
    assert_range(t, 10923, 16383, 2);
    assert_int_equal(slots_table_owner(t, SLOTS_COUNT), -1);
    /* "foo" is slot 12182, which the cluster's MOVED sent to port 39173 */
    assert_int_equal(t->nodes[slots_table_owner(t, slot_of("foo"))].port, 39173);
    free(t);
}

static void test_table_resharded_with_replicas(void **state) {
    (void)state;
    struct slots_table *t = table_new();
    load(t, resp_3masters);
    /* a refresh replaces the whole table */
    load(t, resp_resharded);
    assert_int_equal(t->nnodes, 3); /* the first master once, though it has two ranges */
    assert_int_equal(t->nodes[0].port, 50539);
    assert_int_equal(t->nodes[1].port, 41549);
    assert_int_equal(t->nodes[2].port, 39173);
    assert_range(t, 0, 5460, 0);
    assert_range(t, 5461, 10922, 1);
    assert_range(t, 10923, 11022, 0);
    assert_range(t, 11023, 16383, 2);
    /* no replica became a node */
    for (unsigned i = 0; i < t->nnodes; i++)
        assert_true(t->nodes[i].port != 52125 && t->nodes[i].port != 50965 &&
                    t->nodes[i].port != 48389);
    free(t);
}

static void test_table_unknown_endpoint_and_ipv6(void **state) {
    (void)state;
    struct slots_table *t = table_new();
    load(t, resp_unknown_endpoint);
    assert_int_equal(t->nnodes, 3);
    for (unsigned i = 0; i < 3; i++)
        assert_string_equal(t->nodes[i].host, ""); /* the host the reply came from */
    assert_int_equal(t->nodes[2].port, 39173);
    assert_range(t, 10923, 16383, 2);
    /* an empty host string is the same thing */
    load(t, "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$0\r\n\r\n:7000\r\n");
    assert_int_equal(t->nnodes, 1);
    assert_string_equal(t->nodes[0].host, "");
    assert_int_equal(t->nodes[0].port, 7000);
    assert_range(t, 0, 16383, 0);

    load(t, resp_ipv6);
    assert_int_equal(t->nnodes, 2);
    assert_string_equal(t->nodes[0].host, "::1");
    assert_int_equal(t->nodes[0].port, 45011);
    assert_string_equal(t->nodes[1].host, "::1");
    assert_int_equal(t->nodes[1].port, 45013);
    assert_range(t, 0, 8191, 0);
    assert_range(t, 8192, 16383, 1);
    free(t);
}

static void test_table_partial_and_dedup(void **state) {
    (void)state;
    struct slots_table *t = table_new();
    /* slots not in any range stay unassigned; same host, other port is another master; same
     * host:port in several ranges is one master; ranges of one slot */
    load(t, "*4\r\n"
            "*3\r\n:100\r\n:100\r\n*2\r\n$1\r\na\r\n:1\r\n"
            "*3\r\n:200\r\n:299\r\n*2\r\n$1\r\na\r\n:2\r\n"
            "*3\r\n:16383\r\n:16383\r\n*2\r\n$1\r\na\r\n:1\r\n"
            "*3\r\n:0\r\n:0\r\n*2\r\n$1\r\nb\r\n:1\r\n");
    assert_int_equal(t->nnodes, 3);
    assert_string_equal(t->nodes[0].host, "a");
    assert_int_equal(t->nodes[0].port, 1);
    assert_string_equal(t->nodes[1].host, "a");
    assert_int_equal(t->nodes[1].port, 2);
    assert_string_equal(t->nodes[2].host, "b");
    assert_int_equal(t->nodes[2].port, 1);
    assert_int_equal(slots_table_owner(t, 0), 2);
    assert_range(t, 1, 99, -1);
    assert_int_equal(slots_table_owner(t, 100), 0);
    assert_range(t, 101, 199, -1);
    assert_range(t, 200, 299, 1);
    assert_range(t, 300, 16382, -1);
    assert_int_equal(slots_table_owner(t, 16383), 0);
    free(t);
}

static void test_table_max_masters(void **state) {
    (void)state;
    /* SLOTS_MASTERS_MAX masters of one slot each fit; one more is refused */
    for (unsigned n = SLOTS_MASTERS_MAX; n <= SLOTS_MASTERS_MAX + 1; n++) {
        size_t cap = 64 + (size_t)n * 64, len;
        char *text = malloc(cap);
        assert_non_null(text);
        len = (size_t)snprintf(text, cap, "*%u\r\n", n);
        for (unsigned i = 0; i < n; i++)
            len += (size_t)snprintf(text + len, cap - len,
                                    "*3\r\n:%u\r\n:%u\r\n*2\r\n$1\r\nh\r\n:%u\r\n", i, i, 1000 + i);
        redisReply *r = resp(text, len);
        struct slots_table *t = table_new();
        int rc = slots_table_from_reply(t, r);
        if (n == SLOTS_MASTERS_MAX) {
            assert_int_equal(rc, 0);
            assert_int_equal(t->nnodes, SLOTS_MASTERS_MAX);
            assert_int_equal(slots_table_owner(t, SLOTS_MASTERS_MAX - 1), SLOTS_MASTERS_MAX - 1);
            assert_int_equal(t->nodes[SLOTS_MASTERS_MAX - 1].port, 1000 + SLOTS_MASTERS_MAX - 1);
        } else {
            assert_int_equal(rc, -1);
            assert_int_equal(t->nnodes, 0);
        }
        freeReplyObject(r);
        free(t);
        free(text);
    }
}

static void test_table_malformed_leaves_table_unchanged(void **state) {
    (void)state;
    char longhost[512];
    memset(longhost, 0, sizeof(longhost));
    char host255[SLOTS_HOST_MAX];
    memset(host255, 'h', SLOTS_HOST_MAX - 1);
    host255[SLOTS_HOST_MAX - 1] = '\0';
    /* a host of SLOTS_HOST_MAX bytes: one too many */
    snprintf(longhost, sizeof(longhost), "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$%d\r\n%sh\r\n:1\r\n",
             SLOTS_HOST_MAX, host255);
    const char *bad[] = {
        /* not an array */
        "+OK\r\n",
        ":1\r\n",
        "$-1\r\n",
        "-ERR This instance has cluster support disabled\r\n",
        /* wrong types */
        "*1\r\n:0\r\n",
        "*1\r\n$1\r\nx\r\n",
        "*1\r\n*3\r\n$1\r\n0\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",    /* start a string */
        "*1\r\n*3\r\n:0\r\n$1\r\n5\r\n*2\r\n$1\r\nh\r\n:1\r\n",    /* end a string */
        "*1\r\n*3\r\n:0\r\n:5\r\n$1\r\nh\r\n",                     /* master not an array */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n:1\r\n:1\r\n",              /* host an integer */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n*0\r\n:1\r\n",              /* host an array */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n+h\r\n:1\r\n",              /* host a status */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n$4\r\n6379\r\n", /* port a string */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n$-1\r\n",        /* port null */
        /* missing parts */
        "*1\r\n*0\r\n",
        "*1\r\n*2\r\n:0\r\n:5\r\n",                  /* no master */
        "*1\r\n*3\r\n:0\r\n:5\r\n*1\r\n$1\r\nh\r\n", /* no port */
        "*1\r\n*3\r\n:0\r\n:5\r\n*0\r\n",            /* empty node */
        /* bad ranges */
        "*1\r\n*3\r\n:6\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",     /* start > end */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* slot > 16383 */
        "*1\r\n*3\r\n:16384\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:-1\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:9223372036854775807\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*2\r\n*3\r\n:0\r\n:10\r\n*2\r\n$1\r\nh\r\n:1\r\n"
        "*3\r\n:10\r\n:20\r\n*2\r\n$1\r\nh\r\n:2\r\n", /* overlap */
        /* bad ports */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:0\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:65536\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:-6379\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:4294973631\r\n",
        /* bad hosts */
        longhost,
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$3\r\nh h\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$2\r\n[]\r\n:1\r\n",
        /* a good range, then a bad one: nothing of the good one is kept */
        "*2\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n*3\r\n:7\r\n:6\r\n*2\r\n$1\r\nh\r\n:1\r\n",
    };
    struct slots_table *t = table_new(), *before = table_new();
    load(t, resp_resharded);
    memcpy(before, t, sizeof(*t));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *r = resp_str(bad[i]);
        int rc = slots_table_from_reply(t, r);
        if (rc != -1)
            print_error("accepted bad reply #%zu\n", i);
        assert_int_equal(rc, -1);
        assert_memory_equal(t, before, sizeof(*t));
        freeReplyObject(r);
    }
    /* a NUL inside the host */
    static const char nul_host[] = "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$3\r\nh\0h\r\n:1\r\n";
    redisReply *r = resp(nul_host, sizeof(nul_host) - 1);
    assert_int_equal(slots_table_from_reply(t, r), -1);
    assert_memory_equal(t, before, sizeof(*t));
    freeReplyObject(r);
    assert_int_equal(slots_table_from_reply(t, NULL), -1);
    assert_memory_equal(t, before, sizeof(*t));
    /* the longest host that fits is fine */
    char ok[512];
    snprintf(ok, sizeof(ok), "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$%d\r\n%s\r\n:1\r\n",
             SLOTS_HOST_MAX - 1, host255);
    load(t, ok);
    assert_string_equal(t->nodes[0].host, host255);
    free(t);
    free(before);
}

static void test_seed_list(void **state) {
    (void)state;
    const char *p = "127.0.0.1:7000,[::1]:7001,redis-0.redis:6379";
    struct slots_node n;
    assert_int_equal(slots_next_seed(&p, &n), 1);
    assert_string_equal(n.host, "127.0.0.1");
    assert_int_equal(n.port, 7000);
    assert_int_equal(slots_next_seed(&p, &n), 1);
    assert_string_equal(n.host, "::1");
    assert_int_equal(n.port, 7001);
    assert_int_equal(slots_next_seed(&p, &n), 1);
    assert_string_equal(n.host, "redis-0.redis");
    assert_int_equal(n.port, 6379);
    assert_int_equal(slots_next_seed(&p, &n), 0);
    const char *none = NULL, *empty = "";
    assert_int_equal(slots_next_seed(&none, &n), 0);
    assert_int_equal(slots_next_seed(&empty, &n), 0);
    const char *bad[] = {"host", ":7000", "h:0", "h:65536", "h:70x", "a:1,,b:2", "[]:1", "h:"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *q = bad[i];
        int r;
        while ((r = slots_next_seed(&q, &n)) > 0)
            ;
        if (r != -1)
            fail_msg("seed list \"%s\" accepted", bad[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_list),
        cmocka_unit_test(test_crc16_spec_vector),
        cmocka_unit_test(test_crc16_matches_bitwise_definition),
        cmocka_unit_test(test_hash_tag_spec_examples),
        cmocka_unit_test(test_slots_measured_on_redis),
        cmocka_unit_test(test_keys_share_the_slot_of_their_tag),
        cmocka_unit_test(test_redirect_measured),
        cmocka_unit_test(test_redirect_forms),
        cmocka_unit_test(test_redirect_refused),
        cmocka_unit_test(test_table_empty),
        cmocka_unit_test(test_table_three_masters),
        cmocka_unit_test(test_table_resharded_with_replicas),
        cmocka_unit_test(test_table_unknown_endpoint_and_ipv6),
        cmocka_unit_test(test_table_partial_and_dedup),
        cmocka_unit_test(test_table_max_masters),
        cmocka_unit_test(test_table_malformed_leaves_table_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
