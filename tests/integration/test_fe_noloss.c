/*
 * test_fe_noloss.c - no message is lost, duplicated or reordered under load: 30 clients in 5
 * rooms spread over 2 nodes each send 200 messages; every member must receive every other
 * member's messages exactly once and in each sender's order, and nothing from other rooms.
 *
 * One thread drives all clients with poll() over their sockets, interleaving paced sends with
 * draining receives, so no client ever blocks on a full socket. Throughput and the latency from
 * the envelope's "ts" (server wall clock when the message was accepted) to the moment it was
 * read here are printed for information; they are never asserted on.
 */
#include "fe_harness.h"
#include "proc.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum {
    CLIENTS = 30,
    ROOMS = 5,
    MSGS = 200,           /* per client */
    RATE = 250,           /* messages per second per client */
    MAX_IN_FLIGHT = 6000, /* deliveries outstanding before sending pauses */
    RUN_TIMEOUT_MS = 60000,
};

struct client {
    struct wsc *ws;
    int room;
    int sent;
    int received;
    int next[CLIENTS]; /* next k expected from each sender */
};

struct run {
    struct client cl[CLIENTS];
    int *latency; /* ms, one per delivery */
    size_t nlat, cap_lat;
    long problems; /* losses, duplicates, reorders, foreign or unexpected frames */
};

static int setup(void **state) {
    static const char *const env[] = {"RRM_MAX_MSGS_PER_SEC=100000", NULL};
    struct fe_cluster *c = fe_cluster_start(2, env);
    *state = c;
    return c ? 0 : -1;
}

static void problem(struct run *r, const char *fmt, ...) CMOCKA_PRINTF_ATTRIBUTE(2, 3);

/* Report the first few problems in detail; count all of them. */
static void problem(struct run *r, const char *fmt, ...) {
    if (r->problems++ < 20) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
}

/* Check one delivered frame against what receiver `to` expects next from its sender. */
static void on_message(struct run *r, int to, const struct wsc_msg *m, int64_t now_wall) {
    json_error_t err;
    if (m->opcode != WSC_OP_TEXT) {
        problem(r, "client %d: unexpected frame opcode %d", to, m->opcode);
        return;
    }
    json_t *j = json_loadb(m->data, m->len, 0, &err);
    const char *from = j ? json_string_value(json_object_get(j, "from_device_id")) : NULL;
    json_t *s = j ? json_object_get(j, "s") : NULL;
    json_t *k = j ? json_object_get(j, "k") : NULL;
    json_t *ts = j ? json_object_get(j, "ts") : NULL;
    if (!from || !json_is_integer(s) || !json_is_integer(k) || !json_is_integer(ts)) {
        problem(r, "client %d: unexpected frame %.200s", to, m->data);
        json_decref(j);
        return;
    }
    int sender = (int)json_integer_value(s), seqk = (int)json_integer_value(k);
    char want_from[16];
    snprintf(want_from, sizeof(want_from), "nl-%02d", sender);
    if (sender < 0 || sender >= CLIENTS || sender == to || strcmp(from, want_from) != 0 ||
        r->cl[sender].room != r->cl[to].room) {
        problem(r, "client %d (room %d): frame from %s (s=%d) does not belong here", to,
                r->cl[to].room, from, sender);
    } else if (seqk != r->cl[to].next[sender]) {
        problem(r, "client %d: from %d got k=%d, expected %d (%s)", to, sender, seqk,
                r->cl[to].next[sender],
                seqk < r->cl[to].next[sender] ? "duplicate" : "loss or reorder");
        if (seqk > r->cl[to].next[sender])
            r->cl[to].next[sender] = seqk + 1;
    } else {
        r->cl[to].next[sender]++;
        if (r->nlat < r->cap_lat)
            r->latency[r->nlat++] = (int)(now_wall - json_integer_value(ts));
    }
    r->cl[to].received++;
    json_decref(j);
}

/* Read every complete frame already available on client i without waiting. */
static int drain(struct run *r, int i) {
    for (;;) {
        struct wsc_msg m;
        int rc = wsc_recv(r->cl[i].ws, &m, 0);
        if (rc == -ETIMEDOUT)
            return 0;
        if (rc < 0) {
            fprintf(stderr, "client %d: receive failed: %s\n", i, strerror(-rc));
            return rc;
        }
        on_message(r, i, &m, fe_wall_ms());
        wsc_msg_free(&m);
    }
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void test_no_loss_under_load(void **state) {
    struct fe_cluster *c = *state;
    struct run *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    const long expected = (long)CLIENTS * (CLIENTS / ROOMS - 1) * MSGS;
    r->cap_lat = (size_t)expected;
    r->latency = calloc(r->cap_lat, sizeof(int));
    assert_non_null(r->latency);

    for (int i = 0; i < CLIENTS; i++) {
        char dev[16], room[16];
        snprintf(dev, sizeof(dev), "nl-%02d", i);
        snprintf(room, sizeof(room), "noloss-%d", i % ROOMS);
        r->cl[i].room = i % ROOMS;
        r->cl[i].ws = fe_join(c, i % 2, dev, NULL, room, NULL);
        assert_non_null(r->cl[i].ws);
    }

    long in_before = 0;
    for (int n = 0; n < fe_nodes(c); n++)
        in_before += fe_metric(fe_admin_port(c, n), "rrm_messages_in_total");

    struct pollfd pfd[CLIENTS];
    long sent_total = 0, received_total = 0;
    int64_t t0 = proc_now_ms(), deadline = t0 + RUN_TIMEOUT_MS, last_send_ms = t0;
    char buf[128];
    while (received_total < expected) {
        if (proc_remaining_ms(deadline) == 0)
            break;
        /* paced sends: each client is allowed RATE messages per second since t0 */
        int64_t now = proc_now_ms();
        int due = (int)((now - t0) * RATE / 1000) + 1;
        if (due > MSGS)
            due = MSGS;
        int more_to_send = 0;
        for (int i = 0; i < CLIENTS; i++) {
            while (r->cl[i].sent < due &&
                   sent_total * (CLIENTS / ROOMS - 1) - received_total < MAX_IN_FLIGHT) {
                snprintf(buf, sizeof(buf),
                         "{\"type\":\"text\",\"content\":\"nl\",\"s\":%d,\"k\":%d}", i,
                         r->cl[i].sent);
                assert_int_equal(wsc_send_text(r->cl[i].ws, buf), 0);
                r->cl[i].sent++;
                sent_total++;
                last_send_ms = proc_now_ms();
            }
            if (r->cl[i].sent < MSGS)
                more_to_send = 1;
        }
        for (int i = 0; i < CLIENTS; i++) {
            pfd[i].fd = wsc_fd(r->cl[i].ws);
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
        }
        int wait = more_to_send ? 2 : 200;
        int rem = proc_remaining_ms(deadline);
        int n = poll(pfd, CLIENTS, wait < rem ? wait : rem);
        if (n < 0 && errno != EINTR)
            fail_msg("poll: %s", strerror(errno));
        for (int i = 0; i < CLIENTS && n > 0; i++) {
            if (!pfd[i].revents)
                continue;
            int before = r->cl[i].received;
            assert_int_equal(drain(r, i), 0);
            received_total += r->cl[i].received - before;
        }
    }
    int64_t t_end = proc_now_ms();

    /* every receiver got all 200 messages of each of the 5 other members of its room */
    long missing = 0;
    for (int to = 0; to < CLIENTS; to++)
        for (int from = 0; from < CLIENTS; from++) {
            int want = (from != to && r->cl[from].room == r->cl[to].room) ? MSGS : 0;
            if (r->cl[to].next[from] != want) {
                if (missing++ < 10)
                    fprintf(stderr, "client %d got %d of %d messages from client %d\n", to,
                            r->cl[to].next[from], want, from);
            }
        }
    double secs = (double)(t_end - t0) / 1000.0;
    double send_secs = (double)(last_send_ms - t0) / 1000.0;
    qsort(r->latency, r->nlat, sizeof(int), cmp_int);
    int p50 = r->nlat ? r->latency[r->nlat / 2] : -1;
    int p99 = r->nlat ? r->latency[(r->nlat * 99) / 100] : -1;
    int pmax = r->nlat ? r->latency[r->nlat - 1] : -1;
    print_message("no-loss: %d clients, %d rooms, 2 nodes: %ld messages sent in %.2f s "
                  "(%.0f msg/s in), %ld deliveries in %.2f s (%.0f deliveries/s)\n",
                  CLIENTS, ROOMS, sent_total, send_secs,
                  send_secs > 0 ? (double)sent_total / send_secs : 0.0, received_total, secs,
                  secs > 0 ? (double)received_total / secs : 0.0);
    print_message("no-loss: latency ts->client p50 %d ms, p99 %d ms, max %d ms (%zu samples)\n",
                  p50, p99, pmax, r->nlat);

    long in_after = 0;
    for (int n = 0; n < fe_nodes(c); n++)
        in_after += fe_metric(fe_admin_port(c, n), "rrm_messages_in_total");
    long problems = r->problems;
    free(r->latency);
    free(r);
    assert_int_equal(sent_total, (long)CLIENTS * MSGS);
    assert_int_equal(in_after - in_before, (long)CLIENTS * MSGS);
    assert_int_equal(problems, 0);
    assert_int_equal(missing, 0);
    assert_int_equal(received_total, expected);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_loss_under_load, setup, fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
