/* Redis Cluster slot math, redirection parsing and the slot table; see slots.h. */
#include "slots.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

/* The CRC table, computed by the compiler from the polynomial. The CRC is linear over GF(2), so
 * the entry of a byte is the xor of the entries of its set bits; the entry of bit i is 8 shift
 * steps applied to that bit placed in the high byte. */
#define CRC_POLY 0x1021u
#define CRC_STEP(c) ((((c) << 1) ^ (((c)&0x8000u) ? CRC_POLY : 0u)) & 0xffffu)
#define CRC_STEP2(c) CRC_STEP(CRC_STEP(c))
#define CRC_STEP8(c) CRC_STEP2(CRC_STEP2(CRC_STEP2(CRC_STEP2(c))))

enum {
    CRC_B0 = CRC_STEP8(0x0100u),
    CRC_B1 = CRC_STEP8(0x0200u),
    CRC_B2 = CRC_STEP8(0x0400u),
    CRC_B3 = CRC_STEP8(0x0800u),
    CRC_B4 = CRC_STEP8(0x1000u),
    CRC_B5 = CRC_STEP8(0x2000u),
    CRC_B6 = CRC_STEP8(0x4000u),
    CRC_B7 = CRC_STEP8(0x8000u),
};

#define CRC_E(b)                                                                                   \
    ((((b)&0x01) ? CRC_B0 : 0) ^ (((b)&0x02) ? CRC_B1 : 0) ^ (((b)&0x04) ? CRC_B2 : 0) ^           \
     (((b)&0x08) ? CRC_B3 : 0) ^ (((b)&0x10) ? CRC_B4 : 0) ^ (((b)&0x20) ? CRC_B5 : 0) ^           \
     (((b)&0x40) ? CRC_B6 : 0) ^ (((b)&0x80) ? CRC_B7 : 0))
#define CRC_E4(b) CRC_E(b), CRC_E((b) + 1), CRC_E((b) + 2), CRC_E((b) + 3)
#define CRC_E16(b) CRC_E4(b), CRC_E4((b) + 4), CRC_E4((b) + 8), CRC_E4((b) + 12)
#define CRC_E64(b) CRC_E16(b), CRC_E16((b) + 16), CRC_E16((b) + 32), CRC_E16((b) + 48)

static const uint16_t crc_table[256] = {CRC_E64(0), CRC_E64(64), CRC_E64(128), CRC_E64(192)};

unsigned slots_crc16(const void *buf, size_t len) {
    const unsigned char *p = buf;
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = ((crc << 8) ^ crc_table[((crc >> 8) ^ p[i]) & 0xffu]) & 0xffffu;
    return crc;
}

unsigned slots_of_key(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t after = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', after);
        if (close && close > open + 1)
            return slots_crc16(open + 1, (size_t)(close - open - 1)) & (SLOTS_COUNT - 1);
    }
    return slots_crc16(key, len) & (SLOTS_COUNT - 1);
}

/* Reads 1..5 decimal digits at *p (before end) as a number <= max; advances *p past them. */
static int read_number(const char **p, const char *end, unsigned max, unsigned *out) {
    const char *s = *p;
    unsigned v = 0;
    size_t n = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (++n > 5)
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
        s++;
    }
    if (n == 0 || v > max)
        return -1;
    *p = s;
    *out = v;
    return 0;
}

/* Copies host (len bytes) into out as a C string; IPv6 brackets, only as a pair around the whole
 * host, are removed. Refuses spaces, control bytes, stray brackets and hosts that do not fit. */
static int copy_host(const char *host, size_t len, char out[SLOTS_HOST_MAX]) {
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        host++;
        len -= 2;
        if (len == 0)
            return -1;
    }
    if (len >= SLOTS_HOST_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c >= 0x7f || c == '[' || c == ']')
            return -1;
    }
    memcpy(out, host, len);
    out[len] = '\0';
    return 0;
}

int slots_parse_redirect(const char *err, size_t len, struct slots_redirect *out) {
    const char *p = err, *end = err + len;
    if (len > 6 && memcmp(p, "MOVED ", 6) == 0) {
        out->kind = SLOTS_MOVED;
        p += 6;
    } else if (len > 4 && memcmp(p, "ASK ", 4) == 0) {
        out->kind = SLOTS_ASK;
        p += 4;
    } else {
        return -1;
    }
    if (read_number(&p, end, SLOTS_COUNT - 1, &out->slot) < 0 || p == end || *p++ != ' ')
        return -1;
    /* The port follows the last ':' (an IPv6 host has colons of its own) and ends the text. */
    const char *colon = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == ':')
            colon = q;
    if (!colon)
        return -1;
    const char *port = colon + 1;
    if (read_number(&port, end, 65535, &out->port) < 0 || port != end || out->port == 0)
        return -1;
    return copy_host(p, (size_t)(colon - p), out->host);
}

void slots_table_init(struct slots_table *t) {
    for (size_t i = 0; i < SLOTS_COUNT; i++)
        t->owner[i] = -1;
    t->nnodes = 0;
}

/* The index of node r ([host, port, ...]) in t->nodes, added if new; -1 if r is malformed or t
 * is full. A NULL host (unknown-endpoint) is kept as "", like an empty one. */
static int node_index(struct slots_table *t, const redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
        return -1;
    const redisReply *host = r->element[0], *port = r->element[1];
    if (port->type != REDIS_REPLY_INTEGER || port->integer < 1 || port->integer > 65535)
        return -1;
    struct slots_node n = {.port = (unsigned)port->integer};
    if (host->type == REDIS_REPLY_STRING) {
        if (copy_host(host->str, host->len, n.host) < 0) /* refuses NUL bytes too */
            return -1;
    } else if (host->type != REDIS_REPLY_NIL) {
        return -1;
    }
    for (unsigned i = 0; i < t->nnodes; i++)
        if (t->nodes[i].port == n.port && strcmp(t->nodes[i].host, n.host) == 0)
            return (int)i;
    if (t->nnodes == SLOTS_MASTERS_MAX)
        return -1;
    t->nodes[t->nnodes] = n;
    return (int)t->nnodes++;
}

static int is_slot(const redisReply *r) {
    return r->type == REDIS_REPLY_INTEGER && r->integer >= 0 && r->integer < SLOTS_COUNT;
}

int slots_table_from_reply(struct slots_table *t, const struct redisReply *r) {
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return -1;
    /* Built aside and copied at the end, so a malformed reply leaves t as it was. */
    struct slots_table *next = malloc(sizeof(*next));
    if (!next)
        return -1;
    slots_table_init(next);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
            !is_slot(range->element[0]) || !is_slot(range->element[1]))
            goto bad;
        long long start = range->element[0]->integer, stop = range->element[1]->integer;
        int master = node_index(next, range->element[2]);
        if (start > stop || master < 0)
            goto bad;
        /* Replicas (element 3 on) are not used: the router sends everything to masters. */
        for (long long s = start; s <= stop; s++) {
            if (next->owner[s] != -1)
                goto bad; /* two owners for one slot */
            next->owner[s] = (int16_t)master;
        }
    }
    memcpy(t, next, sizeof(*t));
    free(next);
    return 0;
bad:
    free(next);
    return -1;
}

int slots_table_owner(const struct slots_table *t, unsigned slot) {
    return slot < SLOTS_COUNT ? t->owner[slot] : -1;
}

int slots_next_seed(const char **list, struct slots_node *out) {
    const char *p = *list;
    if (!p || !*p)
        return 0;
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char item[SLOTS_HOST_MAX + 8];
    if (len == 0 || len >= sizeof(item))
        return -1;
    memcpy(item, p, len);
    item[len] = '\0';
    char *colon = strrchr(item, ':');
    char *endp = NULL;
    long port = colon ? strtol(colon + 1, &endp, 10) : 0;
    if (!colon || colon == item || !endp || *endp || port <= 0 || port > 65535)
        return -1;
    *colon = '\0';
    char *host = item;
    if (host[0] == '[' && colon[-1] == ']') {
        host++;
        colon[-1] = '\0';
    }
    if (!*host || strlen(host) >= SLOTS_HOST_MAX)
        return -1;
    memcpy(out->host, host, strlen(host) + 1);
    out->port = (unsigned)port;
    *list = end ? end + 1 : NULL;
    return 1;
}
