/* Archiver SQL building: value checks, escaping, statement shape and splitting. The tests read the
 * generated SQL back the way the server's lexer does, so they check that every value survives
 * escaping byte for byte, not just that some text was produced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) ((struct event_str){lit, sizeof(lit) - 1})
#define SN(p, n) ((struct event_str){p, n})

/* One string literal read back from SQL text. */
struct literal {
    char *bytes;
    size_t len;
    int binary; /* had the _binary introducer */
};

/* Reads every '...' literal of sql in order, undoing backslash escapes like the MySQL lexer
 * (\0 \n \r \Z, and \x is x otherwise). Returns the count; fails the test on an unterminated one.
 */
static size_t read_literals(const char *sql, size_t len, struct literal *out, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (sql[i] != '\'')
            continue;
        assert_true(n < cap);
        out[n].binary = i >= 7 && memcmp(sql + i - 7, "_binary", 7) == 0;
        out[n].bytes = malloc(len + 1);
        out[n].len = 0;
        i++;
        for (;; i++) {
            assert_true(i < len); /* unterminated literal */
            char c = sql[i];
            if (c == '\\') {
                i++;
                assert_true(i < len);
                char e = sql[i];
                c = e == '0' ? '\0' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 'Z' ? '\032' : e;
            } else if (c == '\'') {
                break;
            }
            out[n].bytes[out[n].len++] = c;
        }
        n++;
    }
    return n;
}

static void free_literals(struct literal *l, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(l[i].bytes);
}

static void assert_literal(const struct literal *l, const void *want, size_t len) {
    assert_int_equal(l->len, len);
    assert_memory_equal(l->bytes, want, len);
}

static struct arch_build_opts plain_opts(size_t max_stmt) {
    struct arch_build_opts o = {
        .escape = arch_escape_plain, .escape_ctx = NULL, .max_stmt = max_stmt};
    return o;
}

static struct arch_row message_row(const char *id, struct event_str room, struct event_str device,
                                   struct event_str body, int64_t seq) {
    struct arch_row r;
    memset(&r, 0, sizeof(r));
    r.id = id;
    r.id_len = strlen(id);
    r.ev.type = EV_MESSAGE;
    r.ev.ts = 1732550000123LL;
    r.ev.node = S("node-1");
    r.ev.conn = S("node-1#1");
    r.ev.room = room;
    r.ev.device = device;
    r.ev.kind = S("binary");
    r.ev.body = body;
    r.ev.seq = seq;
    return r;
}

static void test_escape_plain(void **state) {
    (void)state;
    const char in[] = "a'b\"c\\d\0e\nf\rg\032h";
    char out[2 * sizeof(in) + 1];
    size_t n = arch_escape_plain(NULL, out, in, sizeof(in) - 1);
    const char want[] = "a\\'b\\\"c\\\\d\\0e\\nf\\rg\\Zh";
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, n);
    assert_int_equal(out[n], '\0');
}

static void test_utf8_chars(void **state) {
    (void)state;
    assert_int_equal(arch_utf8_chars("", 0), 0);
    assert_int_equal(arch_utf8_chars("abc", 3), 3);
    assert_int_equal(arch_utf8_chars("\xc3\xa9t\xc3\xa9", 5), 3);        /* été */
    assert_int_equal(arch_utf8_chars("\xe6\x88\xbf\xe9\x97\xb4", 6), 2); /* 房间 */
    assert_int_equal(arch_utf8_chars("\xf0\x9f\x98\x80!", 5), 2);        /* emoji, 4 bytes */
    assert_int_equal(arch_utf8_chars("a\0b", 3), 3);                     /* NUL is a character */
    assert_int_equal(arch_utf8_chars("\xc0\xaf", 2), -1);                /* overlong '/' */
    assert_int_equal(arch_utf8_chars("\xe0\x80\xaf", 3), -1);            /* overlong, 3 bytes */
    assert_int_equal(arch_utf8_chars("\xed\xa0\x80", 3), -1);            /* surrogate */
    assert_int_equal(arch_utf8_chars("\xf4\x90\x80\x80", 4), -1);        /* > U+10FFFF */
    assert_int_equal(arch_utf8_chars("\xf0\x9f\x98", 3), -1);            /* truncated */
    assert_int_equal(arch_utf8_chars("\x80", 1), -1);                    /* lone continuation */
    assert_int_equal(arch_utf8_chars("\xff", 1), -1);
    assert_int_equal(arch_utf8_chars("\xc3(", 2), -1);
}

static void test_format_datetime(void **state) {
    (void)state;
    char dt[24];
    assert_int_equal(arch_format_datetime(0, dt), 0);
    assert_string_equal(dt, "1970-01-01 00:00:00.000");
    assert_int_equal(arch_format_datetime(1732550000123LL, dt), 0);
    assert_string_equal(dt, "2024-11-25 15:53:20.123");
    assert_int_equal(arch_format_datetime(ARCH_DATETIME_MAX_MS, dt), 0);
    assert_string_equal(dt, "9999-12-31 23:59:59.999");
    assert_int_equal(arch_format_datetime(ARCH_DATETIME_MAX_MS + 1, dt), -1);
    assert_int_equal(arch_format_datetime(-1, dt), -1);
}

static void test_check_limits(void **state) {
    (void)state;
    char err[200];
    char device[600];
    struct arch_row r = message_row("1-0", S("ROOM01"), S("dev"), S("x"), 1);
    assert_int_equal(arch_row_check(&r, err, sizeof(err)), 0);

    /* 128 four-byte characters fit VARCHAR(128); 129 do not. */
    for (int i = 0; i < 129; i++)
        memcpy(device + 4 * i, "\xf0\x9f\x98\x80", 4);
    r.ev.device = SN(device, 4 * 128);
    assert_int_equal(arch_row_check(&r, err, sizeof(err)), 0);
    r.ev.device = SN(device, 4 * 129);
    assert_int_equal(arch_row_check(&r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "device too long"));

    r.ev.device = S("bad\xff");
    assert_int_equal(arch_row_check(&r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "invalid UTF-8 in device"));

    r.ev.device = S("dev");
    r.ev.room = S("");
    assert_int_equal(arch_row_check(&r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "empty room"));

    r.ev.room = S("ROOM01");
    r.ev.ts = ARCH_DATETIME_MAX_MS + 1;
    assert_int_equal(arch_row_check(&r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ts out of DATETIME range"));

    r.ev.ts = 1;
    r.id = "12";
    r.id_len = 2;
    assert_int_equal(arch_row_check(&r, err, sizeof(err)), -1);

    /* A body may hold any bytes, including invalid UTF-8: it goes to a binary column. */
    r.id = "5-7";
    r.id_len = 3;
    r.ev.body = S("\xff\xfe\x00");
    assert_int_equal(arch_row_check(&r, err, sizeof(err)), 0);

    struct arch_row q;
    memset(&q, 0, sizeof(q));
    q.id = "1-1";
    q.id_len = 3;
    q.ev.type = EV_QUERY;
    q.ev.room = S("R");
    q.ev.device = S("D");
    q.ev.total = ARCH_TOTAL_MAX + 1;
    assert_int_equal(arch_row_check(&q, err, sizeof(err)), -1);
    q.ev.total = 3;
    q.ev.ip = S("\xff"); /* not stored for queries, so not checked */
    assert_int_equal(arch_row_check(&q, err, sizeof(err)), 0);
}

static void test_message_literals_round_trip(void **state) {
    (void)state;
    /* Every byte value, then quotes, backslashes and an emoji. */
    char body[256 + 16];
    for (int i = 0; i < 256; i++)
        body[i] = (char)i;
    memcpy(body + 256, "'\\'\"\\\xf0\x9f\x98\x80''", 12);
    size_t body_len = 268;
    struct arch_row r =
        message_row("1732550000123-0", S("R'1"), S("d\\ev\"\0x"), SN(body, body_len), 42);
    struct arch_sql sql;
    struct arch_build_opts o = plain_opts(1 << 20);
    assert_int_equal(arch_sql_build(&sql, &r, 1, &o, NULL), 0);
    assert_int_equal(sql.n, 1);
    assert_int_equal(sql.stmts[0].table, ARCH_MESSAGES);
    assert_int_equal(sql.rows[ARCH_MESSAGES], 1);
    assert_int_equal(strlen(sql.stmts[0].sql), sql.stmts[0].len); /* no raw NUL in the text */
    assert_non_null(strstr(sql.stmts[0].sql, "INSERT INTO messages ("));
    assert_non_null(strstr(sql.stmts[0].sql, "ON DUPLICATE KEY UPDATE event_id = event_id"));
    assert_null(strstr(sql.stmts[0].sql, "IGNORE"));

    struct literal l[16];
    size_t n = read_literals(sql.stmts[0].sql, sql.stmts[0].len, l, 16);
    /* event_id, room, device, kind, body, node, sent_at */
    assert_int_equal(n, 7);
    assert_literal(&l[0], "1732550000123-0", 15);
    assert_literal(&l[1], "R'1", 3);
    assert_literal(&l[2], "d\\ev\"\0x", 7);
    assert_literal(&l[3], "binary", 6);
    assert_literal(&l[4], body, body_len);
    assert_true(l[4].binary);
    assert_false(l[1].binary);
    assert_literal(&l[5], "node-1", 6);
    assert_literal(&l[6], "2024-11-25 15:53:20.123", 23);
    /* seq and message_size are plain numbers */
    assert_non_null(strstr(sql.stmts[0].sql, ",42,'binary',268,_binary'"));
    free_literals(l, n);
    arch_sql_free(&sql);
}

static void test_one_statement_per_table(void **state) {
    (void)state;
    struct arch_row rows[9];
    memset(rows, 0, sizeof(rows));
    const char *ids[] = {"1-0", "1-1", "1-2", "1-3", "1-4", "1-5", "1-6", "1-7", "1-8"};
    for (int i = 0; i < 9; i++) {
        rows[i].id = ids[i];
        rows[i].id_len = 3;
        rows[i].ev.ts = 1000 + i;
        rows[i].ev.node = S("n1");
    }
    rows[0].ev.type = EV_ROOM_CREATED;
    rows[0].ev.room = S("ROOMA");
    rows[0].ev.device = S("dev-b");
    rows[1].ev.type = EV_CONNECT;
    rows[1].ev.conn = S("n1#2");
    rows[1].ev.device = S("dev-b");
    rows[1].ev.identity = S("phone \xf0\x9f\x93\xb1");
    rows[1].ev.ip = S("10.0.0.2");
    rows[2].ev.type = EV_CONNECT;
    rows[2].ev.conn = S("n1#1");
    rows[2].ev.device = S("dev-a");
    rows[3].ev.type = EV_ROOM;
    rows[3].ev.conn = S("n1#2");
    rows[3].ev.device = S("dev-b");
    rows[3].ev.room = S("ROOMA");
    rows[3].ev.action = S("created");
    rows[4] = message_row("1-4", S("ROOMA"), S("dev-b"), S("{\"type\":\"text\"}"), 1);
    rows[4].ev.kind = S("json");
    rows[5].ev.type = EV_QUERY;
    rows[5].ev.room = S("ROOMA");
    rows[5].ev.device = S("dev-b");
    rows[5].ev.total = 2;
    rows[6].ev.type = EV_DISCONNECT;
    rows[6].ev.conn = S("n1#1");
    rows[6].ev.device = S("dev-a");
    rows[6].ev.reason = S("client closed");
    rows[6].ev.connected_at = 1002;
    rows[7].ev.type = EV_ROOM_RECYCLED;
    rows[7].ev.room = S("ROOMA");
    rows[8] = message_row("1-8", S("ROOMA"), S("dev-a"), S("hi"), 2);
    for (int i = 0; i < 9; i++) {
        char err[200];
        assert_int_equal(arch_row_check(&rows[i], err, sizeof(err)), 0);
    }

    struct arch_sql sql;
    struct arch_build_opts o = plain_opts(1 << 20);
    assert_int_equal(arch_sql_build(&sql, rows, 9, &o, NULL), 0);
    /* rooms, devices, connections, connect_count update, messages, room_queries, room_events */
    assert_int_equal(sql.n, 7);
    enum arch_table want[] = {ARCH_ROOMS,    ARCH_DEVICES,      ARCH_CONNECTIONS, ARCH_DEVICES,
                              ARCH_MESSAGES, ARCH_ROOM_QUERIES, ARCH_ROOM_EVENTS};
    for (int i = 0; i < 7; i++)
        assert_int_equal(sql.stmts[i].table, want[i]);
    assert_int_equal(sql.rows[ARCH_ROOMS], 2);
    assert_int_equal(sql.rows[ARCH_DEVICES], 3); /* two connects, one room assignment */
    assert_int_equal(sql.rows[ARCH_CONNECTIONS], 4);
    assert_int_equal(sql.rows[ARCH_MESSAGES], 2);
    assert_int_equal(sql.rows[ARCH_ROOM_QUERIES], 1);
    assert_int_equal(sql.rows[ARCH_ROOM_EVENTS], 1);

    /* Merged tables are written in key order: dev-a before dev-b, n1#1 before n1#2. */
    const char *dev = sql.stmts[1].sql;
    assert_true(strstr(dev, "('dev-a'") < strstr(dev, "('dev-b'"));
    const char *con = sql.stmts[2].sql;
    assert_true(strstr(con, "('n1#1'") < strstr(con, "('n1#2'"));
    assert_non_null(strstr(sql.stmts[3].sql, "UPDATE devices SET connect_count"));
    assert_non_null(strstr(sql.stmts[3].sql, "IN ('dev-a','dev-b')"));
    /* The disconnect row carries connected_at, disconnected_at, reason and its event id. */
    assert_non_null(strstr(con, "'1970-01-01 00:00:01.002','1970-01-01 00:00:01.006',"
                                "'client closed','1-6')"));
    for (size_t i = 0; i < sql.n; i++) {
        struct literal l[64];
        size_t n = read_literals(sql.stmts[i].sql, sql.stmts[i].len, l, 64);
        assert_true(n > 0);
        free_literals(l, n);
    }
    arch_sql_free(&sql);
}

static void test_split_and_too_big(void **state) {
    (void)state;
    char big[400];
    memset(big, 'x', sizeof(big));
    struct arch_row rows[5];
    const char *ids[] = {"9-0", "9-1", "9-2", "9-3", "9-4"};
    for (int i = 0; i < 5; i++)
        rows[i] = message_row(ids[i], S("R"), S("D"), SN(big, 100), i + 1);

    struct arch_sql sql;
    struct arch_build_opts o = plain_opts(1 << 20);
    assert_int_equal(arch_sql_build(&sql, rows, 1, &o, NULL), 0);
    size_t one_row = sql.stmts[0].len;
    arch_sql_free(&sql);
    assert_int_equal(arch_sql_build(&sql, rows, 5, &o, NULL), 0);
    assert_int_equal(sql.n, 1);
    size_t tuple = (sql.stmts[0].len - one_row) / 4; /* each further row adds ",(...)" */
    arch_sql_free(&sql);

    /* A limit that holds two rows but not three gives three statements, none over the limit,
     * and every row exactly once. */
    o.max_stmt = one_row + tuple + tuple / 2;
    assert_int_equal(arch_sql_build(&sql, rows, 5, &o, NULL), 0);
    assert_int_equal(sql.n, 3);
    assert_int_equal(sql.rows[ARCH_MESSAGES], 5);
    for (size_t i = 0; i < sql.n; i++)
        assert_true(sql.stmts[i].len <= o.max_stmt);
    for (int i = 0; i < 5; i++) {
        char tuple[16];
        snprintf(tuple, sizeof(tuple), "('%s'", ids[i]);
        int found = 0;
        for (size_t k = 0; k < sql.n; k++)
            found += strstr(sql.stmts[k].sql, tuple) != NULL;
        assert_int_equal(found, 1);
    }
    arch_sql_free(&sql);

    /* One row bigger than the limit is reported by index; nothing is returned. */
    rows[3].ev.body = SN(big, sizeof(big));
    size_t bad = 99;
    assert_int_equal(arch_sql_build(&sql, rows, 5, &o, &bad), ARCH_BUILD_TOO_BIG);
    assert_int_equal(bad, 3);
    assert_int_equal(sql.n, 0);
    assert_null(sql.stmts);
}

static void test_empty_optional_values_fill_no_gap(void **state) {
    (void)state;
    /* A node reaper's disconnect may carry an empty room: it must not overwrite the room the
     * connection's room event stored. */
    struct arch_row r;
    memset(&r, 0, sizeof(r));
    r.id = "7-0";
    r.id_len = 3;
    r.ev.type = EV_DISCONNECT;
    r.ev.ts = 5;
    r.ev.conn = S("n#1");
    r.ev.device = S("");
    r.ev.room = S("");
    r.ev.node = S("n");
    r.ev.reason = S("node lost");
    char err[200];
    assert_int_equal(arch_row_check(&r, err, sizeof(err)), 0);
    struct arch_sql sql;
    struct arch_build_opts o = plain_opts(1 << 20);
    assert_int_equal(arch_sql_build(&sql, &r, 1, &o, NULL), 0);
    assert_int_equal(sql.n, 1); /* no device: no connect_count update */
    assert_non_null(strstr(sql.stmts[0].sql, "('n#1',NULL,NULL,NULL,NULL,'n',NULL,NULL,"));
    arch_sql_free(&sql);
}

static void test_empty_batch(void **state) {
    (void)state;
    struct arch_sql sql;
    struct arch_build_opts o = plain_opts(1 << 20);
    assert_int_equal(arch_sql_build(&sql, NULL, 0, &o, NULL), 0);
    assert_int_equal(sql.n, 0);
    arch_sql_free(&sql);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_plain),
        cmocka_unit_test(test_utf8_chars),
        cmocka_unit_test(test_format_datetime),
        cmocka_unit_test(test_check_limits),
        cmocka_unit_test(test_message_literals_round_trip),
        cmocka_unit_test(test_one_statement_per_table),
        cmocka_unit_test(test_split_and_too_big),
        cmocka_unit_test(test_empty_optional_values_fill_no_gap),
        cmocka_unit_test(test_empty_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
