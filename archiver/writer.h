/* MySQL side of the archiver: a small pool of connections (set up for utf8mb4, UTC and strict SQL
 * mode), database creation and migrations at start, and writing one batch of rows in one
 * transaction, over TLS when configured. The writer owns the pool and every connection in it;
 * arch_writer_write may be called from several threads at once, each call using its own connection.
 * It also keeps what the pool last saw of MySQL (arch_writer_health), for /healthz. */
#ifndef ARCH_WRITER_H
#define ARCH_WRITER_H

#include "batch.h"
#include "log.h"

#include <stddef.h>

/* TLS to MySQL. */
enum arch_ssl_mode {
    ARCH_SSL_OFF = 0,  /* plain connections */
    ARCH_SSL_REQUIRED, /* TLS or no connection; the server's certificate is not checked */
    ARCH_SSL_VERIFY,   /* TLS, the server's certificate checked against ssl_ca and the host name */
};

struct arch_db_config {
    const char *host, *user, *password, *database; /* copied by arch_writer_create */
    enum arch_ssl_mode ssl_mode;
    /* PEM files (copied by arch_writer_create; NULL or "" for none): the CA that signed the
     * server's certificate, and this client's certificate and key, if the server asks for one */
    const char *ssl_ca, *ssl_cert, *ssl_key;
    int port;
    int pool_size; /* connections at most */
    int connect_timeout_s;
    int io_timeout_s;    /* longest wait for one statement's answer */
    size_t max_stmt_cap; /* statements are also kept below the server's max_allowed_packet */
};

enum arch_write_status {
    ARCH_W_OK = 0,
    ARCH_W_RETRY = -1,   /* MySQL unreachable, restarting, deadlock...: try the same rows later */
    ARCH_W_DATA = -2,    /* MySQL rejected a value: one of the rows can never be written */
    ARCH_W_TOO_BIG = -3, /* row `bad` alone exceeds the statement size limit */
};

struct arch_write_result {
    size_t rows[ARCH_TABLE_COUNT]; /* rows sent per table, on success */
    unsigned err_code;             /* MySQL error number, 0 if none */
    char err[256];                 /* why it failed */
    size_t bad;                    /* ARCH_W_TOO_BIG: the row's index */
};

struct arch_writer;

/* Returns NULL when out of memory. No connection is made yet. */
struct arch_writer *arch_writer_create(const struct arch_db_config *cfg, const struct logger *lg);
void arch_writer_destroy(struct arch_writer *w);

/* Connects, creates the database if it is missing (when the user may), and applies pending
 * migrations. Returns 0, or -1 with the reason in err (try again later). */
int arch_writer_prepare(struct arch_writer *w, char *err, size_t errlen);

/* Writes rows[0..n) in one transaction (START TRANSACTION, one multi-row statement per table,
 * COMMIT) on a pooled connection. Returns an arch_write_status; res is filled in every case. */
int arch_writer_write(struct arch_writer *w, const struct arch_row *rows, size_t n,
                      struct arch_write_result *res);

/* Connections currently open. */
int arch_writer_connections(struct arch_writer *w);

/* Connections of the pool open, and of those, taken by a caller at the moment. */
void arch_writer_pool(struct arch_writer *w, int *open, int *in_use);

/* 1 if MySQL answered the last connection attempt, statement or check of any caller; else 0 with
 * the reason in err (also before the first connection: "not connected yet"). */
int arch_writer_health(struct arch_writer *w, char *err, size_t errlen);

/* Once arch_writer_prepare has succeeded: pings MySQL on a pooled connection (connecting one if
 * none is open) so that arch_writer_health notices an outage while nothing is written. Blocks
 * up to the connect or I/O timeout; does nothing (returns 0) before the first prepare. Returns 0,
 * or -1 when MySQL did not answer or every connection was in use. */
int arch_writer_check(struct arch_writer *w);

/* 1 if MySQL error `code` means the statement's data is unacceptable (too long, wrong value, bad
 * character...) so retrying the same row cannot help; 0 for everything else. */
int arch_writer_is_data_error(unsigned code);

#endif
