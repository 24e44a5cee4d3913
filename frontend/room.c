/* Room actions as script calls (see room.h, scripts.c). */
#include "room.h"

#include "app.h"
#include "connid.h"
#include "keys.h"
#include "proto.h"
#include "router.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CANDIDATES 4

/* Replies find their connection by its number, carried as the callback's private data. */
static void *conn_tag(const struct room_conn *c) {
    return (void *)(uintptr_t)c->no;
}

static uint64_t tag_of(void *priv) {
    return (uint64_t)(uintptr_t)priv;
}

static void tell_error(struct app *app, uint64_t no, const char *code, const char *message) {
    app->room_ops->error(app->room_arg, no, code, message);
}

/* The message of an "unavailable" error frame for a failed script reply. Redis refuses writes
 * with OOM while it is at maxmemory (noeviction): the action did nothing and may be retried. */
static const char *unavailable_why(const redisReply *reply) {
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "OOM", 3) == 0)
        return "the cluster store is out of memory; try again later";
    return "the cluster store is unavailable";
}

/* A fresh room epoch: 16 hex digits (64 random bits). */
static int random_epoch(char out[17]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[8];
    if (util_random(rnd, sizeof(rnd)) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(rnd); i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 15];
    }
    out[16] = '\0';
    return 0;
}

/* What an identify needs to be undone if its session closed before the reply. */
struct identify_ticket {
    uint64_t conn_no;
    int64_t at_ms;
    char device[PROTO_MAX_DEVICE_ID + 1];
    char conn[CONNID_MAX];
};

static void identify_reply(void *arg, redisReply *r, void *priv) {
    struct identify_ticket *t = priv;
    struct app *app = arg;
    const struct room_ops *ops = app->room_ops;
    redisReply *reply = r;
    int ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 6 &&
             reply->element[0]->type == REDIS_REPLY_STRING &&
             reply->element[1]->type == REDIS_REPLY_STRING &&
             reply->element[2]->type == REDIS_REPLY_INTEGER &&
             reply->element[4]->type == REDIS_REPLY_STRING &&
             reply->element[5]->type == REDIS_REPLY_STRING;
    if (ok) {
        if (ops->identified(app->room_arg, t->conn_no, reply->element[0]->str,
                            reply->element[1]->str, (long)reply->element[2]->integer,
                            strtoll(reply->element[4]->str, NULL, 10), reply->element[5]->str))
            /* joined on behalf of a connection that is gone: undo it */
            room_leave_conn(app, t->device, reply->element[0]->str, t->conn, "client_closed",
                            t->at_ms);
    } else if (reply && reply->type == REDIS_REPLY_ERROR &&
               strncmp(reply->str, "FORBIDDEN", 9) == 0) {
        ops->forbidden(app->room_arg, t->conn_no);
    } else if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "ROOMID", 6) == 0) {
        ops->failed(app->room_arg, t->conn_no, PROTO_E_UNAVAILABLE,
                    "could not assign a room, try again");
    } else {
        ops->failed(app->room_arg, t->conn_no, PROTO_E_UNAVAILABLE, unavailable_why(reply));
    }
    free(t);
}

int room_identify(struct app *app, const struct room_conn *c) {
    if (!app_redis_ready(app))
        return -1;
    struct identify_ticket *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    t->conn_no = c->no;
    t->at_ms = c->connected_at_ms;
    snprintf(t->device, sizeof(t->device), "%s", c->device_id);
    snprintf(t->conn, sizeof(t->conn), "%s", c->conn_id);

    char kdev[KEYS_MAX], kconns[KEYS_MAX], kev[KEYS_MAX], now[24], ttl[24], maxlen[24], shards[8];
    char cand[CANDIDATES][PROTO_ROOM_ID_LEN + 1], epoch[17];
    keys_device(kdev, sizeof(kdev), c->device_id);
    keys_node_conns(kconns, sizeof(kconns), app->node_id);
    /* the wanted room's stream; with no room named the script picks the room and its stream */
    keys_events_for(kev, sizeof(kev), c->room_id[0] ? c->room_id : c->device_id,
                    (unsigned)app->opt.event_shards);
    snprintf(now, sizeof(now), "%" PRId64, c->connected_at_ms);
    snprintf(ttl, sizeof(ttl), "%ld", app->opt.device_ttl_ms);
    snprintf(maxlen, sizeof(maxlen), "%ld", fe_stream_shard_maxlen(&app->opt));
    snprintf(shards, sizeof(shards), "%ld", app->opt.event_shards);
    const char *rooms = c->rooms ? c->rooms : "*", *fresh = c->no_auto_room ? "0" : "1";
    if (random_epoch(epoch) < 0) {
        free(t);
        return -1;
    }
    const char *argv[17 + CANDIDATES] = {
        kdev,        kconns,     KEYS_EMPTY_ROOMS, kev,          c->device_id,
        c->identity, c->room_id, t->conn,          app->node_id, now,
        c->ip,       ttl,        maxlen,           rooms,        fresh,
        epoch,       shards,
    };
    for (int i = 0; i < CANDIDATES; i++) {
        if (proto_random_room_id(cand[i]) < 0) {
            free(t);
            return -1;
        }
        argv[17 + i] = cand[i];
    }
    if (router_eval(app->router, SCRIPT_IDENTIFY, identify_reply, t, 4, 17 + CANDIDATES, argv,
                    NULL)) {
        free(t);
        return -1;
    }
    return 0;
}

static void pending_reply(void *arg, redisReply *r, void *priv) {
    (void)r;
    (void)priv;
    struct app *app = arg;
    app->pending_writes--;
}

void room_leave_conn(struct app *app, const char *device, const char *room, const char *conn,
                     const char *reason, int64_t connected_at) {
    if (!app_redis_ready(app))
        return; /* resynchronised from the node's conns when Redis is back (node.c) */
    char kdev[KEYS_MAX], kconns[KEYS_MAX], kev[KEYS_MAX], now[24], at[24], maxlen[24];
    keys_device(kdev, sizeof(kdev), device);
    keys_node_conns(kconns, sizeof(kconns), app->node_id);
    keys_events_for(kev, sizeof(kev), room, (unsigned)app->opt.event_shards);
    snprintf(now, sizeof(now), "%" PRId64, util_now_ms());
    snprintf(at, sizeof(at), "%" PRId64, connected_at);
    snprintf(maxlen, sizeof(maxlen), "%ld", fe_stream_shard_maxlen(&app->opt));
    const char *argv[] = {kdev,         kconns, KEYS_EMPTY_ROOMS, kev, device, room, conn,
                          app->node_id, now,    reason,           at,  maxlen};
    if (router_eval(app->router, SCRIPT_LEAVE, pending_reply, NULL, 4,
                    (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL) == 0)
        app->pending_writes++;
}

void room_leave(struct app *app, const struct room_conn *c, const char *reason) {
    room_leave_conn(app, c->device_id, c->room_id, c->conn_id, reason, c->connected_at_ms);
}

/* The send script's answer for connection no: 0 if the message was accepted (its seq in *seq;
 * *resent 1 when its ack key said it had been accepted before), else -1 after telling the
 * client why. */
static int send_outcome(struct app *app, uint64_t no, const redisReply *reply, long long *seq,
                        int *resent) {
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        *seq = reply->integer;
        *resent = 0;
        return 0;
    }
    if (reply && reply->type == REDIS_REPLY_STRING) {
        *seq = strtoll(reply->str, NULL, 10);
        *resent = 1;
        return 0;
    }
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOTMEMBER", 9) == 0) {
        tell_error(app, no, PROTO_E_NOT_MEMBER,
                   "this connection no longer holds the device's room membership");
        return -1;
    }
    app->stats.redis_errors++;
    if (reply) /* Redis refused the script (out of memory, ...): it did not run */
        tell_error(app, no, PROTO_E_UNAVAILABLE,
                   "message not delivered: the cluster store refused it");
    else /* the link was lost with the request sent: Redis may still have run it */
        tell_error(app, no, PROTO_E_OUTCOME_UNKNOWN,
                   "the cluster store stopped answering after this message was sent: "
                   "it may or may not have been delivered");
    return -1;
}

static void send_reply(void *arg, redisReply *r, void *priv) {
    long long seq;
    int resent;
    send_outcome((struct app *)arg, tag_of(priv), r, &seq, &resent);
}

struct ack_ticket {
    uint64_t conn_no;
    char ack_id[PROTO_MAX_ACK_ID + 1];
};

static void send_ack_reply(void *arg, redisReply *r, void *priv) {
    struct app *app = arg;
    struct ack_ticket *t = priv;
    long long seq;
    int resent;
    if (send_outcome(app, t->conn_no, r, &seq, &resent) == 0) {
        if (resent)
            app->stats.ack_resends++;
        app->room_ops->acked(app->room_arg, t->conn_no, t->ack_id, seq, resent);
    }
    free(t);
}

long room_history_refresh_ms(const struct app *app) {
    long every = app->opt.history_ttl_ms / 10;
    return every > 1000 ? 1000 : every < 1 ? 1 : every;
}

struct scripts_params room_send_params(const struct app *app) {
    /* history-ttl-ms 0 turns history off as history-size 0 does */
    return (struct scripts_params){
        .stream_maxlen = fe_stream_shard_maxlen(&app->opt),
        .history_size = app->opt.history_ttl_ms ? app->opt.history_size : 0,
        .history_ttl_ms = app->opt.history_ttl_ms + room_history_refresh_ms(app),
        .ack_window_ms = app->opt.ack_window_ms,
    };
}

int room_send(struct app *app, const struct room_conn *c, const char *frame_prefix,
              size_t prefix_len, const void *body, size_t body_len, const char *kind,
              const char *ack_id) {
    if (!app_redis_ready(app))
        return -1;
    char kroom[KEYS_MAX], kmembers[KEYS_MAX], kch[KEYS_MAX], khist[KEYS_MAX], kack[KEYS_ACK_MAX];
    char kev[KEYS_MAX];
    char ts[24];
    char header[100];
    int nroom = keys_room(kroom, sizeof(kroom), c->room_id);
    int nmembers = keys_room_members(kmembers, sizeof(kmembers), c->room_id);
    int nch = keys_room_channel(kch, sizeof(kch), c->room_id);
    int nhist = keys_room_history(khist, sizeof(khist), c->room_id);
    int nev = keys_events_for(kev, sizeof(kev), c->room_id, (unsigned)app->opt.event_shards);
    int nack = ack_id ? keys_room_ack(kack, sizeof(kack), c->room_id, c->device_id, ack_id) : 0;
    if (nack < 0)
        return -1;
    int hlen = proto_pub_header(header, sizeof(header), !frame_prefix, c->conn_id,
                                (uint64_t)util_now_us());
    if (hlen < 0)
        return -1;
    int tlen = (int)util_u64_dec(ts, (uint64_t)util_now_ms());
    /* the message event's fields (event.h) are named by the script; the ack key, last of the
     * keys, is there only with an ack_id */
    const char *argv[] = {kroom,
                          kmembers,
                          kch,
                          kev,
                          khist,
                          kack,
                          c->device_id,
                          c->conn_id,
                          header,
                          frame_prefix ? frame_prefix : "",
                          (const char *)body,
                          ts,
                          app->node_id,
                          c->room_id,
                          kind,
                          c->refresh_history ? "1" : "0"};
    size_t lens[] = {(size_t)nroom,
                     (size_t)nmembers,
                     (size_t)nch,
                     (size_t)nev,
                     (size_t)nhist,
                     (size_t)nack,
                     strlen(c->device_id),
                     c->conn_id_len,
                     (size_t)hlen,
                     frame_prefix ? prefix_len : 0,
                     body_len,
                     (size_t)tlen,
                     strlen(app->node_id),
                     strlen(c->room_id),
                     strlen(kind),
                     1};
    int argc = (int)(sizeof(argv) / sizeof(argv[0]));
    if (!ack_id) { /* without the ack key: the keys end at the history */
        memmove(&argv[5], &argv[6], (size_t)(argc - 6) * sizeof(argv[0]));
        memmove(&lens[5], &lens[6], (size_t)(argc - 6) * sizeof(lens[0]));
        return router_eval(app->router, SCRIPT_SEND, send_reply, conn_tag(c), 5, argc - 1, argv,
                           lens);
    }
    struct ack_ticket *t = malloc(sizeof(*t));
    if (!t)
        return -1;
    t->conn_no = c->no;
    util_strlcpy(t->ack_id, ack_id, sizeof(t->ack_id));
    if (router_eval(app->router, SCRIPT_SEND, send_ack_reply, t, 6, argc, argv, lens)) {
        free(t);
        return -1;
    }
    return 0;
}

/* The resume script's answer: {recovered, seq, epoch, {payload, ...}}, each payload as
 * published (proto_pub_parse). */
static void resume_reply(void *arg, redisReply *r, void *priv) {
    struct app *app = arg;
    uint64_t no = tag_of(priv);
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER ||
        reply->element[2]->type != REDIS_REPLY_STRING ||
        reply->element[3]->type != REDIS_REPLY_ARRAY) {
        app->room_ops->failed(app->room_arg, no, PROTO_E_UNAVAILABLE, unavailable_why(reply));
        return;
    }
    const redisReply *list = reply->element[3];
    size_t n = list->elements;
    struct room_history_msg *m = n ? calloc(n, sizeof(*m)) : NULL;
    if (n && !m) {
        app->room_ops->failed(app->room_arg, no, PROTO_E_UNAVAILABLE, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = list->element[i];
        struct proto_pub pub;
        if (e->type != REDIS_REPLY_STRING || proto_pub_parse(e->str, e->len, &pub) || !pub.seq) {
            free(m);
            app->room_ops->failed(app->room_arg, no, PROTO_E_UNAVAILABLE,
                                  "the room history could not be read");
            return;
        }
        m[i] = (struct room_history_msg){pub.seq, pub.kind == PROTO_PUB_BINARY, pub.frame,
                                         pub.frame_len};
    }
    struct room_history h = {(int)reply->element[0]->integer, reply->element[1]->integer,
                             reply->element[2]->str, m, n};
    app->room_ops->resumed(app->room_arg, no, &h);
    free(m);
}

int room_resume(struct app *app, const struct room_conn *c, long long last_seq, const char *epoch) {
    if (!app_redis_ready(app))
        return -1;
    char kroom[KEYS_MAX], khist[KEYS_MAX], last[24], size[24], most[24];
    keys_room(kroom, sizeof(kroom), c->room_id);
    keys_room_history(khist, sizeof(khist), c->room_id);
    snprintf(last, sizeof(last), "%lld", last_seq);
    snprintf(size, sizeof(size), "%ld", app->opt.history_ttl_ms ? app->opt.history_size : 0);
    /* the replayed frames must fit in the client's outbound queue, with room for live ones */
    snprintf(most, sizeof(most), "%ld", app->opt.send_queue_bytes / 2);
    const char *argv[] = {kroom, khist, last, epoch, size, most, c->device_id};
    return router_eval(app->router, SCRIPT_RESUME, resume_reply, conn_tag(c), 2,
                       (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
}

/* What a room_info answer needs: whom it is for, and whom to leave out of the list. */
struct query_ticket {
    uint64_t conn_no;
    char room[PROTO_MAX_ROOM_ID + 1];
    char device[PROTO_MAX_DEVICE_ID + 1];
};

static void query_reply(void *arg, redisReply *r, void *priv) {
    struct query_ticket *t = priv;
    struct app *app = arg;
    redisReply *reply = r;
    app->queries_in_flight--;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        app->stats.redis_errors++;
        tell_error(app, t->conn_no, PROTO_E_UNAVAILABLE, unavailable_why(reply));
        free(t);
        return;
    }
    long long total = reply->element[0]->integer;
    const redisReply *list = reply->element[1];
    size_t cap = (size_t)app->opt.query_max_clients, others = 0, n = 0;
    struct proto_member *m = calloc(cap, sizeof(*m));
    if (!m) {
        tell_error(app, t->conn_no, PROTO_E_UNAVAILABLE, "out of memory");
        free(t);
        return;
    }
    for (size_t i = 0; i + 1 < list->elements; i += 2) {
        const redisReply *dev = list->element[i], *val = list->element[i + 1];
        if (dev->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(dev->str, t->device) == 0)
            continue;
        if (++others > cap)
            continue;
        /* value: conn \t node \t identity */
        const char *tab1 = memchr(val->str, '\t', val->len);
        const char *tab2 =
            tab1 ? memchr(tab1 + 1, '\t', val->len - (size_t)(tab1 + 1 - val->str)) : NULL;
        const char *ident = tab2 ? tab2 + 1 : "";
        size_t ilen = tab2 ? val->len - (size_t)(ident - val->str) : 0;
        m[n++] = (struct proto_member){dev->str, ident, dev->len, ilen};
    }
    /* A room the script sampled has more members than it listed (see query_lua). */
    size_t len;
    char *text = proto_room_info_frame(t->room, total, m, n,
                                       others > cap || total > (long long)cap + 1, &len);
    free(m);
    if (text)
        app->room_ops->answer(app->room_arg, t->conn_no, text, len);
    free(text);
    free(t);
}

int room_query(struct app *app, const struct room_conn *c) {
    if (!app_redis_ready(app))
        return -1;
    if (app->queries_in_flight >= ROOM_QUERIES_IN_FLIGHT)
        return 1;
    struct query_ticket *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    t->conn_no = c->no;
    snprintf(t->room, sizeof(t->room), "%s", c->room_id);
    snprintf(t->device, sizeof(t->device), "%s", c->device_id);
    char kmembers[KEYS_MAX], kev[KEYS_MAX], now[24], maxlen[24], most[24];
    keys_room_members(kmembers, sizeof(kmembers), c->room_id);
    keys_events_for(kev, sizeof(kev), c->room_id, (unsigned)app->opt.event_shards);
    snprintf(now, sizeof(now), "%" PRId64, util_now_ms());
    snprintf(maxlen, sizeof(maxlen), "%ld", fe_stream_shard_maxlen(&app->opt));
    snprintf(most, sizeof(most), "%ld", app->opt.query_max_clients);
    const char *argv[] = {kmembers,     kev, c->device_id, c->conn_id,  c->room_id,
                          app->node_id, now, maxlen,       c->identity, most};
    if (router_eval(app->router, SCRIPT_QUERY, query_reply, t, 2,
                    (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL)) {
        free(t);
        return -1;
    }
    app->stats.queries++;
    app->queries_in_flight++;
    return 0;
}

static void restore_reply(void *arg, redisReply *r, void *priv) {
    struct app *app = arg;
    uint64_t no = tag_of(priv);
    redisReply *reply = r;
    app->pending_writes--;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        /* another connection claimed the device while this node was cut off */
        app->room_ops->replaced(app->room_arg, no);
    } else if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
               reply->element[0]->type == REDIS_REPLY_STRING &&
               reply->element[1]->type == REDIS_REPLY_STRING &&
               reply->element[2]->type == REDIS_REPLY_INTEGER) {
        app->room_ops->restored(app->room_arg, no, strtoll(reply->element[0]->str, NULL, 10),
                                reply->element[1]->str, (long)reply->element[2]->integer);
    } else if (reply && reply->type == REDIS_REPLY_ERROR) {
        /* Redis refused it (full): a client left in a room the cluster does not list would wait
         * for nothing, so it is told to connect again. (A lost link retries on reconnect.) */
        app->room_ops->failed(app->room_arg, no, PROTO_E_UNAVAILABLE, unavailable_why(reply));
    }
}

int room_restore(struct app *app, const struct room_conn *c) {
    if (!app_redis_ready(app))
        return -1;
    char kdev[KEYS_MAX], kconns[KEYS_MAX], now[24], ttl[24], epoch[17];
    keys_device(kdev, sizeof(kdev), c->device_id);
    keys_node_conns(kconns, sizeof(kconns), app->node_id);
    snprintf(now, sizeof(now), "%" PRId64, util_now_ms());
    snprintf(ttl, sizeof(ttl), "%ld", app->opt.device_ttl_ms);
    if (random_epoch(epoch) < 0)
        return -1;
    const char *argv[] = {kdev,       kconns,     KEYS_EMPTY_ROOMS, c->device_id, c->identity,
                          c->room_id, c->conn_id, app->node_id,     now,          ttl,
                          epoch};
    if (router_eval(app->router, SCRIPT_RESTORE, restore_reply, conn_tag(c), 3,
                    (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL))
        return -1;
    app->pending_writes++;
    return 0;
}
