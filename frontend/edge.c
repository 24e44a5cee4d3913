/* The node's edge: handshake deadline and per-address limit, handshake checks, close frames. */
#include "edge.h"

#include "addrlimit.h"
#include "app.h"
#include "clientaddr.h"
#include "origin.h"
#include "deadlines.h"
#include "hmap.h"
#include "util.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RRM_PROTOCOL "rrm"
#define EDGE_UPGRADE_REQUIRED 426 /* lws 4.1 has no name for it */
/* A burst of more handshakes than this at once is followed by a heap trim. */
#define EDGE_TRIM_AFTER 64

/* lws 4.1 reads at most this much of a subprotocol name (lws_process_ws_upgrade()). */
#define LWS_PCOL_NAME_MAX 64
#define EDGE_TOO_MANY_REQUESTS 429 /* lws 4.1 has no name for it either */
/* Addresses tracked for the per-address limits beyond one per allowed connection: room for those
 * whose handshake bucket is still refilling after their connections closed. */
#define EDGE_IDLE_ADDRESSES 65536
#define EDGE_SWEEP_US (1000 * LWS_US_PER_MS)

struct edge {
    struct app *app;
    struct hmap *in_handshake; /* peer address -> connections from it still in their handshake */
    long handshakes;           /* connections in their handshake, all addresses */
    long peak;                 /* most of them at once since the heap was last trimmed */
    int64_t trimmed_ms;
    struct deadlines due; /* the handshake deadline of every connection in its handshake */
    struct clientaddr_trust *trusted; /* RRM_TRUSTED_PROXIES */
    /* Open connections and handshake rate per client address; NULL when both limits are off. */
    struct addrlimit *limits;
    lws_sorted_usec_list_t sweep; /* frees the limits' idle addresses */
    int sweep_armed, stopped;
    /* Name of the "rrm" protocol's second entry: the first name the current upgrade request
     * offers, or a space (which no offered name can contain) between requests. */
    char alias[LWS_PCOL_NAME_MAX];
};

/* A connection from accept until its handshake ends (WebSocket established or HTTP request
 * read) or it closes; lws keeps it as the connection's opaque user data. */
struct handshake {
    struct edge *edge;
    struct lws *wsi;
    struct deadline deadline;
    char addr[64];               /* the TCP peer */
    char client[CLIENTADDR_MAX]; /* the client behind trusted proxies (set at the upgrade) */
    int counted;                 /* client's connection is counted in edge->limits */
};

static void handshake_expired(struct deadline *d, void *arg);
static void handshake_end(struct lws *wsi);

struct edge *edge_create(struct app *app) {
    struct edge *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->app = app;
    e->alias[0] = ' ';
    deadlines_init(&e->due, app->cx, app->opt.handshake_timeout_ms, handshake_expired, NULL);
    e->in_handshake = hmap_create();
    /* fe_options_check has accepted the list already */
    e->trusted = clientaddr_trust_parse(app->opt.trusted_proxies, NULL, 0);
    const struct fe_options *o = &app->opt;
    if (o->max_connections_per_ip || o->handshakes_per_ip_per_sec) {
        struct addrlimit_options lo = {
            .max_connections = o->max_connections_per_ip,
            .rate_per_sec = o->handshakes_per_ip_per_sec,
            .burst = o->handshakes_per_ip_burst,
            .max_addresses = (size_t)o->max_connections + EDGE_IDLE_ADDRESSES,
        };
        e->limits = addrlimit_create(&lo);
    }
    if (!e->in_handshake || !e->trusted ||
        (!e->limits && (o->max_connections_per_ip || o->handshakes_per_ip_per_sec))) {
        edge_destroy(e);
        return NULL;
    }
    return e;
}

const char *edge_subprotocol_alias(const struct edge *e) {
    return e->alias;
}

void edge_stop(struct edge *e) {
    if (!e)
        return;
    deadlines_fini(&e->due);
    lws_sul_cancel(&e->sweep);
    e->stopped = 1;
}

void edge_destroy(struct edge *e) {
    if (!e)
        return;
    hmap_destroy(e->in_handshake);
    clientaddr_trust_free(e->trusted);
    addrlimit_destroy(e->limits);
    free(e);
}

static void sweep_cb(lws_sorted_usec_list_t *sul) {
    struct edge *e = lws_container_of(sul, struct edge, sweep);
    e->sweep_armed = 0;
    if (addrlimit_sweep(e->limits, util_mono_ms()) && !e->stopped) {
        e->sweep_armed = 1;
        lws_sul_schedule(e->app->cx, 0, &e->sweep, sweep_cb, EDGE_SWEEP_US);
    }
}

/* Addresses may have been left idle: look again in a second (and every second while some are). */
static void schedule_sweep(struct edge *e) {
    if (e->sweep_armed || e->stopped)
        return;
    e->sweep_armed = 1;
    lws_sul_schedule(e->app->cx, 0, &e->sweep, sweep_cb, EDGE_SWEEP_US);
}

void edge_connection_closed(struct edge *e, const char *client) {
    if (!e || !e->limits)
        return;
    addrlimit_release(e->limits, client, util_mono_ms());
    schedule_sweep(e);
}

long edge_top_clients(const struct edge *e, struct addrlimit_usage *out, size_t n) {
    return e->limits ? (long)addrlimit_top(e->limits, out, n) : -1;
}

int edge_established(struct edge *e, struct lws *wsi, char *client, size_t cap) {
    struct handshake *h = lws_get_opaque_user_data(wsi);
    int counted = 0;
    if (h && h->client[0]) {
        util_strlcpy(client, h->client, cap);
        counted = h->counted;
        h->counted = 0; /* the session holds it now */
    } else if (!lws_get_peer_simple(wsi, client, cap)) {
        client[0] = '\0';
    }
    (void)e;
    handshake_end(wsi);
    return counted;
}

int edge_close_payload_valid(const unsigned char *p, size_t len) {
    if (len == 0)
        return 1;
    if (len < 2)
        return 0;
    unsigned code = (unsigned)p[0] << 8 | p[1];
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

struct list_token {
    const char *token;
    size_t len;
    int nocase;
};

static int is_token(const char *entry, size_t len, void *arg) {
    const struct list_token *t = arg;
    return len == t->len &&
           (t->nocase ? strncasecmp(entry, t->token, len) : strncmp(entry, t->token, len)) == 0;
}

int edge_list_has(const char *list, const char *token, int nocase) {
    struct list_token t = {token, strlen(token), nocase};
    return util_list_each(list, is_token, &t);
}

static uintptr_t count_of(struct edge *e, const char *addr) {
    return (uintptr_t)hmap_get(e->in_handshake, addr, strlen(addr));
}

/* Header buffers are freed when a burst of handshakes is over, but the sessions allocated
 * meanwhile pin the heap around them: without a trim, every burst would leave up to
 * EDGE_HEADER_POOL buffers' worth of resident memory behind. glibc's malloc_trim() gives the
 * free pages inside the heap back. */
static void trim_after_burst(struct edge *e) {
    int64_t now = util_mono_ms();
    if (e->peak > EDGE_TRIM_AFTER && e->handshakes <= EDGE_TRIM_AFTER / 8 &&
        now - e->trimmed_ms >= 1000) {
        malloc_trim(0);
        e->trimmed_ms = now;
        e->peak = e->handshakes;
    }
}

static void handshake_end(struct lws *wsi) {
    struct handshake *h = lws_get_opaque_user_data(wsi);
    if (!h)
        return;
    struct edge *e = h->edge;
    e->handshakes--;
    lws_set_opaque_user_data(wsi, NULL);
    deadline_stop(&h->deadline);
    if (h->counted) /* admitted, but the connection ended before it was established */
        edge_connection_closed(e, h->client);
    size_t n = strlen(h->addr);
    uintptr_t count = count_of(e, h->addr);
    if (count > 1)
        hmap_put(e->in_handshake, h->addr, n, (void *)(count - 1));
    else
        hmap_del(e->in_handshake, h->addr, n);
    free(h);
    trim_after_burst(e);
}

/* lws closes it later (the kill is asynchronous); handshake_end() then finds it disarmed. */
static void handshake_expired(struct deadline *d, void *arg) {
    struct handshake *h = lws_container_of(d, struct handshake, deadline);
    (void)arg;
    h->edge->app->stats.handshake_timeouts++;
    lws_set_timeout(h->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* A new TCP connection. Refused (closed at once) when its address already has the most
 * connections allowed in their handshake; otherwise its handshake deadline starts. */
static int handshake_begin(struct edge *e, struct lws *wsi) {
    struct app *app = e->app;
    struct handshake *h = calloc(1, sizeof(*h));
    if (!h)
        return -1;
    if (!lws_get_peer_simple(wsi, h->addr, sizeof(h->addr)))
        h->addr[0] = '\0';
    uintptr_t count = count_of(e, h->addr);
    if (app->opt.max_handshakes_per_ip && count >= (uintptr_t)app->opt.max_handshakes_per_ip) {
        app->stats.handshakes_refused[APP_REFUSED_PER_IP]++;
        free(h);
        return -1;
    }
    if (hmap_put(e->in_handshake, h->addr, strlen(h->addr), (void *)(count + 1))) {
        free(h);
        return -1;
    }
    if (++e->handshakes > e->peak)
        e->peak = e->handshakes;
    h->edge = e;
    h->wsi = wsi;
    lws_set_opaque_user_data(wsi, h);
    deadline_start(&e->due, &h->deadline);
    /* The deadline replaces the timeout lws gave the connection on accept: lws keeps its
     * timeouts in one sorted list, and a burst of thousands of accepted connections waiting for
     * a header buffer made every insertion into it walk all of them (most of the node's CPU in
     * a connection ramp). lws still times the header buffer itself while one is held. */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    return 0;
}

/* Reads the offered list (n bytes) exactly as lws_process_ws_upgrade() of lws 4.1 will, which
 * binds the first name it knows and drops the connection if it meets something it cannot parse
 * first. If "rrm" comes before any such thing, lws will pick it; otherwise the alias is named
 * after the first name offered, so that lws picks the alias there. Returns -1 if lws would find
 * no name at all. */
static int choose_subprotocol(struct edge *e, const char *list, int n) {
    struct lws_tokenize ts;
    lws_tokenize_elem t;
    char name[LWS_PCOL_NAME_MAX], first[LWS_PCOL_NAME_MAX] = "";
    lws_tokenize_init(&ts, list,
                      LWS_TOKENIZE_F_COMMA_SEP_LIST | LWS_TOKENIZE_F_MINUS_NONTERM |
                          LWS_TOKENIZE_F_DOT_NONTERM | LWS_TOKENIZE_F_RFC7230_DELIMS);
    ts.len = (size_t)n;
    do {
        t = lws_tokenize(&ts);
        if (t == LWS_TOKZE_TOKEN) {
            if (lws_tokenize_cstr(&ts, name, sizeof(name)))
                break;
            if (strcmp(name, RRM_PROTOCOL) == 0)
                return 0;
            if (!first[0])
                memcpy(first, name, sizeof(first));
        } else if (t != LWS_TOKZE_DELIMITER && t != LWS_TOKZE_ENDED) {
            break;
        }
    } while (t > 0);
    if (!first[0])
        return -1;
    memcpy(e->alias, first, sizeof(e->alias));
    return 0;
}

/* Answers an upgrade request with status code, no body and, if retry_after_s > 0, a
 * Retry-After header; lws then treats the request as answered. */
static int answer(struct lws *wsi, unsigned code, long retry_after_s) {
    unsigned char buf[LWS_PRE + 256], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf);
    char retry[24];
    int n = snprintf(retry, sizeof(retry), "%ld", retry_after_s);
    if (lws_add_http_common_headers(wsi, code, "text/plain", 0, &p, end) ||
        (code == EDGE_UPGRADE_REQUIRED &&
         lws_add_http_header_by_name(wsi, (const unsigned char *)"sec-websocket-version:",
                                     (const unsigned char *)"13", 2, &p, end)) ||
        (retry_after_s > 0 &&
         lws_add_http_header_by_name(wsi, (const unsigned char *)"retry-after:",
                                     (const unsigned char *)retry, n, &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    return 1;
}

/* Refuses an upgrade request with status code, counted under why. */
static int refuse(struct edge *e, struct lws *wsi, unsigned code, enum app_refusal why) {
    e->app->stats.handshakes_refused[why]++;
    return answer(wsi, code, 0);
}

/* A header lws holds, whole (several lines joined by commas); caller frees. NULL when absent. */
static char *header_dup(struct lws *wsi, enum lws_token_indexes t, int *len) {
    int n = lws_hdr_total_length(wsi, t);
    char *v = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (!v)
        return NULL;
    *len = lws_hdr_copy(wsi, v, n + 1, t);
    if (*len < 0) {
        free(v);
        *len = 0;
        return NULL;
    }
    return v;
}

/* The client of the connection: the TCP peer, or behind a trusted proxy the address its
 * X-Forwarded-For or X-Real-IP names (clientaddr.h). lws 4.1 knows both headers (X-Real-IP with
 * LWS_WITH_HTTP_UNCOMMON_HEADERS, on in Debian's build) and joins repeated lines with commas:
 * several X-Forwarded-For lines read as one list, several X-Real-IP lines as a malformed value. */
static void resolve_client(struct edge *e, struct lws *wsi, struct handshake *h) {
    if (!clientaddr_trusted(e->trusted, h->addr, strlen(h->addr))) {
        clientaddr_resolve(e->trusted, h->addr, NULL, 0, NULL, 0, h->client);
        return;
    }
    int xlen = 0, rlen = 0;
    char *xff = header_dup(wsi, WSI_TOKEN_X_FORWARDED_FOR, &xlen);
    char *real_ip = header_dup(wsi, WSI_TOKEN_HTTP_X_REAL_IP, &rlen);
    if (clientaddr_resolve(e->trusted, h->addr, xff, (size_t)xlen, real_ip, (size_t)rlen,
                           h->client) == CLIENTADDR_MALFORMED)
        e->app->stats.forwarded_malformed++;
    free(xff);
    free(real_ip);
}

/* Names the client and applies its address's limits: over them, 429 with Retry-After. */
static int admit_client(struct edge *e, struct lws *wsi) {
    struct handshake *h = lws_get_opaque_user_data(wsi);
    long retry_after_s = 1;
    if (!h)
        return 0;
    resolve_client(e, wsi, h);
    if (!e->limits)
        return 0;
    switch (addrlimit_admit(e->limits, h->client, util_mono_ms(), &retry_after_s)) {
    case ADDRLIMIT_OK:
        h->counted = 1;
        return 0;
    case ADDRLIMIT_CONNECTIONS:
        e->app->stats.refused_per_ip++;
        break;
    default:
        e->app->stats.rate_limited_per_ip++;
        break;
    }
    schedule_sweep(e);
    return answer(wsi, EDGE_TOO_MANY_REQUESTS, retry_after_s);
}

/* Whether the upgrade request's Origin is one RRM_ALLOWED_ORIGINS lets in. */
static int origin_ok(struct edge *e, struct lws *wsi) {
    const char *allowed = e->app->opt.allowed_origins;
    if (strcmp(allowed, "*") == 0)
        return 1;
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (len <= 0)
        return 1; /* not sent: not a browser (see edge.h) */
    char origin[ORIGIN_MAX + 1];
    if (len > ORIGIN_MAX || lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) != len)
        return 0; /* longer than any origin the list can hold */
    return origin_allowed(allowed, origin);
}

/* lws 4.1 answers a version other than 13 with a 101 and drops the TCP connection, without an
 * answer, of a request without "Connection: upgrade" or a key, or one offering only
 * subprotocols it does not know. Runs before lws looks at any of that, and also refuses any
 * upgrade on the admin listener and one from an origin RRM_ALLOWED_ORIGINS does not list. */
static int confirm_upgrade(struct edge *e, struct lws *wsi, const char *upgrade) {
    char buf[128];
    if (lws_get_vhost(wsi) == e->app->admin_vh)
        return refuse(e, wsi, HTTP_STATUS_NOT_FOUND, APP_REFUSED_ADMIN_PORT);
    if (strcasecmp(upgrade, "websocket") != 0) /* h2c: this node speaks HTTP/1.1 */
        return refuse(e, wsi, HTTP_STATUS_BAD_REQUEST, APP_REFUSED_BAD_REQUEST);
    if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_VERSION) != 2 || strcmp(buf, "13") != 0)
        return refuse(e, wsi, EDGE_UPGRADE_REQUIRED, APP_REFUSED_VERSION);
    if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_CONNECTION) <= 0 ||
        !edge_list_has(buf, "upgrade", 1) || lws_hdr_total_length(wsi, WSI_TOKEN_KEY) != 24)
        return refuse(e, wsi, HTTP_STATUS_BAD_REQUEST, APP_REFUSED_BAD_REQUEST);
    if (!origin_ok(e, wsi))
        return refuse(e, wsi, HTTP_STATUS_FORBIDDEN, APP_REFUSED_ORIGIN);
    e->alias[0] = ' ';
    e->alias[1] = '\0';
    int n = lws_hdr_copy(wsi, buf, sizeof(buf) - 1, WSI_TOKEN_PROTOCOL);
    if (n < 0) /* longer than lws's own buffer for the list */
        return refuse(e, wsi, HTTP_STATUS_BAD_REQUEST, APP_REFUSED_BAD_REQUEST);
    if (n > 0 && choose_subprotocol(e, buf, n) < 0)
        return refuse(e, wsi, HTTP_STATUS_BAD_REQUEST, APP_REFUSED_BAD_REQUEST);
    return admit_client(e, wsi);
}

/* The 101 so far ends with the Sec-WebSocket-Protocol line lws wrote for the entry that selects
 * none: take it back. */
static void drop_subprotocol_line(struct edge *e, struct lws *wsi,
                                  struct lws_process_html_args *args) {
    const struct lws_protocols *pr = lws_get_protocol(wsi);
    char line[LWS_PCOL_NAME_MAX + 32];
    if (!pr || pr->name != e->alias)
        return;
    int n = snprintf(line, sizeof(line), "Sec-WebSocket-Protocol: %s\r\n", e->alias);
    if (n > 0 && (size_t)n < sizeof(line) && memcmp(args->p - n, line, (size_t)n) == 0) {
        args->p -= n;
        args->max_len += n;
    }
}

/* Only for the reasons edge_callback() handles: others may come without a connection. */
static struct edge *edge_of(struct lws *wsi) {
    struct app *app = lws_context_user(lws_get_context(wsi));
    return app->edge;
}

int edge_callback(struct lws *wsi, enum lws_callback_reasons reason, void *in, size_t len,
                  int *rc) {
    switch (reason) {
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        *rc = handshake_begin(edge_of(wsi), wsi);
        return 1;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        *rc = confirm_upgrade(edge_of(wsi), wsi, in);
        return 1;
    case LWS_CALLBACK_ADD_HEADERS:
        drop_subprotocol_line(edge_of(wsi), wsi, in);
        *rc = 0;
        return 1;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (edge_close_payload_valid(in, len))
            return 0;
        edge_of(wsi)->app->stats.bad_close_frames++;
        lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)"invalid close frame",
                         19);
        *rc = -1;
        return 1;
    case LWS_CALLBACK_ESTABLISHED: /* the session calls edge_established() */
        return 0;
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_WSI_DESTROY:
        handshake_end(wsi);
        return 0;
    default:
        return 0;
    }
}
