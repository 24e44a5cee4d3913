/* The load engine (see load.h). One lws client context on one thread; a binary heap of due
 * times drives every client's sends from a single timer, so a send costs O(log n) whatever the
 * number of clients. Messages carry their stage, sender, per-sender number and send time, so
 * the receiving side can check loss, duplicates and order and time each delivery. */
#include "load.h"

#include <errno.h>
#include <ev.h>
#include <inttypes.h>
#include <jansson.h>
#include <jwt.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

enum client_state { C_IDLE, C_CONNECTING, C_IDENTIFYING, C_READY, C_GONE };

/* Per-receiver order tracking is skipped for rooms bigger than this (memory: receivers x size). */
#define ORDER_MAX_ROOM 4096
#define BIN_MAGIC 0x424d5252u /* "RRMB" little-endian */
#define BIN_HEADER 24

struct client {
    struct bench *b;
    struct lws *wsi;
    uint32_t idx;
    uint8_t state;
    uint8_t want_identify;
    uint32_t pending; /* sends that are due but not yet written */
    uint32_t next_n;  /* this sender's message number */
    uint32_t heap_pos;
    uint64_t due_us; /* next due send */
    uint32_t *last;  /* per sender slot in the room: highest message number seen + 1 */
    unsigned char *rx;
    size_t rx_len, rx_cap;
    char *token;         /* --jwt-secret: this device's token, sent in the identify */
    uint8_t deflate;     /* permessage-deflate negotiated (the frontend said no context takeover) */
    uint8_t rx_deflated; /* the message being received is compressed */
};

enum phase { PH_CONNECT, PH_SEND, PH_DRAIN, PH_GATE, PH_DONE };

struct bench {
    const struct bench_opts *o;
    struct run_result *r;
    volatile sig_atomic_t *stop;
    struct lws_context *ctx;
    struct client *clients;
    long *room_ready; /* ready members per room */
    long room_size;   /* members of the largest room */

    enum phase phase;
    long started;      /* connections begun */
    long settled;      /* ready, failed or gone before ready */
    uint64_t t0_us;    /* start of the connect phase */
    uint64_t phase_us; /* start of the current phase */

    /* stages: index 0 is the warm-up (not reported), 1.. are --rate values */
    struct stage_result *stages; /* nrates + 1 */
    int stage;
    int ran; /* a stage has begun */
    int sending;
    uint64_t interval_us;

    struct client **heap;
    uint32_t heap_n;

    lws_sorted_usec_list_t sul_send, sul_ctl;
    unsigned char *txbuf;
    size_t txcap;
    char pad[1 << 16];
    char *doc; /* --doc: the JSON document each message carries */
    size_t doc_len;
    /* --deflate: one deflate and one inflate stream for every connection (each message is a
     * stream of its own: the frontend answers with both no_context_takeover parameters), and
     * the buffers of a compressed message and of its frame */
    z_stream zd, zi;
    int zd_ready, zi_ready;
    unsigned char *zbuf, *zframe;
    size_t zcap;
};

static uint64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static long room_of(const struct bench *b, uint32_t idx) {
    return (long)(idx % (uint32_t)b->o->rooms);
}

static struct stage_result *cur(struct bench *b) {
    return &b->stages[b->stage];
}

/* ---- send schedule: a min-heap of clients by due time ---------------------------------------- */

static void heap_swap(struct bench *b, uint32_t i, uint32_t j) {
    struct client *t = b->heap[i];
    b->heap[i] = b->heap[j];
    b->heap[j] = t;
    b->heap[i]->heap_pos = i;
    b->heap[j]->heap_pos = j;
}

static void heap_down(struct bench *b, uint32_t i) {
    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        if (l < b->heap_n && b->heap[l]->due_us < b->heap[m]->due_us)
            m = l;
        if (l + 1 < b->heap_n && b->heap[l + 1]->due_us < b->heap[m]->due_us)
            m = l + 1;
        if (m == i)
            return;
        heap_swap(b, i, m);
        i = m;
    }
}

static void heap_up(struct bench *b, uint32_t i) {
    while (i > 0 && b->heap[(i - 1) / 2]->due_us > b->heap[i]->due_us) {
        heap_swap(b, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void send_tick(lws_sorted_usec_list_t *sul) {
    struct bench *b = lws_container_of(sul, struct bench, sul_send);
    if (!b->sending)
        return;
    uint64_t now = mono_us();
    while (b->heap_n && b->heap[0]->due_us <= now) {
        struct client *c = b->heap[0];
        if (c->state == C_READY) {
            if (c->pending++ == 0)
                lws_callback_on_writable(c->wsi);
            c->due_us += b->interval_us;
            heap_down(b, 0);
        } else { /* gone: drop it from the schedule */
            heap_swap(b, 0, --b->heap_n);
            heap_down(b, 0);
        }
    }
    if (b->heap_n)
        lws_sul_schedule(b->ctx, 0, &b->sul_send, send_tick,
                         (lws_usec_t)(b->heap[0]->due_us - now));
}

/* Starts sending at rate messages/s per client, phases spread evenly over one interval. */
static void schedule_start(struct bench *b, double rate) {
    b->heap_n = 0;
    b->sending = 0;
    if (rate <= 0)
        return;
    b->interval_us = (uint64_t)(1e6 / rate);
    if (b->interval_us == 0)
        b->interval_us = 1;
    uint64_t now = mono_us();
    long n = 0;
    for (long i = 0; i < b->o->clients; i++)
        if (b->clients[i].state == C_READY)
            n++;
    long k = 0;
    for (long i = 0; i < b->o->clients; i++) {
        struct client *c = &b->clients[i];
        c->pending = 0;
        if (c->state != C_READY)
            continue;
        c->due_us = now + b->interval_us * (uint64_t)k++ / (uint64_t)n;
        c->heap_pos = b->heap_n;
        b->heap[b->heap_n++] = c;
        heap_up(b, c->heap_pos);
    }
    b->sending = 1;
    lws_sul_schedule(b->ctx, 0, &b->sul_send, send_tick, 0);
}

static void schedule_stop(struct bench *b) {
    b->sending = 0;
    b->heap_n = 0;
    lws_sul_cancel(&b->sul_send);
    for (long i = 0; i < b->o->clients; i++)
        b->clients[i].pending = 0;
}

/* ---- messages -------------------------------------------------------------------------------- */

/* One HS256 token per device, signed with --jwt-secret: its device id, its room, a day. */
static int make_tokens(struct bench *b) {
    const struct bench_opts *o = b->o;
    long exp = (long)time(NULL) + 86400;
    for (long i = 0; i < o->clients; i++) {
        char sub[96], rooms[128];
        snprintf(sub, sizeof(sub), "%s-d%ld", o->prefix, o->id_base + i);
        snprintf(rooms, sizeof(rooms), "{\"rooms\":[\"%s-r%ld\"]}", o->prefix,
                 o->room_base + room_of(b, (uint32_t)i));
        jwt_t *jwt = NULL;
        if (jwt_new(&jwt) || jwt_add_grant(jwt, "sub", sub) || jwt_add_grant_int(jwt, "exp", exp) ||
            jwt_add_grants_json(jwt, rooms) ||
            jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)o->jwt_secret,
                        (int)strlen(o->jwt_secret)) ||
            !(b->clients[i].token = jwt_encode_str(jwt))) {
            jwt_free(jwt);
            fprintf(stderr, "rrm-bench: cannot make the tokens\n");
            return -1;
        }
        jwt_free(jwt);
    }
    return 0;
}

static int write_identify(struct client *c) {
    struct bench *b = c->b;
    unsigned char *p = b->txbuf + LWS_PRE;
    int n = snprintf((char *)p, b->txcap - LWS_PRE,
                     "{\"device_id\":\"%s-d%ld\",\"identity\":\"rrm-bench\","
                     "\"room_id\":\"%s-r%ld\"%s%s%s}",
                     b->o->prefix, b->o->id_base + c->idx, b->o->prefix,
                     b->o->room_base + room_of(b, c->idx), c->token ? ",\"token\":\"" : "",
                     c->token ? c->token : "", c->token ? "\"" : "");
    if (n < 0 || (size_t)n >= b->txcap - LWS_PRE)
        return -1;
    c->want_identify = 0;
    c->state = C_IDENTIFYING;
    return lws_write(c->wsi, p, (size_t)n, LWS_WRITE_TEXT) < n ? -1 : 0;
}

/* --doc: a JSON order with line items, about len bytes, the same in every message (each is
 * compressed on its own, so that repeats between messages would not help). Caller frees. */
static char *make_doc(size_t len, size_t *out_len) {
    static const char *const titles[] = {
        "Coffee beans, 1 kg", "Espresso cups (set of 6)", "Milk frother",     "Paper filters x100",
        "Burr grinder",       "Descaler, 500 ml",         "Travel mug 350 ml"};
    static const char *const cities[] = {"Lisbon", "Porto", "Braga", "Coimbra", "Faro"};
    char *s = malloc(len + 512);
    if (!s)
        return NULL;
    size_t n =
        (size_t)snprintf(s, len + 512,
                         "{\"order_id\":\"ord_48213\",\"status\":\"paid\",\"customer\":"
                         "{\"name\":\"Ana Silva\",\"email\":\"ana.silva@example.com\","
                         "\"city\":\"Lisbon\",\"loyalty\":{\"tier\":\"gold\",\"points\":1830}},"
                         "\"items\":[");
    uint32_t x = 2463534242u;
    for (int i = 0; n + 300 < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        n += (size_t)snprintf(s + n, len + 512 - n,
                              "%s{\"sku\":\"SKU-%05u\",\"title\":\"%s\",\"qty\":%u,"
                              "\"unit_price\":%u.%02u,\"currency\":\"EUR\",\"warehouse\":\"%s\","
                              "\"in_stock\":%s}",
                              i ? "," : "", 1000 + x % 90000, titles[x % 7], 1 + x % 4, 3 + x % 60,
                              x % 100, cities[x % 5], x % 5 ? "true" : "false");
    }
    n += (size_t)snprintf(s + n, len + 512 - n,
                          "],\"shipping\":{\"method\":\"express\",\"address\":\"Rua Augusta "
                          "112, 1100-053 Lisboa\"},\"note\":\"Leave the parcel with the concierge "
                          "if nobody answers.\"}");
    *out_len = n;
    return s;
}

static int zreserve(struct bench *b, size_t need) {
    if (need <= b->zcap)
        return 0;
    size_t cap = b->zcap ? b->zcap : 65536;
    while (cap < need)
        cap *= 2;
    unsigned char *z = realloc(b->zbuf, cap),
                  *f = z ? realloc(b->zframe, LWS_PRE + cap + 14) : NULL;
    if (z)
        b->zbuf = z;
    if (!f)
        return -1;
    b->zframe = f;
    b->zcap = cap;
    return 0;
}

/* A text message as a compressed frame (RFC 7692: RSV1, raw deflate, the sync flush's 00 00 ff
 * ff stripped), masked by hand and written raw: lws's own client extension is not used (in
 * libwebsockets 4.1.6 it loops on an uncompressed message received on a connection that
 * negotiated it, and the frontend sends small messages uncompressed). */
static int write_compressed(struct client *c, const unsigned char *msg, size_t len) {
    struct bench *b = c->b;
    if (!b->zd_ready) {
        if (deflateInit2(&b->zd, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY))
            return -1;
        b->zd_ready = 1;
    } else if (deflateReset(&b->zd) != Z_OK) {
        return -1;
    }
    size_t bound = deflateBound(&b->zd, (uLong)len) + 16;
    if (zreserve(b, bound))
        return -1;
    b->zd.next_in = (Bytef *)(uintptr_t)msg;
    b->zd.avail_in = (uInt)len;
    b->zd.next_out = b->zbuf;
    b->zd.avail_out = (uInt)bound;
    if (deflate(&b->zd, Z_SYNC_FLUSH) != Z_OK || b->zd.avail_in)
        return -1;
    size_t n = bound - b->zd.avail_out - 4; /* the tail */
    unsigned char *f = b->zframe + LWS_PRE, mask[4];
    size_t h = 2;
    f[0] = 0xC1; /* FIN, RSV1, text */
    if (n < 126) {
        f[1] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        f[1] = 0x80 | 126;
        f[2] = (unsigned char)(n >> 8);
        f[3] = (unsigned char)n;
        h = 4;
    } else {
        f[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            f[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        h = 10;
    }
    uint32_t r = (uint32_t)rand();
    memcpy(mask, &r, 4);
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        f[h + i] = b->zbuf[i] ^ mask[i & 3];
    return lws_write(c->wsi, f, h + n, LWS_WRITE_HTTP) < (int)(h + n) ? -1 : 0;
}

/* A whole compressed message inflated into b->zbuf; its length, or -1. */
static long inflate_message(struct bench *b, const unsigned char *in, size_t len) {
    static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
    if (!b->zi_ready) {
        if (inflateInit2(&b->zi, -15) != Z_OK)
            return -1;
        b->zi_ready = 1;
    } else if (inflateReset(&b->zi) != Z_OK) {
        return -1;
    }
    size_t have = 0;
    for (int part = 0; part < 2; part++) {
        b->zi.next_in = (Bytef *)(uintptr_t)(part ? tail : in);
        b->zi.avail_in = (uInt)(part ? sizeof(tail) : len);
        do {
            if (have == b->zcap && zreserve(b, b->zcap * 2))
                return -1;
            b->zi.next_out = b->zbuf + have;
            b->zi.avail_out = (uInt)(b->zcap - have);
            int rc = inflate(&b->zi, Z_SYNC_FLUSH);
            have = (size_t)(b->zi.next_out - b->zbuf);
            if (rc == Z_STREAM_END)
                return (long)have;
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                return -1;
        } while (b->zi.avail_in > 0 || b->zi.avail_out == 0);
    }
    return (long)have;
}

static int write_message(struct client *c) {
    struct bench *b = c->b;
    struct stage_result *st = cur(b);
    uint64_t now = mono_us();
    uint64_t lag = now - (c->due_us - (uint64_t)c->pending * b->interval_us);
    if (lag > st->max_lag_us && lag < (1ull << 62))
        st->max_lag_us = lag;
    c->pending--;
    unsigned char *p = b->txbuf + LWS_PRE;
    size_t size = (size_t)b->o->size;
    uint32_t n = c->next_n++;
    if (b->o->binary) {
        uint32_t h[4] = {BIN_MAGIC, (uint32_t)b->stage, c->idx, n};
        memcpy(p, h, sizeof(h));
        memcpy(p + 16, &now, 8);
        memset(p + BIN_HEADER, 'x', size - BIN_HEADER);
    } else if (b->doc) {
        int h = snprintf((char *)p, b->txcap - LWS_PRE - b->doc_len - 1,
                         "{\"type\":\"bench\",\"b\":\"%d:%" PRIu32 ":%" PRIu32 ":%" PRIu64
                         "\",\"doc\":",
                         b->stage, c->idx, n, now);
        if (h < 0 || (size_t)h + b->doc_len + 1 > b->txcap - LWS_PRE)
            return -1;
        memcpy(p + h, b->doc, b->doc_len);
        p[h + b->doc_len] = '}';
        size = (size_t)h + b->doc_len + 1;
    } else {
        int h = snprintf((char *)p, size,
                         "{\"type\":\"bench\",\"b\":\"%d:%" PRIu32 ":%" PRIu32 ":%" PRIu64
                         "\",\"p\":\"",
                         b->stage, c->idx, n, now);
        long padn = (long)size - h - 2;
        if (h < 0 || padn < 0)
            return -1;
        memcpy(p + h, b->pad, (size_t)padn);
        memcpy(p + h + padn, "\"}", 2);
    }
    st->sent++;
    st->expected += (uint64_t)(b->room_ready[room_of(b, c->idx)] - 1);
    if (c->deflate && !b->o->binary) {
        if (write_compressed(c, p, size))
            return -1;
    } else if (lws_write(c->wsi, p, size, b->o->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) <
               (int)size) {
        return -1;
    }
    if (c->pending)
        lws_callback_on_writable(c->wsi);
    return 0;
}

static void count_code(struct bench *b, const char *code) {
    struct run_result *r = b->r;
    for (int i = 0; i < r->ncodes; i++)
        if (strcmp(r->codes[i].code, code) == 0) {
            r->codes[i].n++;
            return;
        }
    if (r->ncodes < LOAD_MAX_CODES) {
        snprintf(r->codes[r->ncodes].code, sizeof(r->codes[0].code), "%s", code);
        r->codes[r->ncodes++].n = 1;
    }
}

/* One delivery of sender's message n of stage k, sent at t_us. */
static void delivered(struct client *c, int k, uint32_t sender, uint32_t n, uint64_t t_us) {
    struct bench *b = c->b;
    if (k < 0 || k > b->o->nrates || sender >= (uint32_t)b->o->clients)
        return;
    struct stage_result *st = &b->stages[k];
    if (k != b->stage || b->phase == PH_CONNECT) {
        st->late++;
        return;
    }
    uint64_t now = mono_us();
    hist_record(&st->lat, now > t_us ? now - t_us : 0);
    st->delivered++;
    if (b->room_size > ORDER_MAX_ROOM)
        return;
    if (!c->last && !(c->last = calloc((size_t)b->room_size, sizeof(uint32_t))))
        return;
    uint32_t slot = sender / (uint32_t)b->o->rooms;
    if (n + 1 == c->last[slot])
        st->dups++;
    else if (n + 1 < c->last[slot])
        st->reordered++;
    else
        c->last[slot] = n + 1;
}

static void on_control(struct client *c, const char *text, size_t len) {
    struct bench *b = c->b;
    json_t *v = json_loadb(text, len, 0, NULL);
    const char *type = json_string_value(json_object_get(v, "type"));
    if (!type) {
        count_code(b, "unparsable_frame");
    } else if (strcmp(type, "room") == 0 && c->state == C_IDENTIFYING) {
        c->state = C_READY;
        b->room_ready[room_of(b, c->idx)]++;
        b->r->connected++;
        b->settled++;
    } else if (strcmp(type, "error") == 0) {
        const char *code = json_string_value(json_object_get(v, "code"));
        count_code(b, code ? code : "error");
        if (b->phase != PH_CONNECT)
            cur(b)->errors++;
    }
    json_decref(v);
}

static void on_frame(struct client *c, const unsigned char *buf, size_t len, int binary) {
    if (binary) {
        uint32_t h[4];
        uint64_t t;
        if (len < BIN_HEADER)
            return;
        memcpy(h, buf, sizeof(h));
        memcpy(&t, buf + 16, 8);
        if (h[0] == BIN_MAGIC)
            delivered(c, (int)h[1], h[2], h[3], t);
        return;
    }
    static const char tag[] = "{\"type\":\"bench\",\"b\":\"";
    if (len > sizeof(tag) && memcmp(buf, tag, sizeof(tag) - 1) == 0) {
        unsigned long long v[4];
        const char *p = (const char *)buf + sizeof(tag) - 1;
        const char *end = (const char *)buf + len;
        for (int i = 0; i < 4; i++) {
            v[i] = 0;
            while (p < end && *p >= '0' && *p <= '9')
                v[i] = v[i] * 10 + (unsigned long long)(*p++ - '0');
            if (p >= end || *p != (i < 3 ? ':' : '"'))
                return;
            p++;
        }
        delivered(c, (int)v[0], (uint32_t)v[1], (uint32_t)v[2], v[3]);
        return;
    }
    on_control(c, (const char *)buf, len);
}

/* A whole message, inflated first if it came compressed. */
static int on_message(struct client *c, const unsigned char *msg, size_t len, int binary) {
    if (c->rx_deflated) {
        struct bench *b = c->b;
        if (zreserve(b, 65536))
            return -1;
        long n = inflate_message(b, msg, len);
        if (n < 0) {
            count_code(b, "inflate_error");
            return -1;
        }
        msg = b->zbuf;
        len = (size_t)n;
    }
    on_frame(c, msg, len, binary);
    return 0;
}

static int on_receive(struct client *c, struct lws *wsi, const unsigned char *in, size_t len) {
    int final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
    if (lws_is_first_fragment(wsi))
        c->rx_deflated = (lws_get_reserved_bits(wsi) & 0x40) != 0;
    if (final && c->rx_len == 0)
        return on_message(c, in, len, lws_frame_is_binary(wsi));
    if (c->rx_len + len > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap * 2 : 8192;
        while (cap < c->rx_len + len)
            cap *= 2;
        unsigned char *p = realloc(c->rx, cap);
        if (!p)
            return -1;
        c->rx = p;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (final) {
        size_t n = c->rx_len;
        c->rx_len = 0;
        return on_message(c, c->rx, n, lws_frame_is_binary(wsi));
    }
    return 0;
}

static void gone(struct client *c) {
    struct bench *b = c->b;
    if (c->state == C_READY) {
        b->room_ready[room_of(b, c->idx)]--;
        if (b->phase != PH_DONE) {
            b->r->disconnects++;
            if (b->phase != PH_CONNECT)
                cur(b)->disconnects++;
        }
    } else if (c->state == C_CONNECTING || c->state == C_IDENTIFYING) {
        if (!b->r->first_error[0])
            snprintf(b->r->first_error, sizeof(b->r->first_error), "%s",
                     c->state == C_CONNECTING ? "closed while connecting"
                                              : "closed before the room answer");
        b->settled++;
        b->r->connect_failed++;
    }
    c->state = C_GONE;
    c->wsi = NULL;
    c->pending = 0;
}

static int client_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len) {
    struct client *c = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c) {
            if (!c->b->r->first_error[0])
                snprintf(c->b->r->first_error, sizeof(c->b->r->first_error), "%s",
                         in ? (const char *)in : "connection failed");
            gone(c);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!c)
            return -1;
        c->wsi = wsi;
        c->want_identify = 1;
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (!c || c->state == C_GONE)
            return -1;
        if (c->want_identify)
            return write_identify(c);
        if (c->pending && c->b->sending && c->state == C_READY)
            return write_message(c);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return c ? on_receive(c, wsi, in, len) : -1;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c && len >= 2) {
            const unsigned char *p = in;
            char code[32];
            snprintf(code, sizeof(code), "close_%u", (unsigned)(p[0] << 8 | p[1]));
            count_code(c->b, code);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c)
            gone(c);
        return 0;
    default:
        return 0;
    }
}

/* --deflate: the client side of permessage-deflate, done by load.c itself; lws only negotiates
 * it (these parameters may come in the answer) and lets frames with RSV1 through. */
static const struct lws_ext_options pmd_options[] = {
    {"server_no_context_takeover", EXTARG_NONE},
    {"client_no_context_takeover", EXTARG_NONE},
    {"server_max_window_bits", EXTARG_OPT_DEC},
    {"client_max_window_bits", EXTARG_OPT_DEC},
    {NULL, EXTARG_NONE},
};

static int pmd_callback(struct lws_context *cx, const struct lws_extension *ext, struct lws *wsi,
                        enum lws_extension_callback_reasons reason, void *user, void *in,
                        size_t len) {
    (void)cx;
    (void)ext;
    (void)user;
    (void)len;
    if (reason == LWS_EXT_CB_CLIENT_CONSTRUCT) {
        *(const struct lws_ext_options **)in = pmd_options;
        struct client *c = lws_wsi_user(wsi);
        if (c)
            c->deflate = 1;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"rrm-bench", client_cb, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- phases ---------------------------------------------------------------------------------- */

static void connect_one(struct bench *b) {
    struct client *c = &b->clients[b->started];
    /* successive members of a room go to successive frontends */
    const struct bench_url *u = &b->o->urls[(b->started / b->o->rooms) % b->o->nurls];
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = b->ctx;
    ci.address = u->host;
    ci.port = u->port;
    ci.path = u->path;
    ci.host = u->host;
    ci.origin = u->host;
    ci.local_protocol_name = protocols[0].name;
    ci.userdata = c;
    ci.pwsi = &c->wsi;
    if (b->o->nbinds)
        ci.iface = b->o->binds[b->started % b->o->nbinds];
    c->state = C_CONNECTING;
    b->started++;
    if (!lws_client_connect_via_info(&ci) && c->state == C_CONNECTING)
        gone(c);
}

static void begin_stage(struct bench *b, int k) {
    struct stage_result *st = &b->stages[k];
    b->stage = k;
    b->ran = 1;
    b->phase = PH_SEND;
    b->phase_us = mono_us();
    st->proc_ok = procstat_sample(b->o->pids, b->o->npids, st->proc_start);
    schedule_start(b, st->rate);
}

/* The next stage: the warm-up (0) first when it applies, then one per --rate. */
static void go(struct bench *b) {
    int k = b->ran ? b->stage + 1 : (b->stages[0].rate > 0 ? 0 : 1);
    if (k <= b->o->nrates)
        begin_stage(b, k);
    else
        b->phase = PH_DONE;
}

/* Between stages: a worker reports the stage just ended and waits for the coordinator's word
 * (workers.c); a lone bench goes straight on. */
static void gate(struct bench *b) {
    if (b->o->ctl_out < 0) {
        go(b);
        return;
    }
    struct stage_result none;
    const struct stage_result *st = b->ran ? cur(b) : &none;
    if (!b->ran)
        memset(&none, 0, sizeof(none));
    if (load_write_msg(b->o->ctl_out, LOAD_MSG_GATE, st, sizeof(*st)))
        b->phase = PH_DONE; /* the coordinator is gone */
    else
        b->phase = PH_GATE;
}

void load_judge(const struct bench_opts *o, struct stage_result *st) {
    uint64_t got = st->delivered - st->dups;
    st->lost = st->expected > got ? st->expected - got : 0;
    double p99_ms = (double)hist_percentile(&st->lat, 0.99) / 1000.0;
    st->why[0] = '\0';
    if (st->lost)
        snprintf(st->why, sizeof(st->why), "%" PRIu64 " lost", st->lost);
    else if (st->dups)
        snprintf(st->why, sizeof(st->why), "%" PRIu64 " duplicated", st->dups);
    else if (st->reordered)
        snprintf(st->why, sizeof(st->why), "%" PRIu64 " out of order", st->reordered);
    else if (st->errors)
        snprintf(st->why, sizeof(st->why), "%" PRIu64 " error frames", st->errors);
    else if (st->disconnects)
        snprintf(st->why, sizeof(st->why), "%" PRIu64 " disconnects", st->disconnects);
    else if (p99_ms > o->p99_limit_ms)
        snprintf(st->why, sizeof(st->why), "p99 %.1f ms over %.1f ms", p99_ms, o->p99_limit_ms);
    st->failed = st->why[0] != '\0';
}

static void end_stage(struct bench *b) {
    struct stage_result *st = cur(b);
    st->proc_ok = procstat_sample(b->o->pids, b->o->npids, st->proc_end);
    load_judge(b->o, st);
    if (b->stage > 0) {
        b->r->stages[b->r->nstages++] = *st;
        if (st->failed && b->o->stop_on_fail && b->o->ctl_out < 0) {
            b->phase = PH_DONE;
            return;
        }
    }
    gate(b);
}

/* A worker at a gate: 'G' starts the next stage, 'Q' (or a closed pipe) ends the run. */
static void gate_poll(struct bench *b) {
    char cmd;
    ssize_t n = read(b->o->ctl_in, &cmd, 1);
    if (n == 1 && cmd == 'G')
        go(b);
    else if (n == 0 || (n == 1 && cmd == 'Q') || (n < 0 && errno != EAGAIN && errno != EINTR))
        b->phase = PH_DONE;
}

static void ctl_tick(lws_sorted_usec_list_t *sul) {
    struct bench *b = lws_container_of(sul, struct bench, sul_ctl);
    uint64_t now = mono_us();
    const struct bench_opts *o = b->o;
    if (*b->stop) {
        b->r->interrupted = 1;
        b->phase = PH_DONE;
    }
    switch (b->phase) {
    case PH_CONNECT: {
        long allowed = (long)((double)(now - b->t0_us) * (double)o->ramp / 1e6) + 1;
        while (b->started < o->clients && b->started < allowed)
            connect_one(b);
        uint64_t limit = (uint64_t)((double)o->clients / (double)o->ramp * 1e6) + 30000000u;
        if (b->settled >= o->clients || now - b->t0_us > limit) {
            b->r->connect_seconds = (double)(now - b->t0_us) / 1e6;
            b->r->proc_ok = procstat_sample(b->o->pids, b->o->npids, b->r->proc_ready);
            gate(b);
        }
        break;
    }
    case PH_GATE:
        gate_poll(b);
        break;
    case PH_SEND: {
        double window = b->stage == 0 ? o->warmup_s : o->duration_s;
        if (now - b->phase_us >= (uint64_t)(window * 1e6)) {
            cur(b)->seconds = (double)(now - b->phase_us) / 1e6;
            schedule_stop(b);
            b->phase = PH_DRAIN;
            b->phase_us = now;
        }
        break;
    }
    case PH_DRAIN: {
        struct stage_result *st = cur(b);
        if (st->delivered - st->dups >= st->expected ||
            now - b->phase_us >= (uint64_t)o->drain_ms * 1000u)
            end_stage(b);
        break;
    }
    case PH_DONE:
        break;
    }
    if (b->phase != PH_DONE)
        lws_sul_schedule(b->ctx, 0, &b->sul_ctl, ctl_tick, 10 * LWS_US_PER_MS);
}

/* Room for every connection: raise the soft limit, and the hard one when allowed (root). */
static void raise_fd_limit(long need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)need) {
        struct rlimit up = {(rlim_t)need, (rlim_t)need};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int load_run(const struct bench_opts *o, volatile sig_atomic_t *stop, struct run_result *r) {
    memset(r, 0, sizeof(*r));
    r->clients = o->clients;
    struct bench *b = calloc(1, sizeof(*b));
    if (!b)
        return -1;
    b->o = o;
    b->r = r;
    b->stop = stop;
    b->room_size = (o->clients + o->rooms - 1) / o->rooms;
    b->clients = calloc((size_t)o->clients, sizeof(*b->clients));
    b->room_ready = calloc((size_t)o->rooms, sizeof(long));
    b->heap = calloc((size_t)o->clients, sizeof(*b->heap));
    b->stages = calloc((size_t)o->nrates + 1, sizeof(*b->stages));
    b->txcap = LWS_PRE + (size_t)o->size + 512 + (o->jwt_secret[0] ? 1024 : 0);
    b->txbuf = malloc(b->txcap);
    memset(b->pad, 'x', sizeof(b->pad));
    if (o->doc)
        b->doc = make_doc((size_t)o->size - 64, &b->doc_len);
    int rc = -1;
    if (!b->clients || !b->room_ready || !b->heap || !b->stages || !b->txbuf ||
        (o->doc && !b->doc) || (size_t)o->size > sizeof(b->pad)) {
        fprintf(stderr, "rrm-bench: out of memory\n");
        goto out;
    }
    for (long i = 0; i <= o->nrates; i++) {
        hist_init(&b->stages[i].lat);
        if (i > 0)
            b->stages[i].rate = o->rates[i - 1];
    }
    /* the warm-up runs at the first non-zero rate */
    for (int i = 0; i < o->nrates && o->warmup_s > 0; i++)
        if (o->rates[i] > 0) {
            b->stages[0].rate = o->rates[i];
            break;
        }
    for (long i = 0; i < o->clients; i++) {
        b->clients[i].b = b;
        b->clients[i].idx = (uint32_t)i;
    }
    /* Tokens are made before any connection, outside every measured stage. */
    if (o->jwt_secret[0] && make_tokens(b))
        goto out;
    raise_fd_limit(o->clients + 1024);
    lws_set_log_level(o->verbose ? LLL_ERR | LLL_WARN : LLL_ERR, NULL);

    /* libev (epoll): poll() would scan every connection on every wake-up */
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    void *foreign_loops[] = {loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.foreign_loops = foreign_loops;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    /* --deflate: offered as browsers offer it */
    static const struct lws_extension pm_deflate[] = {
        {"permessage-deflate", pmd_callback, "permessage-deflate; client_max_window_bits"},
        {NULL, NULL, NULL},
    };
    info.extensions = o->deflate ? pm_deflate : NULL;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_LIBEV;
    info.pt_serv_buf_size = 32768;
    info.timeout_secs = 30;
    b->ctx = loop ? lws_create_context(&info) : NULL;
    if (!b->ctx) {
        if (loop)
            ev_loop_destroy(loop);
        fprintf(stderr, "rrm-bench: could not create the libwebsockets context\n");
        goto out;
    }
    r->proc_ok = procstat_sample(b->o->pids, b->o->npids, r->proc_before);
    b->phase = PH_CONNECT;
    b->t0_us = mono_us();
    lws_sul_schedule(b->ctx, 0, &b->sul_ctl, ctl_tick, 0);
    while (b->phase != PH_DONE)
        ev_run(loop, EVRUN_ONCE);
    lws_sul_cancel(&b->sul_send);
    lws_sul_cancel(&b->sul_ctl);
    lws_context_destroy(b->ctx);
    ev_run(loop, EVRUN_NOWAIT);
    ev_loop_destroy(loop);
    rc = 0;
out:
    if (b->clients)
        for (long i = 0; i < o->clients; i++) {
            free(b->clients[i].last);
            free(b->clients[i].rx);
            free(b->clients[i].token);
        }
    free(b->clients);
    free(b->room_ready);
    free(b->heap);
    free(b->stages);
    free(b->txbuf);
    free(b->doc);
    if (b->zd_ready)
        deflateEnd(&b->zd);
    if (b->zi_ready)
        inflateEnd(&b->zi);
    free(b->zbuf);
    free(b->zframe);
    free(b);
    return rc;
}

int load_write_msg(int fd, char kind, const void *data, size_t len) {
    const char *p = data;
    if (write(fd, &kind, 1) != 1)
        return -1;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
