/*
 * test_chaos.c - no message lost, none twice, across node and Redis failures (issue 11).
 *
 * Real processes: one redis-server with an append-only file (fsync always), MariaDB and one
 * rrm-archiver (archiver_harness), three rrm-frontends sharing that Redis. 60 devices in 6 rooms,
 * all driven from this thread by a wsmux poll loop, each send a message every SEND_INTERVAL_MS
 * with an "ack_id" unique per device and message. A device follows the README's client recipe:
 * it keeps the room's "epoch" and the last seq relayed to it ("last_seq"); whenever its
 * connection ends (a close frame, a reset, an error) it reconnects to a random running node with
 * both and resends every message not yet acknowledged, with the same ack_id. A message still
 * unacknowledged after RESEND_AFTER_MS on a working connection is resent too.
 *
 * While they run, in sequence (each step waits for a condition with a deadline): node-a gets
 * SIGTERM (drain) and is started again once it exited; node-b gets SIGKILL, right after each of
 * its clients sent KILL_BURST messages at once (so that some die accepted but unacknowledged, and
 * their resends must be answered with the original seq), and is started again;
 * Redis is stopped (SIGTERM), left down for REDIS_DOWN_MS and started again on its port and dir.
 * Then the devices stop making new messages, and once everything is quiet (every message acked,
 * every member has every other member's messages) the test checks:
 *  - every device received every other member's message exactly once, with the seq its sender
 *    was acknowledged, in strictly increasing seq order, never its own; the room's epoch never
 *    changed and every resume said "recovered": true;
 *  - every message has one seq, unique in its room, and its sender got that seq in an ack;
 *  - the archive (MySQL `messages`) holds each of them exactly once: its (room, seq) set equals
 *    the acknowledged set, with the right sender and content.
 * A summary (messages, deliveries, reconnects, resumes, resends, duplicate acks, errors) is
 * printed; on failure the first discrepancies are printed before the counts. To find which fault
 * hurts, RRM_CHAOS_FAULTS names the faults to run (a list of drain, kill, redis; default all).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "archiver_harness.h"
#include "fe_harness.h"
#include "proc.h"
#include "redis_server.h"
#include "wsmux.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum {
    NODES = 3,
    ROOMS = 6,
    PER_ROOM = 10,
    DEVICES = ROOMS * PER_ROOM,
    MAX_MSGS = 300,         /* per device; the run makes about 60 */
    SEND_INTERVAL_MS = 400, /* per device: 150 messages/s in all, far below the rate limit */
    MAX_UNACKED = 20,       /* a device makes no new message while this many wait for an ack */
    RESEND_AFTER_MS = 2500, /* resend a message unacknowledged this long on a ready connection */
    CONNECT_TIMEOUT_MS = 2000,
    JOIN_TIMEOUT_MS = 8000, /* identify to "room" answer; after that the device reconnects */
    STEP_GAP_MS = 3000,     /* traffic between two faults */
    REDIS_DOWN_MS = 1000,
    KILL_BURST = 5, /* messages each client of the killed node sends right before SIGKILL */
    JOIN_DEADLINE_MS = 30000, /* every device in its room at the start */
    STOP_DEADLINE_MS = 25000, /* a drained node exits */
    READY_DEADLINE_MS = 15000,
    QUIET_DEADLINE_MS = 60000,
    STALL_MS = 15000, /* no delivery, ack or connect for this long: what is missing is lost */
    ARCHIVE_DEADLINE_MS = 60000,
    MAX_REPORTED = 30,
};

enum dev_state { DOWN, JOINING, READY };

/* One acknowledged message: its room and seq, sender and number. */
struct acked {
    int room;
    long long seq;
    int dev, n;
};

struct device {
    char id[16];
    int room;
    enum dev_state state;
    int node;                /* node of the current connection */
    int64_t next_connect_at; /* DOWN: when to try again */
    int64_t joining_since;
    int joined_once;
    char path[48];      /* the nodes it connected to, in order ("cab...") */
    long long last_seq; /* last seq relayed to it (or the room's seq at its first join) */
    char epoch[128];
    int have_epoch;
    int sent;                  /* messages made: 0 .. sent - 1 */
    int first_unacked;         /* every message below it is acked */
    int unacked;               /* made and not acked */
    int64_t next_send_at;      /* next new message */
    long long ack[MAX_MSGS];   /* seq acknowledged for message n; 0: not yet */
    int64_t ack_at[MAX_MSGS];  /* when it was acknowledged (proc_now_ms) */
    int64_t sent_at[MAX_MSGS]; /* last transmission on the current connection; 0: none */
    int tx[MAX_MSGS];          /* transmissions of message n */
    /* what this device received, by sender and message number */
    unsigned char *got;  /* DEVICES * MAX_MSGS counts */
    long long *got_seq;  /* DEVICES * MAX_MSGS seqs */
    long long delivered; /* relayed messages received */
};

struct run {
    struct arch_harness *h;
    struct fe_cluster *fe;
    struct wsmux *mux;
    struct device dev[DEVICES];
    int node_stopping[NODES]; /* a test fault is under way: clients do not pick it */
    int sending;
    int64_t t0;          /* start of the run, for the times printed */
    long long progress;  /* deliveries + acks + connects, to see the run stall */
    int64_t progress_at; /* when progress last changed */
    int stalled;
    long long server_dedupes; /* rrm_ack_resends_total summed over the nodes' lives; -1: none */
    struct acked *acked;      /* every acknowledged message, by room and seq (check_clients) */
    long problems;
    /* counters for the summary */
    long connects, reconnects, resumes, resends, dup_acks, acks_after_resend, join_timeouts;
    long closes_1001, closes_1006, closes_other, send_failures;
    long err_unavailable, err_outcome_unknown, err_rate_limited, err_not_member, err_other;
};

static struct run *the_run;

static void problem(struct run *r, const char *fmt, ...) CMOCKA_PRINTF_ATTRIBUTE(2, 3);

/* Print the first MAX_REPORTED discrepancies; count them all. */
static void problem(struct run *r, const char *fmt, ...) {
    if (r->problems++ < MAX_REPORTED) {
        va_list ap;
        va_start(ap, fmt);
        fputs("chaos: ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
}

static void say(const struct run *r, const char *fmt, ...) CMOCKA_PRINTF_ATTRIBUTE(2, 3);

/* A progress line, with the time since the start of the run. */
static void say(const struct run *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chaos: +%.1f s: ", (double)(proc_now_ms() - r->t0) / 1000.0);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* j as compact JSON for a message (at most 300 bytes; one use per printf). */
static const char *compact(const json_t *j) {
    static char buf[300];
    char *text = json_dumps(j, JSON_COMPACT);
    snprintf(buf, sizeof(buf), "%s", text ? text : "(null)");
    free(text);
    return buf;
}

static void room_name(int room, char *buf, size_t cap) {
    snprintf(buf, cap, "chaos-%d", room);
}

/* ------------------------------------------------------------------ connection life */

/* The connection of device i is gone: everything unacknowledged is sent again once it is back. */
static void device_down(struct run *r, int i, int64_t now) {
    struct device *d = &r->dev[i];
    d->state = DOWN;
    d->next_connect_at = now + 50 + rand() % 250;
    for (int n = d->first_unacked; n < d->sent; n++)
        d->sent_at[n] = 0;
}

static void drop_device(struct run *r, int i) {
    wsmux_drop(r->mux, i);
    device_down(r, i, proc_now_ms());
}

/* A random node that runs and is not being stopped by the test, or -1. */
static int pick_node(struct run *r) {
    int live[NODES], n = 0;
    for (int k = 0; k < NODES; k++)
        if (fe_node_pid(r->fe, k) > 0 && !r->node_stopping[k])
            live[n++] = k;
    return n ? live[rand() % n] : -1;
}

/* Connect device i and send its identify (with last_seq and epoch once it knows the room). */
static void device_connect(struct run *r, int i, int64_t now) {
    struct device *d = &r->dev[i];
    int node = pick_node(r);
    if (node < 0) {
        d->next_connect_at = now + 100;
        return;
    }
    struct wsc *ws = wsc_connect("127.0.0.1", fe_port(r->fe, node), "/", CONNECT_TIMEOUT_MS);
    if (!ws) {
        d->next_connect_at = proc_now_ms() + 100 + rand() % 200;
        return;
    }
    char room[32];
    room_name(d->room, room, sizeof(room));
    json_t *id = json_pack("{s:s, s:s}", "device_id", d->id, "room_id", room);
    if (d->have_epoch) {
        json_object_set_new(id, "last_seq", json_integer(d->last_seq));
        json_object_set_new(id, "epoch", json_string(d->epoch));
    }
    char *text = json_dumps(id, JSON_COMPACT);
    json_decref(id);
    int rc = text ? wsc_send_text(ws, text) : -ENOMEM;
    free(text);
    if (rc < 0) {
        wsc_close(ws);
        d->next_connect_at = proc_now_ms() + 100;
        return;
    }
    wsmux_set(r->mux, i, ws);
    d->state = JOINING;
    d->node = node;
    d->joining_since = proc_now_ms();
    size_t plen = strlen(d->path);
    if (plen + 1 < sizeof(d->path)) {
        d->path[plen] = fe_node_id(r->fe, node)[5];
        d->path[plen + 1] = '\0';
    }
    r->connects++;
    if (d->joined_once)
        r->reconnects++;
}

/* ------------------------------------------------------------------ sending */

static int transmit(struct run *r, int i, int n, int64_t now) {
    struct device *d = &r->dev[i];
    char text[160];
    snprintf(text, sizeof(text),
             "{\"type\":\"text\",\"content\":\"chaos\",\"d\":%d,\"n\":%d,"
             "\"ack_id\":\"%s:%d\"}",
             i, n, d->id, n);
    if (wsc_send_text(wsmux_get(r->mux, i), text) < 0) {
        r->send_failures++;
        drop_device(r, i);
        return -1;
    }
    if (d->tx[n]++ > 0)
        r->resends++;
    d->sent_at[n] = now;
    return 0;
}

/* A new message from device i, unless too many wait for their ack. */
static void make_message(struct run *r, int i, int64_t now) {
    struct device *d = &r->dev[i];
    if (d->state != READY || d->unacked >= MAX_UNACKED || d->sent >= MAX_MSGS)
        return;
    int n = d->sent++;
    d->unacked++;
    transmit(r, i, n, now);
}

/* Resend what is due, then make a new message if it is time. */
static void device_send(struct run *r, int i, int64_t now) {
    struct device *d = &r->dev[i];
    for (int n = d->first_unacked; n < d->sent && d->state == READY; n++)
        if (!d->ack[n] && (!d->sent_at[n] || now - d->sent_at[n] >= RESEND_AFTER_MS))
            transmit(r, i, n, now);
    if (d->state != READY || !r->sending || now < d->next_send_at)
        return;
    d->next_send_at += SEND_INTERVAL_MS;
    if (d->next_send_at < now)
        d->next_send_at = now;
    make_message(r, i, now);
}

/* ------------------------------------------------------------------ receiving */

static void on_room(struct run *r, int i, json_t *j) {
    struct device *d = &r->dev[i];
    json_t *seq = json_object_get(j, "seq");
    const char *epoch = json_string_value(json_object_get(j, "epoch"));
    json_t *recovered = json_object_get(j, "recovered");
    if (!json_is_integer(seq) || !epoch || !*epoch)
        problem(r, "%s: room answer without \"seq\" and \"epoch\": %s", d->id, compact(j));
    if (d->have_epoch) {
        if (json_is_integer(seq) && json_integer_value(seq) < d->last_seq)
            problem(r, "%s: the room's seq went back: %lld after %lld was relayed", d->id,
                    (long long)json_integer_value(seq), d->last_seq);
        if (!epoch || strcmp(epoch, d->epoch) != 0)
            problem(r, "%s: the room's epoch changed from %s to %s", d->id, d->epoch,
                    epoch ? epoch : "(none)");
        if (!json_is_true(recovered))
            problem(r, "%s: resume from seq %lld on %s not recovered (\"recovered\": %s)", d->id,
                    d->last_seq, fe_node_id(r->fe, d->node),
                    recovered ? (json_is_false(recovered) ? "false" : "not a boolean") : "absent");
        else
            r->resumes++;
    } else {
        if (epoch) {
            snprintf(d->epoch, sizeof(d->epoch), "%s", epoch);
            d->have_epoch = 1;
        }
        if (!d->joined_once && json_is_integer(seq))
            d->last_seq = json_integer_value(seq);
    }
    d->joined_once = 1;
    d->state = READY;
}

static void on_ack(struct run *r, int i, json_t *j) {
    struct device *d = &r->dev[i];
    const char *ack_id = json_string_value(json_object_get(j, "ack_id"));
    json_t *seqj = json_object_get(j, "seq");
    size_t idlen = strlen(d->id);
    if (!ack_id || strncmp(ack_id, d->id, idlen) != 0 || ack_id[idlen] != ':' ||
        !json_is_integer(seqj)) {
        problem(r, "%s: malformed ack %s", d->id, compact(j));
        return;
    }
    int n = atoi(ack_id + idlen + 1);
    long long seq = json_integer_value(seqj);
    if (n < 0 || n >= d->sent || seq <= 0) {
        problem(r, "%s: ack for a message never sent or with a bad seq: %s", d->id, ack_id);
        return;
    }
    if (d->ack[n]) {
        r->dup_acks++;
        if (d->ack[n] != seq)
            problem(r, "%s: message %d acknowledged twice with different seqs %lld and %lld", d->id,
                    n, d->ack[n], seq);
        return;
    }
    d->ack[n] = seq;
    d->ack_at[n] = proc_now_ms();
    d->unacked--;
    if (d->tx[n] > 1)
        r->acks_after_resend++;
    while (d->first_unacked < d->sent && d->ack[d->first_unacked])
        d->first_unacked++;
}

static void on_error_frame(struct run *r, int i, json_t *j) {
    struct device *d = &r->dev[i];
    const char *code = json_string_value(json_object_get(j, "code"));
    int64_t now = proc_now_ms();
    code = code ? code : "";
    if (!strcmp(code, "unavailable") || !strcmp(code, "outcome_unknown") ||
        !strcmp(code, "rate_limited")) {
        if (!strcmp(code, "unavailable"))
            r->err_unavailable++;
        else if (!strcmp(code, "outcome_unknown"))
            r->err_outcome_unknown++;
        else
            r->err_rate_limited++;
        /* Some message was not carried out (or may not have been): resend soon. */
        for (int n = d->first_unacked; n < d->sent; n++)
            if (!d->ack[n] && d->sent_at[n])
                d->sent_at[n] = now - RESEND_AFTER_MS + 300;
        return;
    }
    if (!strcmp(code, "not_member")) {
        r->err_not_member++;
        drop_device(r, i);
        return;
    }
    if (!strcmp(code, "draining"))
        return; /* the close frame follows */
    r->err_other++;
    problem(r, "%s: error from %s: %s", d->id, fe_node_id(r->fe, d->node), compact(j));
}

static void on_relay(struct run *r, int i, json_t *j) {
    struct device *d = &r->dev[i];
    const char *from = json_string_value(json_object_get(j, "from_device_id"));
    const char *room = json_string_value(json_object_get(j, "room_id"));
    json_t *seqj = json_object_get(j, "seq");
    json_t *dj = json_object_get(j, "d"), *nj = json_object_get(j, "n");
    char want_room[32];
    room_name(d->room, want_room, sizeof(want_room));
    if (!from || !room || !json_is_integer(seqj) || !json_is_integer(dj) || !json_is_integer(nj)) {
        problem(r, "%s: unexpected frame %s", d->id, compact(j));
        return;
    }
    long long seq = json_integer_value(seqj);
    int s = (int)json_integer_value(dj), n = (int)json_integer_value(nj);
    if (s < 0 || s >= DEVICES || n < 0 || n >= r->dev[s].sent || strcmp(from, r->dev[s].id) ||
        strcmp(room, want_room) || r->dev[s].room != d->room) {
        problem(r, "%s: relay that matches no message of its room: %s", d->id, compact(j));
        return;
    }
    if (json_object_get(j, "ack_id"))
        problem(r, "%s: relayed message still carries its ack_id: %s", d->id, compact(j));
    if (s == i)
        problem(r, "%s: received its own message %d (seq %lld)", d->id, n, seq);
    if (seq <= d->last_seq)
        problem(r, "%s: seq %lld (message %d of %s) after seq %lld: not increasing", d->id, seq, n,
                from, d->last_seq);
    else
        d->last_seq = seq;
    size_t k = (size_t)s * MAX_MSGS + (size_t)n;
    if (d->got[k]++ > 0)
        problem(r, "%s: message %d of %s received %d times (seqs %lld, %lld)", d->id, n, from,
                d->got[k], d->got_seq[k], seq);
    d->got_seq[k] = seq;
    d->delivered++;
}

static void on_message(void *ud, int slot, const struct wsc_msg *m) {
    struct run *r = ud;
    struct device *d = &r->dev[slot];
    json_t *j = m->opcode == WSC_OP_TEXT ? json_loadb(m->data, m->len, 0, NULL) : NULL;
    const char *type = j ? json_string_value(json_object_get(j, "type")) : NULL;
    if (!j || !type) {
        problem(r, "%s: unexpected %s frame: %.200s", d->id,
                m->opcode == WSC_OP_TEXT ? "text" : "binary", m->data);
    } else if (!strcmp(type, "connection")) {
        /* the first answer to the identify */
    } else if (!strcmp(type, "room")) {
        on_room(r, slot, j);
    } else if (!strcmp(type, "ack")) {
        on_ack(r, slot, j);
    } else if (!strcmp(type, "error")) {
        on_error_frame(r, slot, j);
    } else {
        on_relay(r, slot, j);
    }
    json_decref(j);
}

static void on_end(void *ud, int slot, int close_code, int err) {
    struct run *r = ud;
    (void)err;
    if (close_code == 1001)
        r->closes_1001++;
    else if (close_code == WSC_CLOSE_ABNORMAL)
        r->closes_1006++;
    else
        r->closes_other++;
    device_down(r, slot, proc_now_ms());
}

/* ------------------------------------------------------------------ the run */

/* One turn of the client loop: read what arrived, reconnect, send what is due. */
static void pump(struct run *r, int wait_ms) {
    wsmux_poll(r->mux, wait_ms);
    int64_t now = proc_now_ms();
    for (int i = 0; i < DEVICES; i++) {
        struct device *d = &r->dev[i];
        if (d->state == DOWN && now >= d->next_connect_at)
            device_connect(r, i, now);
        else if (d->state == JOINING && now - d->joining_since > JOIN_TIMEOUT_MS) {
            r->join_timeouts++;
            fprintf(stderr, "chaos: %s: no room answer from %s within %d ms; reconnecting\n", d->id,
                    fe_node_id(r->fe, d->node), JOIN_TIMEOUT_MS);
            drop_device(r, i);
        } else if (d->state == READY)
            device_send(r, i, now);
    }
}

/* Runs the client loop until deadline (a phase of traffic between two faults). */
static void pump_until(struct run *r, int64_t deadline) {
    while (proc_remaining_ms(deadline) > 0)
        pump(r, proc_remaining_ms(deadline) < 5 ? proc_remaining_ms(deadline) : 5);
}

typedef int (*cond_fn)(struct run *r, int arg);

/* Runs the client loop until cond holds (1), or until the deadline (0, after saying so). */
static int pump_until_cond(struct run *r, cond_fn cond, int arg, int timeout_ms, const char *what) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    int64_t next_check = 0;
    for (;;) {
        int64_t now = proc_now_ms();
        if (now >= next_check) {
            if (cond(r, arg))
                return 1;
            next_check = now + 50;
        }
        if (proc_remaining_ms(deadline) == 0)
            break;
        pump(r, 5);
    }
    fprintf(stderr, "chaos: timed out after %d ms waiting for %s (%ld discrepancies so far)\n",
            timeout_ms, what, r->problems);
    return 0;
}

/* pump_until_cond that must succeed. */
static void pump_until_must(struct run *r, cond_fn cond, int arg, int timeout_ms,
                            const char *what) {
    if (!pump_until_cond(r, cond, arg, timeout_ms, what))
        fail_msg("chaos: %s did not happen within %d ms", what, timeout_ms);
}

static int all_ready(struct run *r, int arg) {
    (void)arg;
    for (int i = 0; i < DEVICES; i++)
        if (r->dev[i].state != READY)
            return 0;
    return 1;
}

static int node_exited(struct run *r, int node) {
    int code = -1;
    int e = fe_node_exited(r->fe, node, &code);
    if (e == 1 && code != 0) {
        problem(r, "%s exited with status %d after SIGTERM", fe_node_id(r->fe, node), code);
        fe_dump_log(r->fe, node);
    }
    return e != 0;
}

static int node_ready(struct run *r, int node) {
    return fe_node_ready(r->fe, node);
}

/* Every device connected, every message acked, every member has every other's messages; or
 * nothing has changed for STALL_MS (r->stalled is set then: what is missing will not come). */
static int quiet(struct run *r, int arg) {
    (void)arg;
    long long expected[ROOMS] = {0}, progress = r->connects;
    int done = 1;
    for (int i = 0; i < DEVICES; i++) {
        if (r->dev[i].state != READY || r->dev[i].unacked)
            done = 0;
        expected[r->dev[i].room] += r->dev[i].sent;
        progress += r->dev[i].delivered + r->dev[i].sent - r->dev[i].unacked;
    }
    for (int i = 0; i < DEVICES; i++)
        if (r->dev[i].delivered < expected[r->dev[i].room] - r->dev[i].sent)
            done = 0;
    int64_t now = proc_now_ms();
    if (progress != r->progress || !r->progress_at) {
        r->progress = progress;
        r->progress_at = now;
    }
    if (!done && now - r->progress_at >= STALL_MS) {
        r->stalled = 1;
        return 1;
    }
    return done;
}

/* Adds the node's rrm_ack_resends_total (resends answered without relaying) to the total; called
 * before the node is stopped and at the end, as a restarted node counts from 0. */
static void add_dedupes(struct run *r, int node) {
    long long v = fe_metric(fe_admin_port(r->fe, node), "rrm_ack_resends_total");
    if (v >= 0)
        r->server_dedupes = (r->server_dedupes < 0 ? 0 : r->server_dedupes) + v;
}

static void fault_drain(struct run *r, int node) {
    say(r, "SIGTERM %s", fe_node_id(r->fe, node));
    r->node_stopping[node] = 1;
    add_dedupes(r, node);
    assert_int_equal(fe_node_signal(r->fe, node, SIGTERM), 0);
    pump_until_must(r, node_exited, node, STOP_DEADLINE_MS, "the drained node to exit");
    say(r, "%s exited; starting it again", fe_node_id(r->fe, node));
    assert_int_equal(fe_node_respawn(r->fe, node), 0);
    pump_until_must(r, node_ready, node, READY_DEADLINE_MS, "the drained node to be ready again");
    say(r, "%s ready", fe_node_id(r->fe, node));
    r->node_stopping[node] = 0;
}

static void fault_kill(struct run *r, int node) {
    /* Its clients send a few messages at once first, so that the node dies with some accepted
     * and not yet acknowledged: their resends must be answered with the original seq. */
    add_dedupes(r, node);
    say(r, "SIGKILL %s", fe_node_id(r->fe, node));
    int64_t now = proc_now_ms();
    for (int i = 0; i < DEVICES; i++)
        for (int k = 0; k < KILL_BURST && r->dev[i].node == node; k++)
            make_message(r, i, now);
    assert_int_equal(fe_node_stop(r->fe, node, SIGKILL, 5000), 128 + SIGKILL);
    assert_int_equal(fe_node_respawn(r->fe, node), 0);
    pump_until_must(r, node_ready, node, READY_DEADLINE_MS, "the killed node to be ready again");
    say(r, "%s ready", fe_node_id(r->fe, node));
}

static void fault_redis(struct run *r) {
    struct redis_server *rs = ah_redis_server(r->h);
    say(r, "Redis stopped");
    ah_redis_close(r->h);
    assert_int_equal(redis_server_stop(rs), 0);
    pump_until(r, proc_now_ms() + REDIS_DOWN_MS);
    assert_int_equal(redis_server_restart(rs), 0);
    say(r, "Redis started again");
}

/* ------------------------------------------------------------------ checks */

static int cmp_acked(const void *a, const void *b) {
    const struct acked *x = a, *y = b;
    if (x->room != y->room)
        return x->room < y->room ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A message a receiver should have had, for the report of what is missing. */
struct miss {
    long long seq;
    int64_t ack_at;
};

static int cmp_miss(const void *a, const void *b) {
    const struct miss *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One line per receiver that lacks messages: how many, their seqs as ranges, when they were
 * acknowledged (since the start) and the nodes the receiver went through. */
static void report_missing(struct run *r, int i, struct miss *m, size_t n) {
    struct device *d = &r->dev[i];
    char ranges[200] = "";
    size_t len = 0;
    qsort(m, n, sizeof(*m), cmp_miss);
    for (size_t x = 0; x < n && len < sizeof(ranges) - 40;) {
        size_t y = x;
        while (y + 1 < n && m[y + 1].seq == m[y].seq + 1)
            y++;
        len +=
            (size_t)snprintf(ranges + len, sizeof(ranges) - len, "%s%lld", x ? "," : "", m[x].seq);
        if (y > x)
            len += (size_t)snprintf(ranges + len, sizeof(ranges) - len, "-%lld", m[y].seq);
        x = y + 1;
    }
    problem(r,
            "%s (nodes %s, last_seq %lld): %zu messages of its room never received: seqs %s%s, "
            "acknowledged +%.1f .. +%.1f s",
            d->id, d->path, d->last_seq, n, ranges, len >= sizeof(ranges) - 40 ? "..." : "",
            (double)(m[0].ack_at - r->t0) / 1000.0, (double)(m[n - 1].ack_at - r->t0) / 1000.0);
}

/* Deliveries and acks: every message acked once, received once by every other member. */
static struct acked *check_clients(struct run *r, size_t *count) {
    size_t total = 0;
    for (int i = 0; i < DEVICES; i++)
        total += (size_t)r->dev[i].sent;
    struct acked *a = calloc(total ? total : 1, sizeof(*a));
    struct miss *miss = calloc(total ? total : 1, sizeof(*miss));
    assert_true(a && miss);
    size_t k = 0;
    for (int s = 0; s < DEVICES; s++) {
        struct device *sd = &r->dev[s];
        for (int n = 0; n < sd->sent; n++) {
            if (!sd->ack[n])
                problem(r, "%s: message %d never acknowledged (sent %d times)", sd->id, n,
                        sd->tx[n]);
            else
                a[k++] = (struct acked){sd->room, sd->ack[n], s, n};
        }
    }
    for (int i = 0; i < DEVICES; i++) {
        struct device *d = &r->dev[i];
        size_t nmiss = 0;
        for (int s = 0; s < DEVICES; s++) {
            struct device *sd = &r->dev[s];
            if (s == i || sd->room != d->room)
                continue;
            for (int n = 0; n < sd->sent; n++) {
                size_t idx = (size_t)s * MAX_MSGS + (size_t)n;
                if (!sd->ack[n])
                    continue;
                if (d->got[idx] == 0)
                    miss[nmiss++] = (struct miss){sd->ack[n], sd->ack_at[n]};
                else if (d->got_seq[idx] != sd->ack[n])
                    problem(r, "%s: message %d of %s received with seq %lld, acked with %lld",
                            d->id, n, sd->id, d->got_seq[idx], sd->ack[n]);
            }
        }
        if (nmiss)
            report_missing(r, i, miss, nmiss);
    }
    free(miss);
    qsort(a, k, sizeof(*a), cmp_acked);
    for (size_t x = 1; x < k; x++)
        if (a[x].room == a[x - 1].room && a[x].seq == a[x - 1].seq)
            problem(r, "room %d: seq %lld acknowledged for two messages (%s #%d and %s #%d)",
                    a[x].room, a[x].seq, r->dev[a[x - 1].dev].id, a[x - 1].n, r->dev[a[x].dev].id,
                    a[x].n);
    *count = k;
    return a;
}

/* The archive holds each acked message exactly once, and nothing else. */
static void check_archive(struct run *r, const struct acked *a, size_t count) {
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM messages");
    ah_wait_at_least(r->h, (long long)count, ARCHIVE_DEADLINE_MS, sql);
    ah_wait_drained(r->h, ARCHIVE_DEADLINE_MS);
    int ok = 0;
    MYSQL_RES *res = ah_query(r->h,
                              "SELECT room_id, seq, from_device_id, "
                              "CONVERT(message_content USING utf8mb4) FROM messages "
                              "ORDER BY room_id, seq",
                              0, &ok);
    assert_non_null(res);
    unsigned char *seen = calloc(count ? count : 1, 1);
    assert_non_null(seen);
    MYSQL_ROW row;
    long rows = 0;
    while ((row = mysql_fetch_row(res))) {
        rows++;
        int room = -1;
        if (!row[0] || sscanf(row[0], "chaos-%d", &room) != 1 || !row[1]) {
            problem(r, "archive: a row of another room: %s", row[0] ? row[0] : "NULL");
            continue;
        }
        struct acked key = {room, atoll(row[1]), 0, 0};
        const struct acked *m = bsearch(&key, a, count, sizeof(*a), cmp_acked);
        if (!m) {
            problem(r, "archive: %s seq %s (from %s: %s) was never acknowledged", row[0], row[1],
                    row[2] ? row[2] : "NULL", row[3] ? row[3] : "NULL");
            continue;
        }
        size_t x = (size_t)(m - a);
        if (seen[x]++)
            problem(r, "archive: %s seq %s archived more than once", row[0], row[1]);
        json_t *body = row[3] ? json_loads(row[3], 0, NULL) : NULL;
        json_t *nj = json_object_get(body, "n");
        if (!row[2] || strcmp(row[2], r->dev[m->dev].id) || !json_is_integer(nj) ||
            json_integer_value(nj) != m->n)
            problem(r, "archive: %s seq %s holds %s: %s, acknowledged to %s for message %d", row[0],
                    row[1], row[2] ? row[2] : "NULL", row[3] ? row[3] : "NULL", r->dev[m->dev].id,
                    m->n);
        json_decref(body);
    }
    mysql_free_result(res);
    for (size_t x = 0; x < count; x++)
        if (!seen[x])
            problem(r, "archive: chaos-%d seq %lld (%s #%d) missing", a[x].room, a[x].seq,
                    r->dev[a[x].dev].id, a[x].n);
    free(seen);
    fprintf(stderr, "chaos: archive holds %ld message rows for %zu acknowledged messages\n", rows,
            count);
}

static void summary(const struct run *r, size_t acked, int64_t ms) {
    long long delivered = 0;
    for (int i = 0; i < DEVICES; i++)
        delivered += r->dev[i].delivered;
    fprintf(stderr,
            "chaos: %zu messages acknowledged, %lld deliveries in %lld ms; %ld connects, "
            "%ld reconnects, %ld resumes recovered, %ld resends (%ld acked after a resend, %ld "
            "duplicate acks), %ld join timeouts; closes: %ld 1001, %ld 1006, %ld other; "
            "errors: %ld unavailable, %ld outcome_unknown, %ld rate_limited, %ld not_member, %ld "
            "other; %ld send failures; %lld resends deduplicated by the nodes "
            "(rrm_ack_resends_total; -1: not exported)\n",
            acked, delivered, (long long)ms, r->connects, r->reconnects, r->resumes, r->resends,
            r->acks_after_resend, r->dup_acks, r->join_timeouts, r->closes_1001, r->closes_1006,
            r->closes_other, r->err_unavailable, r->err_outcome_unknown, r->err_rate_limited,
            r->err_not_member, r->err_other, r->send_failures, r->server_dedupes);
}

static void test_chaos(void **state) {
    struct run *r = the_run;
    r->h = *state;
    int64_t t0 = proc_now_ms();
    r->t0 = t0;
    srand((unsigned)t0);
    ah_fresh(r->h, "chaos");
    struct ah_archiver arch;
    ah_start(r->h, &arch, "chaos-1", NULL);
    static const char *const env[] = {"RRM_ROOM_GRACE_MS=600000", NULL};
    r->fe = fe_cluster_start_on(ah_redis_server(r->h), NODES, env);
    assert_non_null(r->fe);

    static const struct wsmux_ops ops = {on_message, on_end};
    r->mux = wsmux_new(DEVICES, &ops, r);
    assert_non_null(r->mux);
    int64_t now = proc_now_ms();
    for (int i = 0; i < DEVICES; i++) {
        struct device *d = &r->dev[i];
        d->room = i / PER_ROOM;
        snprintf(d->id, sizeof(d->id), "r%dd%d", d->room, i % PER_ROOM);
        d->got = calloc((size_t)DEVICES * MAX_MSGS, 1);
        d->got_seq = calloc((size_t)DEVICES * MAX_MSGS, sizeof(*d->got_seq));
        assert_true(d->got && d->got_seq);
        d->state = DOWN;
        d->next_connect_at = now;
    }
    pump_until_must(r, all_ready, 0, JOIN_DEADLINE_MS, "every device to join its room");
    now = proc_now_ms();
    for (int i = 0; i < DEVICES; i++)
        r->dev[i].next_send_at = now + rand() % SEND_INTERVAL_MS;
    r->sending = 1;
    say(r, "%d devices joined; sending", DEVICES);

    /* RRM_CHAOS_FAULTS (e.g. "drain,kill") narrows the faults down to find which one hurts. */
    const char *faults = getenv("RRM_CHAOS_FAULTS");
    pump_until(r, proc_now_ms() + STEP_GAP_MS);
    if (!faults || strstr(faults, "drain")) {
        fault_drain(r, 0);
        pump_until(r, proc_now_ms() + STEP_GAP_MS);
    }
    if (!faults || strstr(faults, "kill")) {
        fault_kill(r, 1);
        pump_until(r, proc_now_ms() + STEP_GAP_MS);
    }
    if (!faults || strstr(faults, "redis")) {
        fault_redis(r);
        pump_until(r, proc_now_ms() + STEP_GAP_MS);
    }
    r->sending = 0;
    int64_t stop = proc_now_ms();
    say(r, "sending stopped; waiting for quiet");
    if (!pump_until_cond(r, quiet, 0, QUIET_DEADLINE_MS,
                         "every message to be acknowledged and delivered"))
        problem(r, "not quiet %d ms after the last message was made", QUIET_DEADLINE_MS);
    else if (r->stalled)
        problem(r,
                "stalled: nothing delivered, acknowledged or connected for %d ms, and not "
                "everything arrived",
                STALL_MS);
    else
        say(r, "quiet %lld ms after the last message was made", (long long)(proc_now_ms() - stop));

    for (int k = 0; k < NODES; k++)
        add_dedupes(r, k);
    size_t count = 0;
    struct acked *a = r->acked = check_clients(r, &count);
    summary(r, count, proc_now_ms() - t0);
    check_archive(r, a, count);
    if (r->problems)
        fail_msg("chaos: %ld discrepancies (the first %d are printed above)", r->problems,
                 MAX_REPORTED);
    assert_int_equal(WEXITSTATUS(ah_stop(&arch, SIGTERM)), 0);
}

static int setup(void **state) {
    the_run = calloc(1, sizeof(*the_run));
    if (!the_run)
        return -1;
    the_run->server_dedupes = -1;
    struct redis_server_options ro = {.aof = 1};
    return ah_setup_full(state, &ro, NULL);
}

static int teardown(void **state) {
    struct run *r = the_run;
    int rc = 0;
    if (r) {
        wsmux_free(r->mux);
        if (r->fe && fe_cluster_stop(r->fe) != 0)
            rc = -1;
        free(r->acked);
        for (int i = 0; i < DEVICES; i++) {
            free(r->dev[i].got);
            free(r->dev[i].got_seq);
        }
        free(r);
        the_run = NULL;
    }
    return ah_teardown(state) || rc;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chaos),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
