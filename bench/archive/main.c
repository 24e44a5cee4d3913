/* rrm-archive-bench: measures how fast rrm-archiver drains the event streams into MariaDB.
 *
 * It starts a private redis-server and mariadbd (the test support helpers; MariaDB is switched to
 * its default durability, innodb_flush_log_at_trx_commit=1, unless --relaxed), fills the shard
 * streams rrm:events:{N} (each event in its room's shard, as the frontends do) with a realistic mix
 * of events (sessions that connect, join a room, send text, JSON and binary messages, query the
 * room and disconnect), starts the real rrm-archiver binary and waits until the group has
 * acknowledged everything. Throughput and batch latency come from the archiver's own per-batch
 * debug records, so what is measured is exactly the code that runs in production. */
#include "config.h"
#include "event.h"
#include "keys.h"
#include "mariadb_server.h"
#include "proc.h"
#include "redis_server.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <mysql.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#ifndef RRM_ARCHIVER_DEFAULT_BIN
#define RRM_ARCHIVER_DEFAULT_BIN "rrm-archiver"
#endif

struct bench_config {
    long events;
    long batch_size;
    long flush_ms;
    long pool_size;
    long writers;
    long relaxed;
    long shards;
    char archiver[1024];
};

#define OPT(name, type, field, def, min, max, help)                                                \
    { name, type, offsetof(struct bench_config, field), def, min, max, help }

static const struct cfg_option options[] = {
    OPT("events", CFG_INT, events, "200000", 1, 100000000, "events to archive"),
    OPT("batch-size", CFG_INT, batch_size, "2000", 1, 100000, "RRM_BATCH_SIZE of the archiver"),
    OPT("flush-ms", CFG_INT, flush_ms, "200", 1, 60000, "RRM_FLUSH_MS of the archiver"),
    OPT("pool-size", CFG_INT, pool_size, "5", 1, 100, "RRM_MYSQL_POOL_SIZE of the archiver"),
    OPT("writers", CFG_INT, writers, "2", 1, 32, "RRM_WRITERS of the archiver"),
    OPT("shards", CFG_INT, shards, "16", 1, KEYS_EVENT_SHARDS_MAX,
        "RRM_EVENT_SHARDS: the streams the events are spread over, by room"),
    OPT("relaxed", CFG_INT, relaxed, "0", 0, 1,
        "1: keep innodb_flush_log_at_trx_commit=2 of the test server (no fsync per commit)"),
    OPT("archiver", CFG_STR, archiver, RRM_ARCHIVER_DEFAULT_BIN, 1, 1024,
        "rrm-archiver binary to measure"),
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* What was put into the stream, to check the archive afterwards. */
struct produced {
    long events, messages, queries, connections, room_events, rooms;
};

static unsigned shards = 16;

static int pipeline_xadd(redisContext *rc, const struct rrm_event *ev, long *queued) {
    struct event_numbers nums;
    /* the room's shard, as the frontends choose it (events without a room by device) */
    const struct event_str *by = ev->room.p ? &ev->room : &ev->device;
    char key[KEYS_MAX];
    keys_events(key, sizeof(key), keys_event_shard(by->p, by->len, shards));
    const char *argv[3 + 2 * EVENT_MAX_FIELDS] = {"XADD", key, "*"};
    size_t lens[3 + 2 * EVENT_MAX_FIELDS] = {4, strlen(key), 1};
    size_t n = 3 + event_encode_argv(ev, &nums, argv + 3, lens + 3);
    if (redisAppendCommandArgv(rc, (int)n, argv, lens) != REDIS_OK)
        return -1;
    if (++*queued < 2000)
        return 0;
    for (; *queued > 0; (*queued)--) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK || !r || r->type != REDIS_REPLY_STRING) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        freeReplyObject(r);
    }
    return 0;
}

#define EVS(p) ((struct event_str){(p), strlen(p)})

/* Sessions of one device: connect, room, ~40 messages (mostly text, some JSON and binary), a query
 * now and then, disconnect. Stops at exactly cfg->events events. */
static int fill_stream(redisContext *rc, long total, struct produced *out) {
    memset(out, 0, sizeof(*out));
    long queued = 0, session = 0;
    int64_t ts = 1732550000000LL;
    unsigned char binary[256];
    for (int i = 0; i < 256; i++)
        binary[i] = (unsigned char)(i * 7 + 3);
    long rooms = total / 2000 + 1, devices = total / 200 + 1;
    while (out->events < total) {
        char conn[48], device[32], room[24], identity[48];
        snprintf(conn, sizeof(conn), "bench-node-%ld#%ld", session % 4, session);
        snprintf(device, sizeof(device), "device-%ld", session % devices);
        snprintf(room, sizeof(room), "R%05ld", session % rooms);
        snprintf(identity, sizeof(identity), "user %ld \xf0\x9f\x93\xb1", session % devices);
        char node[24];
        snprintf(node, sizeof(node), "bench-node-%ld", session % 4);
        int64_t connected = ts;
        struct rrm_event ev;
        long left = total - out->events;
        int steps = left < 44 ? (int)left : 44;
        for (int step = 0; step < steps; step++) {
            memset(&ev, 0, sizeof(ev));
            ev.ts = ts++;
            ev.node = EVS(node);
            ev.conn = EVS(conn);
            ev.device = EVS(device);
            char body[200];
            if (step == 0) {
                ev.type = EV_CONNECT;
                ev.identity = EVS(identity);
                ev.ip = EVS("10.20.30.40");
                ev.room = EVS(room); /* as the frontend's identify records it */
                out->connections++;
            } else if (step == 1) {
                int created = session < rooms; /* the first session in each room creates it */
                if (created && out->events + 1 < total) {
                    struct rrm_event rc_ev = ev;
                    rc_ev.type = EV_ROOM_CREATED;
                    rc_ev.room = EVS(room);
                    if (pipeline_xadd(rc, &rc_ev, &queued))
                        return -1;
                    out->events++;
                    out->rooms++;
                }
                ev.type = EV_ROOM;
                ev.room = EVS(room);
                ev.action = EVS(created ? "created" : "joined");
                out->room_events++;
            } else if (step == steps - 1 && steps == 44) {
                ev.type = EV_DISCONNECT;
                ev.room = EVS(room);
                ev.reason = EVS("client closed");
                ev.connected_at = connected;
            } else if (step % 10 == 5) {
                ev.type = EV_QUERY;
                ev.room = EVS(room);
                ev.total = 3;
                out->queries++;
            } else {
                ev.type = EV_MESSAGE;
                ev.room = EVS(room);
                ev.seq = out->messages + 1;
                if (step % 13 == 0) {
                    ev.kind = EVS("binary");
                    ev.body = (struct event_str){(const char *)binary, sizeof(binary)};
                } else if (step % 7 == 0) {
                    int n = snprintf(body, sizeof(body),
                                     "{\"type\":\"position\",\"x\":%d,\"y\":%d,\"heading\":%d}",
                                     step * 3, step * 5, step % 360);
                    ev.kind = EVS("json");
                    ev.body = (struct event_str){body, (size_t)n};
                } else {
                    int n = snprintf(body, sizeof(body),
                                     "{\"type\":\"text\",\"content\":\"message %ld from %s: "
                                     "hello everyone in the room, \xe4\xbd\xa0\xe5\xa5\xbd\"}",
                                     out->messages, device);
                    ev.kind = EVS("text");
                    ev.body = (struct event_str){body, (size_t)n};
                }
                out->messages++;
            }
            if (pipeline_xadd(rc, &ev, &queued))
                return -1;
            out->events++;
        }
        session++;
    }
    while (queued > 0) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK || !r)
            return -1;
        freeReplyObject(r);
        queued--;
    }
    return 0;
}

/* Pending + lag of the group on every shard; -1 when unknown. */
static long long shard_backlog(redisContext *rc, const char *key);

static long long backlog(redisContext *rc) {
    long long sum = 0;
    for (unsigned s = 0; s < shards; s++) {
        char key[KEYS_MAX];
        keys_events(key, sizeof(key), s);
        long long n = shard_backlog(rc, key);
        if (n < 0)
            return -1;
        sum += n;
    }
    return sum;
}

static long long shard_backlog(redisContext *rc, const char *key) {
    redisReply *r = redisCommand(rc, "XINFO GROUPS %s", key);
    long long pending = -1, lag = -1;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *g = r->element[i];
        for (size_t k = 0; k + 1 < g->elements; k += 2) {
            redisReply *v = g->element[k + 1];
            if (strcmp(g->element[k]->str, "pending") == 0)
                pending = v->integer;
            else if (strcmp(g->element[k]->str, "lag") == 0 && v->type == REDIS_REPLY_INTEGER)
                lag = v->integer;
        }
    }
    if (r)
        freeReplyObject(r);
    return (pending < 0 || lag < 0) ? -1 : pending + lag;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, size_t n, double p) {
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

struct log_summary {
    double *batch_ms;
    size_t batches, cap;
    long long entries, rows, first_ts, last_ts;
    double first_ms;
    json_t *final_rows;
};

/* Reads the archiver's JSON lines: per-batch records and the final status. */
static int read_log(const char *path, struct log_summary *s) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[8192];
    memset(s, 0, sizeof(*s));
    while (fgets(line, sizeof(line), f)) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j)
            continue;
        const char *msg = json_string_value(json_object_get(j, "msg"));
        long long ts = json_integer_value(json_object_get(j, "ts"));
        if (msg && strcmp(msg, "batch") == 0) {
            if (s->batches == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 1024;
                double *p = realloc(s->batch_ms, s->cap * sizeof(*p));
                if (!p) {
                    json_decref(j);
                    break;
                }
                s->batch_ms = p;
            }
            double ms = json_number_value(json_object_get(j, "ms"));
            if (s->batches == 0) {
                s->first_ts = ts;
                s->first_ms = ms;
            }
            s->batch_ms[s->batches++] = ms;
            s->entries += json_integer_value(json_object_get(j, "entries"));
            s->rows += json_integer_value(json_object_get(j, "rows"));
            s->last_ts = ts;
        } else if (msg && strcmp(msg, "status") == 0 && json_is_true(json_object_get(j, "final"))) {
            s->final_rows = json_incref(json_object_get(j, "rows"));
        }
        json_decref(j);
    }
    fclose(f);
    return 0;
}

static long long count_rows(MYSQL *m, const char *table) {
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
    if (mysql_query(m, sql))
        return -1;
    MYSQL_RES *res = mysql_store_result(m);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    long long n = row && row[0] ? strtoll(row[0], NULL, 10) : -1;
    if (res)
        mysql_free_result(res);
    return n;
}

static int run(const struct bench_config *cfg) {
    int rc = 1;
    struct redis_server *redis = redis_server_start();
    struct mariadb_server *db = mariadb_server_start();
    char *dir = proc_tmpdir("archive-bench");
    redisContext *rcx = redis ? redis_server_client(redis) : NULL;
    MYSQL *my = NULL;
    pid_t pid = 0;
    struct log_summary s = {0};
    char log[1200] = "";
    if (!redis || !db || !dir || !rcx) {
        fprintf(stderr, "bench: could not start redis-server and mariadbd\n");
        goto out;
    }
    snprintf(log, sizeof(log), "%s/archiver.log", dir);
    if (!cfg->relaxed &&
        mariadb_server_exec(db, "SET GLOBAL innodb_flush_log_at_trx_commit = 1; "
                                "SET GLOBAL innodb_buffer_pool_size = 134217728") != 0)
        goto out;

    struct produced p;
    int64_t t0 = proc_now_ms();
    shards = (unsigned)cfg->shards;
    if (fill_stream(rcx, cfg->events, &p)) {
        fprintf(stderr, "bench: filling the stream failed\n");
        goto out;
    }
    int64_t fill_ms = proc_now_ms() - t0;

    char redis_port[40], mysql_port[40], batch[40], flush[40], pool[40], writers[40], nshards[40];
    snprintf(nshards, sizeof(nshards), "RRM_EVENT_SHARDS=%ld", cfg->shards);
    snprintf(redis_port, sizeof(redis_port), "RRM_REDIS_PORT=%d", redis_server_port(redis));
    snprintf(mysql_port, sizeof(mysql_port), "RRM_MYSQL_PORT=%d", mariadb_server_port(db));
    snprintf(batch, sizeof(batch), "RRM_BATCH_SIZE=%ld", cfg->batch_size);
    snprintf(flush, sizeof(flush), "RRM_FLUSH_MS=%ld", cfg->flush_ms);
    snprintf(pool, sizeof(pool), "RRM_MYSQL_POOL_SIZE=%ld", cfg->pool_size);
    snprintf(writers, sizeof(writers), "RRM_WRITERS=%ld", cfg->writers);
    const char *env[] = {"RRM_REDIS_HOST=127.0.0.1",
                         redis_port,
                         "RRM_MYSQL_HOST=127.0.0.1",
                         mysql_port,
                         "RRM_MYSQL_USER=" MARIADB_SERVER_USER,
                         "RRM_MYSQL_PASSWORD=" MARIADB_SERVER_PASSWORD,
                         "RRM_MYSQL_DATABASE=rrm_bench",
                         "RRM_CONSUMER=bench",
                         "RRM_LOG_LEVEL=debug",
                         "RRM_STATUS_INTERVAL_MS=3600000",
                         "RRM_METRICS_PORT=0",
                         batch,
                         flush,
                         pool,
                         writers,
                         nshards,
                         NULL};
    const char *argv[] = {cfg->archiver, NULL};
    int64_t t1 = proc_now_ms();
    pid = proc_spawn(argv, env, log);
    if (pid <= 0) {
        fprintf(stderr, "bench: cannot start %s\n", cfg->archiver);
        goto out;
    }
    /* Until the group exists the backlog is unknown (-1); then it falls to 0. */
    for (;;) {
        long long left = backlog(rcx);
        if (left == 0)
            break;
        if (proc_check_exited(pid, NULL) != 1) {
            fprintf(stderr, "bench: the archiver exited early\n");
            proc_dump_file_tail(log, 4000);
            pid = 0;
            goto out;
        }
        poll(NULL, 0, 5);
    }
    int64_t wall_ms = proc_now_ms() - t1;
    int status = 0;
    proc_stop(pid, SIGTERM, 20000, &status);
    pid = 0;

    if (read_log(log, &s) || s.batches == 0) {
        fprintf(stderr, "bench: no batch records in %s\n", log);
        goto out;
    }
    qsort(s.batch_ms, s.batches, sizeof(double), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < s.batches; i++)
        sum += s.batch_ms[i];
    /* From the start of the first batch to the end of the last one, by the archiver's clock. */
    double active_ms = (double)(s.last_ts - s.first_ts) + s.first_ms;
    if (active_ms <= 0)
        active_ms = 1;

    my = mariadb_server_client(db, "rrm_bench");
    long long messages = my ? count_rows(my, "messages") : -1;
    long long queries = my ? count_rows(my, "room_queries") : -1;
    long long conns = my ? count_rows(my, "connections") : -1;
    long long room_events = my ? count_rows(my, "room_events") : -1;
    long long rooms = my ? count_rows(my, "rooms") : -1;
    int exact = messages == p.messages && queries == p.queries && conns == p.connections &&
                room_events == p.room_events && rooms == p.rooms;

    printf("events            %ld (messages %ld, queries %ld, connections %ld, rooms %ld)\n",
           p.events, p.messages, p.queries, p.connections, p.rooms);
    printf("stream filled in  %" PRId64 " ms\n", fill_ms);
    printf("durability        innodb_flush_log_at_trx_commit=%d\n", cfg->relaxed ? 2 : 1);
    printf("batch size        %ld, writers %ld\n", cfg->batch_size, cfg->writers);
    printf("batches           %zu\n", s.batches);
    printf("archived          %lld events, %lld rows in %.0f ms (wall clock from start: %" PRId64
           " ms)\n",
           s.entries, s.rows, active_ms, wall_ms);
    printf("throughput        %.0f events/s, %.0f rows/s\n", (double)s.entries * 1000.0 / active_ms,
           (double)s.rows * 1000.0 / active_ms);
    printf("batch latency ms  avg %.2f  p50 %.2f  p95 %.2f  p99 %.2f  max %.2f\n",
           sum / (double)s.batches, percentile(s.batch_ms, s.batches, 0.50),
           percentile(s.batch_ms, s.batches, 0.95), percentile(s.batch_ms, s.batches, 0.99),
           s.batch_ms[s.batches - 1]);
    char *rows = s.final_rows ? json_dumps(s.final_rows, JSON_COMPACT) : NULL;
    printf("rows per table    %s\n", rows ? rows : "?");
    free(rows);
    printf("check             %s (messages %lld, room_queries %lld, connections %lld, "
           "room_events %lld, rooms %lld)\n",
           exact ? "every event archived exactly once" : "MISMATCH", messages, queries, conns,
           room_events, rooms);
    rc = exact ? 0 : 1;

out:
    if (pid > 0)
        proc_stop(pid, SIGKILL, 5000, NULL);
    free(s.batch_ms);
    json_decref(s.final_rows);
    if (my)
        mysql_close(my);
    if (rcx)
        redisFree(rcx);
    redis_server_destroy(redis);
    mariadb_server_destroy(db);
    if (dir)
        proc_rmtree(dir);
    free(dir);
    mysql_library_end();
    return rc;
}

int main(int argc, char **argv) {
    struct bench_config cfg;
    char err[512];
    memset(&cfg, 0, sizeof(cfg));
    int rc = cfg_load(options, N_OPTIONS, &cfg, argc, argv, err, sizeof(err));
    if (rc == CFG_HELP) {
        cfg_usage(stdout, "rrm-archive-bench",
                  "Fills a private stream with events and times rrm-archiver draining it into a "
                  "private MariaDB.",
                  options, N_OPTIONS);
        return 0;
    }
    if (rc == CFG_VERSION) {
        printf("rrm-archive-bench %s\nMariaDB Connector/C %s\n", RRM_VERSION,
               mysql_get_client_info());
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "rrm-archive-bench: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    return run(&cfg);
}
