/* Frontend option table: every RRM_* variable and --flag of rrm-frontend, with defaults. */
#include "options.h"

#include "clientaddr.h"
#include "keys.h"
#include "origin.h"
#include "log.h"
#include "proto.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define OPT_INT(n, f, d, lo, hi, h)                                                                \
    { n, CFG_INT, offsetof(struct fe_options, f), d, lo, hi, h }
#define OPT_STR(n, f, d, minlen, h)                                                                \
    {                                                                                              \
        n, CFG_STR, offsetof(struct fe_options, f), d, minlen,                                     \
            sizeof(((struct fe_options *)0)->f), h                                                 \
    }

const struct cfg_option fe_option_table[] = {
    OPT_INT("port", port, "8765", 1, 65535, "TCP port for WebSocket clients and HTTP probes"),
    OPT_STR("bind", bind, "", 0, "address to listen on (empty: all interfaces)"),
    OPT_INT("admin-port", admin_port, "9765", 0, 65535,
            "TCP port of the admin listener (/metrics, /status, /healthz, /readyz; plain HTTP, no "
            "WebSocket); 0: none"),
    OPT_STR("admin-bind", admin_bind, "", 0,
            "address the admin listener binds (empty: all interfaces)"),
    OPT_STR("allowed-origins", allowed_origins, "*", 1,
            "comma-separated origins (scheme://host[:port]) whose pages may open WebSockets; "
            "other Origin headers get 403; * allows any; requests without Origin are allowed"),
    OPT_INT("demo-page", demo_page, "1", 0, 1,
            "1: the public port serves the browser client at / (HTML and JS from the binary); 0: "
            "404 there"),
    OPT_STR(
        "node-id", node_id, "", 0,
        "this node's id, unique in the cluster (empty: hostname-pid; in Kubernetes the pod name)"),
    OPT_STR("redis-host", redis_host, "127.0.0.1", 1, "Redis host"),
    OPT_INT("redis-port", redis_port, "6379", 1, 65535, "Redis port"),
    OPT_STR("redis-password", redis_password, "", 0, "Redis password (AUTH); empty for none"),
    OPT_INT("redis-cluster", redis_cluster, "0", 0, 1,
            "1: Redis is a Redis Cluster (RRM_REDIS_HOST:PORT and RRM_REDIS_NODES are seeds)"),
    OPT_STR("redis-nodes", redis_nodes, "", 0,
            "Redis Cluster: more seeds, host:port,host:port (empty: none)"),
    OPT_INT("max-frame-bytes", max_frame_bytes, "65536", 64, 16 * 1024 * 1024,
            "largest client message; larger ones close the connection with 1009"),
    OPT_INT("deflate", deflate, "1", 0, 1,
            "1: accept permessage-deflate (RFC 7692) offers, without context takeover; 0: "
            "decline them"),
    OPT_INT("deflate-min-bytes", deflate_min_bytes, "512", 0, 16 * 1024 * 1024,
            "with deflate, messages of at least this many bytes are sent compressed to the "
            "clients that negotiated it (each compressed once per node); smaller ones plain"),
    OPT_INT("max-msgs-per-sec", max_msgs_per_sec, "100", 1, 1000000,
            "messages per second per connection (burst of the same size); above it the node stops "
            "reading the connection until the rate allows the next message"),
    OPT_INT("max-bytes-per-sec", max_bytes_per_sec, "1048576", 64, 1024L * 1024 * 1024,
            "message bytes per second per connection (burst of the same size); above it the node "
            "stops reading the connection until the bytes are paid for"),
    OPT_INT("identify-timeout-ms", identify_timeout_ms, "10000", 100, 600000,
            "time a new connection has to send its identify frame"),
    OPT_INT("redis-hold-ms", redis_hold_ms, "5000", 0, 600000,
            "while Redis is unreachable, how long a client's message waits (reading of that "
            "connection paused) before it is answered unavailable (0: answered at once)"),
    OPT_INT("redis-warn-interval-ms", redis_warn_interval_ms, "30000", 1000, 3600000,
            "while Redis stays unreachable, the warning in the log is repeated at most this "
            "often, with how long it has lasted"),
    OPT_INT("close-timeout-ms", close_timeout_ms, "2000", 100, 5000,
            "after the node sends a close frame, how long it reads and discards what the client "
            "still sends, waiting for its close frame, before it cuts the connection"),
    OPT_INT("handshake-timeout-ms", handshake_timeout_ms, "10000", 100, 600000,
            "time a new TCP connection has to complete its WebSocket handshake or HTTP request"),
    OPT_INT("max-handshakes-per-ip", max_handshakes_per_ip, "0", 0, 1000000,
            "connections one client address may have in their handshake at once; more are "
            "closed at accept (0: no limit)"),
    OPT_STR("trusted-proxies", trusted_proxies, "", 0,
            "proxies whose X-Forwarded-For / X-Real-IP are believed: comma-separated CIDR blocks "
            "or addresses, IPv4 or IPv6 (empty: nobody; the TCP peer is the client)"),
    OPT_INT("max-connections-per-ip", max_connections_per_ip, "1000", 0, 10000000,
            "open WebSocket connections one client address may hold on this node; more upgrades "
            "are refused with 429 (0: no limit)"),
    OPT_INT("handshakes-per-ip-per-sec", handshakes_per_ip_per_sec, "50", 0, 1000000,
            "WebSocket upgrades per second one client address may make on this node, with a "
            "burst of handshakes-per-ip-burst; more are refused with 429 (0: no limit)"),
    OPT_INT("handshakes-per-ip-burst", handshakes_per_ip_burst, "500", 1, 10000000,
            "upgrades one client address may make at once before handshakes-per-ip-per-sec "
            "applies"),
    OPT_INT("max-connections", max_connections, "20000", 1, 10000000,
            "WebSocket connections per node; more are refused with 1013"),
    OPT_INT("send-queue-bytes", send_queue_bytes, "1048576", 1024, 1024L * 1024 * 1024,
            "outbound bytes queued per connection before it is cut off as a slow consumer"),
    OPT_INT("room-grace-ms", room_grace_ms, "300000", 0, 86400000L * 30,
            "how long an empty room is kept (for reconnects) before it is recycled"),
    OPT_INT("device-ttl-ms", device_ttl_ms, "86400000", 1000, 86400000L * 365,
            "how long a device's last room is remembered"),
    OPT_INT("heartbeat-ms", heartbeat_ms, "2000", 100, 60000, "node heartbeat interval"),
    OPT_INT("node-timeout-ms", node_timeout_ms, "10000", 500, 600000,
            "a node silent this long is declared dead and its members removed"),
    OPT_INT("status-interval-ms", status_interval_ms, "60000", 100, 86400000,
            "interval of the status record in the log"),
    OPT_INT("stream-maxlen", stream_maxlen, "9000", 1000, 1000000000,
            "approximate cap of the event streams in entries, all shards together (each shard: "
            "its share, rounded up): the archive's outage buffer"),
    OPT_INT("stream-max-bytes", stream_max_bytes, "805306368", 1024L * 1024, 1L << 40,
            "memory the event streams may take in Redis; stream-maxlen must fit in it with "
            "max-frame-bytes messages"),
    OPT_INT("event-shards", event_shards, "16", 1, KEYS_EVENT_SHARDS_MAX,
            "archive streams rrm:events:{0..N-1}; a room's events go to one of them, chosen by "
            "its id; the archivers' RRM_EVENT_SHARDS must be the same"),
    OPT_INT("query-max-clients", query_max_clients, "100", 1, 10000,
            "most devices a room_info lists (larger rooms: a random sample, total_clients "
            "stays exact)"),
    OPT_INT("history-size", history_size, "1000", 0, 1000000,
            "messages each room keeps in Redis for clients that resume (identify with last_seq); "
            "0: no history"),
    OPT_INT("history-ttl-ms", history_ttl_ms, "600000", 0, 86400000L * 7,
            "a room's history is dropped this long after its last message; 0: no history"),
    OPT_INT("ack-window-ms", ack_window_ms, "120000", 1000, 86400000L,
            "how long a message's ack_id is remembered: a resend with the same ack_id from the "
            "same device within it is answered with the first seq and not relayed again"),
    OPT_INT("drain-timeout-ms", drain_timeout_ms, "10000", 0, 600000,
            "on SIGTERM, how long to wait for clients to be closed and flushed"),
    OPT_INT("coalesce-above", coalesce_above, "60000", 0, 1000000000,
            "deliveries per second on this node above which each client's frames are gathered "
            "for up to coalesce-ms and written together (0: never)"),
    OPT_INT("coalesce-ms", coalesce_ms, "4", 1, 1000,
            "longest a frame waits to be written with others when coalescing"),
    OPT_INT("collect-us", collect_us, "1000", 0, 100000,
            "below coalesce-above, the event loop polls at most once per this many microseconds, "
            "handling more messages per wake-up (0: poll at once)"),
    OPT_STR("tls-cert", tls_cert, "", 0,
            "PEM file with the certificate (and its chain) of the client port; with tls-key, the "
            "port speaks only wss and https"),
    OPT_STR("tls-key", tls_key, "", 0, "PEM file with the private key of tls-cert (not encrypted)"),
    OPT_INT("tls-watch-ms", tls_watch_ms, "10000", 0, 86400000,
            "how often the TLS files are checked; changed files are reloaded, as on SIGHUP (0: "
            "only on SIGHUP)"),
    OPT_STR("log-level", log_level, "info", 1, "debug, info, warn or error"),
    OPT_STR("jwt-secret", jwt_secret, "", 0,
            "HMAC secret of HS256/384/512 tokens; with it or jwt-public-key set, every "
            "connection needs a token (empty: authentication off unless jwt-public-key is set)"),
    OPT_STR("jwt-public-key", jwt_public_key, "", 0,
            "path of a PEM file with the public key(s) of RS256/384/512 and ES256/384/512 "
            "tokens; several keys: any of them verifies (key rotation); re-read on SIGHUP"),
    OPT_INT("jwt-leeway-s", jwt_leeway_s, "30", 0, 3600,
            "clock skew allowed on a token's exp, nbf and iat, in seconds"),
    OPT_STR("api-key", api_key, "", 0,
            "key of the server API on the admin port (/api/...; Authorization: Bearer <key>); "
            "empty: the API is off (404)"),
    OPT_INT("presence-events", presence_events, "0", 0, 1,
            "1: every member of this node receives its room's join and leave events (a client "
            "can opt in or out with \"presence\" in its identify)"),
};

const size_t fe_option_count = sizeof(fe_option_table) / sizeof(fe_option_table[0]);

long fe_stream_shard_maxlen(const struct fe_options *o) {
    long shards = o->event_shards > 0 ? o->event_shards : 1;
    return (o->stream_maxlen + shards - 1) / shards;
}

long long fe_stream_bound_bytes(const struct fe_options *o) {
    long long entry = o->max_frame_bytes + o->max_frame_bytes / 4 + FE_STREAM_ENTRY_OVERHEAD;
    long long node = FE_STREAM_NODE_ENTRIES * entry;
    if (node > FE_STREAM_NODE_BYTES + entry)
        node = FE_STREAM_NODE_BYTES + entry;
    long long shards = o->event_shards > 0 ? o->event_shards : 1;
    return shards * (fe_stream_shard_maxlen(o) * entry + node);
}

int fe_options_check(const struct fe_options *o, char *err, size_t errlen) {
    enum log_level lvl;
    if (log_level_parse(o->log_level, &lvl)) {
        snprintf(err, errlen,
                 "invalid RRM_LOG_LEVEL (--log-level): '%s' is not one of debug, "
                 "info, warn, error",
                 o->log_level);
        return -1;
    }
    if (o->node_id[0] && !proto_valid_id(o->node_id, strlen(o->node_id), 63)) {
        snprintf(err, errlen,
                 "invalid RRM_NODE_ID (--node-id): '%s' may only use A-Z a-z 0-9 _ . "
                 ": @ -",
                 o->node_id);
        return -1;
    }
    if (o->admin_port && o->admin_port == o->port) {
        snprintf(err, errlen,
                 "invalid RRM_ADMIN_PORT (--admin-port): %ld is RRM_PORT; the admin listener needs "
                 "a port of its own (0: none)",
                 o->admin_port);
        return -1;
    }
    if (origins_check(o->allowed_origins, err, errlen) < 0)
        return -1;
    if (o->node_timeout_ms < 2 * o->heartbeat_ms) {
        snprintf(err, errlen,
                 "invalid RRM_NODE_TIMEOUT_MS (--node-timeout-ms): %ld must be at "
                 "least twice RRM_HEARTBEAT_MS (%ld)",
                 o->node_timeout_ms, o->heartbeat_ms);
        return -1;
    }
    if (o->max_bytes_per_sec < o->max_frame_bytes) {
        snprintf(err, errlen,
                 "invalid RRM_MAX_BYTES_PER_SEC (--max-bytes-per-sec): %ld is below "
                 "RRM_MAX_FRAME_BYTES (%ld), so the largest message could never be sent",
                 o->max_bytes_per_sec, o->max_frame_bytes);
        return -1;
    }
    char why[160];
    struct clientaddr_trust *trust = clientaddr_trust_parse(o->trusted_proxies, why, sizeof(why));
    if (!trust) {
        snprintf(err, errlen, "invalid RRM_TRUSTED_PROXIES (--trusted-proxies): %s", why);
        return -1;
    }
    clientaddr_trust_free(trust);
    if (!o->tls_cert[0] != !o->tls_key[0]) {
        snprintf(err, errlen, "invalid %s: set both RRM_TLS_CERT and RRM_TLS_KEY, or neither",
                 o->tls_cert[0] ? "RRM_TLS_CERT (--tls-cert) without RRM_TLS_KEY"
                                : "RRM_TLS_KEY (--tls-key) without RRM_TLS_CERT");
        return -1;
    }
    if (fe_stream_bound_bytes(o) > o->stream_max_bytes) {
        snprintf(err, errlen,
                 "invalid RRM_STREAM_MAXLEN (--stream-maxlen): %ld entries in %ld shards "
                 "(RRM_EVENT_SHARDS, each with one stream node of slack) with messages of "
                 "RRM_MAX_FRAME_BYTES (%ld) may take %lld bytes, more than RRM_STREAM_MAX_BYTES "
                 "(%ld); lower one of the first three or raise the last",
                 o->stream_maxlen, o->event_shards, o->max_frame_bytes, fe_stream_bound_bytes(o),
                 o->stream_max_bytes);
        return -1;
    }
    return 0;
}
