/* Plain HTTP on the WebSocket port: /healthz (alive), /readyz (Redis reachable and not
 * draining), /metrics (Prometheus text), /status (an HTML page of this node's rooms, then every
 * node of the cluster with its rooms and devices, read from Redis when asked). */
#ifndef RRM_HTTP_H
#define RRM_HTTP_H

#include <libwebsockets.h>

/* Handles the HTTP callbacks of the "rrm" protocol; everything else goes to lws's default. */
int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);

#endif
