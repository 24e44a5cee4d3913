/*
 * test_fe_history.c - room history, epochs, resume and acknowledged sends (README "Delivery
 * guarantees").
 *
 * Resume: a member leaves, messages are sent, it comes back through the other node with the
 * last seq and epoch it saw and gets exactly what it missed, in order, then the live messages,
 * with no gap and no duplicate while more are sent during the resume. A stale epoch, a gap
 * beyond the history's size or age, and history turned off answer "recovered": false with no
 * history. A room whose state Redis lost gets a new epoch and starts its seq again. Acks: the
 * sender is told the seq; a resend of the same ack_id is answered with it and not relayed; after
 * the ack window it is a new message; the ack_id never reaches the other members.
 */
#include "fe_harness.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static int setup_default(void **state) {
    static const char *const env[] = {"RRM_MAX_MSGS_PER_SEC=100000", NULL};
    struct fe_cluster *c = fe_cluster_start(2, env);
    *state = c;
    return c ? 0 : -1;
}

/* Room for a resume of a few MB, read while more messages arrive. */
static int setup_big(void **state) {
    static const char *const env[] = {"RRM_MAX_MSGS_PER_SEC=100000",
                                      "RRM_MAX_BYTES_PER_SEC=1073741824",
                                      "RRM_SEND_QUEUE_BYTES=67108864", NULL};
    struct fe_cluster *c = fe_cluster_start(2, env);
    *state = c;
    return c ? 0 : -1;
}

/* A small history that expires soon, and a short ack window. */
static int setup_small(void **state) {
    static const char *const env[] = {"RRM_HISTORY_SIZE=10", "RRM_HISTORY_TTL_MS=3000",
                                      "RRM_ACK_WINDOW_MS=1000", "RRM_MAX_MSGS_PER_SEC=100000",
                                      NULL};
    struct fe_cluster *c = fe_cluster_start(2, env);
    *state = c;
    return c ? 0 : -1;
}

static int setup_off(void **state) {
    static const char *const env[] = {"RRM_HISTORY_SIZE=0", NULL};
    struct fe_cluster *c = fe_cluster_start(1, env);
    *state = c;
    return c ? 0 : -1;
}

/* The identify of a resuming device (epoch NULL: none). */
static json_t *resume_identify(const char *device, const char *room, long long last_seq,
                               const char *epoch) {
    json_t *id = json_pack("{s:s, s:s, s:I}", "device_id", device, "room_id", room, "last_seq",
                           (json_int_t)last_seq);
    if (epoch)
        json_object_set_new(id, "epoch", json_string(epoch));
    return id;
}

/* Joins through node with a resume identify; *room_frame receives the room answer. */
static struct wsc *resume_join(struct fe_cluster *c, int node, const char *device, const char *room,
                               long long last_seq, const char *epoch, json_t **room_frame) {
    json_t *id = resume_identify(device, room, last_seq, epoch);
    struct wsc *ws = fe_track(c, client_join_ex(fe_port(c, node), id, NULL, room_frame));
    json_decref(id);
    assert_non_null(ws);
    return ws;
}

/* Joins normally and returns the room answer's seq and epoch (epoch: 65 bytes). */
static struct wsc *join_seq(struct fe_cluster *c, int node, const char *device, const char *room,
                            long long *seq, char *epoch) {
    json_t *id = json_pack("{s:s, s:s}", "device_id", device, "room_id", room), *rf = NULL;
    struct wsc *ws = fe_track(c, client_join_ex(fe_port(c, node), id, NULL, &rf));
    json_decref(id);
    assert_non_null(ws);
    assert_true(json_is_integer(json_object_get(rf, "seq")));
    assert_non_null(fe_str(rf, "epoch"));
    assert_null(json_object_get(rf, "recovered")); /* only for a resume */
    *seq = json_integer_value(json_object_get(rf, "seq"));
    snprintf(epoch, 65, "%s", fe_str(rf, "epoch"));
    json_decref(rf);
    return ws;
}

static void send_numbered(struct wsc *ws, const char *prefix, int from, int to) {
    for (int i = from; i < to; i++) {
        char content[32];
        snprintf(content, sizeof(content), "%s%d", prefix, i);
        fe_send_text(ws, content);
    }
}

/* Sends {"type":"text","content":"<prefix><i>","pad":"xxx..."} for i in [from, to). */
static void send_padded(struct wsc *ws, const char *prefix, int from, int to, size_t pad) {
    char *p = malloc(pad + 1);
    assert_non_null(p);
    memset(p, 'x', pad);
    p[pad] = '\0';
    for (int i = from; i < to; i++) {
        char content[32];
        snprintf(content, sizeof(content), "%s%d", prefix, i);
        assert_int_equal(fe_send_json(ws, json_pack("{s:s, s:s, s:s}", "type", "text", "content",
                                                    content, "pad", p)),
                         0);
    }
    free(p);
}

/* Returns once everything ws sent before has run in Redis: a connection's actions run in
 * order, and the query is answered after them. */
static void sent_through(struct wsc *ws) {
    json_t *info = fe_query_room(ws, FE_TIMEOUT_MS);
    assert_non_null(info);
    json_decref(info);
}

static void send_numbered_through(struct wsc *ws, const char *prefix, int from, int to) {
    send_numbered(ws, prefix, from, to);
    sent_through(ws);
}

/* The next frame is the text `content` from `from`; returns its seq. */
static long long expect_text_seq(struct wsc *ws, const char *from, const char *content) {
    json_t *m = fe_expect_relay(ws, "text", from, NULL);
    assert_non_null(m);
    if (!fe_str(m, "content") || strcmp(fe_str(m, "content"), content) != 0)
        fail_msg("expected \"%s\", got \"%s\" (seq %lld)", content, fe_str(m, "content"),
                 (long long)json_integer_value(json_object_get(m, "seq")));
    assert_null(json_object_get(m, "ack_id"));
    long long seq = json_integer_value(json_object_get(m, "seq"));
    json_decref(m);
    return seq;
}

static long long room_seq(json_t *rf) {
    return json_integer_value(json_object_get(rf, "seq"));
}

/* Messages missed (20 KB each: the node takes a while to read and send them) and sent while the
 * member resumes: some reach its node while the history is read (held, then merged), some are
 * both in the history and on their way live (sent once). */
#define MISSED 200
#define AFTER_ANSWER 100 /* sent after the room answer arrived */
#define MAX_DURING 700   /* with MISSED and AFTER_ANSWER, within the history (1000) */

/* Member 0 leaves, MISSED messages are sent, it resumes through the other node while messages
 * keep being sent, one after the other, from before its identify until after its answer: it
 * gets exactly all of them in order, with consecutive seqs, then nothing else. */
static void test_resume_across_nodes(void **state) {
    struct fe_cluster *c = *state;
    long long seq0;
    char epoch[65];
    struct wsc *alice = join_seq(c, 0, "alice", "HIST1", &seq0, epoch);
    struct wsc *bob = fe_join(c, 0, "bob", NULL, "HIST1", NULL);
    assert_non_null(bob);
    send_numbered(alice, "warm", 0, 3);
    long long last = 0;
    for (int i = 0; i < 3; i++) {
        char content[32];
        snprintf(content, sizeof(content), "warm%d", i);
        last = expect_text_seq(bob, "alice", content);
    }
    assert_int_equal(last, seq0 + 3);
    fe_close(c, bob);

    send_padded(alice, "m", 0, MISSED, 20000);
    sent_through(alice);
    /* The identify goes out; messages are sent until the answer is in, and some more. */
    struct wsc *back = fe_connect(c, 1);
    assert_non_null(back);
    assert_int_equal(fe_send_json(back, resume_identify("bob", "HIST1", last, epoch)), 0);
    json_t *rf = NULL;
    int total = MISSED, after = 0;
    int64_t deadline = fe_wall_ms() + 4 * FE_TIMEOUT_MS;
    while (after < AFTER_ANSWER) {
        assert_true(fe_wall_ms() < deadline);
        /* a slow answer stops the sending before the history would overflow */
        int sending = rf || total < MISSED + MAX_DURING;
        if (sending) {
            send_numbered(alice, "m", total, total + 1);
            total++;
        }
        if (rf) {
            after++;
            continue;
        }
        struct wsc_msg msg;
        int rc = wsc_recv(back, &msg, sending ? 1 : 100); /* about one message per ms */
        if (rc == -ETIMEDOUT)
            continue;
        assert_int_equal(rc, 0);
        json_t *j = json_loadb(msg.data, msg.len, 0, NULL);
        wsc_msg_free(&msg);
        assert_non_null(j);
        if (strcmp(fe_str(j, "type"), "room") == 0)
            rf = j;
        else {
            assert_string_equal(fe_str(j, "type"), "connection");
            json_decref(j);
        }
    }
    assert_true(json_is_true(json_object_get(rf, "recovered")));
    assert_string_equal(fe_str(rf, "epoch"), epoch);
    assert_true(room_seq(rf) >= last + MISSED && room_seq(rf) <= last + total);
    json_decref(rf);
    for (int i = 0; i < total; i++) {
        char content[32];
        snprintf(content, sizeof(content), "m%d", i);
        assert_int_equal(expect_text_seq(back, "alice", content), last + 1 + i);
    }
    /* nothing twice: the next frame is the next message */
    fe_send_text(alice, "after");
    assert_int_equal(expect_text_seq(back, "alice", "after"), last + total + 1);
    /* the sender's own messages are not replayed to it */
    fe_close(c, alice);
    struct wsc *a2 = resume_join(c, 1, "alice", "HIST1", last + total - 10, epoch, &rf);
    assert_true(json_is_true(json_object_get(rf, "recovered")));
    json_decref(rf);
    fe_send_text(back, "to-alice");
    assert_int_equal(expect_text_seq(a2, "bob", "to-alice"), last + total + 2);
}

/* Binary messages are in the history too. */
static void test_resume_binary(void **state) {
    struct fe_cluster *c = *state;
    long long seq0;
    char epoch[65];
    struct wsc *alice = join_seq(c, 0, "alice", "HISTB", &seq0, epoch);
    const unsigned char bin[] = {0, 1, 2, 0xff, '\n', '\t'};
    assert_int_equal(wsc_send(alice, WSC_OP_BINARY, bin, sizeof(bin)), 0);
    fe_send_text(alice, "t");
    sent_through(alice);
    json_t *rf = NULL;
    struct wsc *bob = resume_join(c, 1, "bob", "HISTB", seq0, epoch, &rf);
    assert_true(json_is_true(json_object_get(rf, "recovered")));
    assert_int_equal(room_seq(rf), seq0 + 2);
    json_decref(rf);
    fe_expect_binary(bob, bin, sizeof(bin));
    assert_int_equal(expect_text_seq(bob, "alice", "t"), seq0 + 2);
}

/* A stale epoch, or a last seq ahead of the room's, is not recovered: no history, live only. */
static void test_resume_stale_epoch(void **state) {
    struct fe_cluster *c = *state;
    long long seq0;
    char epoch[65];
    struct wsc *alice = join_seq(c, 0, "alice", "HIST2", &seq0, epoch);
    send_numbered_through(alice, "m", 0, 5);
    json_t *rf = NULL;
    struct wsc *bob = resume_join(c, 1, "bob", "HIST2", seq0, "not-the-epoch", &rf);
    assert_true(json_is_false(json_object_get(rf, "recovered")));
    assert_string_equal(fe_str(rf, "epoch"), epoch);
    assert_int_equal(room_seq(rf), seq0 + 5);
    json_decref(rf);
    fe_send_text(alice, "live");
    assert_int_equal(expect_text_seq(bob, "alice", "live"), seq0 + 6);
    sent_through(alice);

    struct wsc *carol = resume_join(c, 1, "carol", "HIST2", seq0 + 100, epoch, &rf);
    assert_true(json_is_false(json_object_get(rf, "recovered")));
    json_decref(rf);
    /* no epoch at all: recovered false, and every message after the answer's seq arrives */
    struct wsc *dave = resume_join(c, 0, "dave", "HIST2", 0, NULL, &rf);
    assert_true(json_is_false(json_object_get(rf, "recovered")));
    assert_int_equal(room_seq(rf), seq0 + 6);
    json_decref(rf);
    fe_send_text(alice, "live2");
    assert_int_equal(expect_text_seq(carol, "alice", "live2"), seq0 + 7);
    assert_int_equal(expect_text_seq(dave, "alice", "live2"), seq0 + 7);
}

/* A seed identify (neither field) is answered as before, plus seq and epoch. */
static void test_seed_identify_unchanged(void **state) {
    struct fe_cluster *c = *state;
    json_t *id = json_pack("{s:s}", "device_id", "seed"), *rf = NULL;
    struct wsc *ws = fe_track(c, client_join_ex(fe_port(c, 0), id, NULL, &rf));
    json_decref(id);
    assert_non_null(ws);
    assert_string_equal(fe_str(rf, "type"), "room");
    assert_string_equal(fe_str(rf, "action"), "created");
    assert_int_equal(json_integer_value(json_object_get(rf, "total_clients")), 1);
    assert_int_equal(room_seq(rf), 0);
    assert_non_null(fe_str(rf, "epoch"));
    assert_int_equal(strlen(fe_str(rf, "epoch")), 16);
    assert_null(json_object_get(rf, "recovered"));
    assert_int_equal(json_object_size(rf), 6);
    json_decref(rf);
}

/* The history holds the last RRM_HISTORY_SIZE messages: a resume from further back is a gap;
 * the list stays capped; after RRM_HISTORY_TTL_MS without a message it is gone. */
static void test_history_size_and_ttl(void **state) {
    struct fe_cluster *c = *state;
    long long seq0;
    char epoch[65];
    struct wsc *alice = join_seq(c, 0, "alice", "HIST3", &seq0, epoch);
    send_numbered_through(alice, "m", 0, 300);
    /* the last one is through: a member that joins now sees seq 300 */
    long long s;
    char e2[65];
    struct wsc *probe = join_seq(c, 1, "probe", "HIST3", &s, e2);
    assert_int_equal(s, seq0 + 300);
    fe_close(c, probe);

    redisContext *r = fe_redis_client_for(c, fe_room_key("HIST3", ""));
    assert_non_null(r);
    redisReply *len = redisCommand(r, "LLEN %s", fe_room_key("HIST3", ":history"));
    assert_non_null(len);
    /* trimmed back to 10 each time it reaches 10 + 64 */
    assert_int_equal(len->type, REDIS_REPLY_INTEGER);
    assert_true(len->integer >= 10 && len->integer < 74);
    freeReplyObject(len);

    json_t *rf = NULL;
    struct wsc *gap = resume_join(c, 1, "gap", "HIST3", seq0 + 289, epoch, &rf);
    assert_true(json_is_false(json_object_get(rf, "recovered")));
    json_decref(rf);
    struct wsc *ok = resume_join(c, 1, "ok", "HIST3", seq0 + 290, epoch, &rf);
    assert_true(json_is_true(json_object_get(rf, "recovered")));
    json_decref(rf);
    for (int i = 290; i < 300; i++) {
        char content[32];
        snprintf(content, sizeof(content), "m%d", i);
        assert_int_equal(expect_text_seq(ok, "alice", content), seq0 + 1 + i);
    }
    fe_send_text(alice, "live");
    assert_int_equal(expect_text_seq(gap, "alice", "live"), seq0 + 301);
    assert_int_equal(expect_text_seq(ok, "alice", "live"), seq0 + 301);
    sent_through(alice);

    /* the history expires 3 s after the last message (refreshed at most every 300 ms) */
    redisReply *ttl = redisCommand(r, "PTTL %s", fe_room_key("HIST3", ":history"));
    assert_non_null(ttl);
    assert_true(ttl->integer > 0 && ttl->integer <= 3300);
    freeReplyObject(ttl);
    int64_t deadline = fe_wall_ms() + 10000;
    while (fe_redis_exists(c, fe_room_key("HIST3", ":history")) == 1 && fe_wall_ms() < deadline)
        fe_poll_pause();
    assert_int_equal(fe_redis_exists(c, fe_room_key("HIST3", ":history")), 0);
    redisFree(r);
    struct wsc *late = resume_join(c, 0, "late", "HIST3", seq0 + 300, epoch, &rf);
    assert_true(json_is_false(json_object_get(rf, "recovered")));
    assert_int_equal(room_seq(rf), seq0 + 301);
    json_decref(rf);
    (void)late;
}

static long long history_pttl(redisContext *r, const char *room) {
    redisReply *ttl = redisCommand(r, "PTTL %s", fe_room_key(room, ":history"));
    assert_non_null(ttl);
    assert_int_equal(ttl->type, REDIS_REPLY_INTEGER);
    long long v = ttl->integer;
    freeReplyObject(ttl);
    return v;
}

/* PEXPIREs Redis has run (INFO commandstats). */
static long long pexpire_calls(redisContext *r) {
    redisReply *info = redisCommand(r, "INFO commandstats");
    assert_non_null(info);
    assert_int_equal(info->type, REDIS_REPLY_STRING);
    const char *p = strstr(info->str, "cmdstat_pexpire:calls=");
    long long n = p ? atoll(p + strlen("cmdstat_pexpire:calls=")) : 0;
    freeReplyObject(info);
    return n;
}

/* A room's history lives at least RRM_HISTORY_TTL_MS (3 s) after each of its messages and at
 * most 300 ms (a tenth) longer, although its TTL is refreshed with one message per 300 ms at
 * most; a history a message creates has its TTL at once. */
static void test_history_ttl_refresh(void **state) {
    struct fe_cluster *c = *state;
    long long seq0;
    char epoch[65];
    struct wsc *alice = join_seq(c, 0, "alice", "HIST6", &seq0, epoch);
    /* the room's Redis: its PEXPIREs are counted there */
    redisContext *r = fe_redis_client_for(c, fe_room_key("HIST6", ""));
    assert_non_null(r);
    enum { SLACK_MS = 50 }; /* the test's clock against Redis's, read at different moments */
    /* only sends run PEXPIRE from here on (identify and restore do too) */
    long long pexpires = pexpire_calls(r);
    int n = 0;
    int64_t start = fe_wall_ms();
    while (fe_wall_ms() < start + 1000 || n < 20) {
        int64_t before = fe_wall_ms();
        send_numbered_through(alice, "t", n, n + 1);
        n++;
        int64_t after = fe_wall_ms();
        long long pttl = history_pttl(r, "HIST6");
        assert_true(pttl > 0);
        long long expiry = after + pttl; /* at most the real expiry + the read's delay */
        if (expiry + SLACK_MS < before + 3000)
            fail_msg("message %d: the history expires %lld ms before 3 s after it", n,
                     before + 3000 - expiry);
        assert_true(expiry <= after + 3300 + SLACK_MS);
    }
    long long refreshes = pexpire_calls(r) - pexpires;
    long long most = (fe_wall_ms() - start) / 300 + 2;
    if (refreshes < 1 || refreshes > most)
        fail_msg("%lld TTL refreshes for %d messages, expected 1..%lld", refreshes, n, most);
    /* within the interval again: a history the message creates gets its TTL all the same */
    redisReply *del = redisCommand(r, "DEL %s", fe_room_key("HIST6", ":history"));
    assert_non_null(del);
    freeReplyObject(del);
    send_numbered_through(alice, "t", n, n + 1);
    assert_true(history_pttl(r, "HIST6") > 0);
    redisFree(r);
}

/* A room whose state Redis lost is a new epoch; its seq starts again; the old epoch does not
 * resume. */
static void test_epoch_after_flush(void **state) {
    struct fe_cluster *c = *state;
    long long seq0;
    char epoch1[65], epoch2[65];
    struct wsc *alice = join_seq(c, 0, "alice", "HIST4", &seq0, epoch1);
    send_numbered_through(alice, "m", 0, 5);
    fe_close_all(c);
    assert_int_equal(fe_redis_flushall(c), 0);
    long long seq1;
    alice = join_seq(c, 1, "alice", "HIST4", &seq1, epoch2);
    assert_int_equal(seq1, 0);
    assert_string_not_equal(epoch1, epoch2);
    fe_send_text(alice, "new");
    sent_through(alice);
    json_t *rf = NULL;
    struct wsc *bob = resume_join(c, 0, "bob", "HIST4", seq0 + 5, epoch1, &rf);
    assert_true(json_is_false(json_object_get(rf, "recovered")));
    assert_string_equal(fe_str(rf, "epoch"), epoch2);
    assert_int_equal(room_seq(rf), 1);
    json_decref(rf);
    fe_send_text(alice, "new2");
    assert_int_equal(expect_text_seq(bob, "alice", "new2"), 2);
}

/* The room's epoch in Redis ("" if none or on error). */
static void redis_epoch(struct fe_cluster *c, const char *room, char *out, size_t cap) {
    redisReply *e = fe_redis_command(c, "HGET %s epoch", fe_room_key(room, ""));
    snprintf(out, cap, "%s", e && e->type == REDIS_REPLY_STRING ? e->str : "");
    if (e)
        freeReplyObject(e);
}

/* Redis loses everything while members stay connected: the nodes restore them, the room is
 * recreated under a new epoch and its seq starts again, and a member that had resumed (whose
 * node skips live frames the history already gave it) receives the new numbering's messages. */
static void test_epoch_after_restore(void **state) {
    struct fe_cluster *c = *state;
    long long seq0;
    char epoch1[65], epoch2[65];
    struct wsc *alice = join_seq(c, 0, "alice", "HIST6", &seq0, epoch1);
    send_numbered_through(alice, "m", 0, 5);
    json_t *rf = NULL;
    struct wsc *bob = resume_join(c, 1, "bob", "HIST6", seq0 + 2, epoch1, &rf);
    assert_true(json_is_true(json_object_get(rf, "recovered")));
    json_decref(rf);
    assert_int_equal(expect_text_seq(bob, "alice", "m2"), seq0 + 3);
    assert_int_equal(expect_text_seq(bob, "alice", "m3"), seq0 + 4);
    assert_int_equal(expect_text_seq(bob, "alice", "m4"), seq0 + 5);

    assert_int_equal(fe_redis_flushall(c), 0);
    /* both nodes notice at their next heartbeat and write their members back */
    int64_t deadline = fe_wall_ms() + 10000;
    for (;;) {
        redisReply *n = fe_redis_command(c, "HLEN %s", fe_room_key("HIST6", ":members"));
        long long members = n && n->type == REDIS_REPLY_INTEGER ? n->integer : -1;
        if (n)
            freeReplyObject(n);
        if (members == 2 || fe_wall_ms() > deadline)
            break;
        fe_poll_pause();
    }
    redis_epoch(c, "HIST6", epoch2, sizeof(epoch2));
    assert_int_equal(strlen(epoch2), 16);
    assert_string_not_equal(epoch1, epoch2);
    /* both connected members are told that the numbering started again, once */
    struct wsc *members[] = {alice, bob};
    for (int i = 0; i < 2; i++) {
        json_t *rr = fe_expect_type(members[i], "room", FE_TIMEOUT_MS);
        assert_non_null(rr);
        assert_string_equal(fe_str(rr, "action"), "restored");
        assert_string_equal(fe_str(rr, "room_id"), "HIST6");
        assert_string_equal(fe_str(rr, "epoch"), epoch2);
        assert_int_equal(room_seq(rr), 0);
        assert_true(json_is_false(json_object_get(rr, "recovered")));
        assert_int_equal(json_integer_value(json_object_get(rr, "total_clients")) >= 1, 1);
        json_decref(rr);
        assert_int_equal(
            fe_wait_metric(fe_admin_port(c, i), "rrm_epochs_renewed_total", 1, FE_TIMEOUT_MS), 1);
    }
    fe_send_text(alice, "after-loss");
    assert_int_equal(expect_text_seq(bob, "alice", "after-loss"), 1);
    /* a resume with the old epoch is not recovered; with the new one it is */
    struct wsc *carol = resume_join(c, 0, "carol", "HIST6", seq0 + 5, epoch1, &rf);
    assert_true(json_is_false(json_object_get(rf, "recovered")));
    assert_string_equal(fe_str(rf, "epoch"), epoch2);
    json_decref(rf);
    struct wsc *dave = resume_join(c, 0, "dave", "HIST6", 0, epoch2, &rf);
    assert_true(json_is_true(json_object_get(rf, "recovered")));
    json_decref(rf);
    assert_int_equal(expect_text_seq(dave, "alice", "after-loss"), 1);
    (void)carol;
}

/* The next frame is {"type":"ack","ack_id":ack,...}; returns its seq. */
static long long expect_ack(struct wsc *ws, const char *ack) {
    json_t *a = fe_expect_type(ws, "ack", FE_TIMEOUT_MS);
    assert_non_null(a);
    assert_string_equal(fe_str(a, "ack_id"), ack);
    assert_true(json_is_integer(json_object_get(a, "seq")));
    long long seq = json_integer_value(json_object_get(a, "seq"));
    assert_int_equal(json_object_size(a), 3);
    json_decref(a);
    return seq;
}

static void send_acked(struct wsc *ws, const char *content, const char *ack) {
    assert_int_equal(fe_send_json(ws, json_pack("{s:s, s:s, s:s}", "type", "text", "content",
                                                content, "ack_id", ack)),
                     0);
}

static void test_acks(void **state) {
    struct fe_cluster *c = *state;
    long long seq0;
    char epoch[65];
    struct wsc *alice = join_seq(c, 0, "alice", "ACK1", &seq0, epoch);
    struct wsc *bob = fe_join(c, 1, "bob", NULL, "ACK1", NULL);
    assert_non_null(bob);

    send_acked(alice, "one", "m-1");
    long long s1 = expect_ack(alice, "m-1");
    assert_int_equal(s1, seq0 + 1);
    assert_int_equal(expect_text_seq(bob, "alice", "one"), s1); /* without the ack_id */

    /* the resend is answered with the first seq and not relayed again */
    send_acked(alice, "one", "m-1");
    assert_int_equal(expect_ack(alice, "m-1"), s1);
    assert_true(fe_wait_metric(fe_admin_port(c, 0), "rrm_ack_resends_total", 1, FE_TIMEOUT_MS) >=
                1);
    send_acked(alice, "two", "m-2");
    assert_int_equal(expect_ack(alice, "m-2"), s1 + 1);
    assert_int_equal(expect_text_seq(bob, "alice", "two"), s1 + 1);

    /* the same ack_id from another device is its own message */
    send_acked(bob, "bob-one", "m-1");
    assert_int_equal(expect_ack(bob, "m-1"), s1 + 2);
    assert_int_equal(expect_text_seq(alice, "bob", "bob-one"), s1 + 2);

    /* invalid ack_ids are refused, not relayed */
    const char *bad[] = {"{\"type\":\"text\",\"content\":\"x\",\"ack_id\":\"\"}",
                         "{\"type\":\"text\",\"content\":\"x\",\"ack_id\":12}",
                         "{\"type\":\"text\",\"content\":\"x\",\"ack_id\":\"a b\"}",
                         "{\"type\":\"text\",\"content\":\"x\",\"ack_id\":"
                         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(wsc_send_text(alice, bad[i]), 0);
        assert_int_equal(fe_expect_error(alice, "invalid_ack_id", FE_TIMEOUT_MS), 0);
    }
    /* clients cannot send the server's ack */
    assert_int_equal(wsc_send_text(alice, "{\"type\":\"ack\",\"ack_id\":\"m-9\",\"seq\":1}"), 0);
    assert_int_equal(fe_expect_error(alice, "reserved_type", FE_TIMEOUT_MS), 0);
    fe_send_text(alice, "three");
    assert_int_equal(expect_text_seq(bob, "alice", "three"), s1 + 3);

    /* after the window (1 s here) the same ack_id is a new message */
    int64_t deadline = fe_wall_ms() + 10000;
    while (fe_redis_exists(c, fe_room_key("ACK1", ":ack:alice/m-1")) == 1 &&
           fe_wall_ms() < deadline)
        fe_poll_pause();
    send_acked(alice, "one again", "m-1");
    assert_int_equal(expect_ack(alice, "m-1"), s1 + 4);
    assert_int_equal(expect_text_seq(bob, "alice", "one again"), s1 + 4);
}

/* History off: nothing is kept, every resume is "recovered": false. */
static void test_history_off(void **state) {
    struct fe_cluster *c = *state;
    long long seq0;
    char epoch[65];
    struct wsc *alice = join_seq(c, 0, "alice", "HIST5", &seq0, epoch);
    send_numbered_through(alice, "m", 0, 3);
    json_t *rf = NULL;
    struct wsc *bob = resume_join(c, 0, "bob", "HIST5", seq0 + 1, epoch, &rf);
    assert_true(json_is_false(json_object_get(rf, "recovered")));
    assert_int_equal(room_seq(rf), seq0 + 3);
    json_decref(rf);
    assert_int_equal(fe_redis_exists(c, fe_room_key("HIST5", ":history")), 0);
    fe_send_text(alice, "live");
    assert_int_equal(expect_text_seq(bob, "alice", "live"), seq0 + 4);
}

/* The local ports of the TCP connections process pid holds (from /proc: its socket inodes, then
 * their lines in its net/tcp). Returns how many were written to out. */
static int local_tcp_ports(pid_t pid, int *out, int cap) {
    char path[64], link[64];
    unsigned long inodes[256];
    int ni = 0, n = 0;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) && ni < 256;) {
        char fd[320];
        snprintf(fd, sizeof(fd), "%s/%s", path, e->d_name);
        ssize_t len = readlink(fd, link, sizeof(link) - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        if (sscanf(link, "socket:[%lu]", &inodes[ni]) == 1)
            ni++;
    }
    closedir(d);
    snprintf(path, sizeof(path), "/proc/%d/net/tcp", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    while (fgets(line, sizeof(line), f) && n < cap) {
        unsigned lport;
        unsigned long inode;
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %*x %*x:%*x %*x:%*x %*x %*u %*u %lu", &lport,
                   &inode) != 2)
            continue;
        for (int i = 0; i < ni; i++)
            if (inodes[i] == inode)
                out[n++] = (int)lport;
    }
    fclose(f);
    return n;
}

/* Kills the subscription link of node that carries room's channel (its pub/sub client in the
 * Redis of the room's slot); returns 0 if one was. */
static int kill_subscription_link(struct fe_cluster *c, int node, const char *room) {
    int ports[256];
    int np = local_tcp_ports(fe_node_pid(c, node), ports, 256);
    redisContext *r = fe_redis_client_for(c, fe_room_key(room, ""));
    assert_non_null(r);
    redisReply *list = redisCommand(r, "CLIENT LIST TYPE pubsub");
    assert_non_null(list);
    assert_int_equal(list->type, REDIS_REPLY_STRING);
    int killed = -1;
    for (char *l = list->str; l && *l && killed < 0;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        long long id;
        int port;
        if (sscanf(l, "id=%lld addr=127.0.0.1:%d", &id, &port) != 2)
            continue;
        for (int i = 0; i < np; i++)
            if (ports[i] == port) {
                redisReply *k = redisCommand(r, "CLIENT KILL ID %lld", id);
                assert_non_null(k);
                killed = k->type == REDIS_REPLY_INTEGER && k->integer == 1 ? 0 : -1;
                freeReplyObject(k);
                break;
            }
    }
    freeReplyObject(list);
    redisFree(r);
    return killed;
}

/* A member connected all along through its node's lost subscription: what the room published
 * before the node subscribed again comes from the history, in order, then the live messages. */
static void test_catch_up_after_lost_subscription(void **state) {
    struct fe_cluster *c = *state;
    long long seq;
    char epoch[65];
    struct wsc *alice = join_seq(c, 0, "alice", "CATCHUP", &seq, epoch);
    struct wsc *bob = join_seq(c, 1, "bob", "CATCHUP", &seq, epoch);
    fe_send_text(alice, "warm");
    long long first = expect_text_seq(bob, "alice", "warm");
    long long before = fe_metric(fe_admin_port(c, 1), "rrm_catchups_total{result=\"ok\"}");
    assert_true(before >= 0);
    /* node 1 needs at least its 100 ms reconnect delay to subscribe again; these are published
     * at once through node 0 meanwhile */
    assert_int_equal(kill_subscription_link(c, 1, "CATCHUP"), 0);
    send_numbered_through(alice, "c", 0, 30);
    for (int i = 0; i < 30; i++) {
        char content[32];
        snprintf(content, sizeof(content), "c%d", i);
        assert_int_equal(expect_text_seq(bob, "alice", content), first + 1 + i);
    }
    fe_send_text(alice, "after");
    assert_int_equal(expect_text_seq(bob, "alice", "after"), first + 31);
    assert_true(fe_wait_metric(fe_admin_port(c, 1), "rrm_catchups_total{result=\"ok\"}", before + 1,
                               FE_TIMEOUT_MS) >= before + 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resume_across_nodes, setup_big, fe_teardown),
        cmocka_unit_test_setup_teardown(test_resume_binary, setup_default, fe_teardown),
        cmocka_unit_test_setup_teardown(test_resume_stale_epoch, setup_default, fe_teardown),
        cmocka_unit_test_setup_teardown(test_seed_identify_unchanged, setup_default, fe_teardown),
        cmocka_unit_test_setup_teardown(test_epoch_after_flush, setup_default, fe_teardown),
        cmocka_unit_test_setup_teardown(test_epoch_after_restore, setup_default, fe_teardown),
        cmocka_unit_test_setup_teardown(test_history_size_and_ttl, setup_small, fe_teardown),
        cmocka_unit_test_setup_teardown(test_history_ttl_refresh, setup_small, fe_teardown),
        cmocka_unit_test_setup_teardown(test_acks, setup_small, fe_teardown),
        cmocka_unit_test_setup_teardown(test_history_off, setup_off, fe_teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_after_lost_subscription, setup_default,
                                        fe_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
