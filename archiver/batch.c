/* Decoding, checking and SQL building for one batch of archive events (contract in batch.h). */
#include "batch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const table_names[ARCH_TABLE_COUNT] = {
    "rooms", "devices", "connections", "messages", "room_queries", "room_events",
};

const char *arch_table_name(enum arch_table t) {
    return (t >= 0 && t < ARCH_TABLE_COUNT) ? table_names[t] : "unknown";
}

/* ---- decoding and checking ---- */

int arch_row_decode(struct arch_row *row, const char *id, size_t id_len, const char *const *names,
                    const size_t *name_lens, const char *const *values, const size_t *value_lens,
                    size_t n, char *err, size_t errlen) {
    memset(row, 0, sizeof(*row));
    row->id = id;
    row->id_len = id_len;
    if (event_decode(&row->ev, names, name_lens, values, value_lens, n, err, errlen))
        return -1;
    return arch_row_check(row, err, errlen);
}

long arch_utf8_chars(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    long chars = 0;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t need;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            chars++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return -1; /* continuation byte, overlong lead (c0, c1) or beyond U+10FFFF */
        }
        if (len - i <= need)
            return -1;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        i += need + 1;
        chars++;
    }
    return chars;
}

/* Checks one text value: absent is fine unless required; present must be UTF-8 within max chars. */
static int check_text(const char *field, struct event_str s, long max, int required, char *err,
                      size_t errlen) {
    if (!s.p) {
        if (required) {
            snprintf(err, errlen, "missing %s", field);
            return -1;
        }
        return 0;
    }
    if (required && s.len == 0) {
        snprintf(err, errlen, "empty %s", field);
        return -1;
    }
    long chars = arch_utf8_chars(s.p, s.len);
    if (chars < 0) {
        snprintf(err, errlen, "invalid UTF-8 in %s", field);
        return -1;
    }
    if (chars > max) {
        snprintf(err, errlen, "%s too long: %ld characters, column holds %ld", field, chars, max);
        return -1;
    }
    return 0;
}

static int check_time(const char *field, int64_t ms, char *err, size_t errlen) {
    if (ms < 0 || ms > ARCH_DATETIME_MAX_MS) {
        snprintf(err, errlen, "%s out of DATETIME range: %" PRId64, field, ms);
        return -1;
    }
    return 0;
}

/* "<ms>-<seq>", or "<shard>/<ms>-<seq>" with a shard of at most 4 digits. */
static int check_event_id(const char *id, size_t len) {
    size_t dash = 0, i = 0;
    if (len < 3 || len > ARCH_EVENT_ID_MAX)
        return -1;
    const char *slash = memchr(id, '/', len);
    if (slash) {
        size_t digits = (size_t)(slash - id);
        if (digits < 1 || digits > 4)
            return -1;
        for (; i < digits; i++)
            if (id[i] < '0' || id[i] > '9')
                return -1;
        id += digits + 1;
        len -= digits + 1;
        if (len < 3)
            return -1;
        i = 0;
    }
    for (; i < len; i++) {
        if (id[i] == '-') {
            if (dash || i == 0)
                return -1;
            dash = i;
        } else if (id[i] < '0' || id[i] > '9') {
            return -1;
        }
    }
    return (dash && dash + 1 < len) ? 0 : -1;
}

int arch_row_check(const struct arch_row *row, char *err, size_t errlen) {
    const struct rrm_event *ev = &row->ev;
    if (check_event_id(row->id, row->id_len)) {
        snprintf(err, errlen, "malformed stream entry id");
        return -1;
    }
    if (check_time("ts", ev->ts, err, errlen) ||
        check_text("node", ev->node, ARCH_NODE_MAX, 0, err, errlen))
        return -1;
    switch (ev->type) {
    case EV_CONNECT:
        return (check_text("conn", ev->conn, ARCH_CONN_ID_MAX, 1, err, errlen) ||
                check_text("device", ev->device, ARCH_DEVICE_ID_MAX, 1, err, errlen) ||
                check_text("identity", ev->identity, ARCH_IDENTITY_MAX, 0, err, errlen) ||
                check_text("ip", ev->ip, ARCH_IP_MAX, 0, err, errlen))
                   ? -1
                   : 0;
    case EV_ROOM:
        return (check_text("room", ev->room, ARCH_ROOM_ID_MAX, 1, err, errlen) ||
                check_text("device", ev->device, ARCH_DEVICE_ID_MAX, 1, err, errlen) ||
                check_text("action", ev->action, ARCH_ACTION_MAX, 1, err, errlen) ||
                check_text("conn", ev->conn, ARCH_CONN_ID_MAX, 0, err, errlen))
                   ? -1
                   : 0;
    case EV_MESSAGE:
        if (ev->body.p && ev->body.len > (size_t)ARCH_BODY_MAX) {
            snprintf(err, errlen, "body too large: %zu bytes, column holds %ld", ev->body.len,
                     ARCH_BODY_MAX);
            return -1;
        }
        return (check_text("room", ev->room, ARCH_ROOM_ID_MAX, 1, err, errlen) ||
                check_text("device", ev->device, ARCH_DEVICE_ID_MAX, 1, err, errlen) ||
                check_text("kind", ev->kind, ARCH_KIND_MAX, 1, err, errlen))
                   ? -1
                   : 0;
    case EV_QUERY:
        if (ev->total > ARCH_TOTAL_MAX) {
            snprintf(err, errlen, "total out of range: %" PRId64, ev->total);
            return -1;
        }
        return (check_text("room", ev->room, ARCH_ROOM_ID_MAX, 1, err, errlen) ||
                check_text("device", ev->device, ARCH_DEVICE_ID_MAX, 1, err, errlen))
                   ? -1
                   : 0;
    case EV_DISCONNECT:
        if (ev->connected_at && check_time("connected_at", ev->connected_at, err, errlen))
            return -1;
        return (check_text("conn", ev->conn, ARCH_CONN_ID_MAX, 1, err, errlen) ||
                check_text("reason", ev->reason, ARCH_REASON_MAX, 0, err, errlen) ||
                check_text("device", ev->device, ARCH_DEVICE_ID_MAX, 0, err, errlen) ||
                check_text("room", ev->room, ARCH_ROOM_ID_MAX, 0, err, errlen))
                   ? -1
                   : 0;
    case EV_ROOM_CREATED:
        return (check_text("room", ev->room, ARCH_ROOM_ID_MAX, 1, err, errlen) ||
                check_text("device", ev->device, ARCH_DEVICE_ID_MAX, 0, err, errlen))
                   ? -1
                   : 0;
    case EV_ROOM_RECYCLED:
        return check_text("room", ev->room, ARCH_ROOM_ID_MAX, 1, err, errlen);
    default:
        snprintf(err, errlen, "unknown event type");
        return -1;
    }
}

int arch_format_datetime(int64_t ms, char out[24]) {
    if (ms < 0 || ms > ARCH_DATETIME_MAX_MS)
        return -1;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return -1;
    /* The range check bounds every field; the wide buffer only quiets the compiler. */
    char tmp[80];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d %02d:%02d:%02d.%03d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    memcpy(out, tmp, 23);
    out[23] = '\0';
    return 0;
}

size_t arch_escape_plain(void *ctx, char *dst, const char *src, size_t len) {
    (void)ctx;
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        char esc = 0;
        switch (src[i]) {
        case '\0':
            esc = '0';
            break;
        case '\n':
            esc = 'n';
            break;
        case '\r':
            esc = 'r';
            break;
        case '\\':
            esc = '\\';
            break;
        case '\'':
            esc = '\'';
            break;
        case '"':
            esc = '"';
            break;
        case '\032':
            esc = 'Z';
            break;
        default:
            break;
        }
        if (esc) {
            dst[j++] = '\\';
            dst[j++] = esc;
        } else {
            dst[j++] = src[i];
        }
    }
    dst[j] = '\0';
    return j;
}

/* ---- statement building ---- */

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static int buf_room(struct buf *b, size_t extra) {
    if (b->oom)
        return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void buf_put(struct buf *b, const char *s, size_t n) {
    if (buf_room(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s) {
    buf_put(b, s, strlen(s));
}

static void buf_int(struct buf *b, int64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    buf_put(b, tmp, (size_t)n);
}

/* 'escaped', or NULL when absent. A binary value gets the _binary introducer so the server never
 * interprets its bytes in the connection's character set. */
static void put_escaped(struct buf *b, const struct arch_build_opts *o, struct event_str s,
                        int binary) {
    if (!s.p) {
        buf_puts(b, "NULL");
        return;
    }
    buf_puts(b, binary ? "_binary'" : "'");
    if (buf_room(b, 2 * s.len + 2))
        return;
    b->len += o->escape(o->escape_ctx, b->p + b->len, s.p, s.len);
    buf_put(b, "'", 1);
}

static void put_text(struct buf *b, const struct arch_build_opts *o, struct event_str s) {
    put_escaped(b, o, s, 0);
}

/* For values that only fill gaps in a merged row: empty counts as absent, so that it never
 * overwrites what another event said. */
static void put_gap_fill(struct buf *b, const struct arch_build_opts *o, struct event_str s) {
    put_escaped(b, o, s.len ? s : (struct event_str){NULL, 0}, 0);
}

/* Entry ids and times are checked to contain only digits, '-', ':', '.' and spaces: no escaping. */
static void put_event_id(struct buf *b, const struct arch_row *r) {
    buf_put(b, "'", 1);
    buf_put(b, r->id, r->id_len);
    buf_put(b, "'", 1);
}

static void put_time(struct buf *b, int64_t ms) {
    char dt[24];
    if (arch_format_datetime(ms, dt)) {
        buf_puts(b, "NULL");
        return;
    }
    buf_put(b, "'", 1);
    buf_puts(b, dt);
    buf_put(b, "'", 1);
}

static void put_sep(struct buf *b) {
    buf_put(b, ",", 1);
}

/* Accumulates tuples into statements of one table, starting a new statement where the next tuple
 * would push the current one past max_stmt. */
struct stmt_state {
    struct arch_sql *out;
    const struct arch_build_opts *o;
    enum arch_table table;
    const char *head, *tail;
    struct buf stmt;
    size_t tuples;
    int rc;
    size_t bad;
};

static void st_begin(struct stmt_state *st, enum arch_table table, const char *head,
                     const char *tail) {
    st->table = table;
    st->head = head;
    st->tail = tail;
    st->tuples = 0;
}

static void st_flush(struct stmt_state *st) {
    if (st->tuples == 0 || st->rc)
        return;
    buf_puts(&st->stmt, st->tail);
    if (st->stmt.oom) {
        st->rc = -1;
        return;
    }
    struct arch_sql *out = st->out;
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 8;
        struct arch_stmt *s = realloc(out->stmts, cap * sizeof(*s));
        if (!s) {
            st->rc = -1;
            return;
        }
        out->stmts = s;
        out->cap = cap;
    }
    out->stmts[out->n].sql = st->stmt.p;
    out->stmts[out->n].len = st->stmt.len;
    out->stmts[out->n].table = st->table;
    out->n++;
    memset(&st->stmt, 0, sizeof(st->stmt));
    st->tuples = 0;
}

/* Adds one rendered tuple (or IN-list item) produced by row `index`; `counted` says whether it is a
 * table row (the connect_count update's items are not). */
static void st_add(struct stmt_state *st, const struct buf *tuple, size_t index, int counted) {
    if (st->rc)
        return;
    if (tuple->oom) {
        st->rc = -1;
        return;
    }
    size_t head = strlen(st->head), tail = strlen(st->tail);
    if (head + tuple->len + tail > st->o->max_stmt) {
        st->rc = ARCH_BUILD_TOO_BIG;
        st->bad = index;
        return;
    }
    if (st->tuples && st->stmt.len + 1 + tuple->len + tail > st->o->max_stmt)
        st_flush(st);
    if (st->tuples == 0)
        buf_puts(&st->stmt, st->head);
    else
        buf_put(&st->stmt, ",", 1);
    buf_put(&st->stmt, tuple->p, tuple->len);
    st->tuples++;
    if (counted)
        st->out->rows[st->table]++;
}

/* A row index sorted by a key; the index breaks ties so the order is total and stable. */
struct keyed {
    const char *key;
    size_t len;
    size_t index;
};

static int keyed_cmp(const void *a, const void *b) {
    const struct keyed *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The rows whose `type_mask` bit is set and whose key (picked by `key`) is present, sorted by key:
 * upserting merged rows in key order makes concurrent archivers lock them in the same order. */
static struct keyed *sorted_by_key(const struct arch_row *rows, size_t n, unsigned type_mask,
                                   struct event_str (*key)(const struct rrm_event *),
                                   size_t *count) {
    struct keyed *k = malloc((n ? n : 1) * sizeof(*k));
    size_t m = 0;
    if (!k)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!(type_mask & (1u << rows[i].ev.type)))
            continue;
        struct event_str s = key(&rows[i].ev);
        if (!s.p || s.len == 0)
            continue;
        k[m].key = s.p;
        k[m].len = s.len;
        k[m].index = i;
        m++;
    }
    qsort(k, m, sizeof(*k), keyed_cmp);
    *count = m;
    return k;
}

static struct event_str key_room(const struct rrm_event *ev) {
    return ev->room;
}

static struct event_str key_device(const struct rrm_event *ev) {
    return ev->device;
}

static struct event_str key_conn(const struct rrm_event *ev) {
    return ev->conn;
}

#define BIT(t) (1u << (t))

/* Each merged column keeps the value of the newest event that sets it, whatever the arrival order:
 * a column changes only when the new row's time is not older than the stored one. MySQL applies
 * the assignments left to right, so the time column itself is assigned after every condition that
 * reads its old value. */
static const char rooms_head[] =
    "INSERT INTO rooms (room_id, created_at, created_by_device, created_node, created_event_id, "
    "recycled_at, recycled_event_id) VALUES ";
static const char rooms_tail[] =
    " ON DUPLICATE KEY UPDATE"
    " created_by_device = IF(VALUES(created_at) IS NOT NULL AND (created_at IS NULL OR"
    " VALUES(created_at) >= created_at), VALUES(created_by_device), created_by_device),"
    " created_node = IF(VALUES(created_at) IS NOT NULL AND (created_at IS NULL OR"
    " VALUES(created_at) >= created_at), VALUES(created_node), created_node),"
    " created_event_id = IF(VALUES(created_at) IS NOT NULL AND (created_at IS NULL OR"
    " VALUES(created_at) >= created_at), VALUES(created_event_id), created_event_id),"
    " created_at = IF(VALUES(created_at) IS NOT NULL AND (created_at IS NULL OR"
    " VALUES(created_at) >= created_at), VALUES(created_at), created_at),"
    " recycled_event_id = IF(VALUES(recycled_at) IS NOT NULL AND (recycled_at IS NULL OR"
    " VALUES(recycled_at) >= recycled_at), VALUES(recycled_event_id), recycled_event_id),"
    " recycled_at = IF(VALUES(recycled_at) IS NOT NULL AND (recycled_at IS NULL OR"
    " VALUES(recycled_at) >= recycled_at), VALUES(recycled_at), recycled_at)";

static const char devices_head[] =
    "INSERT INTO devices (device_id, identity, first_seen_at, last_connected_at, last_node, "
    "last_room_id, last_room_at, connect_count) VALUES ";
static const char devices_tail[] =
    " ON DUPLICATE KEY UPDATE"
    " first_seen_at = IF(first_seen_at IS NULL OR VALUES(first_seen_at) < first_seen_at,"
    " VALUES(first_seen_at), first_seen_at),"
    " identity = IF(VALUES(last_connected_at) IS NOT NULL AND (last_connected_at IS NULL OR"
    " VALUES(last_connected_at) >= last_connected_at), COALESCE(VALUES(identity), identity),"
    " identity),"
    " last_node = IF(VALUES(last_connected_at) IS NOT NULL AND (last_connected_at IS NULL OR"
    " VALUES(last_connected_at) >= last_connected_at), VALUES(last_node), last_node),"
    " last_connected_at = IF(VALUES(last_connected_at) IS NOT NULL AND (last_connected_at IS NULL"
    " OR VALUES(last_connected_at) >= last_connected_at), VALUES(last_connected_at),"
    " last_connected_at),"
    " last_room_id = IF(VALUES(last_room_at) IS NOT NULL AND (last_room_at IS NULL OR"
    " VALUES(last_room_at) >= last_room_at), VALUES(last_room_id), last_room_id),"
    " last_room_at = IF(VALUES(last_room_at) IS NOT NULL AND (last_room_at IS NULL OR"
    " VALUES(last_room_at) >= last_room_at), VALUES(last_room_at), last_room_at)";

/* One row per connection, merged from its connect (event_id), room assignment and disconnect
 * (disconnect_event_id) events. The connect event is authoritative for what it carries; the others
 * only fill gaps, so the row ends the same in any order. */
static const char connections_head[] =
    "INSERT INTO connections (conn_id, event_id, device_id, identity, client_ip, node, room_id, "
    "connected_at, disconnected_at, disconnect_reason, disconnect_event_id) VALUES ";
static const char connections_tail[] =
    " ON DUPLICATE KEY UPDATE"
    " device_id = IF(VALUES(event_id) IS NULL, COALESCE(device_id, VALUES(device_id)),"
    " VALUES(device_id)),"
    " node = IF(VALUES(event_id) IS NULL, COALESCE(node, VALUES(node)), VALUES(node)),"
    " connected_at = IF(VALUES(event_id) IS NULL, COALESCE(connected_at, VALUES(connected_at)),"
    " VALUES(connected_at)),"
    " identity = IF(VALUES(event_id) IS NULL, identity, VALUES(identity)),"
    " client_ip = IF(VALUES(event_id) IS NULL, client_ip, VALUES(client_ip)),"
    " room_id = COALESCE(VALUES(room_id), room_id),"
    " disconnected_at = IF(VALUES(disconnect_event_id) IS NULL, disconnected_at,"
    " VALUES(disconnected_at)),"
    " disconnect_reason = IF(VALUES(disconnect_event_id) IS NULL, disconnect_reason,"
    " VALUES(disconnect_reason)),"
    " disconnect_event_id = COALESCE(VALUES(disconnect_event_id), disconnect_event_id),"
    " event_id = COALESCE(VALUES(event_id), event_id)";

/* Counted from the connections table, not incremented, so redelivery cannot inflate it. Under
 * REPEATABLE READ (set by the writer) InnoDB reads the subquery with shared locks, so two archivers
 * committing connections of one device concurrently still count each other's rows. */
static const char connect_count_head[] =
    "UPDATE devices SET connect_count = (SELECT COUNT(*) FROM connections"
    " WHERE connections.device_id = devices.device_id) WHERE device_id IN (";
static const char connect_count_tail[] = ")";

static const char messages_head[] =
    "INSERT INTO messages (event_id, room_id, from_device_id, seq, message_type, message_size, "
    "message_content, node, sent_at) VALUES ";
static const char room_queries_head[] =
    "INSERT INTO room_queries (event_id, room_id, device_id, total_clients, node, queried_at) "
    "VALUES ";
static const char room_events_head[] =
    "INSERT INTO room_events (event_id, room_id, device_id, conn_id, action, node, assigned_at) "
    "VALUES ";
/* Not INSERT IGNORE: that would also turn data errors into silent truncation. */
static const char keep_existing_tail[] = " ON DUPLICATE KEY UPDATE event_id = event_id";

/* What goes into one column of a tuple. */
enum col {
    C_NULL,
    C_ZERO,
    C_EVENT_ID,
    C_TS,
    C_CONNECTED_AT, /* NULL when unknown */
    C_ROOM,
    C_DEVICE,
    C_NODE,
    C_CONN,
    C_IDENTITY,
    C_IP,
    C_KIND,
    C_ACTION,
    C_REASON,
    C_GAP_ROOM, /* gap fillers: see put_gap_fill */
    C_GAP_DEVICE,
    C_GAP_NODE,
    C_SEQ,
    C_TOTAL,
    C_BODY_LEN,
    C_BODY,
};

/* A tuple: its columns in the order of the statement's column list. */
struct shape {
    unsigned char n;
    unsigned char col[12];
};

#define SHAPE(...)                                                                                 \
    {                                                                                              \
        sizeof((unsigned char[]){__VA_ARGS__}), {                                                  \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    }

static void put_col(struct buf *t, const struct arch_build_opts *o, const struct arch_row *r,
                    enum col c) {
    const struct rrm_event *ev = &r->ev;
    switch (c) {
    case C_NULL:
        buf_puts(t, "NULL");
        break;
    case C_ZERO:
        buf_puts(t, "0");
        break;
    case C_EVENT_ID:
        put_event_id(t, r);
        break;
    case C_TS:
        put_time(t, ev->ts);
        break;
    case C_CONNECTED_AT:
        if (ev->connected_at > 0)
            put_time(t, ev->connected_at);
        else
            buf_puts(t, "NULL");
        break;
    case C_ROOM:
        put_text(t, o, ev->room);
        break;
    case C_DEVICE:
        put_text(t, o, ev->device);
        break;
    case C_NODE:
        put_text(t, o, ev->node);
        break;
    case C_CONN:
        put_text(t, o, ev->conn);
        break;
    case C_IDENTITY:
        put_text(t, o, ev->identity);
        break;
    case C_IP:
        put_text(t, o, ev->ip);
        break;
    case C_KIND:
        put_text(t, o, ev->kind);
        break;
    case C_ACTION:
        put_text(t, o, ev->action);
        break;
    case C_REASON:
        put_text(t, o, ev->reason);
        break;
    case C_GAP_ROOM:
        put_gap_fill(t, o, ev->room);
        break;
    case C_GAP_DEVICE:
        put_gap_fill(t, o, ev->device);
        break;
    case C_GAP_NODE:
        put_gap_fill(t, o, ev->node);
        break;
    case C_SEQ:
        buf_int(t, ev->seq);
        break;
    case C_TOTAL:
        buf_int(t, ev->total);
        break;
    case C_BODY_LEN:
        buf_int(t, (int64_t)ev->body.len);
        break;
    case C_BODY:
        put_escaped(t, o, ev->body, 1);
        break;
    }
}

static void put_tuple(struct buf *t, const struct arch_build_opts *o, const struct arch_row *r,
                      const struct shape *sh) {
    buf_put(t, "(", 1);
    for (unsigned i = 0; i < sh->n; i++) {
        if (i)
            put_sep(t);
        put_col(t, o, r, (enum col)sh->col[i]);
    }
    buf_put(t, ")", 1);
}

/* Tuples by event type, one table each, in the column order of the statement heads above. */

/* rooms: room_id, created_at, created_by_device, created_node, created_event_id,
 * recycled_at, recycled_event_id */
static const struct shape rooms_shapes[EV_TYPE_COUNT] = {
    [EV_ROOM_CREATED] = SHAPE(C_ROOM, C_TS, C_DEVICE, C_NODE, C_EVENT_ID, C_NULL, C_NULL),
    [EV_ROOM_RECYCLED] = SHAPE(C_ROOM, C_NULL, C_NULL, C_NULL, C_NULL, C_TS, C_EVENT_ID),
};

/* devices: a connect carries the identity and the connection, a room assignment the room */
static const struct shape devices_shapes[EV_TYPE_COUNT] = {
    [EV_CONNECT] = SHAPE(C_DEVICE, C_IDENTITY, C_TS, C_TS, C_NODE, C_NULL, C_NULL, C_ZERO),
    [EV_ROOM] = SHAPE(C_DEVICE, C_NULL, C_TS, C_NULL, C_NULL, C_ROOM, C_TS, C_ZERO),
};

/* connections: the connect is authoritative; the room assignment and the disconnect fill gaps */
static const struct shape connections_shapes[EV_TYPE_COUNT] = {
    [EV_CONNECT] = SHAPE(C_CONN, C_EVENT_ID, C_DEVICE, C_IDENTITY, C_IP, C_NODE, C_NULL, C_TS,
                         C_NULL, C_NULL, C_NULL),
    [EV_ROOM] = SHAPE(C_CONN, C_NULL, C_GAP_DEVICE, C_NULL, C_NULL, C_GAP_NODE, C_GAP_ROOM, C_NULL,
                      C_NULL, C_NULL, C_NULL),
    [EV_DISCONNECT] = SHAPE(C_CONN, C_NULL, C_GAP_DEVICE, C_NULL, C_NULL, C_GAP_NODE, C_GAP_ROOM,
                            C_CONNECTED_AT, C_TS, C_REASON, C_EVENT_ID),
};

static const struct shape messages_shapes[EV_TYPE_COUNT] = {
    [EV_MESSAGE] =
        SHAPE(C_EVENT_ID, C_ROOM, C_DEVICE, C_SEQ, C_KIND, C_BODY_LEN, C_BODY, C_NODE, C_TS),
};

static const struct shape room_queries_shapes[EV_TYPE_COUNT] = {
    [EV_QUERY] = SHAPE(C_EVENT_ID, C_ROOM, C_DEVICE, C_TOTAL, C_NODE, C_TS),
};

static const struct shape room_events_shapes[EV_TYPE_COUNT] = {
    [EV_ROOM] = SHAPE(C_EVENT_ID, C_ROOM, C_DEVICE, C_CONN, C_ACTION, C_NODE, C_TS),
};

/* Emits one statement group for rows in the order of `order` (or stream order if NULL), each row
 * as the shape of its event type. */
static void emit(struct stmt_state *st, struct buf *t, const struct arch_row *rows, size_t n,
                 unsigned type_mask, const struct keyed *order, size_t order_n,
                 const struct shape *shapes) {
    size_t count = order ? order_n : n;
    for (size_t k = 0; k < count && !st->rc; k++) {
        size_t i = order ? order[k].index : k;
        if (!(type_mask & BIT(rows[i].ev.type)))
            continue;
        t->len = 0;
        put_tuple(t, st->o, &rows[i], &shapes[rows[i].ev.type]);
        st_add(st, t, i, 1);
    }
    st_flush(st);
}

/* connect_count is recounted for every device that appears in this batch's connection rows. */
static void emit_connect_counts(struct stmt_state *st, struct buf *t, const struct arch_row *rows,
                                size_t n) {
    size_t m = 0;
    struct keyed *dev =
        sorted_by_key(rows, n, BIT(EV_CONNECT) | BIT(EV_ROOM) | BIT(EV_DISCONNECT), key_device, &m);
    if (!dev) {
        st->rc = -1;
        return;
    }
    const struct keyed *last = NULL;
    st_begin(st, ARCH_DEVICES, connect_count_head, connect_count_tail);
    for (size_t k = 0; k < m && !st->rc; k++) {
        const struct rrm_event *ev = &rows[dev[k].index].ev;
        if (ev->type == EV_ROOM && !ev->conn.len)
            continue; /* no connection row */
        if (last && last->len == dev[k].len && memcmp(last->key, dev[k].key, dev[k].len) == 0)
            continue;
        last = &dev[k];
        t->len = 0;
        put_text(t, st->o, ev->device);
        st_add(st, t, dev[k].index, 0);
    }
    st_flush(st);
    free(dev);
}

int arch_sql_build(struct arch_sql *out, const struct arch_row *rows, size_t n,
                   const struct arch_build_opts *o, size_t *bad) {
    memset(out, 0, sizeof(*out));
    struct stmt_state st = {.out = out, .o = o};
    struct buf t = {0};
    struct keyed *order = NULL;
    size_t m = 0;

    order = sorted_by_key(rows, n, BIT(EV_ROOM_CREATED) | BIT(EV_ROOM_RECYCLED), key_room, &m);
    st.rc = order ? 0 : -1;
    st_begin(&st, ARCH_ROOMS, rooms_head, rooms_tail);
    emit(&st, &t, rows, n, BIT(EV_ROOM_CREATED) | BIT(EV_ROOM_RECYCLED), order, m, rooms_shapes);
    free(order);

    order = sorted_by_key(rows, n, BIT(EV_CONNECT) | BIT(EV_ROOM), key_device, &m);
    st.rc = st.rc ? st.rc : order ? 0 : -1;
    st_begin(&st, ARCH_DEVICES, devices_head, devices_tail);
    emit(&st, &t, rows, n, BIT(EV_CONNECT) | BIT(EV_ROOM), order, m, devices_shapes);
    free(order);

    order =
        sorted_by_key(rows, n, BIT(EV_CONNECT) | BIT(EV_ROOM) | BIT(EV_DISCONNECT), key_conn, &m);
    st.rc = st.rc ? st.rc : order ? 0 : -1;
    st_begin(&st, ARCH_CONNECTIONS, connections_head, connections_tail);
    emit(&st, &t, rows, n, BIT(EV_CONNECT) | BIT(EV_ROOM) | BIT(EV_DISCONNECT), order, m,
         connections_shapes);
    free(order);

    if (!st.rc)
        emit_connect_counts(&st, &t, rows, n);

    st_begin(&st, ARCH_MESSAGES, messages_head, keep_existing_tail);
    emit(&st, &t, rows, n, BIT(EV_MESSAGE), NULL, 0, messages_shapes);
    st_begin(&st, ARCH_ROOM_QUERIES, room_queries_head, keep_existing_tail);
    emit(&st, &t, rows, n, BIT(EV_QUERY), NULL, 0, room_queries_shapes);
    st_begin(&st, ARCH_ROOM_EVENTS, room_events_head, keep_existing_tail);
    emit(&st, &t, rows, n, BIT(EV_ROOM), NULL, 0, room_events_shapes);

    free(t.p);
    free(st.stmt.p);
    if (st.rc) {
        if (st.rc == ARCH_BUILD_TOO_BIG && bad)
            *bad = st.bad;
        arch_sql_free(out);
        return st.rc;
    }
    return 0;
}

void arch_sql_free(struct arch_sql *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->stmts[i].sql);
    free(s->stmts);
    memset(s, 0, sizeof(*s));
}
