/* Origins: parsing and matching an Origin header against RRM_ALLOWED_ORIGINS (see origin.h). */
#include "origin.h"

#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* An origin (RFC 6454 serialization) split into its parts, pointing into the text it came from. */
struct origin {
    const char *scheme, *host;
    size_t scheme_len, host_len;
    long port; /* the scheme's default when none is written; -1 if the scheme has none */
};

static long default_port(const char *scheme, size_t n) {
    if ((n == 4 && strncasecmp(scheme, "http", n) == 0) ||
        (n == 2 && strncasecmp(scheme, "ws", n) == 0))
        return 80;
    if ((n == 5 && strncasecmp(scheme, "https", n) == 0) ||
        (n == 3 && strncasecmp(scheme, "wss", n) == 0))
        return 443;
    return -1;
}

/* Parses s[0..n) as scheme "://" host [":" port], one trailing "/" tolerated. Nothing else may
 * follow the host (no path, query, user info). 0, or -1 if it is not such an origin. */
static int origin_parse(const char *s, size_t n, struct origin *o) {
    if (n && s[n - 1] == '/')
        n--;
    size_t i = 0;
    while (i < n && (isalnum((unsigned char)s[i]) || (i && strchr("+-.", s[i]))))
        i++;
    if (i == 0 || !isalpha((unsigned char)s[0]) || n - i < 3 || memcmp(s + i, "://", 3) != 0)
        return -1;
    o->scheme = s;
    o->scheme_len = i;
    i += 3;
    o->host = s + i;
    if (i < n && s[i] == '[') { /* IPv6 literal */
        while (i < n && s[i] != ']')
            i++;
        if (i == n)
            return -1;
        i++;
    } else {
        while (i < n && s[i] != ':') {
            unsigned char c = (unsigned char)s[i];
            if (c <= ' ' || c >= 0x7f || strchr("/?#@[],\\", c))
                return -1;
            i++;
        }
    }
    o->host_len = (size_t)(s + i - o->host);
    if (o->host_len == 0)
        return -1;
    o->port = default_port(o->scheme, o->scheme_len);
    if (i == n)
        return 0;
    if (s[i++] != ':' || i == n || n - i > 5)
        return -1;
    long port = 0;
    for (; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        port = port * 10 + (s[i] - '0');
    }
    if (port < 1 || port > 65535)
        return -1;
    o->port = port;
    return 0;
}

static int is_star(const char *entry, size_t len, void *arg) {
    (void)arg;
    return len == 1 && entry[0] == '*';
}

static int same_origin(const char *entry, size_t len, void *arg) {
    const struct origin *want = arg;
    struct origin o;
    return origin_parse(entry, len, &o) == 0 && o.scheme_len == want->scheme_len &&
           strncasecmp(o.scheme, want->scheme, o.scheme_len) == 0 && o.host_len == want->host_len &&
           strncasecmp(o.host, want->host, o.host_len) == 0 && o.port == want->port;
}

int origin_allowed(const char *allowed, const char *origin) {
    if (!origin || util_list_each(allowed, is_star, NULL))
        return 1;
    /* Blanks around a header value are not part of it (RFC 7230 3.2.4). */
    origin += strspn(origin, " \t");
    size_t n = strlen(origin);
    while (n && (origin[n - 1] == ' ' || origin[n - 1] == '\t'))
        n--;
    struct origin o;
    if (origin_parse(origin, n, &o) < 0)
        return 0;
    return util_list_each(allowed, same_origin, &o);
}

struct origins_check {
    char *err;
    size_t errlen;
    int entries;
};

static int check_entry(const char *entry, size_t len, void *arg) {
    struct origins_check *c = arg;
    struct origin o;
    c->entries++;
    if (is_star(entry, len, NULL) || (len <= ORIGIN_MAX && origin_parse(entry, len, &o) == 0))
        return 0;
    snprintf(c->err, c->errlen,
             "invalid RRM_ALLOWED_ORIGINS (--allowed-origins): '%.*s' is not * or an origin "
             "scheme://host[:port] (at most %d characters, no path)",
             (int)(len > 300 ? 300 : len), entry, ORIGIN_MAX);
    return -1;
}

int origins_check(const char *allowed, char *err, size_t errlen) {
    struct origins_check c = {err, errlen, 0};
    if (util_list_each(allowed, check_entry, &c))
        return -1;
    if (c.entries == 0) {
        snprintf(err, errlen,
                 "invalid RRM_ALLOWED_ORIGINS (--allowed-origins): no origin given (* for any)");
        return -1;
    }
    return 0;
}
