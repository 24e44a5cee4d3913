/*
 * fe_harness.c - the rrm-frontend test cluster and protocol helpers (see fe_harness.h).
 *
 * Nodes run with their stdout/stderr appended to <tmpdir>/<node-id>.log. A node that is
 * stopped with SIGTERM must exit 0: under the sanitizer build a leak or memory error makes the
 * exit status non-zero, and the report is in that log, so the log tail is printed whenever a
 * node did not end cleanly.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "fe_harness.h"

#include "keys.h"
#include "proc.h"
#include "redis_cluster.h"
#include "slots.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>

#define FE_START_TIMEOUT_MS 10000
#define FE_STOP_TIMEOUT_MS 20000
#define FE_HTTP_TIMEOUT_MS 3000
#define FE_POLL_INTERVAL_MS 50
#define FE_MAX_CLIENTS 256
#define FE_LOG_TAIL 6000
#define FE_MAX_ENV 48

struct fe_node {
    char id[16];
    int port;
    int admin_port;   /* 0: the node has no admin listener */
    int admin_chosen; /* the test set RRM_ADMIN_PORT itself */
    pid_t pid;        /* 0 once stopped */
    char *log_path;
};

struct fe_cluster {
    struct redis_server *redis;
    struct redis_cluster *rcl; /* RRM_TEST_REDIS_MODE=cluster: 3 masters, 3 replicas (owned) */
    int own_redis;             /* 1: started (and destroyed) by the cluster; 0: borrowed */
    char **env;                /* copy of env_extra (NULL terminated), for restarts */
    char *dir;
    int nodes;
    struct fe_node node[FE_MAX_NODES];
    struct wsc *clients[FE_MAX_CLIENTS];
    size_t nclients;
    char tls_ca[512]; /* nodes speak TLS, verified with this CA file; empty: plain */
};

/* ------------------------------------------------------------------ cluster */

int64_t fe_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Short wait inside a deadline loop (never past the deadline). */
static void pause_until_next_poll(int64_t deadline) {
    int rem = proc_remaining_ms(deadline);
    poll(NULL, 0, rem < FE_POLL_INTERVAL_MS ? rem : FE_POLL_INTERVAL_MS);
}

void fe_poll_pause(void) {
    poll(NULL, 0, FE_POLL_INTERVAL_MS);
}

static int decode_status(int st) {
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

const char *fe_log_path(const struct fe_cluster *c, int node) {
    return c && node >= 0 && node < c->nodes ? c->node[node].log_path : NULL;
}

void fe_dump_log(const struct fe_cluster *c, int node) {
    if (c && node >= 0 && node < c->nodes && c->node[node].log_path)
        proc_dump_file_tail(c->node[node].log_path, FE_LOG_TAIL);
}

/* Give node i its id, log file and ports (kept across restarts). */
static int assign_node(struct fe_cluster *c, int i) {
    struct fe_node *n = &c->node[i];
    snprintf(n->id, sizeof(n->id), "node-%c", 'a' + i);
    if (asprintf(&n->log_path, "%s/%s.log", c->dir, n->id) < 0) {
        n->log_path = NULL;
        return -ENOMEM;
    }
    n->port = proc_free_port();
    if (n->port < 0)
        return n->port;
    /* Every node gets an admin listener on a free port, unless the test chose the port. */
    const char *admin_env = NULL;
    for (size_t j = 0; c->env && c->env[j]; j++)
        if (strncmp(c->env[j], "RRM_ADMIN_PORT=", 15) == 0)
            admin_env = c->env[j];
    if (admin_env) {
        n->admin_port = atoi(admin_env + 15);
        n->admin_chosen = 1;
    } else {
        do
            n->admin_port = proc_free_port();
        while (n->admin_port == n->port);
        if (n->admin_port < 0)
            return n->admin_port;
    }
    return 0;
}

static int spawn_node(struct fe_cluster *c, int i, const char *bin) {
    struct fe_node *n = &c->node[i];
    char port[32], admin[40], rport[32], node_id[40];
    const char *env[FE_MAX_ENV];
    size_t k = 0;

    /* the test's settings first: the first of two equal names is the one getenv finds */
    for (size_t j = 0; c->env && c->env[j] && k < FE_MAX_ENV - 16; j++)
        env[k++] = c->env[j];
    snprintf(port, sizeof(port), "RRM_PORT=%d", n->port);
    if (!n->admin_chosen) {
        snprintf(admin, sizeof(admin), "RRM_ADMIN_PORT=%d", n->admin_port);
        env[k++] = admin;
    }
    char seeds[256] = "RRM_REDIS_NODES=";
    snprintf(rport, sizeof(rport), "RRM_REDIS_PORT=%d",
             c->rcl ? redis_cluster_port(c->rcl, 0) : redis_server_port(c->redis));
    snprintf(node_id, sizeof(node_id), "RRM_NODE_ID=%s", n->id);
    env[k++] = port;
    env[k++] = "RRM_REDIS_HOST=127.0.0.1";
    env[k++] = rport;
    if (c->rcl || fe_redis_mode_is("slotted"))
        env[k++] = "RRM_REDIS_CLUSTER=1";
    if (c->rcl) { /* every node is a seed: the frontend learns the masters from any of them */
        for (int i = 1; i < redis_cluster_nodes(c->rcl); i++) {
            size_t at = strlen(seeds);
            snprintf(seeds + at, sizeof(seeds) - at, "%s127.0.0.1:%d", i > 1 ? "," : "",
                     redis_cluster_port(c->rcl, i));
        }
        env[k++] = seeds;
    }
    env[k++] = node_id;
    env[k++] = "RRM_HEARTBEAT_MS=200";
    env[k++] = "RRM_NODE_TIMEOUT_MS=1500";
    env[k++] = "RRM_STATUS_INTERVAL_MS=2000";
    env[k++] = "RRM_LOG_LEVEL=info";
    env[k] = NULL;

    const char *const argv[] = {bin, NULL};
    pid_t pid = proc_spawn(argv, env, n->log_path);
    if (pid < 0) {
        fprintf(stderr, "fe_harness: cannot start %s (%s): %s\n", bin, n->id, strerror((int)-pid));
        return (int)pid;
    }
    n->pid = pid;
    return 0;
}

/* Wait for /readyz 200 while watching that the node does not die meanwhile. */
static int wait_node_ready(struct fe_cluster *c, int i) {
    struct fe_node *n = &c->node[i];
    int64_t deadline = proc_now_ms() + FE_START_TIMEOUT_MS;
    for (;;) {
        int st = 0, code = 0;
        if (proc_check_exited(n->pid, &st) == 0) {
            fprintf(stderr, "fe_harness: %s exited during startup (status %d)\n", n->id,
                    decode_status(st));
            n->pid = 0;
            fe_dump_log(c, i);
            return -ECHILD;
        }
        struct wsc_tls tls = {.ca_file = c->tls_ca};
        if ((c->tls_ca[0]
                 ? wsc_https_get("127.0.0.1", n->port, "/readyz", &tls, FE_HTTP_TIMEOUT_MS, &code,
                                 NULL, NULL)
                 : proc_http_get(n->port, "/readyz", FE_HTTP_TIMEOUT_MS, &code, NULL)) == 0 &&
            code == 200)
            return 0;
        if (proc_remaining_ms(deadline) == 0) {
            fprintf(stderr, "fe_harness: %s not ready on port %d within %d ms (last status %d)\n",
                    n->id, n->port, FE_START_TIMEOUT_MS, code);
            fe_dump_log(c, i);
            return -ETIMEDOUT;
        }
        pause_until_next_poll(deadline);
    }
}

struct fe_cluster *fe_cluster_start(int nodes, const char *const env_extra[]) {
    return fe_cluster_start_tls(nodes, env_extra, NULL);
}

/* NULL-terminated copy of env (NULL: an empty list), or NULL without memory. */
static char **copy_env(const char *const env[]) {
    size_t n = 0;
    while (env && env[n])
        n++;
    char **copy = calloc(n + 1, sizeof(*copy));
    for (size_t i = 0; copy && i < n; i++)
        if (!(copy[i] = strdup(env[i]))) {
            for (size_t j = 0; j < i; j++)
                free(copy[j]);
            free(copy);
            return NULL;
        }
    return copy;
}

static struct fe_cluster *cluster_start(struct redis_server *redis, int nodes,
                                        const char *const env_extra[], const char *ca_file) {
    const char *bin = getenv("RRM_FRONTEND_BIN");
    if (!bin || !*bin) {
        fprintf(stderr, "fe_harness: RRM_FRONTEND_BIN is not set (run the test through ctest)\n");
        return NULL;
    }
    if (nodes < 1 || nodes > FE_MAX_NODES)
        return NULL;
    struct fe_cluster *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    snprintf(c->tls_ca, sizeof(c->tls_ca), "%s", ca_file ? ca_file : "");
    c->dir = proc_tmpdir("fe");
    c->env = copy_env(env_extra);
    c->own_redis = redis == NULL;
    if (!redis && fe_redis_mode_is("cluster"))
        c->rcl = redis_cluster_start(3, 1);
    else
        c->redis = redis ? redis : redis_server_start();
    if (!c->dir || !c->env || (!c->redis && !c->rcl))
        goto fail;
    for (int i = 0; i < nodes; i++) {
        c->nodes = i + 1;
        if (assign_node(c, i) < 0 || spawn_node(c, i, bin) < 0)
            goto fail;
    }
    for (int i = 0; i < nodes; i++)
        if (wait_node_ready(c, i) < 0)
            goto fail;
    return c;
fail:
    fe_cluster_stop(c);
    return NULL;
}

struct fe_cluster *fe_cluster_start_tls(int nodes, const char *const env_extra[],
                                        const char *ca_file) {
    return cluster_start(NULL, nodes, env_extra, ca_file);
}

struct fe_cluster *fe_cluster_start_on(struct redis_server *redis, int nodes,
                                       const char *const env_extra[]) {
    if (!redis)
        return NULL;
    return cluster_start(redis, nodes, env_extra, NULL);
}

int fe_node_respawn(struct fe_cluster *c, int node) {
    const char *bin = getenv("RRM_FRONTEND_BIN");
    if (node < 0 || node >= c->nodes || !bin)
        return -EINVAL;
    if (c->node[node].pid > 0)
        return -EBUSY;
    return spawn_node(c, node, bin);
}

int fe_node_restart(struct fe_cluster *c, int node) {
    int r = fe_node_respawn(c, node);
    return r < 0 ? r : wait_node_ready(c, node);
}

int fe_node_exited(struct fe_cluster *c, int node, int *code) {
    struct fe_node *n = &c->node[node];
    int st = 0;
    if (n->pid <= 0)
        return -ESRCH;
    int r = proc_check_exited(n->pid, &st);
    if (r != 0)
        return r < 0 ? r : 0;
    n->pid = 0;
    if (code)
        *code = decode_status(st);
    return 1;
}

int fe_node_ready(const struct fe_cluster *c, int node) {
    int code = 0;
    if (c->node[node].pid <= 0)
        return 0;
    return proc_http_get(c->node[node].port, "/readyz", FE_HTTP_TIMEOUT_MS, &code, NULL) == 0 &&
           code == 200;
}

int fe_nodes(const struct fe_cluster *c) {
    return c->nodes;
}

int fe_admin_port(const struct fe_cluster *c, int node) {
    return c->node[node].admin_port;
}

int fe_port(const struct fe_cluster *c, int node) {
    return c->node[node].port;
}

const char *fe_node_id(const struct fe_cluster *c, int node) {
    return c->node[node].id;
}

pid_t fe_node_pid(const struct fe_cluster *c, int node) {
    return c->node[node].pid;
}

struct redis_server *fe_redis(const struct fe_cluster *c) {
    return c->redis;
}

redisContext *fe_redis_client(const struct fe_cluster *c) {
    return c->redis ? redis_server_client(c->redis) : NULL;
}

redisContext *fe_redis_client_for(struct fe_cluster *c, const char *key) {
    if (c->redis)
        return redis_server_client(c->redis);
    int port = redis_cluster_port_of_slot(c->rcl, (int)slots_of_key(key, strlen(key)));
    return port > 0 ? redis_cluster_client(c->rcl, port) : NULL;
}

int fe_redis_flushall(struct fe_cluster *c) {
    int ports[16], n = 1;
    if (c->rcl && (n = redis_cluster_master_ports(c->rcl, ports, 16)) <= 0)
        return -1;
    for (int i = 0; i < n && i < 16; i++) {
        redisContext *r = c->rcl ? redis_cluster_client(c->rcl, ports[i]) : fe_redis_client(c);
        redisReply *ok = r ? redisCommand(r, "FLUSHALL") : NULL;
        int good = ok && ok->type == REDIS_REPLY_STATUS;
        if (ok)
            freeReplyObject(ok);
        if (r)
            redisFree(r);
        if (!good)
            return -1;
    }
    return 0;
}

struct redis_cluster *fe_redis_cluster(const struct fe_cluster *c) {
    return c->rcl;
}

int fe_redis_mode_is(const char *mode) {
    const char *m = getenv("RRM_TEST_REDIS_MODE");
    return m && strcmp(m, mode) == 0;
}

/* The n-th argument (0: the command's name) of a RESP request; 0 or -1. */
static int resp_arg(const char *cmd, size_t len, int n, const char **arg, size_t *alen) {
    const char *p = cmd, *end = cmd + len;
    if (p >= end || *p != '*' || !(p = memchr(p, '\n', (size_t)(end - p))))
        return -1;
    p++;
    for (int i = 0; p < end && *p == '$'; i++) {
        size_t l = strtoul(p + 1, NULL, 10);
        if (!(p = memchr(p, '\n', (size_t)(end - p))))
            return -1;
        p++;
        if ((size_t)(end - p) < l + 2)
            return -1;
        if (i == n) {
            *arg = p;
            *alen = l;
            return 0;
        }
        p += l + 2;
    }
    return -1;
}

/* The key a request is routed by: its first argument, or the channel of PUBSUB SHARDNUMSUB. */
static int route_slot(const char *cmd, size_t len) {
    const char *a;
    size_t n;
    if (resp_arg(cmd, len, 0, &a, &n))
        return -1;
    int pubsub = n == 6 && strncasecmp(a, "PUBSUB", 6) == 0;
    if (resp_arg(cmd, len, pubsub ? 2 : 1, &a, &n))
        return -1;
    return (int)slots_of_key(a, n);
}

redisReply *fe_redis_command(struct fe_cluster *c, const char *fmt, ...) {
    va_list ap;
    char *cmd = NULL;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    redisReply *reply = NULL;
    int64_t deadline = proc_now_ms() + FE_TIMEOUT_MS;
    for (;;) {
        redisContext *rc = NULL;
        if (c->redis) {
            rc = redis_server_client(c->redis);
        } else {
            int slot = route_slot(cmd, (size_t)len);
            int port = slot < 0 ? -1 : redis_cluster_port_of_slot(c->rcl, slot);
            rc = port > 0 ? redis_cluster_client(c->rcl, port) : NULL;
        }
        if (rc && redisAppendFormattedCommand(rc, cmd, (size_t)len) == REDIS_OK &&
            redisGetReply(rc, (void **)&reply) != REDIS_OK)
            reply = NULL;
        if (rc)
            redisFree(rc);
        /* a slot moving or failing over: ask again where it lives */
        int again = !c->redis && (!reply || (reply->type == REDIS_REPLY_ERROR &&
                                             (strncmp(reply->str, "MOVED", 5) == 0 ||
                                              strncmp(reply->str, "ASK", 3) == 0 ||
                                              strncmp(reply->str, "CLUSTERDOWN", 11) == 0 ||
                                              strncmp(reply->str, "TRYAGAIN", 8) == 0)));
        if (!again || proc_remaining_ms(deadline) == 0)
            break;
        if (reply)
            freeReplyObject(reply);
        reply = NULL;
        pause_until_next_poll(deadline);
    }
    redisFreeCommand(cmd);
    return reply;
}

int fe_node_stop(struct fe_cluster *c, int node, int sig, int timeout_ms) {
    struct fe_node *n = &c->node[node];
    int st = 0;
    if (n->pid <= 0)
        return -ESRCH;
    int r = proc_stop(n->pid, sig, timeout_ms, &st);
    n->pid = 0;
    if (r == -ETIMEDOUT) {
        fprintf(stderr, "fe_harness: %s did not exit within %d ms after signal %d; killed\n", n->id,
                timeout_ms, sig);
        fe_dump_log(c, node);
        return 128 + SIGKILL;
    }
    if (r < 0)
        return r;
    int code = decode_status(st);
    if (code != 0 && sig != SIGKILL) {
        fprintf(stderr, "fe_harness: %s exited with status %d after signal %d\n", n->id, code, sig);
        fe_dump_log(c, node);
    }
    return code;
}

int fe_node_signal(struct fe_cluster *c, int node, int sig) {
    if (c->node[node].pid <= 0)
        return -ESRCH;
    return kill(c->node[node].pid, sig) < 0 ? -errno : 0;
}

int fe_node_wait(struct fe_cluster *c, int node, int timeout_ms) {
    struct fe_node *n = &c->node[node];
    int st = 0;
    if (n->pid <= 0)
        return -ESRCH;
    int r = proc_wait_exit(n->pid, timeout_ms, &st);
    if (r == -ETIMEDOUT) {
        fprintf(stderr, "fe_harness: %s did not exit within %d ms; killing it\n", n->id,
                timeout_ms);
        fe_dump_log(c, node);
        fe_node_stop(c, node, SIGKILL, FE_STOP_TIMEOUT_MS);
        return 128 + SIGKILL;
    }
    n->pid = 0;
    if (r < 0)
        return r;
    int code = decode_status(st);
    if (code != 0) {
        fprintf(stderr, "fe_harness: %s exited with status %d\n", n->id, code);
        fe_dump_log(c, node);
    }
    return code;
}

int fe_cluster_stop(struct fe_cluster *c) {
    int rc = 0;
    if (!c)
        return 0;
    const char *keep = getenv("RRM_TEST_LOGS");
    int dump_all = keep && *keep && strcmp(keep, "0") != 0;
    fe_close_all(c);
    for (int i = 0; i < c->nodes; i++) {
        if (c->node[i].pid > 0 && fe_node_stop(c, i, SIGTERM, FE_STOP_TIMEOUT_MS) != 0)
            rc = -1;
        else if (dump_all)
            fe_dump_log(c, i);
        free(c->node[i].log_path);
    }
    if (c->own_redis)
        redis_server_destroy(c->redis);
    redis_cluster_stop(c->rcl);
    for (size_t j = 0; c->env && c->env[j]; j++)
        free(c->env[j]);
    free(c->env);
    if (c->dir)
        proc_rmtree(c->dir);
    free(c->dir);
    free(c);
    return rc;
}

/* ------------------------------------------------------------------ HTTP */

int fe_wait_ready(int port, int want_status, int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    int code = 0;
    for (;;) {
        if (proc_http_get(port, "/readyz", FE_HTTP_TIMEOUT_MS, &code, NULL) == 0 &&
            code == want_status)
            return 0;
        if (proc_remaining_ms(deadline) == 0) {
            fprintf(stderr, "fe_harness: /readyz on port %d: want %d, last %d\n", port, want_status,
                    code);
            return -ETIMEDOUT;
        }
        pause_until_next_poll(deadline);
    }
}

/* Find `series` at the start of a line of a Prometheus text body, followed by a space. */
static long long parse_metric(const char *body, const char *series) {
    size_t slen = strlen(series);
    const char *p = body;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        if (*p != '#' && strncmp(p, series, slen) == 0 && p[slen] == ' ') {
            char *end = NULL;
            double v = strtod(p + slen + 1, &end);
            if (end == p + slen + 1)
                return -1;
            return (long long)v;
        }
        p = eol ? eol + 1 : NULL;
    }
    return -1;
}

long long fe_metric(int port, const char *series) {
    int code = 0;
    char *body = NULL;
    if (proc_http_get(port, "/metrics", FE_HTTP_TIMEOUT_MS, &code, &body) < 0 || code != 200) {
        free(body);
        fprintf(stderr,
                "fe_harness: GET /metrics on port %d failed (status %d; /metrics is on the admin "
                "port: fe_admin_port)\n",
                port, code);
        return -1;
    }
    long long v = parse_metric(body, series);
    if (v < 0)
        fprintf(stderr, "fe_harness: series %s not found in /metrics\n", series);
    free(body);
    return v;
}

long long fe_error_count(int port, const char *code) {
    char series[128];
    snprintf(series, sizeof(series), "rrm_client_errors_total{code=\"%s\"}", code);
    return fe_metric(port, series);
}

long long fe_wait_metric(int port, const char *series, long long min, int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    for (;;) {
        long long v = fe_metric(port, series);
        if (v >= min)
            return v;
        if (proc_remaining_ms(deadline) == 0) {
            fprintf(stderr, "fe_harness: %s stayed at %lld (< %lld) for %d ms\n", series, v, min,
                    timeout_ms);
            return -1;
        }
        pause_until_next_poll(deadline);
    }
}

/* ------------------------------------------------------------------ clients */

struct wsc *fe_track(struct fe_cluster *c, struct wsc *ws) {
    if (!ws)
        return NULL;
    if (c->nclients == FE_MAX_CLIENTS) {
        fprintf(stderr, "fe_harness: too many clients\n");
        wsc_close(ws);
        return NULL;
    }
    c->clients[c->nclients++] = ws;
    return ws;
}

void fe_close(struct fe_cluster *c, struct wsc *ws) {
    if (!ws)
        return;
    for (size_t i = 0; i < c->nclients; i++) {
        if (c->clients[i] == ws) {
            c->clients[i] = c->clients[--c->nclients];
            break;
        }
    }
    wsc_close(ws);
}

void fe_close_all(struct fe_cluster *c) {
    for (size_t i = 0; i < c->nclients; i++)
        wsc_close(c->clients[i]);
    c->nclients = 0;
}

int fe_send_json(struct wsc *ws, json_t *obj) {
    if (!obj)
        return -EINVAL;
    char *text = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(obj);
    if (!text)
        return -ENOMEM;
    int r = wsc_send_text(ws, text);
    free(text);
    return r;
}

/* Print a received message for a failure report. */
static void describe(const char *what, const struct wsc_msg *m) {
    if (m->opcode == WSC_OP_CLOSE)
        fprintf(stderr, "%s: got close %d '%s'\n", what, m->close_code, m->close_reason);
    else if (m->opcode == WSC_OP_BINARY)
        fprintf(stderr, "%s: got a binary message of %zu bytes\n", what, m->len);
    else
        fprintf(stderr, "%s: got text '%.400s'\n", what, m->data);
}

json_t *fe_expect_type(struct wsc *ws, const char *type, int timeout_ms) {
    struct wsc_msg m;
    char what[96];
    snprintf(what, sizeof(what), "expected a '%s' frame", type);
    int r = wsc_recv(ws, &m, timeout_ms);
    if (r < 0) {
        fprintf(stderr, "%s: receive failed: %s\n", what, strerror(-r));
        return NULL;
    }
    json_t *j = NULL;
    if (m.opcode == WSC_OP_TEXT) {
        json_error_t err;
        j = json_loadb(m.data, m.len, 0, &err);
        const char *t = j ? json_string_value(json_object_get(j, "type")) : NULL;
        if (!t || strcmp(t, type) != 0) {
            json_decref(j);
            j = NULL;
        }
    }
    if (!j)
        describe(what, &m);
    wsc_msg_free(&m);
    return j;
}

void fe_expect_restored(struct wsc *ws, const char *room) {
    json_t *r = fe_expect_type(ws, "room", FE_TIMEOUT_MS);
    assert_non_null(r);
    assert_string_equal(fe_str(r, "action"), "restored");
    assert_string_equal(fe_str(r, "room_id"), room);
    assert_true(json_is_false(json_object_get(r, "recovered")));
    assert_non_null(fe_str(r, "epoch"));
    assert_int_equal(strlen(fe_str(r, "epoch")), 16);
    assert_true(json_is_integer(json_object_get(r, "seq")));
    json_decref(r);
}

int fe_expect_error(struct wsc *ws, const char *code, int timeout_ms) {
    json_t *e = fe_expect_type(ws, "error", timeout_ms);
    if (!e)
        return -1;
    const char *got = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    int ok = got && strcmp(got, code) == 0 && msg && *msg;
    if (!ok)
        fprintf(stderr, "expected error code '%s' with a message, got code '%s' message '%s'\n",
                code, got ? got : "(none)", msg ? msg : "(none)");
    json_decref(e);
    return ok ? 0 : -1;
}

int fe_wait_close(struct wsc *ws, int timeout_ms) {
    int code = 0;
    int r = wsc_wait_closed(ws, timeout_ms, &code);
    if (r < 0) {
        fprintf(stderr, "waiting for the connection to close: %s\n", strerror(-r));
        return r;
    }
    return code;
}

int fe_expect_close(struct wsc *ws, int timeout_ms) {
    struct wsc_msg m;
    int r = wsc_recv(ws, &m, timeout_ms);
    if (r == -ECONNRESET)
        return WSC_CLOSE_ABNORMAL;
    if (r < 0) {
        fprintf(stderr, "expected a close frame: receive failed: %s\n", strerror(-r));
        return -1;
    }
    int code = -1;
    if (m.opcode == WSC_OP_CLOSE)
        code = m.close_code;
    else
        describe("expected a close frame", &m);
    wsc_msg_free(&m);
    return code;
}

json_t *fe_query_room(struct wsc *ws, int timeout_ms) {
    if (wsc_send_text(ws, "{\"type\":\"query_room\"}") < 0)
        return NULL;
    return fe_expect_type(ws, "room_info", timeout_ms);
}

int fe_has_client(json_t *room_info, const char *device) {
    json_t *clients = json_object_get(room_info, "clients");
    size_t i;
    json_t *cl;
    json_array_foreach(clients, i, cl) {
        const char *d = json_string_value(json_object_get(cl, "device_id"));
        if (d && strcmp(d, device) == 0)
            return 1;
    }
    return 0;
}

struct wsc *client_join_ex(int port, json_t *identify, json_t **conn_frame, json_t **room_frame) {
    json_t *conn = NULL, *room = NULL;
    struct wsc *ws = wsc_connect("127.0.0.1", port, "/", FE_TIMEOUT_MS);
    if (!ws) {
        fprintf(stderr, "client_join: cannot connect to port %d\n", port);
        return NULL;
    }
    if (fe_send_json(ws, json_incref(identify)) < 0)
        goto fail;
    conn = fe_expect_type(ws, "connection", FE_TIMEOUT_MS);
    if (!conn)
        goto fail;
    room = fe_expect_type(ws, "room", FE_TIMEOUT_MS);
    if (!room)
        goto fail;
    if (conn_frame)
        *conn_frame = conn;
    else
        json_decref(conn);
    if (room_frame)
        *room_frame = room;
    else
        json_decref(room);
    return ws;
fail:
    json_decref(conn);
    wsc_close(ws);
    return NULL;
}

struct wsc *client_join(int port, const char *device, const char *identity, const char *room,
                        char *room_out) {
    json_t *id = json_pack("{s:s}", "device_id", device);
    json_t *room_frame = NULL;
    if (!id)
        return NULL;
    if (identity)
        json_object_set_new(id, "identity", json_string(identity));
    if (room)
        json_object_set_new(id, "room_id", json_string(room));
    struct wsc *ws = client_join_ex(port, id, NULL, &room_frame);
    json_decref(id);
    if (!ws) {
        fprintf(stderr, "client_join: device '%s' room '%s' failed\n", device,
                room ? room : "(none)");
        return NULL;
    }
    const char *r = json_string_value(json_object_get(room_frame, "room_id"));
    if (!r || strlen(r) >= FE_ROOM_CAP) {
        fprintf(stderr, "client_join: room frame without a valid room_id\n");
        json_decref(room_frame);
        wsc_close(ws);
        return NULL;
    }
    if (room_out)
        snprintf(room_out, FE_ROOM_CAP, "%s", r);
    json_decref(room_frame);
    return ws;
}

struct wsc *fe_join(struct fe_cluster *c, int node, const char *device, const char *identity,
                    const char *room, char *room_out) {
    return fe_track(c, client_join(c->node[node].port, device, identity, room, room_out));
}

struct wsc *fe_connect(struct fe_cluster *c, int node) {
    struct wsc *ws = wsc_connect("127.0.0.1", c->node[node].port, "/", FE_TIMEOUT_MS);
    if (!ws)
        fprintf(stderr, "fe_connect: cannot connect to %s\n", c->node[node].id);
    return fe_track(c, ws);
}

/* ------------------------------------------------------------------ Redis */

int fe_str_eq(struct event_str a, const char *s) {
    return a.p && a.len == strlen(s) && memcmp(a.p, s, a.len) == 0;
}

const char *fe_room_key(const char *room, const char *suffix) {
    static char bufs[8][KEYS_ACK_MAX];
    static unsigned next;
    char *buf = bufs[next++ % 8];
    size_t cap = sizeof(bufs[0]);
    int n = keys_room(buf, cap, keys_room_shard(room, FE_EVENT_SHARDS), room);
    assert_true(n > 0 && (size_t)n + strlen(suffix) < cap);
    memcpy(buf + n, suffix, strlen(suffix) + 1);
    return buf;
}

int fe_redis_exists(struct fe_cluster *c, const char *key) {
    redisReply *r = fe_redis_command(c, "EXISTS %s", key);
    int v = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

/* Decode one XRANGE entry [id, [f, v, f, v, ...]] into ev. 0 or -1. */
static int decode_entry(const redisReply *entry, struct rrm_event *ev) {
    enum { MAX_PAIRS = 32 };
    const char *names[MAX_PAIRS], *values[MAX_PAIRS];
    size_t nlens[MAX_PAIRS], vlens[MAX_PAIRS];
    char err[160];
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[1]->type != REDIS_REPLY_ARRAY)
        return -1;
    const redisReply *kv = entry->element[1];
    size_t n = kv->elements / 2;
    if (n > MAX_PAIRS || kv->elements % 2)
        return -1;
    for (size_t i = 0; i < n; i++) {
        names[i] = kv->element[2 * i]->str;
        nlens[i] = kv->element[2 * i]->len;
        values[i] = kv->element[2 * i + 1]->str;
        vlens[i] = kv->element[2 * i + 1]->len;
    }
    if (event_decode(ev, names, nlens, values, vlens, n, err, sizeof(err)) < 0) {
        fprintf(stderr, "fe_events: entry %s does not decode: %s\n", entry->element[0]->str, err);
        return -1;
    }
    return 0;
}

/* One entry of a shard stream, for sorting. */
struct shard_entry {
    const redisReply *entry;
    unsigned long long ms, seq;
    unsigned shard;
};

static int by_id_then_shard(const void *a, const void *b) {
    const struct shard_entry *x = a, *y = b;
    if (x->ms != y->ms)
        return x->ms < y->ms ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->shard < y->shard ? -1 : x->shard > y->shard;
}

/* Appends the names of the shard streams rc holds to *names (*n of them). 0 or -1. */
static int event_keys_of(redisContext *rc, char ***names, size_t *n) {
    redisReply *keys = rc ? redisCommand(rc, "KEYS rrm:events:{*}") : NULL;
    int ok = keys && keys->type == REDIS_REPLY_ARRAY;
    for (size_t k = 0; ok && k < keys->elements; k++) {
        char **grown = realloc(*names, (*n + 1) * sizeof(**names));
        ok = grown != NULL;
        if (grown) {
            *names = grown;
            ok = ((*names)[*n] = strdup(keys->element[k]->str)) != NULL;
            *n += ok;
        }
    }
    if (!ok)
        fprintf(stderr, "fe_events: KEYS rrm:events:{*} failed\n");
    if (keys)
        freeReplyObject(keys);
    return ok ? 0 : -1;
}

/* The names of every shard stream: of the one Redis, or of every master of the cluster. */
static int event_keys(struct fe_cluster *c, char ***names, size_t *n) {
    if (c->redis) {
        redisContext *rc = fe_redis_client(c);
        int r = event_keys_of(rc, names, n);
        if (rc)
            redisFree(rc);
        return r;
    }
    int ports[16];
    int m = redis_cluster_master_ports(c->rcl, ports, 16);
    for (int i = 0; i < m && i < 16; i++) {
        redisContext *rc = redis_cluster_client(c->rcl, ports[i]);
        int r = event_keys_of(rc, names, n);
        if (rc)
            redisFree(rc);
        if (r)
            return -1;
    }
    return m > 0 ? 0 : -1;
}

int fe_events_load(struct fe_cluster *c, struct fe_events *out) {
    memset(out, 0, sizeof(*out));
    struct shard_entry *all = NULL;
    int rc_ = -1;
    char **names = NULL;
    size_t nnames = 0;
    unsigned *shards = NULL;
    if (event_keys(c, &names, &nnames))
        goto out;
    out->replies = calloc(nnames ? nnames : 1, sizeof(*out->replies));
    shards = calloc(nnames ? nnames : 1, sizeof(*shards));
    if (!out->replies || !shards)
        goto out;
    size_t total = 0;
    for (size_t k = 0; k < nnames; k++) {
        redisReply *r = fe_redis_command(c, "XRANGE %s - +", names[k]);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "fe_events: XRANGE %s failed\n", names[k]);
            if (r)
                freeReplyObject(r);
            goto out;
        }
        out->replies[out->nreplies] = r;
        shards[out->nreplies++] = (unsigned)strtoul(names[k] + 12, NULL, 10);
        total += r->elements;
    }
    all = calloc(total ? total : 1, sizeof(*all));
    if (!all)
        goto out;
    for (size_t k = 0, at = 0; k < out->nreplies; k++) {
        for (size_t i = 0; i < out->replies[k]->elements; i++, at++) {
            const redisReply *e = out->replies[k]->element[i];
            all[at].entry = e;
            all[at].shard = shards[k];
            if (e->type == REDIS_REPLY_ARRAY && e->elements == 2)
                sscanf(e->element[0]->str, "%llu-%llu", &all[at].ms, &all[at].seq);
        }
    }
    qsort(all, total, sizeof(*all), by_id_then_shard);
    out->n = total;
    out->ev = calloc(out->n ? out->n : 1, sizeof(*out->ev));
    out->ok = calloc(out->n ? out->n : 1, sizeof(*out->ok));
    out->shard = calloc(out->n ? out->n : 1, sizeof(*out->shard));
    out->id = calloc(out->n ? out->n : 1, sizeof(*out->id));
    if (!out->ev || !out->ok || !out->shard || !out->id)
        goto out;
    for (size_t i = 0; i < out->n; i++) {
        out->shard[i] = all[i].shard;
        out->ok[i] = decode_entry(all[i].entry, &out->ev[i]) == 0;
        out->id[i] = out->ok[i] ? all[i].entry->element[0]->str : "";
        if (!out->ok[i]) {
            memset(&out->ev[i], 0, sizeof(out->ev[i]));
            out->decode_errors++;
        }
    }
    rc_ = 0;
out:
    free(all);
    free(shards);
    for (size_t k = 0; k < nnames; k++)
        free(names[k]);
    free(names);
    if (rc_)
        fe_events_free(out);
    return rc_;
}

void fe_events_free(struct fe_events *e) {
    if (!e)
        return;
    for (size_t i = 0; i < e->nreplies; i++)
        freeReplyObject(e->replies[i]);
    free(e->replies);
    free(e->ev);
    free(e->ok);
    free(e->shard);
    free(e->id);
    memset(e, 0, sizeof(*e));
}

/* ------------------------------------------------------------- assertions */

const char *fe_str(json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

void fe_send_text(struct wsc *ws, const char *content) {
    assert_int_equal(fe_send_json(ws, json_pack("{s:s, s:s}", "type", "text", "content", content)),
                     0);
}

json_t *fe_expect_relay(struct wsc *ws, const char *type, const char *from, const char *room) {
    json_t *m = fe_expect_type(ws, type, FE_TIMEOUT_MS);
    assert_non_null(m);
    assert_string_equal(fe_str(m, "from_device_id"), from);
    if (room)
        assert_string_equal(fe_str(m, "room_id"), room);
    assert_true(json_is_integer(json_object_get(m, "ts")));
    assert_true(json_is_integer(json_object_get(m, "seq")));
    assert_true(json_integer_value(json_object_get(m, "seq")) > 0);
    return m;
}

void fe_expect_text(struct wsc *ws, const char *from, const char *room, const char *content) {
    json_t *m = fe_expect_relay(ws, "text", from, room);
    assert_string_equal(fe_str(m, "content"), content);
    json_decref(m);
}

void fe_expect_binary(struct wsc *ws, const void *data, size_t len) {
    struct wsc_msg m;
    assert_int_equal(wsc_recv(ws, &m, FE_TIMEOUT_MS), 0);
    assert_int_equal(m.opcode, WSC_OP_BINARY);
    assert_int_equal(m.len, len);
    assert_memory_equal(m.data, data, len);
    wsc_msg_free(&m);
}

int fe_teardown(void **state) {
    int rc = fe_cluster_stop(*state);
    if (rc != 0)
        fprintf(stderr, "teardown: a frontend did not exit cleanly with status 0\n");
    return rc;
}
