/* Fuzzes the identify frame: proto_parse_identify and the id rule proto_valid_id. Whatever the
 * input, an accepted identify must hold exactly what the JSON said, within the limits, and a
 * refusal must name a code that matches why. */
#include "fuzz.h"
#include "proto.h"

#include <jansson.h>
#include <string.h>

/* The id rule, written independently of proto.c. */
static int id_ok(const char *s, size_t len, size_t max) {
    static const char allowed[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@-";
    if (len < 1 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0' || !strchr(allowed, s[i]))
            return 0;
    return 1;
}

/* A NUL-terminated field that fits its array. */
static size_t field_len(const char *field, size_t cap) {
    const char *nul = memchr(field, '\0', cap);
    FUZZ_CHECK(nul != NULL);
    return (size_t)(nul - field);
}

/* The string member key of root as the accepted identify must hold it ("" when absent, null, or
 * an empty room). */
static void expect_member(json_t *root, const char *key, const char *got, size_t got_len) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        FUZZ_CHECK(got_len == 0);
        return;
    }
    FUZZ_CHECK(json_is_string(v));
    FUZZ_CHECK(json_string_length(v) == got_len);
    FUZZ_CHECK(memcmp(json_string_value(v), got, got_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    FUZZ_CHECK(proto_valid_id(buf, size, PROTO_MAX_ROOM_ID) == id_ok(buf, size, PROTO_MAX_ROOM_ID));
    FUZZ_CHECK(proto_valid_id(buf, size, PROTO_MAX_DEVICE_ID) ==
               id_ok(buf, size, PROTO_MAX_DEVICE_ID));

    struct proto_identify id;
    const char *code = NULL;
    char msg[160] = "";
    int rc = proto_parse_identify(buf, size, &id, &code, msg, sizeof(msg));

    json_t *root = fuzz_json_load(buf, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(code != NULL && msg[0] != '\0');
        FUZZ_CHECK((strcmp(code, PROTO_E_INVALID_JSON) == 0) == (root == NULL));
        FUZZ_CHECK(strcmp(code, PROTO_E_INVALID_JSON) == 0 ||
                   strcmp(code, PROTO_E_INVALID_IDENTIFY) == 0 ||
                   strcmp(code, PROTO_E_INVALID_DEVICE_ID) == 0 ||
                   strcmp(code, PROTO_E_INVALID_ROOM_ID) == 0 ||
                   strcmp(code, PROTO_E_INVALID_IDENTITY) == 0);
        json_decref(root);
        return 0;
    }

    FUZZ_CHECK(root != NULL && json_is_object(root));
    size_t dl = field_len(id.device_id, sizeof(id.device_id));
    size_t il = field_len(id.identity, sizeof(id.identity));
    size_t rl = field_len(id.room_id, sizeof(id.room_id));
    FUZZ_CHECK(id_ok(id.device_id, dl, PROTO_MAX_DEVICE_ID));
    FUZZ_CHECK(rl == 0 || id_ok(id.room_id, rl, PROTO_MAX_ROOM_ID));
    FUZZ_CHECK(il <= PROTO_MAX_IDENTITY);
    for (size_t i = 0; i < il; i++)
        FUZZ_CHECK((unsigned char)id.identity[i] >= 0x20 && id.identity[i] != 0x7f);
    expect_member(root, "device_id", id.device_id, dl);
    expect_member(root, "identity", id.identity, il);
    expect_member(root, "room_id", id.room_id, rl);
    /* resume: last_seq an integer >= 0; epoch an id, and only with last_seq */
    json_t *last = json_object_get(root, "last_seq");
    int has_last = last && !json_is_null(last);
    FUZZ_CHECK(id.resume == has_last);
    if (has_last)
        FUZZ_CHECK(json_is_integer(last) && json_integer_value(last) >= 0 &&
                   id.last_seq == (int64_t)json_integer_value(last));
    size_t el = field_len(id.epoch, sizeof(id.epoch));
    FUZZ_CHECK(el == 0 || (has_last && id_ok(id.epoch, el, PROTO_MAX_EPOCH)));
    expect_member(root, "epoch", id.epoch, el);
    json_decref(root);
    return 0;
}
