/* TLS from rrm-archiver to MySQL (RRM_MYSQL_SSL_*): mariadbd offers TLS with a certificate made by
 * the openssl CLI in the test, and the archiver logs in as a user created with REQUIRE SSL, so a
 * plain connection is refused by the server. With the right CA the archiver verifies the server
 * and archives events end to end; with another CA it refuses the server (logged with the reason),
 * creates nothing and archives nothing; invalid TLS settings stop it at start. */
#include "archiver_harness.h"

#include "keys.h"
#include "mariadb_server.h"
#include "proc.h"
#include "tls_certs.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define MESSAGES "SELECT COUNT(*) FROM messages"
#define TLS_USER "rrm_tls"
#define TLS_PASSWORD "tls-only"

static struct tls_certs *ca, *wrong_ca;
static char env_ca[TLS_CERTS_PATH_MAX + 32], env_wrong_ca[TLS_CERTS_PATH_MAX + 32];

static int group_setup(void **state) {
    struct tls_cert_files server;
    ca = tls_certs_create("rrm test MySQL CA");
    wrong_ca = tls_certs_create("another CA");
    if (!ca || !wrong_ca || tls_certs_issue(ca, "mysql", 0x51, 10, NULL, &server) < 0)
        return -1;
    snprintf(env_ca, sizeof(env_ca), "RRM_MYSQL_SSL_CA=%s", tls_certs_ca(ca));
    snprintf(env_wrong_ca, sizeof(env_wrong_ca), "RRM_MYSQL_SSL_CA=%s", tls_certs_ca(wrong_ca));
    struct mariadb_server_options o = {
        .ssl_ca = tls_certs_ca(ca), .ssl_cert = server.cert, .ssl_key = server.key};
    if (ah_setup_opts(state, &o))
        return -1;
    struct arch_harness *h = *state;
    return mariadb_server_exec(ah_db(h),
                               "CREATE USER '" TLS_USER "'@'%' IDENTIFIED BY '" TLS_PASSWORD
                               "' REQUIRE SSL; GRANT ALL PRIVILEGES ON *.* TO '" TLS_USER "'@'%'");
}

static int group_teardown(void **state) {
    int rc = ah_teardown(state);
    tls_certs_destroy(ca);
    tls_certs_destroy(wrong_ca);
    return rc;
}

static void assert_exit_status(struct arch_harness *h, int status, int code) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != code) {
        ah_dump_logs(h);
        fail_msg("archiver ended with status 0x%x, expected exit %d", status, code);
    }
}

/* Whether database name exists, asked as the plain test login. */
static long long database_exists(struct arch_harness *h, const char *name) {
    MYSQL *m = mariadb_server_client(ah_db(h), NULL);
    assert_non_null(m);
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '%s'", name);
    assert_int_equal(mysql_query(m, sql), 0);
    MYSQL_RES *res = mysql_store_result(m);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    long long n = row && row[0] ? atoll(row[0]) : -1;
    mysql_free_result(res);
    mysql_close(m);
    return n;
}

static void test_archives_over_verified_tls(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_tls_ok");
    const char *tls[] = {"RRM_MYSQL_USER=" TLS_USER, "RRM_MYSQL_PASSWORD=" TLS_PASSWORD, env_ca,
                         NULL};
    struct ah_archiver a;
    ah_start(h, &a, "tls-1", tls);
    int queries = ah_xadd_messages(h, 1, 300, 5, 1);
    ah_wait_int(h, 300 - queries, AH_WAIT_MS, MESSAGES);
    ah_wait_drained(h, AH_WAIT_MS);
    assert_int_equal(ah_log_count(&a, "MySQL not ready"), 0);
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
}

static void test_wrong_ca_refused(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_tls_wrong");
    const char *tls[] = {"RRM_MYSQL_USER=" TLS_USER, "RRM_MYSQL_PASSWORD=" TLS_PASSWORD,
                         env_wrong_ca, NULL};
    struct ah_archiver a;
    ah_start(h, &a, "tls-wrong", tls);
    ah_xadd_messages(h, 1, 50, 2, 0);
    /* It keeps retrying, and says why: the server's certificate is not trusted. */
    ah_wait_log(h, &a, "MySQL not ready", 3, AH_WAIT_MS);
    char *log = ah_read_file(a.log);
    assert_non_null(log);
    int says_tls = strstr(log, "TLS/SSL error") != NULL || strstr(log, "certificate") != NULL;
    if (!says_tls)
        ah_dump_logs(h);
    assert_true(says_tls);
    free(log);
    /* Nothing reached MySQL: no database, and every entry is still waiting in the stream. */
    assert_int_equal(database_exists(h, "arch_tls_wrong"), 0);
    long long pending = 0, lag = 0, read = 0;
    ah_group_state(h, &pending, &lag, &read);
    assert_true(pending + (lag > 0 ? lag : 0) >= 1);
    assert_exit_status(h, ah_stop(&a, SIGTERM), 0);
}

/* Starts the archiver with extra settings that must stop it at start: exit 2 and a line
 * naming `names`. */
static void expect_start_error(struct arch_harness *h, const char *const extra[],
                               const char *names) {
    struct ah_archiver a;
    ah_start(h, &a, "tls-bad-config", extra);
    int st = 0;
    int r = proc_wait_exit(a.pid, 10000, &st);
    if (r == -ETIMEDOUT) {
        ah_stop(&a, SIGKILL);
        ah_dump_logs(h);
        fail_msg("the archiver started with %s", extra[0]);
    }
    a.pid = 0;
    assert_exit_status(h, st, 2);
    assert_true(ah_log_count(&a, names) >= 1);
}

static void test_bad_tls_settings(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_tls_config");
    const char *verify_without_ca[] = {"RRM_MYSQL_SSL_MODE=verify", NULL};
    expect_start_error(h, verify_without_ca, "RRM_MYSQL_SSL_CA");
    const char *unreadable[] = {"RRM_MYSQL_SSL_CA=/nonexistent/ca.crt", NULL};
    expect_start_error(h, unreadable, "RRM_MYSQL_SSL_CA");
    const char *off_with_ca[] = {"RRM_MYSQL_SSL_MODE=off", env_ca, NULL};
    expect_start_error(h, off_with_ca, "RRM_MYSQL_SSL_MODE");
    const char *unknown_mode[] = {"RRM_MYSQL_SSL_MODE=maybe", NULL};
    expect_start_error(h, unknown_mode, "RRM_MYSQL_SSL_MODE");
    const char *cert_without_key[] = {env_ca, "RRM_MYSQL_SSL_CERT=/dev/null", NULL};
    expect_start_error(h, cert_without_key, "RRM_MYSQL_SSL_KEY");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_archives_over_verified_tls),
        cmocka_unit_test(test_wrong_ca_refused),
        cmocka_unit_test(test_bad_tls_settings),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
