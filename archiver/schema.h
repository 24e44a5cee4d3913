/* Schema migrations: the numbered files of sql/migrations, embedded into the binary at build time
 * (the generated migrations_gen.c), applied in order at start and recorded in schema_migrations. */
#ifndef ARCH_SCHEMA_H
#define ARCH_SCHEMA_H

#include "log.h"

#include <mysql.h>
#include <stddef.h>

struct arch_migration {
    int version;      /* NNN of NNN_name.sql */
    const char *name; /* name of NNN_name.sql */
    const char *sql;  /* the file's statements, separated by ';' */
};

/* Defined by the generated migrations_gen.c, sorted by version. */
extern const struct arch_migration arch_migrations[];
extern const size_t arch_migration_count;

/* Applies every embedded migration not yet recorded in schema_migrations, one archiver at a time
 * (a named lock serialises archivers that start together). m is borrowed. Returns the number
 * applied (>= 0), or -1 with the reason in err. Migrations are written to be re-runnable, because
 * MySQL commits DDL statement by statement and a crash may stop one half-way. */
int arch_schema_migrate(MYSQL *m, const struct logger *lg, char *err, size_t errlen);

/* The newest version an embedded migration has (what a fully migrated database reports). */
int arch_schema_latest(void);

#endif
