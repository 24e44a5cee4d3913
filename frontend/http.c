/* Plain HTTP on the public and admin listeners: methods, routing and the answer (see http.h). */
#include "http.h"

#include "api.h"
#include "app.h"
#include "metrics.h"
#include "edge.h"
#include "pages.h"
#include "status.h"
#include "textbuf.h"

#include <stdlib.h>
#include <string.h>

struct http_reply {
    struct textbuf body;
    int code;
    const char *type;
    int head;        /* HEAD: the headers announce the body, which is not sent */
    int await_body;  /* refused request whose body lws is still reading: answered once consumed */
    int close_after; /* the connection ends with this answer (a body of unknown length follows) */
    struct status_wait status; /* a /status.json answer waiting for Redis */
    struct api_call api;       /* a server API request (api.h) */
    const char *allow;         /* 405: the methods allowed ("GET, HEAD" when NULL) */
    const char *csp;           /* an HTML page's Content-Security-Policy (NULL: not a page) */
    struct lws *wsi;
};

static int add_header(struct lws *wsi, enum lws_token_indexes t, const char *v, unsigned char **p,
                      unsigned char *end) {
    return lws_add_http_header_by_token(wsi, t, (const unsigned char *)v, (int)strlen(v), p, end);
}

static int add_named(struct lws *wsi, const char *name, const char *v, unsigned char **p,
                     unsigned char *end) {
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v,
                                       (int)strlen(v), p, end);
}

/* The headers of a page (r->csp): what it may load and where it may connect (nothing but itself,
 * its inline script and style, and WebSockets to its own origin), never framed, never sniffed
 * (every answer), no referrer. */
static int security_headers(struct lws *wsi, const struct http_reply *r, unsigned char **p,
                            unsigned char *end) {
    return add_named(wsi, "x-content-type-options:", "nosniff", p, end) ||
           (r->csp && (add_named(wsi, "content-security-policy:", r->csp, p, end) ||
                       add_named(wsi, "x-frame-options:", "DENY", p, end) ||
                       add_named(wsi, "referrer-policy:", "no-referrer", p, end)));
}

/* The pages' policy: inline script and style only (the pages load nothing), fetches and
 * WebSockets to the page's own origin only ('self' covers ws: and wss: of the same host and
 * port). */
#define PAGE_CSP                                                                                   \
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "                  \
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "              \
    "frame-ancestors 'none'"

/* Writes the status line and headers of r now; the body follows from the writeable callback. */
static int respond(struct lws *wsi, struct http_reply *r) {
    unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr);
    if (lws_add_http_common_headers(wsi, (unsigned int)r->code, r->type, r->body.len, &p, end) ||
        add_header(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, "no-store", &p, end) ||
        security_headers(wsi, r, &p, end) ||
        (r->code == HTTP_STATUS_METHOD_NOT_ALLOWED &&
         add_header(wsi, WSI_TOKEN_HTTP_ALLOW, r->allow ? r->allow : "GET, HEAD", &p, end)) ||
        (r->code == HTTP_STATUS_UNAUTHORIZED &&
         add_header(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE, "Bearer", &p, end)) ||
        (r->close_after && add_header(wsi, WSI_TOKEN_CONNECTION, "close", &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

/* The /status.json answer is complete. */
static void status_done(struct status_wait *w) {
    struct http_reply *r = lws_container_of(w, struct http_reply, status);
    r->type = "application/json";
    if (respond(r->wsi, r))
        lws_set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* A server API answer is complete. */
static void api_done(struct api_call *c) {
    struct http_reply *r = lws_container_of(c, struct http_reply, api);
    r->code = c->code;
    if (respond(r->wsi, r))
        lws_set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* The per-connection data of the HTTP protocol: the answer being built or written. */
struct http_conn {
    struct http_reply *reply;
};

static void reply_free(struct http_conn *h) {
    if (h->reply) {
        status_cancel(&h->reply->status);
        api_cancel(&h->reply->api);
        textbuf_free(&h->reply->body);
        free(h->reply);
        h->reply = NULL;
    }
}

static int answer_healthz(struct app *app, struct lws *wsi, struct http_reply *r) {
    (void)app;
    (void)wsi;
    textbuf_add(&r->body, "ok\n");
    return 0;
}

static int answer_readyz(struct app *app, struct lws *wsi, struct http_reply *r) {
    (void)wsi;
    int ready = app_redis_ready(app) && !app->draining;
    r->code = ready ? 200 : 503;
    textbuf_add(&r->body, "%s\n",
                ready           ? "ready"
                : app->draining ? "draining"
                                : "redis unavailable");
    return 0;
}

static int answer_metrics(struct app *app, struct lws *wsi, struct http_reply *r) {
    (void)wsi;
    r->type = "text/plain; version=0.0.4";
    metrics_write(app, &r->body);
    return 0;
}

/* A page from the binary: the status page (admin) or the browser client (public). */
static void answer_page(struct http_reply *r, const unsigned char *page, size_t len) {
    r->type = "text/html; charset=utf-8";
    r->csp = PAGE_CSP;
    textbuf_add(&r->body, "%.*s", (int)len, (const char *)page);
}

static int answer_status(struct app *app, struct lws *wsi, struct http_reply *r) {
    (void)app;
    (void)wsi;
    answer_page(r, page_status, page_status_len);
    return 0;
}

static int answer_client(struct app *app, struct lws *wsi, struct http_reply *r) {
    (void)wsi;
    if (!app->opt.demo_page) {
        r->code = 404;
        textbuf_add(&r->body, "not found\n");
        return 0;
    }
    answer_page(r, page_client, page_client_len);
    return 0;
}

/* Query argument name ("q=") of the request into buf (cap bytes; longer: cut); "" if absent. */
static void query_arg(struct lws *wsi, const char *name, char *buf, int cap) {
    const char *v = lws_get_urlarg_by_name(wsi, name, buf, cap); /* into buf, after "name" */
    if (!v)
        buf[0] = '\0';
    else
        memmove(buf, v, strlen(v) + 1);
}

static int answer_status_json(struct app *app, struct lws *wsi, struct http_reply *r) {
    struct status_query q = {.page = 1, .per_page = STATUS_PER_PAGE_DEFAULT};
    char num[24];
    query_arg(wsi, "q=", q.q, (int)sizeof(q.q));
    query_arg(wsi, "page=", num, (int)sizeof(num));
    if (num[0])
        q.page = strtol(num, NULL, 10);
    query_arg(wsi, "per_page=", num, (int)sizeof(num));
    if (num[0])
        q.per_page = strtol(num, NULL, 10);
    r->wsi = wsi;
    if (status_request(app->status, &r->status, &q, &r->body, status_done))
        return 1; /* answered from status_done */
    r->type = "application/json";
    return 0;
}

/* Where each endpoint is served: the public listener (WebSocket clients, probes) or the admin
 * listener (operators, Prometheus). A path not served on a listener is 404 there, like any
 * unknown path, so the public port gives no hint of the admin endpoints. */
enum { ON_PUBLIC = 1, ON_ADMIN = 2 };

static const struct endpoint {
    const char *path;
    unsigned on;
    /* Builds the answer into r: 0 if it is complete, 1 if it is written later. */
    int (*answer)(struct app *app, struct lws *wsi, struct http_reply *r);
} endpoints[] = {
    {"/healthz", ON_PUBLIC | ON_ADMIN, answer_healthz},
    {"/readyz", ON_PUBLIC | ON_ADMIN, answer_readyz},
    {"/metrics", ON_ADMIN, answer_metrics},
    {"/status", ON_ADMIN, answer_status},
    {"/", ON_ADMIN, answer_status},
    {"/status.json", ON_ADMIN, answer_status_json},
    {"/", ON_PUBLIC, answer_client},
};

/* Builds the answer to a GET or HEAD into r, by the listener the request came on. Returns 1 if
 * it is written later (/status waits for Redis), 0 if r is complete. */
static int route(struct app *app, struct lws *wsi, struct http_reply *r) {
    char path[64];
    if (lws_hdr_copy(wsi, path, sizeof(path), r->head ? WSI_TOKEN_HEAD_URI : WSI_TOKEN_GET_URI) < 0)
        path[0] = '\0'; /* longer than any endpoint */
    unsigned here = lws_get_vhost(wsi) == app->admin_vh ? ON_ADMIN : ON_PUBLIC;
    for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++)
        if ((endpoints[i].on & here) && strcmp(path, endpoints[i].path) == 0)
            return endpoints[i].answer(app, wsi, r);
    r->code = 404;
    textbuf_add(&r->body, "not found\n");
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
    textbuf_add(&r->body, "method not allowed: use GET or HEAD\n");
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        r->await_body = 1;
        return 0;
    }
    r->close_after = 1;
    return respond(wsi, r);
}

/* The request's method, and its path (without the query) into path; NULL for a method lws does
 * not name. */
static const char *method_path(struct lws *wsi, char *path, int cap) {
    static const struct {
        enum lws_token_indexes t;
        const char *name;
    } methods[] = {
        {WSI_TOKEN_GET_URI, "GET"},         {WSI_TOKEN_POST_URI, "POST"},
        {WSI_TOKEN_HEAD_URI, "HEAD"},       {WSI_TOKEN_PUT_URI, "PUT"},
        {WSI_TOKEN_DELETE_URI, "DELETE"},   {WSI_TOKEN_PATCH_URI, "PATCH"},
        {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (lws_hdr_total_length(wsi, methods[i].t) > 0) {
            if (lws_hdr_copy(wsi, path, cap, methods[i].t) < 0)
                path[0] = '\0';
            return methods[i].name;
        }
    return NULL;
}

/* After api_begin or api_body_done: writes the answer when it is built (once the request's body
 * is read), reads the body, or waits. */
static int api_step(struct lws *wsi, struct http_reply *r, enum api_step step, int body_pending) {
    r->close_after = r->api.close_after;
    r->allow = r->api.allow;
    r->code = r->api.code;
    if (step == API_WAIT || step == API_READ_BODY)
        return 0;
    if (body_pending && !r->close_after) {
        r->await_body = 1;
        return 0;
    }
    return respond(wsi, r);
}

/* A request under /api/ on the admin listener with the API on: api.c answers it. */
static int api_request(struct app *app, struct lws *wsi, struct http_reply *r) {
    char path[256];
    const char *method = method_path(wsi, path, sizeof(path));
    if (!method || lws_get_vhost(wsi) != app->admin_vh || !api_path(path))
        return -1;
    r->wsi = wsi;
    r->head = 0;
    int body = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
    if (!api_enabled(app)) { /* no API: 404, like any unknown path, whatever the method */
        r->code = 404;
        textbuf_add(&r->body, "not found\n");
        r->close_after = !body && strcmp(method, "POST") == 0;
        r->await_body = body;
        return body ? 0 : respond(wsi, r);
    }
    r->type = "application/json";
    enum api_step step = api_begin(app, &r->api, wsi, method, path, &r->body, api_done);
    return api_step(wsi, r, step, step != API_READ_BODY && body);
}

const size_t http_conn_size = sizeof(struct http_conn);

int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len) {
    struct http_conn *h = user;
    int rc;
    if (edge_callback(wsi, reason, in, len, &rc))
        return rc;
    if (!h) /* not bound to a request */
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        struct app *app = lws_context_user(lws_get_context(wsi));
        reply_free(h);
        h->reply = calloc(1, sizeof(*h->reply));
        if (!h->reply)
            return 1;
        struct http_reply *r = h->reply;
        if (textbuf_init(&r->body, 4096))
            return 1;
        r->code = 200;
        r->type = "text/plain; charset=utf-8";
        if ((rc = api_request(app, wsi, r)) >= 0)
            return rc;
        r->head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
        if (!r->head && lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
            return refuse_method(wsi, r);
        if (route(app, wsi, r))
            return 0;
        return respond(wsi, r);
    }
    case LWS_CALLBACK_HTTP_BODY:
        if (h->reply && h->reply->api.reading)
            api_body(&h->reply->api, in, len);
        return 0; /* else discarded: no other endpoint takes a body */
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (h->reply && h->reply->api.reading)
            return api_step(wsi, h->reply, api_body_done(&h->reply->api), 0);
        if (h->reply && h->reply->await_body) {
            h->reply->await_body = 0;
            return respond(wsi, h->reply);
        }
        break;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        struct http_reply *r = h->reply;
        if (!r || r->await_body)
            break;
        int n =
            r->head ? 0 : lws_write(wsi, textbuf_text(&r->body), r->body.len, LWS_WRITE_HTTP_FINAL);
        int close_after = r->close_after;
        reply_free(h);
        if (n < 0 || close_after)
            return -1;
        if (lws_http_transaction_completed(wsi))
            return -1;
        return 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        reply_free(h);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}
