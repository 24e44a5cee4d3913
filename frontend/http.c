/* Health, readiness, metrics and status over plain HTTP (see http.h). */
#include "http.h"

#include "app.h"
#include "fanout.h"
#include "redis_loop.h"
#include "session.h"
#include "util.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http_reply {
    size_t len, cap;
    unsigned char *buf; /* LWS_PRE headroom, then the body */
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

static long rss_kib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * 4;
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
    metric(r, "rrm_resident_memory_kib", "gauge", "Resident memory.", (uint64_t)rss_kib());
    add(r, "# HELP rrm_client_errors_total Error frames sent to clients, by code.\n"
           "# TYPE rrm_client_errors_total counter\n");
    for (size_t i = 0; i < app_error_code_count; i++)
        add(r, "rrm_client_errors_total{code=\"%s\"} %" PRIu64 "\n", app_error_codes[i],
            st->errors[i]);
}

struct status_ctx {
    struct app *app;
    struct http_reply *r;
};

static void status_room(const char *room, size_t members, void *arg) {
    struct status_ctx *c = arg;
    add(c->r, "<tr><td>%s</td><td>%zu</td></tr>\n", room, members);
}

static void status(struct app *app, struct http_reply *r) {
    add(r,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>rrm %s</title></head>"
        "<body><h1>Node %s</h1><p>%ld connections, %zu local rooms, redis %s%s</p>"
        "<table border=\"1\"><tr><th>room</th><th>local devices</th></tr>\n",
        app->node_id, app->node_id, app->connections, fanout_room_count(app->fanout),
        app_redis_ready(app) ? "up" : "down", app->draining ? ", draining" : "");
    struct status_ctx c = {app, r};
    fanout_each_room(app->fanout, status_room, &c);
    add(r, "</table></body></html>\n");
}

static int respond(struct lws *wsi, struct session *s, int code, const char *type) {
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr);
    if (lws_add_http_common_headers(wsi, (unsigned int)code, type, s->http->len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

static void reply_free(struct session *s) {
    if (s->http) {
        free(s->http->buf);
        free(s->http);
        s->http = NULL;
    }
}

int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len) {
    struct session *s = user;
    if (!s) /* a connection that never got as far as a request */
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        struct app *app = lws_context_user(lws_get_context(wsi));
        const char *path = in;
        reply_free(s);
        s->http = calloc(1, sizeof(*s->http));
        if (!s->http)
            return 1;
        s->http->cap = LWS_PRE + 4096;
        s->http->buf = malloc(s->http->cap);
        if (!s->http->buf)
            return 1;
        int code = 200;
        const char *type = "text/plain; charset=utf-8";
        if (strcmp(path, "/healthz") == 0) {
            add(s->http, "ok\n");
        } else if (strcmp(path, "/readyz") == 0) {
            int ready = app_redis_ready(app) && !app->draining;
            code = ready ? 200 : 503;
            add(s->http, "%s\n",
                ready           ? "ready"
                : app->draining ? "draining"
                                : "redis unavailable");
        } else if (strcmp(path, "/metrics") == 0) {
            type = "text/plain; version=0.0.4";
            metrics(app, s->http);
        } else if (strcmp(path, "/status") == 0 || strcmp(path, "/") == 0) {
            type = "text/html; charset=utf-8";
            status(app, s->http);
        } else {
            code = 404;
            add(s->http, "not found\n");
        }
        return respond(wsi, s, code, type);
    }
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (!s->http)
            break;
        int n = lws_write(wsi, s->http->buf + LWS_PRE, s->http->len, LWS_WRITE_HTTP_FINAL);
        reply_free(s);
        if (n < 0)
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
