/* rrm-frontend: configuration, the lws context, the Redis links, signals and the drain. */
#include "app.h"
#include "auth.h"
#include "deflate.h"
#include "edge.h"
#include "fanout.h"
#include "http.h"
#include "keys.h"
#include "lwslog.h"
#include "node.h"
#include "outage.h"
#include "outq.h"
#include "proto.h"
#include "redis_loop.h"
#include "router.h"
#include "session.h"
#include "status.h"
#include "sublinks.h"
#include "tls.h"
#include "util.h"

#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void on_sighup(int sig) {
    (void)sig;
    reload_requested = 1;
}

/* SIGHUP: reads the files that may be renewed while the node runs, without dropping
 * connections. What fails to load keeps what was in use. */
static void reload(struct app *app) {
    char err[512];
    if (app->auth) {
        if (auth_reload(app->auth, err, sizeof(err)))
            log_json(&app->log, LOG_ERROR, "token keys not reloaded",
                     json_pack("{s:s}", "error", err));
        else
            log_json(
                &app->log, LOG_INFO, "token keys reloaded",
                json_pack("{s:I}", "public_keys", (json_int_t)auth_public_key_count(app->auth)));
    }
    if (app->tls)
        tls_reload(app->tls);
}

/* The client vhost's first protocol is where lws hands over the vhost's SSL_CTX. */
static int client_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len) {
    if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS) {
        struct app *app = lws_context_user(lws_get_context(wsi));
        return app->tls ? tls_attach(app->tls, user) : 0;
    }
    return session_callback(wsi, reason, user, in, len);
}

static void became_ready(struct app *app) {
    if (app_redis_ready(app)) {
        log_msg(&app->log, LOG_INFO, "cluster store ready");
        node_redis_up(app->node);
        session_redis_ready(app);
    }
}

static void cmd_up(void *arg) {
    became_ready(arg);
}

static void cmd_down(void *arg) {
    struct app *app = arg;
    fanout_rooms_due_reset(app->fanout); /* refreshes of history TTLs may be lost */
}

static void cmd_topology(void *arg) {
    struct app *app = arg;
    if (app->subs)
        sublinks_topology(app->subs);
}

static void sub_up(void *arg) {
    struct app *app = arg;
    app->sub_up = 1;
    became_ready(app);
}

static void sub_down(void *arg) {
    ((struct app *)arg)->sub_up = 0;
}

static void sub_confirmed(const char *ch, size_t len, void *arg) {
    fanout_confirmed(((struct app *)arg)->fanout, ch, len);
}

static void sub_lost(const char *ch, size_t len, void *arg) {
    fanout_lost(((struct app *)arg)->fanout, ch, len);
}

static void sub_unsubscribed(const char *ch, size_t len, void *arg) {
    fanout_unsubscribed(((struct app *)arg)->fanout, ch, len);
}

static void sub_message(const char *ch, size_t len, const char *payload, size_t plen, void *arg) {
    fanout_message(((struct app *)arg)->fanout, ch, len, payload, plen);
}

static void sub_control(const char *payload, size_t len, void *arg) {
    fanout_control(((struct app *)arg)->fanout, payload, len);
}

/* What one Redis read brings (relayed messages, replies) is written to clients as one batch. */
static void read_begin(void *arg) {
    outq_batch_begin(((struct app *)arg)->outq);
}

static void read_end(void *arg) {
    outq_batch_end(((struct app *)arg)->outq);
}

static const struct router_ops cmd_ops = {cmd_up, cmd_down, read_begin, read_end, cmd_topology};
static const struct sublinks_ops sub_ops = {
    .up = sub_up,
    .down = sub_down,
    .confirmed = sub_confirmed,
    .unsubscribed = sub_unsubscribed,
    .lost = sub_lost,
    .message = sub_message,
    .control = sub_control,
    .on_read_begin = read_begin,
    .on_read_end = read_end,
};

/* The Redis links are adopted on a vhost without a listener, so no client can ask for them. */
static const struct lws_protocols internal_protocols[] = {
    {RL_PROTOCOL_NAME, rl_protocol_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void default_node_id(char *buf, size_t cap) {
    char host[64] = "node";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(buf, cap, "%.40s-%ld", host, (long)getpid());
    for (char *p = buf; *p; p++)
        if (!proto_valid_id(p, 1, 1))
            *p = '-';
}

static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void deregistered(struct app *app) {
    app->stopping = 1;
}

static void start_drain(struct app *app) {
    app->draining = 1;
    app->drain_deadline_ms = util_mono_ms() + app->opt.drain_timeout_ms;
    log_json(&app->log, LOG_INFO, "draining",
             json_pack("{s:I}", "connections", (json_int_t)app->connections));
    session_drain_all(app);
}

struct ticker {
    struct app *app;
    struct ev_loop *loop;
    int collect_set, was_busy;
    lws_sorted_usec_list_t sul;
    int deregistering;
    struct outage redis_outage;
};

/* Redis unreachable (the links' own lines say when one drops, at once): a warning once it has
 * lasted REDIS_WARN_GRACE_MS, repeated every RRM_REDIS_WARN_INTERVAL_MS, and a line when it is
 * back. At start, a Redis that cannot be reached is reported the same way. */
#define REDIS_WARN_GRACE_MS 1000

static void watch_redis(struct ticker *t) {
    struct app *app = t->app;
    int64_t lasted_ms = 0;
    enum outage_report r =
        outage_update(&t->redis_outage, app_redis_ready(app), util_mono_ms(), &lasted_ms);
    if (r == OUTAGE_NONE)
        return;
    json_t *f =
        json_pack("{s:f, s:s, s:I}", "down_s", log_round((double)lasted_ms / 1000.0, 1),
                  "redis_host", app->opt.redis_host, "redis_port", (json_int_t)app->opt.redis_port);
    if (r == OUTAGE_BACK) {
        log_json(&app->log, LOG_INFO, "redis reachable again", f);
        return;
    }
    if (f) {
        json_object_set_new(f, "commands_up",
                            json_boolean(app->router && router_ready(app->router)));
        json_object_set_new(f, "subscriptions_up", json_boolean(app->sub_up));
    }
    log_json(&app->log, LOG_WARN,
             r == OUTAGE_DOWN ? "redis unreachable" : "redis still unreachable", f);
}

/* Signals only interrupt the loop's wait; this tick makes sure a stop request is seen promptly even
 * if the signal landed just before poll() started, and watches the drain's progress. */
static void tick_cb(lws_sorted_usec_list_t *sul) {
    struct ticker *t = lws_container_of(sul, struct ticker, sul);
    struct app *app = t->app;
    outq_load_tick(app->outq, util_mono_ms());
    int busy = outq_busy(app->outq);
    /* Below coalesce-above, the loop waits collect-us between polls so that a wake-up handles
     * several messages (and Redis gets them pipelined); above it, frames are coalesced instead
     * and a wait would only add latency. */
    if (!t->collect_set || busy != t->was_busy) {
        t->collect_set = 1;
        t->was_busy = busy;
        ev_set_io_collect_interval(t->loop, busy ? 0.0 : (double)app->opt.collect_us / 1e6);
    }
    watch_redis(t);
    if (reload_requested) {
        reload_requested = 0;
        reload(app);
    }
    if (app->tls)
        tls_watch(app->tls, util_mono_ms());
    if (stop_requested && !app->draining)
        start_drain(app);
    if (app->draining && !t->deregistering &&
        ((app->connections == 0 && app->pending_writes <= 0) ||
         util_mono_ms() >= app->drain_deadline_ms)) {
        t->deregistering = 1;
        node_deregister(app->node, deregistered);
    }
    if (app->draining && util_mono_ms() >= app->drain_deadline_ms + 2000)
        app->stopping = 1; /* Redis never answered the deregistration */
    lws_sul_schedule(app->cx, 0, &t->sul, tick_cb, 100 * LWS_US_PER_MS);
}

int main(int argc, char **argv) {
    static struct app app;
    char err[512];
    int rc = cfg_load(fe_option_table, fe_option_count, &app.opt, argc, argv, err, sizeof(err));
    if (rc == CFG_HELP) {
        cfg_usage(stdout, "rrm-frontend",
                  "WebSocket room server node of RealTime Room Manager (state in Redis).",
                  fe_option_table, fe_option_count);
        return 0;
    }
    if (rc == CFG_VERSION) {
        printf("rrm-frontend %s\nlibwebsockets %s\nhiredis %d.%d.%d\n", RRM_VERSION,
               lws_get_library_version(), HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
        return 0;
    }
    if (rc < 0 || fe_options_check(&app.opt, err, sizeof(err)) < 0) {
        fprintf(stderr, "rrm-frontend: %s\n", err);
        return 2;
    }
    if (app.opt.node_id[0])
        util_strlcpy(app.node_id, app.opt.node_id, sizeof(app.node_id));
    else
        default_node_id(app.node_id, sizeof(app.node_id));
    app.log.program = "rrm-frontend";
    app.log.node = app.node_id;
    log_level_parse(app.opt.log_level, &app.log.min);
    app.started_ms = util_now_ms();
    raise_fd_limit();
    if (app.opt.jwt_secret[0] || app.opt.jwt_public_key[0]) {
        app.auth = auth_create(app.opt.jwt_secret, app.opt.jwt_public_key, app.opt.jwt_leeway_s,
                               err, sizeof(err));
        if (!app.auth) {
            fprintf(stderr, "rrm-frontend: %s\n", err);
            return 2;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_sighup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (app.opt.tls_cert[0]) {
        app.tls = tls_create(app.opt.tls_cert, app.opt.tls_key, app.opt.tls_watch_ms, &app.log, err,
                             sizeof(err));
        if (!app.tls) {
            fprintf(stderr, "rrm-frontend: %s\n", err);
            return 2;
        }
    }

    lwslog_attach(&app.log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.user = &app;
    /* libev (epoll) instead of lws's default poll(): poll() scans every connection on every
     * wake-up, which dominated the profile with a few hundred clients. The loop is ours
     * ("foreign") so that one iteration at a time can be run between checks of the stop flag. */
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    void *foreign_loops[] = {loop};
    if (!loop) {
        fprintf(stderr, "rrm-frontend: cannot create the event loop\n");
        return 1;
    }
    info.foreign_loops = foreign_loops;
    /* No LWS_SERVER_OPTION_VALIDATE_UTF8: lws would check compressed bytes; session.c checks
     * each text message once whole (utf8.h). */
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6 |
                   LWS_SERVER_OPTION_LIBEV;
    if (app.tls)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.fd_limit_per_thread = 0;
    info.timeout_secs = 20;
    /* Header buffers exist only during the HTTP handshake (lws frees them once nobody waits for
     * one), so the pool is a ceiling for bursts, not a reservation: large enough that a couple
     * of hundred connections dribbling their headers (slowloris) leave buffers for everyone
     * else. A connection that finds none waits in line, and the handshake deadline bounds that
     * wait; edge.c trims the heap after a burst so that idle memory does not grow with the pool.
     * Not larger: lws keeps each holder's timeout in one sorted list, walked on every insert. */
    info.max_http_header_pool = EDGE_HEADER_POOL;
    app.cx = lws_create_context(&info);
    if (!app.cx) {
        fprintf(stderr, "rrm-frontend: cannot create the WebSocket context\n");
        return 1;
    }
    if (app.opt.deflate && !(app.deflate = deflate_create((size_t)app.opt.deflate_min_bytes))) {
        fprintf(stderr, "rrm-frontend: out of memory at start\n");
        return 1;
    }
    if (session_setup(&app)) {
        fprintf(stderr, "rrm-frontend: out of memory at start\n");
        return 1;
    }
    app.edge = edge_create(&app);
    if (!app.edge) {
        fprintf(stderr, "rrm-frontend: out of memory at start\n");
        return 1;
    }
    /* What clients can reach: the listening vhost. rx_buffer_size: what lws allocates per
     * connection to hand frames over; longer messages arrive in pieces, which session.c
     * assembles. Small keeps idle connections cheap. */
    const struct lws_protocols client_protocols[] = {
        {"rrm", client_callback, session_size, 512, 0, NULL, OUTQ_WRITE_BATCH},
        {edge_subprotocol_alias(app.edge), session_callback, session_size, 512, 0, NULL,
         OUTQ_WRITE_BATCH},
        {HTTP_PROTOCOL_NAME, http_callback, http_conn_size, 0, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    /* Plain HTTP requests (every path) go to the HTTP protocol; upgrades never see mounts. */
    static const struct lws_http_mount http_mount = {
        .mountpoint = "/",
        .origin = HTTP_PROTOCOL_NAME,
        .origin_protocol = LWSMPRO_CALLBACK,
        .mountpoint_len = 1,
    };
    info.mounts = &http_mount;
    info.port = (int)app.opt.port;
    info.iface = app.opt.bind[0] ? app.opt.bind : NULL;
    info.protocols = client_protocols;
    info.vhost_name = "clients";
    /* permessage-deflate: negotiated and done by deflate.c, not by lws's own extension */
    info.extensions = app.deflate ? deflate_extensions : NULL;
    /* lws's own idle limit on a connection holding a header buffer (whole seconds); the edge's
     * deadline (RRM_HANDSHAKE_TIMEOUT_MS) is the finer one. */
    info.timeout_secs_ah_idle = (unsigned int)((app.opt.handshake_timeout_ms + 999) / 1000);
    /* Dead peers (a phone that lost its network) are found by TCP keepalive in the kernel, not
     * by lws's idle pings: lws keeps a ping timer per connection in its one sorted timer list
     * and moves it on every received frame, a walk over every connection each time (most of a
     * node's CPU while thousands connect). Keepalive: probes after 60 s of silence, closed after
     * 5 unanswered probes 10 s apart. */
    static const lws_retry_bo_t no_idle_pings = {.secs_since_valid_ping = 0,
                                                 .secs_since_valid_hangup = 0};
    info.retry_and_idle_policy = &no_idle_pings;
    info.ka_time = 60;
    info.ka_probes = 5;
    info.ka_interval = 10;
    /* With TLS, the vhost's SSL_CTX is made without certificate files: client_callback installs
     * the credentials tls.c loaded, so that a renewal can replace them. Without
     * LWS_SERVER_OPTION_ALLOW_NON_SSL_ON_SSL_PORT, lws drops a connection that does not start
     * with a TLS handshake. */
    if (app.tls)
        info.options |= LWS_SERVER_OPTION_CREATE_VHOST_SSL_CTX;
    if (!lws_create_vhost(app.cx, &info)) {
        fprintf(stderr, "rrm-frontend: cannot listen on port %ld (RRM_PORT)\n", app.opt.port);
        return 1;
    }
    info.options &= ~(uint64_t)LWS_SERVER_OPTION_CREATE_VHOST_SSL_CTX; /* the others: plain */
    info.extensions = NULL;
    /* What operators reach: plain HTTP only (http.c serves /metrics and /status there; edge.c
     * refuses upgrades), through the same edge and deadline as the public listener. */
    const struct lws_protocols admin_protocols[] = {
        {HTTP_PROTOCOL_NAME, http_callback, http_conn_size, 0, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    if (app.opt.admin_port) {
        info.port = (int)app.opt.admin_port;
        info.iface = app.opt.admin_bind[0] ? app.opt.admin_bind : NULL;
        info.protocols = admin_protocols;
        info.vhost_name = "admin";
        app.admin_vh = lws_create_vhost(app.cx, &info);
        if (!app.admin_vh) {
            fprintf(stderr, "rrm-frontend: cannot listen on port %ld (RRM_ADMIN_PORT)\n",
                    app.opt.admin_port);
            return 1;
        }
    }
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.iface = NULL;
    info.protocols = internal_protocols;
    info.vhost_name = "internal";
    app.vh = lws_create_vhost(app.cx, &info);
    app.fanout = fanout_create(&app, &session_fanout_ops, &app);
    app.room_ops = &session_room_ops;
    app.room_arg = &app;
    app.node = node_create(&app);
    app.status = status_create(&app);
    struct router_options cro = {
        .host = app.opt.redis_host,
        .port = (int)app.opt.redis_port,
        .password = app.opt.redis_password,
        .cluster = (int)app.opt.redis_cluster,
        .nodes = app.opt.redis_nodes,
        .connect_timeout_ms = 2000,
        .ping_interval_ms = 1000,
        .ping_timeout_ms = 3000,
        .params = room_send_params(&app),
    };
    app.router = router_create(app.cx, app.vh, &cro, &cmd_ops, &app, &app.log);
    char node_channel[KEYS_MAX];
    keys_node_channel(node_channel, sizeof(node_channel), app.node_id);
    struct sublinks_options so = {
        .password = app.opt.redis_password,
        .connect_timeout_ms = 2000,
        .ping_timeout_ms = 3000,
        .control = node_channel,
    };
    if (app.router)
        app.subs = sublinks_create(app.cx, app.vh, app.router, &so, &sub_ops, &app, &app.log);
    if (!app.vh || !app.fanout || !app.node || !app.status || !app.router || !app.subs) {
        fprintf(stderr, "rrm-frontend: out of memory at start\n");
        return 1;
    }
    log_json(&app.log, LOG_INFO, "listening",
             json_pack("{s:I, s:b, s:I, s:s, s:I}", "port", (json_int_t)app.opt.port, "tls",
                       app.tls != NULL, "admin_port", (json_int_t)app.opt.admin_port, "redis",
                       app.opt.redis_host, "redis_port", (json_int_t)app.opt.redis_port));

    struct ticker ticker = {.app = &app, .loop = loop};
    outage_init(&ticker.redis_outage, util_mono_ms(), REDIS_WARN_GRACE_MS,
                app.opt.redis_warn_interval_ms);
    tick_cb(&ticker.sul);
    while (!app.stopping)
        ev_run(loop, EVRUN_ONCE);

    node_status(app.node);
    lws_sul_cancel(&ticker.sul);
    session_teardown(&app);
    edge_stop(app.edge);
    app.sub_up = 0;
    sublinks_destroy(app.subs);
    app.subs = NULL;
    router_destroy(app.router);
    app.router = NULL;
    node_destroy(app.node);
    app.node = NULL;
    lws_context_destroy(app.cx);
    ev_run(loop, EVRUN_NOWAIT);
    ev_loop_destroy(loop);
    edge_destroy(app.edge);
    tls_destroy(app.tls);
    fanout_destroy(app.fanout);
    status_destroy(app.status);
    session_free(&app);
    deflate_destroy(app.deflate);
    auth_destroy(app.auth);
    log_msg(&app.log, LOG_INFO, "stopped");
    return 0;
}
