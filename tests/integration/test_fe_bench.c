/*
 * test_fe_bench.c - the real rrm-bench binary ($RRM_BENCH_BIN) against a real cluster (redis +
 * node-a + node-b): a clean run reports every delivery and exits 0; a run against frontends that
 * slow each client to 1 message/s must report the failed stage (messages still owed after the
 * drain: lost) and exit 1; the same clean run split over two worker processes gives the same
 * accounting; a bad option exits 2 with a message.
 *
 * The bench's --json document (its stdout) is parsed with jansson; its stderr goes to a separate
 * file, and both are printed when a check fails. Latency is only required to be measured, never
 * to be small (--p99-limit is set far out of reach so a loaded machine cannot fail a stage).
 */
#include "fe_harness.h"
#include "proc.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

enum {
    BENCH_TIMEOUT_MS = 60000,
    MAX_ARGV = 48,
    CLIENTS = 40,
    ROOMS = 4,
};

struct fixture {
    struct fe_cluster *c; /* NULL for the tests that need no cluster */
    char *dir;            /* private temp dir for the bench's output */
};

struct bench_run {
    int status; /* exit code, 128 + signal, or -1 */
    json_t *doc;
    char out_path[512], err_path[512];
};

static int teardown(void **state);

static int setup_fixture(void **state, int nodes, const char *const env[]) {
    struct fixture *f = calloc(1, sizeof(*f));
    *state = f;
    if (!f)
        return -1;
    f->dir = proc_tmpdir("bench");
    if (f->dir && nodes > 0)
        f->c = fe_cluster_start(nodes, env);
    if (!f->dir || (nodes > 0 && !f->c)) {
        teardown(state); /* cmocka does not tear down after a failed setup */
        *state = NULL;
        return -1;
    }
    return 0;
}

static int setup(void **state) {
    return setup_fixture(state, 2, NULL);
}

/* Every client may send 1 message per second; the bench offers 20. The node slows the senders
 * (reading paused) rather than refusing: most messages arrive long after the bench's drain. */
static int setup_rate_limited(void **state) {
    static const char *const env[] = {"RRM_MAX_MSGS_PER_SEC=1", NULL};
    return setup_fixture(state, 2, env);
}

/* every write waits 20 ms for more frames once the node sees more than 1 delivery/s */
static int setup_coalescing(void **state) {
    static const char *const env[] = {"RRM_COALESCE_ABOVE=1", "RRM_COALESCE_MS=20", NULL};
    return setup_fixture(state, 2, env);
}

static int setup_no_cluster(void **state) {
    return setup_fixture(state, 0, NULL);
}

static int teardown(void **state) {
    struct fixture *f = *state;
    int rc = 0;
    if (!f)
        return 0;
    if (f->c && fe_cluster_stop(f->c) != 0) {
        fprintf(stderr, "teardown: a frontend did not exit cleanly with status 0\n");
        rc = -1;
    }
    if (f->dir) {
        proc_rmtree(f->dir);
        free(f->dir);
    }
    free(f);
    return rc;
}

static void dump_run(const struct bench_run *r) {
    proc_dump_file_tail(r->err_path, 6000);
    proc_dump_file_tail(r->out_path, 6000);
}

/* Fails the test, after printing the bench's output, unless cond holds. */
#define EXPECT(r, cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            dump_run(r);                                                                           \
            fail_msg("%s:%d: rrm-bench run: expected %s", __FILE__, __LINE__, #cond);              \
        }                                                                                          \
    } while (0)

/*
 * Runs $RRM_BENCH_BIN with args (NULL terminated), its stdout into <dir>/<name>.json and its
 * stderr into <dir>/<name>.err, waits up to BENCH_TIMEOUT_MS (then kills it and fails) and
 * parses stdout as JSON if it is not empty.
 */
static void run_bench(const struct fixture *f, const char *name, const char *const args[],
                      struct bench_run *r) {
    const char *bin = getenv("RRM_BENCH_BIN");
    if (!bin || !*bin)
        fail_msg("RRM_BENCH_BIN is not set (run the test through ctest)");
    memset(r, 0, sizeof(*r));
    r->status = -1;
    snprintf(r->out_path, sizeof(r->out_path), "%s/%s.json", f->dir, name);
    snprintf(r->err_path, sizeof(r->err_path), "%s/%s.err", f->dir, name);

    /* sh only sends stdout to its own file, then becomes the bench */
    const char *argv[MAX_ARGV + 1];
    size_t n = 0;
    argv[n++] = "sh";
    argv[n++] = "-c";
    argv[n++] = "out=$1; shift; exec \"$@\" >\"$out\"";
    argv[n++] = "sh";
    argv[n++] = r->out_path;
    argv[n++] = bin;
    for (size_t i = 0; args[i]; i++) {
        assert_true(n < MAX_ARGV);
        argv[n++] = args[i];
    }
    argv[n] = NULL;

    int64_t t0 = proc_now_ms();
    pid_t pid = proc_spawn(argv, NULL, r->err_path);
    if (pid < 0)
        fail_msg("cannot start %s: %s", bin, strerror((int)-pid));
    int st = 0;
    int w = proc_wait_exit(pid, BENCH_TIMEOUT_MS, &st);
    if (w == -ETIMEDOUT) {
        proc_stop(pid, SIGKILL, 10000, NULL);
        dump_run(r);
        fail_msg("rrm-bench did not finish within %d ms", BENCH_TIMEOUT_MS);
    }
    if (w < 0)
        fail_msg("waiting for rrm-bench: %s", strerror(-w));
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
    fprintf(stderr, "%s: rrm-bench exited with %d after %lld ms\n", name, r->status,
            (long long)(proc_now_ms() - t0));

    json_error_t err;
    FILE *out = fopen(r->out_path, "r");
    if (out) {
        int ch = fgetc(out);
        if (ch != EOF) {
            rewind(out);
            r->doc = json_loadf(out, 0, &err);
            if (!r->doc) {
                fclose(out);
                dump_run(r);
                fail_msg("the bench's stdout is not JSON: line %d: %s", err.line, err.text);
            }
        }
        fclose(out);
    }
}

static void run_free(struct bench_run *r) {
    json_decref(r->doc);
    r->doc = NULL;
}

static json_int_t int_of(json_t *o, const char *key) {
    return json_integer_value(json_object_get(o, key));
}

static double num_of(json_t *o, const char *key) {
    return json_number_value(json_object_get(o, key));
}

/* The common arguments: both nodes, 40 clients in 4 rooms at 20 messages/s, --pids of the
 * nodes, then extra (NULL terminated). The strings live in a. */
struct bench_args {
    char url[2][64];
    char pids[64];
    const char *argv[MAX_ARGV];
};

static const char *const *bench_args(struct bench_args *a, const struct fe_cluster *c,
                                     const char *const extra[]) {
    size_t n = 0;
    snprintf(a->url[0], sizeof(a->url[0]), "ws://127.0.0.1:%d/", fe_port(c, 0));
    snprintf(a->url[1], sizeof(a->url[1]), "ws://127.0.0.1:%d/", fe_port(c, 1));
    snprintf(a->pids, sizeof(a->pids), "%ld,%ld", (long)fe_node_pid(c, 0), (long)fe_node_pid(c, 1));
    const char *const common[] = {
        "--url",   a->url[0], "--url",       a->url[1],    "--clients", "40",       "--rooms",
        "4",       "--rate",  "20",          "--duration", "1",         "--warmup", "0.5",
        "--drain", "3000",    "--p99-limit", "60000",      "--json",    "--pids",   a->pids,
    };
    for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
        a->argv[n++] = common[i];
    for (size_t i = 0; extra && extra[i]; i++) {
        assert_true(n < MAX_ARGV - 1);
        a->argv[n++] = extra[i];
    }
    a->argv[n] = NULL;
    return a->argv;
}

/* The checks shared by every clean run: everyone connected, one stage, every message delivered
 * once and in order, latency measured, both frontends sampled. */
static void expect_clean_run(const struct fe_cluster *c, struct bench_run *r) {
    EXPECT(r, r->status == 0);
    EXPECT(r, r->doc != NULL);
    json_t *doc = r->doc, *config = json_object_get(doc, "config");
    EXPECT(r, int_of(config, "clients") == CLIENTS);
    EXPECT(r, int_of(config, "rooms") == ROOMS);
    EXPECT(r, json_array_size(json_object_get(config, "urls")) == 2);
    EXPECT(r, int_of(doc, "connected") == CLIENTS);
    EXPECT(r, int_of(doc, "connect_failed") == 0);
    EXPECT(r, int_of(doc, "disconnects") == 0);
    EXPECT(r, json_is_false(json_object_get(doc, "interrupted")));
    EXPECT(r, json_object_size(json_object_get(doc, "errors")) == 0);

    json_t *stages = json_object_get(doc, "stages");
    EXPECT(r, json_array_size(stages) == 1);
    json_t *st = json_array_get(stages, 0);
    EXPECT(r, num_of(st, "rate_per_client") == 20.0);
    EXPECT(r, num_of(st, "seconds") >= 0.9);
    json_int_t sent = int_of(st, "sent"), expected = int_of(st, "expected");
    EXPECT(r, sent > 0);
    /* every room has 10 members, all connected: each message is owed to the 9 others */
    EXPECT(r, expected == sent * (CLIENTS / ROOMS - 1));
    EXPECT(r, int_of(st, "delivered") == expected);
    EXPECT(r, int_of(st, "lost") == 0);
    EXPECT(r, int_of(st, "duplicates") == 0);
    EXPECT(r, int_of(st, "reordered") == 0);
    EXPECT(r, int_of(st, "errors") == 0);
    EXPECT(r, int_of(st, "disconnects") == 0);
    EXPECT(r, json_is_true(json_object_get(st, "ok")));
    json_t *lat = json_object_get(st, "latency_ms");
    EXPECT(r, num_of(lat, "p50") > 0);
    EXPECT(r, num_of(lat, "p99") >= num_of(lat, "p50"));
    EXPECT(r, num_of(lat, "max") >= num_of(lat, "p99"));

    /* --pids: both frontends sampled around the stage */
    EXPECT(r, json_is_number(json_object_get(st, "server_cpu_us_per_delivery")));
    json_t *procs = json_object_get(doc, "processes_ready");
    EXPECT(r, json_array_size(procs) == 2);
    for (int i = 0; i < 2; i++) {
        json_t *p = json_array_get(procs, (size_t)i);
        EXPECT(r, int_of(p, "pid") == (json_int_t)fe_node_pid(c, i));
        const char *name = json_string_value(json_object_get(p, "name"));
        EXPECT(r, name && strcmp(name, "rrm-frontend") == 0);
        EXPECT(r, int_of(p, "rss_kib") > 0);
    }
}

static void test_clean_run(void **state) {
    struct fixture *f = *state;
    struct bench_args a;
    struct bench_run r;
    run_bench(f, "clean", bench_args(&a, f->c, NULL), &r);
    expect_clean_run(f->c, &r);
    run_free(&r);
}

static void test_rate_limited_run_fails(void **state) {
    struct fixture *f = *state;
    struct bench_args a;
    struct bench_run r;
    run_bench(f, "limited", bench_args(&a, f->c, NULL), &r);
    EXPECT(&r, r.status == 1);
    EXPECT(&r, r.doc != NULL);
    EXPECT(&r, int_of(r.doc, "connected") == CLIENTS);
    json_t *stages = json_object_get(r.doc, "stages");
    EXPECT(&r, json_array_size(stages) == 1);
    json_t *st = json_array_get(stages, 0);
    EXPECT(&r, json_is_false(json_object_get(st, "ok")));
    const char *why = json_string_value(json_object_get(st, "why"));
    EXPECT(&r, why && *why);
    EXPECT(&r, int_of(st, "lost") > 0);    /* the slowed messages were still owed to the room */
    EXPECT(&r, int_of(st, "errors") == 0); /* slowed, not refused */
    EXPECT(&r, json_object_size(json_object_get(r.doc, "errors")) == 0);
    run_free(&r);
}

static void test_two_workers(void **state) {
    struct fixture *f = *state;
    static const char *const extra[] = {"--workers", "2", NULL};
    struct bench_args a;
    struct bench_run r;
    run_bench(f, "workers", bench_args(&a, f->c, extra), &r);
    expect_clean_run(f->c, &r);
    run_free(&r);
}

static void test_coalesced_writes_keep_every_message_in_order(void **state) {
    struct fixture *f = *state;
    int admin = fe_admin_port(f->c, 0);
    static const char fast[] = "rrm_delivery_delay_seconds_bucket{le=\"0.002\"}";
    long long frames0 = fe_metric(admin, "rrm_messages_out_total");
    long long writes0 = fe_metric(admin, "rrm_client_writes_total");
    long long delayed0 = fe_metric(admin, "rrm_delivery_delay_seconds_count");
    long long fast0 = fe_metric(admin, fast);
    struct bench_args a;
    struct bench_run r;
    run_bench(f, "coalesced", bench_args(&a, f->c, NULL), &r);
    expect_clean_run(f->c, &r);
    run_free(&r);
    long long frames = fe_metric(admin, "rrm_messages_out_total") - frames0;
    long long writes = fe_metric(admin, "rrm_client_writes_total") - writes0;
    long long delayed = fe_metric(admin, "rrm_delivery_delay_seconds_count") - delayed0;
    long long quick = fe_metric(admin, fast) - fast0;
    print_message("node 0: %lld frames in %lld writes, %lld of them written within 2 ms\n", frames,
                  writes, quick);
    assert_true(frames > 0);
    /* a client is sent ~180 frames/s: 20 ms windows gather several per write */
    assert_true(writes * 2 < frames);
    /* every frame's wait is measured, and the wait shows: most waited for their window */
    assert_int_equal(delayed, frames);
    assert_true(quick * 2 < frames);
}

static void test_bad_option_exits_2(void **state) {
    struct fixture *f = *state;
    static const char *const args[] = {"--clients", "0", NULL};
    struct bench_run r;
    run_bench(f, "badopt", args, &r);
    EXPECT(&r, r.status == 2);
    EXPECT(&r, r.doc == NULL); /* nothing on stdout */
    FILE *err = fopen(r.err_path, "r");
    assert_non_null(err);
    char line[512] = "";
    char *got = fgets(line, sizeof(line), err);
    fclose(err);
    EXPECT(&r, got != NULL);
    EXPECT(&r, strstr(line, "--clients") != NULL);
    run_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clean_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limited_run_fails, setup_rate_limited, teardown),
        cmocka_unit_test_setup_teardown(test_two_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalesced_writes_keep_every_message_in_order,
                                        setup_coalescing, teardown),
        cmocka_unit_test_setup_teardown(test_bad_option_exits_2, setup_no_cluster, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
