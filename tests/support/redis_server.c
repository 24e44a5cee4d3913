/*
 * redis_server.c - run a private, throw-away redis-server for tests.
 *
 * See redis_server.h. Readiness is "answers PING with PONG"; while waiting we
 * also watch the child so that a server that dies at startup (e.g. port taken)
 * is detected immediately instead of at the deadline.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "redis_server.h"

#include "proc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define RS_START_TIMEOUT_MS 10000
#define RS_STOP_TIMEOUT_MS 10000
#define RS_CLIENT_TIMEOUT_MS 5000
#define RS_RETRY_MS 20
#define RS_PORT_ATTEMPTS 3
#define RS_MAXMEMORY "1280mb"

struct redis_server {
    char *exe;      /* absolute path of redis-server; owned */
    char *dir;      /* temp dir; owned, removed by destroy */
    char *log_path; /* dir/redis.log; owned */
    char *out_path; /* dir/redis.stdout.log; owned */
    int port;
    pid_t pid;   /* 0 when not running */
    int aof;     /* append-only file, fsync always (redis_server_options.aof) */
    int slotted; /* a one-node Redis Cluster (redis_server_options.slotted) */
};

static redisContext *connect_with_timeout(int port, int timeout_ms) {
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    if (timeout_ms <= 0)
        tv.tv_usec = 1000;
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c)
        return NULL;
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* One PING attempt; 0 if the server answered PONG. */
static int ping_once(int port, int timeout_ms) {
    redisContext *c = connect_with_timeout(port, timeout_ms);
    int ok = -1;
    if (!c)
        return -1;
    redisReply *r = redisCommand(c, "PING");
    if (r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0)
        ok = 0;
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* Spawn the server process on rs->port. 0 or negative. */
static int spawn(struct redis_server *rs) {
    char port[16];
    snprintf(port, sizeof(port), "%d", rs->port);
    /* Memory as in production (scripts/up, k8s): a cap and no eviction, so the tests run against
     * the OOM behaviour the frontends must handle. A test wanting a full Redis lowers the cap
     * with CONFIG SET maxmemory. */
    const char *aof = rs->aof ? "yes" : "no";
    const char *const argv[] = {rs->exe,      "--port",
                                port,         "--bind",
                                "127.0.0.1",  "--dir",
                                rs->dir,      "--save",
                                "",           "--appendonly",
                                aof,          "--appendfsync",
                                "always",     "--daemonize",
                                "no",         "--protected-mode",
                                "no",         "--maxmemory",
                                RS_MAXMEMORY, "--maxmemory-policy",
                                "noeviction", "--logfile",
                                rs->log_path, rs->slotted ? "--cluster-enabled" : NULL,
                                "yes",        "--cluster-config-file",
                                "nodes.conf", "--cluster-node-timeout",
                                "2000",       NULL};
    pid_t pid = proc_spawn(argv, NULL, rs->out_path);
    if (pid < 0)
        return (int)pid;
    rs->pid = pid;
    return 0;
}

/*
 * Wait until PING works, the child dies or the deadline passes.
 * Returns 0 when ready; -ECHILD if the child exited (it is reaped);
 * -ETIMEDOUT otherwise.
 */
static int wait_ready(struct redis_server *rs, int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    for (;;) {
        if (proc_check_exited(rs->pid, NULL) == 0) {
            rs->pid = 0;
            return -ECHILD;
        }
        int rem = proc_remaining_ms(deadline);
        if (ping_once(rs->port, rem < 1000 ? rem : 1000) == 0)
            return 0;
        rem = proc_remaining_ms(deadline);
        if (rem == 0)
            return -ETIMEDOUT;
        poll(NULL, 0, rem < RS_RETRY_MS ? rem : RS_RETRY_MS);
    }
}

static void report_failure(const struct redis_server *rs, const char *what, int err) {
    fprintf(stderr, "redis_server: %s failed (port %d): %s\n", what, rs->port, strerror(-err));
    if (rs->log_path)
        proc_dump_file_tail(rs->log_path, 4096);
    if (rs->out_path)
        proc_dump_file_tail(rs->out_path, 2048);
}

/* A one-node cluster: every slot assigned to it (once: nodes.conf keeps them over restarts),
 * and cluster_state:ok. 0 or -ETIMEDOUT. */
static int wait_slotted(struct redis_server *rs, int64_t deadline) {
    redisContext *c = connect_with_timeout(rs->port, RS_CLIENT_TIMEOUT_MS);
    int ok = -ETIMEDOUT;
    while (c && ok != 0) {
        redisReply *r = redisCommand(c, "CLUSTER INFO");
        if (r && r->type == REDIS_REPLY_STRING) {
            if (strstr(r->str, "cluster_slots_assigned:0\r\n"))
                freeReplyObject(redisCommand(c, "CLUSTER ADDSLOTSRANGE 0 16383"));
            else if (strstr(r->str, "cluster_state:ok"))
                ok = 0;
        }
        if (r)
            freeReplyObject(r);
        if (ok != 0 && proc_remaining_ms(deadline) == 0)
            break;
        if (ok != 0)
            poll(NULL, 0, RS_RETRY_MS);
    }
    if (c)
        redisFree(c);
    return ok;
}

/* Start on rs->port and wait for readiness; kills the child on timeout. */
static int start_and_wait(struct redis_server *rs) {
    int r = spawn(rs);
    if (r < 0)
        return r;
    int64_t deadline = proc_now_ms() + RS_START_TIMEOUT_MS;
    r = wait_ready(rs, RS_START_TIMEOUT_MS);
    if (r == 0 && rs->slotted)
        r = wait_slotted(rs, deadline);
    if (r == -ETIMEDOUT) {
        proc_stop(rs->pid, SIGKILL, RS_STOP_TIMEOUT_MS, NULL);
        rs->pid = 0;
    }
    return r;
}

static char *path_join(const char *dir, const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

struct redis_server *redis_server_start(void) {
    return redis_server_start_opts(NULL);
}

struct redis_server *redis_server_start_opts(const struct redis_server_options *opts) {
    struct redis_server *rs = calloc(1, sizeof(*rs));
    int r = -ENOMEM;
    if (!rs)
        return NULL;
    rs->aof = opts && opts->aof;
    const char *mode = getenv("RRM_TEST_REDIS_MODE");
    rs->slotted = (opts && opts->slotted) || (mode && strcmp(mode, "slotted") == 0);
    rs->exe = proc_which("redis-server");
    if (!rs->exe) {
        fprintf(stderr, "redis_server: redis-server not found in PATH or /usr/bin\n");
        free(rs);
        return NULL;
    }
    rs->dir = proc_tmpdir("redis");
    if (!rs->dir)
        goto fail;
    rs->log_path = path_join(rs->dir, "redis.log");
    rs->out_path = path_join(rs->dir, "redis.stdout.log");
    if (!rs->log_path || !rs->out_path)
        goto fail;
    /* The free port may be taken by someone else before redis binds it. */
    for (int attempt = 0; attempt < RS_PORT_ATTEMPTS; attempt++) {
        rs->port = rs->slotted ? proc_free_port_pair(10000) : proc_free_port();
        if (rs->port < 0) {
            r = rs->port;
            goto fail;
        }
        r = start_and_wait(rs);
        if (r != -ECHILD)
            break;
    }
    if (r < 0)
        goto fail;
    return rs;
fail:
    report_failure(rs, "start", r);
    redis_server_destroy(rs);
    return NULL;
}

int redis_server_port(const struct redis_server *rs) {
    return rs ? rs->port : -EINVAL;
}

pid_t redis_server_pid(const struct redis_server *rs) {
    return rs ? rs->pid : 0;
}

const char *redis_server_dir(const struct redis_server *rs) {
    return rs ? rs->dir : NULL;
}

int redis_server_stop(struct redis_server *rs) {
    if (!rs)
        return -EINVAL;
    if (rs->pid <= 0)
        return 0;
    int r = proc_stop(rs->pid, SIGTERM, RS_STOP_TIMEOUT_MS, NULL);
    rs->pid = 0;
    return r;
}

int redis_server_kill(struct redis_server *rs) {
    if (!rs)
        return -EINVAL;
    if (rs->pid <= 0)
        return 0;
    int r = proc_stop(rs->pid, SIGKILL, RS_STOP_TIMEOUT_MS, NULL);
    rs->pid = 0;
    return r;
}

int redis_server_restart(struct redis_server *rs) {
    if (!rs)
        return -EINVAL;
    redis_server_stop(rs);
    int r = start_and_wait(rs);
    if (r < 0)
        report_failure(rs, "restart", r);
    return r;
}

void redis_server_destroy(struct redis_server *rs) {
    if (!rs)
        return;
    redis_server_stop(rs);
    if (rs->dir)
        proc_rmtree(rs->dir);
    free(rs->exe);
    free(rs->dir);
    free(rs->log_path);
    free(rs->out_path);
    free(rs);
}

redisContext *redis_server_client(const struct redis_server *rs) {
    if (!rs || rs->port <= 0)
        return NULL;
    return connect_with_timeout(rs->port, RS_CLIENT_TIMEOUT_MS);
}
