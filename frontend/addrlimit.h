/* Per-address limits on WebSocket connections: how many one client address may hold open on this
 * node (RRM_MAX_CONNECTIONS_PER_IP) and how fast it may open new ones (a token bucket per address,
 * RRM_HANDSHAKES_PER_IP_PER_SEC with a burst of RRM_HANDSHAKES_PER_IP_BURST). It owns one entry
 * per address that holds connections or whose bucket is not full again yet; an entry with neither
 * is freed (at once when its last connection closes with a full bucket, else by
 * addrlimit_sweep), and there are never more than max_addresses of them. Pure: the caller passes
 * the time, so the unit tests drive the clock. */
#ifndef RRM_ADDRLIMIT_H
#define RRM_ADDRLIMIT_H

#include "clientaddr.h"

#include <stddef.h>
#include <stdint.h>

struct addrlimit_options {
    long max_connections; /* per address; 0: no limit */
    long rate_per_sec;    /* handshakes per address per second; 0: no limit */
    long burst;           /* bucket size (at least 1 when rate_per_sec is set) */
    size_t max_addresses; /* most entries at once */
};

struct addrlimit;

/* Returns NULL when out of memory. */
struct addrlimit *addrlimit_create(const struct addrlimit_options *o);
void addrlimit_destroy(struct addrlimit *l);

enum addrlimit_verdict {
    ADDRLIMIT_OK,          /* admitted: one more connection counted for the address */
    ADDRLIMIT_CONNECTIONS, /* the address holds max_connections already */
    ADDRLIMIT_RATE,        /* the address's bucket is empty */
    ADDRLIMIT_FULL,        /* max_addresses other addresses are tracked (or out of memory) */
};

/* A WebSocket handshake from addr (NUL-terminated) at now_ms (monotonic). On ADDRLIMIT_OK the
 * connection is counted until addrlimit_release; otherwise *retry_after_s is a suggested wait in
 * whole seconds (at least 1). */
enum addrlimit_verdict addrlimit_admit(struct addrlimit *l, const char *addr, int64_t now_ms,
                                       long *retry_after_s);

/* A connection admitted for addr ended. */
void addrlimit_release(struct addrlimit *l, const char *addr, int64_t now_ms);

/* Frees the entries of addresses without connections whose bucket has filled up again. Returns
 * how many such idle entries are left (to be swept later). */
size_t addrlimit_sweep(struct addrlimit *l, int64_t now_ms);

/* An address and the connections it holds (addrlimit_top). */
struct addrlimit_usage {
    char addr[CLIENTADDR_MAX];
    long connections;
};

/* The (at most n) addresses holding the most connections, most first, into out; returns how
 * many. */
size_t addrlimit_top(const struct addrlimit *l, struct addrlimit_usage *out, size_t n);

/* Entries held, and the connections counted for addr. */
size_t addrlimit_count(const struct addrlimit *l);
long addrlimit_connections(const struct addrlimit *l, const char *addr);

#endif
