/* Unit tests for the frontend's option table and cross-option checks in frontend/options.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "options.h"

#include <stdlib.h>
#include <string.h>

/* Unsets every variable of the table so that only defaults (and flags) apply. */
static int clear_env(void **state) {
    (void)state;
    for (size_t i = 0; i < fe_option_count; i++) {
        char env[64];
        cfg_env_name(fe_option_table[i].name, env, sizeof(env));
        unsetenv(env);
    }
    return 0;
}

static int load(struct fe_options *o, int argc, char **argv, char *err, size_t errlen) {
    memset(o, 0x5a, sizeof(*o));
    err[0] = '\0';
    return cfg_load(fe_option_table, fe_option_count, o, argc, argv, err, errlen);
}

static void load_defaults(struct fe_options *o) {
    char *argv[] = {(char *)"rrm-frontend", NULL};
    char err[256];
    int rc = load(o, 1, argv, err, sizeof(err));
    if (rc != 0)
        fail_msg("defaults do not load: %s", err);
}

static void test_defaults(void **state) {
    (void)state;
    struct fe_options o;
    load_defaults(&o);
    assert_int_equal(o.port, 8765);
    assert_string_equal(o.bind, "");
    assert_string_equal(o.node_id, "");
    assert_string_equal(o.redis_host, "127.0.0.1");
    assert_int_equal(o.redis_port, 6379);
    assert_string_equal(o.redis_password, "");
    assert_int_equal(o.max_frame_bytes, 65536);
    assert_int_equal(o.max_msgs_per_sec, 100);
    assert_int_equal(o.identify_timeout_ms, 10000);
    assert_int_equal(o.max_connections, 20000);
    assert_int_equal(o.send_queue_bytes, 1048576);
    assert_int_equal(o.room_grace_ms, 300000);
    assert_int_equal(o.device_ttl_ms, 86400000);
    assert_int_equal(o.heartbeat_ms, 2000);
    assert_int_equal(o.node_timeout_ms, 10000);
    assert_int_equal(o.status_interval_ms, 60000);
    assert_int_equal(o.stream_maxlen, 9000);
    assert_int_equal(o.stream_max_bytes, 768L * 1024 * 1024);
    assert_int_equal(o.event_shards, 16);
    assert_int_equal(o.max_bytes_per_sec, 1048576);
    assert_int_equal(o.query_max_clients, 100);
    assert_int_equal(o.drain_timeout_ms, 10000);
    assert_string_equal(o.log_level, "info");
    assert_string_equal(o.trusted_proxies, "");
    assert_int_equal(o.max_connections_per_ip, 1000);
    assert_int_equal(o.handshakes_per_ip_per_sec, 50);
    assert_int_equal(o.handshakes_per_ip_burst, 500);

    char err[256];
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
}

static void test_table_is_consistent(void **state) {
    (void)state;
    /* Every option: a unique name, help text, a field inside the struct, a sane range, and a
     * default that its own range accepts (checked by loading above). */
    for (size_t i = 0; i < fe_option_count; i++) {
        const struct cfg_option *a = &fe_option_table[i];
        assert_non_null(a->name);
        assert_non_null(a->help);
        assert_true(a->min <= a->max);
        assert_true(a->offset < sizeof(struct fe_options));
        if (a->type == CFG_STR)
            assert_true(a->offset + (size_t)a->max <= sizeof(struct fe_options));
        else
            assert_true(a->offset + sizeof(long) <= sizeof(struct fe_options));
        for (size_t k = i + 1; k < fe_option_count; k++)
            assert_string_not_equal(a->name, fe_option_table[k].name);
    }
}

static void test_env_and_flags_apply(void **state) {
    (void)state;
    setenv("RRM_PORT", "9000", 1);
    setenv("RRM_REDIS_HOST", "redis.svc", 1);
    char *argv[] = {(char *)"rrm-frontend", (char *)"--port=9001", (char *)"--node-id",
                    (char *)"node-a", NULL};
    struct fe_options o;
    char err[256];
    assert_int_equal(load(&o, 4, argv, err, sizeof(err)), 0);
    assert_int_equal(o.port, 9001);
    assert_string_equal(o.redis_host, "redis.svc");
    assert_string_equal(o.node_id, "node-a");
    assert_int_equal(o.redis_port, 6379);
}

static void test_range_errors_name_the_option(void **state) {
    (void)state;
    char *argv[] = {(char *)"rrm-frontend", (char *)"--heartbeat-ms=50", NULL};
    struct fe_options o;
    char err[256];
    assert_int_equal(load(&o, 2, argv, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "RRM_HEARTBEAT_MS"));
    assert_non_null(strstr(err, "--heartbeat-ms"));
}

static void test_check_log_level(void **state) {
    (void)state;
    struct fe_options o;
    load_defaults(&o);
    char err[256];
    const char *good[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        strcpy(o.log_level, good[i]);
        assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
    }
    const char *bad[] = {"verbose", "INFO", "warning", "", "info "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strcpy(o.log_level, bad[i]);
        err[0] = '\0';
        assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "RRM_LOG_LEVEL"));
        assert_non_null(strstr(err, "--log-level"));
    }
}

static void test_check_node_id(void **state) {
    (void)state;
    struct fe_options o;
    load_defaults(&o);
    char err[256];
    const char *good[] = {"", "node-a", "rrm-frontend-7d9f8c6b5-x2x4z", "host.example:8765@1"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        strcpy(o.node_id, good[i]);
        assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
    }
    /* Node ids end up in key hash tags and connection ids ("<node>#<n>"). */
    const char *bad[] = {"node a", "node#1", "{node}", "node/1",
                         "n\xc3\xb6"
                         "de"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strcpy(o.node_id, bad[i]);
        err[0] = '\0';
        assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "RRM_NODE_ID"));
        assert_non_null(strstr(err, "--node-id"));
    }
    /* The longest id the buffer holds is fine. */
    memset(o.node_id, 'n', sizeof(o.node_id) - 1);
    o.node_id[sizeof(o.node_id) - 1] = '\0';
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
}

static void test_check_node_timeout(void **state) {
    (void)state;
    struct fe_options o;
    load_defaults(&o);
    char err[256];
    o.heartbeat_ms = 2000;
    o.node_timeout_ms = 4000; /* exactly twice is enough */
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
    o.node_timeout_ms = 3999;
    err[0] = '\0';
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "RRM_NODE_TIMEOUT_MS"));
    assert_non_null(strstr(err, "--node-timeout-ms"));
    assert_non_null(strstr(err, "RRM_HEARTBEAT_MS"));

    /* The same through the environment, as an operator would hit it. */
    setenv("RRM_HEARTBEAT_MS", "5000", 1);
    setenv("RRM_NODE_TIMEOUT_MS", "9000", 1);
    char *argv[] = {(char *)"rrm-frontend", NULL};
    assert_int_equal(load(&o, 1, argv, err, sizeof(err)), 0);
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "RRM_NODE_TIMEOUT_MS"));
}

static void test_check_trusted_proxies(void **state) {
    (void)state;
    struct fe_options o;
    load_defaults(&o);
    char err[512];
    strcpy(o.trusted_proxies, "10.0.0.0/8, 127.0.0.2, fd00::/8");
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
    strcpy(o.trusted_proxies, "10.0.0.0/8, nginx.local");
    err[0] = '\0';
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "RRM_TRUSTED_PROXIES"));
    assert_non_null(strstr(err, "--trusted-proxies"));
    assert_non_null(strstr(err, "nginx.local"));
    strcpy(o.trusted_proxies, "10.0.0.0/33");
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
}

static void test_check_byte_rate(void **state) {
    (void)state;
    struct fe_options o;
    load_defaults(&o);
    char err[512];
    /* The largest message must fit the byte bucket, or it could never be sent. */
    o.max_frame_bytes = 65536;
    o.max_bytes_per_sec = 65536;
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
    o.max_bytes_per_sec = 65535;
    err[0] = '\0';
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "RRM_MAX_BYTES_PER_SEC"));
    assert_non_null(strstr(err, "--max-bytes-per-sec"));
    assert_non_null(strstr(err, "RRM_MAX_FRAME_BYTES"));
}

static void test_check_stream_bytes(void **state) {
    (void)state;
    struct fe_options o;
    load_defaults(&o);
    char err[512];
    /* The defaults hold: 16 shards of ceil(9000 / 16) = 563 entries of 64 KiB + 16 KiB + 1 KiB,
     * each with one stream node of slack (4 KiB and one entry), fit 768 MiB. */
    assert_int_equal(fe_stream_shard_maxlen(&o), 563);
    assert_true(fe_stream_bound_bytes(&o) <= o.stream_max_bytes);
    assert_int_equal(fe_stream_bound_bytes(&o),
                     16LL * (563 * (65536 + 16384 + 1024) + 4096 + (65536 + 16384 + 1024)));
    /* One shard: the whole cap in one stream, one node of slack. */
    o.event_shards = 1;
    assert_int_equal(fe_stream_shard_maxlen(&o), 9000);
    assert_int_equal(fe_stream_bound_bytes(&o),
                     9000LL * (65536 + 16384 + 1024) + 4096 + (65536 + 16384 + 1024));
    /* Shards that do not divide the cap round each shard's cap up. */
    o.event_shards = 7;
    assert_int_equal(fe_stream_shard_maxlen(&o), 1286);
    o.event_shards = 16;

    /* Exactly at the budget is fine, one byte less is not. */
    o.stream_maxlen = 1000;
    o.max_frame_bytes = 4096;
    o.stream_max_bytes = 16 * (63 * (4096 + 1024 + 1024) + 4096 + (4096 + 1024 + 1024));
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
    o.stream_max_bytes--;
    err[0] = '\0';
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "RRM_STREAM_MAXLEN"));
    assert_non_null(strstr(err, "--stream-maxlen"));
    assert_non_null(strstr(err, "RRM_STREAM_MAX_BYTES"));
    assert_non_null(strstr(err, "RRM_MAX_FRAME_BYTES"));
    assert_non_null(strstr(err, "RRM_EVENT_SHARDS"));

    /* The old default of a million entries only fits with small messages or more memory; the
     * check sees the combination, as an operator would set it through the environment. */
    setenv("RRM_STREAM_MAXLEN", "1000000", 1);
    char *argv[] = {(char *)"rrm-frontend", NULL};
    assert_int_equal(load(&o, 1, argv, err, sizeof(err)), 0);
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
    setenv("RRM_MAX_FRAME_BYTES", "512", 1);
    assert_int_equal(load(&o, 1, argv, err, sizeof(err)), 0);
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1); /* 1.66 GB > 768 MiB */
    setenv("RRM_STREAM_MAX_BYTES", "2000000000", 1);
    assert_int_equal(load(&o, 1, argv, err, sizeof(err)), 0);
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
}

static void test_check_admin_port_and_origins(void **state) {
    (void)state;
    struct fe_options o;
    load_defaults(&o);
    assert_int_equal(o.admin_port, 9765);
    assert_string_equal(o.admin_bind, "");
    assert_string_equal(o.allowed_origins, "*");
    char err[256];
    o.admin_port = o.port; /* one listener cannot be both */
    err[0] = '\0';
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "RRM_ADMIN_PORT"));
    o.admin_port = 0; /* none */
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
    strcpy(o.allowed_origins, "https://app.example.com, http://localhost:8080");
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
    strcpy(o.allowed_origins, "https://app.example.com/chat");
    err[0] = '\0';
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "RRM_ALLOWED_ORIGINS"));
}

static void test_check_tls_pair(void **state) {
    (void)state;
    struct fe_options o;
    load_defaults(&o);
    char err[512];
    /* TLS is off by default; on with both files; a half-configured pair is refused. */
    assert_string_equal(o.tls_cert, "");
    assert_string_equal(o.tls_key, "");
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
    strcpy(o.tls_cert, "/etc/rrm/tls.crt");
    strcpy(o.tls_key, "/etc/rrm/tls.key");
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), 0);
    o.tls_key[0] = '\0';
    err[0] = '\0';
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "RRM_TLS_CERT (--tls-cert) without RRM_TLS_KEY"));
    o.tls_cert[0] = '\0';
    strcpy(o.tls_key, "/etc/rrm/tls.key");
    err[0] = '\0';
    assert_int_equal(fe_options_check(&o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "RRM_TLS_KEY (--tls-key) without RRM_TLS_CERT"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_table_is_consistent, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_env_and_flags_apply, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_range_errors_name_the_option, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_check_log_level, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_check_node_id, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_check_admin_port_and_origins, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_check_node_timeout, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_check_byte_rate, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_check_trusted_proxies, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_check_stream_bytes, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_check_tls_pair, clear_env, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
