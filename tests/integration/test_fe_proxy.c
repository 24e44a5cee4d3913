/*
 * test_fe_proxy.c - the real client address and the limits per client address.
 *
 * Loopback addresses stand for machines: 127.0.0.2 is the trusted proxy (RRM_TRUSTED_PROXIES),
 * 127.0.0.5 and up are clients. Checked through the archive stream (the connect event's ip, which
 * the archiver stores as client_ip):
 *  - directly: a forged X-Forwarded-For / X-Real-IP from an untrusted address is ignored; from the
 *    trusted one it is believed (several header lines, IPv6, garbage);
 *  - RRM_MAX_CONNECTIONS_PER_IP and the handshake rate per address: 429 with Retry-After, other
 *    addresses unaffected, a closed connection frees its slot, a proxy's clients counted apart;
 *  - Debian's nginx in front of two nodes with the configuration of the README's "Behind nginx,
 *    with TLS" (its map block and its server block, `listen 443 ssl` and certificate lines
 *    included, are read from README.md): over ws:// and over wss://, clients on both nodes relay
 *    to each other and are archived with their own address, not nginx's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "fe_harness.h"
#include "proc.h"
#include "tls_certs.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define T FE_TIMEOUT_MS
#define PROXY "127.0.0.2"

static int start(void **state, const char *const env[], int nodes) {
    struct fe_cluster *c = fe_cluster_start(nodes, env);
    *state = c;
    return c ? 0 : -1;
}

static int setup_trust(void **state) {
    static const char *const env[] = {"RRM_TRUSTED_PROXIES=10.0.0.0/8, " PROXY, NULL};
    return start(state, env, 1);
}

static int setup_conn_limit(void **state) {
    static const char *const env[] = {"RRM_TRUSTED_PROXIES=" PROXY, "RRM_MAX_CONNECTIONS_PER_IP=2",
                                      "RRM_HANDSHAKES_PER_IP_PER_SEC=0", NULL};
    return start(state, env, 1);
}

static int setup_rate_limit(void **state) {
    static const char *const env[] = {"RRM_MAX_CONNECTIONS_PER_IP=0",
                                      "RRM_HANDSHAKES_PER_IP_PER_SEC=1",
                                      "RRM_HANDSHAKES_PER_IP_BURST=3", NULL};
    return start(state, env, 1);
}

static int setup_nginx(void **state) {
    static const char *const env[] = {"RRM_TRUSTED_PROXIES=" PROXY, NULL};
    return start(state, env, 2);
}

/* Connects from src to port (over TLS, verified as tls says, unless tls is NULL) with the extra
 * header lines, identifies as device in room and waits for the answers. The node that answered
 * goes to node_out (16 bytes, may be NULL). Registered with the cluster; NULL on failure. */
static struct wsc *join_tls_from(struct fe_cluster *c, const char *src, int port,
                                 const struct wsc_tls *tls, const char *const headers[],
                                 const char *device, const char *room, char *node_out) {
    struct wsc *ws =
        fe_track(c, tls ? wsc_connect_tls_from(src, "127.0.0.1", port, "/", tls, headers, T)
                        : wsc_connect_from(src, "127.0.0.1", port, "/", headers, T));
    if (!ws) {
        fprintf(stderr, "join: %s cannot connect to port %d%s\n", src, port, tls ? " (TLS)" : "");
        return NULL;
    }
    if (fe_send_json(ws, json_pack("{s:s, s:s}", "device_id", device, "room_id", room)) < 0)
        return NULL;
    json_t *conn = fe_expect_type(ws, "connection", T);
    json_t *r = fe_expect_type(ws, "room", T);
    int ok = conn && r;
    if (ok && node_out)
        snprintf(node_out, 16, "%s", fe_str(conn, "node_id"));
    json_decref(conn);
    json_decref(r);
    return ok ? ws : NULL;
}

/* join_tls_from over plain ws. */
static struct wsc *join_from(struct fe_cluster *c, const char *src, int port,
                             const char *const headers[], const char *device, const char *room,
                             char *node_out) {
    return join_tls_from(c, src, port, NULL, headers, device, room, node_out);
}

/* The ip of device's (last) connect event in the archive stream, copied to out (64 bytes);
 * 0, or -1 if there is none. */
static int connect_ip(struct fe_cluster *c, const char *device, char *out) {
    struct fe_events e;
    int found = -1;
    if (fe_events_load(c, &e) < 0)
        return -1;
    for (size_t i = 0; i < e.n; i++) {
        if (e.ok[i] && e.ev[i].type == EV_CONNECT && fe_str_eq(e.ev[i].device, device)) {
            snprintf(out, 64, "%.*s", (int)e.ev[i].ip.len, e.ev[i].ip.p);
            found = 0;
        }
    }
    fe_events_free(&e);
    return found;
}

/* Joins from src with the headers and checks the address archived for the connection. */
static void expect_recorded(struct fe_cluster *c, const char *src, const char *const headers[],
                            const char *device, const char *want) {
    char ip[64] = "";
    struct wsc *ws = join_from(c, src, fe_port(c, 0), headers, device, "ADDR", NULL);
    assert_non_null(ws);
    assert_int_equal(connect_ip(c, device, ip), 0);
    if (strcmp(ip, want) != 0)
        fail_msg("%s from %s: archived ip '%s', want '%s'", device, src, ip, want);
    fe_close(c, ws);
}

/* Forwarding headers count only from a trusted proxy; from it, the right-most address that is
 * not itself a trusted proxy is the client. */
static void test_forwarded_headers(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_admin_port(c, 0);
    static const char *const forged[] = {"X-Forwarded-For: 203.0.113.9", NULL};
    static const char *const forged_real[] = {"X-Real-IP: 203.0.113.10", NULL};
    /* untrusted peer: its own address, whatever it claims */
    expect_recorded(c, "127.0.0.5", forged, "forger", "127.0.0.5");
    expect_recorded(c, "127.0.0.5", forged_real, "forger-2", "127.0.0.5");
    expect_recorded(c, "127.0.0.5", NULL, "plain", "127.0.0.5");
    /* the trusted proxy's header is believed */
    expect_recorded(c, PROXY, forged, "proxied", "203.0.113.9");
    expect_recorded(c, PROXY, forged_real, "proxied-real", "203.0.113.10");
    static const char *const chain[] = {"X-Forwarded-For: 192.0.2.1, 198.51.100.7:4711, 10.1.2.3",
                                        NULL};
    expect_recorded(c, PROXY, chain, "chained", "198.51.100.7");
    static const char *const v6[] = {"X-Forwarded-For: [2001:DB8::7]:443", NULL};
    expect_recorded(c, PROXY, v6, "six", "2001:db8::7");
    /* several header lines: lws joins them in order, like one list */
    static const char *const two[] = {"X-Forwarded-For: 198.51.100.20", "X-Forwarded-For: 10.0.0.1",
                                      NULL};
    expect_recorded(c, PROXY, two, "two-lines", "198.51.100.20");
    static const char *const two_b[] = {"X-Forwarded-For: 198.51.100.30",
                                        "X-Forwarded-For: 198.51.100.31", NULL};
    expect_recorded(c, PROXY, two_b, "two-lines-b", "198.51.100.31");
    /* a long chain of trusted hops (1.5 KB) is walked to its client; an overlong entry is not an
     * address */
    char long_chain[1700] = "X-Forwarded-For: 198.51.100.60";
    for (int i = 0; i < 150; i++)
        strcat(long_chain, ", 10.0.0.1");
    const char *const chain_long[] = {long_chain, NULL};
    expect_recorded(c, PROXY, chain_long, "long-chain", "198.51.100.60");
    char long_entry[1100] = "X-Forwarded-For: 198.51.100.61, ";
    memset(long_entry + strlen(long_entry), '9', 1000);
    const char *const entry_long[] = {long_entry, NULL};
    expect_recorded(c, PROXY, entry_long, "long-entry", PROXY);
    /* two X-Real-IP lines name no one address: the proxy itself */
    static const char *const two_real[] = {"X-Real-IP: 198.51.100.50", "X-Real-IP: 198.51.100.51",
                                           NULL};
    expect_recorded(c, PROXY, two_real, "two-real", PROXY);
    /* garbage: the hop that handed it on, never the garbage; counted */
    long long before = fe_metric(port, "rrm_forwarded_malformed_total");
    assert_true(before >= 0);
    static const char *const junk[] = {"X-Forwarded-For: 198.51.100.40, <script>", NULL};
    expect_recorded(c, PROXY, junk, "junk", PROXY);
    static const char *const junk2[] = {"X-Forwarded-For: nonsense, 10.9.9.9", NULL};
    expect_recorded(c, PROXY, junk2, "junk-2", "10.9.9.9");
    assert_true(fe_wait_metric(port, "rrm_forwarded_malformed_total", before + 2, T) >= before + 2);
    assert_true(before >= 2); /* the overlong entry, the two X-Real-IP lines */
}

/* Sends an upgrade request from src (extra: header lines ending in CRLF) and reads the response
 * head into head. Returns the status or a negative errno value. */
static int raw_upgrade(const char *src, int port, const char *extra, char *head, size_t cap) {
    char req[1024];
    snprintf(req, sizeof(req),
             "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             extra ? extra : "");
    return proc_http_exchange(src, port, req, T, head, cap);
}

/* A refusal for the address's limits: 429 with a Retry-After of at least a second. */
static void expect_429(const char *src, int port, const char *extra) {
    char head[2048];
    int status = raw_upgrade(src, port, extra, head, sizeof(head));
    if (status != 429)
        fail_msg("from %s: status %d, want 429:\n%s", src, status, head);
    const char *ra = strcasestr(head, "\r\nRetry-After:");
    assert_non_null(ra);
    assert_true(atoi(ra + strlen("\r\nRetry-After:")) >= 1);
}

static void test_connections_per_address(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    struct wsc *a1 = join_from(c, "127.0.0.6", port, NULL, "cap-1", "CAP", NULL);
    struct wsc *a2 = join_from(c, "127.0.0.6", port, NULL, "cap-2", "CAP", NULL);
    assert_non_null(a1);
    assert_non_null(a2);
    /* a third from the same address is refused at the upgrade */
    expect_429("127.0.0.6", port, NULL);
    assert_true(fe_wait_metric(fe_admin_port(c, 0), "rrm_connections_refused_per_ip_total", 1, T) >=
                1);
    /* another address is unaffected */
    struct wsc *b1 = join_from(c, "127.0.0.7", port, NULL, "cap-3", "CAP", NULL);
    assert_non_null(b1);
    /* closing one frees its slot (once the node has seen the close) */
    fe_close(c, a1);
    int64_t deadline = proc_now_ms() + T;
    int status;
    while ((status = wsc_probe_upgrade_from("127.0.0.6", "127.0.0.1", port, "/", NULL, T)) == 429 &&
           proc_remaining_ms(deadline) > 0)
        fe_poll_pause();
    assert_int_equal(status, 101);
    /* the probe's connection closed as well: a second client fits again, a third does not */
    deadline = proc_now_ms() + T;
    struct wsc *a3 = NULL;
    while (!(a3 = join_from(c, "127.0.0.6", port, NULL, "cap-4", "CAP", NULL)) &&
           proc_remaining_ms(deadline) > 0)
        fe_poll_pause();
    assert_non_null(a3);
    expect_429("127.0.0.6", port, NULL);

    /* behind the trusted proxy, every client has its own count */
    const char *const x1[] = {"X-Forwarded-For: 198.51.100.1", NULL};
    const char *const x2[] = {"X-Forwarded-For: 198.51.100.2", NULL};
    assert_non_null(join_from(c, PROXY, port, x1, "px-1", "CAP", NULL));
    assert_non_null(join_from(c, PROXY, port, x1, "px-2", "CAP", NULL));
    expect_429(PROXY, port, "X-Forwarded-For: 198.51.100.1\r\n");
    assert_non_null(join_from(c, PROXY, port, x2, "px-3", "CAP", NULL));
    /* /status shows the addresses with their connections */
    int code = 0;
    char *body = NULL;
    assert_int_equal(proc_http_get(fe_admin_port(c, 0), "/status.json", T, &code, &body), 0);
    assert_int_equal(code, 200);
    assert_non_null(strstr(body, "{\"address\":\"198.51.100.1\",\"connections\":2}"));
    assert_non_null(strstr(body, "{\"address\":\"198.51.100.2\",\"connections\":1}"));
    free(body);
    assert_non_null(join_from(c, PROXY, port, NULL, "px-own-1", "CAP", NULL));
    /* and a client forging the header from elsewhere is counted as itself */
    const char *const forged[] = {"X-Forwarded-For: 198.51.100.9", NULL};
    assert_non_null(join_from(c, "127.0.0.8", port, forged, "forge-1", "CAP", NULL));
    assert_non_null(join_from(c, "127.0.0.8", port, forged, "forge-2", "CAP", NULL));
    expect_429("127.0.0.8", port, "X-Forwarded-For: 198.51.100.10\r\n");
    assert_true(fe_metric(fe_admin_port(c, 0), "rrm_connections_refused_per_ip_total") >= 4);
}

static void test_handshake_rate(void **state) {
    struct fe_cluster *c = *state;
    int port = fe_port(c, 0);
    /* a burst of 3, then 1 per second; closed connections count all the same */
    for (int i = 0; i < 3; i++)
        assert_int_equal(wsc_probe_upgrade_from("127.0.0.9", "127.0.0.1", port, "/", NULL, T), 101);
    expect_429("127.0.0.9", port, NULL);
    assert_true(fe_wait_metric(fe_admin_port(c, 0), "rrm_handshakes_rate_limited_total", 1, T) >=
                1);
    assert_int_equal(wsc_probe_upgrade_from("127.0.0.10", "127.0.0.1", port, "/", NULL, T), 101);
    /* the bucket refills */
    int64_t deadline = proc_now_ms() + 3000;
    int status;
    while ((status = wsc_probe_upgrade_from("127.0.0.9", "127.0.0.1", port, "/", NULL, T)) == 429 &&
           proc_remaining_ms(deadline) > 0)
        fe_poll_pause();
    assert_int_equal(status, 101);
    /* HTTP requests are not WebSocket handshakes */
    for (int i = 0; i < 5; i++) {
        int code = 0;
        assert_int_equal(proc_http_get(port, "/healthz", T, &code, NULL), 0);
        assert_int_equal(code, 200);
    }
}

/* ---- nginx in front ----------------------------------------------------------------------- */

struct nginx {
    pid_t pid;
    char *dir;
    int port;              /* plain HTTP/ws listener on 127.0.0.1 */
    int tls_port;          /* the README's `listen 443 ssl` listener, on 127.0.0.1 */
    struct tls_certs *tls; /* the CA and nginx's certificate */
    struct tls_cert_files cert;
};

/* The test's nginx, stopped by the teardown also when an assertion ends the test early. */
static struct nginx proxy;

/* The block of text starting at the first line of `from` that begins with `start` (after
 * spaces) up to its matching closing brace: its first character, its length in *len; NULL if
 * absent. */
static const char *find_block(const char *from, const char *start, size_t *len) {
    const char *p = from;
    while (*p) {
        const char *line = p;
        p += strspn(p, " \t");
        if (strncmp(p, start, strlen(start)) == 0) {
            int depth = 0, seen = 0;
            for (const char *q = line; *q; q++) {
                if (*q == '{') {
                    depth++;
                    seen = 1;
                } else if (*q == '}' && --depth == 0 && seen) {
                    *len = (size_t)(q + 1 - line);
                    return line;
                }
            }
            return NULL;
        }
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    return NULL;
}

/* find_block's block, appended to f; -1 if absent. */
static int copy_block(FILE *f, const char *from, const char *start) {
    size_t len;
    const char *b = find_block(from, start, &len);
    if (!b)
        return -1;
    fprintf(f, "%.*s\n", (int)len, b);
    return 0;
}

/* The README's server block, appended to f line by line as it is, except: its `listen 443 ...`
 * lines listen on 127.0.0.1:n->tls_port (the rest of the line kept), its certificate and key are
 * the test's, and the plain listener on n->port and `proxy_bind PROXY` come first. -1 (said why)
 * unless the block has a `listen 443 ssl` line and both certificate lines. */
static int copy_server(FILE *f, const char *readme, const struct nginx *n) {
    size_t len;
    const char *b = find_block(readme, "server {", &len);
    if (!b) {
        fprintf(stderr, "nginx_start: the README's nginx block has no server block\n");
        return -1;
    }
    int listen_ssl = 0, cert = 0, key = 0, bad = 0;
    for (const char *p = b, *end = b + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t ind = strspn(p, " \t");
        const char *t = p + ind;
        int tl = (int)(ll - ind);
        if (p == b) {
            fprintf(f, "%.*s\n", (int)ll, p);
            fprintf(f, "    listen 127.0.0.1:%d;\n    proxy_bind %s;\n", n->port, PROXY);
        } else if (strncmp(t, "listen ", 7) == 0) {
            if (strncmp(t, "listen 443 ssl", 14) == 0 && (t[14] == ' ' || t[14] == ';')) {
                fprintf(f, "%.*slisten 127.0.0.1:%d%.*s\n", (int)ind, p, n->tls_port, tl - 10,
                        t + 10);
                listen_ssl++;
            } else {
                fprintf(stderr, "nginx_start: README listen line not covered by the test: %.*s\n",
                        tl, t);
                bad = 1;
            }
        } else if (strncmp(t, "ssl_certificate ", 16) == 0) {
            fprintf(f, "%.*sssl_certificate %s;\n", (int)ind, p, n->cert.cert);
            cert++;
        } else if (strncmp(t, "ssl_certificate_key ", 20) == 0) {
            fprintf(f, "%.*sssl_certificate_key %s;\n", (int)ind, p, n->cert.key);
            key++;
        } else {
            fprintf(f, "%.*s\n", (int)ll, p);
        }
        p = nl ? nl + 1 : end;
    }
    if (bad || listen_ssl < 1 || cert != 1 || key != 1) {
        if (!bad)
            fprintf(stderr,
                    "nginx_start: the README's server block needs a `listen 443 ssl` line, "
                    "ssl_certificate and ssl_certificate_key (has %d, %d, %d)\n",
                    listen_ssl, cert, key);
        return -1;
    }
    return 0;
}

/* The README's nginx configuration block (malloc'd), or NULL. */
static char *readme_nginx(void) {
    const char *src = getenv("RRM_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/README.md", src ? src : ".");
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    if (n <= 0) {
        free(text);
        return NULL;
    }
    char *start = strstr(text, "\n```nginx\n");
    char *end = start ? strstr(start + 10, "\n```") : NULL;
    if (!start || !end) {
        free(text);
        return NULL;
    }
    char *block = strndup(start + 10, (size_t)(end - start - 10));
    free(text);
    return block;
}

/* Starts nginx in a temp dir in front of every node of c, connecting to them from PROXY, with
 * the README's map and server blocks (see copy_server): plain ws on n->port, wss on n->tls_port
 * with a certificate for 127.0.0.1 from a test CA (tls_certs_ca(n->tls)). */
static int nginx_start(struct nginx *n, struct fe_cluster *c) {
    memset(n, 0, sizeof(*n));
    char *bin = proc_which("nginx");
    char *readme = readme_nginx();
    char conf[1024], log[1024];
    n->dir = proc_tmpdir("nginx");
    n->port = proc_free_port();
    n->tls_port = proc_free_port();
    n->tls = tls_certs_create(NULL);
    if (!bin || !readme || !n->dir || n->port < 0 || n->tls_port < 0 || n->tls_port == n->port ||
        !n->tls || tls_certs_issue(n->tls, "nginx", 1, 1, NULL, &n->cert) < 0) {
        fprintf(stderr, "nginx_start: %s\n",
                !bin      ? "nginx not found (scripts/lib/deps.sh installs it)"
                : !readme ? "no ```nginx block in README.md"
                          : "no temp dir, ports or certificate");
        free(bin);
        free(readme);
        return -1;
    }
    snprintf(conf, sizeof(conf), "%s/nginx.conf", n->dir);
    snprintf(log, sizeof(log), "%s/error.log", n->dir);
    FILE *f = fopen(conf, "w");
    if (!f) {
        free(bin);
        free(readme);
        return -1;
    }
    /* one process: if the test dies, nothing is left behind (its master would be killed with
     * the test, and a worker outlives its master) */
    fprintf(f, "%smaster_process off;\npid %s/nginx.pid;\nerror_log %s info;\n",
            geteuid() == 0 ? "user root;\n" : "", n->dir, log);
    fprintf(f, "events { worker_connections 512; }\nhttp {\n    access_log off;\n");
    static const char *const temps[] = {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"};
    for (size_t i = 0; i < sizeof(temps) / sizeof(temps[0]); i++)
        fprintf(f, "    %s_temp_path %s/%s;\n", temps[i], n->dir, temps[i]);
    int rc = copy_block(f, readme, "map $http_upgrade");
    if (rc < 0)
        fprintf(stderr, "nginx_start: the README's nginx block lacks the map block\n");
    fprintf(f, "    upstream rrm {\n");
    for (int i = 0; i < fe_nodes(c); i++)
        fprintf(f, "        server 127.0.0.1:%d;\n", fe_port(c, i));
    fprintf(f, "    }\n");
    if (rc == 0)
        rc = copy_server(f, readme, n);
    fprintf(f, "}\n");
    fclose(f);
    free(readme);
    if (rc < 0) {
        free(bin);
        return -1;
    }
    const char *const argv[] = {bin,  "-p", n->dir, "-c",          conf,
                                "-e", log,  "-g",   "daemon off;", NULL};
    n->pid = proc_spawn(argv, NULL, log);
    free(bin);
    if (n->pid < 0 || proc_wait_port(n->port, T) < 0 || proc_wait_port(n->tls_port, T) < 0) {
        fprintf(stderr, "nginx_start: nginx did not start\n");
        proc_dump_file_tail(conf, 4000);
        proc_dump_file_tail(log, 4000);
        return -1;
    }
    return 0;
}

static void nginx_stop(struct nginx *n) {
    if (n->pid > 0) {
        int st = 0;
        proc_stop(n->pid, SIGTERM, 10000, &st);
        n->pid = 0;
    }
    if (n->dir)
        proc_rmtree(n->dir);
    free(n->dir);
    n->dir = NULL;
    tls_certs_destroy(n->tls);
    n->tls = NULL;
}

static int teardown_nginx(void **state) {
    nginx_stop(&proxy);
    return fe_teardown(state);
}

/* Through nginx's listener on port (wss when tls is not NULL): clients from 127.0.0.5 until one
 * is on each node, relaying to each other in room, archived with their own address; a forged
 * X-Forwarded-For is not believed. Device names start with name. */
static void check_through_nginx(struct fe_cluster *c, int port, const struct wsc_tls *tls,
                                const char *name, const char *room) {
    struct wsc *on[2] = {NULL, NULL};
    char dev[2][16];
    for (int i = 0; i < 8 && !(on[0] && on[1]); i++) {
        char device[16], node[16] = "";
        snprintf(device, sizeof(device), "%s-%d", name, i);
        struct wsc *ws = join_tls_from(c, "127.0.0.5", port, tls, NULL, device, room, node);
        if (!ws)
            break;
        int k = strcmp(node, fe_node_id(c, 0)) == 0 ? 0 : 1;
        if (on[k]) {
            fe_close(c, ws);
            continue;
        }
        on[k] = ws;
        snprintf(dev[k], sizeof(dev[k]), "%s", device);
    }
    if (!on[0] || !on[1])
        fail_msg("%s: nginx did not spread clients over both nodes", name);
    /* they relay to each other across the nodes */
    fe_send_text(on[0], "through nginx to b");
    fe_expect_text(on[1], dev[0], room, "through nginx to b");
    fe_send_text(on[1], "through nginx to a");
    fe_expect_text(on[0], dev[1], room, "through nginx to a");
    /* archived with the client's address, not nginx's */
    char ip[64];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(connect_ip(c, dev[k], ip), 0);
        if (strcmp(ip, "127.0.0.5") != 0)
            fail_msg("%s: archived ip '%s', want '127.0.0.5'", dev[k], ip);
    }
    /* a client forging the header through nginx: nginx appends the real address */
    static const char *const forged[] = {"X-Forwarded-For: 203.0.113.77", NULL};
    char device[24];
    snprintf(device, sizeof(device), "%s-forged", name);
    assert_non_null(join_tls_from(c, "127.0.0.6", port, tls, forged, device, room, NULL));
    assert_int_equal(connect_ip(c, device, ip), 0);
    if (strcmp(ip, "127.0.0.6") != 0)
        fail_msg("%s: archived ip '%s', want '127.0.0.6'", device, ip);
    fe_close_all(c);
}

static void test_nginx_in_front(void **state) {
    struct fe_cluster *c = *state;
    struct nginx *n = &proxy;
    if (nginx_start(n, c) < 0)
        fail_msg("nginx did not start");
    check_through_nginx(c, n->port, NULL, "via", "NGINX");
    /* the same over wss://, nginx's certificate verified against the test CA */
    const struct wsc_tls tls = {.ca_file = tls_certs_ca(n->tls), .server_name = NULL};
    check_through_nginx(c, n->tls_port, &tls, "wss", "NGINX-WSS");
    nginx_stop(n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_forwarded_headers, setup_trust, fe_teardown),
        cmocka_unit_test_setup_teardown(test_connections_per_address, setup_conn_limit,
                                        fe_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_rate, setup_rate_limit, fe_teardown),
        cmocka_unit_test_setup_teardown(test_nginx_in_front, setup_nginx, teardown_nginx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
