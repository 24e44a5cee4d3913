/*
 * redis_server.h - run a private, throw-away redis-server for tests.
 *
 * This module owns one redis-server child process together with its temporary
 * directory (working dir, logs, AOF files) and its TCP port on 127.0.0.1. By
 * default the server runs without persistence (--save "" --appendonly no), so a
 * restart starts empty; with redis_server_start_opts and .aof set it keeps an
 * append-only file in its dir, fsynced on every write, and a restart (same
 * port, same dir) comes back with every acknowledged write. It runs
 * with the production memory policy (maxmemory 1280mb, noeviction: writes
 * are refused with OOM, nothing is evicted); a test lowers the cap with
 * CONFIG SET maxmemory.
 * The object survives stop/kill so that the same server (same port) can be
 * restarted, e.g. to test reconnect logic.
 *
 * Files in the temp dir: redis.log (server log), redis.stdout.log (anything
 * the process writes to stdout/stderr). Both are printed to stderr when a
 * start fails.
 */
#ifndef RRM_TESTSUPPORT_REDIS_SERVER_H
#define RRM_TESTSUPPORT_REDIS_SERVER_H

#include <hiredis/hiredis.h>
#include <sys/types.h>

struct redis_server;

/*
 * Find redis-server (PATH, then /usr/bin etc.), create a temp dir, pick a free
 * port and start the server; waits up to 10 s until it answers PING.
 * Returns the new object (caller frees with redis_server_destroy) or NULL.
 */
struct redis_server *redis_server_start(void);

/* Options of redis_server_start_opts; a zeroed struct (or NULL) gives redis_server_start. */
struct redis_server_options {
    /* Persistence: "appendonly yes", "appendfsync always" in the server's temp dir, so that a
     * stop (even SIGKILL) and redis_server_restart lose nothing Redis has answered. */
    int aof;
    /* A Redis Cluster of this one node, holding every slot: it refuses any command or script
     * whose keys are of several slots (CROSSSLOT), as a real cluster does. Also set for every
     * server a test starts when the environment has RRM_TEST_REDIS_MODE=slotted. */
    int slotted;
};

/* redis_server_start with options (NULL: none); restarts keep them. */
struct redis_server *redis_server_start_opts(const struct redis_server_options *opts);

/* TCP port on 127.0.0.1 the server listens on (stable across restarts). */
int redis_server_port(const struct redis_server *rs);

/* Pid of the running server, or 0 if it is not running. */
pid_t redis_server_pid(const struct redis_server *rs);

/* The temp directory (owned by rs; valid until redis_server_destroy). */
const char *redis_server_dir(const struct redis_server *rs);

/*
 * Stop the server: SIGTERM, wait up to 10 s, SIGKILL as fallback. The object
 * is kept for redis_server_restart. Returns 0 on a clean stop, 0 if it was not
 * running, negative if SIGKILL was needed or on error.
 */
int redis_server_stop(struct redis_server *rs);

/* SIGKILL the server and reap it (simulates a crash). 0 or negative. */
int redis_server_kill(struct redis_server *rs);

/*
 * Start the server again on the same port (stopping it first if it is
 * running) and wait up to 10 s for PING. Returns 0 or negative.
 */
int redis_server_restart(struct redis_server *rs);

/* Stop if running, remove the temp dir and free rs. NULL is allowed. */
void redis_server_destroy(struct redis_server *rs);

/*
 * New blocking hiredis connection to the server (connect timeout 5 s).
 * Returns NULL on failure; caller frees with redisFree.
 */
redisContext *redis_server_client(const struct redis_server *rs);

#endif /* RRM_TESTSUPPORT_REDIS_SERVER_H */
