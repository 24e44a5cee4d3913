/* The frontend's application context: everything one process owns, passed to every module.
 * There is exactly one per process; nothing else is global except the signal flag in main.c. */
#ifndef RRM_APP_H
#define RRM_APP_H

#include "auth.h"
#include "log.h"
#include "options.h"
#include "scripts.h"

#include <libwebsockets.h>
#include <stdint.h>

struct rl;
struct router;
struct fanout;
struct sessions;
struct node;
struct outq;
struct status;
struct room_ops;
struct edge;
struct tls;

/* Why an upgrade request or a new connection was refused before it became a session; the label
 * of rrm_handshakes_refused_total (names in app_refusal_reasons, same order). */
enum app_refusal {
    APP_REFUSED_VERSION,     /* Sec-WebSocket-Version other than 13, or none: 426 */
    APP_REFUSED_BAD_REQUEST, /* an upgrade lws cannot carry out (h2c, no key, ...): 400 */
    APP_REFUSED_ORIGIN,      /* Origin not in RRM_ALLOWED_ORIGINS: 403 */
    APP_REFUSED_ADMIN_PORT,  /* an upgrade on the admin listener, which has no WebSocket: 404 */
    APP_REFUSED_PER_IP,      /* over RRM_MAX_HANDSHAKES_PER_IP: closed at accept */
    APP_REFUSALS
};
extern const char *const app_refusal_reasons[APP_REFUSALS];

/* Why the node stopped reading a client's socket; the label of rrm_read_paused_seconds_total
 * (names in app_pause_reasons, same order). */
enum app_pause {
    APP_PAUSE_RATE,  /* over max-msgs-per-sec or max-bytes-per-sec: until the buckets refill */
    APP_PAUSE_REDIS, /* a message held while Redis is unreachable (redis-hold-ms) */
    APP_PAUSES
};
extern const char *const app_pause_reasons[APP_PAUSES];

/* Room for the server API's counters (api.c: endpoints, HTTP statuses). */
#define API_STATS_ENDPOINTS 8
#define API_STATS_CODES 12

/* Counters exported by /metrics and the status record. */
struct fe_stats {
    uint64_t connections_total;   /* WebSocket connections accepted */
    uint64_t connections_refused; /* over max-connections */
    uint64_t identified_total;
    uint64_t messages_in;   /* relayed messages received from local clients */
    uint64_t messages_out;  /* frames delivered to local clients (relays) */
    uint64_t client_writes; /* writes carrying them (several frames when coalesced) */
    /* how long frames waited between being built and written: a histogram (app.c's bounds) */
    uint64_t delay_buckets[8];
    uint64_t delay_sum_us;
    /* relayed messages, from their sender's node taking them to their write here (app.c's
     * bounds; clocks of different nodes compared) */
    uint64_t relay_buckets[11];
    uint64_t relay_sum_us;
    uint64_t bytes_in, bytes_out;
    uint64_t queries;
    uint64_t pubsub_in;                       /* relayed frames received from Redis */
    uint64_t presence_joins, presence_leaves; /* presence events handed to local members */
    uint64_t slow_consumers;
    uint64_t replaced;
    uint64_t identify_timeouts;
    uint64_t redis_errors;                     /* actions answered "unavailable" */
    uint64_t reaped;                           /* members of dead nodes this node removed */
    uint64_t recycled;                         /* empty rooms this node recycled */
    uint64_t handshakes_refused[APP_REFUSALS]; /* by enum app_refusal */
    uint64_t handshake_timeouts; /* connections closed for not finishing their handshake */
    uint64_t bad_close_frames;   /* client close frames answered with 1002 */
    uint64_t invalid_utf8;       /* text messages that were not UTF-8: closed with 1007 */
    /* Per client address (edge.c): upgrades refused with 429 for holding max-connections-per-ip,
     * or over the handshake rate; trusted proxies' forwarding headers that held a non-address. */
    uint64_t refused_per_ip;
    uint64_t rate_limited_per_ip;
    uint64_t forwarded_malformed;
    /* Client errors by code (see proto.h), in the order of app_error_codes. */
    uint64_t errors[24];
    uint64_t auth_failures[AUTH_RESULT_COUNT]; /* tokens refused, by enum auth_result */
    uint64_t auth_refreshes;                   /* tokens replaced by a refresh */
    uint64_t auth_expired;                     /* connections closed at their token's exp */
    /* Reading paused, by enum app_pause: milliseconds of the pauses that ended; the pauses in
     * progress and the sum of their start times (monotonic ms), so that a scrape can add what
     * they have lasted so far without visiting them. */
    uint64_t paused_ms[APP_PAUSES];
    uint64_t pauses_now[APP_PAUSES];
    int64_t pauses_since_sum[APP_PAUSES];
    uint64_t paused_connections;  /* connections paused for any of them */
    uint64_t resumes_recovered;   /* resumes answered "recovered": true */
    uint64_t resumes_unrecovered; /* resumes answered "recovered": false */
    uint64_t ack_resends;         /* messages with an ack_id seen before: answered, not relayed */
    /* ready members sent what their room published while its subscription was lost (failed:
     * the history could not fill the gap, the member was closed to resume) */
    uint64_t catchups, catchups_failed;
    uint64_t catchups_lost;  /* ... none possible: Redis had lost the room's state (new epoch) */
    uint64_t epochs_renewed; /* ready members told their room restarted under a new epoch */
    /* server API answers, by api.c's endpoint and status (api_metrics) */
    uint64_t api_requests[API_STATS_ENDPOINTS][API_STATS_CODES];
};

extern const char *const app_error_codes[];
extern const size_t app_error_code_count;

struct app {
    struct fe_options opt;
    struct logger log;
    char node_id[64];
    struct lws_context *cx;
    struct lws_vhost *vh;       /* the vhost without a listener where the Redis links are adopted */
    struct lws_vhost *admin_vh; /* the admin listener's vhost (NULL without one) */
    struct edge *edge;
    struct auth *auth; /* the token keys; NULL when authentication is off */
    struct tls *tls;   /* the client port's certificate (tls.c); NULL without TLS */

    struct router *router;  /* commands and scripts (router.h) */
    struct sublinks *subs;  /* subscriptions: a link per Redis master (sublinks.h) */
    int sub_up;             /* every master has a subscription link, the node channel is on one */
    long pending_writes;    /* leave/restore scripts not yet answered (drain waits for them) */
    long queries_in_flight; /* room queries not yet answered (room.c bounds them) */
    struct fanout *fanout;
    const struct room_ops *room_ops; /* how room.c's replies reach connections */
    void *room_arg;
    struct node *node;
    struct sessions *sessions; /* the local sessions (session.c) */
    long connections;          /* open WebSocket connections */
    int draining;
    int64_t drain_deadline_ms;
    int stopping; /* the service loop should end */
    int64_t started_ms;

    struct fe_stats stats;

    struct status *status; /* /status requests waiting for Redis (status.c) */

    struct outq *outq; /* the outbound queues' writer (session.c creates it) */

    struct deflate *deflate; /* permessage-deflate (deflate.h); NULL when RRM_DEFLATE=0 */
};

/* Upper bounds (microseconds) of fe_stats.delay_buckets; the last bucket is everything above. */
extern const int64_t app_delay_bounds_us[];
#define APP_DELAY_BOUNDS 7

/* Upper bounds (microseconds) of fe_stats.relay_buckets; the last bucket is everything above. */
extern const int64_t app_relay_bounds_us[];
#define APP_RELAY_BOUNDS 10

/* Records that a frame waited us microseconds in this node before it was written. */
void app_count_delay(struct fe_stats *st, int64_t us);
/* Records that a relayed message was written us microseconds after its sender's node took it. */
void app_count_relay(struct fe_stats *st, int64_t us);

struct frame;
/* Records a frame being written now (monotonic us): how long it waited in this node, and for a
 * relayed message how long since its sender's node took it (*wall: the wall clock, read on the
 * first such frame of a write, 0 before). */
void app_count_written(struct fe_stats *st, const struct frame *f, int64_t now, int64_t *wall);

/* Counts a client error by its PROTO_E_* code. */
void app_count_error(struct app *app, const char *code);

/* True when the command router is up (its links connected, the scripts loaded) and so is the
 * subscription link. */
int app_redis_ready(const struct app *app);

#endif
