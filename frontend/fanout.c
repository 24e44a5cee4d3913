/* Local rooms, subscriptions and shared-frame delivery (see fanout.h). */
#include "fanout.h"

#include "app.h"
#include "connid.h"
#include "frame.h"
#include "hmap.h"
#include "keys.h"
#include "proto.h"
#include "sublinks.h"

#include <stdlib.h>
#include <string.h>

enum sub_state { SUB_NONE, SUB_PENDING, SUB_ACTIVE, SUB_LEAVING };

struct lroom {
    char id[PROTO_MAX_ROOM_ID + 1];
    char channel[KEYS_MAX];
    enum sub_state sub;
    lws_dll2_owner_t members;
    size_t listeners; /* members with presence */
    int64_t due_at;   /* fanout_room_due: when it last said 1 */
    unsigned due_gen; /* ... under this generation of the fanout's */
};

struct fanout {
    struct app *app;
    const struct fanout_ops *ops;
    void *arg;
    struct hmap *rooms; /* room id -> struct lroom */
    unsigned due_gen;   /* fanout_rooms_due_reset moves it on */
};

static void subscribe(struct fanout *f, struct lroom *r) {
    r->sub = SUB_PENDING;
    if (!f->app->subs || sublinks_subscribe(f->app->subs, r->channel, strlen(r->channel)) != 0)
        r->sub = SUB_NONE; /* the next member to join asks again */
}

static void room_free(struct fanout *f, struct lroom *r) {
    hmap_del(f->rooms, r->id, strlen(r->id));
    free(r);
}

/* The last local member left: drop the subscription (asked or being asked for), then the
 * room. */
static void room_release(struct fanout *f, struct lroom *r) {
    if (r->sub == SUB_LEAVING)
        return; /* the confirmation decides */
    if (r->sub != SUB_NONE && f->app->subs &&
        sublinks_unsubscribe(f->app->subs, r->channel, strlen(r->channel)) == 0) {
        r->sub = SUB_LEAVING; /* the room is freed when Redis confirms */
        return;
    }
    room_free(f, r);
}

static void members_ready(struct fanout *f, struct lroom *r) {
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, lws_dll2_get_head(&r->members)) {
        f->ops->ready(lws_container_of(d, struct fanout_member, link), f->arg);
    }
    lws_end_foreach_dll_safe(d, d1);
}

/* A conn id of this node gives its local number; any other gives 0, which no connection has. */
static uint64_t local_sender(struct fanout *f, const char *conn, size_t len) {
    uint64_t n;
    return connid_parse(f->app->node_id, conn, len, &n) ? 0 : n;
}

/* A presence event for the members who asked for them, except the connection it is about. */
static void deliver_presence(struct fanout *f, struct lroom *r, const char *payload, size_t len) {
    struct proto_presence p;
    if (!r->listeners || proto_presence_parse(payload, len, &p))
        return;
    uint64_t skip = local_sender(f, p.conn, p.conn_len);
    uint64_t *count = p.leave ? &f->app->stats.presence_leaves : &f->app->stats.presence_joins;
    struct frame *fr = NULL;
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, lws_dll2_get_head(&r->members)) {
        struct fanout_member *m = lws_container_of(d, struct fanout_member, link);
        if (m->presence && m->conn_no != skip) {
            if (!fr) {
                size_t n;
                char *text = proto_presence_frame(&p, r->id, &n);
                fr = text ? frame_new(text, n, 0) : NULL;
                free(text);
                if (!fr)
                    return;
            }
            f->ops->deliver(m, fr, f->arg);
            (*count)++;
        }
    }
    lws_end_foreach_dll_safe(d, d1);
    frame_unref(fr);
}

static void deliver(struct fanout *f, struct lroom *r, const char *payload, size_t len) {
    struct proto_pub pub;
    if (proto_pub_parse(payload, len, &pub)) {
        /* not a relayed frame: a relayed message pays nothing for presence */
        deliver_presence(f, r, payload, len);
        return;
    }
    f->app->stats.pubsub_in++;
    uint64_t skip = local_sender(f, pub.conn, pub.conn_len);
    struct frame *fr = NULL;
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, lws_dll2_get_head(&r->members)) {
        struct fanout_member *m = lws_container_of(d, struct fanout_member, link);
        if (m->conn_no != skip) {
            if (!fr && !(fr = frame_new(pub.frame, pub.frame_len, pub.kind == PROTO_PUB_BINARY)))
                return;
            fr->seq = pub.seq;
            fr->sent_us = pub.sent_us;
            f->ops->deliver(m, fr, f->arg);
        }
    }
    lws_end_foreach_dll_safe(d, d1);
    frame_unref(fr);
}

/* Channel "rrm:room:{N}:R:ch" -> the local room R. */
static struct lroom *room_of_channel(struct fanout *f, const char *ch, size_t len) {
    const char *tag = len > 5 ? memchr(ch, '}', len) : NULL;
    size_t sfx = sizeof(KEYS_CHANNEL_SUFFIX) - 1;
    if (!tag || (size_t)(tag - ch) + 2 + sfx > len || tag[1] != ':')
        return NULL;
    return hmap_get(f->rooms, tag + 2, len - (size_t)(tag + 2 - ch) - sfx);
}

void fanout_message(struct fanout *f, const char *ch, size_t len, const char *payload,
                    size_t plen) {
    struct lroom *room = room_of_channel(f, ch, len);
    if (room)
        deliver(f, room, payload, plen);
}

void fanout_control(struct fanout *f, const char *msg, size_t len) {
    if (len > 5 && memcmp(msg, "kick ", 5) == 0)
        f->ops->kick(msg + 5, len - 5, f->arg);
    else if (len > 11 && memcmp(msg, "disconnect ", 11) == 0) {
        const char *conn = msg + 11, *tab = memchr(conn, '\t', len - 11);
        if (tab)
            f->ops->disconnect(conn, (size_t)(tab - conn), tab + 1, len - (size_t)(tab + 1 - msg),
                               f->arg);
    }
}

void fanout_confirmed(struct fanout *f, const char *ch, size_t len) {
    struct lroom *room = room_of_channel(f, ch, len);
    if (!room || room->sub != SUB_PENDING)
        return;
    room->sub = SUB_ACTIVE;
    if (room->members.count == 0)
        room_release(f, room);
    else
        members_ready(f, room);
}

void fanout_lost(struct fanout *f, const char *ch, size_t len) {
    struct lroom *room = room_of_channel(f, ch, len);
    if (room && room->sub == SUB_ACTIVE)
        room->sub = SUB_PENDING; /* sublinks subscribes it again: confirmed follows */
}

void fanout_unsubscribed(struct fanout *f, const char *ch, size_t len) {
    struct lroom *room = room_of_channel(f, ch, len);
    if (!room || room->sub != SUB_LEAVING)
        return;
    room->sub = SUB_NONE;
    if (room->members.count == 0)
        room_free(f, room);
    else
        subscribe(f, room); /* someone joined while we were leaving */
}

struct fanout *fanout_create(struct app *app, const struct fanout_ops *ops, void *arg) {
    struct fanout *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->app = app;
    f->ops = ops;
    f->arg = arg;
    f->rooms = hmap_create();
    if (!f->rooms) {
        free(f);
        return NULL;
    }
    return f;
}

static void free_room(const char *key, void *value, void *arg) {
    (void)key;
    (void)arg;
    free(value);
}

void fanout_destroy(struct fanout *f) {
    if (!f)
        return;
    hmap_each(f->rooms, free_room, NULL);
    hmap_destroy(f->rooms);
    free(f);
}

int fanout_join(struct fanout *f, struct fanout_member *m, uint64_t conn_no, const char *room,
                int presence) {
    struct lroom *r = hmap_get(f->rooms, room, strlen(room));
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return -1;
        memcpy(r->id, room, strlen(room) + 1);
        keys_room_channel(r->channel, sizeof(r->channel),
                          keys_room_shard(room, (unsigned)f->app->opt.event_shards), room);
        if (hmap_put(f->rooms, r->id, strlen(r->id), r)) {
            free(r);
            return -1;
        }
    }
    m->room = r;
    m->conn_no = conn_no;
    m->presence = presence;
    r->listeners += presence != 0;
    lws_dll2_add_tail(&m->link, &r->members);
    if (r->sub == SUB_ACTIVE)
        f->ops->ready(m, f->arg);
    else if (r->sub == SUB_NONE)
        subscribe(f, r);
    return 0;
}

void fanout_leave(struct fanout *f, struct fanout_member *m) {
    struct lroom *r = m->room;
    if (!r)
        return;
    lws_dll2_remove(&m->link);
    m->room = NULL;
    r->listeners -= m->presence != 0;
    if (r->members.count == 0)
        room_release(f, r);
}

int fanout_member_ready(const struct fanout_member *m) {
    return m->room && m->room->sub == SUB_ACTIVE;
}

int fanout_room_due(struct fanout *f, struct fanout_member *m, int64_t now_ms, long every_ms) {
    struct lroom *r = m->room;
    if (!r || (r->due_gen == f->due_gen && now_ms - r->due_at < every_ms))
        return 0;
    r->due_at = now_ms;
    r->due_gen = f->due_gen;
    return 1;
}

void fanout_rooms_due_reset(struct fanout *f) {
    f->due_gen++;
}

size_t fanout_room_count(const struct fanout *f) {
    return hmap_count(f->rooms);
}

struct each_ctx {
    void (*fn)(const char *, size_t, void *);
    void *arg;
};

static void each_room(const char *key, void *value, void *arg) {
    struct each_ctx *c = arg;
    struct lroom *r = value;
    c->fn(key, r->members.count, c->arg);
}

void fanout_each_room(const struct fanout *f,
                      void (*fn)(const char *room, size_t members, void *arg), void *arg) {
    struct each_ctx c = {fn, arg};
    hmap_each(f->rooms, each_room, &c);
}
