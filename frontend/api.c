/* The server API (see api.h). */
#include "api.h"

#include "app.h"
#include "keys.h"
#include "proto.h"
#include "router.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

enum endpoint { EP_PUBLISH, EP_ROOMS, EP_ROOM, EP_DEVICE, EP_DISCONNECT, EP_UNKNOWN, EP_COUNT };
static const char *const endpoint_names[EP_COUNT] = {"publish", "rooms",      "room",
                                                     "device",  "disconnect", "unknown"};

/* The statuses the API answers with; the code label of rrm_api_requests_total. */
static const int statuses[] = {200, 400, 401, 404, 405, 411, 413, 500, 503};
#define STATUS_COUNT (sizeof(statuses) / sizeof(statuses[0]))
_Static_assert(EP_COUNT <= API_STATS_ENDPOINTS && STATUS_COUNT <= API_STATS_CODES,
               "fe_stats.api_requests is too small");

/* Members a room's answer lists at most; rooms a page lists by default and at most. */
#define API_ROOM_MAX_CLIENTS 1000
#define API_PAGE_DEFAULT 100
#define API_PAGE_MAX 1000
/* Shards one page request looks at, at most (a page of empty shards ends early with a cursor). */
#define API_PAGE_SHARDS 64
/* Who a published message is from when the request names nobody, and the conn it carries (no
 * connection has it: every member receives the message). */
#define API_FROM_DEFAULT "server"
#define API_CONN "api"
/* The device part of an Idempotency-Key's ack key: '!' is outside the id set, so no client's ack
 * key is ever the API's. */
#define API_ACK_DEVICE "!api"
#define API_REASON_DEFAULT "disconnected by the server"

int api_enabled(const struct app *app) {
    return app->opt.api_key[0] != '\0';
}

int api_path(const char *path) {
    return strcmp(path, "/api") == 0 || strncmp(path, "/api/", 5) == 0;
}

static void count(struct api_call *c) {
    for (size_t i = 0; i < STATUS_COUNT; i++)
        if (statuses[i] == c->code)
            c->app->stats.api_requests[c->endpoint][i]++;
}

/* The answer: a JSON value (stolen). */
static void answer_json(struct api_call *c, int code, json_t *v) {
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!text) {
        c->code = 500;
        textbuf_add(c->out, "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}\n");
    } else {
        c->code = code;
        textbuf_add(c->out, "%s\n", text);
        free(text);
    }
    count(c);
}

static enum api_step fail(struct api_call *c, int code, const char *ecode, const char *message) {
    answer_json(c, code, json_pack("{s:{s:s,s:s}}", "error", "code", ecode, "message", message));
    return API_ANSWER;
}

/* Constant-time comparison of the presented key with the configured one: the time depends on
 * the configured key's length only. */
static int key_ok(const char *given, size_t glen, const char *key) {
    size_t klen = strlen(key);
    unsigned diff = glen != klen;
    for (size_t i = 0; i < klen; i++)
        diff |= (unsigned char)key[i] ^ (unsigned char)(glen ? given[i % glen] : 0);
    return diff == 0;
}

static int authorized(struct app *app, struct lws *wsi) {
    char h[512];
    int n = lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n < 7 || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    const char *k = h + 7;
    while (*k == ' ')
        k++;
    return key_ok(k, strlen(k), app->opt.api_key);
}

/* The path's endpoint, its methods and its room or device ("" none). */
static enum endpoint route(const char *path, char *target, size_t cap, const char **allow) {
    const char *rest;
    target[0] = '\0';
    *allow = "GET";
    if (strcmp(path, "/api/rooms") == 0)
        return EP_ROOMS;
    if (strncmp(path, "/api/rooms/", 11) == 0)
        rest = path + 11;
    else if (strncmp(path, "/api/devices/", 13) == 0)
        rest = path + 13;
    else
        return EP_UNKNOWN;
    int room = rest == path + 11;
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n >= cap)
        return EP_UNKNOWN;
    memcpy(target, rest, n);
    target[n] = '\0';
    if (!slash)
        return room ? EP_ROOM : EP_DEVICE;
    *allow = "POST";
    if (room && strcmp(slash, "/publish") == 0)
        return EP_PUBLISH;
    if (!room && strcmp(slash, "/disconnect") == 0)
        return EP_DISCONNECT;
    return EP_UNKNOWN;
}

/* ---- Redis work ------------------------------------------------------------------------------ */

/* The Redis work of one request. call is NULL once the request's owner went away: the reply is
 * then dropped. */
struct api_op {
    struct api_call *call;
    /* GET /api/rooms: the page being gathered */
    json_t *rooms;
    unsigned shard, visited;
    long want;
    char after[PROTO_MAX_ROOM_ID + 1];
};

static struct api_op *op_new(struct api_call *c) {
    struct api_op *op = calloc(1, sizeof(*op));
    if (op) {
        op->call = c;
        c->op = op;
    }
    return op;
}

static void op_free(struct api_op *op) {
    if (op->call)
        op->call->op = NULL;
    json_decref(op->rooms);
    free(op);
}

/* The request op was for, or NULL (op freed) when it went away. */
static struct api_call *op_call(struct api_op *op) {
    struct api_call *c = op->call;
    if (!c)
        op_free(op);
    return c;
}

/* The op's answer is complete. */
static void op_done(struct api_op *op) {
    struct api_call *c = op->call;
    op_free(op);
    c->done(c);
}

static void op_fail(struct api_op *op, int code, const char *ecode, const char *message) {
    fail(op->call, code, ecode, message);
    op_done(op);
}

/* A reply that is not the one expected: Redis refused (an error) or the link was lost. */
static void op_redis_failed(struct api_op *op, const redisReply *r) {
    op->call->app->stats.redis_errors++;
    if (r && r->type == REDIS_REPLY_ERROR)
        op_fail(op, 503, "unavailable", "the cluster store refused the request");
    else if (!r)
        op_fail(op, 503, "outcome_unknown",
                "the cluster store stopped answering after the request was sent");
    else
        op_fail(op, 500, "internal", "unexpected answer from the cluster store");
}

/* After a request was not accepted by the router: it answers now. */
static enum api_step not_sent(struct api_call *c) {
    if (c->op)
        op_free(c->op);
    c->app->stats.redis_errors++;
    return fail(c, 503, "unavailable", "the cluster store is unavailable");
}

/* ---- POST /api/rooms/{room}/publish ---------------------------------------------------------- */

static void publish_reply(void *arg, redisReply *r, void *priv) {
    (void)arg;
    struct api_op *op = priv;
    if (!op_call(op))
        return;
    if (r && (r->type == REDIS_REPLY_INTEGER || r->type == REDIS_REPLY_STRING)) {
        long long seq = r->type == REDIS_REPLY_INTEGER ? r->integer : strtoll(r->str, NULL, 10);
        answer_json(op->call, 200,
                    json_pack("{s:I,s:b}", "seq", (json_int_t)seq, "duplicate",
                              r->type == REDIS_REPLY_STRING));
        op_done(op);
    } else if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOROOM", 6) == 0) {
        op_fail(op, 404, "room_not_found", "no such room");
    } else {
        op_redis_failed(op, r);
    }
}

static enum api_step publish(struct api_call *c) {
    struct app *app = c->app;
    const char *room = c->target;
    const char *from = c->from[0] ? c->from : API_FROM_DEFAULT;
    char *prefix = NULL;
    size_t plen = 0;
    const char *kind = "binary";
    int64_t now = util_now_ms();
    if (!c->binary) {
        json_t *value;
        const char *code = NULL;
        char msg[160];
        enum proto_kind k = c->body_len ? proto_classify(c->body, c->body_len, &value, &kind, &code,
                                                         msg, sizeof(msg))
                                        : (code = PROTO_E_INVALID_JSON,
                                           snprintf(msg, sizeof(msg), "empty body"), PROTO_REJECT);
        if (k == PROTO_REJECT)
            return fail(c, 400, code, msg);
        if (k != PROTO_RELAY) {
            json_decref(value);
            return fail(c, 400, PROTO_E_RESERVED_TYPE, "not a message: this type is not relayed");
        }
        json_t *f = json_is_object(value) ? json_object_get(value, "from_device_id") : NULL;
        if (f) {
            const char *s = json_string_value(f);
            if (!s || !proto_valid_id(s, strlen(s), PROTO_MAX_DEVICE_ID)) {
                json_decref(value);
                return fail(c, 400, "invalid_from",
                            "from_device_id must be 1-128 characters from A-Z a-z 0-9 _ . : @ -");
            }
            util_strlcpy(c->from, s, sizeof(c->from));
            from = c->from;
        }
        prefix = proto_envelope_prefix(value, c->body, c->body_len, from, room, now, &plen);
        json_decref(value);
        if (!prefix)
            return fail(c, 500, "internal", "out of memory");
    } else if (c->body_len == 0) {
        return fail(c, 400, "empty_body", "a binary message needs a body");
    }
    if (!app_redis_ready(app)) {
        free(prefix);
        return not_sent(c);
    }
    unsigned shard = keys_room_shard(room, (unsigned)app->opt.event_shards);
    char kroom[KEYS_MAX], kmembers[KEYS_MAX], kch[KEYS_MAX], khist[KEYS_MAX], kev[KEYS_MAX];
    char kack[KEYS_ACK_MAX], ts[24], header[100];
    keys_room(kroom, sizeof(kroom), shard, room);
    keys_room_members(kmembers, sizeof(kmembers), shard, room);
    keys_room_channel(kch, sizeof(kch), shard, room);
    keys_room_history(khist, sizeof(khist), shard, room);
    keys_events(kev, sizeof(kev), shard);
    int nack =
        c->idem[0] ? keys_room_ack(kack, sizeof(kack), shard, room, API_ACK_DEVICE, c->idem) : 0;
    int hlen =
        proto_pub_header(header, sizeof(header), c->binary, API_CONN, (uint64_t)util_now_us());
    util_u64_dec(ts, (uint64_t)now);
    struct api_op *op = op_new(c);
    if (nack < 0 || hlen < 0 || !op) {
        free(prefix);
        if (op)
            op_free(op);
        return fail(c, 500, "internal", "out of memory");
    }
    /* the send script's keys and arguments (scripts.c), the ack key last when there is one */
    const char *argv[] = {kroom,
                          kmembers,
                          kch,
                          kev,
                          khist,
                          c->idem[0] ? kack : NULL,
                          from,
                          API_CONN,
                          header,
                          prefix ? prefix : "",
                          c->body ? c->body : "",
                          ts,
                          app->node_id,
                          room,
                          kind,
                          "1"};
    size_t lens[] = {strlen(kroom),        strlen(kmembers),
                     strlen(kch),          strlen(kev),
                     strlen(khist),        (size_t)nack,
                     strlen(from),         strlen(API_CONN),
                     (size_t)hlen,         plen,
                     c->body_len,          strlen(ts),
                     strlen(app->node_id), strlen(room),
                     strlen(kind),         1};
    int argc = (int)(sizeof(argv) / sizeof(argv[0])), nkeys = 6;
    if (!c->idem[0]) {
        memmove(&argv[5], &argv[6], (size_t)(argc - 6) * sizeof(argv[0]));
        memmove(&lens[5], &lens[6], (size_t)(argc - 6) * sizeof(lens[0]));
        argc--;
        nkeys--;
    }
    int rc = router_eval(app->router, SCRIPT_PUBLISH, publish_reply, op, nkeys, argc, argv, lens);
    free(prefix);
    return rc ? not_sent(c) : API_WAIT;
}

/* ---- GET /api/rooms/{room} ------------------------------------------------------------------- */

static int client_cmp(const void *a, const void *b) {
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    return strcmp(json_string_value(json_object_get(x, "device_id")),
                  json_string_value(json_object_get(y, "device_id")));
}

/* Member value "conn\tnode\tidentity". */
static json_t *member_json(const redisReply *dev, const redisReply *val) {
    const char *v = val->str, *end = v + val->len;
    const char *t1 = memchr(v, '\t', val->len);
    const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(end - t1 - 1)) : NULL;
    if (!t2)
        return NULL;
    return json_pack("{s:s%,s:s%,s:s%,s:s%}", "device_id", dev->str, dev->len, "identity", t2 + 1,
                     (size_t)(end - t2 - 1), "node", t1 + 1, (size_t)(t2 - t1 - 1), "conn", v,
                     (size_t)(t1 - v));
}

json_t *api_room_clients(const struct redisReply *list, size_t most) {
    size_t n = list->elements / 2, m = 0;
    json_t **items = n ? calloc(n, sizeof(*items)) : NULL;
    for (size_t i = 0; items && i < n; i++) {
        const redisReply *d = list->element[2 * i], *v = list->element[2 * i + 1];
        if (d->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            (items[m] = member_json(d, v)))
            m++;
    }
    if (m)
        qsort(items, m, sizeof(*items), client_cmp);
    json_t *clients = json_array();
    for (size_t i = 0; i < m; i++) {
        if (clients && i < most)
            json_array_append_new(clients, items[i]);
        else
            json_decref(items[i]);
    }
    free(items);
    return clients;
}

static void room_reply(void *arg, redisReply *r, void *priv) {
    (void)arg;
    struct api_op *op = priv;
    if (!op_call(op))
        return;
    struct api_call *c = op->call;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 5 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[4]->type != REDIS_REPLY_ARRAY) {
        op_redis_failed(op, r);
        return;
    }
    if (r->element[0]->integer == 0) {
        op_fail(op, 404, "room_not_found", "no such room");
        return;
    }
    json_t *clients = api_room_clients(r->element[4], API_ROOM_MAX_CLIENTS);
    size_t m = json_array_size(clients);
    long long total = r->element[3]->type == REDIS_REPLY_INTEGER ? r->element[3]->integer : 0;
    json_t *v = json_pack(
        "{s:s,s:I,s:I,s:s%,s:o}", "room_id", c->target, "total_clients", (json_int_t)total, "seq",
        (json_int_t)(r->element[1]->type == REDIS_REPLY_INTEGER ? r->element[1]->integer : 0),
        "epoch", r->element[2]->type == REDIS_REPLY_STRING ? r->element[2]->str : "",
        r->element[2]->type == REDIS_REPLY_STRING ? r->element[2]->len : 0, "clients", clients);
    if (v && (long long)m < total)
        json_object_set_new(v, "truncated", json_true());
    answer_json(c, 200, v);
    op_done(op);
}

static enum api_step room_get(struct api_call *c) {
    struct app *app = c->app;
    unsigned shard = keys_room_shard(c->target, (unsigned)app->opt.event_shards);
    char kroom[KEYS_MAX], kmembers[KEYS_MAX], most[24];
    keys_room(kroom, sizeof(kroom), shard, c->target);
    keys_room_members(kmembers, sizeof(kmembers), shard, c->target);
    snprintf(most, sizeof(most), "%d", API_ROOM_MAX_CLIENTS);
    const char *argv[] = {kroom, kmembers, most};
    struct api_op *op = app_redis_ready(app) ? op_new(c) : NULL;
    if (!op || router_eval(app->router, SCRIPT_ROOM_INFO, room_reply, op, 2, 3, argv, NULL))
        return not_sent(c);
    return API_WAIT;
}

/* ---- GET /api/rooms -------------------------------------------------------------------------- */

static int rooms_next(struct api_op *op);

/* The page: the rooms gathered and where the next one starts (NULL: no more). */
static void rooms_answer(struct api_op *op, const char *next) {
    json_t *v = json_pack("{s:O,s:s?}", "rooms", op->rooms, "next_cursor", next);
    if (v && !next)
        json_object_set_new(v, "next_cursor", json_null());
    answer_json(op->call, 200, v);
    op_done(op);
}

static void rooms_reply(void *arg, redisReply *r, void *priv) {
    (void)arg;
    struct api_op *op = priv;
    if (!op_call(op))
        return;
    struct app *app = op->call->app;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
        op_redis_failed(op, r);
        return;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *room = r->element[i], *n = r->element[i + 1];
        if (room->type != REDIS_REPLY_STRING || n->type != REDIS_REPLY_INTEGER ||
            room->len > PROTO_MAX_ROOM_ID)
            continue;
        json_array_append_new(op->rooms, json_pack("{s:s%,s:I}", "room_id", room->str, room->len,
                                                   "total_clients", (json_int_t)n->integer));
        memcpy(op->after, room->str, room->len);
        op->after[room->len] = '\0';
        op->want--;
    }
    char cursor[PROTO_MAX_ROOM_ID + 24];
    if (op->want <= 0) { /* full: the next page starts after the last room listed */
        snprintf(cursor, sizeof(cursor), "%u:%s", op->shard, op->after);
        rooms_answer(op, cursor);
        return;
    }
    op->shard++;
    op->after[0] = '\0';
    if (op->shard >= (unsigned)app->opt.event_shards) {
        rooms_answer(op, NULL);
        return;
    }
    if (++op->visited >= API_PAGE_SHARDS) { /* enough round trips: continue from this shard */
        snprintf(cursor, sizeof(cursor), "%u:", op->shard);
        rooms_answer(op, cursor);
        return;
    }
    if (rooms_next(op))
        op_fail(op, 503, "unavailable", "the cluster store is unavailable");
}

/* Asks for the next rooms of op's shard after op->after. */
static int rooms_next(struct api_op *op) {
    struct app *app = op->call->app;
    char krooms[KEYS_MAX], prefix[KEYS_MAX], most[24];
    keys_rooms(krooms, sizeof(krooms), op->shard);
    keys_room(prefix, sizeof(prefix), op->shard, "");
    snprintf(most, sizeof(most), "%ld", op->want);
    const char *argv[] = {krooms, op->after, most, prefix};
    return router_eval(app->router, SCRIPT_ROOMS_PAGE, rooms_reply, op, 1, 4, argv, NULL);
}

static enum api_step rooms_list(struct api_call *c) {
    struct app *app = c->app;
    long limit = API_PAGE_DEFAULT;
    if (c->has_limit) {
        char *end;
        limit = strtol(c->limit, &end, 10);
        if (!c->limit[0] || *end || limit < 1 || limit > API_PAGE_MAX)
            return fail(c, 400, "invalid_limit", "limit must be an integer from 1 to 1000");
    }
    unsigned shard = 0;
    const char *after = "";
    if (c->has_cursor && c->cursor[0]) {
        char *end;
        unsigned long s = strtoul(c->cursor, &end, 10);
        after = end + 1;
        if (end == c->cursor || *end != ':' || s >= (unsigned long)app->opt.event_shards ||
            (*after && !proto_valid_id(after, strlen(after), PROTO_MAX_ROOM_ID)))
            return fail(c, 400, "invalid_cursor",
                        "cursor must be a next_cursor of an earlier answer (or empty)");
        shard = (unsigned)s;
    }
    struct api_op *op = app_redis_ready(app) ? op_new(c) : NULL;
    if (!op || !(op->rooms = json_array()))
        return not_sent(c);
    op->shard = shard;
    op->want = limit;
    util_strlcpy(op->after, after, sizeof(op->after));
    if (rooms_next(op))
        return not_sent(c);
    return API_WAIT;
}

/* ---- GET /api/devices/{device} --------------------------------------------------------------- */

static const redisReply *field(const redisReply *r, const char *name) {
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0 &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            return r->element[i + 1];
    return NULL;
}

static json_t *str_or_null(const redisReply *v) {
    return v ? json_stringn(v->str, v->len) : json_null();
}

json_t *api_device(const char *device, const redisReply *hash) {
    const redisReply *conn = field(hash, "conn"), *since = field(hash, "since");
    return json_pack("{s:s,s:b,s:o,s:o,s:o,s:o,s:o}", "device_id", device, "connected",
                     conn != NULL, "node", str_or_null(field(hash, "node")), "conn",
                     str_or_null(conn), "room", str_or_null(field(hash, "room")), "identity",
                     str_or_null(field(hash, "identity")), "since",
                     conn && since ? json_integer(strtoll(since->str, NULL, 10)) : json_null());
}

static void device_reply(void *arg, redisReply *r, void *priv) {
    (void)arg;
    struct api_op *op = priv;
    if (!op_call(op))
        return;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
        op_redis_failed(op, r);
        return;
    }
    if (r->elements == 0) {
        op_fail(op, 404, "device_not_found", "the cluster does not know this device");
        return;
    }
    answer_json(op->call, 200, api_device(op->call->target, r));
    op_done(op);
}

static enum api_step device_get(struct api_call *c) {
    struct app *app = c->app;
    char kdev[KEYS_MAX];
    keys_device(kdev, sizeof(kdev), c->target);
    const char *argv[] = {"HGETALL", kdev};
    struct api_op *op = app_redis_ready(app) ? op_new(c) : NULL;
    if (!op || router_command(app->router, kdev, device_reply, op, 2, argv, NULL))
        return not_sent(c);
    return API_WAIT;
}

/* ---- POST /api/devices/{device}/disconnect --------------------------------------------------- */

static void published_reply(void *arg, redisReply *r, void *priv) {
    (void)arg;
    struct api_op *op = priv;
    if (!op_call(op))
        return;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        op_redis_failed(op, r);
        return;
    }
    struct api_call *c = op->call;
    answer_json(c, 200,
                json_pack("{s:s,s:b,s:s,s:s}", "device_id", c->target, "disconnected", 1, "node",
                          c->from, "conn", c->idem));
    op_done(op);
}

/* The device's conn and node: then "disconnect <conn>\t<reason>" on its node's channel (the body,
 * kept in c->body, holds the reason by then). */
static void holder_reply(void *arg, redisReply *r, void *priv) {
    (void)arg;
    struct api_op *op = priv;
    if (!op_call(op))
        return;
    struct api_call *c = op->call;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        op_redis_failed(op, r);
        return;
    }
    const redisReply *conn = r->element[0], *node = r->element[1];
    if (conn->type != REDIS_REPLY_STRING || node->type != REDIS_REPLY_STRING ||
        conn->len >= sizeof(c->idem) || node->len >= sizeof(c->from)) {
        op_fail(op, 404, "not_connected", "the device is not connected");
        return;
    }
    /* the answer names them: kept in the request's fields that disconnect does not use */
    memcpy(c->idem, conn->str, conn->len);
    c->idem[conn->len] = '\0';
    memcpy(c->from, node->str, node->len);
    c->from[node->len] = '\0';
    char kch[KEYS_MAX];
    char *msg = NULL;
    if (keys_node_channel(kch, sizeof(kch), c->from) < 0 ||
        asprintf(&msg, "disconnect %s\t%s", c->idem, c->body) < 0) {
        op_fail(op, 500, "internal", "out of memory");
        return;
    }
    const char *argv[] = {"PUBLISH", kch, msg};
    int rc = router_command(c->app->router, NULL, published_reply, op, 3, argv, NULL);
    free(msg);
    if (rc) {
        c->app->stats.redis_errors++;
        op_fail(op, 503, "unavailable", "the cluster store is unavailable");
    }
}

static enum api_step disconnect(struct api_call *c) {
    struct app *app = c->app;
    const char *reason = API_REASON_DEFAULT;
    json_t *v = NULL;
    if (c->body_len) {
        json_error_t e;
        v = json_loadb(c->body, c->body_len, 0, &e);
        if (!json_is_object(v)) {
            json_decref(v);
            return fail(c, 400, "invalid_json", "the body must be a JSON object");
        }
        json_t *r = json_object_get(v, "reason");
        if (r) {
            const char *s = json_string_value(r);
            if (!s || !*s || !proto_valid_identity(s, strlen(s)) || strlen(s) > 120) {
                json_decref(v);
                return fail(c, 400, "invalid_reason",
                            "reason must be a string of 1-120 bytes without control characters");
            }
            reason = s;
        }
    }
    /* the reason goes to the control message from the body's buffer */
    char *copy = strdup(reason);
    json_decref(v);
    if (!copy)
        return fail(c, 500, "internal", "out of memory");
    free(c->body);
    c->body = copy;
    c->body_len = strlen(copy);
    char kdev[KEYS_MAX];
    keys_device(kdev, sizeof(kdev), c->target);
    const char *argv[] = {"HMGET", kdev, "conn", "node"};
    struct api_op *op = app_redis_ready(app) ? op_new(c) : NULL;
    if (!op || router_command(app->router, kdev, holder_reply, op, 4, argv, NULL))
        return not_sent(c);
    return API_WAIT;
}

/* ---- the request ----------------------------------------------------------------------------- */

/* Copies query argument name ("limit=") into buf; 1 if present. */
static int urlarg(struct lws *wsi, const char *name, char *buf, size_t cap) {
    char tmp[256];
    const char *v = lws_get_urlarg_by_name(wsi, name, tmp, (int)sizeof(tmp));
    if (!v)
        return 0;
    util_strlcpy(buf, v, cap);
    return 1;
}

static enum api_step run(struct api_call *c) {
    switch (c->endpoint) {
    case EP_PUBLISH:
        return publish(c);
    case EP_ROOMS:
        return rooms_list(c);
    case EP_ROOM:
        return room_get(c);
    case EP_DEVICE:
        return device_get(c);
    case EP_DISCONNECT:
        return disconnect(c);
    default:
        return fail(c, 404, "not_found", "no such endpoint");
    }
}

enum api_step api_begin(struct app *app, struct api_call *c, struct lws *wsi, const char *method,
                        const char *path, struct textbuf *out, void (*done)(struct api_call *c)) {
    api_cancel(c);
    memset(c, 0, sizeof(*c));
    c->app = app;
    c->out = out;
    c->done = done;
    c->endpoint = route(path, c->target, sizeof(c->target), &c->allow);
    int clen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    long long length = 0;
    if (clen > 0) {
        char num[24];
        lws_hdr_copy(wsi, num, sizeof(num), WSI_TOKEN_HTTP_CONTENT_LENGTH);
        length = strtoll(num, NULL, 10);
    }
    if (!authorized(app, wsi))
        return fail(c, 401, "unauthorized", "missing or wrong API key (Authorization: Bearer)");
    if (c->endpoint == EP_UNKNOWN)
        return fail(c, 404, "not_found", "no such endpoint");
    if (strcmp(method, c->allow) != 0)
        return fail(c, 405, "method_not_allowed",
                    strcmp(c->allow, "GET") == 0 ? "use GET" : "use POST");
    int room = c->endpoint == EP_PUBLISH || c->endpoint == EP_ROOM;
    if (c->endpoint != EP_ROOMS && !proto_valid_id(c->target, strlen(c->target),
                                                   room ? PROTO_MAX_ROOM_ID : PROTO_MAX_DEVICE_ID))
        return room ? fail(c, 400, "invalid_room_id",
                           "room ids are 1-64 characters from A-Z a-z 0-9 _ . : @ -")
                    : fail(c, 400, "invalid_device_id",
                           "device ids are 1-128 characters from A-Z a-z 0-9 _ . : @ -");
    c->has_cursor = urlarg(wsi, "cursor=", c->cursor, sizeof(c->cursor));
    c->has_limit = urlarg(wsi, "limit=", c->limit, sizeof(c->limit));
    if (urlarg(wsi, "from_device_id=", c->from, sizeof(c->from)) &&
        !proto_valid_id(c->from, strlen(c->from), PROTO_MAX_DEVICE_ID))
        return fail(c, 400, "invalid_from",
                    "from_device_id must be 1-128 characters from A-Z a-z 0-9 _ . : @ -");
    char type[64] = "";
    lws_hdr_copy(wsi, type, sizeof(type), WSI_TOKEN_HTTP_CONTENT_TYPE);
    c->binary = strncasecmp(type, "application/octet-stream", 24) == 0;
    int ilen = lws_hdr_custom_length(wsi, "idempotency-key:", 16);
    if (ilen >= 0 &&
        (ilen >= (int)sizeof(c->idem) ||
         lws_hdr_custom_copy(wsi, c->idem, (int)sizeof(c->idem), "idempotency-key:", 16) < 0 ||
         !proto_valid_id(c->idem, strlen(c->idem), PROTO_MAX_ACK_ID)))
        return fail(c, 400, "invalid_idempotency_key",
                    "Idempotency-Key must be 1-64 characters from A-Z a-z 0-9 _ . : @ -");
    if (strcmp(method, "POST") == 0) {
        if (clen <= 0) { /* a body of unknown length cannot be read: the connection ends */
            c->close_after = 1;
            return fail(c, 411, "length_required", "a POST needs a Content-Length");
        }
        if (length > app->opt.max_frame_bytes || length < 0) {
            c->close_after = 1;
            return fail(c, 413, "too_large", "the body is over RRM_MAX_FRAME_BYTES");
        }
        /* read even when empty: lws reports an explicit Content-Length: 0 as a body too */
        if (!(c->body = malloc((size_t)length + 1)))
            return fail(c, 500, "internal", "out of memory");
        c->body_cap = (size_t)length;
        c->body[0] = '\0';
        c->reading = 1;
        return API_READ_BODY;
    }
    return run(c);
}

void api_body(struct api_call *c, const void *in, size_t len) {
    if (!c->reading || !len) /* an empty body comes as one call with no bytes (and in NULL) */
        return;
    size_t n = len < c->body_cap - c->body_len ? len : c->body_cap - c->body_len;
    memcpy(c->body + c->body_len, in, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
}

enum api_step api_body_done(struct api_call *c) {
    c->reading = 0;
    return run(c);
}

void api_cancel(struct api_call *c) {
    if (c->op) {
        c->op->call = NULL;
        c->op = NULL;
    }
    free(c->body);
    c->body = NULL;
    c->body_len = c->body_cap = 0;
}

void api_metrics(const struct app *app, struct textbuf *b) {
    textbuf_add(b, "# HELP rrm_api_requests_total Server API requests (RRM_API_KEY), by endpoint "
                   "and HTTP status.\n# TYPE rrm_api_requests_total counter\n");
    for (int e = 0; e < EP_COUNT; e++)
        for (size_t i = 0; i < STATUS_COUNT; i++)
            textbuf_add(b, "rrm_api_requests_total{endpoint=\"%s\",code=\"%d\"} %" PRIu64 "\n",
                        endpoint_names[e], statuses[i], app->stats.api_requests[e][i]);
}
