/* Plain HTTP on both listeners. The public one (RRM_PORT, beside WebSocket) serves /healthz
 * (alive), /readyz (Redis reachable and not draining) and, with RRM_DEMO_PAGE, the browser
 * client at / (pages.h); the admin one (RRM_ADMIN_PORT, app->admin_vh) serves the probes,
 * /metrics (metrics.h), the status page at /status and / (pages.h) with its data at
 * /status.json (status.h), and with RRM_API_KEY the server API under /api/ (api.h: GET and POST,
 * JSON, bodies read here and handed to it). Everything else is 404. GET and HEAD only, but for
 * the server API. The pages go out with their security headers (a Content-Security-Policy of
 * their own inline script and style). Its own lws protocol (HTTP_PROTOCOL_NAME), which a mount
 * of "/" binds every plain HTTP request to, with its own per-connection data; it owns each
 * request's answer. WebSocket upgrades never reach it (lws handles them before mounts; edge.c
 * refuses those on the admin listener). */
#ifndef RRM_HTTP_H
#define RRM_HTTP_H

#include <libwebsockets.h>

/* The '/' keeps it out of reach of WebSocket clients: a subprotocol a client offers is a token,
 * which cannot hold one, so no upgrade can select this protocol (nor edge.c's alias take its
 * name). */
#define HTTP_PROTOCOL_NAME "rrm/http"

/* The protocol's callback and per-connection data size. */
int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);
extern const size_t http_conn_size;

#endif
