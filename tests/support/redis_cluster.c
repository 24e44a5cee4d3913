/*
 * redis_cluster.c - run a private, throw-away Redis Cluster for tests.
 *
 * See redis_cluster.h. Every question about the cluster (who is master, who owns a slot, is the
 * cluster ok) is answered from the nodes themselves, over a short-lived connection per question,
 * because the answer changes under the test's feet (failover, slot moves). Where nodes may
 * disagree for a moment (gossip), the waits here ask every live node and go on until they agree.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "redis_cluster.h"

#include "proc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#define RC_BUS_OFFSET 10000
#define RC_START_TIMEOUT_MS 60000
#define RC_PING_TIMEOUT_MS 10000
#define RC_STOP_TIMEOUT_MS 10000
#define RC_RESTART_TIMEOUT_MS 30000
#define RC_SETTLE_TIMEOUT_MS 10000
#define RC_CLIENT_TIMEOUT_MS 5000
#define RC_QUERY_TIMEOUT_MS 2000
#define RC_MIGRATE_TIMEOUT_MS "5000"
#define RC_MIGRATE_BATCH 100
#define RC_RETRY_MS 50
#define RC_PORT_ATTEMPTS 5
#define RC_MAX_NODES 64
#define RC_MAXMEMORY "1280mb"

struct rc_node {
    int port;
    pid_t pid;      /* 0 when not running */
    char *dir;      /* node-<i> inside the cluster dir; owned */
    char *log_path; /* dir/redis.log; owned */
    char *out_path; /* dir/redis.stdout.log; owned */
    /* Slots the node owned when redis_cluster_kill_master killed it (REDIS_CLUSTER_SLOTS flags);
     * NULL otherwise. Owned. */
    unsigned char *dead_slots;
};

struct redis_cluster {
    char *exe;        /* redis-server; owned */
    char *cli;        /* redis-cli; owned */
    char *dir;        /* temp dir; owned, removed by stop */
    char *create_log; /* dir/cluster-create.log; owned */
    int n;
    int masters;
    int replicas;
    struct rc_node *nodes; /* n entries; owned */
};

/* One node's view of the cluster, parsed from its CLUSTER NODES. */
struct rc_view {
    int owner[REDIS_CLUSTER_SLOTS]; /* port of the master of each slot, 0 if unassigned */
    int myself_master;              /* the node asked is a master */
    int healthy;                    /* nodes known, connected and not suspected of failure */
    int n_masters;                  /* masters not marked failed */
    int masters[RC_MAX_NODES];      /* their ports (first RC_MAX_NODES) */
};

static int min_int(int a, int b) {
    return a < b ? a : b;
}

static redisContext *connect_with_timeout(int port, int timeout_ms) {
    if (timeout_ms <= 0)
        timeout_ms = 1;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!rc)
        return NULL;
    if (rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
        redisFree(rc);
        return NULL;
    }
    return rc;
}

/* Run one command on a new connection to port. Returns the reply (caller frees with
 * freeReplyObject) or NULL if the node could not be reached. */
static redisReply *node_cmd(int port, const char *fmt, ...) {
    redisContext *rc = connect_with_timeout(port, RC_QUERY_TIMEOUT_MS);
    if (!rc)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    redisFree(rc);
    return r;
}

/* The text of a bulk or verbatim reply to fmt on port, malloc'd (caller frees), or NULL. */
static char *node_text(int port, const char *fmt) {
    redisReply *r = node_cmd(port, fmt);
    char *s = NULL;
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
        s = strdup(r->str);
    if (r)
        freeReplyObject(r);
    return s;
}

static struct rc_node *node_of(const struct redis_cluster *c, int port) {
    if (!c || port <= 0)
        return NULL;
    for (int i = 0; i < c->n; i++)
        if (c->nodes[i].port == port)
            return &c->nodes[i];
    return NULL;
}

/* 1 if the comma-separated flags contain flag exactly. */
static int has_flag(const char *flags, const char *flag) {
    size_t len = strlen(flag);
    for (const char *p = flags; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == len && strncmp(p, flag, len) == 0)
            return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* Port of "ip:port@cport[,hostname]", or 0. */
static int addr_port(const char *addr) {
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", addr);
    buf[strcspn(buf, "@,")] = '\0';
    char *colon = strrchr(buf, ':');
    return colon ? atoi(colon + 1) : 0;
}

/* Parse CLUSTER NODES text into v. 0, or -EPROTO for a line that is not understood. */
static int parse_nodes(const char *text, struct rc_view *v) {
    memset(v, 0, sizeof(*v));
    char *copy = strdup(text);
    if (!copy)
        return -ENOMEM;
    int ret = 0;
    char *save_line = NULL;
    for (char *line = strtok_r(copy, "\r\n", &save_line); line;
         line = strtok_r(NULL, "\r\n", &save_line)) {
        char *save = NULL, *tok[8];
        int nt = 0;
        char *t = strtok_r(line, " ", &save);
        while (t && nt < 8) {
            tok[nt++] = t;
            if (nt < 8)
                t = strtok_r(NULL, " ", &save);
        }
        if (nt < 8) {
            ret = -EPROTO;
            break;
        }
        int port = addr_port(tok[1]);
        const char *flags = tok[2];
        int failed = has_flag(flags, "fail") || has_flag(flags, "fail?");
        int master = has_flag(flags, "master");
        if (has_flag(flags, "myself"))
            v->myself_master = master;
        if (!failed && !has_flag(flags, "handshake") && !has_flag(flags, "noaddr") &&
            strcmp(tok[7], "connected") == 0)
            v->healthy++;
        if (master && !failed) {
            if (v->n_masters < RC_MAX_NODES)
                v->masters[v->n_masters] = port;
            v->n_masters++;
        }
        /* Slots: "a", "a-b", and "[a->-id]" / "[a-<-id]" for migrations in progress. */
        for (t = strtok_r(NULL, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
            if (t[0] == '[')
                continue;
            int lo, hi;
            int n = sscanf(t, "%d-%d", &lo, &hi);
            if (n == 1)
                hi = lo;
            if (n < 1 || lo < 0 || hi >= REDIS_CLUSTER_SLOTS || lo > hi) {
                ret = -EPROTO;
                break;
            }
            for (int s = lo; s <= hi; s++)
                v->owner[s] = port;
        }
    }
    free(copy);
    return ret;
}

/* Read and parse the view of the node on port. 0 or negative (unreachable: -ECONNREFUSED). */
static int node_view(int port, struct rc_view *v) {
    char *text = node_text(port, "CLUSTER NODES");
    if (!text)
        return -ECONNREFUSED;
    int r = parse_nodes(text, v);
    free(text);
    return r;
}

/* 1 if CLUSTER INFO of port says cluster_state:ok. */
static int node_state_ok(int port) {
    char *info = node_text(port, "CLUSTER INFO");
    int ok = info && strstr(info, "cluster_state:ok") != NULL;
    free(info);
    return ok;
}

/* Replication role of port: 1 master, 2 replica with its link up, 3 replica without, negative
 * if unreachable. */
static int node_role(int port) {
    char *info = node_text(port, "INFO replication");
    if (!info)
        return -ECONNREFUSED;
    int role = -EPROTO;
    if (strstr(info, "role:master"))
        role = 1;
    else if (strstr(info, "role:slave"))
        role = strstr(info, "master_link_status:up") ? 2 : 3;
    free(info);
    return role;
}

/* First live node (or -ENOENT). */
static int live_port(const struct redis_cluster *c) {
    for (int i = 0; i < c->n; i++)
        if (c->nodes[i].pid > 0)
            return c->nodes[i].port;
    return -ENOENT;
}

/* Prints what the live nodes think of the cluster, and the tails of their logs. */
static void dump_state(const struct redis_cluster *c, int logs) {
    for (int i = 0; i < c->n; i++) {
        const struct rc_node *nd = &c->nodes[i];
        if (nd->pid <= 0) {
            fprintf(stderr, "redis_cluster: node %d (port %d) is not running\n", i, nd->port);
            continue;
        }
        char *nodes = node_text(nd->port, "CLUSTER NODES");
        char *info = node_text(nd->port, "CLUSTER INFO");
        char *state = info ? strstr(info, "cluster_state:") : NULL;
        if (state)
            state[strcspn(state, "\r\n")] = '\0';
        fprintf(stderr, "redis_cluster: node %d (port %d, pid %d): %s\n%s", i, nd->port,
                (int)nd->pid, state ? state : "(no CLUSTER INFO)", nodes ? nodes : "");
        free(nodes);
        free(info);
    }
    if (!logs)
        return;
    for (int i = 0; i < c->n; i++) {
        if (c->nodes[i].log_path)
            proc_dump_file_tail(c->nodes[i].log_path, 1500);
        if (c->nodes[i].out_path)
            proc_dump_file_tail(c->nodes[i].out_path, 500);
    }
}

/* A port for node i whose own and bus ports are free and clash with no other node's. */
static int pick_port(const struct redis_cluster *c, int i) {
    for (int tries = 0; tries < 100; tries++) {
        int p = proc_free_port_pair(RC_BUS_OFFSET);
        if (p < 0)
            return p;
        if (p + RC_BUS_OFFSET > 65535)
            continue;
        int clash = 0;
        for (int j = 0; j < c->n && !clash; j++) {
            int q = c->nodes[j].port;
            clash = j != i && q > 0 && (p == q || p == q + RC_BUS_OFFSET || p + RC_BUS_OFFSET == q);
        }
        if (!clash)
            return p;
    }
    return -EADDRINUSE;
}

static int spawn_node(const struct redis_cluster *c, struct rc_node *nd) {
    char port[16];
    snprintf(port, sizeof(port), "%d", nd->port);
    /* Memory as the tests' single Redis (redis_server.c). No disk: nodes.conf is the only file a
     * node keeps, so a restarted node knows its place. The replica validity factor 0 lets a
     * replica take over however long its link was down, and a diskless sync without delay gets
     * replicas in sync as soon as they attach. */
    const char *const argv[] = {c->exe,       "--port",
                                port,         "--bind",
                                "127.0.0.1",  "--dir",
                                nd->dir,      "--cluster-enabled",
                                "yes",        "--cluster-config-file",
                                "nodes.conf", "--cluster-node-timeout",
                                "1000",       "--cluster-replica-validity-factor",
                                "0",          "--save",
                                "",           "--appendonly",
                                "no",         "--repl-diskless-sync-delay",
                                "0",          "--daemonize",
                                "no",         "--protected-mode",
                                "no",         "--maxmemory",
                                RC_MAXMEMORY, "--maxmemory-policy",
                                "noeviction", "--logfile",
                                nd->log_path, NULL};
    pid_t pid = proc_spawn(argv, NULL, nd->out_path);
    if (pid < 0)
        return (int)pid;
    nd->pid = pid;
    return 0;
}

/* Wait until nd answers PING. 0; -ECHILD if it exited (reaped); -ETIMEDOUT. */
static int wait_ping(struct rc_node *nd, int64_t deadline) {
    for (;;) {
        if (proc_check_exited(nd->pid, NULL) == 0) {
            nd->pid = 0;
            return -ECHILD;
        }
        redisReply *r = node_cmd(nd->port, "PING");
        int ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r)
            freeReplyObject(r);
        if (ok)
            return 0;
        int rem = proc_remaining_ms(deadline);
        if (rem == 0) {
            proc_stop(nd->pid, SIGKILL, RC_STOP_TIMEOUT_MS, NULL);
            nd->pid = 0;
            return -ETIMEDOUT;
        }
        poll(NULL, 0, min_int(rem, RC_RETRY_MS));
    }
}

/* Spawn node i on a fresh port. 0 or negative. */
static int spawn_fresh(struct redis_cluster *c, int i) {
    struct rc_node *nd = &c->nodes[i];
    nd->port = 0;
    nd->port = pick_port(c, i);
    if (nd->port < 0)
        return nd->port;
    return spawn_node(c, nd);
}

/* Start every node, all at once, and wait until each answers PING. A node that exits at once
 * (its port or bus port was taken meanwhile) is tried again on other ports a few times. */
static int start_nodes(struct redis_cluster *c, int64_t deadline) {
    for (int i = 0; i < c->n; i++) {
        int r = spawn_fresh(c, i);
        if (r < 0)
            return r;
    }
    for (int i = 0; i < c->n; i++) {
        int r = wait_ping(&c->nodes[i], deadline);
        for (int attempt = 1; r == -ECHILD && attempt < RC_PORT_ATTEMPTS; attempt++) {
            r = spawn_fresh(c, i);
            if (r == 0)
                r = wait_ping(&c->nodes[i], deadline);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* redis-cli --cluster create over all nodes. 0 or negative. */
static int create_cluster(struct redis_cluster *c, int64_t deadline) {
    const char **argv = calloc((size_t)c->n + 8, sizeof(*argv));
    char **addrs = calloc((size_t)c->n, sizeof(*addrs));
    char replicas[16];
    int r = -ENOMEM, k = 0;
    if (!argv || !addrs)
        goto out;
    snprintf(replicas, sizeof(replicas), "%d", c->replicas);
    argv[k++] = c->cli;
    argv[k++] = "--cluster";
    argv[k++] = "create";
    for (int i = 0; i < c->n; i++) {
        if (asprintf(&addrs[i], "127.0.0.1:%d", c->nodes[i].port) < 0) {
            addrs[i] = NULL;
            goto out;
        }
        argv[k++] = addrs[i];
    }
    argv[k++] = "--cluster-replicas";
    argv[k++] = replicas;
    argv[k++] = "--cluster-yes";
    argv[k] = NULL;
    pid_t pid = proc_spawn(argv, NULL, c->create_log);
    if (pid < 0) {
        r = (int)pid;
        goto out;
    }
    int status = 0;
    r = proc_wait_exit(pid, proc_remaining_ms(deadline), &status);
    if (r == -ETIMEDOUT) {
        proc_stop(pid, SIGKILL, RC_STOP_TIMEOUT_MS, NULL);
        fprintf(stderr, "redis_cluster: redis-cli --cluster create did not finish in time\n");
    } else if (r == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        fprintf(stderr, "redis_cluster: redis-cli --cluster create failed (status 0x%x)\n", status);
        r = -EPROTO;
    }
out:
    if (addrs)
        for (int i = 0; i < c->n; i++)
            free(addrs[i]);
    free(addrs);
    free(argv);
    return r;
}

/* 1 if every node is ok, knows all others, replicas are linked, and the roles add up. */
static int cluster_ready(const struct redis_cluster *c, struct rc_view *v) {
    int replicas = 0;
    for (int i = 0; i < c->n; i++) {
        int port = c->nodes[i].port;
        if (!node_state_ok(port) || node_view(port, v) < 0 || v->healthy != c->n ||
            v->n_masters != c->masters)
            return 0;
        for (int s = 0; s < REDIS_CLUSTER_SLOTS; s++)
            if (v->owner[s] <= 0)
                return 0;
        int role = node_role(port);
        if (role != 1 && role != 2)
            return 0;
        replicas += role == 2;
    }
    return replicas == c->masters * c->replicas;
}

static char *path_join(const char *dir, const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

struct redis_cluster *redis_cluster_start(int masters, int replicas_per_master) {
    int64_t t0 = proc_now_ms(), deadline = t0 + RC_START_TIMEOUT_MS;
    struct rc_view *v = NULL;
    const char *what = "start";
    int r = -ENOMEM;
    if (masters < 3 || replicas_per_master < 0 ||
        masters * (1 + replicas_per_master) > RC_MAX_NODES) {
        fprintf(stderr, "redis_cluster: %d masters with %d replicas each: need 3 to %d nodes\n",
                masters, replicas_per_master, RC_MAX_NODES);
        return NULL;
    }
    struct redis_cluster *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->masters = masters;
    c->replicas = replicas_per_master;
    c->n = masters * (1 + replicas_per_master);
    c->exe = proc_which("redis-server");
    c->cli = proc_which("redis-cli");
    if (!c->exe || !c->cli) {
        fprintf(stderr, "redis_cluster: redis-server or redis-cli not found in PATH or /usr/bin\n");
        redis_cluster_stop(c);
        return NULL;
    }
    c->dir = proc_tmpdir("rcluster");
    c->nodes = calloc((size_t)c->n, sizeof(*c->nodes));
    v = malloc(sizeof(*v));
    if (!c->dir || !c->nodes || !v || !(c->create_log = path_join(c->dir, "cluster-create.log")))
        goto fail;
    for (int i = 0; i < c->n; i++) {
        struct rc_node *nd = &c->nodes[i];
        char name[32];
        snprintf(name, sizeof(name), "node-%d", i);
        if (!(nd->dir = path_join(c->dir, name)) ||
            !(nd->log_path = path_join(nd->dir, "redis.log")) ||
            !(nd->out_path = path_join(nd->dir, "redis.stdout.log")))
            goto fail;
        if (mkdir(nd->dir, 0700) < 0) {
            r = -errno;
            goto fail;
        }
    }
    what = "starting the nodes";
    r = start_nodes(c, proc_now_ms() + RC_PING_TIMEOUT_MS);
    if (r < 0)
        goto fail;
    what = "redis-cli --cluster create";
    r = create_cluster(c, deadline);
    if (r < 0)
        goto fail;
    what = "waiting for cluster_state:ok, all nodes known and replicas in sync";
    for (;;) {
        if (cluster_ready(c, v))
            break;
        int rem = proc_remaining_ms(deadline);
        if (rem == 0) {
            r = -ETIMEDOUT;
            goto fail;
        }
        for (int i = 0; i < c->n; i++)
            if (proc_check_exited(c->nodes[i].pid, NULL) == 0) {
                fprintf(stderr, "redis_cluster: node %d (port %d) exited\n", i, c->nodes[i].port);
                c->nodes[i].pid = 0;
                r = -ECHILD;
                goto fail;
            }
        poll(NULL, 0, min_int(rem, RC_RETRY_MS));
    }
    free(v);
    return c;
fail:
    fprintf(stderr, "redis_cluster: %s failed after %lld ms: %s\n", what,
            (long long)(proc_now_ms() - t0), strerror(-r));
    if (c->nodes) {
        dump_state(c, 1);
        if (c->create_log)
            proc_dump_file_tail(c->create_log, 4096);
    }
    free(v);
    redis_cluster_stop(c);
    return NULL;
}

void redis_cluster_stop(struct redis_cluster *c) {
    if (!c)
        return;
    /* All at once, then reap each: shutdowns run in parallel. */
    for (int i = 0; c->nodes && i < c->n; i++)
        if (c->nodes[i].pid > 0)
            kill(c->nodes[i].pid, SIGTERM);
    for (int i = 0; c->nodes && i < c->n; i++) {
        struct rc_node *nd = &c->nodes[i];
        if (nd->pid > 0)
            proc_stop(nd->pid, SIGTERM, RC_STOP_TIMEOUT_MS, NULL);
        free(nd->dir);
        free(nd->log_path);
        free(nd->out_path);
        free(nd->dead_slots);
    }
    if (c->dir)
        proc_rmtree(c->dir);
    free(c->nodes);
    free(c->exe);
    free(c->cli);
    free(c->dir);
    free(c->create_log);
    free(c);
}

int redis_cluster_nodes(const struct redis_cluster *c) {
    return c ? c->n : 0;
}

int redis_cluster_port(const struct redis_cluster *c, int i) {
    if (!c || i < 0 || i >= c->n)
        return -EINVAL;
    return c->nodes[i].port;
}

pid_t redis_cluster_pid(const struct redis_cluster *c, int port) {
    const struct rc_node *nd = node_of(c, port);
    return nd ? nd->pid : -EINVAL;
}

const char *redis_cluster_dir(const struct redis_cluster *c) {
    return c ? c->dir : NULL;
}

int redis_cluster_master_ports(const struct redis_cluster *c, int *out, int cap) {
    if (!c || (cap > 0 && !out))
        return -EINVAL;
    struct rc_view *v = malloc(sizeof(*v));
    if (!v)
        return -ENOMEM;
    int r = -ENOENT;
    /* The first live node that answers. */
    for (int i = 0; i < c->n && r < 0; i++)
        if (c->nodes[i].pid > 0)
            r = node_view(c->nodes[i].port, v);
    if (r < 0) {
        free(v);
        return r;
    }
    int n = 0, m = min_int(v->n_masters, RC_MAX_NODES);
    int ports[RC_MAX_NODES];
    for (int i = 0; i < m; i++) {
        const struct rc_node *nd = node_of(c, v->masters[i]);
        if (nd && nd->pid > 0)
            ports[n++] = v->masters[i];
    }
    free(v);
    /* Ascending, so that callers get a stable order. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ports[j - 1] > ports[j]; j--) {
            int t = ports[j];
            ports[j] = ports[j - 1];
            ports[j - 1] = t;
        }
    for (int i = 0; i < n && i < cap; i++)
        out[i] = ports[i];
    return n;
}

/* Port of the live master owning slot in its own view, using v as scratch. */
static int slot_owner(const struct redis_cluster *c, int slot, struct rc_view *v) {
    for (int i = 0; i < c->n; i++) {
        const struct rc_node *nd = &c->nodes[i];
        if (nd->pid > 0 && node_view(nd->port, v) == 0 && v->myself_master &&
            v->owner[slot] == nd->port)
            return nd->port;
    }
    return -ENOENT;
}

int redis_cluster_port_of_slot(const struct redis_cluster *c, int slot) {
    if (!c || slot < 0 || slot >= REDIS_CLUSTER_SLOTS)
        return -EINVAL;
    struct rc_view *v = malloc(sizeof(*v));
    if (!v)
        return -ENOMEM;
    int r = slot_owner(c, slot, v);
    free(v);
    return r;
}

int redis_cluster_key_slot(const struct redis_cluster *c, const char *key) {
    if (!c || !key)
        return -EINVAL;
    int port = live_port(c);
    if (port < 0)
        return port;
    redisReply *r = node_cmd(port, "CLUSTER KEYSLOT %s", key);
    int slot = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -EPROTO;
    if (!r)
        slot = -ECONNREFUSED;
    if (r)
        freeReplyObject(r);
    return slot;
}

redisContext *redis_cluster_client(const struct redis_cluster *c, int port) {
    if (!node_of(c, port))
        return NULL;
    return connect_with_timeout(port, RC_CLIENT_TIMEOUT_MS);
}

int redis_cluster_kill_master(struct redis_cluster *c, int port) {
    struct rc_node *nd = node_of(c, port);
    if (!nd || nd->pid <= 0)
        return -EINVAL;
    struct rc_view *v = malloc(sizeof(*v));
    if (!v)
        return -ENOMEM;
    int r = node_view(port, v);
    if (r == 0 && !v->myself_master)
        r = -EINVAL;
    if (r == 0) {
        free(nd->dead_slots);
        nd->dead_slots = calloc(REDIS_CLUSTER_SLOTS, 1);
        if (!nd->dead_slots)
            r = -ENOMEM;
    }
    if (r == 0)
        for (int s = 0; s < REDIS_CLUSTER_SLOTS; s++)
            nd->dead_slots[s] = v->owner[s] == port;
    free(v);
    if (r < 0)
        return r;
    r = proc_stop(nd->pid, SIGKILL, RC_STOP_TIMEOUT_MS, NULL);
    nd->pid = 0;
    return r;
}

/* The new master of the dead node's slots if every live node agrees and is ok, else 0. */
static int failover_done(const struct redis_cluster *c, const struct rc_node *dead,
                         struct rc_view *v) {
    int new_master = 0;
    for (int i = 0; i < c->n; i++) {
        const struct rc_node *nd = &c->nodes[i];
        if (nd->pid <= 0)
            continue;
        if (!node_state_ok(nd->port) || node_view(nd->port, v) < 0)
            return 0;
        for (int s = 0; s < REDIS_CLUSTER_SLOTS; s++) {
            if (!dead->dead_slots[s])
                continue;
            int owner = v->owner[s];
            if (owner <= 0 || owner == dead->port || (new_master && owner != new_master))
                return 0;
            new_master = owner;
        }
        if (nd->port == new_master && !v->myself_master)
            return 0;
    }
    const struct rc_node *nm = node_of(c, new_master);
    return nm && nm->pid > 0 ? new_master : 0;
}

int redis_cluster_wait_failover(struct redis_cluster *c, int dead_port, int timeout_ms) {
    struct rc_node *dead = node_of(c, dead_port);
    if (!dead || !dead->dead_slots)
        return -EINVAL;
    if (dead->pid > 0)
        return -EBUSY;
    if (!memchr(dead->dead_slots, 1, REDIS_CLUSTER_SLOTS))
        return -ENOENT;
    struct rc_view *v = malloc(sizeof(*v));
    if (!v)
        return -ENOMEM;
    int64_t deadline = proc_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        int port = failover_done(c, dead, v);
        if (port > 0) {
            free(v);
            return port;
        }
        int rem = proc_remaining_ms(deadline);
        if (rem == 0)
            break;
        poll(NULL, 0, min_int(rem, RC_RETRY_MS));
    }
    free(v);
    fprintf(stderr, "redis_cluster: no failover of port %d within %d ms\n", dead_port, timeout_ms);
    dump_state(c, 0);
    return -ETIMEDOUT;
}

/* The reply of one command on rc; an error reply is printed and turned into NULL. */
static redisReply *checked(redisContext *rc, int port, redisReply *r, const char *what) {
    if (!r) {
        fprintf(stderr, "redis_cluster: %s on port %d: %s\n", what, port,
                rc->errstr[0] ? rc->errstr : "no reply");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "redis_cluster: %s on port %d: %s\n", what, port, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* CLUSTER MYID of the node on rc into id (cap bytes). 0 or negative. */
static int node_id(redisContext *rc, int port, char *id, size_t cap) {
    redisReply *r = checked(rc, port, redisCommand(rc, "CLUSTER MYID"), "CLUSTER MYID");
    if (!r)
        return -EPROTO;
    int ok = r->type == REDIS_REPLY_STRING && r->len > 0 && (size_t)r->len < cap;
    if (ok)
        memcpy(id, r->str, (size_t)r->len + 1);
    freeReplyObject(r);
    return ok ? 0 : -EPROTO;
}

/* MIGRATE the keys of one CLUSTER GETKEYSINSLOT reply from src to to_port. 0 or negative. */
static int migrate_keys(redisContext *src, int src_port, int to_port, const redisReply *keys) {
    char port[16];
    snprintf(port, sizeof(port), "%d", to_port);
    /* MIGRATE host port "" db timeout KEYS k1 .. kn */
    const char *head[] = {"MIGRATE", "127.0.0.1", port, "", "0", RC_MIGRATE_TIMEOUT_MS, "KEYS"};
    size_t nh = sizeof(head) / sizeof(head[0]), argc = nh + keys->elements;
    const char **argv = calloc(argc, sizeof(*argv));
    size_t *lens = calloc(argc, sizeof(*lens));
    int ret = -ENOMEM;
    if (!argv || !lens)
        goto out;
    for (size_t i = 0; i < nh; i++) {
        argv[i] = head[i];
        lens[i] = strlen(head[i]);
    }
    for (size_t i = 0; i < keys->elements; i++) {
        argv[nh + i] = keys->element[i]->str;
        lens[nh + i] = keys->element[i]->len;
    }
    redisReply *r = checked(src, src_port, redisCommandArgv(src, (int)argc, argv, lens), "MIGRATE");
    ret = r ? 0 : -EPROTO;
    if (r)
        freeReplyObject(r);
out:
    free(argv);
    free(lens);
    return ret;
}

/* SETSLOT slot NODE id on the node on port. 0 or negative. */
static int setslot_node(int port, int slot, const char *id) {
    redisContext *rc = connect_with_timeout(port, RC_QUERY_TIMEOUT_MS);
    if (!rc) {
        fprintf(stderr, "redis_cluster: cannot connect to port %d\n", port);
        return -ECONNREFUSED;
    }
    redisReply *r = checked(rc, port, redisCommand(rc, "CLUSTER SETSLOT %d NODE %s", slot, id),
                            "CLUSTER SETSLOT NODE");
    redisFree(rc);
    if (!r)
        return -EPROTO;
    freeReplyObject(r);
    return 0;
}

/* 1 if every live node maps slot to port. */
static int slot_settled(const struct redis_cluster *c, int slot, int port, struct rc_view *v) {
    for (int i = 0; i < c->n; i++)
        if (c->nodes[i].pid > 0 && (node_view(c->nodes[i].port, v) < 0 || v->owner[slot] != port))
            return 0;
    return 1;
}

int redis_cluster_move_slot(struct redis_cluster *c, int slot, int to_port) {
    struct rc_node *to = node_of(c, to_port);
    if (!to || to->pid <= 0 || slot < 0 || slot >= REDIS_CLUSTER_SLOTS)
        return -EINVAL;
    struct rc_view *v = malloc(sizeof(*v));
    if (!v)
        return -ENOMEM;
    redisContext *src = NULL, *dst = NULL;
    redisReply *r = NULL;
    char src_id[64], dst_id[64];
    int ret = node_view(to_port, v);
    if (ret == 0 && !v->myself_master) {
        fprintf(stderr, "redis_cluster: move_slot: port %d is not a master\n", to_port);
        ret = -EINVAL;
    }
    if (ret < 0)
        goto out;
    int src_port = slot_owner(c, slot, v);
    if (src_port < 0) {
        fprintf(stderr, "redis_cluster: move_slot: no live master serves slot %d\n", slot);
        ret = src_port;
        goto out;
    }
    if (src_port == to_port)
        goto out;
    src = connect_with_timeout(src_port, RC_CLIENT_TIMEOUT_MS);
    dst = connect_with_timeout(to_port, RC_CLIENT_TIMEOUT_MS);
    ret = -ECONNREFUSED;
    if (!src || !dst)
        goto out;
    if ((ret = node_id(src, src_port, src_id, sizeof(src_id))) < 0 ||
        (ret = node_id(dst, to_port, dst_id, sizeof(dst_id))) < 0)
        goto out;
    ret = -EPROTO;
    r = checked(dst, to_port, redisCommand(dst, "CLUSTER SETSLOT %d IMPORTING %s", slot, src_id),
                "CLUSTER SETSLOT IMPORTING");
    if (!r)
        goto out;
    freeReplyObject(r);
    r = checked(src, src_port, redisCommand(src, "CLUSTER SETSLOT %d MIGRATING %s", slot, dst_id),
                "CLUSTER SETSLOT MIGRATING");
    if (!r)
        goto out;
    freeReplyObject(r);
    /* While the slot is MIGRATING the source takes no new keys (clients are sent to the target
     * with ASK), so an empty batch means every key has moved. */
    for (;;) {
        r = checked(src, src_port,
                    redisCommand(src, "CLUSTER GETKEYSINSLOT %d %d", slot, RC_MIGRATE_BATCH),
                    "CLUSTER GETKEYSINSLOT");
        if (!r || r->type != REDIS_REPLY_ARRAY)
            goto out;
        if (r->elements == 0)
            break;
        if ((ret = migrate_keys(src, src_port, to_port, r)) < 0)
            goto out;
        freeReplyObject(r);
    }
    freeReplyObject(r);
    r = NULL;
    /* Target first: once the source lets go, the target must already serve the slot. */
    if ((ret = setslot_node(to_port, slot, dst_id)) < 0 ||
        (ret = setslot_node(src_port, slot, dst_id)) < 0)
        goto out;
    int masters[RC_MAX_NODES];
    int n = redis_cluster_master_ports(c, masters, RC_MAX_NODES);
    for (int i = 0; i < n && i < RC_MAX_NODES; i++)
        if (masters[i] != to_port && masters[i] != src_port)
            setslot_node(masters[i], slot, dst_id); /* gossip will tell one that missed it */
    int64_t deadline = proc_now_ms() + RC_SETTLE_TIMEOUT_MS;
    while (!slot_settled(c, slot, to_port, v)) {
        int rem = proc_remaining_ms(deadline);
        if (rem == 0) {
            fprintf(stderr, "redis_cluster: slot %d moved to port %d but not every node knows\n",
                    slot, to_port);
            dump_state(c, 0);
            ret = -ETIMEDOUT;
            goto out;
        }
        poll(NULL, 0, min_int(rem, RC_RETRY_MS));
    }
    ret = 0;
out:
    if (r)
        freeReplyObject(r);
    if (src)
        redisFree(src);
    if (dst)
        redisFree(dst);
    free(v);
    return ret;
}

int redis_cluster_restart_node(struct redis_cluster *c, int port) {
    struct rc_node *nd = node_of(c, port);
    if (!nd)
        return -EINVAL;
    if (nd->pid > 0)
        return -EBUSY;
    struct rc_view *v = malloc(sizeof(*v));
    if (!v)
        return -ENOMEM;
    /* Did another node take over its slots? Then it must come back as a replica. */
    int expect_replica = 0;
    if (nd->dead_slots) {
        int other = live_port(c);
        if (other > 0 && node_view(other, v) == 0)
            for (int s = 0; s < REDIS_CLUSTER_SLOTS && !expect_replica; s++)
                expect_replica = nd->dead_slots[s] && v->owner[s] > 0 && v->owner[s] != port;
    }
    int64_t deadline = proc_now_ms() + RC_RESTART_TIMEOUT_MS;
    int r = spawn_node(c, nd);
    if (r == 0)
        r = wait_ping(nd, deadline);
    while (r == 0) {
        int role = node_state_ok(port) ? node_role(port) : 0;
        if (role == 2 || (role == 1 && !expect_replica))
            break;
        int rem = proc_remaining_ms(deadline);
        if (rem == 0) {
            r = -ETIMEDOUT;
            break;
        }
        if (proc_check_exited(nd->pid, NULL) == 0) {
            nd->pid = 0;
            r = -ECHILD;
            break;
        }
        poll(NULL, 0, min_int(rem, RC_RETRY_MS));
    }
    free(v);
    if (r < 0) {
        fprintf(stderr, "redis_cluster: restart of port %d failed: %s\n", port, strerror(-r));
        dump_state(c, 1);
        return r;
    }
    free(nd->dead_slots);
    nd->dead_slots = NULL;
    return 0;
}
