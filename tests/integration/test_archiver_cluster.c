/* rrm-archiver against a real Redis Cluster of 3 masters and 3 replicas (RRM_REDIS_CLUSTER=1):
 * events appended to all 16 shards, which live on every master, are archived exactly once and the
 * group is made on each shard's master; an archiver SIGKILLed in a large backlog and started again
 * still archives everything once; a master owning shards SIGKILLed under load (with entries
 * delivered and not acknowledged, the archiver's own and a dead consumer's) is replaced by its
 * replica and the archiving of its shards resumes within 15 s, every event once; a shard's slot
 * moved to another master mid-run is followed (ASK, MOVED), every event once. The tests run in
 * order on one cluster (the failover last). */
#include "archiver_harness.h"

#include "event.h"
#include "keys.h"
#include "proc.h"
#include "redis_cluster.h"
#include "slots.h"

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

#define SHARDS 16
#define ROOMS 64
#define RESUME_LIMIT_MS 15000
#define MAX_EVENTS 40000
#define MAX_NODES 8

struct state {
    struct arch_harness *h;
    struct redis_cluster *rc;
    redisContext *conn[MAX_NODES]; /* by node number, opened when needed */
    int slot_port[SHARDS];         /* the master of each shard's slot as last seen, 0: unknown */
    char (*ids)[48];               /* the event id of each event written, by seq */
    int nevents;                   /* the highest seq written (some may be skipped) */
    int written;                   /* events written */
    struct ah_archiver arch[4];    /* started by the current test (killed by its teardown) */
    int nstarted;
};

static struct state st;

static int node_of_port(int port) {
    for (int i = 0; i < redis_cluster_nodes(st.rc); i++)
        if (redis_cluster_port(st.rc, i) == port)
            return i;
    fail_msg("no node on port %d", port);
    return -1;
}

static redisContext *conn(int port) {
    int i = node_of_port(port);
    if (!st.conn[i])
        st.conn[i] = redis_cluster_client(st.rc, port);
    return st.conn[i];
}

static void conn_drop(int port) {
    int i = node_of_port(port);
    if (st.conn[i])
        redisFree(st.conn[i]);
    st.conn[i] = NULL;
}

static void shard_key(char *buf, size_t cap, unsigned shard) {
    assert_true(keys_events(buf, cap, shard) > 0);
}

static int shard_slot(unsigned shard) {
    char key[KEYS_MAX];
    shard_key(key, sizeof(key), shard);
    return (int)slots_of_key(key, strlen(key));
}

/* The master of shard's slot now (polls while no live master claims it, e.g. during failover). */
static int shard_master(unsigned shard) {
    int64_t deadline = proc_now_ms() + 30000;
    for (;;) {
        int port = redis_cluster_port_of_slot(st.rc, shard_slot(shard));
        if (port > 0)
            return port;
        if (proc_remaining_ms(deadline) <= 0)
            fail_msg("shard %u: no master for its slot (%d)", shard, port);
        ah_sleep_ms(50);
    }
}

/* A command on shard's stream, sent to its master, following MOVED and ASK and waiting out a
 * master that is gone (until its replica is promoted). Caller frees the reply. */
static redisReply *shard_cmd(unsigned shard, int argc, const char **argv, const size_t *lens) {
    int64_t deadline = proc_now_ms() + 30000;
    int ask = 0;
    while (proc_remaining_ms(deadline) > 0) {
        if (!st.slot_port[shard])
            st.slot_port[shard] = shard_master(shard);
        int port = ask ? ask : st.slot_port[shard];
        redisContext *c = conn(port);
        redisReply *r = NULL;
        if (c && ask) {
            r = redisCommand(c, "ASKING");
            if (r)
                freeReplyObject(r);
        }
        r = c ? redisCommandArgv(c, argc, argv, lens) : NULL;
        ask = 0;
        if (!r) {
            conn_drop(port);
            st.slot_port[shard] = 0;
            ah_sleep_ms(50);
            continue;
        }
        struct slots_redirect rd;
        if (r->type == REDIS_REPLY_ERROR && slots_parse_redirect(r->str, r->len, &rd) == 0) {
            if (rd.kind == SLOTS_MOVED)
                st.slot_port[shard] = (int)rd.port;
            else
                ask = (int)rd.port;
            freeReplyObject(r);
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR &&
            (strncmp(r->str, "CLUSTERDOWN", 11) == 0 || strncmp(r->str, "TRYAGAIN", 8) == 0)) {
            freeReplyObject(r);
            ah_sleep_ms(50);
            continue;
        }
        return r;
    }
    fail_msg("shard %u: %s did not get through", shard, argv[0]);
    return NULL;
}

/* Appends message events numbered first.. (from 1: a room's messages count from 1; room "R<k %
 * ROOMS>", seq = number) to their rooms' shards and records the event id of each. Only shards for
 * which pick(shard) is 1 when pick is given; returns how many were written. */
/* The XADD of message event number i (room "R<i % ROOMS>", seq = i) to its room's shard. */
struct xadd {
    unsigned shard;
    char room[16], device[24], body[96], key[KEYS_MAX];
    struct rrm_event ev;
    struct event_numbers nums;
    const char *argv[3 + 2 * EVENT_MAX_FIELDS];
    size_t lens[3 + 2 * EVENT_MAX_FIELDS];
    int argc;
};

static void xadd_of(struct xadd *x, int i) {
    assert_true(i > 0 && i < MAX_EVENTS);
    memset(x, 0, sizeof(*x));
    snprintf(x->room, sizeof(x->room), "R%d", i % ROOMS);
    x->shard = keys_event_shard(x->room, strlen(x->room), SHARDS);
    snprintf(x->device, sizeof(x->device), "dev-%d", i % 97);
    int len =
        snprintf(x->body, sizeof(x->body), "{\"type\":\"text\",\"content\":\"message %d\"}", i);
    struct rrm_event *ev = &x->ev;
    ev->type = EV_MESSAGE;
    ev->ts = 1732550000000LL + i;
    ev->node = (struct event_str){"node-t", 6};
    ev->conn = (struct event_str){"node-t#1", 8};
    ev->device = (struct event_str){x->device, strlen(x->device)};
    ev->room = (struct event_str){x->room, strlen(x->room)};
    ev->kind = (struct event_str){"text", 4};
    ev->body = (struct event_str){x->body, (size_t)len};
    ev->seq = i;
    shard_key(x->key, sizeof(x->key), x->shard);
    x->argv[0] = "XADD";
    x->argv[1] = x->key;
    x->argv[2] = "*";
    x->lens[0] = 4;
    x->lens[1] = strlen(x->key);
    x->lens[2] = 1;
    x->argc = 3 + (int)event_encode_argv(ev, &x->nums, x->argv + 3, x->lens + 3);
}

/* Records the entry id of event i, written to shard. */
static void written(int i, unsigned shard, const char *id) {
    snprintf(st.ids[i], sizeof(st.ids[i]), "%u/%s", shard, id);
    if (i > st.nevents)
        st.nevents = i;
    st.written++;
}

/* Appends message events numbered first.. (from 1: a room's messages count from 1; room
 * "R<k % ROOMS>", seq = number) to their rooms' shards and records the event id of each. Only
 * shards for which pick(shard) is 1 when pick is given; returns how many were written. */
static int write_events(int first, int count, int (*pick)(unsigned)) {
    int n = 0;
    for (int i = first; i < first + count; i++) {
        struct xadd x;
        xadd_of(&x, i);
        if (pick && !pick(x.shard))
            continue;
        redisReply *r = shard_cmd(x.shard, x.argc, x.argv, x.lens);
        if (r->type != REDIS_REPLY_STRING)
            fail_msg("XADD %s: %s", x.key, r->type == REDIS_REPLY_ERROR ? r->str : "?");
        written(i, x.shard, r->str);
        freeReplyObject(r);
        n++;
    }
    return n;
}

/* Appends the events first.. of shard's rooms among first..first+count-1 and, in the same
 * MULTI/EXEC on its master, reads every undelivered entry of the shard as consumer `who` of the
 * group (who never archives them: they stay pending for it). Returns how many it then holds. */
static long long write_pending_for(unsigned shard, int first, int count, const char *who) {
    redisContext *c = conn(shard_master(shard));
    assert_non_null(c);
    assert_int_equal(redisAppendCommand(c, "MULTI"), REDIS_OK);
    int seqs[256], n = 0;
    for (int i = first; i < first + count; i++) {
        struct xadd x;
        xadd_of(&x, i);
        if (x.shard != shard)
            continue;
        assert_true(n < 256);
        seqs[n++] = i;
        assert_int_equal(redisAppendCommandArgv(c, x.argc, x.argv, x.lens), REDIS_OK);
    }
    char key[KEYS_MAX];
    shard_key(key, sizeof(key), shard);
    assert_int_equal(redisAppendCommand(c, "XREADGROUP GROUP %s %s COUNT 100000 STREAMS %s >",
                                        AH_GROUP, who, key),
                     REDIS_OK);
    assert_int_equal(redisAppendCommand(c, "EXEC"), REDIS_OK);
    redisReply *r = NULL;
    for (int k = 0; k < n + 3; k++) {
        if (r)
            freeReplyObject(r);
        assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
        assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    }
    /* EXEC: n entry ids, then the read */
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, (size_t)n + 1);
    for (int k = 0; k < n; k++)
        written(seqs[k], shard, r->element[k]->str);
    redisReply *read = r->element[n];
    long long held = read->type == REDIS_REPLY_ARRAY && read->elements == 1
                         ? (long long)read->element[0]->element[1]->elements
                         : 0;
    freeReplyObject(r);
    return held;
}

/* Sums the group's pending and lag over the shards, each asked of its master; -1 for both while
 * some shard has no group. */
static void group_state(long long *pending, long long *lag) {
    *pending = *lag = 0;
    for (unsigned s = 0; s < SHARDS; s++) {
        char key[KEYS_MAX];
        shard_key(key, sizeof(key), s);
        const char *argv[] = {"XINFO", "GROUPS", key};
        redisReply *r = shard_cmd(s, 3, argv, NULL);
        int found = 0;
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            redisReply *g = r->element[i];
            int ours = 0;
            long long p = -1, l = -1;
            for (size_t k = 0; k + 1 < g->elements; k += 2) {
                const char *name = g->element[k]->str;
                redisReply *v = g->element[k + 1];
                if (strcmp(name, "name") == 0)
                    ours = strcmp(v->str, AH_GROUP) == 0;
                else if (strcmp(name, "pending") == 0)
                    p = v->integer;
                else if (strcmp(name, "lag") == 0)
                    l = v->type == REDIS_REPLY_INTEGER ? v->integer : -1;
            }
            if (ours) {
                found = 1;
                *pending += p;
                *lag = (*lag < 0 || l < 0) ? -1 : *lag + l;
            }
        }
        freeReplyObject(r);
        if (!found) {
            *pending = *lag = -1;
            return;
        }
    }
}

/* The group's pending entries on the victim's shards, asked of their master (-1 on error). */
static int victim_shard[SHARDS];
static long long victim_pending(void) {
    long long sum = 0;
    for (unsigned s = 0; s < SHARDS; s++) {
        if (!victim_shard[s])
            continue;
        char key[KEYS_MAX];
        shard_key(key, sizeof(key), s);
        const char *argv[] = {"XPENDING", key, AH_GROUP};
        redisReply *r = shard_cmd(s, 3, argv, NULL);
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
            r->element[0]->type == REDIS_REPLY_INTEGER)
            sum += r->element[0]->integer;
        else
            sum = -1;
        freeReplyObject(r);
        if (sum < 0)
            return -1;
    }
    return sum;
}

static void wait_drained(int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    long long pending = -1, lag = -1;
    while (proc_remaining_ms(deadline) > 0) {
        group_state(&pending, &lag);
        if (pending == 0 && lag == 0)
            return;
        ah_sleep_ms(50);
    }
    ah_dump_logs(st.h);
    fail_msg("group not drained: pending %lld lag %lld", pending, lag);
}

/* Per shard: events written, entries in its stream, rows archived (on stderr). */
static void print_shards(void) {
    for (unsigned s = 0; s < SHARDS; s++) {
        char key[KEYS_MAX], prefix[16], sql[160];
        shard_key(key, sizeof(key), s);
        int len = snprintf(prefix, sizeof(prefix), "%u/", s), written = 0;
        for (int i = 1; i <= st.nevents; i++)
            written += strncmp(st.ids[i], prefix, (size_t)len) == 0;
        const char *argv[] = {"XLEN", key};
        redisReply *r = shard_cmd(s, 2, argv, NULL);
        snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM messages WHERE event_id LIKE '%u/%%'", s);
        fprintf(stderr, "shard %2u on %d: written %d, XLEN %lld, archived %lld\n", s,
                shard_master(s), written, r->type == REDIS_REPLY_INTEGER ? r->integer : -1,
                ah_int_q(st.h, sql));
        freeReplyObject(r);
    }
}

/* Every event written is in messages exactly once, with the event id of its entry. */
static void expect_exactly_once(void) {
    int64_t deadline = proc_now_ms() + 120000;
    while (ah_int_q(st.h, "SELECT COUNT(*) FROM messages") != st.written &&
           proc_remaining_ms(deadline) > 0)
        ah_sleep_ms(50);
    if (ah_int_q(st.h, "SELECT COUNT(*) FROM messages") != st.written)
        print_shards();
    ah_wait_int(st.h, st.written, 1000, "SELECT COUNT(*) FROM messages");
    MYSQL_RES *res = ah_query(st.h, "SELECT seq, event_id FROM messages", 0, NULL);
    assert_non_null(res);
    char *seen = calloc((size_t)st.nevents + 1, 1);
    assert_non_null(seen);
    MYSQL_ROW row;
    int rows = 0;
    while ((row = mysql_fetch_row(res))) {
        long seq = strtol(row[0], NULL, 10);
        assert_in_range(seq, 1, st.nevents);
        if (seen[seq]++)
            fail_msg("event %ld archived twice", seq);
        if (!st.ids[seq][0])
            fail_msg("event %ld archived, never written", seq);
        if (strcmp(row[1], st.ids[seq]) != 0)
            fail_msg("event %ld archived as %s, written as %s", seq, row[1], st.ids[seq]);
        rows++;
    }
    mysql_free_result(res);
    free(seen);
    assert_int_equal(rows, st.written);
    wait_drained(30000);
}

/* The archiver's environment for the cluster: every node a seed, a replica first (it answers
 * CLUSTER SLOTS, and MOVED to every command on a key). */
static struct ah_archiver *start(const char *name, const char *batch) {
    static char port[40], nodes[512], batch_env[40];
    int masters[MAX_NODES], seed = redis_cluster_port(st.rc, 0);
    int nm = redis_cluster_master_ports(st.rc, masters, MAX_NODES);
    for (int i = redis_cluster_nodes(st.rc) - 1; i >= 0; i--) {
        int p = redis_cluster_port(st.rc, i), master = 0;
        for (int k = 0; k < nm && k < MAX_NODES; k++)
            master |= masters[k] == p;
        if (!master && redis_cluster_pid(st.rc, p) > 0)
            seed = p;
    }
    snprintf(port, sizeof(port), "RRM_REDIS_PORT=%d", seed);
    int at = snprintf(nodes, sizeof(nodes), "RRM_REDIS_NODES=");
    for (int i = 0; i < redis_cluster_nodes(st.rc); i++)
        at += snprintf(nodes + at, sizeof(nodes) - (size_t)at, "%s127.0.0.1:%d", i > 0 ? "," : "",
                       redis_cluster_port(st.rc, i));
    snprintf(batch_env, sizeof(batch_env), "RRM_BATCH_SIZE=%s", batch ? batch : "500");
    const char *extra[] = {port, nodes, "RRM_REDIS_CLUSTER=1", batch_env, NULL};
    assert_true(st.nstarted < 4);
    struct ah_archiver *a = &st.arch[st.nstarted++];
    ah_start(st.h, a, name, extra);
    return a;
}

static int setup(void **state) {
    if (ah_setup(state))
        return -1;
    st.h = *state;
    st.rc = redis_cluster_start(3, 1);
    st.ids = calloc(MAX_EVENTS, sizeof(*st.ids));
    return st.rc && st.ids ? 0 : -1;
}

static int teardown(void **state) {
    for (int i = 0; i < MAX_NODES; i++)
        if (st.conn[i])
            redisFree(st.conn[i]);
    redis_cluster_stop(st.rc);
    free(st.ids);
    return ah_teardown(state);
}

/* Each test: an empty cluster and its own database. */
static void fresh(const char *db) {
    ah_fresh(st.h, db);
    int masters[MAX_NODES];
    int n = redis_cluster_master_ports(st.rc, masters, MAX_NODES);
    assert_true(n >= 3);
    for (int i = 0; i < n && i < MAX_NODES; i++) {
        redisContext *c = conn(masters[i]);
        assert_non_null(c);
        redisReply *r = redisCommand(c, "FLUSHALL");
        assert_non_null(r);
        freeReplyObject(r);
    }
    memset(st.slot_port, 0, sizeof(st.slot_port));
    memset(st.ids, 0, MAX_EVENTS * sizeof(*st.ids));
    st.nevents = st.written = 0;
}

static int kill_leftovers(void **state) {
    (void)state;
    for (int i = 0; i < st.nstarted; i++)
        ah_stop(&st.arch[i], SIGKILL);
    st.nstarted = 0;
    return 0;
}

/* The group exists on shard's stream on the master that owns it. */
static void expect_group_on_master(unsigned shard) {
    char key[KEYS_MAX];
    shard_key(key, sizeof(key), shard);
    redisContext *c = conn(shard_master(shard));
    assert_non_null(c);
    redisReply *r = redisCommand(c, "XINFO GROUPS %s", key);
    assert_non_null(r);
    int found = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        for (size_t k = 0; k + 1 < r->element[i]->elements; k += 2)
            if (strcmp(r->element[i]->element[k]->str, "name") == 0 &&
                strcmp(r->element[i]->element[k + 1]->str, AH_GROUP) == 0)
                found = 1;
    if (!found)
        fail_msg("no group on %s at its master", key);
    freeReplyObject(r);
}

static void test_every_shard_once(void **state) {
    (void)state;
    fresh("arch_cluster_shards");
    /* The rooms cover every shard, and the shards every master. */
    int masters[MAX_NODES], nm = 0;
    int covered[SHARDS] = {0};
    for (int k = 0; k < ROOMS; k++) {
        char room[16];
        snprintf(room, sizeof(room), "R%d", k);
        covered[keys_event_shard(room, strlen(room), SHARDS)] = 1;
    }
    for (unsigned s = 0; s < SHARDS; s++) {
        assert_true(covered[s]);
        int port = shard_master(s), known = 0;
        for (int i = 0; i < nm; i++)
            known |= masters[i] == port;
        if (!known)
            masters[nm++] = port;
    }
    assert_int_equal(nm, 3);

    write_events(1, 1600, NULL);
    /* A message with seq 0 cannot be archived: it goes to rrm:events:dead, on that key's
     * master (a pipelined MULTI/EXEC), and is acknowledged on its shard's. */
    unsigned bad_shard = keys_event_shard("R1", 2, SHARDS);
    char key[KEYS_MAX];
    shard_key(key, sizeof(key), bad_shard);
    const char *bad[] = {"XADD", key,   "*",    "v",    "1",    "type", "message",
                         "ts",   "1",   "node", "n-t",  "room", "R1",   "device",
                         "d-t",  "seq", "0",    "kind", "text", "body", "x"};
    redisReply *r = shard_cmd(bad_shard, 21, bad, NULL);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    struct ah_archiver *a = start("arch-c1", NULL);
    expect_exactly_once();
    const char *xlen[] = {"XLEN", KEYS_DEAD_LETTER};
    int dead_slot = (int)slots_of_key(KEYS_DEAD_LETTER, strlen(KEYS_DEAD_LETTER));
    redisContext *dc = conn(redis_cluster_port_of_slot(st.rc, dead_slot));
    assert_non_null(dc);
    r = redisCommandArgv(dc, 2, xlen, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    for (unsigned s = 0; s < SHARDS; s++)
        expect_group_on_master(s);
    /* More while it runs: still once. */
    write_events(1601, 400, NULL);
    expect_exactly_once();
    assert_int_equal(WEXITSTATUS(ah_stop(a, SIGTERM)), 0);
    kill_leftovers(NULL);
}

static void test_sigkill_in_backlog(void **state) {
    (void)state;
    fresh("arch_cluster_kill");
    write_events(1, 20000, NULL);
    struct ah_archiver *a = start("arch-c2", "200");
    ah_wait_at_least(st.h, 3000, AH_WAIT_MS, "SELECT COUNT(*) FROM messages");
    ah_stop(a, SIGKILL);
    long long at_kill = ah_int_q(st.h, "SELECT COUNT(*) FROM messages");
    assert_true(at_kill < 20000);
    write_events(20001, 1000, NULL);
    start("arch-c2", "200");
    expect_exactly_once();
    kill_leftovers(NULL);
}

/* The shards of the master that is to be killed: victim_shard. */
static int on_victim(unsigned shard) {
    return victim_shard[shard];
}
static int off_victim(unsigned shard) {
    return !on_victim(shard);
}

static void test_slot_moved(void **state) {
    (void)state;
    fresh("arch_cluster_move");
    write_events(1, 10000, NULL);
    start("arch-c3", "100");
    ah_wait_at_least(st.h, 500, AH_WAIT_MS, "SELECT COUNT(*) FROM messages");
    /* Shard 5's slot to another master while the backlog is being read. */
    unsigned shard = 5;
    int from = shard_master(shard), to = 0;
    int masters[MAX_NODES];
    int n = redis_cluster_master_ports(st.rc, masters, MAX_NODES);
    for (int i = 0; i < n && !to; i++)
        if (masters[i] != from)
            to = masters[i];
    assert_int_equal(redis_cluster_move_slot(st.rc, shard_slot(shard), to), 0);
    assert_true(ah_int_q(st.h, "SELECT COUNT(*) FROM messages") < 10000); /* mid-run */
    assert_int_equal(shard_master(shard), to);
    write_events(10001, 2000, NULL);
    expect_exactly_once();
    expect_group_on_master(shard);
    kill_leftovers(NULL);
}

static void test_master_failover(void **state) {
    (void)state;
    fresh("arch_cluster_failover");
    int victim_port = shard_master(0);
    for (unsigned s = 0; s < SHARDS; s++)
        victim_shard[s] = shard_master(s) == victim_port;
    write_events(1, 6000, NULL);
    start("arch-c4", "200");
    ah_wait_at_least(st.h, 500, AH_WAIT_MS, "SELECT COUNT(*) FROM messages");
    /* Entries delivered and not acknowledged when the master dies: those of a consumer that died
     * with them (taken over by the archiver on the promoted replica), besides whatever the
     * archiver holds itself at that moment. */
    unsigned first_victim = 0;
    while (!victim_shard[first_victim])
        first_victim++;
    long long ghost = write_pending_for(first_victim, 6001, 200, "arch-ghost");
    assert_true(ghost > 0);
    /* What the victim acknowledged is on its replica before it dies (replication is
     * asynchronous: an entry it never passed on is lost with it, which no archiver can help). */
    redisReply *r = redisCommand(conn(victim_port), "WAIT 1 5000");
    assert_non_null(r);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    /* Entries delivered, not yet acknowledged (replicated with the rest: the archiver reads them
     * again as its own after it reconnects; a lost XACK has them written again, idempotently). */
    long long pending_at_kill = victim_pending();
    int64_t killed = proc_now_ms();
    assert_int_equal(redis_cluster_kill_master(st.rc, victim_port), 0);
    conn_drop(victim_port);
    /* Load on the other masters meanwhile. */
    write_events(6201, 2000, off_victim);
    int promoted = redis_cluster_wait_failover(st.rc, victim_port, 15000);
    assert_true(promoted > 0);
    fprintf(stderr,
            "failover: %lld entries pending on the victim's shards at the kill, %lld on "
            "the promoted replica\n",
            pending_at_kill, victim_pending());
    /* One new event on each of the victim's shards: archived within the limit after the kill. */
    int first = st.nevents + 1;
    int marks = write_events(first, ROOMS, on_victim);
    assert_true(marks > 0);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM messages WHERE seq >= %d", first);
    int64_t limit = killed + RESUME_LIMIT_MS;
    long long got = -1;
    while (proc_now_ms() < limit && (got = ah_int_q(st.h, sql)) != marks)
        ah_sleep_ms(50);
    int64_t resumed = proc_now_ms() - killed;
    fprintf(stderr,
            "failover: new master %d; victim's shards archived again %lld ms after the kill\n",
            promoted, (long long)resumed);
    if (got != marks) {
        ah_dump_logs(st.h);
        fail_msg("the victim's shards were not archived again within %d ms (%lld of %d)",
                 RESUME_LIMIT_MS, got, marks);
    }
    write_events(st.nevents + 1, 2000, NULL);
    expect_exactly_once();
    kill_leftovers(NULL);
}

/* A seed list that does not parse stops the archiver at start: exit code 2, naming the variable. */
static void test_bad_seed_list(void **state) {
    (void)state;
    fresh("arch_cluster_bad");
    const char *extra[] = {"RRM_REDIS_CLUSTER=1", "RRM_REDIS_NODES=127.0.0.1:7000,nonsense", NULL};
    assert_true(st.nstarted < 4);
    struct ah_archiver *a = &st.arch[st.nstarted++];
    ah_start(st.h, a, "arch-bad", extra);
    int status = -1;
    assert_int_equal(proc_wait_exit(a->pid, 10000, &status), 0);
    a->pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_int_equal(ah_log_count(a, "RRM_REDIS_NODES"), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_bad_seed_list, kill_leftovers),
        cmocka_unit_test_teardown(test_every_shard_once, kill_leftovers),
        cmocka_unit_test_teardown(test_sigkill_in_backlog, kill_leftovers),
        cmocka_unit_test_teardown(test_slot_moved, kill_leftovers),
        cmocka_unit_test_teardown(test_master_failover, kill_leftovers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
