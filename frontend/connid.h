/* Connection ids: "<node>#<n>", the cluster-wide name of one WebSocket connection (node id, then
 * the node's connection number in decimal). Clients see it in the connection frame; Redis stores it
 * as a room member and in pub/sub payloads. This module writes and reads that format; it owns no
 * state. */
#ifndef RRM_CONNID_H
#define RRM_CONNID_H

#include <stddef.h>
#include <stdint.h>

/* Room for any id with a valid node id (at most 63 characters), '#', 20 digits and the NUL. */
#define CONNID_MAX 96

/* Writes "<node>#<no>" and a NUL into buf: returns its length, or -1 if that does not fit in cap
 * bytes (CONNID_MAX always does for a valid node id). */
int connid_format(const char *node, uint64_t no, char *buf, size_t cap);

/* If conn (len bytes, need not be NUL-terminated) is the id of connection *no of `node`, as
 * connid_format writes it, stores the number and returns 0. Returns -1 for another node's id and
 * for anything connid_format cannot have written: no '#', no digits, a non-digit, a leading zero,
 * a number past UINT64_MAX. */
int connid_parse(const char *node, const char *conn, size_t len, uint64_t *no);

#endif
