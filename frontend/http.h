/* Plain HTTP on both listeners. The public one (RRM_PORT, beside WebSocket) serves /healthz
 * (alive) and /readyz (Redis reachable and not draining) only; the admin one (RRM_ADMIN_PORT,
 * app->admin_vh) serves those and /metrics (metrics.h), /status and / (status.h), and with
 * RRM_API_KEY the server API under /api/ (api.h: GET and POST, JSON, bodies read here and handed
 * to it). Everything else is 404. GET and HEAD only, but for the server API. Its own lws protocol
 * (HTTP_PROTOCOL_NAME), which a mount of "/" binds every plain HTTP request to, with its own
 * per-connection data; it owns each request's answer. WebSocket upgrades never reach it (lws
 * handles them before mounts; edge.c refuses those on the admin listener). */
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
