/*
 * fe_harness.h - shared fixture for the rrm-frontend integration tests (test_fe_*.c).
 *
 * This module owns one test cluster (struct fe_cluster): a throw-away redis-server, N rrm-frontend
 * processes (node-a, node-b, ...) on free ports with their log files in a private temp dir, and
 * the WebSocket clients a test registers with it (closed when the cluster stops, also after a
 * failed assertion). It also offers the small protocol helpers every test needs: joining a room,
 * expecting a frame of a given type, waiting for a close, reading /metrics counters (from each
 * node's admin port) and decoding the archive stream.
 *
 * Nothing here sleeps for a fixed time: every wait is a deadline loop over a condition (a frame,
 * an HTTP status, a counter). Functions returning int return 0 (or a documented value) on success
 * and a negative value on failure; failures print their reason to stderr.
 */
#ifndef RRM_FE_HARNESS_H
#define RRM_FE_HARNESS_H

#include "event.h"
#include "redis_server.h"
#include "wsclient.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct redis_cluster;

#define FE_MAX_NODES 4
/* Capacity of a room id buffer (PROTO_MAX_ROOM_ID + NUL). */
#define FE_ROOM_CAP 65
/* Default wait for an answer from the server (generous for sanitizer builds). */
#define FE_TIMEOUT_MS 8000

struct fe_cluster;

/*
 * Start a redis-server and `nodes` frontends ($RRM_FRONTEND_BIN). Every node gets RRM_PORT,
 * RRM_ADMIN_PORT (a free port of its own unless env_extra sets it), RRM_REDIS_HOST/PORT,
 * RRM_NODE_ID (node-a, node-b, ...), RRM_HEARTBEAT_MS=200, RRM_NODE_TIMEOUT_MS=1500,
 * RRM_STATUS_INTERVAL_MS=2000 and RRM_LOG_LEVEL=info, then env_extra
 * ("K=V" strings, NULL terminated, may be NULL) which override those. Waits until every node's
 * /readyz answers 200 (10 s each). Returns the cluster (caller stops it with fe_cluster_stop) or
 * NULL, after printing the logs of what failed.
 */
struct fe_cluster *fe_cluster_start(int nodes, const char *const env_extra[]);

/*
 * fe_cluster_start for nodes that speak TLS on their port (env_extra sets RRM_TLS_CERT and
 * RRM_TLS_KEY): readiness is asked over https, the certificate verified against ca_file (NULL:
 * plain, as fe_cluster_start) for 127.0.0.1. The helpers that connect with ws:// or http://
 * (fe_join, fe_connect, fe_wait_ready) do not work on such nodes: use wsc_connect_tls. The admin
 * port stays plain HTTP: fe_metric(fe_admin_port(...)) works as for any node.
 */
struct fe_cluster *fe_cluster_start_tls(int nodes, const char *const env_extra[],
                                        const char *ca_file);

/*
 * fe_cluster_start on a redis-server the caller started and keeps (borrowed: fe_cluster_stop does
 * not stop it), e.g. one with an append-only file that the test restarts, or the archiver
 * harness's (ah_redis_server), so that frontends and archivers share it.
 */
struct fe_cluster *fe_cluster_start_on(struct redis_server *redis, int nodes,
                                       const char *const env_extra[]);

/*
 * Restarting a node. A stopped node (fe_node_stop, or fe_node_exited said it ended) is started
 * again as the same node: same RRM_NODE_ID, port, admin port, log file (appended to) and env.
 * fe_node_respawn only starts the process (0, -EBUSY if it still runs, or negative) so that a
 * caller can keep driving clients meanwhile and poll fe_node_ready; fe_node_restart also waits up
 * to 10 s for /readyz 200 (0, or negative after printing the log).
 */
int fe_node_respawn(struct fe_cluster *c, int node);
int fe_node_restart(struct fe_cluster *c, int node);

/* One GET /readyz on the node's port: 1 if it answered 200, 0 otherwise (or if not running). */
int fe_node_ready(const struct fe_cluster *c, int node);

/*
 * Non-blocking: 1 if the node's process has ended (it is reaped, its exit status like
 * fe_node_stop's goes to *code if not NULL, and fe_node_pid becomes 0), 0 if it still runs,
 * -ESRCH if it was not running.
 */
int fe_node_exited(struct fe_cluster *c, int node, int *code);

/*
 * Close every registered client, SIGTERM every node still running and free the cluster (NULL
 * is allowed). Returns 0 if every node stopped here exited with status 0; otherwise -1, after
 * dumping the tail of the offending node's log (a crash or a sanitizer report shows there).
 * With RRM_TEST_LOGS=1 in the environment every node's log tail is printed (to investigate a
 * failed assertion); the temp dir is removed either way.
 */
int fe_cluster_stop(struct fe_cluster *c);

int fe_nodes(const struct fe_cluster *c);
int fe_port(const struct fe_cluster *c, int node);
/* The node's admin port (/metrics, /status), or 0 if it was started without one. */
int fe_admin_port(const struct fe_cluster *c, int node);
const char *fe_node_id(const struct fe_cluster *c, int node);
/* Process id of the node, or 0 once it has been stopped. */
pid_t fe_node_pid(const struct fe_cluster *c, int node);
struct redis_server *fe_redis(const struct fe_cluster *c);

/* New blocking hiredis client for assertions (caller frees with redisFree), or NULL. */
redisContext *fe_redis_client(const struct fe_cluster *c);

/*
 * Send sig to the node and wait up to timeout_ms for it to exit (SIGKILL after that). Returns
 * the exit status (0..255), 128 + signal if it was killed by a signal, or negative on error.
 * The node is not stopped again by fe_cluster_stop. A non-zero result dumps the log tail unless
 * sig is SIGKILL.
 */
int fe_node_stop(struct fe_cluster *c, int node, int sig, int timeout_ms);

/* Send sig to the node without waiting (pair with fe_node_wait). 0 or negative errno. */
int fe_node_signal(struct fe_cluster *c, int node, int sig);

/*
 * Wait up to timeout_ms for a signalled node to exit (SIGKILL after that). Returns the exit
 * status like fe_node_stop, and dumps the log tail if it is not 0.
 */
int fe_node_wait(struct fe_cluster *c, int node, int timeout_ms);

/* Path of the node's log file (its stdout and stderr; owned by the cluster), or NULL. */
const char *fe_log_path(const struct fe_cluster *c, int node);

/* Print the tail of the node's log to stderr. */
void fe_dump_log(const struct fe_cluster *c, int node);

/* A short pause between two polls of a condition inside a caller's deadline loop. */
void fe_poll_pause(void);

/* Poll GET /readyz on port until it answers want_status, within timeout_ms. 0 or -ETIMEDOUT. */
int fe_wait_ready(int port, int want_status, int timeout_ms);

/*
 * Value of one Prometheus series from GET /metrics on port (a node's fe_admin_port), e.g.
 * "rrm_open_connections" or "rrm_client_errors_total{code=\"invalid_json\"}" (exact name with
 * labels). Returns the value
 * (>= 0) or -1 if the request failed or the series is missing.
 */
long long fe_metric(int port, const char *series);

/* fe_metric of rrm_client_errors_total{code="<code>"}. */
long long fe_error_count(int port, const char *code);

/* Poll fe_metric until it is >= min, within timeout_ms. Returns the last value, or -1. */
long long fe_wait_metric(int port, const char *series, long long min, int timeout_ms);

/* Wall clock in milliseconds since the epoch (what the server puts in "ts"). */
int64_t fe_wall_ms(void);

/*
 * Connect to ws://127.0.0.1:port/, send the identify frame (identity and room omitted when
 * NULL) and receive the "connection" and "room" answers. The room id is copied to room_out
 * (FE_ROOM_CAP bytes, may be NULL). Returns the connection (caller closes with wsc_close) or
 * NULL, after printing what went wrong.
 */
struct wsc *client_join(int port, const char *device, const char *identity, const char *room,
                        char *room_out);

/*
 * Like client_join with an arbitrary identify object (borrowed). If conn_frame / room_frame are
 * not NULL they receive the two answers (new references; caller json_decref's).
 */
struct wsc *client_join_ex(int port, json_t *identify, json_t **conn_frame, json_t **room_frame);

/* client_join on the cluster's node, registered with the cluster (see fe_track). */
struct wsc *fe_join(struct fe_cluster *c, int node, const char *device, const char *identity,
                    const char *room, char *room_out);

/* Plain WebSocket connection to the node, registered with the cluster; NULL on failure. */
struct wsc *fe_connect(struct fe_cluster *c, int node);

/* Register ws so that fe_cluster_stop / fe_close_all close it. Returns ws (NULL passes). */
struct wsc *fe_track(struct fe_cluster *c, struct wsc *ws);

/* Close and unregister one client (NULL is allowed). */
void fe_close(struct fe_cluster *c, struct wsc *ws);

/* Close and unregister every client. */
void fe_close_all(struct fe_cluster *c);

/* ---- assertions shared by the frontend tests (cmocka: a failed check fails the test) ---- */

/* The string member key of o, or NULL. */
const char *fe_str(json_t *o, const char *key);

/* Sends {"type":"text","content":content}. */
void fe_send_text(struct wsc *ws, const char *content);

/* The next frame must be a relay of the given type from `from` in `room` (NULL: any room), with
 * the server's ts and a positive seq; returns it (caller json_decref's). */
json_t *fe_expect_relay(struct wsc *ws, const char *type, const char *from, const char *room);

/* The next frame must be the relayed text `content` from `from` in `room` (NULL: any room). */
void fe_expect_text(struct wsc *ws, const char *from, const char *room, const char *content);

/* The next frame must be binary, byte for byte data. */
void fe_expect_binary(struct wsc *ws, const void *data, size_t len);

/* cmocka teardown: stops the cluster in *state; fails unless every node exited with status 0. */
int fe_teardown(void **state);

/* Dump obj compactly and send it as one text frame; takes the reference to obj. */
int fe_send_json(struct wsc *ws, json_t *obj);

/*
 * Receive the next message, which must be a text JSON object of the given "type". Returns it
 * (caller json_decref's), or NULL after printing what arrived instead (or the error).
 */
json_t *fe_expect_type(struct wsc *ws, const char *type, int timeout_ms);

/* The next frame must be the room frame that tells a connected member its room restarted under
 * a new epoch (Redis lost it): action "restored" for room, "recovered": false, a 16-hex epoch. */
void fe_expect_restored(struct wsc *ws, const char *room);

/*
 * Receive the next message, which must be an error frame with the given code. Returns 0, or -1
 * after printing what arrived instead.
 */
int fe_expect_error(struct wsc *ws, const char *code, int timeout_ms);

/*
 * Wait for the end of the connection, discarding data. Returns the close code (see
 * wsc_wait_closed: 1006 if TCP ended without a close frame) or a negative errno value.
 */
int fe_wait_close(struct wsc *ws, int timeout_ms);

/*
 * Receive the next message and check that it is a close frame (nothing before it). Returns its
 * code, or -1 after printing what arrived instead.
 */
int fe_expect_close(struct wsc *ws, int timeout_ms);

/* Send {"type":"query_room"} and wait for the room_info answer (skipping nothing: the next
 * frame must be it). Returns it (caller json_decref's) or NULL. */
json_t *fe_query_room(struct wsc *ws, int timeout_ms);

/* 1 if the JSON array `clients` of a room_info holds an entry with this device_id. */
int fe_has_client(json_t *room_info, const char *device);

/* Every entry of the archive streams rrm:events:{N}, decoded with event_decode, ordered by entry
 * id (the Redis clock), entries of equal ids by shard; within a shard, stream order. */
struct fe_events {
    redisReply **replies; /* one XRANGE reply per shard stream; the events borrow its strings */
    size_t nreplies;
    size_t n;             /* number of entries */
    struct rrm_event *ev; /* n decoded events (zeroed where decoding failed) */
    int *ok;              /* n flags: 1 if event_decode succeeded */
    unsigned *shard;      /* n shards: the N of the stream each entry is in */
    const char **id;      /* n entry ids */
    size_t decode_errors; /* entries event_decode rejected (their reasons were printed) */
};

/* Load and decode the streams. Returns 0 or -1. Free with fe_events_free. */
int fe_events_load(struct fe_cluster *c, struct fe_events *out);
void fe_events_free(struct fe_events *e);

/* 1 if the borrowed event string equals the C string s. */
int fe_str_eq(struct event_str a, const char *s);

/* RRM_EVENT_SHARDS of the frontends the harness starts, unless a test sets it. */
#define FE_EVENT_SHARDS 16

/* The Redis key of room's suffix ("" for the room's hash, ":members", ":history", ...) with
 * FE_EVENT_SHARDS shards (keys.h), in one of 8 static buffers used in turn. */
const char *fe_room_key(const char *room, const char *suffix);

/* The Redis the harness runs, chosen by the environment: RRM_TEST_REDIS_MODE unset, one
 * redis-server; "slotted", a one-node Redis Cluster holding every slot (redis_server.h), the
 * frontends in cluster mode; "cluster", a Redis Cluster of 3 masters and 3 replicas
 * (redis_cluster.h), the frontends in cluster mode with every node as a seed. In cluster mode
 * fe_redis and fe_redis_client return NULL (a test of one Redis skips there) and
 * fe_redis_cluster the cluster. 1 if the mode is mode. */
int fe_redis_mode_is(const char *mode);
struct redis_cluster *fe_redis_cluster(const struct fe_cluster *c);

/* A client (caller frees) of the Redis that holds key's slot: the one Redis, or that slot's
 * master now; NULL on error. For commands without keys about that Redis (INFO, CLIENT ...). */
redisContext *fe_redis_client_for(struct fe_cluster *c, const char *key);

/* FLUSHALL on the Redis, or on every master of the cluster. 0 or -1. */
int fe_redis_flushall(struct fe_cluster *c);

/* A command (redisCommand's format) on the Redis that holds its first argument's slot (for
 * PUBSUB SHARDNUMSUB, the channel's), following a moving or failing-over slot for up to
 * FE_TIMEOUT_MS. Returns the reply (caller frees) or NULL. */
redisReply *fe_redis_command(struct fe_cluster *c, const char *fmt, ...);

/* Number of keys matching EXISTS key (0 or 1), or -1 on error. */
int fe_redis_exists(struct fe_cluster *c, const char *key);

#endif /* RRM_FE_HARNESS_H */
