/* Prometheus text of the node's counters (see metrics.h). */
#include "metrics.h"

#include "api.h"
#include "app.h"
#include "deflate.h"
#include "fanout.h"
#include "procstat.h"
#include "promtext.h"
#include "router.h"
#include "tls.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <libwebsockets.h>

static void textbuf_write(void *ctx, const char *text, size_t len) {
    textbuf_add(ctx, "%.*s", (int)len, text);
}

static void metric(struct textbuf *r, const char *name, const char *type, const char *help,
                   uint64_t v) {
    struct prom_out o = {.write = textbuf_write, .ctx = r};
    prom_metric(&o, name, type, help, v);
}

/* A histogram of n bounds (microseconds) and n + 1 buckets, in seconds. */
static void histogram(struct textbuf *r, const char *name, const char *help, const int64_t *bounds,
                      int n, const uint64_t *buckets, uint64_t sum_us) {
    struct prom_out o = {.write = textbuf_write, .ctx = r};
    prom_histogram(&o, name, help, bounds, n, buckets, sum_us);
}

/* permessage-deflate (deflate.h); zeros when RRM_DEFLATE=0, so that the families always exist. */
static void deflate_metrics(struct app *app, struct textbuf *r) {
    static const struct deflate_stats none;
    const struct deflate_stats *z = app->deflate ? deflate_stats(app->deflate) : &none;
    metric(r, "rrm_deflate_connections", "gauge",
           "Open WebSocket connections that negotiated permessage-deflate.", z->connections);
    metric(r, "rrm_deflate_compressed_messages_total", "counter",
           "Messages this node compressed (once per message, shared by its recipients).",
           z->compressions);
    metric(r, "rrm_deflate_compress_input_bytes_total", "counter",
           "Bytes of the messages this node compressed, before compression.", z->compress_in_bytes);
    metric(r, "rrm_deflate_compress_output_bytes_total", "counter",
           "Bytes of the messages this node compressed, after compression.", z->compress_out_bytes);
    metric(r, "rrm_deflate_incompressible_messages_total", "counter",
           "Messages that did not get smaller compressed: sent plain.", z->skipped);
    metric(r, "rrm_deflate_frames_sent_total", "counter",
           "Compressed frames queued to clients (one per recipient).", z->deliveries);
    metric(r, "rrm_deflate_sent_uncompressed_bytes_total", "counter",
           "Payload bytes of the compressed frames queued to clients, counted uncompressed.",
           z->delivered_plain_bytes);
    metric(r, "rrm_deflate_sent_compressed_bytes_total", "counter",
           "Payload bytes of the compressed frames queued to clients, as sent.",
           z->delivered_bytes);
    metric(r, "rrm_deflate_inflated_messages_total", "counter",
           "Compressed client messages inflated.", z->inflations);
    metric(r, "rrm_deflate_inflate_input_bytes_total", "counter",
           "Bytes of compressed client messages, as received.", z->inflate_in_bytes);
    metric(r, "rrm_deflate_inflate_output_bytes_total", "counter",
           "Bytes of compressed client messages, inflated.", z->inflate_out_bytes);
    textbuf_add(r,
                "# HELP rrm_deflate_inflate_errors_total Compressed client messages refused: "
                "invalid (closed with 1007) or inflating over RRM_MAX_FRAME_BYTES (1009).\n"
                "# TYPE rrm_deflate_inflate_errors_total counter\n"
                "rrm_deflate_inflate_errors_total{reason=\"invalid\"} %" PRIu64 "\n"
                "rrm_deflate_inflate_errors_total{reason=\"too_big\"} %" PRIu64 "\n",
                z->inflate_invalid, z->inflate_too_big);
}

void metrics_write(struct app *app, struct textbuf *r) {
    const struct fe_stats *st = &app->stats;
    metric(r, "rrm_open_connections", "gauge", "Open WebSocket connections.",
           (uint64_t)app->connections);
    metric(r, "rrm_connections_total", "counter", "WebSocket connections accepted.",
           st->connections_total);
    metric(r, "rrm_connections_refused_total", "counter", "Connections over the limit.",
           st->connections_refused);
    metric(r, "rrm_identified_total", "counter", "Connections that identified.",
           st->identified_total);
    metric(r, "rrm_rooms_local", "gauge", "Rooms with members on this node.",
           fanout_room_count(app->fanout));
    metric(r, "rrm_messages_in_total", "counter", "Messages received from local clients.",
           st->messages_in);
    metric(r, "rrm_messages_out_total", "counter", "Frames written to local clients.",
           st->messages_out);
    metric(r, "rrm_client_writes_total", "counter",
           "Writes to local clients (one carries every frame queued for that client).",
           st->client_writes);
    histogram(r, "rrm_delivery_delay_seconds",
              "Time from a frame being built (relayed message from Redis, answer, error) to its "
              "write to the client: coalescing, slow clients, a busy loop.",
              app_delay_bounds_us, APP_DELAY_BOUNDS, st->delay_buckets, st->delay_sum_us);
    histogram(r, "rrm_relay_latency_seconds",
              "Time from a relayed message being taken by its sender's node to its write to each "
              "recipient here (nodes' clocks compared; history sent to resuming clients not "
              "counted).",
              app_relay_bounds_us, APP_RELAY_BOUNDS, st->relay_buckets, st->relay_sum_us);
    metric(r, "rrm_bytes_in_total", "counter", "Payload bytes received.", st->bytes_in);
    metric(r, "rrm_bytes_out_total", "counter", "Payload bytes written.", st->bytes_out);
    metric(r, "rrm_queries_total", "counter", "query_room requests.", st->queries);
    metric(r, "rrm_pubsub_in_total", "counter", "Relayed frames received from Redis.",
           st->pubsub_in);
    metric(r, "rrm_slow_consumers_total", "counter", "Clients cut off for a full send queue.",
           st->slow_consumers);
    metric(r, "rrm_replaced_total", "counter", "Connections replaced by the same device.",
           st->replaced);
    metric(r, "rrm_identify_timeouts_total", "counter", "Connections that never identified.",
           st->identify_timeouts);
    textbuf_add(r, "# HELP rrm_handshakes_refused_total Upgrade requests refused and connections "
                   "over the per-address handshake cap, by reason.\n"
                   "# TYPE rrm_handshakes_refused_total counter\n");
    for (int i = 0; i < APP_REFUSALS; i++)
        textbuf_add(r, "rrm_handshakes_refused_total{reason=\"%s\"} %" PRIu64 "\n",
                    app_refusal_reasons[i], st->handshakes_refused[i]);
    metric(r, "rrm_handshake_timeouts_total", "counter",
           "Connections closed for not finishing their handshake in time.", st->handshake_timeouts);
    metric(r, "rrm_bad_close_frames_total", "counter", "Client close frames answered with 1002.",
           st->bad_close_frames);
    metric(r, "rrm_invalid_utf8_total", "counter",
           "Client text messages that were not valid UTF-8 (closed with 1007).", st->invalid_utf8);
    deflate_metrics(app, r);
    metric(r, "rrm_connections_refused_per_ip_total", "counter",
           "WebSocket upgrades refused with 429: the client address holds "
           "RRM_MAX_CONNECTIONS_PER_IP connections.",
           st->refused_per_ip);
    metric(r, "rrm_handshakes_rate_limited_total", "counter",
           "WebSocket upgrades refused with 429: over the client address's handshake rate.",
           st->rate_limited_per_ip);
    metric(r, "rrm_forwarded_malformed_total", "counter",
           "Upgrades from a trusted proxy whose X-Forwarded-For or X-Real-IP held something "
           "that is not an address.",
           st->forwarded_malformed);
    textbuf_add(r,
                "# HELP rrm_read_paused_seconds_total Time connections spent with reading paused "
                "(backpressure), by reason: rate (over the per-connection rates) or redis (a "
                "message held while Redis was unreachable).\n"
                "# TYPE rrm_read_paused_seconds_total counter\n");
    int64_t now = util_mono_ms();
    for (int i = 0; i < APP_PAUSES; i++) {
        int64_t ms =
            (int64_t)st->paused_ms[i] + (int64_t)st->pauses_now[i] * now - st->pauses_since_sum[i];
        textbuf_add(r, "rrm_read_paused_seconds_total{reason=\"%s\"} %.3f\n", app_pause_reasons[i],
                    (double)ms / 1000.0);
    }
    metric(r, "rrm_read_paused_connections", "gauge",
           "Connections whose reading is paused now (rate or redis).", st->paused_connections);
    metric(r, "rrm_redis_unavailable_total", "counter", "Actions refused while Redis was down.",
           st->redis_errors);
    metric(r, "rrm_reaped_members_total", "counter", "Members of dead nodes removed here.",
           st->reaped);
    metric(r, "rrm_rooms_recycled_total", "counter", "Empty rooms recycled by this node.",
           st->recycled);
    textbuf_add(r,
                "# HELP rrm_resumes_total Identifies with last_seq, by whether the missed "
                "messages were recovered from the room history.\n# TYPE rrm_resumes_total "
                "counter\nrrm_resumes_total{recovered=\"true\"} %" PRIu64
                "\nrrm_resumes_total{recovered=\"false\"} %" PRIu64 "\n",
                st->resumes_recovered, st->resumes_unrecovered);
    textbuf_add(r,
                "# HELP rrm_presence_events_total Presence events handed to local members that "
                "asked for them.\n# TYPE rrm_presence_events_total counter\n"
                "rrm_presence_events_total{type=\"join\"} %" PRIu64
                "\nrrm_presence_events_total{type=\"leave\"} %" PRIu64 "\n",
                st->presence_joins, st->presence_leaves);
    metric(r, "rrm_ack_resends_total", "counter",
           "Messages resent with an ack_id already accepted: answered, not relayed again.",
           st->ack_resends);
    textbuf_add(r,
                "# HELP rrm_catchups_total Ready members sent, from the room history, what their "
                "room published while the node's subscription was lost; failed: the history could "
                "not fill the gap and the member was closed (1012) to resume; lost: Redis had lost "
                "the room's state (a new epoch).\n"
                "# TYPE rrm_catchups_total counter\nrrm_catchups_total{result=\"ok\"} %" PRIu64
                "\nrrm_catchups_total{result=\"failed\"} %" PRIu64
                "\nrrm_catchups_total{result=\"lost\"} %" PRIu64 "\n",
                st->catchups, st->catchups_failed, st->catchups_lost);
    metric(r, "rrm_epochs_renewed_total", "counter",
           "Ready members told that their room's numbering started again under a new epoch "
           "(Redis had lost the room's state).",
           st->epochs_renewed);
    metric(r, "rrm_redis_drops_total", "counter", "Times the Redis command link dropped.",
           app->router ? router_drops(app->router) : 0);
    textbuf_add(r,
                "# HELP rrm_redis_rtt_seconds Last Redis PING round trip (the slowest link).\n"
                "# TYPE rrm_redis_rtt_seconds gauge\nrrm_redis_rtt_seconds %.6f\n",
                app->router ? (double)router_rtt_us(app->router) / 1e6 : 0.0);
    metric(r, "rrm_ready", "gauge", "1 when Redis is reachable and the node is not draining.",
           (uint64_t)(app_redis_ready(app) && !app->draining));
    char proc[2048];
    size_t plen = procstat_self_metrics(proc, sizeof(proc));
    textbuf_add(r, "%.*s", (int)plen, proc);
    textbuf_add(r,
                "# HELP rrm_build_info The build: version (git describe of its source), and the "
                "libwebsockets and hiredis it runs with.\n# TYPE rrm_build_info gauge\n"
                "rrm_build_info{version=\"%s\",libwebsockets=\"%s\",hiredis=\"%d.%d.%d\"} 1\n",
                RRM_VERSION, lws_get_library_version(), HIREDIS_MAJOR, HIREDIS_MINOR,
                HIREDIS_PATCH);
    textbuf_add(r, "# HELP rrm_auth_failures_total Tokens refused (identify and refresh), by "
                   "reason.\n# TYPE rrm_auth_failures_total counter\n");
    for (int i = AUTH_OK + 1; i < AUTH_RESULT_COUNT; i++)
        textbuf_add(r, "rrm_auth_failures_total{reason=\"%s\"} %" PRIu64 "\n",
                    auth_reason_label((enum auth_result)i), st->auth_failures[i]);
    metric(r, "rrm_auth_refreshes_total", "counter", "Tokens replaced by a valid refresh.",
           st->auth_refreshes);
    metric(r, "rrm_auth_expired_total", "counter",
           "Connections closed because their token expired.", st->auth_expired);
    if (app->tls) {
        struct tls_stats ts;
        tls_get_stats(app->tls, &ts);
        textbuf_add(
            r,
            "# HELP rrm_tls_reloads_total Reloads of the TLS certificate and key (SIGHUP or "
            "changed files), by result.\n# TYPE rrm_tls_reloads_total counter\n"
            "rrm_tls_reloads_total{result=\"ok\"} %" PRIu64
            "\nrrm_tls_reloads_total{result=\"error\"} %" PRIu64 "\n",
            ts.reloads_ok, ts.reloads_failed);
        metric(r, "rrm_tls_cert_expiry_timestamp_seconds", "gauge",
               "End of validity (notAfter) of the TLS certificate in use, Unix time.",
               (uint64_t)ts.not_after);
    }
    api_metrics(app, r);
    textbuf_add(r, "# HELP rrm_client_errors_total Error frames sent to clients, by code.\n"
                   "# TYPE rrm_client_errors_total counter\n");
    for (size_t i = 0; i < app_error_code_count; i++)
        textbuf_add(r, "rrm_client_errors_total{code=\"%s\"} %" PRIu64 "\n", app_error_codes[i],
                    st->errors[i]);
}
