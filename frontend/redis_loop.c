/* hiredis on the lws event loop (see redis_loop.h for the ownership rules). */
#include "redis_loop.h"

#include "backoff.h"
#include "log.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

enum rl_state { RL_IDLE, RL_CONNECTING, RL_AUTHING, RL_UP };

struct rl {
    struct lws_context *cx;
    struct lws_vhost *vh;
    const struct logger *lg;
    const struct rl_ops *ops;
    void *arg;
    char name[16];
    char host[256];
    char password[256];
    int port;
    int connect_timeout_ms, ping_interval_ms, ping_timeout_ms;

    redisAsyncContext *ac; /* NULL when idle */
    struct lws *wsi;       /* the adopted socket; NULL once lws closed it or we let it go */
    enum rl_state state;
    struct backoff backoff;
    int destroying;
    int ping_outstanding;
    int64_t ping_sent_us, rtt_us, state_since_ms;
    uint64_t drops;

    lws_sorted_usec_list_t sul_retry; /* reconnect after backoff */
    lws_sorted_usec_list_t sul_tick;  /* keepalive PING and connect/ping timeouts */
    lws_sorted_usec_list_t sul_write; /* re-arm POLLOUT after a partial write */
};

static void start_connect(struct rl *rl);

static void schedule(struct rl *rl, lws_sorted_usec_list_t *sul, sul_cb_t cb, int64_t ms) {
    lws_sul_schedule(rl->cx, 0, sul, cb, ms * LWS_US_PER_MS);
}

/* ---- hiredis event hooks -------------------------------------------------------------------- */

static void hook_add_read(void *p) {
    (void)p; /* lws polls an adopted raw fd for reading all the time */
}

static void hook_del_read(void *p) {
    (void)p;
}

static void hook_add_write(void *p) {
    struct rl *rl = p;
    if (rl->wsi)
        lws_callback_on_writable(rl->wsi);
}

static void hook_del_write(void *p) {
    (void)p; /* lws clears POLLOUT after every writeable callback */
}

/* Called by hiredis while it frees the context. lws owns the fd, so hiredis must not close it;
 * the wsi is killed asynchronously because we may be inside its own callback right now. */
static void hook_cleanup(void *p) {
    struct rl *rl = p;
    if (rl->ac) {
        rl->ac->c.fd = -1;
        rl->ac = NULL;
    }
    if (rl->wsi) {
        lws_set_opaque_user_data(rl->wsi, NULL);
        lws_set_timeout(rl->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
        rl->wsi = NULL;
    }
}

/* ---- state changes -------------------------------------------------------------------------- */

static void retry_cb(lws_sorted_usec_list_t *sul) {
    struct rl *rl = lws_container_of(sul, struct rl, sul_retry);
    start_connect(rl);
}

/* The context is gone (hiredis freed it or is about to). Report once, then back off. */
static void went_down(struct rl *rl, const char *why) {
    if (rl->state == RL_IDLE)
        return;
    int was_up = rl->state == RL_UP;
    rl->state = RL_IDLE;
    rl->ping_outstanding = 0;
    lws_sul_cancel(&rl->sul_tick);
    lws_sul_cancel(&rl->sul_write);
    if (rl->destroying)
        return;
    if (was_up) {
        rl->drops++;
        log_json(rl->lg, LOG_WARN, "redis connection lost",
                 json_pack("{s:s, s:s}", "link", rl->name, "reason", why));
        rl->ops->on_down(rl, rl->arg);
    }
    schedule(rl, &rl->sul_retry, retry_cb, backoff_next(&rl->backoff));
}

/* Drops a live context from outside hiredis callbacks: hiredis fails every pending callback
 * with NULL, then calls hook_cleanup and (if it was connected) on_disconnect. */
static void drop(struct rl *rl, const char *why) {
    redisAsyncContext *ac = rl->ac;
    if (!ac)
        return;
    log_json(rl->lg, LOG_WARN, "dropping redis connection",
             json_pack("{s:s, s:s}", "link", rl->name, "reason", why));
    redisAsyncFree(ac);
    went_down(rl, why); /* no-op if on_disconnect already reported it */
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    struct rl *rl = ac->data;
    went_down(rl, status == REDIS_OK ? "closed" : (ac->errstr[0] ? ac->errstr : "error"));
}

static void tick_cb(lws_sorted_usec_list_t *sul);

static void ping_reply(redisAsyncContext *ac, void *r, void *priv) {
    (void)ac;
    struct rl *rl = priv;
    redisReply *reply = r;
    if (!reply)
        return; /* the connection is going away; on_disconnect follows */
    rl->ping_outstanding = 0;
    rl->rtt_us = util_mono_us() - rl->ping_sent_us;
    if (rl->state == RL_AUTHING) {
        if (reply->type == REDIS_REPLY_ERROR) {
            log_json(rl->lg, LOG_ERROR, "redis refused the connection",
                     json_pack("{s:s, s:s}", "link", rl->name, "error", reply->str));
            drop(rl, "auth");
            return;
        }
        rl->state = RL_UP;
        backoff_reset(&rl->backoff);
        log_json(
            rl->lg, LOG_INFO, "redis connected",
            json_pack("{s:s, s:s, s:i}", "link", rl->name, "host", rl->host, "port", rl->port));
        rl->ops->on_up(rl, rl->arg);
    }
}

static void send_ping(struct rl *rl) {
    rl->ping_sent_us = util_mono_us();
    rl->ping_outstanding = 1;
    redisAsyncCommand(rl->ac, ping_reply, rl, "PING");
}

static void auth_reply(redisAsyncContext *ac, void *r, void *priv) {
    (void)ac;
    struct rl *rl = priv;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        log_json(rl->lg, LOG_ERROR, "redis authentication failed",
                 json_pack("{s:s, s:s}", "link", rl->name, "error", reply->str));
        /* Dropping from inside a hiredis callback is deferred by hiredis until it returns. */
        redisAsyncDisconnect(ac);
    }
}

static void on_connect(const redisAsyncContext *ac, int status) {
    struct rl *rl = ac->data;
    if (status != REDIS_OK) {
        log_json(rl->lg, LOG_DEBUG, "redis connect failed",
                 json_pack("{s:s, s:s}", "link", rl->name, "error", ac->errstr));
        went_down(rl, "connect failed"); /* hiredis frees the context after this returns */
        return;
    }
    rl->state = RL_AUTHING;
    if (rl->password[0])
        redisAsyncCommand(rl->ac, auth_reply, rl, "AUTH %s", rl->password);
    send_ping(rl); /* its reply completes the handshake */
}

static void tick_cb(lws_sorted_usec_list_t *sul) {
    struct rl *rl = lws_container_of(sul, struct rl, sul_tick);
    if (!rl->ac)
        return;
    int64_t waited_ms = rl->ping_outstanding ? (util_mono_us() - rl->ping_sent_us) / 1000 : 0;
    if (rl->state == RL_CONNECTING || rl->state == RL_AUTHING) {
        if (util_mono_ms() - rl->state_since_ms >= rl->connect_timeout_ms) {
            drop(rl, "connect timeout");
            return;
        }
    } else if (rl->ping_outstanding) {
        if (waited_ms >= rl->ping_timeout_ms) {
            drop(rl, "ping timeout");
            return;
        }
    } else if (rl->ping_interval_ms > 0) {
        send_ping(rl);
    }
    if (rl->state == RL_UP && rl->ping_interval_ms <= 0)
        return; /* no keepalive: TCP keepalive and the peer's close tell us */
    int next = rl->state == RL_UP ? rl->ping_interval_ms : 100;
    if (rl->ping_outstanding && rl->state == RL_UP)
        next = rl->ping_interval_ms < 250 ? rl->ping_interval_ms : 250;
    schedule(rl, &rl->sul_tick, tick_cb, next);
}

static void start_connect(struct rl *rl) {
    rl->state = RL_CONNECTING;
    rl->state_since_ms = util_mono_ms();
    redisAsyncContext *ac = redisAsyncConnect(rl->host, rl->port);
    if (!ac || ac->err) {
        log_json(rl->lg, LOG_DEBUG, "redis connect failed",
                 json_pack("{s:s, s:s}", "link", rl->name, "error", ac ? ac->errstr : "oom"));
        if (ac)
            redisAsyncFree(ac);
        went_down(rl, "connect failed");
        return;
    }
    redisEnableKeepAlive(&ac->c);
    ac->data = rl;
    ac->ev.data = rl;
    ac->ev.addRead = hook_add_read;
    ac->ev.delRead = hook_del_read;
    ac->ev.addWrite = hook_add_write;
    ac->ev.delWrite = hook_del_write;
    ac->ev.cleanup = hook_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    rl->ac = ac;

    lws_adopt_desc_t info;
    memset(&info, 0, sizeof(info));
    info.vh = rl->vh;
    info.type = LWS_ADOPT_RAW_FILE_DESC;
    info.fd.filefd = ac->c.fd;
    info.vh_prot_name = RL_PROTOCOL_NAME;
    info.opaque = rl;
    rl->wsi = lws_adopt_descriptor_vhost_via_info(&info);
    if (!rl->wsi) {
        /* lws closed the fd already when adoption failed */
        ac->c.fd = -1;
        redisAsyncFree(ac);
        went_down(rl, "adopt failed");
        return;
    }
    /* hiredis learns that a non-blocking connect finished from the first writeable event. */
    lws_callback_on_writable(rl->wsi);
    schedule(rl, &rl->sul_tick, tick_cb, 100);
}

static void write_again_cb(lws_sorted_usec_list_t *sul) {
    struct rl *rl = lws_container_of(sul, struct rl, sul_write);
    if (rl->wsi)
        lws_callback_on_writable(rl->wsi);
}

/* Push mode: what the socket holds, every reply to on_push. The handshake's replies (AUTH, PING)
 * went through hiredis's callbacks before the link was up, and no callback is queued since. */
static void push_read(struct rl *rl) {
    redisContext *c = &rl->ac->c;
    if (redisBufferRead(c) != REDIS_OK) {
        drop(rl, c->errstr[0] ? c->errstr : "read error");
        return;
    }
    void *reply = NULL;
    while (rl->ac && redisGetReplyFromReader(c, &reply) == REDIS_OK && reply) {
        rl->ops->on_push(reply, rl->arg);
        freeReplyObject(reply);
        reply = NULL;
    }
    if (rl->ac && c->err)
        drop(rl, c->errstr[0] ? c->errstr : "protocol error");
}

int rl_push_send(struct rl *rl, int argc, const char **argv, const size_t *lens) {
    char *cmd = NULL;
    if (rl->state != RL_UP || !rl->ac || !rl->wsi)
        return -1;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0)
        return -1;
    int rc = redisAppendFormattedCommand(&rl->ac->c, cmd, (size_t)n);
    redisFreeCommand(cmd);
    if (rc != REDIS_OK)
        return -1;
    lws_callback_on_writable(rl->wsi);
    return 0;
}

int rl_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len) {
    (void)user;
    (void)in;
    (void)len;
    struct rl *rl = lws_get_opaque_user_data(wsi);

    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (!rl || !rl->ac)
            return -1;
        if (rl->ops->on_read_begin)
            rl->ops->on_read_begin(rl->arg);
        if (rl->ops->on_push && rl->state == RL_UP)
            push_read(rl);
        else
            redisAsyncHandleRead(rl->ac);
        if (rl->ops->on_read_end)
            rl->ops->on_read_end(rl->arg);
        break;
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        if (!rl || !rl->ac)
            return -1;
        redisAsyncHandleWrite(rl->ac);
        /* lws drops POLLOUT after this callback returns, even if hiredis asked for it again
         * from inside; a zero-delay timer asks again once we are out. */
        if (rl->ac && rl->wsi && (rl->state == RL_CONNECTING || sdslen(rl->ac->c.obuf) > 0))
            schedule(rl, &rl->sul_write, write_again_cb, 0);
        break;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (!rl)
            break;
        /* lws is closing the socket under hiredis (hangup or error). Let hiredis see the
         * error by reading; if it still holds on, drop the context. The fd is lws's to close. */
        rl->wsi = NULL;
        lws_set_opaque_user_data(wsi, NULL);
        if (rl->ac)
            redisAsyncHandleRead(rl->ac);
        if (rl->ac)
            drop(rl, "socket closed");
        break;
    default:
        break;
    }
    return 0;
}

struct rl *rl_create(struct lws_context *cx, struct lws_vhost *vh, const struct rl_options *opts,
                     const struct rl_ops *ops, void *arg, const struct logger *lg) {
    struct rl *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    rl->cx = cx;
    rl->vh = vh;
    rl->lg = lg;
    rl->ops = ops;
    rl->arg = arg;
    util_strlcpy(rl->name, opts->name, sizeof(rl->name));
    util_strlcpy(rl->host, opts->host, sizeof(rl->host));
    util_strlcpy(rl->password, opts->password ? opts->password : "", sizeof(rl->password));
    rl->port = opts->port;
    rl->connect_timeout_ms = opts->connect_timeout_ms;
    rl->ping_interval_ms = opts->ping_interval_ms;
    rl->ping_timeout_ms = opts->ping_timeout_ms;
    uint64_t seed = 0;
    util_random(&seed, sizeof(seed));
    backoff_init(&rl->backoff, 100, 5000, seed);
    start_connect(rl);
    return rl;
}

void rl_destroy(struct rl *rl) {
    if (!rl)
        return;
    rl->destroying = 1;
    lws_sul_cancel(&rl->sul_retry);
    lws_sul_cancel(&rl->sul_tick);
    lws_sul_cancel(&rl->sul_write);
    if (rl->ac)
        redisAsyncFree(rl->ac);
    free(rl);
}

redisAsyncContext *rl_ctx(struct rl *rl) {
    return rl->state == RL_UP ? rl->ac : NULL;
}

int64_t rl_rtt_us(const struct rl *rl) {
    return rl->rtt_us;
}

void *rl_arg_of(const redisAsyncContext *ac) {
    return ((struct rl *)ac->data)->arg;
}

uint64_t rl_drops(const struct rl *rl) {
    return rl->drops;
}
