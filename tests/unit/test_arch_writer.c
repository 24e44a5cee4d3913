/* Which MySQL errors mean "this row can never be written" (dead letter) and which mean "try again
 * later" (outage, restart, deadlock): a wrong answer either loses events or blocks the pipeline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "writer.h"

#include <errmsg.h>
#include <mysqld_error.h>

static void test_data_errors(void **state) {
    (void)state;
    unsigned data[] = {ER_DATA_TOO_LONG,
                       ER_TRUNCATED_WRONG_VALUE_FOR_FIELD,
                       ER_TRUNCATED_WRONG_VALUE,
                       ER_WARN_DATA_OUT_OF_RANGE,
                       ER_BAD_NULL_ERROR,
                       ER_INVALID_CHARACTER_STRING,
                       ER_DUP_ENTRY,
                       ER_DATA_OUT_OF_RANGE};
    for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++)
        assert_true(arch_writer_is_data_error(data[i]));
}

static void test_transient_errors(void **state) {
    (void)state;
    unsigned transient[] = {CR_SERVER_GONE_ERROR,
                            CR_SERVER_LOST,
                            CR_CONNECTION_ERROR,
                            CR_CONN_HOST_ERROR,
                            ER_LOCK_DEADLOCK,
                            ER_LOCK_WAIT_TIMEOUT,
                            ER_SERVER_SHUTDOWN,
                            ER_CON_COUNT_ERROR,
                            ER_QUERY_INTERRUPTED,
                            ER_READ_ONLY_MODE,
                            ER_OPTION_PREVENTS_STATEMENT,
                            ER_BAD_DB_ERROR,
                            1146 /* table missing */,
                            1054 /* unknown column */,
                            0};
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        assert_false(arch_writer_is_data_error(transient[i]));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_errors),
        cmocka_unit_test(test_transient_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
