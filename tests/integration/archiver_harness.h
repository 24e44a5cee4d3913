/* archiver_harness.h - shared fixture for the rrm-archiver integration tests (test_archiver*.c).
 *
 * This module owns one struct arch_harness per test binary: a private redis-server and mariadbd,
 * a temp dir for the archivers' logs, a hiredis connection to the server and a MySQL connection to
 * the current test's database. ah_setup creates it as cmocka's group state and ah_teardown stops
 * and frees everything; every test gets it from *state and passes it to the helpers. Each test
 * starts with ah_fresh: an empty Redis and its own database.
 *
 * The helpers start rrm-archiver processes against those servers, append events like the
 * frontends do (event.h encoding, XADD to the stream rrm:events:{N} of the event's room, or of its
 * device or node without one), and wait for a condition in deadline loops
 * that poll it; a wait that times out prints the archivers' logs and fails the test (cmocka). */
#ifndef RRM_ARCHIVER_HARNESS_H
#define RRM_ARCHIVER_HARNESS_H

#include "event.h"

#include <hiredis/hiredis.h>
#include <mysql.h>
#include <stddef.h>
#include <sys/types.h>

/* Default wait for the archiver to get somewhere (generous for sanitizer builds). */
#define AH_WAIT_MS 30000
/* The consumer group the archivers use by default. */
#define AH_GROUP "rrm-archivers"
/* RRM_EVENT_SHARDS of each test (ah_fresh), unless it sets another with ah_set_shards. */
#define AH_SHARDS 16

struct arch_harness;

/* One rrm-archiver process started by ah_start. */
struct ah_archiver {
    pid_t pid; /* 0 once stopped */
    char name[64];
    char log[512];
    int metrics_port; /* its RRM_METRICS_PORT on 127.0.0.1 (0: none) */
};

/* cmocka group setup: starts the servers ($RRM_ARCHIVER_BIN must name the archiver) and puts
 * the harness in *state. Returns 0 or -1. */
int ah_setup(void **state);

struct mariadb_server_options;
/* ah_setup with options for mariadbd (TLS files; NULL: none). */
int ah_setup_opts(void **state, const struct mariadb_server_options *db_opts);

struct redis_server_options;
/* ah_setup with options for redis-server (e.g. an append-only file, so that a test can restart
 * it without losing the stream) and for mariadbd; either may be NULL. */
int ah_setup_full(void **state, const struct redis_server_options *redis_opts,
                  const struct mariadb_server_options *db_opts);

/* cmocka group teardown: stops the servers, removes the temp dir (kept, and named on stderr, with
 * RRM_KEEP_TEST_LOGS set) and frees the harness in *state. */
int ah_teardown(void **state);

/* The servers, the temp dir and the archiver binary (borrowed, valid until ah_teardown). */
struct redis_server *ah_redis_server(const struct arch_harness *h);
struct mariadb_server *ah_db(const struct arch_harness *h);
const char *ah_dir(const struct arch_harness *h);
const char *ah_bin(const struct arch_harness *h);

/* Writes a new log file name, <dir>/<prefix>-<n>.log, to buf. */
void ah_log_path(struct arch_harness *h, const char *prefix, char *buf, size_t cap);

/* The harness's Redis connection (borrowed), reconnected if it was lost or closed; NULL when the
 * server does not answer. */
redisContext *ah_redis_client(struct arch_harness *h);

/* Closes the Redis connection (before the server is restarted). */
void ah_redis_close(struct arch_harness *h);

/* Waits ms milliseconds: only as the pause between two polls of a condition. */
void ah_sleep_ms(int ms);

/* A Redis command with hiredis format arguments; NULL if the connection failed. Caller frees. */
redisReply *ah_redis(struct arch_harness *h, const char *fmt, ...);

/* A Redis command that must succeed (anything but an error reply). */
void ah_redis_ok(struct arch_harness *h, const char *fmt, ...);

/* A Redis command that must answer an integer, which is returned. */
long long ah_redis_int(struct arch_harness *h, const char *fmt, ...);

/* Drops the connection to the test database (e.g. after a restart). */
void ah_db_reset(struct arch_harness *h);

/* A fresh stream and database for one test: FLUSHALL, and dbname dropped if it exists. */
void ah_fresh(struct arch_harness *h, const char *dbname);

/* Runs sql in the test database; returns its result (caller frees) or NULL on any error, which is
 * printed unless quiet. Statements without a result return NULL with *ok set. */
MYSQL_RES *ah_query(struct arch_harness *h, const char *sql, int quiet, int *ok);

/* Runs a statement that must succeed. */
void ah_exec(struct arch_harness *h, const char *sql);

/* First column of the first row of a printf-formatted query (malloc'd; "NULL" for SQL NULL,
 * "(no row)" without a row); a failed query fails the test. */
char *ah_str(struct arch_harness *h, const char *fmt, ...);

/* Asserts that the first column of the first row of the printf-formatted query equals want. */
void ah_expect(struct arch_harness *h, const char *want, const char *fmt, ...);

/* First column of the first row as an integer; -1 on error, SQL NULL or no row. */
long long ah_int_q(struct arch_harness *h, const char *sql);

/* Prints the tail of every archiver log made so far. */
void ah_dump_logs(struct arch_harness *h);

/* Polls the printf-formatted query (one integer) until it equals want; fails with the archivers'
 * logs at the deadline. */
void ah_wait_int(struct arch_harness *h, long long want, int timeout_ms, const char *fmt, ...);

/* Like ah_wait_int but waits for a value >= want; returns the value seen. */
long long ah_wait_at_least(struct arch_harness *h, long long want, int timeout_ms, const char *sql);

/* The shard count of the events appended and of the archivers started (RRM_EVENT_SHARDS) until
 * the next ah_fresh. */
void ah_set_shards(struct arch_harness *h, unsigned shards);
unsigned ah_shards(const struct arch_harness *h);

/* The stream rrm:events:{N} that takes the events of room (or device) id. */
void ah_events_key(const struct arch_harness *h, const char *id, char *buf, size_t cap);

/* Entries in every archive stream (the shards and rrm:events), or -1. */
long long ah_events_len(struct arch_harness *h);

/* Pending entries, lag and entries-read of the archivers' group summed over the shard streams
 * and rrm:events (-1 if the group exists on none). */
void ah_group_state(struct arch_harness *h, long long *pending, long long *lag,
                    long long *entries_read);

/* Waits until the group has read every entry and acknowledged it: everything is committed. */
void ah_wait_drained(struct arch_harness *h, int timeout_ms);

/* Appends ev to its shard's stream like a frontend; the event id the archive records for it
 * ("<shard>/<entry id>") goes to id (if not NULL). */
void ah_xadd(struct arch_harness *h, const struct rrm_event *ev, char *id, size_t idcap);

/* Appends ev to rrm:events like a frontend of an older version; the entry id (which the archive
 * records as it is) goes to id (if not NULL). */
void ah_xadd_legacy(struct arch_harness *h, const struct rrm_event *ev, char *id, size_t idcap);

/* Appends a raw entry (names[i] = values[i]; value_lens NULL: NUL-terminated values) to the
 * shard of its "room" field (shard 0 without one); its event id goes to id (if not NULL). */
void ah_xadd_raw(struct arch_harness *h, size_t n, const char *const *names,
                 const char *const *values, const size_t *value_lens, char *id, size_t idcap);

/* Appends `count` message events numbered first.. (room "R<k % rooms>", seq = number) to their
 * rooms' shards, pipelined;
 * every tenth is a query event instead when with_queries is set. Returns how many were queries. */
int ah_xadd_messages(struct arch_harness *h, int first, int count, int rooms, int with_queries);

/* Starts rrm-archiver as consumer `name` on the harness's servers and the current test's
 * database, logging to a new file in the temp dir. extra ("K=V", NULL terminated, may be NULL)
 * override the defaults (debug logging, RRM_FLUSH_MS=50, RRM_BATCH_SIZE=500, short retries, the
 * metrics listener on a free port of 127.0.0.1: a->metrics_port). */
void ah_start(struct arch_harness *h, struct ah_archiver *a, const char *name,
              const char *const *extra);

/* GET path from the archiver's metrics port, retried while nothing listens there yet (within
 * AH_WAIT_MS). Returns the HTTP status, or a negative errno value; the body (if body is not NULL)
 * is stored there (caller frees; NULL on failure). */
int ah_http_get(const struct ah_archiver *a, const char *path, char **body);

/* Value of one series of text in the Prometheus format, e.g. "rrm_archiver_batches_total" or
 * "rrm_archiver_rows_total{table=\"messages\"}" (exact name with labels); -1 if it is missing. */
double ah_series(const char *text, const char *series);

/* ah_series of the archiver's live /metrics; -1 if the request failed or the series is missing. */
double ah_metric(const struct ah_archiver *a, const char *series);

/* Polls ah_metric until it equals want; fails with the archivers' logs at the deadline. */
void ah_wait_metric(struct arch_harness *h, const struct ah_archiver *a, const char *series,
                    double want, int timeout_ms);

/* Stops an archiver with sig (SIGKILL after 20 s) and returns its raw wait status; -1 if it was
 * not running. */
int ah_stop(struct ah_archiver *a, int sig);

/* Number of lines of an archiver's log that contain needle. */
int ah_log_count(const struct ah_archiver *a, const char *needle);

/* Waits until an archiver's log has at least `count` lines containing needle. */
void ah_wait_log(struct arch_harness *h, const struct ah_archiver *a, const char *needle, int count,
                 int timeout_ms);

/* Whole content of a file (malloc'd; caller frees) or NULL. */
char *ah_read_file(const char *path);

#endif
