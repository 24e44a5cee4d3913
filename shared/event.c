/* Encoding and decoding of archive events (format in event.h). */
#include "event.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const type_names[EV_TYPE_COUNT] = {
    "connect", "room", "message", "query", "disconnect", "room_created", "room_recycled",
};

const char *event_type_name(enum event_type t) {
    return (t >= 0 && t < EV_TYPE_COUNT) ? type_names[t] : "unknown";
}

int event_type_parse(const char *s, size_t len) {
    for (int i = 0; i < EV_TYPE_COUNT; i++)
        if (strlen(type_names[i]) == len && memcmp(type_names[i], s, len) == 0)
            return i;
    return -1;
}

static void put(struct event_field *out, size_t *n, const char *name, const char *v, size_t len) {
    out[*n].name = name;
    out[*n].value = v;
    out[*n].len = len;
    (*n)++;
}

static void put_str(struct event_field *out, size_t *n, const char *name, struct event_str s) {
    if (s.p)
        put(out, n, name, s.p, s.len);
}

static void put_num(struct event_field *out, size_t *n, const char *name, char *buf, size_t cap,
                    int64_t v) {
    int len = snprintf(buf, cap, "%" PRId64, v);
    put(out, n, name, buf, (size_t)len);
}

size_t event_encode(const struct rrm_event *ev, struct event_field *out,
                    struct event_numbers *nums) {
    size_t n = 0;
    const char *type = event_type_name(ev->type);
    put(out, &n, "v", EVENT_VERSION, strlen(EVENT_VERSION));
    put(out, &n, "type", type, strlen(type));
    put_num(out, &n, "ts", nums->ts, sizeof(nums->ts), ev->ts);
    put_str(out, &n, "node", ev->node);
    put_str(out, &n, "conn", ev->conn);
    put_str(out, &n, "device", ev->device);
    put_str(out, &n, "identity", ev->identity);
    put_str(out, &n, "ip", ev->ip);
    put_str(out, &n, "room", ev->room);
    put_str(out, &n, "action", ev->action);
    put_str(out, &n, "kind", ev->kind);
    put_str(out, &n, "reason", ev->reason);
    put_str(out, &n, "body", ev->body);
    /* Numbers are absent when 0, except a query's total; whatever is present is written, as
     * event_decode reads every field whatever the type, so that a decoded event encodes back. */
    if (ev->seq > 0)
        put_num(out, &n, "seq", nums->seq, sizeof(nums->seq), ev->seq);
    if (ev->type == EV_QUERY || ev->total > 0)
        put_num(out, &n, "total", nums->total, sizeof(nums->total), ev->total);
    if (ev->connected_at > 0)
        put_num(out, &n, "connected_at", nums->connected_at, sizeof(nums->connected_at),
                ev->connected_at);
    return n;
}

size_t event_encode_argv(const struct rrm_event *ev, struct event_numbers *nums, const char **argv,
                         size_t *lens) {
    struct event_field f[EVENT_MAX_FIELDS];
    size_t n = event_encode(ev, f, nums);
    for (size_t k = 0; k < n; k++) {
        argv[2 * k] = f[k].name;
        lens[2 * k] = strlen(f[k].name);
        argv[2 * k + 1] = f[k].value;
        lens[2 * k + 1] = f[k].len;
    }
    return 2 * n;
}

static int parse_i64(const char *s, size_t len, int64_t *out) {
    if (len == 0 || len > 19)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - (s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int name_is(const char *name, size_t len, const char *want) {
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

int event_decode(struct rrm_event *ev, const char *const *names, const size_t *name_lens,
                 const char *const *values, const size_t *value_lens, size_t n, char *err,
                 size_t errlen) {
    struct {
        const char *name;
        struct event_str *dst;
    } strs[] = {
        {"node", &ev->node},         {"conn", &ev->conn}, {"device", &ev->device},
        {"identity", &ev->identity}, {"ip", &ev->ip},     {"room", &ev->room},
        {"action", &ev->action},     {"kind", &ev->kind}, {"reason", &ev->reason},
        {"body", &ev->body},
    };
    struct event_str version = {0}, type = {0}, ts = {0}, seq = {0}, total = {0}, conn_at = {0};

    memset(ev, 0, sizeof(*ev));
    for (size_t i = 0; i < n; i++) {
        const char *nm = names[i];
        size_t nl = name_lens[i];
        struct event_str v = {values[i], value_lens[i]};
        if (name_is(nm, nl, "v"))
            version = v;
        else if (name_is(nm, nl, "type"))
            type = v;
        else if (name_is(nm, nl, "ts"))
            ts = v;
        else if (name_is(nm, nl, "seq"))
            seq = v;
        else if (name_is(nm, nl, "total"))
            total = v;
        else if (name_is(nm, nl, "connected_at"))
            conn_at = v;
        else
            for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++)
                if (name_is(nm, nl, strs[k].name))
                    *strs[k].dst = v;
    }

    if (!version.p || !name_is(version.p, version.len, EVENT_VERSION)) {
        snprintf(err, errlen, "unsupported event version '%.*s'", version.p ? (int)version.len : 0,
                 version.p ? version.p : "");
        return -1;
    }
    int t = type.p ? event_type_parse(type.p, type.len) : -1;
    if (t < 0) {
        snprintf(err, errlen, "unknown event type '%.*s'", type.p ? (int)type.len : 0,
                 type.p ? type.p : "");
        return -1;
    }
    ev->type = (enum event_type)t;
    if (!ts.p || parse_i64(ts.p, ts.len, &ev->ts)) {
        snprintf(err, errlen, "missing or malformed ts");
        return -1;
    }
    if ((seq.p && parse_i64(seq.p, seq.len, &ev->seq)) ||
        (total.p && parse_i64(total.p, total.len, &ev->total)) ||
        (conn_at.p && parse_i64(conn_at.p, conn_at.len, &ev->connected_at))) {
        snprintf(err, errlen, "malformed number in %s event", type_names[t]);
        return -1;
    }

    const char *missing = NULL;
    switch (ev->type) {
    case EV_CONNECT:
        missing = !ev->conn.p ? "conn" : !ev->device.p ? "device" : NULL;
        break;
    case EV_ROOM:
        missing = !ev->room.p ? "room" : !ev->device.p ? "device" : !ev->action.p ? "action" : NULL;
        break;
    case EV_MESSAGE:
        missing = !ev->room.p     ? "room"
                  : !ev->device.p ? "device"
                  : !seq.p        ? "seq"
                  : !ev->kind.p   ? "kind"
                  : !ev->body.p   ? "body"
                                  : NULL;
        break;
    case EV_QUERY:
        missing = !ev->room.p ? "room" : !ev->device.p ? "device" : !total.p ? "total" : NULL;
        break;
    case EV_DISCONNECT:
        missing = !ev->conn.p ? "conn" : !ev->reason.p ? "reason" : NULL;
        break;
    case EV_ROOM_CREATED:
    case EV_ROOM_RECYCLED:
        missing = !ev->room.p ? "room" : NULL;
        break;
    default:
        break;
    }
    if (missing) {
        snprintf(err, errlen, "%s event without %s", type_names[t], missing);
        return -1;
    }
    /* Rooms count messages from 1 (the send script's HINCRBY) and encode takes 0 for absent: a
     * message with seq 0 could not be written back as it was read. */
    if (ev->type == EV_MESSAGE && ev->seq == 0) {
        snprintf(err, errlen, "message event with seq 0 (a room's messages count from 1)");
        return -1;
    }
    return 0;
}
