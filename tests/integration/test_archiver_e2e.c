/* Full chain: WebSocket clients talk through a real rrm-frontend, which appends the archive events,
 * and rrm-archiver stores them. Checks that everything the frontend emits decodes (no dead
 * letters) and lands in the seed's tables with the bytes the clients sent, and that client_ip is
 * the real client behind the trusted proxy 127.0.0.2 (RRM_TRUSTED_PROXIES). */
#include "archiver_harness.h"

#include "keys.h"
#include "mariadb_server.h"
#include "proc.h"
#include "redis_server.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wsclient.h"

static pid_t frontend_pid;
static int frontend_port;

static int e2e_setup(void **state) {
    if (ah_setup(state))
        return -1;
    struct arch_harness *h = *state;
    const char *bin = getenv("RRM_FRONTEND_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        fprintf(stderr, "RRM_FRONTEND_BIN not available; the chain test is skipped\n");
        return 0;
    }
    frontend_port = proc_free_port();
    char port[40], redis_port[40], log[600];
    snprintf(port, sizeof(port), "RRM_PORT=%d", frontend_port);
    snprintf(redis_port, sizeof(redis_port), "RRM_REDIS_PORT=%d",
             redis_server_port(ah_redis_server(h)));
    snprintf(log, sizeof(log), "%s/frontend.log", ah_dir(h));
    const char *env[] = {port,
                         "RRM_BIND=127.0.0.1",
                         "RRM_ADMIN_PORT=0", /* only /readyz is read, on RRM_PORT */
                         "RRM_REDIS_HOST=127.0.0.1",
                         redis_port,
                         "RRM_NODE_ID=fe-e2e",
                         "RRM_ROOM_GRACE_MS=0",
                         "RRM_HEARTBEAT_MS=200",
                         "RRM_TRUSTED_PROXIES=127.0.0.2",
                         NULL};
    const char *argv[] = {bin, NULL};
    frontend_pid = proc_spawn(argv, env, log);
    if (frontend_pid <= 0)
        return -1;
    int64_t deadline = proc_now_ms() + AH_WAIT_MS;
    while (proc_remaining_ms(deadline) > 0) {
        int status = 0;
        if (proc_http_get(frontend_port, "/readyz", 1000, &status, NULL) == 0 && status == 200)
            return 0;
        ah_sleep_ms(20);
    }
    proc_dump_file_tail(log, 4000);
    return -1;
}

static int e2e_teardown(void **state) {
    if (frontend_pid > 0)
        proc_stop(frontend_pid, SIGTERM, 15000, NULL);
    return ah_teardown(state);
}

/* Connects from src (NULL: any) with the extra header lines and identifies. */
static struct wsc *join_from(const char *src, const char *const headers[], const char *identify) {
    struct wsc *ws = wsc_connect_from(src, "127.0.0.1", frontend_port, "/", headers, 5000);
    assert_non_null(ws);
    assert_int_equal(wsc_send_text(ws, identify), 0);
    json_t *room = wsc_recv_type(ws, "room", 5000);
    assert_non_null(room);
    json_decref(room);
    return ws;
}

static struct wsc *join(const char *identify) {
    return join_from(NULL, NULL, identify);
}

static void test_frontend_events_are_archived(void **state) {
    struct arch_harness *h = *state;
    if (frontend_pid <= 0)
        skip();
    ah_fresh(h, "arch_e2e");
    struct ah_archiver a;
    ah_start(h, &a, "e2e-1", NULL);

    struct wsc *alice = join("{\"device_id\":\"alice\",\"identity\":\"Alice \xf0\x9f\x93\xb1\","
                             "\"room_id\":\"E2E1\"}");
    struct wsc *bob = join("{\"device_id\":\"bob\",\"identity\":\"Bob\",\"room_id\":\"E2E1\"}");

    const char *text =
        "{\"type\":\"text\",\"content\":\"hello 'world' \\\\ \xe4\xbd\xa0\xe5\xa5\xbd\"}";
    assert_int_equal(wsc_send_text(alice, text), 0);
    json_t *got = wsc_recv_type(bob, "text", 5000);
    assert_non_null(got);
    json_decref(got);

    unsigned char bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)(255 - i);
    assert_int_equal(wsc_send(alice, WSC_OP_BINARY, bytes, sizeof(bytes)), 0);
    struct wsc_msg m = {0};
    assert_int_equal(wsc_recv(bob, &m, 5000), 0);
    assert_int_equal(m.opcode, WSC_OP_BINARY);
    wsc_msg_free(&m);

    assert_int_equal(wsc_send_text(bob, "{\"type\":\"query_room\"}"), 0);
    got = wsc_recv_type(bob, "room_info", 5000);
    assert_non_null(got);
    json_decref(got);

    wsc_send_close(alice, 1000, "bye");
    wsc_wait_closed(alice, 5000, NULL);
    wsc_close(alice);
    wsc_send_close(bob, 1000, "bye");
    wsc_wait_closed(bob, 5000, NULL);
    wsc_close(bob);

    /* Both connections closed and the empty room recycled: the last events of the chain. */
    ah_wait_int(h, 2, AH_WAIT_MS,
                "SELECT COUNT(*) FROM connections WHERE disconnected_at IS NOT NULL AND "
                "connected_at IS NOT NULL AND event_id IS NOT NULL");
    ah_wait_int(h, 1, AH_WAIT_MS, "SELECT COUNT(*) FROM rooms WHERE recycled_at IS NOT NULL");
    ah_wait_drained(h, AH_WAIT_MS);

    assert_int_equal(ah_redis_int(h, "XLEN %s", KEYS_DEAD_LETTER), 0);
    ah_expect(h, "E2E1|alice", "SELECT CONCAT_WS('|', room_id, created_by_device) FROM rooms");
    ah_expect(h, "Alice \xf0\x9f\x93\xb1|1|E2E1",
              "SELECT CONCAT_WS('|', identity, connect_count, last_room_id) FROM devices "
              "WHERE device_id = 'alice'");
    ah_expect(h, "127.0.0.1|fe-e2e|E2E1",
              "SELECT CONCAT_WS('|', client_ip, node, room_id) FROM "
              "connections WHERE device_id = 'bob'");
    ah_expect(h, "2", "SELECT COUNT(*) FROM messages");
    ah_expect(h, text,
              "SELECT CONVERT(message_content USING utf8mb4) FROM messages WHERE "
              "message_type <> 'binary'");
    char hex[600];
    for (int i = 0; i < 256; i++)
        snprintf(hex + 2 * i, 3, "%02X", bytes[i]);
    ah_expect(h, hex, "SELECT HEX(message_content) FROM messages WHERE message_type = 'binary'");
    ah_expect(h, "alice|256",
              "SELECT CONCAT_WS('|', from_device_id, message_size) FROM messages "
              "WHERE message_type = 'binary'");
    ah_expect(h, "2", "SELECT COUNT(DISTINCT seq) FROM messages WHERE room_id = 'E2E1'");
    ah_expect(h, "bob|2", "SELECT CONCAT_WS('|', device_id, total_clients) FROM room_queries");
    ah_expect(h, "2", "SELECT COUNT(*) FROM room_events WHERE room_id = 'E2E1'");
    assert_int_equal(WEXITSTATUS(ah_stop(&a, SIGTERM)), 0);
}

/* Behind the trusted proxy the archived client_ip is the client X-Forwarded-For names; a client
 * forging the header from elsewhere is archived under its own address. */
static void test_real_client_address_is_archived(void **state) {
    struct arch_harness *h = *state;
    if (frontend_pid <= 0)
        skip();
    ah_fresh(h, "arch_e2e_ip");
    struct ah_archiver a;
    ah_start(h, &a, "e2e-ip", NULL);
    static const char *const via[] = {"X-Forwarded-For: 198.51.100.23, 127.0.0.2", NULL};
    static const char *const six[] = {"X-Forwarded-For: [2001:DB8::23]:443", NULL};
    static const char *const forged[] = {"X-Forwarded-For: 198.51.100.24", NULL};
    struct wsc *ws[3] = {
        join_from("127.0.0.2", via, "{\"device_id\":\"carol\",\"room_id\":\"E2E2\"}"),
        join_from("127.0.0.2", six, "{\"device_id\":\"erin\",\"room_id\":\"E2E2\"}"),
        join_from("127.0.0.5", forged, "{\"device_id\":\"dave\",\"room_id\":\"E2E2\"}"),
    };
    ah_wait_int(h, 3, AH_WAIT_MS,
                "SELECT COUNT(*) FROM connections WHERE client_ip IS NOT NULL AND "
                "event_id IS NOT NULL");
    ah_expect(h, "198.51.100.23", "SELECT client_ip FROM connections WHERE device_id = 'carol'");
    ah_expect(h, "2001:db8::23", "SELECT client_ip FROM connections WHERE device_id = 'erin'");
    ah_expect(h, "127.0.0.5", "SELECT client_ip FROM connections WHERE device_id = 'dave'");
    for (int i = 0; i < 3; i++)
        wsc_close(ws[i]);
    assert_int_equal(WEXITSTATUS(ah_stop(&a, SIGTERM)), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frontend_events_are_archived),
        cmocka_unit_test(test_real_client_address_is_archived),
    };
    return cmocka_run_group_tests(tests, e2e_setup, e2e_teardown);
}
