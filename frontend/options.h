/* The frontend's configuration: one typed struct, one option table (defaults live there). */
#ifndef RRM_OPTIONS_H
#define RRM_OPTIONS_H

#include "config.h"

struct fe_options {
    long port;
    char bind[64];
    long admin_port;
    char admin_bind[64];
    char allowed_origins[2048];
    long demo_page;
    char node_id[64];
    char redis_host[256];
    long redis_port;
    char redis_password[256];
    long redis_cluster;
    char redis_nodes[2048];
    long max_frame_bytes;
    long deflate;
    long deflate_min_bytes;
    long max_msgs_per_sec;
    long max_bytes_per_sec;
    long identify_timeout_ms;
    long redis_hold_ms;
    long redis_warn_interval_ms;
    long close_timeout_ms;
    long handshake_timeout_ms;
    long max_handshakes_per_ip;
    char trusted_proxies[2048];
    long max_connections_per_ip;
    long handshakes_per_ip_per_sec;
    long handshakes_per_ip_burst;
    long max_connections;
    long send_queue_bytes;
    long room_grace_ms;
    long device_ttl_ms;
    long heartbeat_ms;
    long node_timeout_ms;
    long status_interval_ms;
    long stream_maxlen;
    long stream_max_bytes;
    long event_shards;
    long query_max_clients;
    long history_size;
    long history_ttl_ms;
    long ack_window_ms;
    long drain_timeout_ms;
    long coalesce_above;
    long coalesce_ms;
    long collect_us;
    char tls_cert[1024];
    char tls_key[1024];
    long tls_watch_ms;
    char log_level[16];
    char jwt_secret[1024];
    char jwt_public_key[1024];
    long jwt_leeway_s;
    char api_key[256];
    long presence_events;
};

/* Bounds of the archive streams rrm:events:{N} in bytes. An event takes at most one client message
 * plus a quarter (Redis's allocator rounds a large block up to its size class, by less than a
 * quarter) plus FE_STREAM_ENTRY_OVERHEAD (field names, ids, identity, the stream's index). Each of
 * the event-shards streams is capped at fe_stream_shard_maxlen entries. Approximate trimming
 * (XADD MAXLEN ~) removes whole stream nodes, so one node more than the cap may remain per
 * stream: at most FE_STREAM_NODE_ENTRIES entries (stream-node-max-entries) and, as Redis starts a
 * new node before one would pass FE_STREAM_NODE_BYTES (stream-node-max-bytes), at most that many
 * bytes plus one entry: whichever is less. */
#define FE_STREAM_ENTRY_OVERHEAD 1024
#define FE_STREAM_NODE_ENTRIES 100
#define FE_STREAM_NODE_BYTES 4096

/* The cap of each shard's stream: stream-maxlen / event-shards, rounded up. */
long fe_stream_shard_maxlen(const struct fe_options *o);

/* The most bytes the archive streams can hold with these options: the bound fe_options_check
 * keeps below stream-max-bytes. */
long long fe_stream_bound_bytes(const struct fe_options *o);

extern const struct cfg_option fe_option_table[];
extern const size_t fe_option_count;

/* Checks what single options cannot (relations between options, the log level). Returns 0 or -1
 * with a one-line message naming the variable. */
int fe_options_check(const struct fe_options *o, char *err, size_t errlen);

#endif
