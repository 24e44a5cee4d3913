/* k8s/grafana-dashboard.json names only metrics that exist: every metric name of every PromQL
 * expression of the dashboard (panels' targets, and the templating queries) is a series or a
 * family (a histogram's _bucket, _sum and _count count) of the live /metrics of a running
 * rrm-frontend or rrm-archiver, both started here on one Redis (and the archiver's MariaDB). The
 * check itself is shown to fail on a dashboard that names a metric that does not exist. */
#include "archiver_harness.h"
#include "fe_harness.h"

#include "proc.h"
#include "promql.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define MAX_NAMES 4096

/* The metric names of one or more /metrics texts: every sample's name and every family's. */
struct exposed {
    char *names[MAX_NAMES];
    int n;
};

static int exposed_has(const struct exposed *e, const char *name, size_t len) {
    for (int i = 0; i < e->n; i++)
        if (strlen(e->names[i]) == len && memcmp(e->names[i], name, len) == 0)
            return 1;
    return 0;
}

static void exposed_add(struct exposed *e, const char *name, size_t len) {
    if (len == 0 || exposed_has(e, name, len))
        return;
    assert_true(e->n < MAX_NAMES);
    e->names[e->n] = strndup(name, len);
    assert_non_null(e->names[e->n]);
    e->n++;
}

static void exposed_read(struct exposed *e, const char *text) {
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t line = eol ? (size_t)(eol - p) : strlen(p);
        if (strncmp(p, "# TYPE ", 7) == 0) {
            const char *name = p + 7;
            exposed_add(e, name, strcspn(name, " \n"));
        } else if (*p != '#') {
            size_t len = strcspn(p, "{ \n");
            if (len < line)
                exposed_add(e, p, len);
        }
        p = eol ? eol + 1 : NULL;
    }
}

static void exposed_free(struct exposed *e) {
    for (int i = 0; i < e->n; i++)
        free(e->names[i]);
    e->n = 0;
}

/* What a dashboard check found. */
struct check {
    const struct exposed *exposed;
    int names;          /* metric names in the expressions, with repeats */
    char missing[2048]; /* the names not exposed, each followed by a space */
    int nmissing;
    int unreadable; /* expressions promql_metric_names could not read */
};

static void check_name(void *ctx, const char *name, size_t len) {
    struct check *c = ctx;
    c->names++;
    if (exposed_has(c->exposed, name, len))
        return;
    c->nmissing++;
    size_t used = strlen(c->missing);
    snprintf(c->missing + used, sizeof(c->missing) - used, "%.*s ", (int)len, name);
}

static void check_expr(struct check *c, const char *expr) {
    if (promql_metric_names(expr, check_name, c)) {
        fprintf(stderr, "unreadable expression: %s\n", expr);
        c->unreadable++;
    }
}

/* A templating query: label_values(metric, label) and label_values(label) name at most the
 * metric; query_result(expr) an expression; anything else (a data source type) none. */
static void check_template_query(struct check *c, const char *q) {
    if (strncmp(q, "label_values(", 13) == 0) {
        const char *comma = strchr(q, ',');
        if (comma) {
            char *metric = strndup(q + 13, (size_t)(comma - q - 13));
            assert_non_null(metric);
            check_expr(c, metric);
            free(metric);
        }
    } else if (strncmp(q, "query_result(", 13) == 0) {
        char *expr = strdup(q + 13);
        assert_non_null(expr);
        char *close = strrchr(expr, ')');
        if (close)
            *close = '\0';
        check_expr(c, expr);
        free(expr);
    }
}

/* Every "expr" anywhere in the dashboard, and every templating variable's query. */
static void walk(struct check *c, json_t *v, int in_templating) {
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach(v, key, child) {
            if (strcmp(key, "expr") == 0 && json_is_string(child))
                check_expr(c, json_string_value(child));
            else if (in_templating && strcmp(key, "query") == 0 && json_is_string(child))
                check_template_query(c, json_string_value(child));
            else
                walk(c, child, in_templating || strcmp(key, "templating") == 0);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child) walk(c, child, in_templating);
    }
}

static void check_dashboard(struct check *c, const struct exposed *e, json_t *dashboard) {
    memset(c, 0, sizeof(*c));
    c->exposed = e;
    walk(c, dashboard, 0);
}

static char *get_text(int port, const char *path) {
    int status = 0;
    char *body = NULL;
    assert_int_equal(proc_http_get(port, path, 10000, &status, &body), 0);
    assert_int_equal(status, 200);
    return body;
}

static void test_dashboard_names_live_metrics(void **state) {
    struct arch_harness *h = *state;
    ah_fresh(h, "arch_dashboard");
    struct ah_archiver a;
    ah_start(h, &a, "dashboard-1", NULL);
    struct fe_cluster *fe = fe_cluster_start_on(ah_redis_server(h), 1, NULL);
    assert_non_null(fe);
    /* Some traffic, so that both programs have seen what the dashboard shows. */
    struct wsc *ws = fe_join(fe, 0, "dash-1", NULL, "dash-room", NULL);
    assert_non_null(ws);
    ah_wait_at_least(h, 1, AH_WAIT_MS, "SELECT COUNT(*) FROM devices");

    struct exposed e = {.n = 0};
    char *fe_text = get_text(fe_admin_port(fe, 0), "/metrics");
    char *arch_text = NULL;
    assert_int_equal(ah_http_get(&a, "/metrics", &arch_text), 200);
    /* The per-shard gauges appear with the archiver's first lag check. */
    int64_t deadline = proc_now_ms() + AH_WAIT_MS;
    while (!strstr(arch_text, "\nrrm_archiver_stream_lag{shard=")) {
        assert_true(proc_remaining_ms(deadline) > 0);
        free(arch_text);
        ah_sleep_ms(100);
        assert_int_equal(ah_http_get(&a, "/metrics", &arch_text), 200);
    }
    exposed_read(&e, fe_text);
    exposed_read(&e, arch_text);
    assert_true(exposed_has(&e, "rrm_open_connections", 20));
    assert_true(exposed_has(&e, "rrm_archiver_stream_lag", 23));

    char path[1024];
    const char *src = getenv("RRM_SOURCE_DIR");
    assert_non_null(src);
    snprintf(path, sizeof(path), "%s/k8s/grafana-dashboard.json", src);
    json_error_t jerr;
    json_t *dashboard = json_load_file(path, 0, &jerr);
    if (!dashboard)
        fail_msg("%s:%d: %s", path, jerr.line, jerr.text);

    struct check c;
    check_dashboard(&c, &e, dashboard);
    printf("dashboard: %d metric names in its expressions, %d exposed names\n", c.names, e.n);
    assert_int_equal(c.unreadable, 0);
    assert_true(c.names >= 20);
    if (c.nmissing)
        fail_msg("k8s/grafana-dashboard.json names %d metrics that neither rrm-frontend nor "
                 "rrm-archiver exposes: %s",
                 c.nmissing, c.missing);

    /* The same check on a copy with one more target that names a metric nobody has fails, and
     * names it; so does a templating query. */
    json_t *broken = json_deep_copy(dashboard);
    json_t *panels = json_object_get(broken, "panels");
    size_t i;
    json_t *panel;
    json_array_foreach(panels, i, panel) {
        json_t *targets = json_object_get(panel, "targets");
        if (json_is_array(targets)) {
            json_array_append_new(targets,
                                  json_pack("{s:s, s:s}", "refId", "Z", "expr",
                                            "sum by (le) (rate(rrm_no_such_metric_bucket[5m]))"));
            break;
        }
    }
    json_array_append_new(json_object_get(json_object_get(broken, "templating"), "list"),
                          json_pack("{s:s, s:s}", "name", "bogus", "query",
                                    "label_values(rrm_no_such_info, version)"));
    check_dashboard(&c, &e, broken);
    assert_int_equal(c.nmissing, 2);
    assert_non_null(strstr(c.missing, "rrm_no_such_metric_bucket "));
    assert_non_null(strstr(c.missing, "rrm_no_such_info "));
    json_decref(broken);

    json_decref(dashboard);
    free(fe_text);
    free(arch_text);
    exposed_free(&e);
    fe_close(fe, ws);
    assert_int_equal(fe_cluster_stop(fe), 0);
    int status = ah_stop(&a, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dashboard_names_live_metrics),
    };
    return cmocka_run_group_tests(tests, ah_setup, ah_teardown);
}
