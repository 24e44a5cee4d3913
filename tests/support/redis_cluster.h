/*
 * redis_cluster.h - run a private, throw-away Redis Cluster for tests.
 *
 * This module owns the redis-server processes of one cluster (masters and their replicas, all
 * on 127.0.0.1), their temporary directory (one sub-directory per node with its nodes.conf and
 * logs) and their ports: each node listens on its port and on port + 10000 (the cluster bus).
 * Nodes run like the tests' single Redis (redis_server.h): no persistence, maxmemory 1280mb with
 * noeviction; with --cluster-node-timeout 1000, so a killed master is replaced within seconds.
 *
 * Nodes are numbered 0 .. redis_cluster_nodes() - 1 in start order and keep their port for the
 * life of the object; which of them are masters changes with failovers, so the current roles and
 * slot owners are always read from the live nodes, never remembered.
 *
 * Files in the temp dir: cluster-create.log (output of redis-cli --cluster create) and, per node,
 * node-<i>/redis.log and node-<i>/redis.stdout.log. They are printed to stderr when a start
 * or a wait fails.
 *
 * Functions returning int return 0 (or a port) on success and a negative errno value on failure.
 * Nothing sleeps for a fixed time: every wait is a poll against a deadline.
 */
#ifndef RRM_TESTSUPPORT_REDIS_CLUSTER_H
#define RRM_TESTSUPPORT_REDIS_CLUSTER_H

#include <hiredis/hiredis.h>
#include <sys/types.h>

/* Number of hash slots of a Redis Cluster. */
#define REDIS_CLUSTER_SLOTS 16384

struct redis_cluster;

/*
 * Start masters * (1 + replicas_per_master) redis-server nodes on free ports (masters >= 3, as
 * redis-cli requires), join them with `redis-cli --cluster create ... --cluster-replicas R`, and
 * wait (up to 60 s) until every node reports cluster_state:ok and knows every other node, and
 * every replica's link to its master is up. Returns the cluster (caller frees with
 * redis_cluster_stop) or NULL, with the reason and the logs on stderr and every node stopped.
 */
struct redis_cluster *redis_cluster_start(int masters, int replicas_per_master);

/* Stop every node (SIGTERM, SIGKILL as fallback), remove the temp dir and free c. NULL is
 * allowed. */
void redis_cluster_stop(struct redis_cluster *c);

/* Number of nodes (masters and replicas) started. */
int redis_cluster_nodes(const struct redis_cluster *c);

/* Port of node i (0 <= i < redis_cluster_nodes), or -EINVAL. */
int redis_cluster_port(const struct redis_cluster *c, int i);

/* Pid of the node on port, 0 if it is not running (killed), -EINVAL if no node has that port. */
pid_t redis_cluster_pid(const struct redis_cluster *c, int port);

/* The temp directory (owned by c; valid until redis_cluster_stop). */
const char *redis_cluster_dir(const struct redis_cluster *c);

/*
 * Ports of the current masters (as CLUSTER NODES of a live node shows them, without nodes marked
 * failed and without nodes this module killed), in ascending order. Stores at most cap of them in
 * out and returns how many there are (may exceed cap), or a negative errno value.
 */
int redis_cluster_master_ports(const struct redis_cluster *c, int *out, int cap);

/*
 * Port of the master serving slot now: the live node that is a master and owns the slot in its
 * own view (CLUSTER NODES "myself"). -ENOENT if no live master claims it (e.g. its master was
 * killed and no replica is promoted yet), -EINVAL for a bad slot, other negative errno on error.
 */
int redis_cluster_port_of_slot(const struct redis_cluster *c, int slot);

/* Hash slot of key (CLUSTER KEYSLOT, asked of a live node), or a negative errno value. */
int redis_cluster_key_slot(const struct redis_cluster *c, const char *key);

/*
 * New blocking hiredis connection to the node on port (connect and command timeout 5 s).
 * Returns NULL if no node of c has that port or the connection fails; caller frees with
 * redisFree.
 */
redisContext *redis_cluster_client(const struct redis_cluster *c, int port);

/*
 * SIGKILL the node on port, which must be a live master, and reap it. The slots it owned are
 * remembered for redis_cluster_wait_failover. Returns 0, -EINVAL if port is not a live master of
 * c, other negative errno on error.
 */
int redis_cluster_kill_master(struct redis_cluster *c, int port);

/*
 * Wait up to timeout_ms until one other live node is master of every slot the node on dead_port
 * owned when it was killed, every live node maps those slots to it, and every live node reports
 * cluster_state:ok. Returns the new master's port, -ETIMEDOUT (with the cluster's view on
 * stderr), or another negative errno value.
 */
int redis_cluster_wait_failover(struct redis_cluster *c, int dead_port, int timeout_ms);

/*
 * Move slot with all its keys to the live master on to_port, the way `redis-cli --cluster
 * reshard` does: CLUSTER SETSLOT IMPORTING on the target, MIGRATING on the source, CLUSTER
 * GETKEYSINSLOT + MIGRATE in batches until the source holds none, then CLUSTER SETSLOT NODE on
 * the target, the source and every other live master. Clients may keep using the slot meanwhile
 * (they get ASK redirections). Then waits up to 10 s until every live node maps the slot to
 * to_port. Returns 0 (also if to_port already serves the slot) or a negative errno value (the
 * reason on stderr).
 */
int redis_cluster_move_slot(struct redis_cluster *c, int slot, int to_port);

/*
 * Start a killed node again in its own dir with its nodes.conf, so it rejoins the cluster (a
 * former master whose slots were taken over comes back as a replica of the new master), and wait
 * up to 30 s until it reports cluster_state:ok and, as a replica, its link to its master is up.
 * Returns 0, -EBUSY if the node is running, -EINVAL if no node has that port, other negative errno
 * on error.
 */
int redis_cluster_restart_node(struct redis_cluster *c, int port);

#endif /* RRM_TESTSUPPORT_REDIS_CLUSTER_H */
