/* Applies the embedded migrations (see schema.h). */
#include "schema.h"

#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOCK_NAME "rrm_schema_migrations"
#define LOCK_WAIT_S 60
#define STR_(x) #x
#define STR(x) STR_(x)

static const char bootstrap_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                    " version INT UNSIGNED NOT NULL,"
                                    " name VARCHAR(255) NOT NULL,"
                                    " applied_at DATETIME(3) NOT NULL,"
                                    " PRIMARY KEY (version)"
                                    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

int arch_schema_latest(void) {
    return arch_migration_count ? arch_migrations[arch_migration_count - 1].version : 0;
}

static int fail(MYSQL *m, const char *what, char *err, size_t errlen) {
    snprintf(err, errlen, "%s: %u %s", what, mysql_errno(m), mysql_error(m));
    return -1;
}

/* Runs a statement that returns at most one row with one integer column; *out gets it (-1 for
 * NULL or no row). */
static int query_int(MYSQL *m, const char *sql, long *out, char *err, size_t errlen) {
    if (mysql_query(m, sql))
        return fail(m, sql, err, errlen);
    MYSQL_RES *res = mysql_store_result(m);
    if (!res)
        return fail(m, sql, err, errlen);
    MYSQL_ROW row = mysql_fetch_row(res);
    *out = (row && row[0]) ? strtol(row[0], NULL, 10) : -1;
    mysql_free_result(res);
    return 0;
}

/* Executes a whole migration file. Multi-statement mode is switched on only for this, so no other
 * query on the connection can ever carry a second statement. */
static int run_script(MYSQL *m, const struct arch_migration *mig, char *err, size_t errlen) {
    char what[128];
    snprintf(what, sizeof(what), "migration %03d_%s", mig->version, mig->name);
    if (mysql_set_server_option(m, MYSQL_OPTION_MULTI_STATEMENTS_ON))
        return fail(m, "enabling multi-statements", err, errlen);
    int rc = 0;
    if (mysql_real_query(m, mig->sql, (unsigned long)strlen(mig->sql))) {
        rc = fail(m, what, err, errlen);
    } else {
        for (;;) {
            MYSQL_RES *res = mysql_store_result(m);
            if (res)
                mysql_free_result(res);
            else if (mysql_field_count(m) != 0) {
                rc = fail(m, what, err, errlen);
                break;
            }
            int next = mysql_next_result(m);
            if (next == -1)
                break;
            if (next > 0) {
                /* A comment after the last statement is an empty query, not an error. */
                if (mysql_errno(m) != ER_EMPTY_QUERY)
                    rc = fail(m, what, err, errlen);
                break;
            }
        }
    }
    if (mysql_set_server_option(m, MYSQL_OPTION_MULTI_STATEMENTS_OFF) && rc == 0)
        rc = fail(m, "disabling multi-statements", err, errlen);
    return rc;
}

static int record(MYSQL *m, const struct arch_migration *mig, char *err, size_t errlen) {
    char name[2 * 255 + 1];
    size_t len = strlen(mig->name);
    if (len > 255)
        len = 255;
    mysql_real_escape_string(m, name, mig->name, (unsigned long)len);
    char sql[700];
    snprintf(sql, sizeof(sql),
             "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%d, '%s', "
             "UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE version = version",
             mig->version, name);
    if (mysql_query(m, sql))
        return fail(m, "recording migration", err, errlen);
    return 0;
}

static int applied(MYSQL *m, int version, int *yes, char *err, size_t errlen) {
    char sql[96];
    long n = 0;
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM schema_migrations WHERE version = %d",
             version);
    if (query_int(m, sql, &n, err, errlen))
        return -1;
    *yes = n > 0;
    return 0;
}

int arch_schema_migrate(MYSQL *m, const struct logger *lg, char *err, size_t errlen) {
    long got = 0;
    if (query_int(m, "SELECT GET_LOCK('" LOCK_NAME "', " STR(LOCK_WAIT_S) ")", &got, err, errlen))
        return -1;
    if (got != 1) {
        snprintf(err, errlen, "another archiver held the schema lock for %d s", LOCK_WAIT_S);
        return -1;
    }

    int count = 0, rc = 0;
    if (mysql_query(m, bootstrap_sql))
        rc = fail(m, "creating schema_migrations", err, errlen);
    for (size_t i = 0; rc == 0 && i < arch_migration_count; i++) {
        const struct arch_migration *mig = &arch_migrations[i];
        int done = 0;
        if (applied(m, mig->version, &done, err, errlen)) {
            rc = -1;
            break;
        }
        if (done)
            continue;
        if (run_script(m, mig, err, errlen) || record(m, mig, err, errlen)) {
            rc = -1;
            break;
        }
        count++;
        log_json(lg, LOG_INFO, "schema migration applied",
                 json_pack("{s:i, s:s}", "version", mig->version, "name", mig->name));
    }

    long newest = 0;
    if (rc == 0 &&
        query_int(m, "SELECT MAX(version) FROM schema_migrations", &newest, err, errlen) == 0 &&
        newest > arch_schema_latest())
        log_json(
            lg, LOG_WARN, "database schema is newer than this archiver",
            json_pack("{s:i, s:i}", "database", (int)newest, "archiver", arch_schema_latest()));

    long released = 0;
    char ignored[64];
    query_int(m, "SELECT RELEASE_LOCK('" LOCK_NAME "')", &released, ignored, sizeof(ignored));
    return rc ? -1 : count;
}
