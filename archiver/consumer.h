/* Redis side of the archiver: one blocking hiredis connection that reads the archive streams
 * (rrm:events:{0..shards-1}, and the single stream rrm:events of older versions while it exists)
 * as a member of one consumer group per stream, acknowledges what was written, keeps this
 * consumer's alive mark, takes over the entries of consumers whose mark is gone and reclaims
 * entries left pending too long by any other, moves unwritable entries to the dead-letter stream
 * (rrm:events:dead) and reports the groups' lag. It never trims or deletes stream entries.
 *
 * Every command names the keys of one Redis Cluster slot: one command per stream, the alive marks
 * read on their own. Reads go round the streams: each read takes one stream's next batch, starting
 * after the stream the last batch came from, so a busy shard cannot starve the others.
 *
 * The connections are rconn's (rconn.h): one to a single Redis, or one per master of a Redis
 * Cluster, each command sent to the master of the slot of its stream (or mark).
 *
 * Every call that talks to Redis first (re)connects if needed; on a connection error it drops the
 * connections and returns -1, and the caller decides when to try again. */
#ifndef ARCH_CONSUMER_H
#define ARCH_CONSUMER_H

#include "log.h"

#include <hiredis.h>
#include <stddef.h>
#include <stdint.h>

struct arch_consumer_config {
    const char *host, *password, *group, *name; /* copied */
    int port;
    int cluster;        /* 1: host:port and nodes are seeds of a Redis Cluster */
    const char *nodes;  /* cluster: more seeds, "host:port,host:port" (copied; NULL: none) */
    unsigned shards;    /* streams rrm:events:{0..shards-1} (at least 1) */
    long batch;         /* COUNT of one read */
    long block_ms;      /* longest BLOCK of one read (the flush interval) */
    long claim_idle_ms; /* another consumer's entry pending this long is reclaimed */
    long dead_maxlen;   /* approximate cap of the dead-letter stream, 0 = none */
    long timeout_ms;    /* connect and command timeout (a read adds block_ms) */
};

/* The longest event id: "<shard>/<ms>-<seq>". */
#define ARCH_EVENT_ID_LEN 48

/* One stream entry: borrowed from the reply that the arch_entries holding it owns. */
struct arch_entry {
    const char *id; /* the stream entry id */
    size_t id_len;
    int stream; /* which stream (the consumer's own numbering) */
    /* The id the archive records, unique across the streams: "<N>/<id>" for an entry of shard N,
     * the bare entry id for one of the single stream of older versions (as they recorded it). */
    char event_id[ARCH_EVENT_ID_LEN];
    size_t event_id_len;
    size_t nfields;
    const char *const *names; /* nfields each */
    const size_t *name_lens;
    const char *const *values;
    const size_t *value_lens;
    int deleted; /* pending, but trimmed from the stream before it was archived: no fields */
};

/* A batch of entries and the Redis reply they point into. */
struct arch_entries {
    struct arch_entry *items;
    size_t n;
    redisReply *reply;
    const char **strs;
    size_t *lens;
};

/* Frees what a read or reclaim filled in and empties e. */
void arch_entries_free(struct arch_entries *e);

/* Sums over every stream, and the largest backlog of one shard. */
struct arch_lag {
    long long length;            /* XLEN */
    long long pending;           /* delivered to the group, not yet acknowledged */
    long long lag;               /* not yet delivered to the group; -1 when Redis cannot tell */
    long long shard_backlog_max; /* pending + lag of the shard with the most */
    int shard_max;               /* that shard */
    long long legacy_backlog;    /* pending + lag of rrm:events (0 when it does not exist) */
};

/* One stream's part of an arch_lag. */
struct arch_stream_lag {
    int shard;         /* rrm:events:{shard}; -1: rrm:events of older versions */
    long long length;  /* XLEN */
    long long pending; /* delivered to the group, not yet acknowledged */
    long long lag;     /* not yet delivered to the group; -1 when Redis cannot tell */
};

struct arch_consumer;

/* Returns NULL when out of memory. No connection is made yet. */
struct arch_consumer *arch_consumer_create(const struct arch_consumer_config *cfg,
                                           const struct logger *lg);
void arch_consumer_destroy(struct arch_consumer *c);

/* Why the last call failed (borrowed, valid until the next call). */
const char *arch_consumer_error(const struct arch_consumer *c);

/* Connects (if not connected), authenticates, and creates the group at the start of every shard
 * stream (MKSTREAM) if it does not exist, and of rrm:events if that stream exists (it is looked
 * for again every few seconds while it does not). After every new connection the next reads
 * return this consumer's own pending entries first. Returns 0 or -1. */
int arch_consumer_connect(struct arch_consumer *c);

/* Reads the next batch, of one stream, into out (caller frees with arch_entries_free): this
 * consumer's pending entries while there are any, then new entries, the streams in turn; when no
 * stream has any, waits block_ms (at most the configured block_ms) and returns none. Returns 0
 * (out->n may be 0) or -1. */
int arch_consumer_read(struct arch_consumer *c, struct arch_entries *out, long block_ms);

/* 1 while the reads are still returning this consumer's own pending entries. */
int arch_consumer_in_backlog(const struct arch_consumer *c);

/* Claims up to `batch` entries of one stream pending longer than claim_idle_ms for other consumers
 * (XAUTOCLAIM) into out. *wrapped is set when the scan of the pending lists of every stream has
 * reached its end. Entries deleted from the stream while pending are dropped by Redis and counted
 * in *lost. Returns 0 or -1. */
int arch_consumer_reclaim(struct arch_consumer *c, struct arch_entries *out, int *wrapped,
                          long long *lost);

/* The alive mark of consumer C in group G is the key rrm:archiver:alive:G:C (keys.h) with a PX
 * expiry. A consumer of the group without one is dead: its pending entries are taken over at once
 * (arch_consumer_takeover) instead of after claim_idle_ms.
 *
 * Sets or refreshes this consumer's mark to expire in ttl_ms; every new connection sets it again
 * with the last ttl_ms until arch_consumer_unmark. Returns 0 or -1. */
int arch_consumer_mark_alive(struct arch_consumer *c, long ttl_ms);

/* Deletes this consumer's alive mark (it stops being refreshed), so that peers take over what it
 * leaves pending without waiting for the expiry. Returns 0 or -1. */
int arch_consumer_unmark(struct arch_consumer *c);

/* What one arch_consumer_takeover call saw and did. */
struct arch_takeover {
    char dead[256]; /* the consumer whose entries were claimed (return value 1) */
    long long lost; /* of those, entries trimmed from the stream while pending (dropped) */
    int removed;    /* consumers without a mark and with nothing pending, deleted from the group */
    int consumers;  /* other consumers of the group looked at */
    int alive;      /* of those, with a live mark */
};

/* Looks at each stream's other consumers (XINFO CONSUMERS) in order, the streams in turn, and
 * reads each one's alive mark (EXISTS, on its own: the mark is of another slot). A consumer without
 * a mark that has nothing pending in that stream is deleted from its group (XGROUP DELCONSUMER);
 * at the first one without a mark that has pending entries, up to `batch` of them are claimed for
 * this consumer (XPENDING for that consumer, then XCLAIM with min-idle 0) into out (caller frees
 * with arch_entries_free) and the scan stops there (the next call goes on from that stream). Each
 * consumer's claim or delete runs in one script on the stream, so two live archivers never both
 * claim an entry (each entry goes to exactly one) nor delete a consumer that has just read. A
 * consumer whose mark comes back between the read of the mark and the script loses its entries to
 * this one: that costs work, not correctness (writes are idempotent; an XACK of an entry another
 * consumer owns still acknowledges it). Returns 1 when entries were claimed (out->n may still be 0
 * if all were trimmed: see t->lost; call again, there may be more), 0 when the scan found nothing
 * to claim, -1 on a Redis error (t says what was done before it). */
int arch_consumer_takeover(struct arch_consumer *c, struct arch_entries *out,
                           struct arch_takeover *t);

/* Resets the idle time of entries this consumer holds (XCLAIM ... JUSTID) so that peers do not
 * reclaim a batch that is only waiting for MySQL. Returns 0 or -1. */
int arch_consumer_touch(struct arch_consumer *c, const struct arch_entry *const *entries, size_t n);

/* Acknowledges entries (XACK). Returns 0 or -1. */
int arch_consumer_ack(struct arch_consumer *c, const struct arch_entry *const *entries, size_t n);

/* For each entry, appends to the dead-letter stream original_id (the entry's event_id), the
 * reason, dead_consumer, dead_at and then the original fields (one MULTI/EXEC: all or none). The
 * caller acknowledges the entries afterwards (arch_consumer_ack): the dead letters and a shard are
 * of different slots, so not in one transaction. An archiver that dies between the two leaves the
 * entry pending: it is dead-lettered again, so a dead letter may appear twice (same original_id),
 * never not at all. Returns 0 or -1. */
int arch_consumer_dead_letter(struct arch_consumer *c, const struct arch_entry *const *entries,
                              const char *const *reasons, size_t n);

/* Stream length, pending count and lag of this consumer's group in every stream: summed in out,
 * and, if streams is not NULL, one by one in streams[0..*n) (at most cap; the shards in order,
 * then rrm:events if it exists; a shard whose group could not be created yet is left out).
 * Returns 0 or -1. */
int arch_consumer_lag(struct arch_consumer *c, struct arch_lag *out,
                      struct arch_stream_lag *streams, int cap, int *n);

/* Removes consumers of the groups that hold no pending entries and have been idle longer than
 * idle_ms (a restarted archiver with a new name leaves its old name behind). Returns the number
 * removed or -1. */
int arch_consumer_forget_idle(struct arch_consumer *c, long long idle_ms);

#endif
