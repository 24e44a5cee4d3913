/* MySQL connection pool and batch transactions (see writer.h). */
#include "writer.h"

#include "schema.h"
#include "util.h"

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Strict mode makes a value that does not fit an error instead of a silent truncation; the list
 * is valid on MySQL 5.7, 8.0 and MariaDB. Backslash escapes stay on (escaping relies on them). */
#define SESSION_SETUP                                                                              \
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"                      \
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'"

/* Room left in a packet for the protocol header and the statement's tail. */
#define PACKET_SLACK 4096
/* An idle connection is pinged before use, so a MySQL restart costs no failed batch. */
#define PING_AFTER_IDLE_MS 5000

struct pooled {
    MYSQL *m; /* NULL: slot free */
    int in_use;
    size_t max_stmt;
    int64_t last_used_ms;
};

struct arch_writer {
    struct arch_db_config cfg;
    char *host, *user, *password, *database;
    char *ssl_ca, *ssl_cert, *ssl_key; /* NULL: not given */
    const struct logger *lg;
    pthread_mutex_t lock; /* guards the slots' m and in_use, and the health below; connecting
                           * happens outside it */
    struct pooled *slots;
    int prepared;       /* arch_writer_prepare succeeded once */
    int healthy;        /* the last connection, statement or ping got an answer from MySQL */
    char last_err[256]; /* why not, while not healthy */
};

struct arch_writer *arch_writer_create(const struct arch_db_config *cfg, const struct logger *lg) {
    struct arch_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->cfg = *cfg;
    if (w->cfg.pool_size < 1)
        w->cfg.pool_size = 1;
    w->lg = lg;
    w->host = strdup(cfg->host);
    w->user = strdup(cfg->user);
    w->password = strdup(cfg->password ? cfg->password : "");
    w->database = strdup(cfg->database);
    if ((cfg->ssl_ca && cfg->ssl_ca[0] && !(w->ssl_ca = strdup(cfg->ssl_ca))) ||
        (cfg->ssl_cert && cfg->ssl_cert[0] && !(w->ssl_cert = strdup(cfg->ssl_cert))) ||
        (cfg->ssl_key && cfg->ssl_key[0] && !(w->ssl_key = strdup(cfg->ssl_key)))) {
        arch_writer_destroy(w);
        return NULL;
    }
    w->slots = calloc((size_t)w->cfg.pool_size, sizeof(*w->slots));
    snprintf(w->last_err, sizeof(w->last_err), "not connected yet");
    pthread_mutex_init(&w->lock, NULL);
    if (!w->host || !w->user || !w->password || !w->database || !w->slots) {
        arch_writer_destroy(w);
        return NULL;
    }
    return w;
}

void arch_writer_destroy(struct arch_writer *w) {
    if (!w)
        return;
    for (int i = 0; w->slots && i < w->cfg.pool_size; i++)
        if (w->slots[i].m)
            mysql_close(w->slots[i].m);
    free(w->slots);
    free(w->host);
    free(w->user);
    free(w->password);
    free(w->database);
    free(w->ssl_ca);
    free(w->ssl_cert);
    free(w->ssl_key);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

int arch_writer_connections(struct arch_writer *w) {
    int n = 0;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < w->cfg.pool_size; i++)
        n += w->slots[i].m != NULL;
    pthread_mutex_unlock(&w->lock);
    return n;
}

void arch_writer_pool(struct arch_writer *w, int *open, int *in_use) {
    *open = *in_use = 0;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < w->cfg.pool_size; i++) {
        *open += w->slots[i].m != NULL;
        *in_use += w->slots[i].in_use;
    }
    pthread_mutex_unlock(&w->lock);
}

int arch_writer_health(struct arch_writer *w, char *err, size_t errlen) {
    pthread_mutex_lock(&w->lock);
    int ok = w->healthy;
    snprintf(err, errlen, "%s", ok ? "" : w->last_err);
    pthread_mutex_unlock(&w->lock);
    return ok;
}

/* Records whether MySQL answered; err (when it did not) says why. */
static void set_health(struct arch_writer *w, int ok, const char *err) {
    pthread_mutex_lock(&w->lock);
    w->healthy = ok;
    if (!ok)
        snprintf(w->last_err, sizeof(w->last_err), "%s", err);
    pthread_mutex_unlock(&w->lock);
}

int arch_writer_is_data_error(unsigned code) {
    switch (code) {
    case ER_BAD_NULL_ERROR:                  /* 1048 */
    case ER_DUP_ENTRY:                       /* 1062: an event id already used by another row */
    case ER_NET_PACKET_TOO_LARGE:            /* 1153 */
    case 1265:                               /* data truncated */
    case ER_WARN_DATA_OUT_OF_RANGE:          /* 1264 */
    case ER_TRUNCATED_WRONG_VALUE:           /* 1292 */
    case ER_INVALID_CHARACTER_STRING:        /* 1300 */
    case ER_NO_DEFAULT_FOR_FIELD:            /* 1364 */
    case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: /* 1366 */
    case 1367:                               /* illegal value for type */
    case ER_DATA_TOO_LONG:                   /* 1406 */
    case 1411:                               /* incorrect value for function */
    case 1452:                               /* foreign key has no parent */
    case ER_DATA_OUT_OF_RANGE:               /* 1690 */
    case 3819:                               /* MySQL 8: check constraint violated */
    case 4025:                               /* MariaDB: constraint failed */
    case CR_NET_PACKET_TOO_LARGE:            /* 2020 */
        return 1;
    default:
        return 0;
    }
}

/* Client-side errors mean the connection is unusable; a server error leaves it fine. */
static int connection_broken(unsigned code) {
    return code >= CR_MIN_ERROR && code <= CR_MAX_ERROR;
}

static void set_err(struct arch_write_result *res, MYSQL *m, const char *what) {
    res->err_code = mysql_errno(m);
    snprintf(res->err, sizeof(res->err), "%s: %u %s", what, res->err_code, mysql_error(m));
}

static MYSQL *open_connection(struct arch_writer *w, const char *db, unsigned *code, char *err,
                              size_t errlen) {
    *code = 0;
    MYSQL *m = mysql_init(NULL);
    if (!m) {
        snprintf(err, errlen, "mysql_init: out of memory");
        return NULL;
    }
    unsigned int connect_timeout = (unsigned int)w->cfg.connect_timeout_s;
    unsigned int io_timeout = (unsigned int)w->cfg.io_timeout_s;
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
    /* Every connection of the pool comes through here, so all of them use TLS alike. ENFORCE
     * refuses a server without TLS instead of falling back to plain text. */
    if (w->cfg.ssl_mode != ARCH_SSL_OFF) {
        my_bool enforce = 1, verify = w->cfg.ssl_mode == ARCH_SSL_VERIFY;
        if (w->ssl_ca)
            mysql_options(m, MYSQL_OPT_SSL_CA, w->ssl_ca);
        if (w->ssl_cert)
            mysql_options(m, MYSQL_OPT_SSL_CERT, w->ssl_cert);
        if (w->ssl_key)
            mysql_options(m, MYSQL_OPT_SSL_KEY, w->ssl_key);
        mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &enforce);
        mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
    }
    if (!mysql_real_connect(m, w->host, w->user, w->password, db, (unsigned int)w->cfg.port, NULL,
                            0)) {
        *code = mysql_errno(m);
        snprintf(err, errlen, "connecting to MySQL %s:%d: %u %s", w->host, w->cfg.port,
                 mysql_errno(m), mysql_error(m));
        mysql_close(m);
        return NULL;
    }
    return m;
}

/* The database name is validated by the configuration (letters, digits, _ and $), so it can be
 * quoted as an identifier without escaping. */
static int create_database(struct arch_writer *w, char *err, size_t errlen) {
    unsigned code;
    MYSQL *m = open_connection(w, NULL, &code, err, errlen);
    if (!m)
        return -1;
    char sql[160];
    snprintf(sql, sizeof(sql),
             "CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
             w->database);
    int rc = 0;
    if (mysql_query(m, sql)) {
        snprintf(err, errlen, "creating database %s: %u %s", w->database, mysql_errno(m),
                 mysql_error(m));
        rc = -1;
    } else {
        log_json(w->lg, LOG_INFO, "database created", json_pack("{s:s}", "database", w->database));
    }
    mysql_close(m);
    return rc;
}

static MYSQL *connect_session(struct arch_writer *w, size_t *max_stmt, char *err, size_t errlen) {
    unsigned code;
    MYSQL *m = open_connection(w, w->database, &code, err, errlen);
    if (!m && code == ER_BAD_DB_ERROR) {
        /* The seed created its tables by itself; creating the database too keeps that promise. */
        if (create_database(w, err, errlen))
            return NULL;
        m = open_connection(w, w->database, &code, err, errlen);
    }
    if (!m)
        return NULL;
    /* REPEATABLE READ makes the connect_count subquery a locking read (batch.c), so concurrent
     * writers count each other's committed connections; the server default may differ. */
    if (mysql_query(m, SESSION_SETUP) ||
        mysql_query(m, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")) {
        snprintf(err, errlen, "session setup: %u %s", mysql_errno(m), mysql_error(m));
        mysql_close(m);
        return NULL;
    }
    size_t limit = w->cfg.max_stmt_cap;
    if (mysql_query(m, "SELECT @@max_allowed_packet") == 0) {
        MYSQL_RES *res = mysql_store_result(m);
        MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
        if (row && row[0]) {
            unsigned long long packet = strtoull(row[0], NULL, 10);
            if (packet > 2 * PACKET_SLACK && packet - PACKET_SLACK < limit)
                limit = (size_t)(packet - PACKET_SLACK);
        }
        if (res)
            mysql_free_result(res);
    }
    *max_stmt = limit;
    return m;
}

/* Takes an idle connection, or reserves an empty slot and connects it (outside the lock, since
 * connecting can take seconds). */
static struct pooled *pool_acquire(struct arch_writer *w, char *err, size_t errlen) {
    struct pooled *p = NULL;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < w->cfg.pool_size && !p; i++)
        if (!w->slots[i].in_use && w->slots[i].m)
            p = &w->slots[i];
    for (int i = 0; i < w->cfg.pool_size && !p; i++)
        if (!w->slots[i].in_use)
            p = &w->slots[i];
    if (p)
        p->in_use = 1;
    pthread_mutex_unlock(&w->lock);
    if (!p) {
        snprintf(err, errlen, "all %d MySQL connections are in use", w->cfg.pool_size);
        return NULL;
    }
    if (p->m && util_mono_ms() - p->last_used_ms > PING_AFTER_IDLE_MS && mysql_ping(p->m)) {
        mysql_close(p->m);
        pthread_mutex_lock(&w->lock);
        p->m = NULL;
        pthread_mutex_unlock(&w->lock);
    }
    if (!p->m) {
        MYSQL *m = connect_session(w, &p->max_stmt, err, errlen);
        pthread_mutex_lock(&w->lock);
        p->m = m;
        if (!m)
            p->in_use = 0;
        pthread_mutex_unlock(&w->lock);
        set_health(w, m != NULL, err);
        if (!m)
            return NULL;
    }
    return p;
}

/* A connection that saw a client-side error is closed rather than reused. */
static void pool_release(struct arch_writer *w, struct pooled *p, int broken) {
    MYSQL *closing = NULL;
    pthread_mutex_lock(&w->lock);
    p->last_used_ms = util_mono_ms();
    if (broken) {
        closing = p->m;
        p->m = NULL;
    }
    p->in_use = 0;
    pthread_mutex_unlock(&w->lock);
    if (closing)
        mysql_close(closing);
}

int arch_writer_prepare(struct arch_writer *w, char *err, size_t errlen) {
    err[0] = '\0';
    struct pooled *p = pool_acquire(w, err, errlen);
    if (!p)
        return -1;
    int applied = arch_schema_migrate(p->m, w->lg, err, errlen);
    int broken = applied < 0 && connection_broken(mysql_errno(p->m));
    pool_release(w, p, broken);
    if (broken)
        set_health(w, 0, err);
    if (applied < 0)
        return -1;
    pthread_mutex_lock(&w->lock);
    w->prepared = 1;
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int arch_writer_check(struct arch_writer *w) {
    pthread_mutex_lock(&w->lock);
    int prepared = w->prepared;
    pthread_mutex_unlock(&w->lock);
    if (!prepared)
        return 0;
    char err[256];
    struct pooled *p = pool_acquire(w, err, sizeof(err));
    if (!p)
        return -1;
    int failed = mysql_ping(p->m) != 0;
    if (failed) {
        snprintf(err, sizeof(err), "ping: %u %s", mysql_errno(p->m), mysql_error(p->m));
        set_health(w, 0, err);
    } else {
        set_health(w, 1, "");
    }
    pool_release(w, p, failed);
    return failed ? -1 : 0;
}

static size_t escape_mysql(void *ctx, char *dst, const char *src, size_t len) {
    unsigned long n = mysql_real_escape_string(ctx, dst, src, (unsigned long)len);
    if (n == (unsigned long)-1) /* cannot happen with utf8mb4 and backslash escapes on */
        return arch_escape_plain(NULL, dst, src, len);
    return n;
}

int arch_writer_write(struct arch_writer *w, const struct arch_row *rows, size_t n,
                      struct arch_write_result *res) {
    memset(res, 0, sizeof(*res));
    struct pooled *p = pool_acquire(w, res->err, sizeof(res->err));
    if (!p)
        return ARCH_W_RETRY;

    struct arch_build_opts opts = {
        .escape = escape_mysql, .escape_ctx = p->m, .max_stmt = p->max_stmt};
    struct arch_sql sql;
    size_t bad = 0;
    int rc = arch_sql_build(&sql, rows, n, &opts, &bad);
    if (rc == ARCH_BUILD_TOO_BIG) {
        res->bad = bad;
        snprintf(res->err, sizeof(res->err), "row larger than the %zu-byte statement limit",
                 p->max_stmt);
        pool_release(w, p, 0);
        return ARCH_W_TOO_BIG;
    }
    if (rc) {
        snprintf(res->err, sizeof(res->err), "out of memory building SQL");
        pool_release(w, p, 0);
        return ARCH_W_RETRY;
    }

    int status = ARCH_W_OK;
    if (mysql_query(p->m, "START TRANSACTION")) {
        set_err(res, p->m, "START TRANSACTION");
        status = ARCH_W_RETRY;
    }
    for (size_t i = 0; status == ARCH_W_OK && i < sql.n; i++) {
        if (mysql_real_query(p->m, sql.stmts[i].sql, (unsigned long)sql.stmts[i].len)) {
            char what[64];
            snprintf(what, sizeof(what), "writing %s", arch_table_name(sql.stmts[i].table));
            set_err(res, p->m, what);
            status = arch_writer_is_data_error(res->err_code) ? ARCH_W_DATA : ARCH_W_RETRY;
        }
    }
    if (status == ARCH_W_OK && mysql_query(p->m, "COMMIT")) {
        /* If the connection died during COMMIT the outcome is unknown; writing again is safe. */
        set_err(res, p->m, "COMMIT");
        status = ARCH_W_RETRY;
    }
    int broken = res->err_code && connection_broken(res->err_code);
    if (status != ARCH_W_OK && !broken && mysql_query(p->m, "ROLLBACK"))
        broken = 1;
    if (status == ARCH_W_OK)
        memcpy(res->rows, sql.rows, sizeof(res->rows));
    pool_release(w, p, broken);
    /* A server error (a deadlock, a rejected value) is an answer: MySQL is there. */
    set_health(w, !broken, res->err);
    arch_sql_free(&sql);
    return status;
}
