/* Client protocol logic (see proto.h). */
#include "proto.h"

#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int proto_valid_id(const char *s, size_t len, size_t max) {
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == ':' || c == '@' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

static int fail(const char **code, const char *c, char *msg, size_t msglen, const char *m) {
    *code = c;
    snprintf(msg, msglen, "%s", m);
    return -1;
}

/* Identity is free text but may not carry control characters (they break logs and terminals):
 * C0, DEL, and C1 (U+0080-U+009F, which UTF-8 encodes as C2 80 - C2 9F; jansson has already
 * checked that the string is valid UTF-8). */
int proto_valid_identity(const char *s, size_t len) {
    if (len > PROTO_MAX_IDENTITY)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] < 0xa0)
            return 0;
    }
    return 1;
}

/* JSON has no raw NUL byte (in strings it must be escaped), but jansson 2.14 skips one right
 * after a number or a literal ({"a":1<NUL>} loads). Such a frame is not JSON: relaying its text
 * as it is would hand the other members something that is not JSON either. */
static json_t *load_json(const char *buf, size_t len, size_t flags) {
    json_error_t jerr;
    if (len > 0 && memchr(buf, '\0', len))
        return NULL;
    return json_loadb(buf, len, flags, &jerr);
}

int proto_parse_identify(const char *buf, size_t len, struct proto_identify *out, const char **code,
                         char *msg, size_t msglen) {
    json_t *root = load_json(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES);
    memset(out, 0, sizeof(*out));
    if (!root)
        return fail(code, PROTO_E_INVALID_JSON, msg, msglen,
                    "first frame must be JSON: {\"device_id\":...}");
    int rc = -1;
    if (!json_is_object(root)) {
        fail(code, PROTO_E_INVALID_IDENTIFY, msg, msglen,
             "first frame must be an object with device_id");
        goto out;
    }
    json_t *dev = json_object_get(root, "device_id");
    if (!dev) {
        fail(code, PROTO_E_INVALID_IDENTIFY, msg, msglen, "device_id is required");
        goto out;
    }
    if (!json_is_string(dev) ||
        !proto_valid_id(json_string_value(dev), json_string_length(dev), PROTO_MAX_DEVICE_ID)) {
        fail(code, PROTO_E_INVALID_DEVICE_ID, msg, msglen,
             "device_id must be a string of 1-128 characters from A-Z a-z 0-9 _ . : @ -");
        goto out;
    }
    memcpy(out->device_id, json_string_value(dev), json_string_length(dev) + 1);

    json_t *ident = json_object_get(root, "identity");
    if (ident && !json_is_null(ident)) {
        if (!json_is_string(ident) ||
            !proto_valid_identity(json_string_value(ident), json_string_length(ident))) {
            fail(code, PROTO_E_INVALID_IDENTITY, msg, msglen,
                 "identity must be a string of at most 256 bytes without control characters");
            goto out;
        }
        memcpy(out->identity, json_string_value(ident), json_string_length(ident) + 1);
    }

    json_t *room = json_object_get(root, "room_id");
    if (room && !json_is_null(room) && !(json_is_string(room) && json_string_length(room) == 0)) {
        if (!json_is_string(room) ||
            !proto_valid_id(json_string_value(room), json_string_length(room), PROTO_MAX_ROOM_ID)) {
            fail(code, PROTO_E_INVALID_ROOM_ID, msg, msglen,
                 "room_id must be a string of 1-64 characters from A-Z a-z 0-9 _ . : @ -");
            goto out;
        }
        memcpy(out->room_id, json_string_value(room), json_string_length(room) + 1);
    }

    json_t *presence = json_object_get(root, "presence");
    out->presence = -1;
    if (presence && !json_is_null(presence)) {
        if (!json_is_boolean(presence)) {
            fail(code, PROTO_E_INVALID_IDENTIFY, msg, msglen,
                 "presence must be true or false (receive the room's join and leave events)");
            goto out;
        }
        out->presence = json_is_true(presence);
    }

    json_t *last = json_object_get(root, "last_seq");
    json_t *epoch = json_object_get(root, "epoch");
    if (last && !json_is_null(last)) {
        if (!json_is_integer(last) || json_integer_value(last) < 0) {
            fail(code, PROTO_E_INVALID_IDENTIFY, msg, msglen,
                 "last_seq must be an integer >= 0 (the seq of the last message received)");
            goto out;
        }
        out->resume = 1;
        out->last_seq = (int64_t)json_integer_value(last);
    }
    if (epoch && !json_is_null(epoch)) {
        if (!out->resume || !json_is_string(epoch) ||
            !proto_valid_id(json_string_value(epoch), json_string_length(epoch), PROTO_MAX_EPOCH)) {
            fail(code, PROTO_E_INVALID_IDENTIFY, msg, msglen,
                 "epoch must come with last_seq and be a string of 1-64 characters from A-Z a-z "
                 "0-9 _ . : @ -");
            goto out;
        }
        memcpy(out->epoch, json_string_value(epoch), json_string_length(epoch) + 1);
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int proto_identify_token(const char *buf, size_t len, char **token) {
    *token = NULL;
    json_t *root = load_json(buf, len, JSON_DECODE_ANY);
    json_t *t = json_object_get(root, "token");
    int rc = !json_is_object(root) ? -1 : !t || json_is_null(t) ? 0 : json_is_string(t) ? 1 : -1;
    if (rc == 1 && !(*token = strndup(json_string_value(t), json_string_length(t))))
        rc = -1;
    json_decref(root);
    return rc;
}

int proto_random_room_id(char out[PROTO_ROOM_ID_LEN + 1]) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t filled = 0;
    while (filled < PROTO_ROOM_ID_LEN) {
        unsigned char rnd[16];
        if (util_random(rnd, sizeof(rnd)) < 0)
            return -1;
        /* 252 = 7 * 36: rejecting larger bytes keeps every character equally likely. */
        for (size_t i = 0; i < sizeof(rnd) && filled < PROTO_ROOM_ID_LEN; i++)
            if (rnd[i] < 252)
                out[filled++] = alphabet[rnd[i] % 36];
    }
    out[PROTO_ROOM_ID_LEN] = '\0';
    return 0;
}

/* Types the server sends; a client sending one would impersonate the server. */
static int reserved_type(const char *t) {
    return strcmp(t, "connection") == 0 || strcmp(t, "room") == 0 || strcmp(t, "room_info") == 0 ||
           strcmp(t, "error") == 0 || strcmp(t, "refreshed") == 0 || strcmp(t, "ack") == 0 ||
           strcmp(t, "join") == 0 || strcmp(t, "leave") == 0;
}

int proto_ack_id(const json_t *value, const char **ack) {
    *ack = NULL;
    json_t *a = json_is_object(value) ? json_object_get(value, "ack_id") : NULL;
    if (!a)
        return 0;
    if (!json_is_string(a) ||
        !proto_valid_id(json_string_value(a), json_string_length(a), PROTO_MAX_ACK_ID))
        return -1;
    *ack = json_string_value(a);
    return 1;
}

enum proto_kind proto_classify(const char *buf, size_t len, json_t **value, const char **msg_type,
                               const char **code, char *msg, size_t msglen) {
    *value = NULL;
    json_t *root = load_json(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL);
    if (!root) {
        fail(code, PROTO_E_INVALID_JSON, msg, msglen, "text frames must be valid JSON");
        return PROTO_REJECT;
    }
    *msg_type = "json";
    if (json_is_object(root)) {
        json_t *type = json_object_get(root, "type");
        if (json_is_string(type)) {
            const char *t = json_string_value(type);
            if (strcmp(t, "query_room") == 0) {
                json_decref(root);
                return PROTO_QUERY_ROOM;
            }
            if (strcmp(t, "refresh") == 0) {
                *value = root;
                return PROTO_REFRESH;
            }
            if (reserved_type(t)) {
                snprintf(msg, msglen, "type '%s' is sent by the server only", t);
                json_decref(root);
                *code = PROTO_E_RESERVED_TYPE;
                return PROTO_REJECT;
            }
            if (strcmp(t, "text") == 0)
                *msg_type = "text";
        }
    }
    *value = root;
    return PROTO_RELAY;
}

/* The server's fields, and the sender's ack_id: an object with any of them is dumped again. */
static const char *const server_fields[] = {"from_device_id", "room_id", "ts", "seq", "ack_id"};

/* The client's object text with the server's fields in place of its closing '}', or NULL when
 * the text cannot be used as it is. Ids are validated to need no escaping. */
static char *splice(const json_t *value, const char *text, size_t text_len, const char *device_id,
                    const char *room_id, int64_t ts_ms, size_t *len) {
    for (size_t i = 0; i < sizeof(server_fields) / sizeof(server_fields[0]); i++)
        if (json_object_get(value, server_fields[i]))
            return NULL;
    size_t end = text_len;
    while (end > 0 && (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\n' ||
                       text[end - 1] == '\r'))
        end--;
    if (end == 0 || text[end - 1] != '}')
        return NULL;
    end--; /* drop the '}' */
    size_t cap = end + strlen(device_id) + strlen(room_id) + 80;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    memcpy(s, text, end);
    char ts[21];
    util_u64_dec(ts, (uint64_t)(ts_ms > 0 ? ts_ms : 0));
    const char *parts[] = {json_object_size(value) ? "," : "",
                           "\"from_device_id\":\"",
                           device_id,
                           "\",\"room_id\":\"",
                           room_id,
                           "\",\"ts\":",
                           ts};
    int n = util_concat(s + end, cap - end, parts, 7);
    if (n < 0) {
        free(s);
        return NULL;
    }
    *len = end + (size_t)n;
    return s;
}

char *proto_envelope_prefix(json_t *value, const char *text, size_t text_len, const char *device_id,
                            const char *room_id, int64_t ts_ms, size_t *len) {
    if (json_is_object(value) && text) {
        char *s = splice(value, text, text_len, device_id, room_id, ts_ms, len);
        if (s)
            return s;
    }
    json_t *env;
    if (json_is_object(value)) {
        env = json_incref(value);
        json_object_del(env, "seq");
        json_object_del(env, "ack_id");
    } else {
        env = json_object();
        json_object_set_new(env, "type", json_string("message"));
        json_object_set(env, "data", value);
    }
    json_object_set_new(env, "from_device_id", json_string(device_id));
    json_object_set_new(env, "room_id", json_string(room_id));
    json_object_set_new(env, "ts", json_integer(ts_ms));
    char *s = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(env);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    /* An object dump always ends with '}'; the caller appends ,"seq":N} in its place. */
    s[n - 1] = '\0';
    *len = n - 1;
    return s;
}

/* Dumps o compactly in its insertion order and drops it. */
static char *dump_frame(json_t *o, size_t *len) {
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (s && len)
        *len = strlen(s);
    return s;
}

char *proto_error_frame(const char *code, const char *message, size_t *len) {
    return dump_frame(
        json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message), len);
}

char *proto_refreshed_frame(int64_t exp, size_t *len) {
    return dump_frame(json_pack("{s:s, s:I}", "type", "refreshed", "exp", (json_int_t)exp), len);
}

char *proto_connection_frame(const char *device_id, const char *node_id, const char *conn_id,
                             int64_t server_time_ms, size_t *len) {
    return dump_frame(json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "type", "connection", "status",
                                "connected", "device_id", device_id, "node_id", node_id, "conn_id",
                                conn_id, "server_time", (json_int_t)server_time_ms),
                      len);
}

char *proto_room_frame(const char *room_id, const char *action, long long total, long long seq,
                       const char *epoch, int recovered, size_t *len) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "type", "room", "room_id", room_id,
                          "action", action, "total_clients", (json_int_t)total, "seq",
                          (json_int_t)seq, "epoch", epoch);
    if (o && recovered >= 0)
        json_object_set_new(o, "recovered", json_boolean(recovered));
    return dump_frame(o, len);
}

char *proto_ack_frame(const char *ack_id, long long seq, size_t *len) {
    return dump_frame(
        json_pack("{s:s, s:s, s:I}", "type", "ack", "ack_id", ack_id, "seq", (json_int_t)seq), len);
}

char *proto_room_info_frame(const char *room_id, long long total, const struct proto_member *m,
                            size_t n, int truncated, size_t *len) {
    json_t *clients = json_array();
    for (size_t i = 0; clients && i < n; i++)
        json_array_append_new(clients, json_pack("{s:s%, s:s%}", "device_id", m[i].device_id,
                                                 m[i].device_len, "identity", m[i].identity,
                                                 m[i].identity_len));
    json_t *info = json_pack("{s:s, s:s, s:I, s:o}", "type", "room_info", "room_id", room_id,
                             "total_clients", (json_int_t)total, "clients", clients);
    if (info && truncated)
        json_object_set_new(info, "truncated", json_true());
    return dump_frame(info, len);
}

int proto_pub_header(char *buf, size_t cap, int binary, const char *conn, uint64_t sent_us) {
    char num[21];
    util_u64_dec(num, sent_us);
    const char *parts[] = {binary ? "B" : "T", conn, "\t", num, "\t"};
    return util_concat(buf, cap, parts, 5);
}

/* The decimal number in [p, end): 1-20 digits that fit in 64 bits. 0 or -1. */
static int pub_number(const char *p, const char *end, uint64_t *out) {
    size_t digits = (size_t)(end - p);
    if (digits == 0 || digits > 20)
        return -1;
    uint64_t v = 0;
    for (; p < end; p++) {
        uint64_t digit = (uint64_t)(*p - '0');
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

int proto_pub_parse(const char *payload, size_t len, struct proto_pub *out) {
    if (len < 2 || (payload[0] != PROTO_PUB_TEXT && payload[0] != PROTO_PUB_BINARY))
        return -1;
    const char *nl = memchr(payload + 1, '\n', len - 1);
    if (!nl)
        return -1;
    out->kind = payload[0];
    out->conn = payload + 1;
    out->conn_len = (size_t)(nl - payload - 1);
    out->seq = 0;
    out->sent_us = 0;
    const char *tab = memchr(out->conn, '\t', out->conn_len);
    if (tab) {
        out->conn_len = (size_t)(tab - out->conn);
        const char *tab2 = memchr(tab + 1, '\t', (size_t)(nl - tab - 1));
        if (tab2 ? pub_number(tab + 1, tab2, &out->sent_us) || pub_number(tab2 + 1, nl, &out->seq)
                 : pub_number(tab + 1, nl, &out->seq))
            return -1;
    }
    out->frame = nl + 1;
    out->frame_len = len - (size_t)(nl + 1 - payload);
    return 0;
}

/* The next field of a presence payload, from *p to the next tab (the last one: to end); -1 if a
 * tab was wanted and there is none. */
static int presence_field(const char **p, const char *end, int last, const char **f, size_t *n) {
    const char *tab = last ? NULL : memchr(*p, '\t', (size_t)(end - *p));
    if (!last && !tab)
        return -1;
    *f = *p;
    *n = (size_t)((last ? end : tab) - *p);
    *p = last ? end : tab + 1;
    return 0;
}

int proto_presence_parse(const char *payload, size_t len, struct proto_presence *out) {
    const char *p = payload, *end = payload + len, *type, *ts;
    size_t type_len, ts_len;
    uint64_t t;
    if (len < 2 || payload[0] != PROTO_PUB_PRESENCE)
        return -1;
    p++;
    if (presence_field(&p, end, 0, &type, &type_len) ||
        presence_field(&p, end, 0, &out->conn, &out->conn_len) ||
        presence_field(&p, end, 0, &ts, &ts_len) ||
        presence_field(&p, end, 0, &out->device, &out->device_len) ||
        presence_field(&p, end, 1, &out->identity, &out->identity_len) ||
        pub_number(ts, ts + ts_len, &t) || t > INT64_MAX || out->device_len == 0)
        return -1;
    if (type_len == 4 && memcmp(type, "join", 4) == 0)
        out->leave = 0;
    else if (type_len == 5 && memcmp(type, "leave", 5) == 0)
        out->leave = 1;
    else
        return -1;
    out->ts = (int64_t)t;
    return 0;
}

char *proto_presence_frame(const struct proto_presence *p, const char *room_id, size_t *len) {
    json_t *o = json_pack("{s:s, s:s#, s:s#, s:s, s:I}", "type", p->leave ? "leave" : "join",
                          "device_id", p->device, (int)p->device_len, "identity", p->identity,
                          (int)p->identity_len, "room_id", room_id, "ts", (json_int_t)p->ts);
    return dump_frame(o, len);
}
