/* The migrations compiled into the archiver: ordered, unique, re-runnable, and creating the seed's
 * five tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "schema.h"

#include <string.h>

static void test_migrations_are_ordered(void **state) {
    (void)state;
    assert_true(arch_migration_count >= 1);
    assert_int_equal(arch_migrations[0].version, 1);
    assert_string_equal(arch_migrations[0].name, "init");
    for (size_t i = 1; i < arch_migration_count; i++)
        assert_true(arch_migrations[i].version > arch_migrations[i - 1].version);
    assert_int_equal(arch_schema_latest(), arch_migrations[arch_migration_count - 1].version);
}

static void test_first_migration_creates_seed_tables(void **state) {
    (void)state;
    const char *sql = arch_migrations[0].sql;
    const char *tables[] = {"rooms",    "devices",      "connections",
                            "messages", "room_queries", "room_events"};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        char create[96];
        snprintf(create, sizeof(create), "CREATE TABLE IF NOT EXISTS %s (", tables[i]);
        if (!strstr(sql, create))
            fail_msg("001_init does not create %s re-runnably", tables[i]);
    }
    /* Everything is utf8mb4 and InnoDB. */
    assert_null(strstr(sql, "CHARSET=utf8 "));
    assert_null(strstr(sql, "MyISAM"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations_are_ordered),
        cmocka_unit_test(test_first_migration_creates_seed_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
