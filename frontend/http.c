/* Health, readiness, metrics and status over plain HTTP (see http.h). */
#include "http.h"

#include "app.h"
#include "fanout.h"
#include "keys.h"
#include "redis_loop.h"
#include "session.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http_reply {
    size_t len, cap;
    unsigned char *buf; /* LWS_PRE headroom, then the body */
    int code;
    const char *type;
    int head;        /* HEAD: the headers announce the body, which is not sent */
    int await_body;  /* refused request whose body lws is still reading: answered once consumed */
    int close_after; /* the connection ends with this answer (a body of unknown length follows) */
    /* a /status request waiting for Redis: in app->status_waiting, found by its number */
    lws_dll2_t waiting;
    uint64_t no;
    struct lws *wsi;
};

static void add(struct http_reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct http_reply *r, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        size_t room = r->cap - LWS_PRE - r->len;
        va_start(ap, fmt);
        int n = vsnprintf((char *)r->buf + LWS_PRE + r->len, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            r->len += (size_t)n;
            return;
        }
        size_t cap = r->cap * 2 + (size_t)n;
        unsigned char *p = realloc(r->buf, cap);
        if (!p)
            return;
        r->buf = p;
        r->cap = cap;
    }
}

static void metric(struct http_reply *r, const char *name, const char *type, const char *help,
                   uint64_t v) {
    add(r, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name, v);
}

static void metrics(struct app *app, struct http_reply *r) {
    const struct fe_stats *st = &app->stats;
    metric(r, "rrm_connections", "gauge", "Open WebSocket connections.",
           (uint64_t)app->connections);
    metric(r, "rrm_connections_total", "counter", "WebSocket connections accepted.",
           st->connections_total);
    metric(r, "rrm_connections_refused_total", "counter", "Connections over the limit.",
           st->connections_refused);
    metric(r, "rrm_identified_total", "counter", "Connections that identified.",
           st->identified_total);
    metric(r, "rrm_rooms_local", "gauge", "Rooms with members on this node.",
           fanout_room_count(app->fanout));
    metric(r, "rrm_messages_in_total", "counter", "Messages received from local clients.",
           st->messages_in);
    metric(r, "rrm_messages_out_total", "counter", "Frames written to local clients.",
           st->messages_out);
    metric(r, "rrm_client_writes_total", "counter",
           "Writes to local clients (one carries every frame queued for that client).",
           st->client_writes);
    add(r, "# HELP rrm_delivery_delay_seconds Time from a frame being built (relayed message "
           "from Redis, answer, error) to its write to the client: coalescing, slow clients, "
           "a busy loop.\n# TYPE rrm_delivery_delay_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < APP_DELAY_BOUNDS; i++) {
        cum += st->delay_buckets[i];
        add(r, "rrm_delivery_delay_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
            (double)app_delay_bounds_us[i] / 1e6, cum);
    }
    cum += st->delay_buckets[APP_DELAY_BOUNDS];
    add(r,
        "rrm_delivery_delay_seconds_bucket{le=\"+Inf\"} %" PRIu64
        "\nrrm_delivery_delay_seconds_sum %.6f\nrrm_delivery_delay_seconds_count %" PRIu64 "\n",
        cum, (double)st->delay_sum_us / 1e6, cum);
    metric(r, "rrm_bytes_in_total", "counter", "Payload bytes received.", st->bytes_in);
    metric(r, "rrm_bytes_out_total", "counter", "Payload bytes written.", st->bytes_out);
    metric(r, "rrm_queries_total", "counter", "query_room requests.", st->queries);
    metric(r, "rrm_pubsub_in_total", "counter", "Relayed frames received from Redis.",
           st->pubsub_in);
    metric(r, "rrm_slow_consumers_total", "counter", "Clients cut off for a full send queue.",
           st->slow_consumers);
    metric(r, "rrm_replaced_total", "counter", "Connections replaced by the same device.",
           st->replaced);
    metric(r, "rrm_identify_timeouts_total", "counter", "Connections that never identified.",
           st->identify_timeouts);
    metric(r, "rrm_handshakes_refused_total", "counter",
           "Upgrade requests refused and connections over the per-address handshake cap.",
           st->handshakes_refused);
    metric(r, "rrm_handshake_timeouts_total", "counter",
           "Connections closed for not finishing their handshake in time.", st->handshake_timeouts);
    metric(r, "rrm_bad_close_frames_total", "counter", "Client close frames answered with 1002.",
           st->bad_close_frames);
    metric(r, "rrm_redis_unavailable_total", "counter", "Actions refused while Redis was down.",
           st->redis_errors);
    metric(r, "rrm_reaped_members_total", "counter", "Members of dead nodes removed here.",
           st->reaped);
    metric(r, "rrm_rooms_recycled_total", "counter", "Empty rooms recycled by this node.",
           st->recycled);
    metric(r, "rrm_redis_drops_total", "counter", "Times the Redis command link dropped.",
           app->redis_cmd ? rl_drops(app->redis_cmd) : 0);
    metric(r, "rrm_redis_rtt_microseconds", "gauge", "Last Redis PING round trip.",
           app->redis_cmd ? (uint64_t)rl_rtt_us(app->redis_cmd) : 0);
    metric(r, "rrm_ready", "gauge", "1 when Redis is reachable and the node is not draining.",
           (uint64_t)(app_redis_ready(app) && !app->draining));
    metric(r, "rrm_resident_memory_kib", "gauge", "Resident memory.", (uint64_t)util_rss_kib());
    add(r, "# HELP rrm_client_errors_total Error frames sent to clients, by code.\n"
           "# TYPE rrm_client_errors_total counter\n");
    for (size_t i = 0; i < app_error_code_count; i++)
        add(r, "rrm_client_errors_total{code=\"%s\"} %" PRIu64 "\n", app_error_codes[i],
            st->errors[i]);
}

/* Ids are validated to need no escaping; node ids and anything else are escaped. */
static void add_escaped(struct http_reply *r, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        switch (p[i]) {
        case '&':
            add(r, "&amp;");
            break;
        case '<':
            add(r, "&lt;");
            break;
        case '>':
            add(r, "&gt;");
            break;
        case '"':
            add(r, "&quot;");
            break;
        default:
            add(r, "%c", p[i]);
        }
    }
}

struct status_ctx {
    struct app *app;
    struct http_reply *r;
};

static void status_room(const char *room, size_t members, void *arg) {
    struct status_ctx *c = arg;
    add(c->r, "<tr><td>%s</td><td>%zu</td></tr>\n", room, members);
}

/* One connection of a node, from its conns hash: value "room\tdevice". */
struct member {
    const char *room, *device;
    int room_len, device_len;
};

static int span_cmp(const char *a, int an, const char *b, int bn) {
    int c = memcmp(a, b, (size_t)(an < bn ? an : bn));
    return c ? c : an - bn;
}

static int member_cmp(const void *a, const void *b) {
    const struct member *x = a, *y = b;
    int c = span_cmp(x->room, x->room_len, y->room, y->room_len);
    return c ? c : span_cmp(x->device, x->device_len, y->device, y->device_len);
}

/* One node of the STATUS script's reply: {node, heartbeat ms, connections, {conn, value...},
 * now ms}, as a heading and a table of its rooms and their devices. */
static void status_node(struct http_reply *r, const redisReply *n) {
    if (n->type != REDIS_REPLY_ARRAY || n->elements < 5 ||
        n->element[0]->type != REDIS_REPLY_STRING || n->element[3]->type != REDIS_REPLY_ARRAY)
        return;
    const redisReply *conns = n->element[3];
    long long beat = n->element[1]->type == REDIS_REPLY_STRING ? atoll(n->element[1]->str) : 0;
    long long now = n->element[4]->integer, total = n->element[2]->integer;
    add(r, "<h3>");
    add_escaped(r, n->element[0]->str, n->element[0]->len);
    add(r, "</h3><p>%lld connections, last heartbeat %lld ms ago</p>\n", total, now - beat);
    size_t m = 0;
    struct member *ms = conns->elements ? calloc(conns->elements / 2, sizeof(*ms)) : NULL;
    for (size_t i = 0; ms && i + 1 < conns->elements; i += 2) {
        const redisReply *v = conns->element[i + 1];
        const char *tab = v->type == REDIS_REPLY_STRING ? memchr(v->str, '\t', v->len) : NULL;
        if (!tab)
            continue;
        ms[m].room = v->str;
        ms[m].room_len = (int)(tab - v->str);
        ms[m].device = tab + 1;
        ms[m].device_len = (int)(v->len - (size_t)(tab + 1 - v->str));
        m++;
    }
    if (m)
        qsort(ms, m, sizeof(*ms), member_cmp);
    add(r, "<table border=\"1\"><tr><th>room</th><th>devices on this node</th></tr>\n");
    for (size_t i = 0; i < m; i++) {
        int first =
            i == 0 || span_cmp(ms[i].room, ms[i].room_len, ms[i - 1].room, ms[i - 1].room_len);
        if (first) {
            add(r, "%s<tr><td>", i ? "</td></tr>\n" : "");
            add_escaped(r, ms[i].room, (size_t)ms[i].room_len);
            add(r, "</td><td>");
        } else {
            add(r, ", ");
        }
        add_escaped(r, ms[i].device, (size_t)ms[i].device_len);
    }
    add(r, "%s</table>\n", m ? "</td></tr>\n" : "");
    if ((long long)m < total)
        add(r, "<p>(%zu of %lld connections listed)</p>\n", m, total);
    free(ms);
}

/* The page: this node, then the cluster as Redis knows it (cluster NULL: unavailable). */
static void status_page(struct app *app, struct http_reply *r, const redisReply *cluster) {
    add(r, "<!doctype html><html><head><meta charset=\"utf-8\"><title>rrm ");
    add_escaped(r, app->node_id, strlen(app->node_id));
    add(r, "</title></head><body><h1>Node ");
    add_escaped(r, app->node_id, strlen(app->node_id));
    add(r,
        "</h1><p>%ld connections, %zu local rooms, redis %s%s</p>"
        "<table border=\"1\"><tr><th>room</th><th>local devices</th></tr>\n",
        app->connections, fanout_room_count(app->fanout), app_redis_ready(app) ? "up" : "down",
        app->draining ? ", draining" : "");
    struct status_ctx c = {app, r};
    fanout_each_room(app->fanout, status_room, &c);
    add(r, "</table>\n<h2>Cluster</h2>\n");
    if (!cluster || cluster->type != REDIS_REPLY_ARRAY) {
        add(r, "<p>unavailable: the cluster store did not answer</p>\n");
    } else {
        add(r, "<p>%zu nodes</p>\n", cluster->elements);
        for (size_t i = 0; i < cluster->elements; i++)
            status_node(r, cluster->element[i]);
    }
    add(r, "</body></html>\n");
}

static int add_header(struct lws *wsi, enum lws_token_indexes t, const char *v, unsigned char **p,
                      unsigned char *end) {
    return lws_add_http_header_by_token(wsi, t, (const unsigned char *)v, (int)strlen(v), p, end);
}

/* Writes the status line and headers of r now; the body follows from the writeable callback. */
static int respond(struct lws *wsi, struct http_reply *r) {
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr);
    if (lws_add_http_common_headers(wsi, (unsigned int)r->code, r->type, r->len, &p, end) ||
        add_header(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, "no-store", &p, end) ||
        (r->code == HTTP_STATUS_METHOD_NOT_ALLOWED &&
         add_header(wsi, WSI_TOKEN_HTTP_ALLOW, "GET, HEAD", &p, end)) ||
        (r->close_after && add_header(wsi, WSI_TOKEN_CONNECTION, "close", &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

/* Connections listed per node at most on /status. */
#define STATUS_MAX_CONNS "2000"

static void status_reply(redisAsyncContext *ac, void *reply, void *priv) {
    struct app *app = rl_arg_of(ac);
    uint64_t no = (uint64_t)(uintptr_t)priv;
    struct http_reply *r = NULL;
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&app->status_waiting)) {
        struct http_reply *w = lws_container_of(d, struct http_reply, waiting);
        if (w->no == no)
            r = w;
    }
    lws_end_foreach_dll(d);
    if (!r)
        return; /* the client went away meanwhile */
    lws_dll2_remove(&r->waiting);
    status_page(app, r, reply);
    r->type = "text/html; charset=utf-8";
    if (respond(r->wsi, r))
        lws_set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* Asks Redis for the cluster's state; the page is written when it answers. Returns 1 if the
 * request is on its way, 0 if the page must be built now without it. */
static int status_request(struct app *app, struct lws *wsi, struct http_reply *r) {
    redisAsyncContext *ac = app_redis_ready(app) ? rl_ctx(app->redis_cmd) : NULL;
    const char *argv[] = {KEYS_NODES, STATUS_MAX_CONNS};
    r->no = ++app->next_status;
    if (!ac || scripts_eval(&app->scripts, ac, SCRIPT_STATUS, status_reply,
                            (void *)(uintptr_t)r->no, 1, 2, argv, NULL))
        return 0;
    r->wsi = wsi;
    lws_dll2_add_tail(&r->waiting, &app->status_waiting);
    return 1;
}

static void reply_free(struct session *s) {
    if (s->http) {
        lws_dll2_remove(&s->http->waiting);
        free(s->http->buf);
        free(s->http);
        s->http = NULL;
    }
}

/* Builds the answer to a GET or HEAD of path into r. Returns 1 if it is written later (/status
 * waits for Redis), 0 if r is complete. */
static int route(struct app *app, struct lws *wsi, struct http_reply *r, const char *path) {
    if (strcmp(path, "/healthz") == 0) {
        add(r, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        int ready = app_redis_ready(app) && !app->draining;
        r->code = ready ? 200 : 503;
        add(r, "%s\n", ready ? "ready" : app->draining ? "draining" : "redis unavailable");
    } else if (strcmp(path, "/metrics") == 0) {
        r->type = "text/plain; version=0.0.4";
        metrics(app, r);
    } else if (strcmp(path, "/status") == 0 || strcmp(path, "/") == 0) {
        if (status_request(app, wsi, r))
            return 1; /* answered from status_reply */
        r->type = "text/html; charset=utf-8";
        status_page(app, r, NULL);
    } else {
        r->code = 404;
        add(r, "not found\n");
    }
    return 0;
}

/* Every endpoint is read-only: other methods get 405. lws reads a body announced by
 * Content-Length before it takes the next request from the connection, so the answer waits
 * until the body is consumed (answering earlier, lws would complete the transaction under the
 * answer and parse the rest of the body as a request). Without Content-Length, lws takes a
 * POST's body to be of unknown length, which cannot be skipped: then the connection is closed
 * behind the answer. */
static int refuse_method(struct lws *wsi, struct http_reply *r) {
    r->code = HTTP_STATUS_METHOD_NOT_ALLOWED;
    add(r, "method not allowed: use GET or HEAD\n");
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        r->await_body = 1;
        return 0;
    }
    r->close_after = 1;
    return respond(wsi, r);
}

int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len) {
    struct session *s = user;
    if (!s) /* a connection that never got as far as a request */
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        struct app *app = lws_context_user(lws_get_context(wsi));
        reply_free(s);
        s->http = calloc(1, sizeof(*s->http));
        if (!s->http)
            return 1;
        struct http_reply *r = s->http;
        r->cap = LWS_PRE + 4096;
        r->buf = malloc(r->cap);
        if (!r->buf)
            return 1;
        r->code = 200;
        r->type = "text/plain; charset=utf-8";
        r->head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
        if (!r->head && lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
            return refuse_method(wsi, r);
        if (route(app, wsi, r, in))
            return 0;
        return respond(wsi, r);
    }
    case LWS_CALLBACK_HTTP_BODY:
        return 0; /* discarded: no endpoint takes a body */
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (s->http && s->http->await_body) {
            s->http->await_body = 0;
            return respond(wsi, s->http);
        }
        break;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        struct http_reply *r = s->http;
        if (!r || r->await_body)
            break;
        int n = r->head ? 0 : lws_write(wsi, r->buf + LWS_PRE, r->len, LWS_WRITE_HTTP_FINAL);
        int close_after = r->close_after;
        reply_free(s);
        if (n < 0 || close_after)
            return -1;
        if (lws_http_transaction_completed(wsi))
            return -1;
        return 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        reply_free(s);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}
