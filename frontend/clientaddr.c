/* Trusted proxies and the client address behind them (see clientaddr.h). */
#include "clientaddr.h"

#include "util.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest entry worth reading: "[" + the longest IPv6 text + "]:65535", with room for the
 * spaces a proxy may put around it. */
#define ENTRY_MAX 64

/* An address as 16 bytes: IPv6, or IPv4 mapped (::ffff:a.b.c.d), so both kinds share one
 * matcher and an IPv4-mapped IPv6 address is the IPv4 address. */
struct addr16 {
    uint8_t b[16];
};

struct cidr {
    struct addr16 net; /* bits below the prefix cleared */
    unsigned bits;     /* 0..128, counted on the 16-byte form */
};

struct clientaddr_trust {
    size_t n;
    struct cidr blocks[]; /* n of them */
};

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int is_space(char c) {
    return c == ' ' || c == '\t';
}

/* Trims spaces and tabs around s[0..*len). */
static const char *trim(const char *s, size_t *len) {
    size_t n = *len;
    while (n && is_space(*s)) {
        s++;
        n--;
    }
    while (n && is_space(s[n - 1]))
        n--;
    *len = n;
    return s;
}

/* A bare address (NUL-terminated, no port, brackets or spaces) into a; 4 for IPv4 (also an
 * IPv4-mapped IPv6 address), 6 for IPv6, 0 if it is not an address. */
static int parse_bare(const char *host, struct addr16 *a) {
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, host, &v4) == 1) {
        memcpy(a->b, v4_mapped, 12);
        memcpy(a->b + 12, &v4, 4);
        return 4;
    }
    if (inet_pton(AF_INET6, host, &v6) != 1)
        return 0;
    memcpy(a->b, &v6, 16);
    return memcmp(a->b, v4_mapped, 12) == 0 ? 4 : 6;
}

/* One forwarding-header entry as clientaddr_parse describes it; 4, 6, or 0 if malformed. */
static int parse16(const char *s, size_t len, struct addr16 *a) {
    char buf[ENTRY_MAX + 1];
    s = trim(s, &len);
    if (len == 0 || len > ENTRY_MAX || memchr(s, '\0', len))
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *host = buf, *port = NULL;
    int bracketed = buf[0] == '[';
    if (bracketed) {
        char *close = strchr(buf, ']');
        if (!close)
            return 0;
        *close = '\0';
        host = buf + 1;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return 0;
    } else {
        char *colon = strchr(buf, ':');
        if (colon && !strchr(colon + 1, ':')) { /* one colon: IPv4 with a port */
            *colon = '\0';
            port = colon + 1;
        }
    }
    if (port) {
        size_t n = strlen(port);
        if (n == 0 || n > 5 || strspn(port, "0123456789") != n || atol(port) > 65535)
            return 0;
    }
    /* brackets hold IPv6 text only; a single colon only follows IPv4 text */
    if (bracketed ? !strchr(host, ':') : (port && strchr(host, ':')))
        return 0;
    return parse_bare(host, a);
}

static void format16(const struct addr16 *a, char *out) {
    if (memcmp(a->b, v4_mapped, 12) == 0)
        inet_ntop(AF_INET, a->b + 12, out, CLIENTADDR_MAX);
    else
        inet_ntop(AF_INET6, a->b, out, CLIENTADDR_MAX);
}

int clientaddr_parse(const char *s, size_t len, char *out) {
    struct addr16 a;
    if (!parse16(s, len, &a))
        return -1;
    format16(&a, out);
    return 0;
}

static int in_block(const struct cidr *c, const struct addr16 *a) {
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->net.b, a->b, full) != 0)
        return 0;
    if (!rest)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a->b[full] & mask) == c->net.b[full];
}

static int trusted16(const struct clientaddr_trust *t, const struct addr16 *a) {
    for (size_t i = 0; t && i < t->n; i++)
        if (in_block(&t->blocks[i], a))
            return 1;
    return 0;
}

/* One block "addr[/bits]" (len bytes, trimmed); 0 or -1. */
static int parse_block(const char *s, size_t len, struct cidr *c) {
    char host[ENTRY_MAX + 1];
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    if (alen == 0 || alen > ENTRY_MAX)
        return -1;
    memcpy(host, s, alen);
    host[alen] = '\0';
    int kind = parse_bare(host, &c->net);
    if (!kind)
        return -1;
    /* a prefix counts on the text's own family: ::ffff:0:0/96 is every IPv4 address */
    unsigned max = strchr(host, ':') ? 128 : 32, bits = max;
    if (slash) {
        size_t n = len - alen - 1;
        if (n == 0 || n > 3 || strspn(slash + 1, "0123456789") < n)
            return -1;
        bits = 0;
        for (size_t i = 0; i < n; i++)
            bits = bits * 10 + (unsigned)(slash[1 + i] - '0');
        if (bits > max)
            return -1;
    }
    c->bits = max == 32 ? bits + 96 : bits;
    for (unsigned i = c->bits; i < 128; i++)
        c->net.b[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
    return 0;
}

struct trust_parse {
    struct clientaddr_trust *t;
    char *err;
    size_t errlen;
};

/* One entry of the trusted-proxy list into the next block; -1 (with err) if it is none. */
static int add_block(const char *s, size_t len, void *arg) {
    struct trust_parse *tp = arg;
    if (parse_block(s, len, &tp->t->blocks[tp->t->n]) == 0) {
        tp->t->n++;
        return 0;
    }
    snprintf(tp->err, tp->errlen, "'%.*s' is not an address or CIDR block",
             (int)(len > 80 ? 80 : len), s);
    return -1;
}

struct clientaddr_trust *clientaddr_trust_parse(const char *list, char *err, size_t errlen) {
    size_t cap = 0;
    for (const char *p = list; p && *p; p++)
        cap += *p == ',';
    struct clientaddr_trust *t = calloc(1, sizeof(*t) + (cap + 1) * sizeof(struct cidr));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct trust_parse tp = {t, err, errlen};
    if (list && util_list_each(list, add_block, &tp)) {
        free(t);
        return NULL;
    }
    return t;
}

void clientaddr_trust_free(struct clientaddr_trust *t) {
    free(t);
}

size_t clientaddr_trust_count(const struct clientaddr_trust *t) {
    return t ? t->n : 0;
}

int clientaddr_trusted(const struct clientaddr_trust *t, const char *addr, size_t len) {
    struct addr16 a;
    return parse16(addr, len, &a) && trusted16(t, &a);
}

/* Copies text that is not an address (an unusual peer) as it is, truncated to fit. */
static void copy_text(const char *s, char *out) {
    size_t n = strlen(s);
    if (n >= CLIENTADDR_MAX)
        n = CLIENTADDR_MAX - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

enum clientaddr_source clientaddr_resolve(const struct clientaddr_trust *t, const char *peer,
                                          const char *xff, size_t xff_len, const char *real_ip,
                                          size_t real_ip_len, char *out) {
    struct addr16 a;
    if (!parse16(peer, strlen(peer), &a)) {
        copy_text(peer, out);
        return CLIENTADDR_PEER;
    }
    format16(&a, out);
    if (!trusted16(t, &a))
        return CLIENTADDR_PEER;
    size_t filled = 0; /* characters of xff other than separators */
    for (size_t i = 0; xff && i < xff_len; i++)
        filled += !is_space(xff[i]) && xff[i] != ',';
    if (filled) {
        /* Right to left; `end` is one past the entry being read. */
        for (size_t end = xff_len; end > 0;) {
            size_t start = end;
            while (start > 0 && xff[start - 1] != ',')
                start--;
            size_t len = end - start;
            const char *e = trim(xff + start, &len);
            end = start ? start - 1 : 0;
            if (len == 0)
                continue; /* an empty list element */
            if (!parse16(e, len, &a))
                return CLIENTADDR_MALFORMED; /* out: the hop that passed it on */
            format16(&a, out);
            if (!trusted16(t, &a))
                return CLIENTADDR_FORWARDED;
        }
        return CLIENTADDR_FORWARDED; /* every hop trusted: the left-most */
    }
    if (real_ip) {
        if (!parse16(real_ip, real_ip_len, &a))
            return CLIENTADDR_MALFORMED;
        format16(&a, out);
        return CLIENTADDR_REAL_IP;
    }
    return CLIENTADDR_PEER;
}
