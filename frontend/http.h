/* Plain HTTP on the WebSocket port: /healthz (alive), /readyz (Redis reachable and not
 * draining), /metrics (metrics.h), /status and / (status.h). GET and HEAD only. Owns each
 * request's answer (struct http_reply, hung on the connection's session). */
#ifndef RRM_HTTP_H
#define RRM_HTTP_H

#include <libwebsockets.h>

/* Handles the HTTP callbacks of the "rrm" protocol; everything else goes to lws's default. */
int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);

#endif
