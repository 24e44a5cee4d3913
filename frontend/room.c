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

static unsigned room_shard(const struct app *app, const char *room) {
    return keys_room_shard(room, (unsigned)app->opt.event_shards);
}

/* Up to this many fresh room ids are tried before an identify gives up (each is a random 6
 * character id: a collision is rare, several in a row mean something else is wrong). */
#define NEW_ROOM_TRIES 4

/* An identify in flight. Its steps, each on one slot:
 *   1. claim (device): the connection takes the device over, the device's room is set to the one
 *      it is to join, and the previous holder is named;
 *   2. register (this node): conn -> room and device, so that the reaper finds the member if this
 *      node dies from here on. With a room named, 1 and 2 go out together; else 2 follows 1;
 *   3. join (room), once 1 and 2 are done: the member is added, with its events. A 'last' room
 *      that is gone or a fresh id that is taken goes back to 2 with another fresh id, and then
 *   4. remember (device) records that room instead, if the connection still holds the device;
 *   5. the client is answered, and the previous holder's membership is removed (its room, its
 *      node) and its node told to close it.
 * A crash between steps leaves only what is repaired later: after 1, the device names a
 * connection that does not exist (the next identify replaces it, or the device's TTL ends it);
 * after 2 or 3, the reaper removes the member of the dead node and releases the device; after 3,
 * the previous connection is still listed, and its node (or the reaper) removes it when it
 * closes. A step that fails undoes the claim and the registration. */
struct identify_ticket {
    uint64_t conn_no;
    int64_t at_ms;
    int no_auto;
    int tries;
    int waiting;    /* replies of steps 1 and 2 still to come */
    int refused;    /* step 1 or 2 said: 1 FORBIDDEN, 2 failed (why) */
    int registered; /* step 2 done for room */
    int remember;   /* the room joined is not the one step 1 recorded */
    const char *why;
    char mode[8];
    char device[PROTO_MAX_DEVICE_ID + 1];
    char conn[CONNID_MAX];
    char identity[PROTO_MAX_IDENTITY + 1];
    char ip[64];
    char room[PROTO_MAX_ROOM_ID + 1];
    char epoch[17];
    char prev_room[PROTO_MAX_ROOM_ID + 1];
    char prev_conn[CONNID_MAX];
    char prev_node[64];
    char action[16];
    char room_epoch[PROTO_MAX_EPOCH + 1];
    long total;
    long long seq;
    char *rooms; /* the token's rooms claim, or NULL */
};

static void ticket_free(struct identify_ticket *t) {
    free(t->rooms);
    free(t);
}

static int eval(struct app *app, enum script_id id, router_reply_fn *cb, void *priv, int nkeys,
                int argc, const char **argv) {
    return router_eval(app->router, id, cb, priv, nkeys, argc, argv, NULL);
}

static void pending_reply(void *arg, redisReply *r, void *priv) {
    (void)r;
    (void)priv;
    struct app *app = arg;
    app->pending_writes--;
}

/* Fire and forget, counted in app->pending_writes until Redis answers. */
static void write_async(struct app *app, enum script_id id, int nkeys, int argc,
                        const char **argv) {
    if (eval(app, id, pending_reply, NULL, nkeys, argc, argv) == 0)
        app->pending_writes++;
}

static void command_async(struct app *app, const char *key, int argc, const char **argv) {
    if (router_command(app->router, key, pending_reply, NULL, argc, argv, NULL) == 0)
        app->pending_writes++;
}

/* The device goes back to its previous holder (or to none) if conn still holds it; with
 * prev_room (not NULL), its room too. */
static void release_device(struct app *app, const char *device, const char *conn,
                           const char *prev_conn, const char *prev_node, const char *prev_room) {
    char kdev[KEYS_MAX];
    keys_device(kdev, sizeof(kdev), device);
    const char *argv[] = {kdev, conn, prev_conn, prev_node, prev_room};
    write_async(app, SCRIPT_RELEASE, 1, prev_room ? 5 : 4, argv);
}

static void unregister(struct app *app, const char *node, const char *conn) {
    char kconns[KEYS_MAX];
    keys_node_conns(kconns, sizeof(kconns), node);
    const char *argv[] = {"HDEL", kconns, conn};
    command_async(app, kconns, 3, argv);
}

/* An identify that did not complete: its claim and registration are undone. */
static void identify_undo(struct app *app, struct identify_ticket *t) {
    release_device(app, t->device, t->conn, t->prev_conn, t->prev_node, t->prev_room);
    if (t->registered)
        unregister(app, app->node_id, t->conn);
}

static void identify_failed(struct app *app, struct identify_ticket *t, const char *why) {
    identify_undo(app, t);
    app->room_ops->failed(app->room_arg, t->conn_no, PROTO_E_UNAVAILABLE, why);
    ticket_free(t);
}

static int identify_register(struct app *app, struct identify_ticket *t);
static void identify_join(struct app *app, struct identify_ticket *t);

/* The previous holder of the device loses its membership, and its node closes it. */
static void displace(struct app *app, const struct identify_ticket *t) {
    if (!t->prev_conn[0] || strcmp(t->prev_conn, t->conn) == 0)
        return;
    if (t->prev_room[0]) {
        unsigned shard = room_shard(app, t->prev_room);
        char kmembers[KEYS_MAX], kempty[KEYS_MAX], kev[KEYS_MAX], kch[KEYS_MAX], now[24];
        char maxlen[24];
        keys_room_members(kmembers, sizeof(kmembers), shard, t->prev_room);
        keys_empty_rooms(kempty, sizeof(kempty), shard);
        keys_events(kev, sizeof(kev), shard);
        keys_room_channel(kch, sizeof(kch), shard, t->prev_room);
        /* the time of the leave: a replaced connection in another room leaves it now */
        snprintf(now, sizeof(now), "%" PRId64, util_now_ms());
        snprintf(maxlen, sizeof(maxlen), "%ld", fe_stream_shard_maxlen(&app->opt));
        const char *argv[] = {kmembers,     kempty,       kev, kch, t->prev_room,
                              t->device,    t->prev_conn, now, "0", maxlen,
                              t->prev_node, "",           ""};
        write_async(app, SCRIPT_MEMBER_LEAVE, 4, 13, argv);
    }
    if (t->prev_node[0]) {
        char kch[KEYS_MAX], msg[CONNID_MAX + 8];
        unregister(app, t->prev_node, t->prev_conn);
        keys_node_channel(kch, sizeof(kch), t->prev_node);
        snprintf(msg, sizeof(msg), "kick %s", t->prev_conn);
        const char *argv[] = {"PUBLISH", kch, msg};
        command_async(app, NULL, 3, argv);
    }
}

/* Step 5: joined. */
static void identified(struct app *app, struct identify_ticket *t) {
    displace(app, t);
    if (app->room_ops->identified(app->room_arg, t->conn_no, t->room, t->action, t->total, t->seq,
                                  t->room_epoch))
        /* joined on behalf of a connection that is gone: undo it */
        room_leave_conn(app, t->device, t->room, t->conn, "client_closed", t->at_ms);
    ticket_free(t);
}

static void remember_reply(void *arg, redisReply *reply, void *priv) {
    struct app *app = arg;
    struct identify_ticket *t = priv;
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        /* the member joined: leave as a closed connection would, and fail the client */
        room_leave_conn(app, t->device, t->room, t->conn, "client_closed", t->at_ms);
        app->room_ops->failed(app->room_arg, t->conn_no, PROTO_E_UNAVAILABLE,
                              unavailable_why(reply));
        ticket_free(t);
        return;
    }
    identified(app, t);
}

static int fresh_room(struct identify_ticket *t) {
    return proto_random_room_id(t->room);
}

static void join_reply(void *arg, redisReply *reply, void *priv) {
    struct app *app = arg;
    struct identify_ticket *t = priv;
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NEEDNEW", 7) == 0) {
        if (strcmp(t->mode, "last") == 0 && t->no_auto) {
            identify_undo(app, t);
            app->room_ops->forbidden(app->room_arg, t->conn_no);
            ticket_free(t);
        } else if (++t->tries > NEW_ROOM_TRIES || fresh_room(t) < 0) {
            identify_failed(app, t, "could not assign a room, try again");
        } else {
            snprintf(t->mode, sizeof(t->mode), "new");
            t->remember = 1;
            t->waiting = 1;
            if (identify_register(app, t))
                identify_failed(app, t, unavailable_why(NULL));
        }
        return;
    }
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_INTEGER ||
        reply->element[2]->type != REDIS_REPLY_STRING ||
        reply->element[3]->type != REDIS_REPLY_STRING) {
        identify_failed(app, t, unavailable_why(reply));
        return;
    }
    util_strlcpy(t->action, reply->element[0]->str, sizeof(t->action));
    t->total = (long)reply->element[1]->integer;
    t->seq = strtoll(reply->element[2]->str, NULL, 10);
    util_strlcpy(t->room_epoch, reply->element[3]->str, sizeof(t->room_epoch));
    if (!t->remember) {
        identified(app, t);
        return;
    }
    char kdev[KEYS_MAX], ttl[24];
    keys_device(kdev, sizeof(kdev), t->device);
    snprintf(ttl, sizeof(ttl), "%ld", app->opt.device_ttl_ms);
    const char *argv[] = {kdev, t->conn, t->room, ttl};
    if (eval(app, SCRIPT_REMEMBER, remember_reply, t, 1, 4, argv))
        remember_reply(app, NULL, t);
}

static void identify_join(struct app *app, struct identify_ticket *t) {
    unsigned shard = room_shard(app, t->room);
    char kroom[KEYS_MAX], kmembers[KEYS_MAX], kempty[KEYS_MAX], kev[KEYS_MAX], khist[KEYS_MAX];
    char krooms[KEYS_MAX], kch[KEYS_MAX], now[24], maxlen[24], joined_at[24];
    keys_room(kroom, sizeof(kroom), shard, t->room);
    keys_room_members(kmembers, sizeof(kmembers), shard, t->room);
    keys_empty_rooms(kempty, sizeof(kempty), shard);
    keys_events(kev, sizeof(kev), shard);
    keys_room_history(khist, sizeof(khist), shard, t->room);
    keys_rooms(krooms, sizeof(krooms), shard);
    keys_room_channel(kch, sizeof(kch), shard, t->room);
    snprintf(now, sizeof(now), "%" PRId64, t->at_ms);
    snprintf(maxlen, sizeof(maxlen), "%ld", fe_stream_shard_maxlen(&app->opt));
    snprintf(joined_at, sizeof(joined_at), "%" PRId64, util_now_ms());
    const char *argv[] = {kroom,    kmembers,     kempty,       kev,      khist,
                          krooms,   kch,          t->mode,      t->room,  t->device,
                          t->conn,  app->node_id, t->identity,  t->ip,    now,
                          t->epoch, maxlen,       t->prev_room, joined_at};
    if (eval(app, SCRIPT_JOIN, join_reply, t, 7, 19, argv))
        identify_failed(app, t, unavailable_why(NULL));
}

/* Steps 1 and 2 answered (each calls it once): on to 3, or the identify ends. */
static void claimed(struct app *app, struct identify_ticket *t) {
    if (--t->waiting > 0)
        return;
    if (t->refused == 1) {
        if (t->registered)
            unregister(app, app->node_id, t->conn);
        app->room_ops->forbidden(app->room_arg, t->conn_no);
        ticket_free(t);
    } else if (t->refused) {
        identify_failed(app, t, t->why);
    } else if (!t->registered) { /* no room was named: registered now that it is known */
        t->waiting = 1;
        if (identify_register(app, t))
            identify_failed(app, t, unavailable_why(NULL));
    } else {
        identify_join(app, t);
    }
}

static void register_reply(void *arg, redisReply *reply, void *priv) {
    struct app *app = arg;
    struct identify_ticket *t = priv;
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        t->registered = 1;
    } else if (!t->refused) {
        t->refused = 2;
        t->why = unavailable_why(reply);
    }
    claimed(app, t);
}

static int identify_register(struct app *app, struct identify_ticket *t) {
    char kconns[KEYS_MAX], value[PROTO_MAX_ROOM_ID + PROTO_MAX_DEVICE_ID + 2];
    keys_node_conns(kconns, sizeof(kconns), app->node_id);
    snprintf(value, sizeof(value), "%s\t%s", t->room, t->device);
    const char *argv[] = {kconns, t->conn, value};
    return eval(app, SCRIPT_REGISTER, register_reply, t, 1, 3, argv);
}

static void claim_reply(void *arg, redisReply *reply, void *priv) {
    struct app *app = arg;
    struct identify_ticket *t = priv;
    int ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4;
    for (size_t i = 0; ok && i < 4; i++)
        ok = reply->element[i]->type == REDIS_REPLY_STRING;
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "FORBIDDEN", 9) == 0) {
        t->refused = 1;
    } else if (!ok) {
        t->refused = 2;
        t->why = unavailable_why(reply);
    } else {
        util_strlcpy(t->mode, reply->element[0]->str, sizeof(t->mode));
        util_strlcpy(t->prev_room, reply->element[1]->str, sizeof(t->prev_room));
        util_strlcpy(t->prev_conn, reply->element[2]->str, sizeof(t->prev_conn));
        util_strlcpy(t->prev_node, reply->element[3]->str, sizeof(t->prev_node));
        if (strcmp(t->mode, "last") == 0)
            util_strlcpy(t->room, t->prev_room, sizeof(t->room));
    }
    claimed(app, t);
}

int room_identify(struct app *app, const struct room_conn *c) {
    if (!app_redis_ready(app))
        return -1;
    struct identify_ticket *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    t->conn_no = c->no;
    t->at_ms = c->connected_at_ms;
    t->no_auto = c->no_auto_room;
    util_strlcpy(t->device, c->device_id, sizeof(t->device));
    util_strlcpy(t->conn, c->conn_id, sizeof(t->conn));
    util_strlcpy(t->identity, c->identity, sizeof(t->identity));
    util_strlcpy(t->ip, c->ip ? c->ip : "", sizeof(t->ip));
    util_strlcpy(t->room, c->room_id, sizeof(t->room));
    int named = t->room[0] != '\0';
    /* with no room named, the fresh room's id in case one is made */
    if ((c->rooms && !(t->rooms = strdup(c->rooms))) || random_epoch(t->epoch) < 0 ||
        (!named && fresh_room(t) < 0)) {
        ticket_free(t);
        return -1;
    }
    char kdev[KEYS_MAX], ttl[24], since[24];
    keys_device(kdev, sizeof(kdev), c->device_id);
    snprintf(ttl, sizeof(ttl), "%ld", app->opt.device_ttl_ms);
    snprintf(since, sizeof(since), "%" PRId64, c->connected_at_ms);
    const char *argv[] = {kdev,
                          t->conn,
                          app->node_id,
                          t->identity,
                          ttl,
                          named ? t->room : "",
                          t->rooms ? t->rooms : "*",
                          c->no_auto_room ? "0" : "1",
                          named ? "" : t->room,
                          since};
    t->waiting = 1 + named;
    if (eval(app, SCRIPT_CLAIM, claim_reply, t, 1, 10, argv)) {
        ticket_free(t);
        return -1;
    }
    if (named && identify_register(app, t)) {
        t->refused = 2; /* the claim's reply ends it */
        t->why = unavailable_why(NULL);
        t->waiting = 1;
    }
    return 0;
}

/* The member with its disconnect event (room), then the device (device), then this node's entry
 * (node): the entry goes last, once the member is gone, so that the reaper still finds a member
 * whose leave a crash interrupted. */
struct leave_ticket {
    char conn[CONNID_MAX];
};

static void left_reply(void *arg, redisReply *reply, void *priv) {
    struct app *app = arg;
    struct leave_ticket *t = priv;
    app->pending_writes--;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        unregister(app, app->node_id, t->conn);
    free(t);
}

void room_leave_conn(struct app *app, const char *device, const char *room, const char *conn,
                     const char *reason, int64_t connected_at) {
    if (!app_redis_ready(app))
        return; /* resynchronised from the node's conns when Redis is back (node.c) */
    struct leave_ticket *t = malloc(sizeof(*t));
    if (!t)
        return;
    util_strlcpy(t->conn, conn, sizeof(t->conn));
    unsigned shard = room_shard(app, room);
    char kmembers[KEYS_MAX], kempty[KEYS_MAX], kev[KEYS_MAX], kch[KEYS_MAX], now[24], at[24];
    char maxlen[24];
    keys_room_members(kmembers, sizeof(kmembers), shard, room);
    keys_empty_rooms(kempty, sizeof(kempty), shard);
    keys_events(kev, sizeof(kev), shard);
    keys_room_channel(kch, sizeof(kch), shard, room);
    snprintf(now, sizeof(now), "%" PRId64, util_now_ms());
    snprintf(at, sizeof(at), "%" PRId64, connected_at);
    snprintf(maxlen, sizeof(maxlen), "%ld", fe_stream_shard_maxlen(&app->opt));
    const char *argv[] = {kmembers, kempty, kev,    kch,          room,   device, conn,
                          now,      "1",    maxlen, app->node_id, reason, at};
    if (eval(app, SCRIPT_MEMBER_LEAVE, left_reply, t, 4, 13, argv)) {
        free(t);
        return;
    }
    app->pending_writes++;
    release_device(app, device, conn, "", "", NULL);
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
    unsigned shard = room_shard(app, c->room_id);
    int nroom = keys_room(kroom, sizeof(kroom), shard, c->room_id);
    int nmembers = keys_room_members(kmembers, sizeof(kmembers), shard, c->room_id);
    int nch = keys_room_channel(kch, sizeof(kch), shard, c->room_id);
    int nhist = keys_room_history(khist, sizeof(khist), shard, c->room_id);
    int nev = keys_events(kev, sizeof(kev), shard);
    int nack =
        ack_id ? keys_room_ack(kack, sizeof(kack), shard, c->room_id, c->device_id, ack_id) : 0;
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
    unsigned shard = room_shard(app, c->room_id);
    keys_room(kroom, sizeof(kroom), shard, c->room_id);
    keys_room_history(khist, sizeof(khist), shard, c->room_id);
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
    unsigned shard = room_shard(app, c->room_id);
    keys_room_members(kmembers, sizeof(kmembers), shard, c->room_id);
    keys_events(kev, sizeof(kev), shard);
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

/* A restore in flight: the device (is it still this connection's?), then this node's entry,
 * then the membership (restore_device_lua). */
struct restore_ticket {
    uint64_t conn_no;
    char device[PROTO_MAX_DEVICE_ID + 1];
    char room[PROTO_MAX_ROOM_ID + 1];
    char conn[CONNID_MAX];
    char member[CONNID_MAX + 64 + PROTO_MAX_IDENTITY + 2]; /* conn \t node \t identity */
    char epoch[17];
};

/* Redis refused a step (full): a client left in a room the cluster does not list would wait for
 * nothing, so it is told to connect again. A lost link (no reply) retries on reconnect. */
static void restore_failed(struct app *app, struct restore_ticket *t, const redisReply *reply) {
    if (reply && reply->type == REDIS_REPLY_ERROR)
        app->room_ops->failed(app->room_arg, t->conn_no, PROTO_E_UNAVAILABLE,
                              unavailable_why(reply));
    app->pending_writes--;
    free(t);
}

static void restore_room_reply(void *arg, redisReply *reply, void *priv) {
    struct app *app = arg;
    struct restore_ticket *t = priv;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING &&
        reply->element[2]->type == REDIS_REPLY_INTEGER) {
        app->pending_writes--;
        app->room_ops->restored(app->room_arg, t->conn_no,
                                strtoll(reply->element[0]->str, NULL, 10), reply->element[1]->str,
                                (long)reply->element[2]->integer);
        free(t);
        return;
    }
    restore_failed(app, t, reply);
}

static void restore_node_reply(void *arg, redisReply *reply, void *priv) {
    struct app *app = arg;
    struct restore_ticket *t = priv;
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        restore_failed(app, t, reply);
        return;
    }
    unsigned shard = room_shard(app, t->room);
    char kroom[KEYS_MAX], kmembers[KEYS_MAX], kempty[KEYS_MAX], khist[KEYS_MAX], now[24];
    char krooms[KEYS_MAX];
    keys_room(kroom, sizeof(kroom), shard, t->room);
    keys_room_members(kmembers, sizeof(kmembers), shard, t->room);
    keys_empty_rooms(kempty, sizeof(kempty), shard);
    keys_room_history(khist, sizeof(khist), shard, t->room);
    keys_rooms(krooms, sizeof(krooms), shard);
    snprintf(now, sizeof(now), "%" PRId64, util_now_ms());
    const char *argv[] = {kroom,     kmembers,  kempty, khist,    krooms,
                          t->device, t->member, now,    t->epoch, t->room};
    if (eval(app, SCRIPT_RESTORE_ROOM, restore_room_reply, t, 5, 10, argv))
        restore_failed(app, t, NULL);
}

static void restore_device_reply(void *arg, redisReply *reply, void *priv) {
    struct app *app = arg;
    struct restore_ticket *t = priv;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        /* another connection claimed the device while this node was cut off */
        app->pending_writes--;
        app->room_ops->replaced(app->room_arg, t->conn_no);
        free(t);
        return;
    }
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        restore_failed(app, t, reply);
        return;
    }
    char kconns[KEYS_MAX], value[PROTO_MAX_ROOM_ID + PROTO_MAX_DEVICE_ID + 2];
    keys_node_conns(kconns, sizeof(kconns), app->node_id);
    snprintf(value, sizeof(value), "%s\t%s", t->room, t->device);
    const char *argv[] = {kconns, t->conn, value};
    if (eval(app, SCRIPT_REGISTER, restore_node_reply, t, 1, 3, argv))
        restore_failed(app, t, NULL);
}

int room_restore(struct app *app, const struct room_conn *c) {
    if (!app_redis_ready(app))
        return -1;
    struct restore_ticket *t = malloc(sizeof(*t));
    if (!t)
        return -1;
    t->conn_no = c->no;
    util_strlcpy(t->device, c->device_id, sizeof(t->device));
    util_strlcpy(t->room, c->room_id, sizeof(t->room));
    util_strlcpy(t->conn, c->conn_id, sizeof(t->conn));
    snprintf(t->member, sizeof(t->member), "%s\t%s\t%s", c->conn_id, app->node_id, c->identity);
    char kdev[KEYS_MAX], ttl[24], since[24];
    keys_device(kdev, sizeof(kdev), c->device_id);
    snprintf(ttl, sizeof(ttl), "%ld", app->opt.device_ttl_ms);
    snprintf(since, sizeof(since), "%" PRId64, c->connected_at_ms);
    const char *argv[] = {kdev, c->conn_id, app->node_id, c->identity, c->room_id, ttl, since};
    if (random_epoch(t->epoch) < 0 ||
        eval(app, SCRIPT_RESTORE_DEVICE, restore_device_reply, t, 1, 7, argv)) {
        free(t);
        return -1;
    }
    app->pending_writes++;
    return 0;
}
