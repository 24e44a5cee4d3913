/* Fuzzes what happens to a text frame from an identified client: proto_classify, then for a relay
 * proto_envelope_prefix and the sequence number appended as the send script does. The relayed
 * frame must be one valid JSON object whose server fields (from_device_id, room_id, ts, seq) are
 * the server's, each exactly once, and which otherwise carries exactly what the client sent,
 * except its ack_id (for the sender only, never relayed). */
#include "fuzz.h"
#include "proto.h"

#include <jansson.h>
#include <string.h>

#define DEVICE "dev-1"
#define ROOM "ROOM01"
#define TS 1732550000123LL
#define SEQ 42

static const char *const server_fields[] = {"from_device_id", "room_id", "ts", "seq", "ack_id"};

static int is_server_field(const char *key) {
    for (size_t i = 0; i < sizeof(server_fields) / sizeof(server_fields[0]); i++)
        if (strcmp(key, server_fields[i]) == 0)
            return 1;
    return 0;
}

/* The "type" of an object, or NULL. */
static const char *type_of(json_t *v) {
    json_t *t = json_is_object(v) ? json_object_get(v, "type") : NULL;
    return json_is_string(t) ? json_string_value(t) : NULL;
}

static int reserved(const char *t) {
    return t &&
           (strcmp(t, "connection") == 0 || strcmp(t, "room") == 0 || strcmp(t, "room_info") == 0 ||
            strcmp(t, "error") == 0 || strcmp(t, "refreshed") == 0 || strcmp(t, "ack") == 0 ||
            strcmp(t, "join") == 0 || strcmp(t, "leave") == 0);
}

static void check_relayed(json_t *sent, const char *text, size_t len, json_t *value) {
    size_t plen = 0;
    char *prefix = proto_envelope_prefix(value, text, len, DEVICE, ROOM, TS, &plen);
    FUZZ_CHECK(prefix != NULL);
    FUZZ_CHECK(memchr(prefix, '\0', plen) == NULL);
    char tail[32];
    int tl = snprintf(tail, sizeof(tail), ",\"seq\":%d}", SEQ);
    char *frame = malloc(plen + (size_t)tl);
    FUZZ_CHECK(frame != NULL);
    memcpy(frame, prefix, plen);
    memcpy(frame + plen, tail, (size_t)tl);
    size_t flen = plen + (size_t)tl;
    free(prefix);

    /* valid JSON, with no duplicate key unless the client wrote one */
    json_t *out = fuzz_json_load(frame, flen, JSON_ALLOW_NUL);
    if (!out)
        fprintf(stderr, "relayed frame is not JSON: %.*s\n", (int)flen, frame);
    FUZZ_CHECK(out != NULL);
    FUZZ_CHECK(json_is_object(out));
    json_t *strict = fuzz_json_load(frame, flen, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES);
    json_t *sent_strict =
        fuzz_json_load(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES);
    FUZZ_CHECK(strict != NULL || sent_strict == NULL);
    json_decref(strict);
    json_decref(sent_strict);
    free(frame);

    /* the server's fields */
    FUZZ_CHECK(json_is_string(json_object_get(out, "from_device_id")));
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(out, "from_device_id")), DEVICE) == 0);
    FUZZ_CHECK(json_is_string(json_object_get(out, "room_id")));
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(out, "room_id")), ROOM) == 0);
    FUZZ_CHECK(json_is_integer(json_object_get(out, "ts")));
    FUZZ_CHECK(json_integer_value(json_object_get(out, "ts")) == TS);
    FUZZ_CHECK(json_is_integer(json_object_get(out, "seq")));
    FUZZ_CHECK(json_integer_value(json_object_get(out, "seq")) == SEQ);
    FUZZ_CHECK(json_object_get(out, "ack_id") == NULL);

    /* and the client's, unchanged */
    size_t want = 4;
    if (json_is_object(sent)) {
        const char *key;
        json_t *v;
        json_object_foreach(sent, key, v) {
            if (is_server_field(key))
                continue;
            want++;
            FUZZ_CHECK(json_equal(json_object_get(out, key), v));
        }
    } else {
        want += 2;
        FUZZ_CHECK(strcmp(type_of(out) ? type_of(out) : "", "message") == 0);
        FUZZ_CHECK(json_equal(json_object_get(out, "data"), sent));
    }
    FUZZ_CHECK(json_object_size(out) == want);
    json_decref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    json_t *value = (json_t *)1;
    const char *msg_type = NULL, *code = NULL;
    char msg[160] = "";
    enum proto_kind kind = proto_classify(text, size, &value, &msg_type, &code, msg, sizeof(msg));

    json_t *sent = fuzz_json_load(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL);
    const char *type = type_of(sent);
    switch (kind) {
    case PROTO_QUERY_ROOM:
        FUZZ_CHECK(value == NULL);
        FUZZ_CHECK(type && strcmp(type, "query_room") == 0);
        break;
    case PROTO_REFRESH:
        /* never relayed: the caller gets the object to read its token from */
        FUZZ_CHECK(value != NULL && json_equal(value, sent));
        FUZZ_CHECK(type && strcmp(type, "refresh") == 0);
        json_decref(value);
        break;
    case PROTO_REJECT:
        FUZZ_CHECK(value == NULL);
        FUZZ_CHECK(code != NULL && msg[0] != '\0');
        if (!sent)
            FUZZ_CHECK(strcmp(code, PROTO_E_INVALID_JSON) == 0);
        else
            FUZZ_CHECK(strcmp(code, PROTO_E_RESERVED_TYPE) == 0 && reserved(type));
        break;
    case PROTO_RELAY:
        FUZZ_CHECK(sent != NULL && value != NULL && json_equal(value, sent));
        FUZZ_CHECK(!reserved(type) && !(type && strcmp(type, "query_room") == 0));
        FUZZ_CHECK(!(type && strcmp(type, "refresh") == 0));
        FUZZ_CHECK(msg_type != NULL);
        FUZZ_CHECK(strcmp(msg_type, type && strcmp(type, "text") == 0 ? "text" : "json") == 0);
        check_relayed(sent, text, size, value);
        json_decref(value);
        break;
    default:
        FUZZ_CHECK(!"unknown proto_kind");
    }
    json_decref(sent);
    return 0;
}
