/* Unit tests for the client protocol logic in shared/proto.c: identify validation, id rules,
 * classification of client frames, the relay envelope, error frames, pub/sub payloads and room
 * id generation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "proto.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* Parses an identify frame given as a C string; returns the result and fills out/code/msg. */
static int identify(const char *text, struct proto_identify *out, const char **code, char *msg,
                    size_t msglen) {
    *code = NULL;
    msg[0] = '\0';
    return proto_parse_identify(text, strlen(text), out, code, msg, msglen);
}

/* Expects text to be rejected with want_code and a non-empty reason. */
static void expect_identify_error(const char *text, const char *want_code) {
    struct proto_identify id;
    const char *code;
    char msg[200];
    assert_int_equal(identify(text, &id, &code, msg, sizeof(msg)), -1);
    assert_non_null(code);
    assert_string_equal(code, want_code);
    assert_true(strlen(msg) > 0);
}

/* Builds {"device_id":"<dev>",<extra>} in a malloc'd string. */
static char *identify_with(const char *dev, const char *extra) {
    size_t n = strlen(dev) + strlen(extra) + 32;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "{\"device_id\":\"%s\"%s%s}", dev, extra[0] ? "," : "", extra);
    return s;
}

/* ---- proto_valid_id ---- */

static void test_valid_id_accepts_allowed_characters(void **state) {
    (void)state;
    const char *ok = "azAZ09_.:@-";
    assert_int_equal(proto_valid_id(ok, strlen(ok), 64), 1);
    assert_int_equal(proto_valid_id("x", 1, 1), 1);
    assert_int_equal(proto_valid_id("user@example.com", 16, 128), 1);
}

static void test_valid_id_rejects_empty_and_too_long(void **state) {
    (void)state;
    assert_int_equal(proto_valid_id("", 0, 64), 0);
    assert_int_equal(proto_valid_id("abc", 3, 2), 0);
    assert_int_equal(proto_valid_id("abc", 3, 3), 1);
}

static void test_valid_id_rejects_other_characters(void **state) {
    (void)state;
    const char *bad[] = {"a b",         "a/b", "a{b", "a}b", "a#b",  "a\"b", "a\nb",
                         "caf\xc3\xa9", "a*",  "a,b", "a+b", "a\\b", "\x7f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(proto_valid_id(bad[i], strlen(bad[i]), 64), 0);
    /* An embedded NUL counts as a character, and is not allowed. */
    assert_int_equal(proto_valid_id("ab\0cd", 5, 64), 0);
}

static void test_valid_id_uses_len_not_nul(void **state) {
    (void)state;
    /* Only the first len bytes are examined. */
    assert_int_equal(proto_valid_id("abc def", 3, 64), 1);
}

/* ---- proto_parse_identify ---- */

static void test_identify_full(void **state) {
    (void)state;
    struct proto_identify id;
    const char *code;
    char msg[200];
    assert_int_equal(
        identify("{\"device_id\":\"dev-1\",\"identity\":\"Alice \xc3\xa9\",\"room_id\":\"ROOM42\"}",
                 &id, &code, msg, sizeof(msg)),
        0);
    assert_string_equal(id.device_id, "dev-1");
    assert_string_equal(id.identity, "Alice \xc3\xa9");
    assert_string_equal(id.room_id, "ROOM42");
}

static void test_identify_device_only(void **state) {
    (void)state;
    struct proto_identify id;
    const char *code;
    char msg[200];
    memset(&id, 'x', sizeof(id)); /* the parser must clear leftovers */
    assert_int_equal(identify("{\"device_id\":\"d\"}", &id, &code, msg, sizeof(msg)), 0);
    assert_string_equal(id.device_id, "d");
    assert_string_equal(id.identity, "");
    assert_string_equal(id.room_id, "");
}

static void test_identify_null_and_empty_optional_fields(void **state) {
    (void)state;
    struct proto_identify id;
    const char *code;
    char msg[200];
    assert_int_equal(identify("{\"device_id\":\"d\",\"identity\":null,\"room_id\":null}", &id,
                              &code, msg, sizeof(msg)),
                     0);
    assert_string_equal(id.identity, "");
    assert_string_equal(id.room_id, "");
    assert_int_equal(
        identify("{\"device_id\":\"d\",\"room_id\":\"\"}", &id, &code, msg, sizeof(msg)), 0);
    assert_string_equal(id.room_id, "");
    assert_int_equal(
        identify("{\"device_id\":\"d\",\"identity\":\"\"}", &id, &code, msg, sizeof(msg)), 0);
    assert_string_equal(id.identity, "");
}

static void test_identify_ignores_unknown_fields(void **state) {
    (void)state;
    struct proto_identify id;
    const char *code;
    char msg[200];
    assert_int_equal(identify("{\"device_id\":\"d\",\"extra\":[1,2,{}],\"type\":\"identify\"}", &id,
                              &code, msg, sizeof(msg)),
                     0);
    assert_string_equal(id.device_id, "d");
}

static void test_identify_uses_len(void **state) {
    (void)state;
    /* The buffer is not NUL-terminated where len ends: trailing bytes must be ignored. */
    const char buf[] = "{\"device_id\":\"abc\"}GARBAGE";
    struct proto_identify id;
    const char *code = NULL;
    char msg[200];
    assert_int_equal(proto_parse_identify(buf, strlen(buf) - 7, &id, &code, msg, sizeof(msg)), 0);
    assert_string_equal(id.device_id, "abc");
}

static void test_identify_invalid_json(void **state) {
    (void)state;
    expect_identify_error("", PROTO_E_INVALID_JSON);
    expect_identify_error("{", PROTO_E_INVALID_JSON);
    expect_identify_error("device_id=abc", PROTO_E_INVALID_JSON);
    expect_identify_error("{\"device_id\":\"a\",}", PROTO_E_INVALID_JSON);
    /* Duplicate keys are ambiguous: refused. */
    expect_identify_error("{\"device_id\":\"a\",\"device_id\":\"b\"}", PROTO_E_INVALID_JSON);
}

static void test_identify_not_an_object(void **state) {
    (void)state;
    expect_identify_error("[\"device_id\"]", PROTO_E_INVALID_IDENTIFY);
    expect_identify_error("\"dev\"", PROTO_E_INVALID_IDENTIFY);
    expect_identify_error("42", PROTO_E_INVALID_IDENTIFY);
    expect_identify_error("null", PROTO_E_INVALID_IDENTIFY);
}

static void test_identify_missing_device(void **state) {
    (void)state;
    expect_identify_error("{}", PROTO_E_INVALID_IDENTIFY);
    expect_identify_error("{\"identity\":\"a\",\"room_id\":\"R\"}", PROTO_E_INVALID_IDENTIFY);
}

static void test_identify_bad_device(void **state) {
    (void)state;
    expect_identify_error("{\"device_id\":\"\"}", PROTO_E_INVALID_DEVICE_ID);
    expect_identify_error("{\"device_id\":42}", PROTO_E_INVALID_DEVICE_ID);
    expect_identify_error("{\"device_id\":null}", PROTO_E_INVALID_DEVICE_ID);
    expect_identify_error("{\"device_id\":[\"a\"]}", PROTO_E_INVALID_DEVICE_ID);
    expect_identify_error("{\"device_id\":\"a b\"}", PROTO_E_INVALID_DEVICE_ID);
    expect_identify_error("{\"device_id\":\"a/b\"}", PROTO_E_INVALID_DEVICE_ID);
    expect_identify_error("{\"device_id\":\"caf\xc3\xa9\"}", PROTO_E_INVALID_DEVICE_ID);
    /* \u0000 is not accepted by the JSON parser at all. */
    expect_identify_error("{\"device_id\":\"a\\u0000b\"}", PROTO_E_INVALID_JSON);
}

static void test_identify_device_length_limit(void **state) {
    (void)state;
    struct proto_identify id;
    const char *code;
    char msg[200];
    char *dev = repeat('d', PROTO_MAX_DEVICE_ID);
    char *text = identify_with(dev, "");
    assert_int_equal(identify(text, &id, &code, msg, sizeof(msg)), 0);
    assert_string_equal(id.device_id, dev);
    free(text);
    free(dev);

    dev = repeat('d', PROTO_MAX_DEVICE_ID + 1);
    text = identify_with(dev, "");
    expect_identify_error(text, PROTO_E_INVALID_DEVICE_ID);
    free(text);
    free(dev);
}

static void test_identify_identity_rules(void **state) {
    (void)state;
    struct proto_identify id;
    const char *code;
    char msg[200];

    char *ident = repeat('i', PROTO_MAX_IDENTITY);
    char extra[PROTO_MAX_IDENTITY + 64];
    snprintf(extra, sizeof(extra), "\"identity\":\"%s\"", ident);
    char *text = identify_with("d", extra);
    assert_int_equal(identify(text, &id, &code, msg, sizeof(msg)), 0);
    assert_string_equal(id.identity, ident);
    free(text);
    free(ident);

    ident = repeat('i', PROTO_MAX_IDENTITY + 1);
    snprintf(extra, sizeof(extra), "\"identity\":\"%s\"", ident);
    text = identify_with("d", extra);
    expect_identify_error(text, PROTO_E_INVALID_IDENTITY);
    free(text);
    free(ident);

    /* Free text is fine, control characters and DEL are not, nor are non-strings. */
    assert_int_equal(identify("{\"device_id\":\"d\",\"identity\":\"Bob {the} \\\"B\\\" / #1\"}",
                              &id, &code, msg, sizeof(msg)),
                     0);
    assert_string_equal(id.identity, "Bob {the} \"B\" / #1");
    expect_identify_error("{\"device_id\":\"d\",\"identity\":\"a\\nb\"}", PROTO_E_INVALID_IDENTITY);
    expect_identify_error("{\"device_id\":\"d\",\"identity\":\"a\\tb\"}", PROTO_E_INVALID_IDENTITY);
    expect_identify_error("{\"device_id\":\"d\",\"identity\":\"a\\u001bb\"}",
                          PROTO_E_INVALID_IDENTITY);
    expect_identify_error("{\"device_id\":\"d\",\"identity\":\"a\\u007fb\"}",
                          PROTO_E_INVALID_IDENTITY);
    /* C1 controls (U+0080-U+009F), escaped or as raw UTF-8, at either end of the range */
    expect_identify_error("{\"device_id\":\"d\",\"identity\":\"a\\u0080b\"}",
                          PROTO_E_INVALID_IDENTITY);
    expect_identify_error("{\"device_id\":\"d\",\"identity\":\"a\xc2\x85\"}",
                          PROTO_E_INVALID_IDENTITY);
    expect_identify_error("{\"device_id\":\"d\",\"identity\":\"\\u009f\"}",
                          PROTO_E_INVALID_IDENTITY);
    /* ... but their neighbours are ordinary text: U+00A0, U+00E9, U+0100, U+4E2D */
    assert_int_equal(
        identify("{\"device_id\":\"d\",\"identity\":\"\\u00a0\\u00e9\xc4\x80\xe4\xb8\xad\"}", &id,
                 &code, msg, sizeof(msg)),
        0);
    assert_string_equal(id.identity, "\xc2\xa0\xc3\xa9\xc4\x80\xe4\xb8\xad");
    expect_identify_error("{\"device_id\":\"d\",\"identity\":7}", PROTO_E_INVALID_IDENTITY);
    expect_identify_error("{\"device_id\":\"d\",\"identity\":{}}", PROTO_E_INVALID_IDENTITY);
}

static void test_identify_room_rules(void **state) {
    (void)state;
    struct proto_identify id;
    const char *code;
    char msg[200];

    char *room = repeat('R', PROTO_MAX_ROOM_ID);
    char extra[PROTO_MAX_ROOM_ID + 64];
    snprintf(extra, sizeof(extra), "\"room_id\":\"%s\"", room);
    char *text = identify_with("d", extra);
    assert_int_equal(identify(text, &id, &code, msg, sizeof(msg)), 0);
    assert_string_equal(id.room_id, room);
    free(text);
    free(room);

    room = repeat('R', PROTO_MAX_ROOM_ID + 1);
    snprintf(extra, sizeof(extra), "\"room_id\":\"%s\"", room);
    text = identify_with("d", extra);
    expect_identify_error(text, PROTO_E_INVALID_ROOM_ID);
    free(text);
    free(room);

    expect_identify_error("{\"device_id\":\"d\",\"room_id\":\"a b\"}", PROTO_E_INVALID_ROOM_ID);
    expect_identify_error("{\"device_id\":\"d\",\"room_id\":\"{x}\"}", PROTO_E_INVALID_ROOM_ID);
    expect_identify_error("{\"device_id\":\"d\",\"room_id\":123456}", PROTO_E_INVALID_ROOM_ID);
    expect_identify_error("{\"device_id\":\"d\",\"room_id\":true}", PROTO_E_INVALID_ROOM_ID);
}

static void test_identify_message_truncated_to_msglen(void **state) {
    (void)state;
    struct proto_identify id;
    const char *code;
    char msg[8];
    memset(msg, 'z', sizeof(msg));
    assert_int_equal(proto_parse_identify("{}", 2, &id, &code, msg, sizeof(msg)), -1);
    assert_int_equal(strlen(msg), sizeof(msg) - 1);
}

/* ---- proto_classify ---- */

struct classified {
    enum proto_kind kind;
    json_t *value;
    const char *msg_type;
    const char *code;
    char msg[160];
};

static void classify(const char *text, struct classified *c) {
    c->value = (json_t *)1; /* must be reset by the callee */
    c->msg_type = NULL;
    c->code = NULL;
    c->msg[0] = '\0';
    c->kind = proto_classify(text, strlen(text), &c->value, &c->msg_type, &c->code, c->msg,
                             sizeof(c->msg));
}

static void test_classify_invalid_json(void **state) {
    (void)state;
    const char *bad[] = {"", "{", "hello", "{\"a\":}", "[1,2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct classified c;
        classify(bad[i], &c);
        assert_int_equal(c.kind, PROTO_REJECT);
        assert_null(c.value);
        assert_string_equal(c.code, PROTO_E_INVALID_JSON);
        assert_true(strlen(c.msg) > 0);
    }
}

/* A raw NUL byte is not JSON anywhere (jansson skips one after a number or a literal): such a
 * frame is refused, not relayed with the NUL in it. Also as the identify. */
static void test_raw_nul_is_invalid_json(void **state) {
    (void)state;
    static const struct {
        const char *text;
        size_t len;
    } bad[] = {
#define RAW(lit) {lit, sizeof(lit) - 1}
        RAW("{\"type\":\"text\",\"n\":1\0}"),   RAW("{\"a\":true\0}"), RAW("[1\0,2]"), RAW("42\0"),
        RAW("{\"device_id\":\"x\",\"n\":1\0}"),
#undef RAW
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *value = (json_t *)1;
        const char *msg_type = NULL, *code = NULL;
        char msg[160];
        enum proto_kind kind =
            proto_classify(bad[i].text, bad[i].len, &value, &msg_type, &code, msg, sizeof(msg));
        if (kind != PROTO_REJECT)
            fail_msg("frame %zu with a raw NUL was not refused", i);
        assert_null(value);
        assert_string_equal(code, PROTO_E_INVALID_JSON);

        struct proto_identify id;
        code = NULL;
        assert_int_equal(
            proto_parse_identify(bad[i].text, bad[i].len, &id, &code, msg, sizeof(msg)), -1);
        assert_string_equal(code, PROTO_E_INVALID_JSON);
    }
}

static void test_classify_query_room(void **state) {
    (void)state;
    struct classified c;
    classify("{\"type\":\"query_room\"}", &c);
    assert_int_equal(c.kind, PROTO_QUERY_ROOM);
    assert_null(c.value);
    classify("{\"x\":1,\"type\":\"query_room\",\"y\":[]}", &c);
    assert_int_equal(c.kind, PROTO_QUERY_ROOM);
    assert_null(c.value);
}

/* A refresh is handed to the caller, never classified as a relay (its token stays private). */
static void test_classify_refresh(void **state) {
    (void)state;
    struct classified c;
    classify("{\"type\":\"refresh\",\"token\":\"a.b.c\"}", &c);
    assert_int_equal(c.kind, PROTO_REFRESH);
    assert_non_null(c.value);
    assert_string_equal(json_string_value(json_object_get(c.value, "token")), "a.b.c");
    json_decref(c.value);
    classify("{\"type\":\"refresh\"}", &c);
    assert_int_equal(c.kind, PROTO_REFRESH);
    json_decref(c.value);
}

static void test_identify_token(void **state) {
    (void)state;
    char *t = (char *)1;
    const char *full = "{\"device_id\":\"d\",\"token\":\"x.y.z\"}";
    assert_int_equal(proto_identify_token(full, strlen(full), &t), 1);
    assert_string_equal(t, "x.y.z");
    free(t);
    const char *none = "{\"device_id\":\"d\"}", *null = "{\"device_id\":\"d\",\"token\":null}";
    assert_int_equal(proto_identify_token(none, strlen(none), &t), 0);
    assert_null(t);
    assert_int_equal(proto_identify_token(null, strlen(null), &t), 0);
    const char *num = "{\"token\":5}", *arr = "[1]";
    assert_int_equal(proto_identify_token(num, strlen(num), &t), -1);
    assert_null(t);
    assert_int_equal(proto_identify_token(arr, strlen(arr), &t), -1);
}

static void test_classify_reserved_types(void **state) {
    (void)state;
    const char *types[] = {"connection", "room", "room_info", "error",
                           "refreshed",  "ack",  "join",      "leave"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        char text[64];
        snprintf(text, sizeof(text), "{\"type\":\"%s\",\"x\":1}", types[i]);
        struct classified c;
        classify(text, &c);
        assert_int_equal(c.kind, PROTO_REJECT);
        assert_null(c.value);
        assert_string_equal(c.code, PROTO_E_RESERVED_TYPE);
        assert_non_null(strstr(c.msg, types[i]));
    }
}

static void test_classify_text_and_json(void **state) {
    (void)state;
    struct classified c;
    classify("{\"type\":\"text\",\"text\":\"hi\"}", &c);
    assert_int_equal(c.kind, PROTO_RELAY);
    assert_non_null(c.value);
    assert_true(json_is_object(c.value));
    assert_string_equal(c.msg_type, "text");
    assert_string_equal(json_string_value(json_object_get(c.value, "text")), "hi");
    json_decref(c.value);

    classify("{\"type\":\"chat\",\"body\":\"hi\"}", &c);
    assert_int_equal(c.kind, PROTO_RELAY);
    assert_string_equal(c.msg_type, "json");
    json_decref(c.value);

    classify("{\"body\":\"no type\"}", &c);
    assert_int_equal(c.kind, PROTO_RELAY);
    assert_string_equal(c.msg_type, "json");
    json_decref(c.value);

    /* A non-string type is just data. */
    classify("{\"type\":5}", &c);
    assert_int_equal(c.kind, PROTO_RELAY);
    assert_string_equal(c.msg_type, "json");
    json_decref(c.value);

    /* Reserved names only matter as the value of "type". */
    classify("{\"kind\":\"error\",\"room\":\"connection\"}", &c);
    assert_int_equal(c.kind, PROTO_RELAY);
    json_decref(c.value);
}

static void test_classify_non_objects_relay(void **state) {
    (void)state;
    const char *texts[] = {"42", "\"query_room\"", "[1,2,3]", "null", "true", "\"error\""};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct classified c;
        classify(texts[i], &c);
        assert_int_equal(c.kind, PROTO_RELAY);
        assert_non_null(c.value);
        assert_false(json_is_object(c.value));
        assert_string_equal(c.msg_type, "json");
        json_decref(c.value);
    }
}

/* ---- resume fields of the identify, ack_id ---- */

static void test_identify_resume_fields(void **state) {
    (void)state;
    struct proto_identify id;
    const char *code = NULL;
    char msg[160];
    const char *seed = "{\"device_id\":\"d\"}";
    assert_int_equal(proto_parse_identify(seed, strlen(seed), &id, &code, msg, sizeof(msg)), 0);
    assert_int_equal(id.resume, 0);
    assert_string_equal(id.epoch, "");
    const char *full = "{\"device_id\":\"d\",\"last_seq\":50,\"epoch\":\"ab12\"}";
    assert_int_equal(proto_parse_identify(full, strlen(full), &id, &code, msg, sizeof(msg)), 0);
    assert_int_equal(id.resume, 1);
    assert_int_equal(id.last_seq, 50);
    assert_string_equal(id.epoch, "ab12");
    const char *no_epoch = "{\"device_id\":\"d\",\"last_seq\":0,\"epoch\":null}";
    assert_int_equal(proto_parse_identify(no_epoch, strlen(no_epoch), &id, &code, msg, sizeof(msg)),
                     0);
    assert_int_equal(id.resume, 1);
    assert_int_equal(id.last_seq, 0);
    assert_string_equal(id.epoch, "");
    const char *bad[] = {
        "{\"device_id\":\"d\",\"last_seq\":-1}",
        "{\"device_id\":\"d\",\"last_seq\":1.5}",
        "{\"device_id\":\"d\",\"last_seq\":\"3\"}",
        "{\"device_id\":\"d\",\"epoch\":\"ab\"}", /* epoch without last_seq */
        "{\"device_id\":\"d\",\"last_seq\":1,\"epoch\":7}",
        "{\"device_id\":\"d\",\"last_seq\":1,\"epoch\":\"\"}",
        "{\"device_id\":\"d\",\"last_seq\":1,\"epoch\":\"a b\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        code = NULL;
        assert_int_equal(proto_parse_identify(bad[i], strlen(bad[i]), &id, &code, msg, sizeof(msg)),
                         -1);
        assert_string_equal(code, PROTO_E_INVALID_IDENTIFY);
    }
}

static void test_ack_id(void **state) {
    (void)state;
    const char *ack = (const char *)1;
    json_t *v = json_loads("{\"type\":\"text\"}", 0, NULL);
    assert_int_equal(proto_ack_id(v, &ack), 0);
    assert_null(ack);
    json_decref(v);
    v = json_loads("[1]", 0, NULL);
    assert_int_equal(proto_ack_id(v, &ack), 0);
    json_decref(v);
    v = json_loads("{\"ack_id\":\"m:1@x-2_3.4\"}", 0, NULL);
    assert_int_equal(proto_ack_id(v, &ack), 1);
    assert_string_equal(ack, "m:1@x-2_3.4");
    json_decref(v);
    char long_id[80];
    memset(long_id, 'a', 64);
    long_id[64] = '\0';
    v = json_pack("{s:s}", "ack_id", long_id);
    assert_int_equal(proto_ack_id(v, &ack), 1);
    json_decref(v);
    long_id[64] = 'a';
    long_id[65] = '\0';
    v = json_pack("{s:s}", "ack_id", long_id);
    assert_int_equal(proto_ack_id(v, &ack), -1);
    json_decref(v);
    const char *bad[] = {"{\"ack_id\":\"\"}", "{\"ack_id\":3}", "{\"ack_id\":null}",
                         "{\"ack_id\":\"a/b\"}", "{\"ack_id\":\"a{b}\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = json_loads(bad[i], 0, NULL);
        assert_non_null(v);
        assert_int_equal(proto_ack_id(v, &ack), -1);
        json_decref(v);
    }
}

static void test_envelope_strips_ack_id(void **state) {
    (void)state;
    const char text[] = "{\"type\":\"text\",\"ack_id\":\"m1\",\"content\":\"hi\"}";
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    size_t len;
    char *p = proto_envelope_prefix(v, text, strlen(text), "alice", "R", 42, &len);
    assert_non_null(p);
    assert_string_equal(p, "{\"type\":\"text\",\"content\":\"hi\",\"from_device_id\":\"alice\","
                           "\"room_id\":\"R\",\"ts\":42");
    free(p);
    json_decref(v);
}

/* ---- proto_envelope_prefix ---- */

/* Appends ,"seq":7} to prefix and parses the result strictly; caller json_decref's. */
static json_t *close_envelope(const char *prefix, size_t len) {
    assert_int_equal(len, strlen(prefix));
    assert_true(len > 0);
    assert_int_not_equal(prefix[len - 1], '}');
    const char *tail = ",\"seq\":7}";
    char *full = malloc(len + strlen(tail) + 1);
    assert_non_null(full);
    memcpy(full, prefix, len);
    memcpy(full + len, tail, strlen(tail) + 1);
    json_error_t jerr;
    json_t *o = json_loads(full, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        fail_msg("envelope '%s' does not parse: %s", full, jerr.text);
    free(full);
    assert_true(json_is_object(o));
    return o;
}

static json_t *parse(const char *text) {
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!v)
        fail_msg("bad test JSON '%s': %s", text, jerr.text);
    return v;
}

static void test_envelope_object(void **state) {
    (void)state;
    json_t *v = parse("{\"type\":\"chat\",\"body\":\"hi\",\"n\":[1,2]}");
    size_t len = 0;
    char *p = proto_envelope_prefix(v, NULL, 0, "dev-1", "ROOM42", 1700000000123LL, &len);
    assert_non_null(p);
    json_t *o = close_envelope(p, len);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "chat");
    assert_string_equal(json_string_value(json_object_get(o, "body")), "hi");
    json_t *n = parse("[1,2]");
    assert_true(json_equal(json_object_get(o, "n"), n));
    json_decref(n);
    assert_string_equal(json_string_value(json_object_get(o, "from_device_id")), "dev-1");
    assert_string_equal(json_string_value(json_object_get(o, "room_id")), "ROOM42");
    assert_true(json_integer_value(json_object_get(o, "ts")) == 1700000000123LL);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 7);
    assert_int_equal(json_object_size(o), 7);
    json_decref(o);
    free(p);
    json_decref(v);
}

static void test_envelope_overwrites_spoofed_fields(void **state) {
    (void)state;
    const char *text = "{\"from_device_id\":\"mallory\",\"room_id\":\"OTHER\",\"ts\":1,"
                       "\"seq\":999,\"type\":\"chat\"}";
    json_t *v = parse(text);
    size_t len = 0;
    /* the client's text carries server fields: it is not spliced but rebuilt */
    char *p = proto_envelope_prefix(v, text, strlen(text), "alice", "ROOM01", 42, &len);
    assert_non_null(p);
    /* close_envelope rejects duplicate keys, so a surviving client "seq" would fail here. */
    json_t *o = close_envelope(p, len);
    assert_string_equal(json_string_value(json_object_get(o, "from_device_id")), "alice");
    assert_string_equal(json_string_value(json_object_get(o, "room_id")), "ROOM01");
    assert_int_equal(json_integer_value(json_object_get(o, "ts")), 42);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 7);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "chat");
    assert_int_equal(json_object_size(o), 5);
    json_decref(o);
    free(p);
    json_decref(v);
}

static void test_envelope_empty_object(void **state) {
    (void)state;
    json_t *v = json_object();
    size_t len = 0;
    char *p = proto_envelope_prefix(v, NULL, 0, "d", "R", 5, &len);
    assert_non_null(p);
    json_t *o = close_envelope(p, len);
    assert_int_equal(json_object_size(o), 4);
    assert_string_equal(json_string_value(json_object_get(o, "from_device_id")), "d");
    json_decref(o);
    free(p);
    json_decref(v);
}

static void test_envelope_wraps_non_objects(void **state) {
    (void)state;
    const char *texts[] = {"42",   "\"hello\"", "[1,{\"seq\":3},\"x\"]",           "null",
                           "true", "-1.5",      "\"{\\\"type\\\":\\\"error\\\"}\""};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_t *v = parse(texts[i]);
        size_t len = 0;
        char *p = proto_envelope_prefix(v, texts[i], strlen(texts[i]), "dev", "ROOM", 99, &len);
        assert_non_null(p);
        json_t *o = close_envelope(p, len);
        assert_string_equal(json_string_value(json_object_get(o, "type")), "message");
        json_t *data = json_object_get(o, "data");
        assert_non_null(data);
        assert_true(json_equal(data, v));
        assert_string_equal(json_string_value(json_object_get(o, "from_device_id")), "dev");
        assert_string_equal(json_string_value(json_object_get(o, "room_id")), "ROOM");
        assert_int_equal(json_integer_value(json_object_get(o, "ts")), 99);
        assert_int_equal(json_integer_value(json_object_get(o, "seq")), 7);
        assert_int_equal(json_object_size(o), 6);
        json_decref(o);
        free(p);
        json_decref(v);
    }
}

static void test_envelope_escapes_strings(void **state) {
    (void)state;
    json_t *v = parse("{\"body\":\"quote \\\" backslash \\\\ nl \\n\"}");
    size_t len = 0;
    char *p = proto_envelope_prefix(v, NULL, 0, "d", "R", 1, &len);
    assert_non_null(p);
    json_t *o = close_envelope(p, len);
    assert_string_equal(json_string_value(json_object_get(o, "body")),
                        "quote \" backslash \\ nl \n");
    json_decref(o);
    free(p);
    json_decref(v);
}

static void test_envelope_splices_client_text(void **state) {
    (void)state;
    /* an object without server fields keeps the client's bytes; the fields go before its '}' */
    const char *texts[] = {
        "{\"type\":\"chat\",\"body\":\"hi \\\"x\\\" \\u00e9\",\"n\":[1,{\"ts\":2}]}",
        "  { \"type\" : \"chat\" ,\n \"body\":\"}\" }  \r\n", "{}", "{ }"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_t *v = parse(texts[i]);
        size_t len = 0;
        char *p = proto_envelope_prefix(v, texts[i], strlen(texts[i]), "dev-9", "R:1", 77, &len);
        assert_non_null(p);
        const char *close = strrchr(texts[i], '}');
        assert_memory_equal(p, texts[i], (size_t)(close - texts[i])); /* untouched */
        json_t *o = close_envelope(p, len);
        /* every client field survives unchanged, nested "ts" included */
        const char *key;
        json_t *val;
        json_object_foreach(v, key, val) assert_true(json_equal(json_object_get(o, key), val));
        assert_int_equal(json_object_size(o), json_object_size(v) + 4);
        assert_string_equal(json_string_value(json_object_get(o, "from_device_id")), "dev-9");
        assert_string_equal(json_string_value(json_object_get(o, "room_id")), "R:1");
        assert_int_equal(json_integer_value(json_object_get(o, "ts")), 77);
        json_decref(o);
        free(p);
        json_decref(v);
    }
}

static void test_envelope_escaped_server_key_is_rebuilt(void **state) {
    (void)state;
    /* "t\u0073" is the key "ts": the client's value must not survive next to the server's */
    const char *text = "{\"type\":\"chat\",\"t\\u0073\":5}";
    json_t *v = parse(text);
    size_t len = 0;
    char *p = proto_envelope_prefix(v, text, strlen(text), "d", "R", 9, &len);
    assert_non_null(p);
    json_t *o = close_envelope(p, len); /* rejects duplicate keys */
    assert_int_equal(json_integer_value(json_object_get(o, "ts")), 9);
    json_decref(o);
    free(p);
    json_decref(v);
}

/* ---- proto_error_frame ---- */

static void test_error_frame(void **state) {
    (void)state;
    size_t len = 0;
    char *s = proto_error_frame(PROTO_E_RATE_LIMITED, "slow \"down\"\n", &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    json_error_t jerr;
    json_t *o = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 3);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "error");
    assert_string_equal(json_string_value(json_object_get(o, "code")), "rate_limited");
    assert_string_equal(json_string_value(json_object_get(o, "message")), "slow \"down\"\n");
    json_decref(o);
    free(s);

    /* len is optional, and the layout is compact with type first. */
    s = proto_error_frame("x", "y", NULL);
    assert_non_null(s);
    assert_string_equal(s, "{\"type\":\"error\",\"code\":\"x\",\"message\":\"y\"}");
    free(s);
}

/* ---- the server's other frames ---- */

static void test_server_frames(void **state) {
    (void)state;
    size_t len = 0;
    char *s = proto_connection_frame("dev-1", "node-a", "node-a#7", 1700000000123, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    assert_string_equal(s, "{\"type\":\"connection\",\"status\":\"connected\",\"device_id\":"
                           "\"dev-1\",\"node_id\":\"node-a\",\"conn_id\":\"node-a#7\","
                           "\"server_time\":1700000000123}");
    free(s);

    s = proto_room_frame("ABC123", "created", 1, 0, "0a1b2c3d4e5f6071", -1, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    assert_string_equal(s, "{\"type\":\"room\",\"room_id\":\"ABC123\",\"action\":\"created\","
                           "\"total_clients\":1,\"seq\":0,\"epoch\":\"0a1b2c3d4e5f6071\"}");
    free(s);
    s = proto_room_frame("R", "joined", 2, 42, "e", 1, &len);
    assert_non_null(s);
    assert_string_equal(s, "{\"type\":\"room\",\"room_id\":\"R\",\"action\":\"joined\","
                           "\"total_clients\":2,\"seq\":42,\"epoch\":\"e\",\"recovered\":true}");
    free(s);
    s = proto_room_frame("R", "joined", 2, 42, "e", 0, NULL);
    assert_non_null(s);
    assert_non_null(strstr(s, ",\"recovered\":false}"));
    free(s);
    s = proto_ack_frame("m-1", 7, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    assert_string_equal(s, "{\"type\":\"ack\",\"ack_id\":\"m-1\",\"seq\":7}");
    free(s);

    /* member strings are spans: only their given lengths are used, and identities are escaped */
    const char devs[] = "desk-1XXXX", ident[] = "Bob \"B\"\ttail";
    struct proto_member m[] = {{devs, ident, 6, 7}, {"tv", "", 2, 0}};
    s = proto_room_info_frame("ABC123", 3, m, 2, 0, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    assert_string_equal(s, "{\"type\":\"room_info\",\"room_id\":\"ABC123\",\"total_clients\":3,"
                           "\"clients\":[{\"device_id\":\"desk-1\",\"identity\":\"Bob \\\"B\\\"\"},"
                           "{\"device_id\":\"tv\",\"identity\":\"\"}]}");
    free(s);
    s = proto_room_info_frame("R", 500, NULL, 0, 1, NULL);
    assert_non_null(s);
    assert_string_equal(s, "{\"type\":\"room_info\",\"room_id\":\"R\",\"total_clients\":500,"
                           "\"clients\":[],\"truncated\":true}");
    free(s);
}

static void test_pub_header_round_trip(void **state) {
    (void)state;
    char buf[64];
    int n = proto_pub_header(buf, sizeof(buf), 0, "node-a#17", 1764500000123456);
    assert_int_equal(n, 28);
    assert_memory_equal(buf, "Tnode-a#17\t1764500000123456\t", 28);
    memcpy(buf + n, "42\n{}", 5); /* what the send script appends */
    struct proto_pub pub;
    assert_int_equal(proto_pub_parse(buf, (size_t)n + 5, &pub), 0);
    assert_int_equal(pub.kind, PROTO_PUB_TEXT);
    assert_int_equal(pub.conn_len, 9);
    assert_memory_equal(pub.conn, "node-a#17", 9);
    assert_int_equal(pub.seq, 42);
    assert_int_equal(pub.sent_us, 1764500000123456);
    assert_int_equal(pub.frame_len, 2);
    assert_int_equal(proto_pub_header(buf, sizeof(buf), 1, "n#1", 7), 7);
    assert_int_equal(buf[0], PROTO_PUB_BINARY);
    assert_int_equal(proto_pub_header(buf, 7, 1, "n#1", 7), -1); /* no room for the NUL */
}

/* ---- presence ---- */

static void test_identify_presence(void **state) {
    (void)state;
    struct proto_identify id;
    const char *code;
    char msg[200];
    assert_int_equal(identify("{\"device_id\":\"d\"}", &id, &code, msg, sizeof(msg)), 0);
    assert_int_equal(id.presence, -1);
    assert_int_equal(
        identify("{\"device_id\":\"d\",\"presence\":null}", &id, &code, msg, sizeof(msg)), 0);
    assert_int_equal(id.presence, -1);
    assert_int_equal(
        identify("{\"device_id\":\"d\",\"presence\":true}", &id, &code, msg, sizeof(msg)), 0);
    assert_int_equal(id.presence, 1);
    assert_int_equal(
        identify("{\"device_id\":\"d\",\"presence\":false}", &id, &code, msg, sizeof(msg)), 0);
    assert_int_equal(id.presence, 0);
    expect_identify_error("{\"device_id\":\"d\",\"presence\":\"true\"}", PROTO_E_INVALID_IDENTIFY);
    expect_identify_error("{\"device_id\":\"d\",\"presence\":1}", PROTO_E_INVALID_IDENTIFY);
    expect_identify_error("{\"device_id\":\"d\",\"presence\":[]}", PROTO_E_INVALID_IDENTIFY);
}

static void test_presence_parse(void **state) {
    (void)state;
    struct proto_presence p;
    const char join[] = "Pjoin\tnode-a#17\t1764500000123\tdev-1\tMy \"name\"";
    assert_int_equal(proto_presence_parse(join, sizeof(join) - 1, &p), 0);
    assert_int_equal(p.leave, 0);
    assert_int_equal(p.conn_len, 9);
    assert_memory_equal(p.conn, "node-a#17", 9);
    assert_true(p.ts == 1764500000123);
    assert_int_equal(p.device_len, 5);
    assert_memory_equal(p.device, "dev-1", 5);
    assert_int_equal(p.identity_len, 9);
    assert_memory_equal(p.identity, "My \"name\"", 9);
    const char leave[] = "Pleave\tc\t5\td\t";
    assert_int_equal(proto_presence_parse(leave, sizeof(leave) - 1, &p), 0);
    assert_int_equal(p.leave, 1);
    assert_int_equal(p.identity_len, 0);
    /* not presence payloads, or malformed ones */
    const char *bad[] = {"",
                         "P",
                         "Tjoin\tc\t5\td\ti",
                         "Pjoined\tc\t5\td\ti",
                         "Pjoin\tc\t5\td",
                         "Pjoin\tc\tx\td\ti",
                         "Pjoin\tc\t\td\ti",
                         "Pjoin\tc\t5\t\ti",
                         "Pjoin\tc\t9223372036854775808\td\ti"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(proto_presence_parse(bad[i], strlen(bad[i]), &p), -1);
    /* a relayed message is not one, and a presence payload is not a relayed message */
    struct proto_pub pub;
    assert_int_equal(proto_pub_parse(join, sizeof(join) - 1, &pub), -1);
    assert_int_equal(proto_presence_parse("Tc\t7\n{}", 7, &p), -1);
}

static void test_presence_frame(void **state) {
    (void)state;
    struct proto_presence p;
    const char join[] = "Pleave\tn#1\t1764500000123\tdev-1\tA \"b\" \xc3\xa9";
    assert_int_equal(proto_presence_parse(join, sizeof(join) - 1, &p), 0);
    size_t len;
    char *f = proto_presence_frame(&p, "ROOM1", &len);
    assert_non_null(f);
    assert_string_equal(f, "{\"type\":\"leave\",\"device_id\":\"dev-1\",\"identity\":\"A \\\"b\\\" "
                           "\xc3\xa9\",\"room_id\":\"ROOM1\",\"ts\":1764500000123}");
    assert_int_equal(len, strlen(f));
    free(f);
}

/* ---- proto_pub_parse ---- */

static void test_pub_parse_text(void **state) {
    (void)state;
    const char payload[] = "Tnode-a#17\n{\"type\":\"chat\"}";
    struct proto_pub pub;
    assert_int_equal(proto_pub_parse(payload, sizeof(payload) - 1, &pub), 0);
    assert_int_equal(pub.kind, PROTO_PUB_TEXT);
    assert_int_equal(pub.conn_len, strlen("node-a#17"));
    assert_memory_equal(pub.conn, "node-a#17", pub.conn_len);
    assert_ptr_equal(pub.conn, payload + 1);
    assert_int_equal(pub.frame_len, strlen("{\"type\":\"chat\"}"));
    assert_memory_equal(pub.frame, "{\"type\":\"chat\"}", pub.frame_len);
    assert_int_equal(pub.seq, 0); /* an earlier version's payload: no seq */
}

static void test_pub_parse_seq(void **state) {
    (void)state;
    const char payload[] = "Bn#1\t18446744073709551615\n\t\n";
    struct proto_pub pub;
    assert_int_equal(proto_pub_parse(payload, sizeof(payload) - 1, &pub), 0);
    assert_int_equal(pub.kind, PROTO_PUB_BINARY);
    assert_int_equal(pub.conn_len, 3);
    assert_memory_equal(pub.conn, "n#1", 3);
    assert_true(pub.seq == UINT64_MAX);
    assert_int_equal(pub.frame_len, 2);
    assert_memory_equal(pub.frame, "\t\n", 2);
    assert_int_equal(proto_pub_parse("Tc\t7\n", 5, &pub), 0);
    assert_int_equal(pub.seq, 7);
    assert_int_equal(pub.frame_len, 0);
    /* a seq must be 1-20 digits that fit in 64 bits */
    assert_int_equal(proto_pub_parse("Tc\t\n{}", 6, &pub), -1);
    assert_int_equal(proto_pub_parse("Tc\t1x\n{}", 8, &pub), -1);
    assert_int_equal(proto_pub_parse("Tc\t-1\n{}", 8, &pub), -1);
    assert_int_equal(proto_pub_parse("Tc\t18446744073709551616\n", 24, &pub), -1);
    assert_int_equal(proto_pub_parse("Tc\t000000000000000000001\n", 25, &pub), -1);
    assert_int_equal(pub.sent_us, 0);
    /* with the sender's time before the seq: both 1-20 digits that fit in 64 bits */
    assert_int_equal(proto_pub_parse("Tc\t17\t5\n{}", 10, &pub), 0);
    assert_int_equal(pub.sent_us, 17);
    assert_int_equal(pub.seq, 5);
    assert_int_equal(pub.conn_len, 1);
    assert_int_equal(pub.frame_len, 2);
    assert_int_equal(proto_pub_parse("Tc\t\t5\n{}", 8, &pub), -1);
    assert_int_equal(proto_pub_parse("Tc\t17\t\n{}", 9, &pub), -1);
    assert_int_equal(proto_pub_parse("Tc\t1x\t5\n{}", 10, &pub), -1);
    assert_int_equal(proto_pub_parse("Tc\t1\t2\t3\n{}", 11, &pub), -1);
    assert_int_equal(proto_pub_parse("Tc\t18446744073709551616\t1\n", 26, &pub), -1);
}

static void test_pub_parse_binary_with_newlines_and_nul(void **state) {
    (void)state;
    const char payload[] = "Bn#1\n\x00\n\xff\n";
    size_t len = sizeof(payload) - 1;
    struct proto_pub pub;
    assert_int_equal(proto_pub_parse(payload, len, &pub), 0);
    assert_int_equal(pub.kind, PROTO_PUB_BINARY);
    assert_int_equal(pub.conn_len, 3);
    assert_memory_equal(pub.conn, "n#1", 3);
    assert_int_equal(pub.frame_len, 4);
    assert_memory_equal(pub.frame, "\x00\n\xff\n", 4);
}

static void test_pub_parse_empty_frame(void **state) {
    (void)state;
    struct proto_pub pub;
    assert_int_equal(proto_pub_parse("Tc\n", 3, &pub), 0);
    assert_int_equal(pub.conn_len, 1);
    assert_int_equal(pub.frame_len, 0);
}

static void test_pub_parse_malformed(void **state) {
    (void)state;
    struct proto_pub pub;
    assert_int_equal(proto_pub_parse("", 0, &pub), -1);
    assert_int_equal(proto_pub_parse("T", 1, &pub), -1);
    assert_int_equal(proto_pub_parse("Xc\nframe", 8, &pub), -1);
    assert_int_equal(proto_pub_parse("tc\nframe", 8, &pub), -1);
    assert_int_equal(proto_pub_parse("Tconn-without-newline", 21, &pub), -1);
    /* The newline must be inside len. */
    assert_int_equal(proto_pub_parse("Tconn\nframe", 5, &pub), -1);
}

/* ---- proto_random_room_id ---- */

static void test_random_room_id(void **state) {
    (void)state;
    char first[PROTO_ROOM_ID_LEN + 1];
    int all_equal = 1;
    for (int i = 0; i < 1000; i++) {
        char id[PROTO_ROOM_ID_LEN + 2];
        memset(id, '!', sizeof(id));
        assert_int_equal(proto_random_room_id(id), 0);
        assert_int_equal(id[PROTO_ROOM_ID_LEN], '\0');
        assert_int_equal(id[PROTO_ROOM_ID_LEN + 1], '!'); /* nothing written past the NUL */
        assert_int_equal(strlen(id), PROTO_ROOM_ID_LEN);
        for (int k = 0; k < PROTO_ROOM_ID_LEN; k++) {
            char c = id[k];
            assert_true((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
        }
        /* Generated ids must pass the room id rule of identify. */
        assert_int_equal(proto_valid_id(id, PROTO_ROOM_ID_LEN, PROTO_MAX_ROOM_ID), 1);
        if (i == 0)
            memcpy(first, id, sizeof(first));
        else if (strcmp(first, id) != 0)
            all_equal = 0;
    }
    assert_false(all_equal);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_id_accepts_allowed_characters),
        cmocka_unit_test(test_valid_id_rejects_empty_and_too_long),
        cmocka_unit_test(test_valid_id_rejects_other_characters),
        cmocka_unit_test(test_valid_id_uses_len_not_nul),
        cmocka_unit_test(test_identify_full),
        cmocka_unit_test(test_identify_device_only),
        cmocka_unit_test(test_identify_null_and_empty_optional_fields),
        cmocka_unit_test(test_identify_ignores_unknown_fields),
        cmocka_unit_test(test_identify_uses_len),
        cmocka_unit_test(test_identify_invalid_json),
        cmocka_unit_test(test_identify_not_an_object),
        cmocka_unit_test(test_identify_missing_device),
        cmocka_unit_test(test_identify_bad_device),
        cmocka_unit_test(test_identify_device_length_limit),
        cmocka_unit_test(test_identify_identity_rules),
        cmocka_unit_test(test_identify_room_rules),
        cmocka_unit_test(test_identify_message_truncated_to_msglen),
        cmocka_unit_test(test_classify_invalid_json),
        cmocka_unit_test(test_raw_nul_is_invalid_json),
        cmocka_unit_test(test_classify_query_room),
        cmocka_unit_test(test_classify_text_and_json),
        cmocka_unit_test(test_classify_non_objects_relay),
        cmocka_unit_test(test_envelope_object),
        cmocka_unit_test(test_envelope_overwrites_spoofed_fields),
        cmocka_unit_test(test_envelope_empty_object),
        cmocka_unit_test(test_envelope_wraps_non_objects),
        cmocka_unit_test(test_envelope_escapes_strings),
        cmocka_unit_test(test_envelope_splices_client_text),
        cmocka_unit_test(test_envelope_escaped_server_key_is_rebuilt),
        cmocka_unit_test(test_error_frame),
        cmocka_unit_test(test_pub_parse_text),
        cmocka_unit_test(test_pub_parse_seq),
        cmocka_unit_test(test_identify_resume_fields),
        cmocka_unit_test(test_ack_id),
        cmocka_unit_test(test_envelope_strips_ack_id),
        cmocka_unit_test(test_pub_parse_binary_with_newlines_and_nul),
        cmocka_unit_test(test_pub_parse_empty_frame),
        cmocka_unit_test(test_pub_parse_malformed),
        cmocka_unit_test(test_random_room_id),
        cmocka_unit_test(test_server_frames),
        cmocka_unit_test(test_pub_header_round_trip),
        cmocka_unit_test(test_identify_presence),
        cmocka_unit_test(test_presence_parse),
        cmocka_unit_test(test_presence_frame),
        /* Last: proto_classify reads freed memory here, which aborts the sanitizer build. */
        cmocka_unit_test(test_classify_reserved_types),
        cmocka_unit_test(test_classify_refresh),
        cmocka_unit_test(test_identify_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
