/*
 * test_fe_auth.c - authentication with JSON Web Tokens end to end (README "Authentication"):
 * the three token sources, every kind of refusal (missing, expired, not yet valid, bad signature,
 * wrong algorithm both ways, alg none, another device, rooms outside the claims, auto_room false,
 * a last room the claims no longer allow), the identity claim, refresh before expiry, the close
 * at expiry, key rotation on SIGHUP, and the refresh frame with authentication off.
 *
 * Three clusters: one node with RRM_JWT_SECRET, one with RRM_JWT_PUBLIC_KEY (RSA keys made with
 * the openssl CLI in a temp dir), and one without authentication. Tokens are made here with
 * libjwt. RRM_JWT_LEEWAY_S=0 so that expiry tests wait seconds, not half a minute.
 */
#include "fe_harness.h"
#include "proc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <jwt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS
#define SECRET "test-secret-for-hs256-0123456789"

static char *dir;               /* temp dir of the keys */
static char *rsa1, *rsa2, *ec1; /* private keys (PEM) */
static char *rsa1_pub, *rsa2_pub, *ec1_pub;
static char pub_path[512]; /* RRM_JWT_PUBLIC_KEY of the key cluster */

/* ---- keys and tokens ---- */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

/* Makes <dir>/<name>.pem and <name>.pub.pem with the openssl CLI. */
static int make_key(const char *name, const char *genpkey_args, char **priv, char **pub) {
    char cmd[2048], p1[512], p2[512];
    snprintf(p1, sizeof(p1), "%s/%s.pem", dir, name);
    snprintf(p2, sizeof(p2), "%s/%s.pub.pem", dir, name);
    snprintf(cmd, sizeof(cmd),
             "openssl genpkey %s -out %s 2>/dev/null && openssl pkey -in %s -pubout -out %s",
             genpkey_args, p1, p1, p2);
    if (system(cmd) != 0)
        return -1;
    *priv = slurp(p1);
    *pub = slurp(p2);
    return *priv && *pub ? 0 : -1;
}

static void write_pub(const char *a, const char *b, const char *c) {
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.new", pub_path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(a, f);
    if (b)
        fputs(b, f);
    if (c)
        fputs(c, f);
    fclose(f);
    assert_int_equal(rename(tmp, pub_path), 0); /* whole file at once, as a Secret update is */
}

/* A token for sub signed with alg and key: exp in exp_in seconds from now, iat now, and the
 * members of the JSON object extra (may be NULL). Caller frees. */
static char *mint_key(jwt_alg_t alg, const char *key, const char *sub, long exp_in,
                      const char *extra) {
    jwt_t *jwt = NULL;
    long now = (long)time(NULL);
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", sub), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "iat", now), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "exp", now + exp_in), 0);
    if (extra)
        assert_int_equal(jwt_add_grants_json(jwt, extra), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    char *t = jwt_encode_str(jwt);
    assert_non_null(t);
    jwt_free(jwt);
    return t;
}

static char *mint(const char *sub, long exp_in, const char *extra) {
    return mint_key(JWT_ALG_HS256, SECRET, sub, exp_in, extra);
}

/* ---- clients ---- */

static void send_identify(struct wsc *ws, const char *device, const char *room, const char *token,
                          const char *identity) {
    json_t *id = json_pack("{s:s}", "device_id", device);
    if (room)
        json_object_set_new(id, "room_id", json_string(room));
    if (token)
        json_object_set_new(id, "token", json_string(token));
    if (identity)
        json_object_set_new(id, "identity", json_string(identity));
    assert_int_equal(fe_send_json(ws, id), 0);
}

/* Connects (path and extra headers optional), identifies and expects the two answers; the room
 * frame's room_id goes to room_out and its action to action_out (may be NULL). */
static struct wsc *join_via(struct fe_cluster *c, const char *path, const char *const hdrs[],
                            const char *device, const char *room, const char *token,
                            const char *identity, char *room_out, char *action_out) {
    struct wsc *ws =
        fe_track(c, wsc_connect_ex("127.0.0.1", fe_port(c, 0), path ? path : "/", hdrs, T));
    assert_non_null(ws);
    send_identify(ws, device, room, token, identity);
    json_t *conn = fe_expect_type(ws, "connection", T);
    assert_non_null(conn);
    assert_string_equal(fe_str(conn, "device_id"), device);
    json_decref(conn);
    json_t *r = fe_expect_type(ws, "room", T);
    assert_non_null(r);
    if (room)
        assert_string_equal(fe_str(r, "room_id"), room);
    if (room_out)
        snprintf(room_out, FE_ROOM_CAP, "%s", fe_str(r, "room_id"));
    if (action_out)
        snprintf(action_out, 16, "%s", fe_str(r, "action"));
    json_decref(r);
    return ws;
}

static struct wsc *join(struct fe_cluster *c, const char *device, const char *room,
                        const char *token) {
    return join_via(c, NULL, NULL, device, room, token, NULL, NULL, NULL);
}

/* Identifies with token and expects error code then close code. */
static void refused_via(struct fe_cluster *c, const char *path, const char *const hdrs[],
                        const char *device, const char *room, const char *token, const char *code,
                        int close_code) {
    struct wsc *ws =
        fe_track(c, wsc_connect_ex("127.0.0.1", fe_port(c, 0), path ? path : "/", hdrs, T));
    assert_non_null(ws);
    send_identify(ws, device, room, token, NULL);
    assert_int_equal(fe_expect_error(ws, code, T), 0);
    assert_int_equal(fe_expect_close(ws, T), close_code);
    fe_close(c, ws);
}

static void refused(struct fe_cluster *c, const char *device, const char *room, const char *token,
                    const char *code, int close_code) {
    refused_via(c, NULL, NULL, device, room, token, code, close_code);
}

static long long failures(struct fe_cluster *c, const char *reason) {
    char series[128];
    snprintf(series, sizeof(series), "rrm_auth_failures_total{reason=\"%s\"}", reason);
    return fe_metric(fe_admin_port(c, 0), series);
}

/* The connection is still served: a query_room is answered. */
static void still_open(struct wsc *ws) {
    json_t *info = fe_query_room(ws, T);
    assert_non_null(info);
    json_decref(info);
}

/* ---- cluster with a secret ---- */

static int secret_setup(void **state) {
    static const char *const env[] = {"RRM_JWT_SECRET=" SECRET, "RRM_JWT_LEEWAY_S=0",
                                      "RRM_MAX_MSGS_PER_SEC=1000", NULL};
    struct fe_cluster *c = fe_cluster_start(1, env);
    *state = c;
    return c ? 0 : -1;
}

static int group_teardown(void **state) {
    return fe_cluster_stop(*state);
}

static int close_clients(void **state) {
    fe_close_all(*state);
    return 0;
}

static void test_token_in_identify(void **state) {
    struct fe_cluster *c = *state;
    char *t = mint("auth-ident-1", 300, NULL);
    struct wsc *ws = join(c, "auth-ident-1", "auth-room-1", t);
    still_open(ws);
    /* the same identify without its token is refused, and the first connection stays */
    refused(c, "auth-ident-1", "auth-room-1", NULL, "unauthorized", 4401);
    still_open(ws);
    free(t);
}

static void test_token_in_header(void **state) {
    struct fe_cluster *c = *state;
    char *t = mint("auth-header-1", 300, NULL);
    char hdr[1024];
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", t);
    const char *const hdrs[] = {hdr, NULL};
    struct wsc *ws =
        join_via(c, NULL, hdrs, "auth-header-1", "auth-room-1", NULL, NULL, NULL, NULL);
    still_open(ws);
    /* the header's token is the device's own: another device_id is refused */
    refused_via(c, NULL, hdrs, "auth-header-2", "auth-room-1", NULL, "unauthorized", 4401);
    free(t);
}

static void test_token_in_url(void **state) {
    struct fe_cluster *c = *state;
    char *t = mint("auth-url-1", 300, NULL);
    /* URL-encoded: every '.' as %2E, which the server decodes */
    char path[1200] = "/?x=1&token=";
    for (const char *p = t; *p; p++) {
        if (*p == '.')
            strcat(path, "%2E");
        else
            strncat(path, p, 1);
    }
    strcat(path, "&y=2");
    struct wsc *ws = join_via(c, path, NULL, "auth-url-1", "auth-room-1", NULL, NULL, NULL, NULL);
    still_open(ws);
    /* the identify's own token wins over the URL's */
    char *other = mint("auth-url-other", 300, NULL);
    refused_via(c, path, NULL, "auth-url-1", "auth-room-1", other, "unauthorized", 4401);
    free(other);
    free(t);
}

static void test_missing_and_malformed(void **state) {
    struct fe_cluster *c = *state;
    long long before = failures(c, "missing");
    refused(c, "auth-missing-1", "auth-room-1", NULL, "unauthorized", 4401);
    assert_true(failures(c, "missing") >= before + 1);
    before = failures(c, "malformed");
    refused(c, "auth-missing-1", NULL, "not-a-token", "unauthorized", 4401);
    assert_true(failures(c, "malformed") >= before + 1);
    /* a token that is not a string */
    struct wsc *ws = fe_connect(c, 0);
    assert_non_null(ws);
    assert_int_equal(wsc_send_text(ws, "{\"device_id\":\"auth-missing-1\",\"token\":42}"), 0);
    assert_int_equal(fe_expect_error(ws, "unauthorized", T), 0);
    assert_int_equal(fe_expect_close(ws, T), 4401);
    /* longer than 8192 bytes */
    char *huge = malloc(9001);
    memset(huge, 'a', 9000);
    huge[9000] = '\0';
    before = failures(c, "too_long");
    refused(c, "auth-missing-1", NULL, huge, "unauthorized", 4401);
    assert_true(failures(c, "too_long") >= before + 1);
    free(huge);
}

static void test_expired_and_not_yet_valid(void **state) {
    struct fe_cluster *c = *state;
    char *t = mint("auth-time-1", -5, NULL);
    long long before = failures(c, "expired");
    refused(c, "auth-time-1", NULL, t, "unauthorized", 4401);
    assert_true(failures(c, "expired") >= before + 1);
    free(t);
    char extra[64];
    snprintf(extra, sizeof(extra), "{\"nbf\":%ld}", (long)time(NULL) + 120);
    t = mint("auth-time-1", 300, extra);
    before = failures(c, "not_yet_valid");
    refused(c, "auth-time-1", NULL, t, "unauthorized", 4401);
    assert_true(failures(c, "not_yet_valid") >= before + 1);
    free(t);
    /* no exp at all */
    jwt_t *jwt = NULL;
    jwt_new(&jwt);
    jwt_add_grant(jwt, "sub", "auth-time-1");
    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET));
    t = jwt_encode_str(jwt);
    jwt_free(jwt);
    refused(c, "auth-time-1", NULL, t, "unauthorized", 4401);
    free(t);
}

static void test_bad_signature_and_algorithms(void **state) {
    struct fe_cluster *c = *state;
    char *t = mint_key(JWT_ALG_HS256, "another-secret", "auth-sig-1", 300, NULL);
    long long before = failures(c, "bad_signature");
    refused(c, "auth-sig-1", NULL, t, "unauthorized", 4401);
    assert_true(failures(c, "bad_signature") >= before + 1);
    free(t);
    /* an RS256 token where only a secret is configured */
    t = mint_key(JWT_ALG_RS256, rsa1, "auth-sig-1", 300, NULL);
    before = failures(c, "algorithm");
    refused(c, "auth-sig-1", NULL, t, "unauthorized", 4401);
    assert_true(failures(c, "algorithm") >= before + 1);
    free(t);
    /* alg none, as libjwt writes it (no signature) */
    jwt_t *jwt = NULL;
    jwt_new(&jwt);
    jwt_add_grant(jwt, "sub", "auth-sig-1");
    jwt_add_grant_int(jwt, "exp", (long)time(NULL) + 300);
    t = jwt_encode_str(jwt);
    jwt_free(jwt);
    assert_non_null(strstr(t, "."));
    refused(c, "auth-sig-1", NULL, t, "unauthorized", 4401);
    assert_true(failures(c, "algorithm") >= before + 2);
    free(t);
    /* HS512 with the right secret is fine */
    t = mint_key(JWT_ALG_HS512, SECRET, "auth-sig-1", 300, NULL);
    join(c, "auth-sig-1", NULL, t);
    free(t);
}

static void test_other_device(void **state) {
    struct fe_cluster *c = *state;
    char *t = mint("auth-dev-1", 300, NULL);
    long long before = failures(c, "other_device");
    struct wsc *ws = fe_connect(c, 0);
    send_identify(ws, "auth-dev-2", NULL, t, NULL);
    json_t *e = fe_expect_type(ws, "error", T);
    assert_non_null(e);
    assert_string_equal(fe_str(e, "code"), "unauthorized");
    assert_non_null(strstr(fe_str(e, "message"), "another device"));
    json_decref(e);
    assert_int_equal(fe_expect_close(ws, T), 4401);
    assert_true(failures(c, "other_device") >= before + 1);
    free(t);
}

static void test_room_claims(void **state) {
    struct fe_cluster *c = *state;
    char *t = mint("auth-rooms-1", 300, "{\"rooms\":[\"team-*\",\"lobby\"]}");
    struct wsc *ws = join(c, "auth-rooms-1", "team-red", t);
    fe_close(c, ws);
    ws = join(c, "auth-rooms-1", "team-", t);
    fe_close(c, ws);
    ws = join(c, "auth-rooms-1", "lobby", t);
    fe_close(c, ws);
    long long before = failures(c, "forbidden_room");
    refused(c, "auth-rooms-1", "team", t, "forbidden", 4403);
    refused(c, "auth-rooms-1", "lobby2", t, "forbidden", 4403);
    refused(c, "auth-rooms-1", "other-room", t, "forbidden", 4403);
    assert_true(failures(c, "forbidden_room") >= before + 3);
    free(t);
}

static void test_auto_room_false(void **state) {
    struct fe_cluster *c = *state;
    char *t = mint("auth-auto-1", 300, "{\"auto_room\":false}");
    long long before = failures(c, "auto_room");
    refused(c, "auth-auto-1", NULL, t, "forbidden", 4403);
    assert_true(failures(c, "auto_room") >= before + 1);
    /* a named room is fine */
    struct wsc *ws = join(c, "auth-auto-1", "auth-auto-room", t);
    fe_close(c, ws);
    free(t);
    /* auto_room true (the default) creates a fresh room */
    t = mint("auth-auto-2", 300, "{\"rooms\":[\"named\"]}");
    char action[16];
    join_via(c, NULL, NULL, "auth-auto-2", NULL, t, NULL, NULL, action);
    assert_string_equal(action, "created");
    free(t);
}

/* Waits until the device's last connection has left its room in Redis (closing is async). */
static void wait_left(struct fe_cluster *c, const char *room, const char *device) {
    redisContext *rc = fe_redis_client(c);
    assert_non_null(rc);
    int64_t end = fe_wall_ms() + T;
    for (;;) {
        redisReply *r = redisCommand(rc, "HEXISTS %s %s", fe_room_key(room, ":members"), device);
        assert_non_null(r);
        long long v = r->integer;
        freeReplyObject(r);
        if (v == 0)
            break;
        assert_true(fe_wall_ms() < end);
        fe_poll_pause();
    }
    redisFree(rc);
}

static void test_last_room_outside_claims(void **state) {
    struct fe_cluster *c = *state;
    const char *dev = "auth-last-1";
    char *any = mint(dev, 300, NULL);
    char *team = mint(dev, 300, "{\"rooms\":[\"team-*\"]}");
    char *team_fixed = mint(dev, 300, "{\"rooms\":[\"team-*\"],\"auto_room\":false}");
    char *secret_ok = mint(dev, 300, "{\"rooms\":[\"secret-*\"]}");
    char room[FE_ROOM_CAP], action[16];

    fe_close(c, join(c, dev, "secret-1", any));
    wait_left(c, "secret-1", dev);
    /* no room named, last room outside the claims: a fresh room instead */
    struct wsc *ws = join_via(c, NULL, NULL, dev, NULL, team, NULL, room, action);
    assert_string_not_equal(room, "secret-1");
    assert_string_equal(action, "created");
    fe_close(c, ws);
    wait_left(c, room, dev);

    fe_close(c, join(c, dev, "secret-1", any));
    wait_left(c, "secret-1", dev);
    /* ... and refused when no fresh room is allowed */
    refused(c, dev, NULL, team_fixed, "forbidden", 4403);
    /* the refusal changed nothing: a token allowing it goes back to the last room */
    ws = join_via(c, NULL, NULL, dev, NULL, secret_ok, NULL, room, action);
    assert_string_equal(room, "secret-1");
    assert_string_equal(action, "rejoined");
    free(any);
    free(team);
    free(team_fixed);
    free(secret_ok);
}

static void test_identity_claim(void **state) {
    struct fe_cluster *c = *state;
    char *a = mint("auth-who-a", 300, "{\"identity\":\"Verified Alice\"}");
    char *b = mint("auth-who-b", 300, NULL);
    join_via(c, NULL, NULL, "auth-who-a", "auth-who-room", a, "Mallory", NULL, NULL);
    struct wsc *wb = join_via(c, NULL, NULL, "auth-who-b", "auth-who-room", b, "Bob", NULL, NULL);
    json_t *info = fe_query_room(wb, T);
    assert_non_null(info);
    json_t *clients = json_object_get(info, "clients");
    assert_int_equal(json_array_size(clients), 1);
    assert_string_equal(fe_str(json_array_get(clients, 0), "identity"), "Verified Alice");
    json_decref(info);
    free(a);
    free(b);
}

/* Nothing arrives on ws until the wall clock passes until_ms. */
static void quiet_until(struct wsc *ws, int64_t until_ms) {
    for (int64_t now = fe_wall_ms(); now < until_ms; now = fe_wall_ms()) {
        struct wsc_msg m;
        int r = wsc_recv(ws, &m, (int)(until_ms - now));
        if (r == 0) {
            fprintf(stderr, "unexpected frame: %.*s\n", (int)m.len, m.data);
            wsc_msg_free(&m);
            fail();
        }
        assert_int_equal(r, -ETIMEDOUT);
    }
}

static void test_refresh_before_expiry(void **state) {
    struct fe_cluster *c = *state;
    long long before = fe_metric(fe_admin_port(c, 0), "rrm_auth_refreshes_total");
    int64_t exp1 = (int64_t)time(NULL) + 2;
    char *t1 = mint("auth-refresh-1", 2, "{\"rooms\":[\"auth-r-*\"]}");
    char *t2 = mint("auth-refresh-1", 120, "{\"rooms\":[\"auth-r-1\"]}");
    struct wsc *ws = join(c, "auth-refresh-1", "auth-r-1", t1);
    json_t *msg = json_pack("{s:s, s:s}", "type", "refresh", "token", t2);
    assert_int_equal(fe_send_json(ws, msg), 0);
    json_t *ans = fe_expect_type(ws, "refreshed", T);
    assert_non_null(ans);
    assert_true(json_integer_value(json_object_get(ans, "exp")) >= exp1 + 100);
    json_decref(ans);
    assert_true(fe_metric(fe_admin_port(c, 0), "rrm_auth_refreshes_total") >= before + 1);
    /* past the first token's exp the connection is still served */
    quiet_until(ws, (exp1 + 1) * 1000 + 500);
    still_open(ws);
    free(t1);
    free(t2);
}

static void test_close_at_expiry(void **state) {
    struct fe_cluster *c = *state;
    long long before = fe_metric(fe_admin_port(c, 0), "rrm_auth_expired_total");
    char *t = mint("auth-exp-1", 2, NULL);
    int64_t start = fe_wall_ms();
    struct wsc *ws = join(c, "auth-exp-1", "auth-exp-room", t);
    /* a refresh that does not verify changes nothing */
    char *bad = mint_key(JWT_ALG_HS256, "wrong", "auth-exp-1", 300, NULL);
    json_t *msg = json_pack("{s:s, s:s}", "type", "refresh", "token", bad);
    assert_int_equal(fe_send_json(ws, msg), 0);
    assert_int_equal(fe_expect_error(ws, "unauthorized", T), 0);
    /* nor does one for another device */
    char *other = mint("auth-exp-2", 300, NULL);
    msg = json_pack("{s:s, s:s}", "type", "refresh", "token", other);
    assert_int_equal(fe_send_json(ws, msg), 0);
    assert_int_equal(fe_expect_error(ws, "unauthorized", T), 0);
    still_open(ws);
    json_t *e = fe_expect_type(ws, "error", 5000);
    assert_non_null(e);
    assert_string_equal(fe_str(e, "code"), "unauthorized");
    assert_string_equal(fe_str(e, "message"), "token expired");
    json_decref(e);
    assert_int_equal(fe_expect_close(ws, T), 4401);
    assert_true(fe_wall_ms() >= start + 1000); /* not before its exp */
    assert_true(fe_wait_metric(fe_admin_port(c, 0), "rrm_auth_expired_total", before + 1, T) >=
                before + 1);
    free(t);
    free(bad);
    free(other);
}

static void test_refresh_outside_room(void **state) {
    struct fe_cluster *c = *state;
    char *t1 = mint("auth-rr-1", 300, NULL);
    char *t2 = mint("auth-rr-1", 300, "{\"rooms\":[\"elsewhere\"]}");
    struct wsc *ws = join(c, "auth-rr-1", "auth-rr-room", t1);
    json_t *msg = json_pack("{s:s, s:s}", "type", "refresh", "token", t2);
    assert_int_equal(fe_send_json(ws, msg), 0);
    assert_int_equal(fe_expect_error(ws, "forbidden", T), 0);
    assert_int_equal(fe_expect_close(ws, T), 4403);
    free(t1);
    free(t2);
}

/* A refresh (and its token) never reaches the other members; "refreshed" is the server's. */
static void test_refresh_not_relayed(void **state) {
    struct fe_cluster *c = *state;
    char *ta = mint("auth-nr-a", 300, NULL), *tb = mint("auth-nr-b", 300, NULL);
    struct wsc *a = join(c, "auth-nr-a", "auth-nr-room", ta);
    struct wsc *b = join(c, "auth-nr-b", "auth-nr-room", tb);
    char *t2 = mint("auth-nr-a", 600, NULL);
    json_t *msg = json_pack("{s:s, s:s}", "type", "refresh", "token", t2);
    assert_int_equal(fe_send_json(a, msg), 0);
    json_t *ans = fe_expect_type(a, "refreshed", T);
    assert_non_null(ans);
    json_decref(ans);
    assert_int_equal(wsc_send_text(a, "{\"type\":\"refreshed\",\"exp\":1}"), 0);
    assert_int_equal(fe_expect_error(a, "reserved_type", T), 0);
    fe_send_text(a, "after the refresh");
    fe_expect_text(b, "auth-nr-a", "auth-nr-room", "after the refresh");
    free(ta);
    free(tb);
    free(t2);
}

/* The first line cmd prints (popen), without its newline; caller frees. */
static char *run_line(const char *cmd) {
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char *line = calloc(1, 16384);
    assert_non_null(line);
    if (!fgets(line, 16384, f))
        line[0] = '\0';
    int st = pclose(f);
    if (st != 0)
        fail_msg("'%s' exited with %d", cmd, st);
    line[strcspn(line, "\n")] = '\0';
    return line;
}

/* rrm-token (built next to rrm-frontend: <build>/tools/rrm-token) makes accepted tokens. */
static void test_rrm_token(void **state) {
    struct fe_cluster *c = *state;
    const char *fe = getenv("RRM_FRONTEND_BIN");
    assert_non_null(fe);
    char tool[1024], cmd[2048];
    snprintf(tool, sizeof(tool), "%s", fe);
    char *slash = strrchr(tool, '/');
    assert_non_null(slash);
    *slash = '\0';
    slash = strrchr(tool, '/');
    assert_non_null(slash);
    strcpy(slash, "/tools/rrm-token");
    snprintf(cmd, sizeof(cmd),
             "%s --secret '%s' --sub auth-tool-1 --rooms 'tool-*,lobby' --identity Tooled "
             "--ttl 60",
             tool, SECRET);
    char *t = run_line(cmd);
    join(c, "auth-tool-1", "tool-1", t);
    refused(c, "auth-tool-1", "other", t, "forbidden", 4403);
    free(t);
    /* the secret from the environment; --no-auto-room */
    snprintf(cmd, sizeof(cmd), "RRM_JWT_SECRET='%s' %s --sub auth-tool-2 --no-auto-room", SECRET,
             tool);
    t = run_line(cmd);
    refused(c, "auth-tool-2", NULL, t, "forbidden", 4403);
    join(c, "auth-tool-2", "any-room", t);
    free(t);
    /* a key and an algorithm */
    snprintf(cmd, sizeof(cmd), "%s --key %s/rsa1.pem --sub auth-tool-3", tool, dir);
    t = run_line(cmd);
    refused(c, "auth-tool-3", NULL, t, "unauthorized", 4401); /* RS256: no public key here */
    free(t);
    /* the README's openssl pipeline */
    snprintf(cmd, sizeof(cmd),
             "RRM_JWT_SECRET='%s' bash -c '"
             "b64() { openssl base64 -A | tr \"+/\" \"-_\" | tr -d \"=\"; }\n"
             "h=$(printf \"{\\\"alg\\\":\\\"HS256\\\",\\\"typ\\\":\\\"JWT\\\"}\" | b64)\n"
             "p=$(printf \"{\\\"sub\\\":\\\"auth-tool-4\\\",\\\"exp\\\":%%d}\" "
             "$(( $(date +%%s) + 3600 )) | b64)\n"
             "s=$(printf \"%%s.%%s\" \"$h\" \"$p\" | openssl dgst -sha256 -hmac "
             "\"$RRM_JWT_SECRET\" -binary | b64)\n"
             "echo \"$h.$p.$s\"'",
             SECRET);
    t = run_line(cmd);
    join(c, "auth-tool-4", NULL, t);
    free(t);
}

/* ---- cluster with public keys ---- */

static int keys_setup(void **state) {
    write_pub(rsa1_pub, NULL, NULL);
    char env_key[600];
    snprintf(env_key, sizeof(env_key), "RRM_JWT_PUBLIC_KEY=%s", pub_path);
    const char *const env[] = {env_key, "RRM_JWT_LEEWAY_S=0", NULL};
    struct fe_cluster *c = fe_cluster_start(1, env);
    *state = c;
    return c ? 0 : -1;
}

static void test_public_key_algorithms(void **state) {
    struct fe_cluster *c = *state;
    char *t = mint_key(JWT_ALG_RS256, rsa1, "auth-pk-1", 300, NULL);
    join(c, "auth-pk-1", NULL, t);
    free(t);
    long long before = failures(c, "algorithm");
    /* an HS token where only public keys are configured */
    t = mint("auth-pk-2", 300, NULL);
    refused(c, "auth-pk-2", NULL, t, "unauthorized", 4401);
    free(t);
    /* algorithm confusion: HS256 with the public key's PEM text as the HMAC secret */
    t = mint_key(JWT_ALG_HS256, rsa1_pub, "auth-pk-2", 300, NULL);
    refused(c, "auth-pk-2", NULL, t, "unauthorized", 4401);
    free(t);
    assert_true(failures(c, "algorithm") >= before + 2);
    /* signed by a key that is not in the file */
    t = mint_key(JWT_ALG_RS256, rsa2, "auth-pk-2", 300, NULL);
    refused(c, "auth-pk-2", NULL, t, "unauthorized", 4401);
    free(t);
}

/* Tries to identify with token until it is accepted (a SIGHUP is handled on the node's next
 * tick); fails after the deadline. */
static struct wsc *join_eventually(struct fe_cluster *c, const char *device, const char *token) {
    int64_t end = fe_wall_ms() + T;
    for (;;) {
        struct wsc *ws = fe_connect(c, 0);
        assert_non_null(ws);
        send_identify(ws, device, NULL, token, NULL);
        json_t *f = wsc_recv_json(ws, T);
        assert_non_null(f);
        int ok = strcmp(fe_str(f, "type"), "connection") == 0;
        json_decref(f);
        if (ok) {
            json_t *r = fe_expect_type(ws, "room", T);
            assert_non_null(r);
            json_decref(r);
            return ws;
        }
        fe_close(c, ws);
        assert_true(fe_wall_ms() < end);
        fe_poll_pause();
    }
}

static void test_reload_on_sighup(void **state) {
    struct fe_cluster *c = *state;
    char *old1 = mint_key(JWT_ALG_RS256, rsa1, "auth-rot-1", 300, NULL);
    char *new2 = mint_key(JWT_ALG_RS256, rsa2, "auth-rot-2", 300, NULL);
    char *es = mint_key(JWT_ALG_ES256, ec1, "auth-rot-3", 300, NULL);
    struct wsc *held = join(c, "auth-rot-1", "auth-rot-room", old1);
    refused(c, "auth-rot-2", NULL, new2, "unauthorized", 4401);

    /* the new key only: new tokens accepted, old ones refused, the open connection kept */
    write_pub(rsa2_pub, NULL, NULL);
    assert_int_equal(fe_node_signal(c, 0, SIGHUP), 0);
    join_eventually(c, "auth-rot-2", new2);
    char *old4 = mint_key(JWT_ALG_RS256, rsa1, "auth-rot-4", 300, NULL);
    refused(c, "auth-rot-4", NULL, old4, "unauthorized", 4401);
    free(old4);
    still_open(held);

    /* both keys (and an EC one) during a rotation: all accepted */
    char both[16384];
    snprintf(both, sizeof(both), "%s%s", rsa2_pub, ec1_pub);
    write_pub(rsa1_pub, both, NULL);
    assert_int_equal(fe_node_signal(c, 0, SIGHUP), 0);
    join_eventually(c, "auth-rot-3", es);
    char *again1 = mint_key(JWT_ALG_RS256, rsa1, "auth-rot-5", 300, NULL);
    join(c, "auth-rot-5", NULL, again1);
    char *again2 = mint_key(JWT_ALG_RS256, rsa2, "auth-rot-6", 300, NULL);
    join(c, "auth-rot-6", NULL, again2);
    still_open(held);
    free(old1);
    free(new2);
    free(es);
    free(again1);
    free(again2);
}

/* ---- cluster without authentication ---- */

static int open_setup(void **state) {
    struct fe_cluster *c = fe_cluster_start(1, NULL);
    *state = c;
    return c ? 0 : -1;
}

static void test_refresh_without_auth(void **state) {
    struct fe_cluster *c = *state;
    struct wsc *a = fe_join(c, 0, "auth-off-a", NULL, "auth-off-room", NULL);
    struct wsc *b = fe_join(c, 0, "auth-off-b", NULL, "auth-off-room", NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(wsc_send_text(a, "{\"type\":\"refresh\",\"token\":\"secret.token.here\"}"), 0);
    assert_int_equal(fe_expect_error(a, "reserved_type", T), 0);
    assert_int_equal(wsc_send_text(a, "{\"type\":\"refreshed\",\"exp\":1}"), 0);
    assert_int_equal(fe_expect_error(a, "reserved_type", T), 0);
    fe_send_text(a, "next");
    fe_expect_text(b, "auth-off-a", "auth-off-room", "next");
    /* a token in the identify is ignored when authentication is off */
    struct wsc *t = fe_connect(c, 0);
    send_identify(t, "auth-off-c", "auth-off-room", "whatever", NULL);
    json_t *conn = fe_expect_type(t, "connection", T);
    assert_non_null(conn);
    json_decref(conn);
}

int main(void) {
    dir = proc_tmpdir("auth");
    if (!dir ||
        make_key("rsa1", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048", &rsa1, &rsa1_pub) ||
        make_key("rsa2", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048", &rsa2, &rsa2_pub) ||
        make_key("ec1", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", &ec1, &ec1_pub)) {
        fprintf(stderr, "cannot make keys with openssl\n");
        return 1;
    }
    snprintf(pub_path, sizeof(pub_path), "%s/public.pem", dir);

    const struct CMUnitTest secret_tests[] = {
        cmocka_unit_test_teardown(test_token_in_identify, close_clients),
        cmocka_unit_test_teardown(test_token_in_header, close_clients),
        cmocka_unit_test_teardown(test_token_in_url, close_clients),
        cmocka_unit_test_teardown(test_missing_and_malformed, close_clients),
        cmocka_unit_test_teardown(test_expired_and_not_yet_valid, close_clients),
        cmocka_unit_test_teardown(test_bad_signature_and_algorithms, close_clients),
        cmocka_unit_test_teardown(test_other_device, close_clients),
        cmocka_unit_test_teardown(test_room_claims, close_clients),
        cmocka_unit_test_teardown(test_auto_room_false, close_clients),
        cmocka_unit_test_teardown(test_last_room_outside_claims, close_clients),
        cmocka_unit_test_teardown(test_identity_claim, close_clients),
        cmocka_unit_test_teardown(test_refresh_before_expiry, close_clients),
        cmocka_unit_test_teardown(test_close_at_expiry, close_clients),
        cmocka_unit_test_teardown(test_refresh_outside_room, close_clients),
        cmocka_unit_test_teardown(test_refresh_not_relayed, close_clients),
        cmocka_unit_test_teardown(test_rrm_token, close_clients),
    };
    const struct CMUnitTest key_tests[] = {
        cmocka_unit_test_teardown(test_public_key_algorithms, close_clients),
        cmocka_unit_test_teardown(test_reload_on_sighup, close_clients),
    };
    const struct CMUnitTest open_tests[] = {
        cmocka_unit_test_teardown(test_refresh_without_auth, close_clients),
    };
    int failed = cmocka_run_group_tests_name("secret", secret_tests, secret_setup, group_teardown);
    failed += cmocka_run_group_tests_name("public keys", key_tests, keys_setup, group_teardown);
    failed +=
        cmocka_run_group_tests_name("no authentication", open_tests, open_setup, group_teardown);
    proc_rmtree(dir);
    free(dir);
    free(rsa1);
    free(rsa2);
    free(ec1);
    free(rsa1_pub);
    free(rsa2_pub);
    free(ec1_pub);
    return failed;
}
