/* Archiver decoding of stream entries: every event type round-trips through event_encode and
 * arch_row_decode, and malformed entries are refused with a reason (they go to the dead letters).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "batch.h"
#include "event.h"

#include <string.h>

#define S(lit) ((struct event_str){lit, sizeof(lit) - 1})

struct fields {
    const char *names[EVENT_MAX_FIELDS + 4];
    size_t name_lens[EVENT_MAX_FIELDS + 4];
    const char *values[EVENT_MAX_FIELDS + 4];
    size_t value_lens[EVENT_MAX_FIELDS + 4];
    size_t n;
    struct event_numbers nums;
};

static void encode(const struct rrm_event *ev, struct fields *f) {
    struct event_field out[EVENT_MAX_FIELDS];
    memset(f, 0, sizeof(*f));
    f->n = event_encode(ev, out, &f->nums);
    for (size_t i = 0; i < f->n; i++) {
        f->names[i] = out[i].name;
        f->name_lens[i] = strlen(out[i].name);
        f->values[i] = out[i].value;
        f->value_lens[i] = out[i].len;
    }
}

/* Replaces the value of name, or appends the pair. */
static void set_field(struct fields *f, const char *name, const char *value, size_t len) {
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->names[i], name) == 0) {
            f->values[i] = value;
            f->value_lens[i] = len;
            return;
        }
    }
    f->names[f->n] = name;
    f->name_lens[f->n] = strlen(name);
    f->values[f->n] = value;
    f->value_lens[f->n] = len;
    f->n++;
}

static void drop_field(struct fields *f, const char *name) {
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->names[i], name) == 0) {
            for (size_t k = i + 1; k < f->n; k++) {
                f->names[k - 1] = f->names[k];
                f->name_lens[k - 1] = f->name_lens[k];
                f->values[k - 1] = f->values[k];
                f->value_lens[k - 1] = f->value_lens[k];
            }
            f->n--;
            return;
        }
    }
}

static int decode(const struct fields *f, struct arch_row *row, char *err, size_t errlen) {
    err[0] = '\0';
    return arch_row_decode(row, "1732550000000-3", 15, f->names, f->name_lens, f->values,
                           f->value_lens, f->n, err, errlen);
}

static void assert_str(struct event_str got, struct event_str want) {
    if (!want.p) {
        assert_null(got.p);
        return;
    }
    assert_non_null(got.p);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.p, want.p, want.len);
}

static struct rrm_event base(enum event_type t) {
    struct rrm_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = t;
    ev.ts = 1732550000123LL;
    ev.node = S("node-a");
    return ev;
}

static void round_trip(const struct rrm_event *ev) {
    struct fields f;
    struct arch_row row;
    char err[200];
    encode(ev, &f);
    assert_int_equal(decode(&f, &row, err, sizeof(err)), 0);
    assert_int_equal(row.id_len, 15);
    assert_memory_equal(row.id, "1732550000000-3", 15);
    assert_int_equal(row.ev.type, ev->type);
    assert_true(row.ev.ts == ev->ts);
    assert_str(row.ev.node, ev->node);
    assert_str(row.ev.conn, ev->conn);
    assert_str(row.ev.device, ev->device);
    assert_str(row.ev.identity, ev->identity);
    assert_str(row.ev.ip, ev->ip);
    assert_str(row.ev.room, ev->room);
    assert_str(row.ev.action, ev->action);
    assert_str(row.ev.kind, ev->kind);
    assert_str(row.ev.reason, ev->reason);
    assert_str(row.ev.body, ev->body);
    assert_true(row.ev.seq == ev->seq);
    assert_true(row.ev.total == ev->total);
    assert_true(row.ev.connected_at == ev->connected_at);
}

static void test_each_type_round_trips(void **state) {
    (void)state;
    struct rrm_event ev = base(EV_CONNECT);
    ev.conn = S("node-a#1");
    ev.device = S("dev-1");
    ev.identity = S("m\xc3\xb3vil \xf0\x9f\x93\xb1 'quoted' \\");
    ev.ip = S("2001:db8::1");
    round_trip(&ev);

    ev = base(EV_ROOM);
    ev.conn = S("node-a#1");
    ev.device = S("dev-1");
    ev.room = S("ABC123");
    ev.action = S("rejoined");
    round_trip(&ev);

    ev = base(EV_MESSAGE);
    ev.conn = S("node-a#1");
    ev.device = S("dev-1");
    ev.room = S("ABC123");
    ev.kind = S("text");
    ev.body = S("{\"type\":\"text\",\"content\":\"hi\"}");
    ev.seq = 17;
    round_trip(&ev);

    ev.kind = S("binary");
    ev.body = S("\x00\xff\x00'\\\xc3");
    round_trip(&ev);

    ev = base(EV_QUERY);
    ev.conn = S("node-a#1");
    ev.device = S("dev-1");
    ev.room = S("ABC123");
    ev.total = 0; /* an empty count is still a count */
    round_trip(&ev);

    ev = base(EV_DISCONNECT);
    ev.conn = S("node-a#1");
    ev.device = S("dev-1");
    ev.reason = S("going away");
    ev.connected_at = 1732549990000LL;
    round_trip(&ev);

    ev = base(EV_ROOM_CREATED);
    ev.room = S("ABC123");
    ev.device = S("dev-1");
    round_trip(&ev);

    ev = base(EV_ROOM_RECYCLED);
    ev.room = S("ABC123");
    round_trip(&ev);
}

static void test_unknown_fields_ignored(void **state) {
    (void)state;
    struct rrm_event ev = base(EV_ROOM_RECYCLED);
    ev.room = S("R1");
    struct fields f;
    struct arch_row row;
    char err[200];
    encode(&ev, &f);
    set_field(&f, "future_field", "\xff\xfe", 2);
    assert_int_equal(decode(&f, &row, err, sizeof(err)), 0);
}

/* Encodes ev, applies one change, and expects a refusal whose reason contains want. */
static void expect_refused(const struct rrm_event *ev, const char *set_name, const char *value,
                           const char *drop_name, const char *want) {
    struct fields f;
    struct arch_row row;
    char err[200];
    encode(ev, &f);
    if (set_name)
        set_field(&f, set_name, value, strlen(value));
    if (drop_name)
        drop_field(&f, drop_name);
    assert_int_equal(decode(&f, &row, err, sizeof(err)), -1);
    if (!strstr(err, want))
        fail_msg("reason '%s' does not mention '%s'", err, want);
}

static void test_malformed_envelope(void **state) {
    (void)state;
    struct rrm_event ev = base(EV_ROOM_RECYCLED);
    ev.room = S("R1");
    expect_refused(&ev, NULL, NULL, "v", "version");
    expect_refused(&ev, "v", "2", NULL, "version");
    expect_refused(&ev, "type", "teleport", NULL, "type");
    expect_refused(&ev, NULL, NULL, "type", "type");
    expect_refused(&ev, NULL, NULL, "ts", "ts");
    expect_refused(&ev, "ts", "", NULL, "ts");
    expect_refused(&ev, "ts", "12a", NULL, "ts");
    expect_refused(&ev, "ts", "-5", NULL, "ts");
    expect_refused(&ev, "ts", "12345678901234567890", NULL, "ts");
    /* 19 digits above INT64_MAX must be refused, not overflow */
    expect_refused(&ev, "ts", "9999999999999999999", NULL, "ts");
    /* fits int64 but is past DATETIME */
    expect_refused(&ev, "ts", "9223372036854775807", NULL, "DATETIME");
}

static void test_missing_required_fields(void **state) {
    (void)state;
    struct rrm_event ev = base(EV_CONNECT);
    ev.conn = S("c#1");
    ev.device = S("d");
    expect_refused(&ev, NULL, NULL, "conn", "conn");
    expect_refused(&ev, NULL, NULL, "device", "device");
    expect_refused(&ev, "device", "", NULL, "empty device");

    ev = base(EV_ROOM);
    ev.device = S("d");
    ev.room = S("R");
    ev.action = S("joined");
    expect_refused(&ev, NULL, NULL, "action", "action");
    expect_refused(&ev, NULL, NULL, "room", "room");

    ev = base(EV_MESSAGE);
    ev.device = S("d");
    ev.room = S("R");
    ev.kind = S("text");
    ev.body = S("x");
    ev.seq = 3;
    expect_refused(&ev, NULL, NULL, "body", "body");
    expect_refused(&ev, NULL, NULL, "seq", "seq");
    expect_refused(&ev, NULL, NULL, "kind", "kind");
    expect_refused(&ev, "seq", "x1", NULL, "malformed number");
    expect_refused(&ev, "seq", "0", NULL, "seq 0"); /* dead-lettered, not archived as seq 0 */
    expect_refused(&ev, "seq", "9999999999999999999", NULL, "malformed number");
    expect_refused(&ev, "kind", "a-kind-longer-than-16", NULL, "kind too long");

    ev = base(EV_QUERY);
    ev.device = S("d");
    ev.room = S("R");
    ev.total = 2;
    expect_refused(&ev, NULL, NULL, "total", "total");
    expect_refused(&ev, "total", "99999999999", NULL, "total out of range");

    ev = base(EV_DISCONNECT);
    ev.conn = S("c#1");
    ev.reason = S("bye");
    expect_refused(&ev, NULL, NULL, "reason", "reason");
    expect_refused(&ev, NULL, NULL, "conn", "conn");
    expect_refused(&ev, "connected_at", "99999999999999999", NULL, "connected_at");

    ev = base(EV_ROOM_CREATED);
    ev.room = S("R");
    expect_refused(&ev, NULL, NULL, "room", "room");
}

static void test_values_that_do_not_fit(void **state) {
    (void)state;
    char long_room[ARCH_ROOM_ID_MAX + 2];
    memset(long_room, 'R', sizeof(long_room) - 1);
    long_room[sizeof(long_room) - 1] = '\0';
    struct rrm_event ev = base(EV_ROOM_CREATED);
    ev.room = S("R");
    expect_refused(&ev, "room", long_room, NULL, "room too long");
    expect_refused(&ev, "room", "AB\xc0\xaf", NULL, "invalid UTF-8 in room");
    expect_refused(&ev, "node", "n\xed\xa0\x80", NULL, "invalid UTF-8 in node");
    expect_refused(&ev, "device", "\xff", NULL, "invalid UTF-8 in device");
}

/* Event ids: the bare stream id (the single stream of older versions) or "<shard>/<id>". */
static void test_event_ids(void **state) {
    (void)state;
    struct rrm_event ev = base(EV_ROOM_RECYCLED);
    ev.room = S("ROOM1");
    struct fields f;
    encode(&ev, &f);
    static const char *const good[] = {"1-0", "1732550000000-3", "0/1-0", "15/1732550000000-3",
                                       "1023/18446744073709551615-18446744073709551615"};
    static const char *const bad[] = {
        "",      "1",    "1-",        "-1",
        "1-0/2", "/1-0", "12345/1-0", "a/1-0",
        "1/",    "1/1",  "1//1-0",    "1/1-0-0",
        "1/-0",  "x1-0", "1-0 ",      "1023/1844674407370955161500-18446744073709551615000"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct arch_row row;
        char err[200] = "";
        if (arch_row_decode(&row, good[i], strlen(good[i]), f.names, f.name_lens, f.values,
                            f.value_lens, f.n, err, sizeof(err)))
            fail_msg("event id '%s' refused: %s", good[i], err);
        assert_int_equal(row.id_len, strlen(good[i]));
    }
    assert_true(strlen(good[4]) <= ARCH_EVENT_ID_MAX);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct arch_row row;
        char err[200] = "";
        if (arch_row_decode(&row, bad[i], strlen(bad[i]), f.names, f.name_lens, f.values,
                            f.value_lens, f.n, err, sizeof(err)) == 0)
            fail_msg("event id '%s' accepted", bad[i]);
        assert_non_null(strstr(err, "entry id"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_type_round_trips),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_malformed_envelope),
        cmocka_unit_test(test_missing_required_fields),
        cmocka_unit_test(test_values_that_do_not_fit),
        cmocka_unit_test(test_event_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
