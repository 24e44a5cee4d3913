/* The node's edge: what a TCP connection must get through before it is a session or an HTTP
 * request. It owns the handshake deadline (RRM_HANDSHAKE_TIMEOUT_MS) and the per-address count
 * of connections still in their handshake (RRM_MAX_HANDSHAKES_PER_IP), the handshake checks that
 * libwebsockets 4.1 leaves to the application (Sec-WebSocket-Version, Upgrade, Sec-WebSocket-Key,
 * subprotocols it does not know), the Origin check (RRM_ALLOWED_ORIGINS), the refusal of
 * upgrades on the admin listener, the client's address behind trusted proxies
 * (RRM_TRUSTED_PROXIES) and the limits per client address on open connections and upgrades
 * (RRM_MAX_CONNECTIONS_PER_IP, RRM_HANDSHAKES_PER_IP_PER_SEC), and the validity of a client's
 * close frame. */
#ifndef RRM_EDGE_H
#define RRM_EDGE_H

#include <libwebsockets.h>
#include <stddef.h>

struct app;
struct edge;

/* Most header buffers (one per connection in its HTTP handshake) alive at once; see main.c. */
#define EDGE_HEADER_POOL 256

/* lws 4.1 drops the TCP connection of a client that offers only subprotocols it does not know;
 * RFC 6455 wants such a client accepted with none selected. So the listening vhost has the
 * "rrm" protocol a second time, under the name this returns (borrowed, valid until
 * edge_destroy): before lws reads a list without "rrm", the edge renames that entry to the
 * first name offered, and then takes the Sec-WebSocket-Protocol line lws writes for it out of
 * the 101. */
const char *edge_subprotocol_alias(const struct edge *e);

/* The edge of app (its options and counters). Returns NULL when out of memory. */
struct edge *edge_create(struct app *app);
/* Before lws_context_destroy(): stops the edge's timer, which lives in the context's timer
 * list. */
void edge_stop(struct edge *e);
/* After lws_context_destroy(), which reports every connection's end. */
void edge_destroy(struct edge *e);

/* A WebSocket connection is established (the session calls it from LWS_CALLBACK_ESTABLISHED,
 * which edge_callback leaves alone): ends its handshake and writes the client's address (behind
 * trusted proxies, the real one) to client (cap bytes). Returns 1 if the connection is counted
 * against its address's limit: the session then calls edge_connection_closed(e, client) when it
 * ends; 0 if not. */
int edge_established(struct edge *e, struct lws *wsi, char *client, size_t cap);

/* A connection that edge_established counted has ended. */
void edge_connection_closed(struct edge *e, const char *client);

struct addrlimit_usage;
/* The (at most n) client addresses with the most open connections on this node, most first;
 * returns how many, or -1 when the per-address limits are off (nothing is counted then). */
long edge_top_clients(const struct edge *e, struct addrlimit_usage *out, size_t n);

/* Called first by the "rrm" protocol callback for every reason. Returns 1 with *rc set when the
 * edge consumed the callback (the protocol callback returns *rc), 0 to let it go on. */
int edge_callback(struct lws *wsi, enum lws_callback_reasons reason, void *in, size_t len, int *rc);

/* Pure checks, exposed for the unit tests. */

/* Whether a close frame's payload (len bytes) is one RFC 6455 allows: empty, or a status code
 * that may be sent (1000-1003, 1007-1014, 3000-4999) followed by a reason. */
int edge_close_payload_valid(const unsigned char *p, size_t len);
/* Whether the comma-separated header value list names token (ignoring case if nocase). */
int edge_list_has(const char *list, const char *token, int nocase);

#endif
