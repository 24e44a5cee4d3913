/* The frontend's subscription links (frontend/sublinks.h) with the router on the lws loop against
 * real Redis, without a frontend process: a single redis-server, then a 3+3 Redis Cluster.
 *
 * Both: 60 room channels rrm:room:{N}:rI:ch (N = I mod 16: the 16 tags spread over the 3
 * masters) are confirmed once each, PUBSUB SHARDCHANNELS on every master lists exactly the
 * channels of its slots, an SPUBLISH on each reaches the module once; unsubscribed channels are
 * confirmed gone and get nothing more; a PUBLISH on the control channel reaches it once from
 * any master. Single Redis: Redis killed and restarted: every channel lost then confirmed again,
 * the control channel back. Cluster: a subscribed slot moved to another master (lost, confirmed
 * again there, a message published at the new owner delivered once, no other channel lost);
 * the master holding the control channel SIGKILLed: its channels lost and confirmed on the
 * promoted replica within 15 s, the other masters' channels never lost, the control channel
 * subscribed elsewhere. */
#include "log.h"
#include "proc.h"
#include "redis_cluster.h"
#include "redis_loop.h"
#include "redis_server.h"
#include "router.h"
#include "slots.h"
#include "sublinks.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 20000
#define FAILOVER_LIMIT_MS 15000
#define NCH 60
#define ROUNDS 16
#define CONTROL "rrm:node:{test}:ch"

/* What the callbacks saw, per channel (index I of rrm:room:{N}:rI:ch). */
struct world {
    struct lws_context *cx;
    struct lws_vhost *vh;
    struct logger lg;
    struct router *r;
    struct sublinks *s;
    lws_sorted_usec_list_t sul_wake;
    int ups, downs;

    char names[NCH][48];
    unsigned slot[NCH];
    int confirmed[NCH], lost[NCH], unsubscribed[NCH];
    char last[NCH]; /* 'c', 'l' or 'u': the last event */
    int got[NCH][ROUNDS];
    long messages, strays;
    int control[ROUNDS];
    long controls;
    char error[256];
};

static struct world W;

static void note(struct world *w, const char *fmt, ...) {
    if (w->error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof(w->error), fmt, ap);
    va_end(ap);
}

static int index_of(const char *ch, size_t len) {
    const char *p = memchr(ch, '}', len);
    if (!p || (size_t)(p - ch) + 3 > len || p[1] != ':' || p[2] != 'r')
        return -1;
    int i = atoi(p + 3);
    if (i < 0 || i >= NCH || strlen(W.names[i]) != len || memcmp(W.names[i], ch, len) != 0)
        return -1;
    return i;
}

static const struct lws_protocols protocols[] = {
    {RL_PROTOCOL_NAME, rl_protocol_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void cmd_up(void *arg) {
    (void)arg;
}

static void cmd_down(void *arg) {
    (void)arg;
}

static void topology(void *arg) {
    struct world *w = arg;
    if (w->s)
        sublinks_topology(w->s);
}

static const struct router_ops rops = {cmd_up, cmd_down, NULL, NULL, topology};

static void s_up(void *arg) {
    ((struct world *)arg)->ups++;
}

static void s_down(void *arg) {
    ((struct world *)arg)->downs++;
}

static void s_confirmed(const char *ch, size_t len, void *arg) {
    struct world *w = arg;
    int i = index_of(ch, len);
    if (i < 0) {
        note(w, "confirmed: unknown channel %.*s", (int)len, ch);
        return;
    }
    if (w->last[i] == 'c')
        note(w, "%s confirmed twice without a loss", w->names[i]);
    w->confirmed[i]++;
    w->last[i] = 'c';
}

static void s_lost(const char *ch, size_t len, void *arg) {
    struct world *w = arg;
    int i = index_of(ch, len);
    if (i < 0) {
        note(w, "lost: unknown channel %.*s", (int)len, ch);
        return;
    }
    w->lost[i]++;
    w->last[i] = 'l';
}

static void s_unsubscribed(const char *ch, size_t len, void *arg) {
    struct world *w = arg;
    int i = index_of(ch, len);
    if (i < 0) {
        note(w, "unsubscribed: unknown channel %.*s", (int)len, ch);
        return;
    }
    w->unsubscribed[i]++;
    w->last[i] = 'u';
}

/* Payloads are "round:K". */
static int round_of(const char *p, size_t len) {
    if (len < 7 || len > 8 || memcmp(p, "round:", 6) != 0)
        return -1;
    int k = atoi(p + 6);
    return k >= 0 && k < ROUNDS ? k : -1;
}

static void s_message(const char *ch, size_t len, const char *payload, size_t plen, void *arg) {
    struct world *w = arg;
    int i = index_of(ch, len), k = round_of(payload, plen);
    w->messages++;
    if (i < 0 || k < 0) {
        w->strays++;
        note(w, "message on %.*s: %.*s", (int)len, ch, (int)plen, payload);
        return;
    }
    w->got[i][k]++;
}

static void s_control(const char *payload, size_t len, void *arg) {
    struct world *w = arg;
    int k = round_of(payload, len);
    w->controls++;
    if (k < 0)
        note(w, "control message %.*s", (int)len, payload);
    else
        w->control[k]++;
}

static const struct sublinks_ops sops = {
    .up = s_up,
    .down = s_down,
    .confirmed = s_confirmed,
    .unsubscribed = s_unsubscribed,
    .lost = s_lost,
    .message = s_message,
    .control = s_control,
};

static void wake_cb(lws_sorted_usec_list_t *sul) {
    struct world *w = lws_container_of(sul, struct world, sul_wake);
    lws_sul_schedule(w->cx, 0, &w->sul_wake, wake_cb, 20 * LWS_US_PER_MS);
}

static struct world *world_open(const char *host, int port, int cluster, const char *nodes) {
    struct world *w = &W;
    memset(w, 0, sizeof(*w));
    w->lg.program = "test_sublinks";
    w->lg.min = LOG_WARN;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6;
    info.port = CONTEXT_PORT_NO_LISTEN;
    w->cx = lws_create_context(&info);
    assert_non_null(w->cx);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.vhost_name = "internal";
    w->vh = lws_create_vhost(w->cx, &info);
    assert_non_null(w->vh);
    wake_cb(&w->sul_wake);
    for (int i = 0; i < NCH; i++) {
        snprintf(w->names[i], sizeof(w->names[i]), "rrm:room:{%d}:r%d:ch", i % 16, i);
        w->slot[i] = slots_of_key(w->names[i], strlen(w->names[i]));
    }
    struct router_options ro = {
        .host = host,
        .port = port,
        .cluster = cluster,
        .nodes = nodes,
        .connect_timeout_ms = 2000,
        .ping_interval_ms = 1000,
        .ping_timeout_ms = 3000,
        .params = {.stream_maxlen = 1000,
                   .history_size = 10,
                   .history_ttl_ms = 60000,
                   .ack_window_ms = 60000},
    };
    w->r = router_create(w->cx, w->vh, &ro, &rops, w, &w->lg);
    assert_non_null(w->r);
    struct sublinks_options so = {
        .connect_timeout_ms = 2000,
        .ping_timeout_ms = 3000,
        .control = CONTROL,
    };
    w->s = sublinks_create(w->cx, w->vh, w->r, &so, &sops, w, &w->lg);
    assert_non_null(w->s);
    return w;
}

static void world_close(struct world *w) {
    sublinks_destroy(w->s);
    w->s = NULL;
    router_destroy(w->r);
    lws_sul_cancel(&w->sul_wake);
    lws_context_destroy(w->cx);
}

static void expect_clean(struct world *w) {
    if (w->error[0])
        fail_msg("%s", w->error);
}

static int run_until(struct world *w, int (*done)(struct world *), int ms) {
    int64_t deadline = proc_now_ms() + ms;
    while (!done(w) && proc_remaining_ms(deadline) > 0)
        lws_service(w->cx, 0);
    return done(w);
}

static int is_up(struct world *w) {
    return sublinks_ready(w->s) && router_ready(w->r);
}

/* Which channels a check is about; the others must not change. */
static int chosen[NCH];

static int chosen_confirmed(struct world *w) {
    for (int i = 0; i < NCH; i++)
        if (chosen[i] && w->last[i] != 'c')
            return 0;
    return 1;
}

/* Every chosen channel lost since lost_base and confirmed again since. */
static int lost_base[NCH];
static int chosen_back(struct world *w) {
    for (int i = 0; i < NCH; i++)
        if (chosen[i] && (w->lost[i] == lost_base[i] || w->last[i] != 'c'))
            return 0;
    return 1;
}

static void set_lost_base(struct world *w) {
    memcpy(lost_base, w->lost, sizeof(lost_base));
}

static int chosen_unsubscribed(struct world *w) {
    for (int i = 0; i < NCH; i++)
        if (chosen[i] && w->last[i] != 'u')
            return 0;
    return 1;
}

/* ---- Redis side: where a slot lives, publishing, what a master lists ----------------------- */

/* Either a single Redis or a cluster. */
static struct redis_server *RS;
static struct redis_cluster *RC;

static int owner_port(unsigned slot) {
    return RC ? redis_cluster_port_of_slot(RC, (int)slot) : redis_server_port(RS);
}

static redisContext *client_on(int port) {
    redisContext *c = RC ? redis_cluster_client(RC, port) : redis_server_client(RS);
    assert_non_null(c);
    return c;
}

static int masters(int *out, int cap) {
    if (!RC) {
        out[0] = redis_server_port(RS);
        return 1;
    }
    return redis_cluster_master_ports(RC, out, cap);
}

static long long command_int(int port, const char *fmt, ...) {
    redisContext *c = client_on(port);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r)
        fail_msg("no reply from %d: %s", port, c->errstr);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("port %d: not an integer: %s", port, r->str ? r->str : "?");
    long long v = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* SPUBLISH round k on every chosen channel, at its slot's owner; returns how many Redis says
 * it delivered to a subscriber (every subscriber of the node, this module's link among them). */
static long publish_round(int k) {
    long receivers = 0;
    for (int i = 0; i < NCH; i++)
        if (chosen[i])
            receivers += command_int(owner_port(W.slot[i]), "SPUBLISH %s round:%d", W.names[i], k);
    return receivers;
}

static int round_k;
static int round_arrived(struct world *w) {
    for (int i = 0; i < NCH; i++)
        if (chosen[i] && !w->got[i][round_k])
            return 0;
    return 1;
}

/* Round k published on the chosen channels reaches each of them exactly once, the others not. */
static void expect_round(struct world *w, int k) {
    long before = w->messages;
    long n = 0;
    for (int i = 0; i < NCH; i++)
        n += chosen[i];
    assert_int_equal(publish_round(k), n);
    round_k = k;
    if (!run_until(w, round_arrived, WAIT_MS))
        fail_msg("round %d: not every message arrived (%ld of %ld)", k, w->messages - before, n);
    /* A later round on the same links comes after any duplicate of this one. */
    for (int i = 0; i < NCH; i++) {
        if (chosen[i] && w->got[i][k] != 1)
            fail_msg("round %d: %s got it %d times", k, w->names[i], w->got[i][k]);
        if (!chosen[i] && w->got[i][k])
            fail_msg("round %d: %s got it without being published to", k, w->names[i]);
    }
    expect_clean(w);
}

/* PUBSUB SHARDCHANNELS on every master lists exactly the wanted channels of its slots. */
static void expect_shardchannels(const int *wanted) {
    int ports[8];
    int nm = masters(ports, 8);
    assert_true(nm >= 1 && nm <= 8);
    int seen[NCH] = {0};
    for (int m = 0; m < nm; m++) {
        redisContext *c = client_on(ports[m]);
        redisReply *r = redisCommand(c, "PUBSUB SHARDCHANNELS rrm:room:*");
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        for (size_t e = 0; e < r->elements; e++) {
            int i = index_of(r->element[e]->str, r->element[e]->len);
            if (i < 0)
                fail_msg("master %d lists %s", ports[m], r->element[e]->str);
            if (!wanted[i])
                fail_msg("master %d lists %s, not subscribed", ports[m], W.names[i]);
            if (owner_port(W.slot[i]) != ports[m])
                fail_msg("master %d lists %s, of slot %u owned by %d", ports[m], W.names[i],
                         W.slot[i], owner_port(W.slot[i]));
            seen[i]++;
        }
        freeReplyObject(r);
        redisFree(c);
    }
    for (int i = 0; i < NCH; i++)
        if (seen[i] != (wanted[i] ? 1 : 0))
            fail_msg("%s listed by %d masters", W.names[i], seen[i]);
}

/* A PUBLISH of the control channel from every master (in a cluster it reaches every node):
 * each reaches the module once. */
static int ctl_k;
static int control_arrived(struct world *w) {
    return w->control[ctl_k] > 0;
}

static void expect_control(struct world *w, int k) {
    int ports[8];
    int nm = masters(ports, 8);
    for (int m = 0; m < nm; m++) {
        long before = w->controls;
        command_int(ports[m], "PUBLISH %s round:%d", CONTROL, k + m);
        ctl_k = k + m;
        if (!run_until(w, control_arrived, WAIT_MS))
            fail_msg("control: PUBLISH on master %d did not arrive", ports[m]);
        /* The next PUBLISH follows on the same link: a duplicate of this one would come first. */
        assert_int_equal(w->controls - before, 1);
    }
    long before = w->controls;
    command_int(ports[0], "PUBLISH %s round:%d", CONTROL, k + nm);
    ctl_k = k + nm;
    assert_true(run_until(w, control_arrived, WAIT_MS));
    assert_int_equal(w->controls - before, 1);
    for (int j = k; j <= k + nm; j++)
        assert_int_equal(w->control[j], 1);
    expect_clean(w);
}

/* ---- what both modes check ----------------------------------------------------------------- */

static void subscribe_all(struct world *w) {
    assert_true(run_until(w, is_up, WAIT_MS));
    for (int i = 0; i < NCH; i++) {
        assert_int_equal(sublinks_subscribe(w->s, w->names[i], strlen(w->names[i])), 0);
        chosen[i] = 1;
    }
    assert_int_equal(sublinks_count(w->s), NCH);
    int64_t t0 = proc_now_ms();
    assert_true(run_until(w, chosen_confirmed, WAIT_MS));
    fprintf(stderr, "%d channels confirmed in %lld ms\n", NCH, (long long)(proc_now_ms() - t0));
    for (int i = 0; i < NCH; i++) {
        assert_int_equal(w->confirmed[i], 1);
        assert_int_equal(w->lost[i], 0);
    }
    expect_clean(w);
    expect_shardchannels(chosen);
    expect_round(w, 0);
    expect_control(w, 0);
}

/* Channels 50..59 unsubscribed: told so, gone from Redis, nothing more delivered to them. */
static void unsubscribe_some(struct world *w) {
    int wanted[NCH];
    for (int i = 0; i < NCH; i++) {
        chosen[i] = i >= 50;
        wanted[i] = !chosen[i];
    }
    for (int i = 50; i < NCH; i++)
        assert_int_equal(sublinks_unsubscribe(w->s, w->names[i], strlen(w->names[i])), 0);
    assert_true(run_until(w, chosen_unsubscribed, WAIT_MS));
    for (int i = 50; i < NCH; i++)
        assert_int_equal(w->unsubscribed[i], 1);
    assert_int_equal(sublinks_count(w->s), 50);
    expect_shardchannels(wanted);
    /* Round 1 on the unsubscribed ones (Redis counts no receiver), then round 2 on the others:
     * on each link it comes after anything round 1 would have brought. */
    assert_int_equal(publish_round(1), 0);
    for (int i = 0; i < NCH; i++)
        chosen[i] = wanted[i];
    expect_round(w, 2);
    for (int i = 0; i < NCH; i++)
        if (w->got[i][1])
            fail_msg("%s got a message after it was unsubscribed", w->names[i]);

    /* Unsubscribed before Redis confirmed the subscription: unsubscribed follows, confirmed
     * never, and Redis keeps nothing. */
    for (int i = 0; i < NCH; i++)
        chosen[i] = i >= 50 && i < 55;
    for (int i = 50; i < 55; i++) {
        assert_int_equal(sublinks_subscribe(w->s, w->names[i], strlen(w->names[i])), 0);
        w->last[i] = 's';
        assert_int_equal(sublinks_unsubscribe(w->s, w->names[i], strlen(w->names[i])), 0);
        assert_int_equal(sublinks_unsubscribe(w->s, w->names[i], strlen(w->names[i])), -1);
    }
    assert_true(run_until(w, chosen_unsubscribed, WAIT_MS));
    for (int i = 50; i < 55; i++) {
        assert_int_equal(w->confirmed[i], 1);
        assert_int_equal(w->unsubscribed[i], 2);
    }
    assert_int_equal(sublinks_count(w->s), 50);
    expect_shardchannels(wanted);
    expect_clean(w);
}

/* ---- single Redis -------------------------------------------------------------------------- */

static void test_single(void **state) {
    (void)state;
    RS = redis_server_start();
    RC = NULL;
    assert_non_null(RS);
    struct world *w = world_open("127.0.0.1", redis_server_port(RS), 0, NULL);
    subscribe_all(w);
    unsubscribe_some(w);

    /* Redis killed and restarted: every channel lost, then confirmed again on the new process;
     * the control channel too. */
    int downs = w->downs;
    set_lost_base(w);
    assert_int_equal(redis_server_kill(RS), 0);
    assert_int_equal(redis_server_restart(RS), 0);
    for (int i = 0; i < NCH; i++)
        chosen[i] = i < 50;
    int64_t t0 = proc_now_ms();
    assert_true(run_until(w, chosen_back, WAIT_MS));
    assert_true(run_until(w, is_up, WAIT_MS));
    fprintf(stderr, "restart: channels confirmed again %lld ms after Redis was back\n",
            (long long)(proc_now_ms() - t0));
    assert_true(w->downs > downs);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(w->lost[i], 1);
        assert_int_equal(w->confirmed[i], 2);
    }
    expect_shardchannels(chosen);
    expect_round(w, 3);
    expect_control(w, 4);
    assert_int_equal(sublinks_losses(w->s), 50);
    world_close(w);
    redis_server_destroy(RS);
    RS = NULL;
}

/* ---- Redis Cluster ------------------------------------------------------------------------- */

struct mover {
    int slot, to;
    atomic_int done;
    int rc;
};

static void *mover_run(void *arg) {
    struct mover *m = arg;
    m->rc = redis_cluster_move_slot(RC, m->slot, m->to);
    m->done = 1;
    return NULL;
}

struct killer {
    int port;
    atomic_int done;
    atomic_llong done_ms;
    int promoted;
};

static void *killer_run(void *arg) {
    struct killer *k = arg;
    k->promoted = redis_cluster_kill_master(RC, k->port);
    if (k->promoted == 0)
        k->promoted = redis_cluster_wait_failover(RC, k->port, FAILOVER_LIMIT_MS);
    k->done_ms = proc_now_ms();
    k->done = 1;
    return NULL;
}

static atomic_int *bg_done;
static int bg_finished(struct world *w) {
    (void)w;
    return *bg_done;
}

/* The slot of tag {1} moved to another master while its channels are subscribed. */
static void move_subscribed_slot(struct world *w) {
    unsigned slot = w->slot[1];
    int from = owner_port(slot), ports[8], to = -1;
    assert_int_equal(redis_cluster_master_ports(RC, ports, 8), 3);
    for (int m = 0; m < 3 && to < 0; m++)
        if (ports[m] != from)
            to = ports[m];
    for (int i = 0; i < NCH; i++)
        chosen[i] = i < 50 && w->slot[i] == slot;
    set_lost_base(w);
    struct mover m = {.slot = (int)slot, .to = to};
    pthread_t th;
    int64_t t0 = proc_now_ms();
    assert_int_equal(pthread_create(&th, NULL, mover_run, &m), 0);
    bg_done = &m.done;
    assert_true(run_until(w, bg_finished, WAIT_MS + 10000));
    pthread_join(th, NULL);
    assert_int_equal(m.rc, 0);
    assert_int_equal(owner_port(slot), to);
    /* Lost on the old owner, then confirmed on the new one. */
    run_until(w, chosen_back, WAIT_MS);
    fprintf(stderr, "slot %u moved %d -> %d: channels confirmed again %lld ms after the start\n",
            slot, from, to, (long long)(proc_now_ms() - t0));
    int n = 0;
    for (int i = 0; i < NCH; i++) {
        if (chosen[i]) {
            n++;
            if (w->lost[i] != lost_base[i] + 1 || w->last[i] != 'c')
                fail_msg("%s: lost %d times, last event '%c'", w->names[i],
                         w->lost[i] - lost_base[i], w->last[i]);
        } else if (w->lost[i] != lost_base[i]) {
            fail_msg("%s (another slot) lost", w->names[i]);
        }
    }
    assert_true(n >= 3);
    expect_clean(w);
    int wanted[NCH];
    for (int i = 0; i < NCH; i++)
        wanted[i] = i < 50;
    expect_shardchannels(wanted);
    expect_round(w, 5); /* published at the new owner */
    for (int i = 0; i < NCH; i++)
        chosen[i] = wanted[i];
    expect_round(w, 6);
}

/* The port of the master whose clients include the control channel's subscriber. */
static int control_master(void) {
    int ports[8], found = -1;
    int nm = redis_cluster_master_ports(RC, ports, 8);
    for (int m = 0; m < nm; m++) {
        redisContext *c = client_on(ports[m]);
        redisReply *r = redisCommand(c, "PUBSUB NUMSUB %s", CONTROL);
        assert_non_null(r);
        assert_true(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        if (r->element[1]->integer > 0) {
            if (found >= 0)
                fail_msg("the control channel is subscribed on %d and %d", found, ports[m]);
            found = ports[m];
        }
        freeReplyObject(r);
        redisFree(c);
    }
    return found;
}

/* SIGKILL of the master holding the control channel (and some room channels). */
static void kill_master(struct world *w) {
    int port = control_master();
    assert_true(port > 0);
    int on_killed = 0;
    for (int i = 0; i < NCH; i++) {
        chosen[i] = i < 50 && owner_port(w->slot[i]) == port;
        on_killed += chosen[i];
    }
    set_lost_base(w);
    assert_true(on_killed >= 3);
    struct killer k = {.port = port};
    pthread_t th;
    int64_t t0 = proc_now_ms();
    assert_int_equal(pthread_create(&th, NULL, killer_run, &k), 0);
    bg_done = &k.done;
    assert_true(run_until(w, bg_finished, FAILOVER_LIMIT_MS + 20000));
    pthread_join(th, NULL);
    assert_true(k.promoted > 0);
    /* The killed master's channels: lost, then confirmed on the promoted replica. */
    run_until(w, chosen_back, proc_remaining_ms(k.done_ms + FAILOVER_LIMIT_MS));
    int64_t confirmed_ms = proc_now_ms();
    fprintf(stderr,
            "master %d killed: %d promoted after %lld ms; its %d channels confirmed there %lld ms "
            "after the failover\n",
            port, k.promoted, (long long)(k.done_ms - t0), on_killed,
            (long long)(confirmed_ms - k.done_ms));
    for (int i = 0; i < NCH; i++) {
        if (chosen[i]) {
            if (w->lost[i] != lost_base[i] + 1 || w->last[i] != 'c')
                fail_msg("%s: lost %d times, last event '%c', within %d ms of the failover",
                         w->names[i], w->lost[i] - lost_base[i], w->last[i], FAILOVER_LIMIT_MS);
        } else if (w->lost[i] != lost_base[i]) {
            fail_msg("%s (on another master) lost", w->names[i]);
        }
    }
    expect_clean(w);
    assert_true(run_until(w, is_up, WAIT_MS));
    int wanted[NCH];
    for (int i = 0; i < NCH; i++)
        wanted[i] = i < 50;
    expect_shardchannels(wanted);
    expect_round(w, 7);
    for (int i = 0; i < NCH; i++)
        chosen[i] = wanted[i];
    expect_round(w, 8);
    int now = control_master();
    assert_true(now > 0 && now != port);
    expect_control(w, 9);
}

static int cluster_setup(void **state) {
    (void)state;
    int64_t t0 = proc_now_ms();
    RC = redis_cluster_start(3, 1);
    if (!RC)
        return -1;
    fprintf(stderr, "cluster ready in %lld ms\n", (long long)(proc_now_ms() - t0));
    return 0;
}

static int cluster_teardown(void **state) {
    (void)state;
    redis_cluster_stop(RC);
    RC = NULL;
    return 0;
}

static void test_cluster(void **state) {
    (void)state;
    RS = NULL;
    /* Seeds: a port nobody listens on, then one node; the rest is learned from CLUSTER SLOTS. */
    char nodes[64];
    snprintf(nodes, sizeof(nodes), "127.0.0.1:%d", redis_cluster_port(RC, 0));
    struct world *w = world_open("127.0.0.1", proc_free_port(), 1, nodes);
    int ports[8], hits[8] = {0};
    int nm = redis_cluster_master_ports(RC, ports, 8);
    assert_int_equal(nm, 3);
    for (int i = 0; i < NCH; i++)
        for (int m = 0; m < nm; m++)
            hits[m] += owner_port(w->slot[i]) == ports[m];
    for (int m = 0; m < nm; m++)
        assert_true(hits[m] > 0);
    subscribe_all(w);
    unsubscribe_some(w);
    move_subscribed_slot(w);
    kill_master(w);
    world_close(w);
}

int main(void) {
    const struct CMUnitTest single[] = {cmocka_unit_test(test_single)};
    const struct CMUnitTest cluster[] = {cmocka_unit_test(test_cluster)};
    int rc = cmocka_run_group_tests_name("sublinks_single", single, NULL, NULL);
    rc |= cmocka_run_group_tests_name("sublinks_cluster", cluster, cluster_setup, cluster_teardown);
    return rc;
}
