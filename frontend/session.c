/* WebSocket sessions: the per-connection state machine (see session.h). */
#include "session.h"

#include "app.h"
#include "auth.h"
#include "deadlines.h"
#include "deflate.h"
#include "expiry.h"
#include "proto.h"
#include "rxbuf.h"
#include "connid.h"
#include "edge.h"
#include "fanout.h"
#include "hmap.h"
#include "outq.h"
#include "room.h"
#include "utf8.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Why reading a client's socket is paused (struct session.paused): while any holds, lws reads
 * nothing more from it and frames it had already read wait in its buffer. */
enum {
    PAUSE_RATE = 1 << APP_PAUSE_RATE,   /* over the rates: until the buckets refill */
    PAUSE_REDIS = 1 << APP_PAUSE_REDIS, /* a message held until Redis is back */
    PAUSE_IDENTIFY = 1 << APP_PAUSES,   /* the identify script runs (not counted) */
};

/* A frame kept while Redis is unreachable. */
struct held {
    size_t len;
    int binary;
    char data[];
};

enum session_state {
    SS_NEW,         /* waiting for the identify frame */
    SS_IDENTIFYING, /* identify script in flight; reading paused */
    SS_JOINING,     /* member in Redis; waiting for this node's room subscription */
    SS_RESUMING,    /* subscribed; the room history is being read, live frames are held */
    SS_READY,       /* answered; relays both ways */
    SS_CLOSING,     /* close queued or connection cut */
};

struct session {
    struct app *app;
    struct lws *wsi;
    uint64_t conn_no; /* local number; cluster-wide id is "<node>#<conn_no>" */
    enum session_state state;
    char device_id[PROTO_MAX_DEVICE_ID + 1];
    char *identity; /* from the identify; owned, freed on close */
    char room_id[PROTO_MAX_ROOM_ID + 1];
    char ip[48];
    char room_action[12];
    long room_total;
    int64_t identified_at_ms;
    uint8_t joined;   /* holds a membership in Redis */
    uint8_t presence; /* receives the room's presence events (identify, or the node's default) */
    /* counted against its address's limits (edge_established) */
    uint8_t counted;
    /* permessage-deflate: the window bits the node compresses with for this client (0: not
     * negotiated; set by the handshake, before ESTABLISHED); the message being received is
     * compressed (its first frame had RSV1) */
    uint8_t zbits;
    uint8_t rx_deflated;

    struct rxbuf rx; /* fragments of one incoming message */

    /* rate limit: token buckets refilled at max-msgs-per-sec and max-bytes-per-sec */
    double tokens, byte_tokens;
    int64_t tokens_at_ms;

    /* backpressure */
    uint8_t paused;                   /* PAUSE_* reasons; reading is off while any is set */
    uint8_t lingering;                /* close frame handed to lws, which awaits the client's */
    uint8_t discarding;               /* closing with 1009: reading the rest of the message */
    uint32_t no_hold_until;           /* a hold timed out: no holds until Redis is back (gen) */
    int64_t paused_at_ms[APP_PAUSES]; /* monotonic, while paused for that reason */
    struct expiry_entry resume;       /* in the rate resume heap while PAUSE_RATE */
    struct held *held;                /* the frame kept while PAUSE_REDIS; owned */
    struct deadline hold_deadline;    /* in the hold deadlines while a frame is held */
    /* closing: while discarding, since the last piece of the message; then, since the close
     * frame was handed to lws, until the client's close */
    struct deadline close_deadline;

    struct outq_client out; /* frames owed to the client (outq.h) */

    /* closing */
    uint16_t close_code;
    const char *close_reason;      /* static string */
    const char *disconnect_reason; /* for the archive event; static string */

    struct fanout_member member; /* in the local room (fanout.h) */

    struct deadline identify_deadline; /* armed from accept until the identify frame */

    struct session_join *join; /* from the identify until it is answered */
    /* after a resume, the seq up to which the history was sent: live frames up to it
     * (published before the read, arriving after it) are not sent again; 0: none */
    uint64_t seq_floor;
    /* the last seq of the room this connection was sent (or the room's when it was answered),
     * and the room's epoch: where a catch-up starts after the room's subscription was lost */
    uint64_t last_seq;
    char epoch[PROTO_MAX_EPOCH + 1];
    uint8_t catching_up;     /* READY, reading the history missed while unsubscribed (s->join) */
    uint8_t catchup_pending; /* ... and its read waits for Redis (session_redis_ready) */
    uint8_t epoch_moved;     /* ... and a new epoch was announced meanwhile (epoch_renewed) */
    /* the highest seq sent since session_restore_all asked Redis to restore the membership: a
     * new epoch's announcement does not name a seq below what the client already has */
    uint64_t epoch_seq;

    /* authentication (app->auth set) */
    char *token;                 /* from the upgrade request, until the identify; owned */
    uint8_t token_too_long;      /* the upgrade request's token was over AUTH_MAX_TOKEN */
    struct auth_claims *claims;  /* the verified token's; owned */
    struct expiry_entry expires; /* in the node's token expiry heap while claims are held */
};

/* What a session needs only from its identify to its answer: allocated then, freed once
 * answered, so that an idle connection does not carry it. */
struct session_join {
    /* the room's last seq and epoch for the room answer (from the identify, or the resume) */
    long long room_seq;
    char room_epoch[PROTO_MAX_EPOCH + 1];
    /* resume: the identify's last_seq and epoch ("" none) */
    uint8_t resume;
    long long resume_seq;
    char resume_epoch[PROTO_MAX_EPOCH + 1];
    /* live frames that arrived while the history was read (SS_RESUMING), counted against
     * send-queue-bytes */
    struct frame **held;
    uint32_t nheld, held_cap;
    size_t held_bytes;
};

/* What session.c keeps for the node (app->sessions). */
struct sessions {
    struct hmap *by_no;            /* local connection number -> struct session */
    struct deadlines identify_due; /* connections that have not identified yet */
    uint64_t next_conn;            /* last connection number; conn id = "<node>#<n>" */
    struct expiry token_expiry;    /* identified connections by their token's exp (+ leeway) */
    struct expiry rate_resume;     /* rate-paused connections by when they may read again */
    struct deadlines redis_hold;   /* connections holding a frame for Redis, oldest first */
    struct deadlines close_linger; /* closing connections waiting for the client's close */
    uint32_t redis_gen;            /* times Redis became ready */
};

const size_t session_size = sizeof(struct session);

#define CLOSE_GOING_AWAY 1001
#define CLOSE_INVALID_DATA 1007
#define CLOSE_POLICY 1008
#define CLOSE_TOO_BIG 1009
#define CLOSE_INTERNAL 1011
#define CLOSE_SERVICE_RESTART 1012
#define CLOSE_TRY_AGAIN 1013
#define CLOSE_UNAUTHORIZED 4401
#define CLOSE_FORBIDDEN 4403

static int key_of(uint64_t no, char *buf, size_t cap) {
    return snprintf(buf, cap, "%" PRIu64, no);
}

int session_conn_id(const struct session *s, char *buf, size_t cap) {
    return connid_format(s->app->node_id, s->conn_no, buf, cap);
}

/* The session as room.c knows it; its conn id is written into buf. */
static struct room_conn room_conn_of(const struct session *s, char *buf, size_t cap) {
    int n = session_conn_id(s, buf, cap);
    return (struct room_conn){
        .no = s->conn_no,
        .conn_id = buf,
        .conn_id_len = n > 0 ? (size_t)n : 0,
        .device_id = s->device_id,
        .identity = s->identity ? s->identity : "",
        .room_id = s->room_id,
        .ip = s->ip,
        .connected_at_ms = s->identified_at_ms,
        .rooms = s->claims ? s->claims->rooms : NULL,
        .no_auto_room = s->claims && !s->claims->auto_room,
    };
}

struct session *session_find_no(struct app *app, uint64_t conn_no) {
    char key[24];
    int n = key_of(conn_no, key, sizeof(key));
    return hmap_get(app->sessions->by_no, key, (size_t)n);
}

struct session *session_find(struct app *app, const char *conn, size_t len) {
    uint64_t no;
    return connid_parse(app->node_id, conn, len, &no) ? NULL : session_find_no(app, no);
}

/* ---- reading paused ------------------------------------------------------------------------ */

/* Pauses reading for one more reason. lws applies it at once, also inside a RECEIVE callback: the
 * rest of what it had read is kept in its buffer and handed over only once reading resumes, so
 * no frame is seen while paused. */
static void pause_reading(struct session *s, unsigned why) {
    if (s->paused & why)
        return;
    if (why != PAUSE_IDENTIFY) {
        struct fe_stats *st = &s->app->stats;
        int r = why == PAUSE_RATE ? APP_PAUSE_RATE : APP_PAUSE_REDIS;
        int64_t now = util_mono_ms();
        s->paused_at_ms[r] = now;
        st->pauses_now[r]++;
        st->pauses_since_sum[r] += now;
        if (!(s->paused & (PAUSE_RATE | PAUSE_REDIS)))
            st->paused_connections++;
    }
    if (!s->paused)
        lws_rx_flow_control(s->wsi, 0);
    s->paused |= (uint8_t)why;
}

/* Drops reasons (a mask); reading resumes when none is left, if tell_lws (not while closed). */
static void resume_reading_ex(struct session *s, unsigned why, int tell_lws) {
    why &= s->paused;
    if (!why)
        return;
    struct fe_stats *st = &s->app->stats;
    int64_t now = util_mono_ms();
    for (int r = 0; r < APP_PAUSES; r++) {
        if (!(why & (1u << r)))
            continue;
        st->paused_ms[r] += (uint64_t)(now - s->paused_at_ms[r]);
        st->pauses_now[r]--;
        st->pauses_since_sum[r] -= s->paused_at_ms[r];
    }
    int counted = (s->paused & (PAUSE_RATE | PAUSE_REDIS)) != 0;
    s->paused &= (uint8_t)~why;
    if (counted && !(s->paused & (PAUSE_RATE | PAUSE_REDIS)))
        st->paused_connections--;
    if (!s->paused && tell_lws)
        lws_rx_flow_control(s->wsi, 1);
}

static void resume_reading(struct session *s, unsigned why) {
    resume_reading_ex(s, why, 1);
}

/* Forgets the held frame and the rate pause's timer (closing). */
static void drop_waits(struct session *s) {
    deadline_stop(&s->hold_deadline);
    free(s->held);
    s->held = NULL;
    expiry_remove(&s->app->sessions->rate_resume, &s->resume);
}

/* ---- outbound queue ------------------------------------------------------------------------- */

static void held_free(struct session_join *j) {
    for (uint32_t i = 0; i < j->nheld; i++)
        frame_unref(j->held[i]);
    free(j->held);
    j->held = NULL;
    j->nheld = j->held_cap = 0;
    j->held_bytes = 0;
}

static void join_free(struct session *s) {
    if (!s->join)
        return;
    held_free(s->join);
    free(s->join);
    s->join = NULL;
}

static void cut_off(struct session *s, const char *why) {
    if (s->state == SS_CLOSING && !s->close_code)
        return;
    s->state = SS_CLOSING;
    s->close_code = 0;
    s->disconnect_reason = why;
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void session_send_frame(struct session *s, struct frame *f) {
    if ((s->state == SS_CLOSING && !s->close_code) || !s->app->outq)
        return; /* being cut off, or the node's lws context is being destroyed */
    if (f->seq > s->epoch_seq)
        s->epoch_seq = f->seq;
    if (!s->zbits) {
        outq_push(s->app->outq, &s->out, f);
        return;
    }
    struct frame *z = deflate_frame_for(s->app->deflate, f, s->zbits);
    outq_push(s->app->outq, &s->out, z);
    frame_unref(z);
}

/* The outbound queue gave up on the client (outq.h). */
static void out_failed(struct outq_client *c, const char *why) {
    cut_off(lws_container_of(c, struct session, out), why);
}

void session_send_text(struct session *s, const char *text, size_t len) {
    struct frame *f = frame_new(text, len, 0);
    if (!f)
        return;
    session_send_frame(s, f);
    frame_unref(f);
}

void session_send_error(struct session *s, const char *code, const char *message) {
    size_t len;
    char *text = proto_error_frame(code, message, &len);
    app_count_error(s->app, code);
    if (text)
        session_send_text(s, text, len);
    free(text);
}

void session_close(struct session *s, uint16_t code, const char *reason,
                   const char *disconnect_reason) {
    if (s->state == SS_CLOSING)
        return;
    s->state = SS_CLOSING;
    s->close_code = code;
    s->close_reason = reason;
    s->disconnect_reason = disconnect_reason;
    /* Whatever the client still sends is read and discarded until its close frame arrives: a
     * socket closed with unread data sends a reset, and the client would lose our close. */
    drop_waits(s);
    resume_reading(s, PAUSE_RATE | PAUSE_REDIS | PAUSE_IDENTIFY);
    lws_callback_on_writable(s->wsi);
}

/* Tells the client that the node is shutting down (error "draining") and closes with 1001 after
 * what is already queued. */
static void session_drain(struct session *s) {
    if (s->state == SS_CLOSING)
        return;
    session_send_error(s, PROTO_E_DRAINING, "this node is shutting down; connect again");
    session_close(s, CLOSE_GOING_AWAY, "server draining", "draining");
}

static void identify_expired(struct deadline *d, void *arg);
static void token_expired(struct expiry_entry *e, void *arg);
static void rate_resumed(struct expiry_entry *e, void *arg);
static void hold_expired(struct deadline *d, void *arg);
static void release_if_ready(struct deadline *d, void *arg);
static void close_expired(struct deadline *d, void *arg);

int session_setup(struct app *app) {
    struct sessions *ss = calloc(1, sizeof(*ss));
    if (!ss || !(ss->by_no = hmap_create())) {
        free(ss);
        return -1;
    }
    app->sessions = ss;
    /* Connection numbers start from the start time (ms x 1000) rather than 1, so that a node
     * restarted under the same RRM_NODE_ID (a restarted container keeps its pod name) never
     * hands out a conn id an earlier run used: the archive keys connections by it. */
    ss->next_conn = (uint64_t)app->started_ms * 1000u;
    deadlines_init(&ss->identify_due, app->cx, app->opt.identify_timeout_ms, identify_expired,
                   NULL);
    expiry_init(&ss->token_expiry, app->cx, token_expired, NULL);
    expiry_init_clock(&ss->rate_resume, app->cx, util_mono_ms, rate_resumed, NULL);
    deadlines_init(&ss->redis_hold, app->cx, app->opt.redis_hold_ms, hold_expired, ss);
    deadlines_init(&ss->close_linger, app->cx, app->opt.close_timeout_ms, close_expired, NULL);
    struct outq_options o = {
        .limit_bytes = (size_t)app->opt.send_queue_bytes,
        .coalesce_above = app->opt.coalesce_above,
        .coalesce_ms = app->opt.coalesce_ms,
    };
    app->outq = outq_create(app->cx, &o, &app->stats, out_failed);
    return app->outq ? 0 : -1;
}

void session_teardown(struct app *app) {
    deadlines_fini(&app->sessions->identify_due);
    expiry_fini(&app->sessions->token_expiry);
    expiry_fini(&app->sessions->rate_resume);
    deadlines_fini(&app->sessions->redis_hold);
    deadlines_fini(&app->sessions->close_linger);
    outq_destroy(app->outq);
    app->outq = NULL;
}

void session_free(struct app *app) {
    if (!app->sessions)
        return;
    hmap_destroy(app->sessions->by_no);
    free(app->sessions);
    app->sessions = NULL;
}

static int on_writeable(struct session *s) {
    if (s->lingering)
        return 0; /* lws sent the close frame and awaits the client's; -1 would cut it now */
    if (outq_pending(&s->out)) {
        if (outq_write(s->app->outq, &s->out))
            return -1;
        if (s->state == SS_CLOSING) /* the close frame, after the rest */
            lws_callback_on_writable(s->wsi);
        return 0;
    }
    if (s->state == SS_CLOSING && s->close_code) {
        if (s->discarding)
            return 0; /* the close goes once the client has sent the whole message */
        lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
                         (unsigned char *)s->close_reason, strlen(s->close_reason));
        /* lws sends the close frame, then reads and discards until the client's close (its own
         * limit is 5 s); close-timeout-ms bounds that wait. */
        s->lingering = 1;
        deadline_stop(&s->close_deadline);
        deadline_start(&s->app->sessions->close_linger, &s->close_deadline);
        return -1;
    }
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void identify_expired(struct deadline *d, void *arg) {
    (void)arg;
    struct session *s = lws_container_of(d, struct session, identify_deadline);
    if (s->state != SS_NEW)
        return;
    s->app->stats.identify_timeouts++;
    session_send_error(s, PROTO_E_IDENTIFY_TIMEOUT, "no identify frame received in time");
    session_close(s, CLOSE_POLICY, "identify timeout", "identify_timeout");
}

/* The client stopped sending its oversized message: close now. Or it did not answer our close
 * frame in time: cut the connection. */
static void close_expired(struct deadline *d, void *arg) {
    (void)arg;
    struct session *s = lws_container_of(d, struct session, close_deadline);
    if (s->discarding) {
        s->discarding = 0;
        lws_callback_on_writable(s->wsi);
        return;
    }
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* Connections whose token's exp (+ leeway) passed without a refresh. */
static void token_expired(struct expiry_entry *e, void *arg) {
    (void)arg;
    struct session *s = lws_container_of(e, struct session, expires);
    if (s->state == SS_CLOSING)
        return;
    s->app->stats.auth_expired++;
    session_send_error(s, PROTO_E_UNAUTHORIZED, auth_reason_message(AUTH_EXPIRED));
    session_close(s, CLOSE_UNAUTHORIZED, "token expired", "token_expired");
}

/* Keeps the token of the upgrade request (Authorization: Bearer, else ?token=, which lws has
 * URL-decoded) for the identify: lws still holds the request's headers while ESTABLISHED runs
 * and drops them right after. */
static int keep_upgrade_token(struct lws *wsi, struct session *s) {
    static const char bearer[] = "Bearer ";
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 0) {
        if (n > AUTH_MAX_TOKEN + (int)sizeof(bearer)) {
            s->token_too_long = 1;
            return 0;
        }
        char *h = malloc((size_t)n + 1);
        if (!h || lws_hdr_copy(wsi, h, n + 1, WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
            free(h);
            return -1;
        }
        if (strncasecmp(h, bearer, sizeof(bearer) - 1) == 0) {
            const char *t = h + sizeof(bearer) - 1;
            while (*t == ' ')
                t++;
            s->token = strdup(t);
            free(h);
            return s->token ? 0 : -1;
        }
        free(h);
    }
    /* Each argument is a fragment of the URI arguments; the longest one bounds the copy. */
    n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (n <= 0)
        return 0;
    char *args = malloc((size_t)n + 1);
    if (!args)
        return -1;
    const char *t = lws_get_urlarg_by_name(wsi, "token=", args, n + 1);
    if (t && strlen(t) > AUTH_MAX_TOKEN)
        s->token_too_long = 1;
    else if (t && !(s->token = strdup(t))) {
        free(args);
        return -1;
    }
    free(args);
    return 0;
}

static int on_established(struct lws *wsi, struct session *s) {
    struct app *app = lws_context_user(lws_get_context(wsi));
    uint8_t zbits = s->zbits; /* from the handshake (session_callback's ADD_HEADERS) */
    memset(s, 0, sizeof(*s));
    s->app = app;
    if (app->deflate && zbits) {
        s->zbits = zbits;
        deflate_stats(app->deflate)->connections++;
    }
    s->wsi = wsi;
    outq_client_init(&s->out, wsi);
    s->conn_no = ++app->sessions->next_conn;
    s->disconnect_reason = "client_closed";
    s->counted = (uint8_t)edge_established(app->edge, wsi, s->ip, sizeof(s->ip));
    app->connections++;
    app->stats.connections_total++;

    char key[24];
    int n = key_of(s->conn_no, key, sizeof(key));
    if (hmap_put(app->sessions->by_no, key, (size_t)n, s))
        return -1;
    if (app->auth && keep_upgrade_token(wsi, s))
        return -1; /* out of memory; on_closed undoes the rest */

    if (app->draining) {
        session_drain(s);
    } else if (app->connections > app->opt.max_connections) {
        app->stats.connections_refused++;
        session_send_error(s, PROTO_E_SERVER_FULL, "this node is at its connection limit");
        session_close(s, CLOSE_TRY_AGAIN, "server full", "server_full");
    } else {
        deadline_start(&app->sessions->identify_due, &s->identify_deadline);
    }
    return 0;
}

static void on_closed(struct session *s) {
    struct app *app = s->app;
    if (!app)
        return;
    deadline_stop(&s->identify_deadline);
    expiry_remove(&app->sessions->token_expiry, &s->expires);
    drop_waits(s);
    resume_reading_ex(s, PAUSE_RATE | PAUSE_REDIS | PAUSE_IDENTIFY, 0);
    deadline_stop(&s->close_deadline);
    char key[24];
    int n = key_of(s->conn_no, key, sizeof(key));
    hmap_del(app->sessions->by_no, key, (size_t)n);
    if (s->joined) {
        fanout_leave(app->fanout, &s->member);
        char conn[CONNID_MAX];
        struct room_conn c = room_conn_of(s, conn, sizeof(conn));
        room_leave(app, &c, s->disconnect_reason);
    }
    /* An identify still in flight is undone by its reply handler (room.c). */
    outq_client_free(&s->out);
    join_free(s);
    rxbuf_free(&s->rx);
    free(s->identity);
    s->identity = NULL;
    free(s->token);
    s->token = NULL;
    if (s->claims) {
        auth_claims_free(s->claims);
        free(s->claims);
        s->claims = NULL;
    }
    if (s->counted)
        edge_connection_closed(app->edge, s->ip);
    if (s->zbits)
        deflate_stats(app->deflate)->connections--;
    app->connections--;
    s->app = NULL;
}

/* ---- the protocol --------------------------------------------------------------------------- */

static void session_on_identified(struct session *s, const char *room, const char *action,
                                  long total, long long seq, const char *epoch) {
    util_strlcpy(s->room_id, room, sizeof(s->room_id));
    s->joined = 1; /* from now on closing must leave the room in Redis */
    if (s->state != SS_IDENTIFYING)
        return; /* closed meanwhile */
    util_strlcpy(s->room_action, action, sizeof(s->room_action));
    s->room_total = total;
    s->join->room_seq = seq;
    util_strlcpy(s->join->room_epoch, epoch, sizeof(s->join->room_epoch));
    s->state = SS_JOINING;
    s->app->stats.identified_total++;
    if (fanout_join(s->app->fanout, &s->member, s->conn_no, room, s->presence)) {
        session_send_error(s, PROTO_E_UNAVAILABLE, "out of memory");
        session_close(s, CLOSE_INTERNAL, "out of memory", "error");
    }
}

static void session_on_failed(struct session *s, const char *code, const char *message) {
    if (s->state == SS_CLOSING)
        return;
    s->app->stats.redis_errors++;
    session_send_error(s, code, message);
    session_close(s, CLOSE_TRY_AGAIN, "try again later", "unavailable");
}

/* The node receives the room's messages: answers the identify (recovered: see
 * proto_room_frame). */
static void session_room_ready(struct session *s, int recovered) {
    char conn[CONNID_MAX];
    session_conn_id(s, conn, sizeof(conn));
    size_t clen, rlen;
    char *ct = proto_connection_frame(s->device_id, s->app->node_id, conn, util_now_ms(), &clen);
    char *rt = proto_room_frame(s->room_id, s->room_action, s->room_total, s->join->room_seq,
                                s->join->room_epoch, recovered, &rlen);
    if (ct)
        session_send_text(s, ct, clen);
    if (rt)
        session_send_text(s, rt, rlen);
    free(ct);
    free(rt);
    s->last_seq = s->join->room_seq > 0 ? (uint64_t)s->join->room_seq : 0;
    util_strlcpy(s->epoch, s->join->room_epoch, sizeof(s->epoch));
    s->state = SS_READY;
    resume_reading(s, PAUSE_IDENTIFY);
}

/* ---- replies from room.c, by connection number ---------------------------------------------- */

static int room_identified(void *arg, uint64_t no, const char *room, const char *action, long total,
                           long long seq, const char *epoch) {
    struct session *s = session_find_no(arg, no);
    if (!s)
        return -1;
    session_on_identified(s, room, action, total, seq, epoch);
    return 0;
}

static void room_failed(void *arg, uint64_t no, const char *code, const char *message) {
    struct session *s = session_find_no(arg, no);
    if (s)
        session_on_failed(s, code, message);
}

static void room_error(void *arg, uint64_t no, const char *code, const char *message) {
    struct session *s = session_find_no(arg, no);
    if (s)
        session_send_error(s, code, message);
}

static void room_answer(void *arg, uint64_t no, const char *text, size_t len) {
    struct session *s = session_find_no(arg, no);
    if (s)
        session_send_text(s, text, len);
}

static void room_replaced(void *arg, uint64_t no) {
    struct session *s = session_find_no(arg, no);
    if (s && s->state != SS_CLOSING) {
        session_send_error(s, PROTO_E_REPLACED,
                           "this device connected again; this connection is closed");
        session_close(s, 4001, "replaced by a newer connection", "replaced");
    }
}

/* Tells a ready member that its room's numbering started again (Redis lost the room's state
 * and it was recreated under a new epoch): a room frame with action "restored", the new epoch,
 * "recovered": false, and as seq the highest the member may already have been sent under it. */
static void epoch_renewed(struct session *s, long long seq, const char *epoch, long total) {
    if (s->state != SS_READY || !epoch[0] || strcmp(epoch, s->epoch) == 0)
        return;
    util_strlcpy(s->epoch, epoch, sizeof(s->epoch));
    s->app->stats.epochs_renewed++;
    if (s->epoch_seq > (uint64_t)(seq > 0 ? seq : 0))
        seq = (long long)s->epoch_seq;
    /* the client's last seq from now on; a catch-up read in flight asked with the old ones */
    s->last_seq = seq > 0 ? (uint64_t)seq : 0;
    s->seq_floor = 0;
    if (s->catching_up)
        s->epoch_moved = 1;
    size_t len;
    char *text = proto_room_frame(s->room_id, "restored", total, seq, epoch, 0, &len);
    if (text)
        session_send_text(s, text, len);
    free(text);
}

static void room_restored(void *arg, uint64_t no, long long seq, const char *epoch, long total) {
    struct session *s = session_find_no(arg, no);
    if (s)
        epoch_renewed(s, seq, epoch, total);
}

static void auth_refuse(struct session *s, enum auth_result r);

static void room_forbidden(void *arg, uint64_t no) {
    struct session *s = session_find_no(arg, no);
    if (s && s->state == SS_IDENTIFYING)
        auth_refuse(s, AUTH_AUTO_ROOM);
}

/* The history a resuming session asked for: the answers, the missed messages, then the live
 * ones held meanwhile that the history did not hold already; then the session relays. */
static void room_resumed(void *arg, uint64_t no, const struct room_history *h) {
    struct session *s = session_find_no(arg, no);
    if (!s || (s->state != SS_RESUMING && !(s->state == SS_READY && s->catching_up)))
        return;
    struct session_join *j = s->join;
    uint64_t sent_upto = h->seq > 0 ? (uint64_t)h->seq : 0; /* held frames up to it came in h */
    if (s->catching_up) {
        int moved = s->epoch_moved;
        s->catching_up = 0;
        s->epoch_moved = 0;
        if (!h->recovered && !moved && h->epoch[0] && strcmp(h->epoch, s->epoch) == 0) {
            /* a gap the room's history cannot fill: the client resumes and learns it */
            join_free(s);
            s->app->stats.catchups_failed++;
            session_send_error(s, PROTO_E_UNAVAILABLE,
                               "messages of this room may have been missed while the node "
                               "reconnected to the cluster store; connect again with last_seq");
            session_close(s, CLOSE_SERVICE_RESTART, "resume to catch up", "catch_up");
            return;
        }
        if (!h->recovered) {
            /* Redis lost the room's state (a new epoch, or none yet while this node restores
             * it): what it published before is gone with it. The member stays, as before
             * history existed, and gets what the room publishes from now on: every held frame
             * (no history comes with an answer that is not recovered). The restore of its
             * membership announces the new epoch (epoch_renewed). */
            s->app->stats.catchups_lost++;
            if (!moved)
                s->last_seq = 0;
            sent_upto = 0;
        } else {
            s->app->stats.catchups++;
        }
    } else {
        if (h->recovered)
            s->app->stats.resumes_recovered++;
        else
            s->app->stats.resumes_unrecovered++;
        j->room_seq = h->seq;
        util_strlcpy(j->room_epoch, h->epoch, sizeof(j->room_epoch));
        session_room_ready(s, h->recovered);
    }
    for (size_t i = 0; i < h->n && s->state == SS_READY; i++) {
        struct frame *f = frame_new(h->msgs[i].frame, h->msgs[i].len, h->msgs[i].binary);
        if (!f)
            break;
        f->seq = h->msgs[i].seq;
        session_send_frame(s, f);
        frame_unref(f);
    }
    s->seq_floor = sent_upto;
    if (s->seq_floor > s->last_seq)
        s->last_seq = s->seq_floor;
    for (uint32_t i = 0; i < j->nheld && s->state == SS_READY; i++)
        if (!j->held[i]->seq || j->held[i]->seq > s->seq_floor) {
            session_send_frame(s, j->held[i]);
            if (j->held[i]->seq > s->last_seq)
                s->last_seq = j->held[i]->seq;
        }
    join_free(s);
}

static void room_acked(void *arg, uint64_t no, const char *ack_id, long long seq, int resent) {
    (void)resent;
    struct session *s = session_find_no(arg, no);
    if (!s)
        return;
    size_t len;
    char *text = proto_ack_frame(ack_id, seq, &len);
    if (text)
        session_send_text(s, text, len);
    free(text);
}

const struct room_ops session_room_ops = {
    room_identified, room_failed,    room_error,   room_answer, room_replaced,
    room_restored,   room_forbidden, room_resumed, room_acked,
};

/* The local sessions, in a snapshot the caller frees (sessions may close while it is used). */
static size_t local_sessions(struct app *app, struct session ***out) {
    size_t n = hmap_count(app->sessions->by_no);
    *out = n ? malloc(n * sizeof(**out)) : NULL;
    return *out ? hmap_values(app->sessions->by_no, (void **)*out, n) : 0;
}

void session_restore_all(struct app *app) {
    struct session **ss;
    size_t n = local_sessions(app, &ss);
    for (size_t i = 0; i < n; i++) {
        if (!ss[i]->joined)
            continue;
        /* Redis may have lost the room (a new epoch: seq starts again below the floor) */
        ss[i]->seq_floor = 0;
        ss[i]->epoch_seq = 0;
        char conn[CONNID_MAX];
        struct room_conn c = room_conn_of(ss[i], conn, sizeof(conn));
        room_restore(app, &c);
    }
    free(ss);
}

size_t session_each_member(struct app *app, size_t max,
                           void (*fn)(const struct room_conn *c, void *arg), void *arg) {
    struct session **ss;
    size_t n = local_sessions(app, &ss), members = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ss[i]->joined)
            continue;
        if (members++ < max) {
            char conn[CONNID_MAX];
            struct room_conn c = room_conn_of(ss[i], conn, sizeof(conn));
            fn(&c, arg);
        }
    }
    free(ss);
    return members;
}

void session_drain_all(struct app *app) {
    struct session **ss;
    size_t n = local_sessions(app, &ss);
    for (size_t i = 0; i < n; i++)
        session_drain(ss[i]);
    free(ss);
}

int session_holds_membership(struct app *app, const char *conn, size_t len) {
    struct session *s = session_find(app, conn, len);
    return s && s->joined;
}

static void catch_up(struct session *s);

static void fanout_ready(struct fanout_member *m, void *arg) {
    (void)arg;
    struct session *s = lws_container_of(m, struct session, member);
    if (s->state == SS_READY) {
        catch_up(s);
        if (s->held) /* a frame held while Redis was away waits for the room's subscription */
            release_if_ready(&s->hold_deadline, NULL);
        return;
    }
    if (s->state != SS_JOINING)
        return;
    if (!s->join->resume) {
        session_room_ready(s, -1);
        join_free(s);
        return;
    }
    /* Subscribed first: every message after the history read reaches us live. */
    char conn[CONNID_MAX];
    struct room_conn c = room_conn_of(s, conn, sizeof(conn));
    s->state = SS_RESUMING;
    if (room_resume(s->app, &c, s->join->resume_seq, s->join->resume_epoch))
        session_on_failed(s, PROTO_E_UNAVAILABLE, "the cluster store is unavailable");
}

/* Holds a live frame until the history is sent; cuts the client off past send-queue-bytes. */
static void hold(struct session *s, struct frame *f);

/* The room's subscription came back after the subscription link was lost: what was published
 * meanwhile never reached this node. A ready member is sent it from the room history, after
 * the last seq it was sent, with the live frames arriving meanwhile held and merged by seq as
 * for a resume; it keeps relaying its own messages all along. Without history, nothing can be
 * caught up (the gap is what it was before history existed). */
static void read_missed(struct session *s) {
    char conn[CONNID_MAX];
    struct room_conn c = room_conn_of(s, conn, sizeof(conn));
    s->catchup_pending = room_resume(s->app, &c, (long long)s->last_seq, s->epoch) != 0;
}

static void catch_up(struct session *s) {
    struct app *app = s->app;
    long size = app->opt.history_ttl_ms ? app->opt.history_size : 0;
    if (s->catching_up || !s->epoch[0] || size == 0)
        return;
    if (!s->join && !(s->join = calloc(1, sizeof(*s->join))))
        return;
    /* From now on live frames are held: the read may have to wait until the command link is
     * back too (the two links reconnect on their own), and what arrives meanwhile must follow
     * the history, not pass it. */
    s->catching_up = 1;
    read_missed(s);
}

static void hold(struct session *s, struct frame *f) {
    struct session_join *j = s->join;
    if (j->held_bytes + f->len > (size_t)s->app->opt.send_queue_bytes) {
        s->app->stats.slow_consumers++;
        held_free(j);
        cut_off(s, "slow_consumer");
        return;
    }
    if (j->nheld == j->held_cap) {
        uint32_t cap = j->held_cap ? j->held_cap * 2 : 8;
        struct frame **h = realloc(j->held, cap * sizeof(*h));
        if (!h) {
            held_free(j);
            cut_off(s, "out_of_memory");
            return;
        }
        j->held = h;
        j->held_cap = cap;
    }
    j->held[j->nheld++] = frame_ref(f);
    j->held_bytes += f->len;
}

static void fanout_deliver(struct fanout_member *m, struct frame *f, void *arg) {
    (void)arg;
    struct session *s = lws_container_of(m, struct session, member);
    if (s->state == SS_READY && !s->catching_up) {
        if (s->seq_floor && f->seq) {
            if (f->seq <= s->seq_floor)
                return;       /* sent from the history already */
            s->seq_floor = 0; /* the room's channel is in order: no older one follows */
        }
        if (f->seq)
            s->last_seq = f->seq;
        session_send_frame(s, f);
    } else if (s->state == SS_RESUMING || s->catching_up) {
        hold(s, f);
    }
}

static void fanout_kick(const char *conn, size_t len, void *arg) {
    struct app *app = arg;
    struct session *s = session_find(app, conn, len);
    if (s && s->state != SS_CLOSING) {
        app->stats.replaced++;
        session_send_error(s, PROTO_E_REPLACED,
                           "this device connected again; this connection is closed");
        session_close(s, 4001, "replaced by a newer connection", "replaced");
    }
}

/* The server API closes the connection: an error frame with the reason, then close 1008. */
static void fanout_disconnect(const char *conn, size_t len, const char *reason, size_t rlen,
                              void *arg) {
    struct app *app = arg;
    struct session *s = session_find(app, conn, len);
    char *why = strndup(reason, rlen);
    if (s && why && s->state != SS_CLOSING) {
        session_send_error(s, PROTO_E_DISCONNECTED, why);
        session_close(s, 1008, "disconnected by the server", "api_disconnect");
    }
    free(why);
}

const struct fanout_ops session_fanout_ops = {fanout_ready, fanout_deliver, fanout_kick,
                                              fanout_disconnect};

/* ---- authentication ------------------------------------------------------------------------- */

/* Counts a refused token, tells the client why and closes: 4403 "forbidden" for a room outside
 * the claims, 4401 "unauthorized" for everything else. */
static void auth_refuse(struct session *s, enum auth_result r) {
    s->app->stats.auth_failures[r]++;
    if (auth_reason_forbidden(r)) {
        session_send_error(s, PROTO_E_FORBIDDEN, auth_reason_message(r));
        session_close(s, CLOSE_FORBIDDEN, "forbidden", "forbidden");
    } else {
        session_send_error(s, PROTO_E_UNAUTHORIZED, auth_reason_message(r));
        session_close(s, CLOSE_UNAUTHORIZED, "unauthorized", "unauthorized");
    }
}

static int64_t now_s(void) {
    return util_now_ms() / 1000;
}

/* When a token with this exp stops being accepted (wall clock, ms). */
static int64_t expiry_ms(const struct session *s, int64_t exp) {
    return (exp + s->app->opt.jwt_leeway_s) * 1000;
}

/* Verifies the identify's token (the identify's "token", else the upgrade request's): its
 * device and, if the identify names one, its room. Returns 0 with s->claims set and the
 * identity claim in place of the identify's, or -1 when the session was refused (closing). */
static int authenticate(struct session *s, const char *buf, size_t len, struct proto_identify *id) {
    char *token = NULL;
    enum auth_result r = AUTH_OK;
    int found = proto_identify_token(buf, len, &token);
    if (found < 0)
        r = AUTH_MALFORMED;
    else if (!found && s->token_too_long)
        r = AUTH_TOO_LONG;
    else if (!found) {
        token = s->token;
        s->token = NULL;
    }
    free(s->token); /* the upgrade request's token is not needed after the identify */
    s->token = NULL;
    struct auth_claims *c = calloc(1, sizeof(*c));
    if (!c) {
        free(token);
        session_send_error(s, PROTO_E_UNAVAILABLE, "out of memory");
        session_close(s, CLOSE_INTERNAL, "out of memory", "error");
        return -1;
    }
    if (r == AUTH_OK)
        r = auth_verify(s->app->auth, token, now_s(), c);
    free(token);
    if (r == AUTH_OK && strcmp(c->sub, id->device_id) != 0)
        r = AUTH_OTHER_DEVICE;
    if (r == AUTH_OK && id->room_id[0] && !auth_room_allowed(c->rooms, id->room_id))
        r = AUTH_FORBIDDEN_ROOM;
    if (r != AUTH_OK ||
        expiry_set(&s->app->sessions->token_expiry, &s->expires, expiry_ms(s, c->exp))) {
        auth_claims_free(c);
        free(c);
        if (r != AUTH_OK) {
            auth_refuse(s, r);
        } else {
            session_send_error(s, PROTO_E_UNAVAILABLE, "out of memory");
            session_close(s, CLOSE_INTERNAL, "out of memory", "error");
        }
        return -1;
    }
    s->claims = c;
    if (c->identity)
        snprintf(id->identity, sizeof(id->identity), "%s", c->identity);
    return 0;
}

/* {"type":"refresh","token":...}: a newer token for the same device that still allows the
 * room replaces the connection's token and moves its expiry. A token that does not verify is
 * answered and otherwise ignored (the current one stays in force until its exp); one that no
 * longer allows the room closes the connection. */
static void on_refresh(struct session *s, json_t *value) {
    struct app *app = s->app;
    if (!app->auth || !s->claims) {
        session_send_error(s, PROTO_E_RESERVED_TYPE,
                           "type 'refresh' carries a token; this server does not use "
                           "authentication");
        return;
    }
    json_t *t = json_object_get(value, "token");
    struct auth_claims c;
    memset(&c, 0, sizeof(c));
    enum auth_result r = json_is_string(t)
                             ? auth_verify(app->auth, json_string_value(t), now_s(), &c)
                         : t && !json_is_null(t) ? AUTH_MALFORMED
                                                 : AUTH_MISSING;
    if (r == AUTH_OK && strcmp(c.sub, s->device_id) != 0)
        r = AUTH_OTHER_DEVICE;
    if (r == AUTH_OK && !auth_room_allowed(c.rooms, s->room_id))
        r = AUTH_FORBIDDEN_ROOM;
    if (r == AUTH_OK &&
        expiry_set(&app->sessions->token_expiry, &s->expires, expiry_ms(s, c.exp))) {
        auth_claims_free(&c);
        session_send_error(s, PROTO_E_UNAVAILABLE, "out of memory; the token was not replaced");
        return;
    }
    if (r != AUTH_OK) {
        auth_claims_free(&c);
        if (auth_reason_forbidden(r)) {
            auth_refuse(s, r);
            return;
        }
        char msg[320];
        snprintf(msg, sizeof(msg), "%s; the connection keeps its current token",
                 auth_reason_message(r));
        app->stats.auth_failures[r]++;
        session_send_error(s, PROTO_E_UNAUTHORIZED, msg);
        return;
    }
    auth_claims_free(s->claims);
    *s->claims = c;
    app->stats.auth_refreshes++;
    size_t len;
    char *text = proto_refreshed_frame(c.exp, &len);
    if (text)
        session_send_text(s, text, len);
    free(text);
}

static void on_identify(struct session *s, const char *buf, size_t len, int binary) {
    struct proto_identify id;
    const char *code;
    char msg[160];
    if (binary) {
        session_send_error(s, PROTO_E_NOT_IDENTIFIED,
                           "the first frame must be a JSON identify frame with device_id");
        session_close(s, CLOSE_POLICY, "identify first", "protocol_error");
        return;
    }
    if (proto_parse_identify(buf, len, &id, &code, msg, sizeof(msg))) {
        session_send_error(s, code, msg);
        session_close(s, CLOSE_POLICY, "invalid identify", "protocol_error");
        return;
    }
    deadline_stop(&s->identify_deadline);
    if (s->app->auth && authenticate(s, buf, len, &id))
        return;
    memcpy(s->device_id, id.device_id, sizeof(s->device_id));
    free(s->identity);
    s->identity = strdup(id.identity); /* most are short: not a fixed 257 bytes per connection */
    if (!s->identity) {
        session_send_error(s, PROTO_E_UNAVAILABLE, "out of memory");
        session_close(s, CLOSE_INTERNAL, "out of memory", "error");
        return;
    }
    if (!s->join && !(s->join = calloc(1, sizeof(*s->join)))) {
        session_send_error(s, PROTO_E_UNAVAILABLE, "out of memory");
        session_close(s, CLOSE_INTERNAL, "out of memory", "error");
        return;
    }
    memcpy(s->room_id, id.room_id, sizeof(s->room_id));
    s->presence = id.presence >= 0 ? (uint8_t)id.presence : s->app->opt.presence_events != 0;
    s->join->resume = (uint8_t)id.resume;
    s->join->resume_seq = id.last_seq;
    memcpy(s->join->resume_epoch, id.epoch, sizeof(s->join->resume_epoch));
    s->identified_at_ms = util_now_ms();
    s->state = SS_IDENTIFYING;
    /* Frames sent right behind the identify wait in lws until the room is answered. */
    pause_reading(s, PAUSE_IDENTIFY);
    char conn[CONNID_MAX];
    struct room_conn c = room_conn_of(s, conn, sizeof(conn));
    if (room_identify(s->app, &c)) {
        s->state = SS_NEW;
        s->room_id[0] = '\0';
        s->app->stats.redis_errors++;
        session_send_error(s, PROTO_E_UNAVAILABLE, "the cluster store is unavailable");
        session_close(s, CLOSE_TRY_AGAIN, "try again later", "unavailable");
    }
}

/* Takes one message of len bytes from both buckets, which may go into debt. Returns how many
 * milliseconds from now the next message may go (0: at once). Both limits are per connection:
 * the message rate bounds Redis round trips, the byte rate what one client can push into Redis
 * (and the archive stream) per second. */
static int64_t rate_take(struct session *s, size_t len, int64_t now) {
    const struct fe_options *o = &s->app->opt;
    double rate = (double)o->max_msgs_per_sec, brate = (double)o->max_bytes_per_sec;
    if (s->tokens_at_ms == 0) {
        s->tokens = rate;
        s->byte_tokens = brate;
    } else {
        double dt = (double)(now - s->tokens_at_ms) / 1000.0;
        s->tokens += dt * rate;
        s->byte_tokens += dt * brate;
    }
    if (s->tokens > rate)
        s->tokens = rate;
    if (s->byte_tokens > brate)
        s->byte_tokens = brate;
    s->tokens_at_ms = now;
    s->tokens -= 1.0;
    s->byte_tokens -= (double)len;
    if (s->tokens >= 1.0 && s->byte_tokens >= 0.0)
        return 0;
    double wait = s->tokens < 1.0 ? (1.0 - s->tokens) / rate : 0.0;
    if (-s->byte_tokens / brate > wait)
        wait = -s->byte_tokens / brate;
    return (int64_t)(wait * 1000.0) + 1;
}

/* The buckets allow the next message again. */
static void rate_resumed(struct expiry_entry *e, void *arg) {
    (void)arg;
    resume_reading(lws_container_of(e, struct session, resume), PAUSE_RATE);
}

/* Over the rate: the message was taken, the next waits in TCP until the buckets refill. */
static void rate_pause(struct session *s, int64_t at_ms) {
    if (expiry_set(&s->app->sessions->rate_resume, &s->resume, at_ms) == 0)
        pause_reading(s, PAUSE_RATE);
}

/* Answers a message that needs Redis while Redis is unavailable; 1 if it did. */
static int redis_down(struct session *s) {
    if (app_redis_ready(s->app))
        return 0;
    s->app->stats.redis_errors++;
    session_send_error(s, PROTO_E_UNAVAILABLE,
                       "message not delivered: the cluster store is unavailable");
    return 1;
}

/* Relays one message of s to its room (room_send). */
static void send_to_room(struct session *s, const char *prefix, size_t plen, const char *buf,
                         size_t len, const char *kind, const char *ack_id) {
    struct app *app = s->app;
    app->stats.messages_in++;
    char conn[CONNID_MAX];
    struct room_conn c = room_conn_of(s, conn, sizeof(conn));
    c.refresh_history =
        fanout_room_due(app->fanout, &s->member, util_mono_ms(), room_history_refresh_ms(app));
    if (room_send(app, &c, prefix, plen, buf, len, kind, ack_id))
        session_send_error(s, PROTO_E_UNAVAILABLE, "message not delivered");
}

/* A frame of a ready client, when it may be handled (Redis up, or no longer waited for). */
static void handle_message(struct session *s, const char *buf, size_t len, int binary) {
    struct app *app = s->app;
    int64_t now = util_mono_ms();
    int64_t wait = rate_take(s, len, now);
    if (wait)
        rate_pause(s, now + wait);
    if (binary) {
        if (redis_down(s))
            return;
        send_to_room(s, NULL, 0, buf, len, "binary", NULL);
        return;
    }
    json_t *value;
    const char *kind = "json", *code = NULL;
    char msg[160];
    switch (proto_classify(buf, len, &value, &kind, &code, msg, sizeof(msg))) {
    case PROTO_QUERY_ROOM:
        if (redis_down(s))
            return;
        char conn[CONNID_MAX];
        struct room_conn c = room_conn_of(s, conn, sizeof(conn));
        switch (room_query(app, &c)) {
        case 0:
            break;
        case 1:
            session_send_error(s, PROTO_E_RATE_LIMITED,
                               "too many room queries in progress on this node; try again");
            break;
        default:
            session_send_error(s, PROTO_E_UNAVAILABLE, "the cluster store is unavailable");
        }
        return;
    case PROTO_REFRESH:
        on_refresh(s, value);
        json_decref(value);
        return;
    case PROTO_REJECT:
        session_send_error(s, code, msg);
        return;
    case PROTO_RELAY:
        break;
    }
    const char *ack = NULL;
    char ack_id[PROTO_MAX_ACK_ID + 1];
    int has_ack = proto_ack_id(value, &ack);
    if (has_ack < 0) {
        json_decref(value);
        session_send_error(s, PROTO_E_INVALID_ACK_ID,
                           "ack_id must be a string of 1-64 characters from A-Z a-z 0-9 _ . : @ "
                           "-; the message was not relayed");
        return;
    }
    if (has_ack)
        util_strlcpy(ack_id, ack, sizeof(ack_id)); /* value is changed below */
    if (redis_down(s)) {
        json_decref(value);
        return;
    }
    size_t plen;
    char *prefix =
        proto_envelope_prefix(value, buf, len, s->device_id, s->room_id, util_now_ms(), &plen);
    json_decref(value);
    if (!prefix) {
        session_send_error(s, PROTO_E_UNAVAILABLE, "could not build the message");
        return;
    }
    send_to_room(s, prefix, plen, buf, len, kind, has_ack ? ack_id : NULL);
    free(prefix);
}

/* Handles the held frame (Redis is back, or the hold timed out) and resumes reading. */
static void release_held(struct session *s) {
    struct held *h = s->held;
    s->held = NULL;
    deadline_stop(&s->hold_deadline);
    if (h)
        handle_message(s, h->data, h->len, h->binary);
    free(h);
    resume_reading(s, PAUSE_REDIS);
}

/* Redis did not come back within redis-hold-ms: the held frame is answered (unavailable, for
 * what needs Redis), and later frames are answered at once until Redis is back, so that a client
 * learns of a long outage once rather than one message per redis-hold-ms. */
static void hold_expired(struct deadline *d, void *arg) {
    struct sessions *ss = arg;
    struct session *s = lws_container_of(d, struct session, hold_deadline);
    s->no_hold_until = ss->redis_gen + 1;
    release_held(s);
}

/* A held frame goes once Redis is ready and the node receives the room's messages again (after
 * the subscription link came back), so that members here miss none of it. */
static void release_if_ready(struct deadline *d, void *arg) {
    (void)arg;
    struct session *s = lws_container_of(d, struct session, hold_deadline);
    if (app_redis_ready(s->app) && fanout_member_ready(&s->member))
        release_held(s);
}

void session_redis_ready(struct app *app) {
    app->sessions->redis_gen++;
    deadlines_each(&app->sessions->redis_hold, release_if_ready, NULL);
    struct session **ss;
    size_t n = local_sessions(app, &ss);
    for (size_t i = 0; i < n; i++)
        if (ss[i]->state == SS_READY && ss[i]->catching_up && ss[i]->catchup_pending)
            read_missed(ss[i]);
    free(ss);
}

/* While Redis is unreachable a ready client's frame is kept (and reading paused behind it) until
 * Redis is back or redis-hold-ms passed; every frame is, so that answers keep their order. */
static void on_message(struct session *s, const char *buf, size_t len, int binary) {
    struct app *app = s->app;
    if (!app_redis_ready(app) && app->opt.redis_hold_ms > 0 &&
        s->no_hold_until != app->sessions->redis_gen + 1) {
        struct held *h = malloc(sizeof(*h) + len);
        if (h) {
            h->len = len;
            h->binary = binary;
            memcpy(h->data, buf, len);
            s->held = h;
            deadline_start(&app->sessions->redis_hold, &s->hold_deadline);
            pause_reading(s, PAUSE_REDIS);
            return;
        }
    }
    handle_message(s, buf, len, binary);
}

static void on_frame(struct session *s, const char *buf, size_t len, int binary) {
    s->app->stats.bytes_in += len;
    switch (s->state) {
    case SS_NEW:
        on_identify(s, buf, len, binary);
        break;
    case SS_READY:
        on_message(s, buf, len, binary);
        break;
    default:
        break; /* closing: ignore */
    }
}

/* A whole message (compressed if s->rx_deflated): inflated, its text checked, then handled. */
static int on_complete(struct session *s, const void *msg, size_t n, int binary) {
    struct app *app = s->app;
    int inflated = 0;
    if (s->rx_deflated) {
        const void *out;
        switch (deflate_inflate(app->deflate, msg, n, (size_t)app->opt.max_frame_bytes, &out, &n)) {
        case DEFLATE_RX_OK:
            msg = out;
            inflated = 1;
            break;
        case DEFLATE_RX_TOO_BIG:
            rxbuf_done(&s->rx);
            app_count_error(app, PROTO_E_TOO_BIG);
            session_close(s, CLOSE_TOO_BIG, "message too big", "message_too_big");
            return 0;
        case DEFLATE_RX_INVALID:
            rxbuf_done(&s->rx);
            session_close(s, CLOSE_INVALID_DATA, "invalid compressed data", "protocol_error");
            return 0;
        case DEFLATE_RX_NOMEM:
            rxbuf_done(&s->rx);
            return -1;
        }
    }
    if (!binary && !utf8_valid(msg, n)) {
        app->stats.invalid_utf8++;
        session_close(s, CLOSE_INVALID_DATA, "invalid UTF-8", "protocol_error");
    } else {
        on_frame(s, msg, n, binary);
    }
    if (inflated)
        deflate_rx_done(app->deflate);
    rxbuf_done(&s->rx);
    return 0;
}

static int on_receive(struct session *s, struct lws *wsi, const char *in, size_t len) {
    const void *msg;
    size_t n;
    if (s->state == SS_CLOSING) {
        /* Our close is on its way: read and discard until the client's. After a message too big
         * the close waits for its end, as long as the client keeps sending it: a client is
         * reading only once its send is done, and a close that went out earlier would be cut
         * off (lws waits 5 s at most) while a client on a slow link is still sending. */
        if (s->discarding) {
            if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
                s->discarding = 0;
                lws_callback_on_writable(wsi);
            }
            deadline_stop(&s->close_deadline);
            if (s->discarding)
                deadline_start(&s->app->sessions->close_linger, &s->close_deadline);
        }
        return 0;
    }
    size_t max = (size_t)s->app->opt.max_frame_bytes;
    int first = lws_is_first_fragment(wsi);
    if (first) /* RSV1 of a message's first frame: compressed (lws refuses it unnegotiated) */
        s->rx_deflated = (lws_get_reserved_bits(wsi) & 0x40) != 0;
    switch (rxbuf_add(&s->rx, first, lws_is_final_fragment(wsi), lws_remaining_packet_payload(wsi),
                      in, len, s->rx_deflated ? deflate_input_limit(max) : max, &msg, &n)) {
    case RXBUF_MORE:
        return 0;
    case RXBUF_COMPLETE:
        return on_complete(s, msg, n, lws_frame_is_binary(wsi));
    case RXBUF_TOO_BIG:
        /* The rest of the message is read and discarded (SS_CLOSING), then the close goes out:
         * the client may still be sending it, and a socket closed with unread data resets. */
        app_count_error(s->app, PROTO_E_TOO_BIG);
        session_close(s, CLOSE_TOO_BIG, "message too big", "message_too_big");
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0) {
            s->discarding = 1;
            deadline_start(&s->app->sessions->close_linger, &s->close_deadline);
        }
        return 0;
    case RXBUF_NOMEM:
        break;
    }
    return -1;
}

/* The 101 response's last lines: the permessage-deflate line lws wrote is taken out while the
 * edge edits the line before it, and put back with its parameters. */
static int add_headers(struct lws *wsi, struct session *s, void *in, size_t len) {
    struct deflate_params p;
    int rc, zline = deflate_headers_take(in);
    edge_callback(wsi, LWS_CALLBACK_ADD_HEADERS, in, len, &rc);
    if (rc || !zline)
        return rc;
    if (deflate_headers_put(wsi, in, &p))
        return -1;
    if (s)
        s->zbits = p.server_bits;
    return 0;
}

int session_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len) {
    struct session *s = user;
    int rc;
    if (reason == LWS_CALLBACK_ADD_HEADERS)
        return add_headers(wsi, s, in, len);
    if (edge_callback(wsi, reason, in, len, &rc))
        return rc;
    switch (reason) {
    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
        return deflate_confirm(wsi, in);
    case LWS_CALLBACK_ESTABLISHED:
        if (!s)
            return -1;
        return on_established(wsi, s);
    case LWS_CALLBACK_RECEIVE:
        if (!s || !s->app || (s->state == SS_CLOSING && !s->close_code))
            return -1;
        return on_receive(s, wsi, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!s || !s->app)
            return -1;
        return on_writeable(s);
    case LWS_CALLBACK_CLOSED:
        if (s)
            on_closed(s);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
