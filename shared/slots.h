/* Redis Cluster slot math and the cluster's slot map: pure functions, no I/O.
 *
 * Owns: the key -> slot function of the Redis Cluster spec (CRC16/XMODEM of the key, or of its
 * hash tag, modulo 16384), the parsing of the MOVED and ASK redirection errors, and the slot table
 * (slot -> master) built from a CLUSTER SLOTS reply. The router that holds a link per master and
 * sends the commands uses these and lives elsewhere.
 *
 * Hosts: Redis sends an empty host (":6380" in a redirection) or a NULL one (in CLUSTER SLOTS)
 * when it does not know the node's address (cluster-preferred-endpoint-type unknown-endpoint).
 * Both are kept here as "", which means "the host of the connection the error or the reply came
 * from"; the router substitutes it. */
#ifndef RRM_SLOTS_H
#define RRM_SLOTS_H

#include <stddef.h>
#include <stdint.h>

struct redisReply; /* hiredis */

#define SLOTS_COUNT 16384
#define SLOTS_HOST_MAX 256 /* a host with its NUL; longer hosts are refused */
#define SLOTS_MASTERS_MAX 64

/* The CRC16 of the cluster spec (XMODEM: poly 0x1021, init 0, no reflection, no final xor). */
unsigned slots_crc16(const void *buf, size_t len);

/* The slot (0..16383) of a key of len bytes (binary safe): if the key has a '{' and a '}' after
 * it with at least one byte between the first '{' and the first '}' after it, only those bytes
 * are hashed, otherwise the whole key. */
unsigned slots_of_key(const char *key, size_t len);

enum slots_redirect_kind {
    SLOTS_MOVED = 1, /* the slot lives elsewhere for good: refresh the table */
    SLOTS_ASK = 2,   /* this one command goes there, preceded by ASKING */
};

struct slots_redirect {
    enum slots_redirect_kind kind;
    unsigned slot;
    char host[SLOTS_HOST_MAX]; /* without IPv6 brackets; "" = the host that sent the error */
    unsigned port;
};

/* Parses a redirection error as hiredis gives it (without the leading '-'): "MOVED <slot>
 * <host>:<port>" or "ASK <slot> <host>:<port>". The port is after the last ':', so both
 * "::1:6380" and "[::1]:6380" give host "::1". Returns 0 with *out filled, or -1 (out
 * unspecified) for any other error text, a slot > 16383, a port of 0 or > 65535, a host of
 * SLOTS_HOST_MAX bytes or more, or anything else malformed. err need not be NUL-terminated. */
int slots_parse_redirect(const char *err, size_t len, struct slots_redirect *out);

struct slots_node {
    char host[SLOTS_HOST_MAX]; /* "" = the host the CLUSTER SLOTS reply came from */
    unsigned port;
};

/* The next seed of a list "host:port,host:port" (an IPv6 host in brackets, "[::1]:7000"): *list
 * points into the list and is moved past the seed. Returns 1 with out filled, 0 at the end of the
 * list (or for NULL), -1 when the seed does not parse (an empty host or item, a bad port). */
int slots_next_seed(const char **list, struct slots_node *out);

/* The slot map: which master owns each slot. About 50 KB: allocate it with the owner's state,
 * not on a small stack. Callers read nodes[0..nnodes-1]; they change it only through the
 * functions below. */
struct slots_table {
    int16_t owner[SLOTS_COUNT]; /* index into nodes, or -1 for an unassigned slot */
    unsigned nnodes;
    struct slots_node nodes[SLOTS_MASTERS_MAX]; /* the masters, each host:port once */
};

/* Makes t empty: no masters, every slot unassigned. */
void slots_table_init(struct slots_table *t);

/* Fills t from a CLUSTER SLOTS reply (r is borrowed): an array of [start, end, master, replica...]
 * where each node is [host, port, id, ...]; only the master (the first node) is used. Masters
 * are deduplicated by host:port. Returns 0, or -1 if the reply is malformed (wrong types, start >
 * end, a slot > 16383, overlapping ranges, a missing or out-of-range port, a host too long, more
 * than SLOTS_MASTERS_MAX masters) or memory runs out; then t is unchanged. */
int slots_table_from_reply(struct slots_table *t, const struct redisReply *r);

/* The index in t->nodes of the master of slot, or -1 if the slot is unassigned or > 16383. */
int slots_table_owner(const struct slots_table *t, unsigned slot);

#endif
