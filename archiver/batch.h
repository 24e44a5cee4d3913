/* From stream entries to SQL: decodes archive events (shared/event.h), checks every value against
 * the column it is written to, and builds one batch's statements as multi-row, idempotent upserts
 * with every string escaped by a caller-supplied function. Pure: no MySQL, no Redis, no clock.
 *
 * Idempotence: each table row produced by one event carries the stream entry id (event_id, UNIQUE),
 * and re-inserting it changes nothing. Rows merged from several events (rooms, devices, one
 * connection's connect + room + disconnect) are upserts whose result does not depend on the order
 * in which the events arrive, so several archivers may commit them in any order. */
#ifndef ARCH_BATCH_H
#define ARCH_BATCH_H

#include "event.h"

#include <stddef.h>
#include <stdint.h>

/* Column limits; sql/migrations must agree (an integration test compares them). Strings are counted
 * in characters, like VARCHAR; the body in bytes (MEDIUMBLOB). */
#define ARCH_EVENT_ID_MAX 48 /* "<shard>/<ms>-<seq>" (consumer.h) */
#define ARCH_ROOM_ID_MAX 64
#define ARCH_DEVICE_ID_MAX 128
#define ARCH_CONN_ID_MAX 191
#define ARCH_NODE_MAX 128
#define ARCH_IDENTITY_MAX 255
#define ARCH_IP_MAX 64
#define ARCH_ACTION_MAX 16
#define ARCH_KIND_MAX 16
#define ARCH_REASON_MAX 255
#define ARCH_BODY_MAX 16777215L
#define ARCH_TOTAL_MAX 4294967295LL            /* INT UNSIGNED */
#define ARCH_DATETIME_MAX_MS 253402300799999LL /* 9999-12-31 23:59:59.999 */

enum arch_table {
    ARCH_ROOMS = 0,
    ARCH_DEVICES,
    ARCH_CONNECTIONS,
    ARCH_MESSAGES,
    ARCH_ROOM_QUERIES,
    ARCH_ROOM_EVENTS,
    ARCH_TABLE_COUNT
};

const char *arch_table_name(enum arch_table t);

/* One stream entry ready to be written: its id and decoded event, both borrowed from the entry. */
struct arch_row {
    const char *id;
    size_t id_len;
    struct rrm_event ev;
};

/* Decodes one entry (n field/value pairs) with event_decode and checks it with arch_row_check.
 * Strings in row borrow from the inputs. Returns 0, or -1 with the reason in err: such an entry can
 * never be written and belongs in the dead-letter stream. */
int arch_row_decode(struct arch_row *row, const char *id, size_t id_len, const char *const *names,
                    const size_t *name_lens, const char *const *values, const size_t *value_lens,
                    size_t n, char *err, size_t errlen);

/* Checks that every value the row's tables store fits its column: valid UTF-8 text within the
 * character limit, keys not empty, timestamps within DATETIME, numbers within their type. */
int arch_row_check(const struct arch_row *row, char *err, size_t errlen);

/* Number of characters of valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF) in s, or -1.
 */
long arch_utf8_chars(const char *s, size_t len);

/* Writes ms since the epoch as YYYY-MM-DD HH:MM:SS.mmm (UTC, NUL-terminated) into out.
 * Returns 0, or -1 if ms is outside 0..ARCH_DATETIME_MAX_MS. */
int arch_format_datetime(int64_t ms, char out[24]);

/* Escapes len bytes of src into dst for use between single quotes; dst has room for 2 * len + 1.
 * Returns the number of bytes written (a trailing NUL is added). */
typedef size_t (*arch_escape_fn)(void *ctx, char *dst, const char *src, size_t len);

/* The escaping mysql_real_escape_string does for utf8mb4 when NO_BACKSLASH_ESCAPES is off:
 * NUL, \n, \r, \, ', " and Ctrl-Z get a backslash. ctx is unused. */
size_t arch_escape_plain(void *ctx, char *dst, const char *src, size_t len);

struct arch_build_opts {
    arch_escape_fn escape;
    void *escape_ctx;
    size_t
        max_stmt; /* no statement longer than this (the server's max_allowed_packet, less room) */
};

struct arch_stmt {
    char *sql; /* NUL-terminated */
    size_t len;
    enum arch_table table;
};

/* The statements of one batch, in execution order, without START TRANSACTION / COMMIT. */
struct arch_sql {
    struct arch_stmt *stmts;
    size_t n, cap;
    size_t rows[ARCH_TABLE_COUNT]; /* rows sent per table */
};

#define ARCH_BUILD_TOO_BIG (-2)

/* Builds the statements for rows[0..n): one multi-row statement per table, split only where a
 * statement would exceed max_stmt. Rows must have passed arch_row_check. Returns 0 and fills out
 * (caller frees with arch_sql_free); ARCH_BUILD_TOO_BIG with *bad = index of a row that alone does
 * not fit in max_stmt; -1 when out of memory. On failure out is empty. */
int arch_sql_build(struct arch_sql *out, const struct arch_row *rows, size_t n,
                   const struct arch_build_opts *o, size_t *bad);

void arch_sql_free(struct arch_sql *s);

#endif
