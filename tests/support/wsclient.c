/*
 * wsclient.c - small blocking WebSocket (RFC 6455) client for tests.
 *
 * See wsclient.h for the API contract. Contains file-local SHA-1 (FIPS 180-4)
 * and base64 (RFC 4648) implementations used only for the handshake key check.
 * TLS (wss, https) is OpenSSL over the same socket, switched to non-blocking
 * mode, with the same deadline waits.
 *
 * Receive path: bytes are read into a growable buffer (rbuf); complete frames
 * are parsed in place, unmasked if needed, and either answered (ping),
 * counted (pong), appended to the fragment buffer, or returned as a message.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "wsclient.h"

#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WSC_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WSC_MAX_HANDSHAKE (64 * 1024)
#define WSC_DEFAULT_SEND_TIMEOUT_MS 10000
#define WSC_READ_CHUNK (64 * 1024)

struct wsc {
    int fd;
    /* TLS (wss): every byte goes through ssl, over fd in non-blocking mode. NULL for ws. */
    SSL_CTX *ssl_ctx;
    SSL *ssl;
    /* Receive buffer: unread bytes are rbuf[rpos..rlen). Owned by wsc. */
    unsigned char *rbuf;
    size_t rpos, rlen, rcap;
    int eof;
    int close_received;
    int close_sent;
    int close_code;
    /* Fragmented message being reassembled (frag_opcode 0 = none). */
    int frag_opcode;
    unsigned char *frag;
    size_t frag_len, frag_cap;
    int auto_pong;
    unsigned ping_count, pong_count;
    int send_timeout_ms;
};

/* One parsed frame; payload points into ws->rbuf (valid until next read). */
struct wsc_frame {
    int fin;
    int rsv;
    int opcode;
    unsigned char *payload;
    size_t len;
};

/* ---------------------------------------------------------------- SHA-1 */

static uint32_t rol32(uint32_t x, int n) {
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* One-shot SHA-1 of data[0..len) into out. */
static void sha1(const void *data, size_t len, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    const unsigned char *p = data;
    size_t full = len / 64 * 64;
    unsigned char tail[128];
    uint64_t bits = (uint64_t)len * 8;

    for (size_t off = 0; off < full; off += 64)
        sha1_block(h, p + off);
    size_t rest = len - full;
    memset(tail, 0, sizeof(tail));
    memcpy(tail, p + full, rest);
    tail[rest] = 0x80;
    size_t tlen = rest + 1 + 8 <= 64 ? 64 : 128;
    for (int i = 0; i < 8; i++)
        tail[tlen - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, tail);
    if (tlen == 128)
        sha1_block(h, tail + 64);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

/* --------------------------------------------------------------- base64 */

/* Encode in[0..len) into out (needs 4*ceil(len/3)+1 bytes), NUL-terminated. */
static void base64_encode(const unsigned char *in, size_t len, char *out) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
}

/* ----------------------------------------------------------------- misc */

static char *dup_bytes(const void *p, size_t len);

static int fill_random(void *buf, size_t len) {
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int64_t deadline_after(int timeout_ms) {
    return proc_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
}

/* Waits until fd is ready for events or the deadline. 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline) {
    struct pollfd pfd = {.fd = fd, .events = events};
    int rem = proc_remaining_ms(deadline);
    if (rem == 0)
        return -ETIMEDOUT;
    if (poll(&pfd, 1, rem) < 0 && errno != EINTR)
        return -errno;
    return 0;
}

/* After an SSL call returned n <= 0: 0 with *events set when it must be retried once fd is ready,
 * -ECONNRESET when the peer ended the connection, otherwise -EPROTO (the reason is printed). */
static int tls_retry(SSL *ssl, int n, short *events) {
    int e = SSL_get_error(ssl, n);
    if (e == SSL_ERROR_WANT_READ) {
        *events = POLLIN;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        *events = POLLOUT;
        return 0;
    }
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        ERR_clear_error();
        return -ECONNRESET;
    }
    unsigned long err = ERR_get_error();
    if (err) {
        char buf[256];
        ERR_error_string_n(err, buf, sizeof(buf));
        fprintf(stderr, "wsclient: TLS: %s\n", buf);
    }
    ERR_clear_error();
    return -EPROTO;
}

/* Send all bytes before the deadline. Returns 0 or -errno. */
static int send_all(struct wsc *ws, const void *data, size_t len, int64_t deadline) {
    const unsigned char *p = data;
    while (len > 0) {
        short events = POLLOUT;
        if (ws->ssl) {
            int n = SSL_write(ws->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
            if (n > 0) {
                p += n;
                len -= (size_t)n;
                continue;
            }
            int r = tls_retry(ws->ssl, n, &events);
            if (r < 0)
                return r == -ECONNRESET ? -EPIPE : r;
        } else {
            ssize_t n = send(ws->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                p += n;
                len -= (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
        }
        int r = wait_fd(ws->fd, events, deadline);
        if (r < 0)
            return r;
    }
    return 0;
}

/* One read of at most cap bytes: > 0 bytes, 0 at the end of the stream, -EAGAIN with *events set
 * when nothing is there yet, or -errno. */
static ssize_t read_some(struct wsc *ws, void *buf, size_t cap, short *events) {
    *events = POLLIN;
    if (ws->ssl) {
        int n = SSL_read(ws->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
        if (n > 0)
            return n;
        int r = tls_retry(ws->ssl, n, events);
        return r == 0 ? -EAGAIN : r == -ECONNRESET ? 0 : r;
    }
    for (;;) {
        ssize_t n = recv(ws->fd, buf, cap, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET)
            return 0;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -EAGAIN;
        return -errno;
    }
}

/*
 * Read more bytes into rbuf (compacting/growing it as needed) before the
 * deadline. Returns number of bytes read (> 0), 0 at EOF (ws->eof set),
 * -ETIMEDOUT or -errno.
 */
static int fill(struct wsc *ws, int64_t deadline) {
    if (ws->eof)
        return 0;
    if (ws->rpos > 0 && (ws->rpos == ws->rlen || ws->rcap - ws->rlen < WSC_READ_CHUNK)) {
        memmove(ws->rbuf, ws->rbuf + ws->rpos, ws->rlen - ws->rpos);
        ws->rlen -= ws->rpos;
        ws->rpos = 0;
    }
    if (ws->rcap - ws->rlen < WSC_READ_CHUNK) {
        size_t ncap = ws->rcap ? ws->rcap * 2 : 2 * WSC_READ_CHUNK;
        unsigned char *nb = realloc(ws->rbuf, ncap);
        if (!nb)
            return -ENOMEM;
        ws->rbuf = nb;
        ws->rcap = ncap;
    }
    for (;;) {
        short events;
        ssize_t n = read_some(ws, ws->rbuf + ws->rlen, ws->rcap - ws->rlen, &events);
        if (n > 0) {
            ws->rlen += (size_t)n;
            return (int)(n > 0x7fffffff ? 0x7fffffff : n);
        }
        if (n == 0) {
            ws->eof = 1;
            return 0;
        }
        if (n != -EAGAIN)
            return (int)n;
        int r = wait_fd(ws->fd, events, deadline);
        if (r < 0)
            return r;
    }
}

/* Make sure at least n unread bytes are buffered. 0, -ECONNRESET at EOF, ... */
static int need(struct wsc *ws, size_t n, int64_t deadline) {
    while (ws->rlen - ws->rpos < n) {
        int r = fill(ws, deadline);
        if (r == 0)
            return -ECONNRESET;
        if (r < 0)
            return r;
    }
    return 0;
}

/* ------------------------------------------------------------ handshake */

/*
 * Find header name in hdr[0..len) (the lines after the status line).
 * Returns the trimmed value and its length, or NULL.
 */
static const char *find_header(const char *hdr, size_t len, const char *name, size_t *vlen) {
    size_t nlen = strlen(name);
    const char *p = hdr, *end = hdr + len;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Does the comma-separated header value v[0..vlen) contain token (nocase)? */
static int has_token(const char *v, size_t vlen, const char *token) {
    size_t tlen = strlen(token);
    const char *p = v, *end = v + vlen;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *te = comma ? comma : end;
        const char *ts = p;
        while (ts < te && (*ts == ' ' || *ts == '\t'))
            ts++;
        const char *tz = te;
        while (tz > ts && (tz[-1] == ' ' || tz[-1] == '\t'))
            tz--;
        if ((size_t)(tz - ts) == tlen && strncasecmp(ts, token, tlen) == 0)
            return 1;
        p = comma ? comma + 1 : end;
    }
    return 0;
}

/*
 * Send the Upgrade request and read the response head. Returns the HTTP status
 * (101 only if the upgrade is valid), or negative errno. Leftover bytes after
 * the response head stay in rbuf as frame data.
 */
static int handshake(struct wsc *ws, const char *host, int port, const char *path,
                     const char *const extra_headers[], int64_t deadline) {
    unsigned char key_raw[16], digest[20];
    char key[32], expect[32], status_line[16];
    char *req = NULL, *tmp = NULL;
    size_t req_len = 0;
    FILE *f;
    int ret;

    if (fill_random(key_raw, sizeof(key_raw)) < 0)
        return -EIO;
    base64_encode(key_raw, sizeof(key_raw), key);

    f = open_memstream(&req, &req_len);
    if (!f)
        return -ENOMEM;
    if (strchr(host, ':'))
        fprintf(f, "GET %s HTTP/1.1\r\nHost: [%s]:%d\r\n", path, host, port);
    else
        fprintf(f, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n", path, host, port);
    fprintf(f,
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            "Sec-WebSocket-Version: 13\r\nUser-Agent: rrm-testsupport-wsclient\r\n",
            key);
    for (size_t i = 0; extra_headers && extra_headers[i]; i++)
        fprintf(f, "%s\r\n", extra_headers[i]);
    fputs("\r\n", f);
    if (fclose(f) != 0) {
        free(req);
        return -ENOMEM;
    }
    ret = send_all(ws, req, req_len, deadline);
    free(req);
    if (ret < 0)
        return ret;

    /* Read until the end of the response head. */
    const char *head, *hend;
    for (;;) {
        if (ws->rbuf) {
            head = (const char *)ws->rbuf + ws->rpos;
            hend = memmem(head, ws->rlen - ws->rpos, "\r\n\r\n", 4);
            if (hend)
                break;
        }
        if (ws->rlen - ws->rpos > WSC_MAX_HANDSHAKE)
            return -EMSGSIZE;
        int r = fill(ws, deadline);
        if (r == 0)
            return -ECONNRESET;
        if (r < 0)
            return r;
    }
    size_t head_len = (size_t)(hend - head) + 4;
    int major = 0, minor = 0, code = 0;
    size_t sl = (size_t)((const char *)memmem(head, head_len, "\r\n", 2) - head);
    if (sl >= sizeof(status_line))
        sl = sizeof(status_line) - 1;
    memcpy(status_line, head, sl);
    status_line[sl] = '\0';
    if (sscanf(status_line, "HTTP/%d.%d %d", &major, &minor, &code) != 3)
        return -EPROTO;
    const char *hdrs = memmem(head, head_len, "\r\n", 2) + 2;
    size_t hdrs_len = (size_t)(hend + 2 - hdrs);
    ws->rpos += head_len;
    if (code != 101)
        return code;

    size_t vlen;
    const char *v = find_header(hdrs, hdrs_len, "Upgrade", &vlen);
    if (!v || !has_token(v, vlen, "websocket"))
        return -EPROTO;
    v = find_header(hdrs, hdrs_len, "Connection", &vlen);
    if (!v || !has_token(v, vlen, "upgrade"))
        return -EPROTO;
    v = find_header(hdrs, hdrs_len, "Sec-WebSocket-Accept", &vlen);
    if (!v)
        return -EPROTO;
    if (asprintf(&tmp, "%s%s", key, WSC_GUID) < 0)
        return -ENOMEM;
    sha1(tmp, strlen(tmp), digest);
    free(tmp);
    base64_encode(digest, sizeof(digest), expect);
    if (vlen != strlen(expect) || memcmp(v, expect, vlen) != 0)
        return -EPROTO;
    return 101;
}

static struct wsc *wsc_new(int fd) {
    struct wsc *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->fd = fd;
    ws->auto_pong = 1;
    ws->send_timeout_ms = WSC_DEFAULT_SEND_TIMEOUT_MS;
    return ws;
}

/* Whether host is a literal IPv4 or IPv6 address (checked against the certificate's IP SANs). */
static int is_ip_literal(const char *host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The TLS handshake on ws->fd, verifying the server's certificate against tls->ca_file and its
 * name (tls->server_name, else host). 0 or negative (-EPROTO: handshake or verification failed,
 * the reason printed). */
static int tls_start(struct wsc *ws, const char *host, const struct wsc_tls *tls,
                     int64_t deadline) {
    const char *name = tls->server_name ? tls->server_name : host;
    ws->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!ws->ssl_ctx)
        return -ENOMEM;
    SSL_CTX_set_mode(ws->ssl_ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (tls->ca_file) {
        if (SSL_CTX_load_verify_locations(ws->ssl_ctx, tls->ca_file, NULL) != 1) {
            fprintf(stderr, "wsclient: cannot load CA file %s\n", tls->ca_file);
            ERR_clear_error();
            return -EINVAL;
        }
        SSL_CTX_set_verify(ws->ssl_ctx, SSL_VERIFY_PEER, NULL);
    }
    ws->ssl = SSL_new(ws->ssl_ctx);
    if (!ws->ssl || SSL_set_fd(ws->ssl, ws->fd) != 1)
        return -ENOMEM;
    X509_VERIFY_PARAM *vp = SSL_get0_param(ws->ssl);
    if (is_ip_literal(name)) {
        X509_VERIFY_PARAM_set1_ip_asc(vp, name);
    } else {
        SSL_set_tlsext_host_name(ws->ssl, name);
        X509_VERIFY_PARAM_set1_host(vp, name, 0);
    }
    int fl = fcntl(ws->fd, F_GETFL);
    if (fl < 0 || fcntl(ws->fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    for (;;) {
        int n = SSL_connect(ws->ssl);
        if (n == 1)
            return 0;
        short events;
        int r = tls_retry(ws->ssl, n, &events);
        if (r < 0) {
            long v = SSL_get_verify_result(ws->ssl);
            if (v != X509_V_OK)
                fprintf(stderr, "wsclient: TLS: certificate of %s not accepted: %s\n", name,
                        X509_verify_cert_error_string(v));
            return r == -ECONNRESET ? r : -EPROTO;
        }
        r = wait_fd(ws->fd, events, deadline);
        if (r < 0)
            return r;
    }
}

/* TCP connect (from the local address src unless NULL), TLS when tls is not NULL, and the upgrade;
 * returns the HTTP status (>= 0) or a negative errno value, and the connection in *out when the
 * status is 101. */
static int connect_common(const char *src, const char *host, int port, const char *path,
                          const struct wsc_tls *tls, const char *const extra_headers[],
                          int timeout_ms, struct wsc **out) {
    int64_t deadline = deadline_after(timeout_ms);
    *out = NULL;
    if (!host || !path || path[0] != '/')
        return -EINVAL;
    int fd = proc_tcp_connect_from(src, host, port, proc_remaining_ms(deadline));
    if (fd < 0)
        return fd;
    struct wsc *ws = wsc_new(fd);
    if (!ws) {
        close(fd);
        return -ENOMEM;
    }
    int r = tls ? tls_start(ws, host, tls, deadline) : 0;
    if (r == 0)
        r = handshake(ws, host, port, path, extra_headers, deadline);
    if (r != 101) {
        wsc_close(ws);
        return r;
    }
    *out = ws;
    return r;
}

struct wsc *wsc_connect_ex(const char *host, int port, const char *path,
                           const char *const extra_headers[], int timeout_ms) {
    return wsc_connect_from(NULL, host, port, path, extra_headers, timeout_ms);
}

struct wsc *wsc_connect_from(const char *src, const char *host, int port, const char *path,
                             const char *const extra_headers[], int timeout_ms) {
    struct wsc *ws;
    connect_common(src, host, port, path, NULL, extra_headers, timeout_ms, &ws);
    return ws;
}

struct wsc *wsc_connect_tls(const char *host, int port, const char *path, const struct wsc_tls *tls,
                            const char *const extra_headers[], int timeout_ms) {
    return wsc_connect_tls_from(NULL, host, port, path, tls, extra_headers, timeout_ms);
}

struct wsc *wsc_connect_tls_from(const char *src, const char *host, int port, const char *path,
                                 const struct wsc_tls *tls, const char *const extra_headers[],
                                 int timeout_ms) {
    struct wsc *ws;
    if (!tls)
        return NULL;
    connect_common(src, host, port, path, tls, extra_headers, timeout_ms, &ws);
    return ws;
}

struct wsc *wsc_connect(const char *host, int port, const char *path, int timeout_ms) {
    return wsc_connect_ex(host, port, path, NULL, timeout_ms);
}

int wsc_probe_upgrade(const char *host, int port, const char *path,
                      const char *const extra_headers[], int timeout_ms) {
    return wsc_probe_upgrade_from(NULL, host, port, path, extra_headers, timeout_ms);
}

int wsc_probe_upgrade_from(const char *src, const char *host, int port, const char *path,
                           const char *const extra_headers[], int timeout_ms) {
    struct wsc *ws;
    int r = connect_common(src, host, port, path, NULL, extra_headers, timeout_ms, &ws);
    wsc_close(ws);
    return r;
}

int wsc_probe_upgrade_tls(const char *host, int port, const char *path, const struct wsc_tls *tls,
                          const char *const extra_headers[], int timeout_ms) {
    struct wsc *ws;
    if (!tls)
        return -EINVAL;
    int r = connect_common(NULL, host, port, path, tls, extra_headers, timeout_ms, &ws);
    wsc_close(ws);
    return r;
}

int wsc_peer_cert(const struct wsc *ws, struct wsc_cert_info *out) {
    memset(out, 0, sizeof(*out));
    if (!ws || !ws->ssl)
        return -EINVAL;
    X509 *x = SSL_get1_peer_certificate(ws->ssl);
    if (!x)
        return -ENOENT;
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(out->serial, sizeof(out->serial), "%s", hex ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
        out->not_after = (int64_t)timegm(&tm);
    X509_free(x);
    return 0;
}

int wsc_https_get(const char *host, int port, const char *path, const struct wsc_tls *tls,
                  int timeout_ms, int *status, char **body, struct wsc_cert_info *cert) {
    int64_t deadline = deadline_after(timeout_ms);
    char *req = NULL;
    if (status)
        *status = 0;
    if (body)
        *body = NULL;
    if (!host || !path || !tls)
        return -EINVAL;
    int fd = proc_tcp_connect(host, port, proc_remaining_ms(deadline));
    if (fd < 0)
        return fd;
    struct wsc *ws = wsc_new(fd);
    if (!ws) {
        close(fd);
        return -ENOMEM;
    }
    int r = tls_start(ws, host, tls, deadline);
    if (r == 0 && cert)
        r = wsc_peer_cert(ws, cert);
    if (r == 0 && asprintf(&req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
                           path, host, port) < 0)
        r = -ENOMEM;
    if (r == 0)
        r = send_all(ws, req, strlen(req), deadline);
    free(req);
    while (r == 0) { /* the answer ends with the connection */
        int n = fill(ws, deadline);
        if (n == 0)
            break;
        if (n < 0)
            r = n;
    }
    int code = 0;
    const char *head = ws->rbuf ? (const char *)ws->rbuf : "";
    const char *end = ws->rbuf ? memmem(head, ws->rlen, "\r\n\r\n", 4) : NULL;
    if (r == 0 && (!end || sscanf(head, "HTTP/%*d.%*d %d", &code) != 1))
        r = -EPROTO;
    if (r == 0 && status)
        *status = code;
    if (r == 0 && body) {
        size_t off = (size_t)(end + 4 - head);
        *body = dup_bytes(head + off, ws->rlen - off);
        if (!*body)
            r = -ENOMEM;
    }
    wsc_close(ws);
    return r;
}

void wsc_close(struct wsc *ws) {
    if (!ws)
        return;
    SSL_free(ws->ssl);
    SSL_CTX_free(ws->ssl_ctx);
    if (ws->fd >= 0)
        close(ws->fd);
    free(ws->rbuf);
    free(ws->frag);
    free(ws);
}

int wsc_fd(const struct wsc *ws) {
    return ws ? ws->fd : -EINVAL;
}

void wsc_set_send_timeout(struct wsc *ws, int timeout_ms) {
    if (ws)
        ws->send_timeout_ms = timeout_ms < 0 ? 0 : timeout_ms;
}

void wsc_set_auto_pong(struct wsc *ws, int enabled) {
    if (ws)
        ws->auto_pong = enabled != 0;
}

unsigned wsc_ping_count(const struct wsc *ws) {
    return ws ? ws->ping_count : 0;
}

unsigned wsc_pong_count(const struct wsc *ws) {
    return ws ? ws->pong_count : 0;
}

void wsc_msg_free(struct wsc_msg *msg) {
    if (!msg)
        return;
    free(msg->data);
    memset(msg, 0, sizeof(*msg));
}

/* ---------------------------------------------------------------- send */

int wsc_send_frame(struct wsc *ws, int fin, int opcode, const void *data, size_t len, int masked) {
    unsigned char hdr[14], mask[4] = {0, 0, 0, 0};
    size_t hlen = 2;

    if (!ws || opcode < 0 || opcode > 15 || (len > 0 && !data))
        return -EINVAL;
    hdr[0] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        hdr[1] = (unsigned char)len;
    } else if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (unsigned char)(len >> 8);
        hdr[3] = (unsigned char)len;
        hlen = 4;
    } else {
        hdr[1] = 127;
        for (int i = 0; i < 8; i++)
            hdr[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hlen = 10;
    }
    if (masked) {
        int r = fill_random(mask, sizeof(mask));
        if (r < 0)
            return r;
        hdr[1] |= 0x80;
        memcpy(hdr + hlen, mask, 4);
        hlen += 4;
    }
    unsigned char *frame = malloc(hlen + len);
    if (!frame)
        return -ENOMEM;
    memcpy(frame, hdr, hlen);
    const unsigned char *src = data;
    for (size_t i = 0; i < len; i++)
        frame[hlen + i] = src[i] ^ mask[i & 3];
    int r = send_all(ws, frame, hlen + len, deadline_after(ws->send_timeout_ms));
    free(frame);
    return r;
}

int wsc_send(struct wsc *ws, int opcode, const void *data, size_t len) {
    return wsc_send_frame(ws, 1, opcode, data, len, 1);
}

int wsc_send_text(struct wsc *ws, const char *s) {
    if (!s)
        return -EINVAL;
    return wsc_send(ws, WSC_OP_TEXT, s, strlen(s));
}

int wsc_send_fragmented(struct wsc *ws, int opcode, const void *data, size_t len,
                        size_t fragment_size) {
    const unsigned char *p = data;
    size_t off = 0;
    if (fragment_size == 0)
        return -EINVAL;
    do {
        size_t n = len - off < fragment_size ? len - off : fragment_size;
        int last = off + n >= len;
        int r = wsc_send_frame(ws, last, off == 0 ? opcode : WSC_OP_CONT, p ? p + off : NULL, n, 1);
        if (r < 0)
            return r;
        off += n;
    } while (off < len);
    return 0;
}

int wsc_send_raw(struct wsc *ws, const void *bytes, size_t len) {
    if (!ws || (len > 0 && !bytes))
        return -EINVAL;
    return send_all(ws, bytes, len, deadline_after(ws->send_timeout_ms));
}

int wsc_send_close(struct wsc *ws, int code, const char *reason) {
    unsigned char payload[125];
    size_t len = 0;
    if (!ws)
        return -EINVAL;
    if (code > 0) {
        size_t rlen = reason ? strlen(reason) : 0;
        if (code > 0xffff || rlen > sizeof(payload) - 2)
            return -EINVAL;
        payload[0] = (unsigned char)(code >> 8);
        payload[1] = (unsigned char)code;
        if (rlen)
            memcpy(payload + 2, reason, rlen);
        len = 2 + rlen;
    }
    ws->close_sent = 1;
    return wsc_send_frame(ws, 1, WSC_OP_CLOSE, payload, len, 1);
}

/* ------------------------------------------------------------- receive */

/* Read and consume one complete frame (payload unmasked in place). */
static int read_frame(struct wsc *ws, struct wsc_frame *fr, int64_t deadline) {
    int r = need(ws, 2, deadline);
    if (r < 0)
        return r;
    const unsigned char *h = ws->rbuf + ws->rpos;
    int masked = (h[1] & 0x80) != 0;
    size_t len7 = h[1] & 0x7f;
    size_t hlen = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    r = need(ws, hlen, deadline);
    if (r < 0)
        return r;
    h = ws->rbuf + ws->rpos;
    uint64_t len = len7;
    if (len7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        if (len >> 63)
            return -EPROTO;
    }
    if (len > WSC_MAX_MESSAGE)
        return -EMSGSIZE;
    r = need(ws, hlen + (size_t)len, deadline);
    if (r < 0)
        return r;
    h = ws->rbuf + ws->rpos;
    fr->fin = (h[0] & 0x80) != 0;
    fr->rsv = (h[0] >> 4) & 7;
    fr->opcode = h[0] & 0x0f;
    fr->payload = ws->rbuf + ws->rpos + hlen;
    fr->len = (size_t)len;
    if (masked) {
        const unsigned char *mask = h + hlen - 4;
        for (size_t i = 0; i < fr->len; i++)
            fr->payload[i] ^= mask[i & 3];
    }
    ws->rpos += hlen + (size_t)len;
    return 0;
}

/* Copy bytes into a fresh NUL-terminated malloc'd buffer. */
static char *dup_bytes(const void *p, size_t len) {
    char *d = malloc(len + 1);
    if (!d)
        return NULL;
    if (len)
        memcpy(d, p, len);
    d[len] = '\0';
    return d;
}

static int frag_append(struct wsc *ws, const void *p, size_t len) {
    if (len > WSC_MAX_MESSAGE - ws->frag_len)
        return -EMSGSIZE;
    if (ws->frag_len + len + 1 > ws->frag_cap) {
        size_t ncap = ws->frag_cap ? ws->frag_cap : 4096;
        while (ncap < ws->frag_len + len + 1)
            ncap *= 2;
        unsigned char *nb = realloc(ws->frag, ncap);
        if (!nb)
            return -ENOMEM;
        ws->frag = nb;
        ws->frag_cap = ncap;
    }
    if (len)
        memcpy(ws->frag + ws->frag_len, p, len);
    ws->frag_len += len;
    return 0;
}

static int handle_close(struct wsc *ws, const struct wsc_frame *fr, struct wsc_msg *out) {
    int code = WSC_CLOSE_NO_STATUS;
    const unsigned char *reason = fr->payload;
    size_t rlen = 0;
    if (fr->len == 1 || fr->len > 125 || !fr->fin)
        return -EPROTO;
    if (fr->len >= 2) {
        code = fr->payload[0] << 8 | fr->payload[1];
        reason = fr->payload + 2;
        rlen = fr->len - 2;
    }
    char *data = dup_bytes(reason, rlen);
    if (!data)
        return -ENOMEM;
    ws->close_received = 1;
    ws->close_code = code;
    if (!ws->close_sent) {
        ws->close_sent = 1;
        /* Echo the status code; failure to send is irrelevant here. */
        unsigned char echo[2] = {(unsigned char)(code >> 8), (unsigned char)code};
        wsc_send_frame(ws, 1, WSC_OP_CLOSE, echo, fr->len >= 2 ? 2 : 0, 1);
    }
    out->opcode = WSC_OP_CLOSE;
    out->data = data;
    out->len = rlen;
    out->close_code = code;
    out->close_reason = data;
    return 0;
}

int wsc_recv(struct wsc *ws, struct wsc_msg *out, int timeout_ms) {
    int64_t deadline = deadline_after(timeout_ms);
    struct wsc_frame fr;

    if (!ws || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (ws->close_received)
        return -ENOTCONN;
    for (;;) {
        int r = read_frame(ws, &fr, deadline);
        if (r < 0)
            return r;
        if (fr.rsv)
            return -EPROTO;
        switch (fr.opcode) {
        case WSC_OP_PING:
            if (fr.len > 125 || !fr.fin)
                return -EPROTO;
            ws->ping_count++;
            if (ws->auto_pong && !ws->close_sent) {
                r = wsc_send_frame(ws, 1, WSC_OP_PONG, fr.payload, fr.len, 1);
                if (r < 0)
                    return r;
            }
            continue;
        case WSC_OP_PONG:
            if (fr.len > 125 || !fr.fin)
                return -EPROTO;
            ws->pong_count++;
            continue;
        case WSC_OP_CLOSE:
            return handle_close(ws, &fr, out);
        case WSC_OP_TEXT:
        case WSC_OP_BINARY:
            if (ws->frag_opcode)
                return -EPROTO;
            if (fr.fin) {
                out->data = dup_bytes(fr.payload, fr.len);
                if (!out->data)
                    return -ENOMEM;
                out->opcode = fr.opcode;
                out->len = fr.len;
                return 0;
            }
            ws->frag_opcode = fr.opcode;
            ws->frag_len = 0;
            r = frag_append(ws, fr.payload, fr.len);
            if (r < 0)
                return r;
            continue;
        case WSC_OP_CONT:
            if (!ws->frag_opcode)
                return -EPROTO;
            r = frag_append(ws, fr.payload, fr.len);
            if (r < 0)
                return r;
            if (!fr.fin)
                continue;
            /* Hand the reassembly buffer over to the message. */
            ws->frag[ws->frag_len] = '\0';
            out->opcode = ws->frag_opcode;
            out->data = (char *)ws->frag;
            out->len = ws->frag_len;
            ws->frag = NULL;
            ws->frag_len = ws->frag_cap = 0;
            ws->frag_opcode = 0;
            return 0;
        default:
            return -EPROTO;
        }
    }
}

json_t *wsc_recv_json(struct wsc *ws, int timeout_ms) {
    struct wsc_msg m;
    json_error_t err;
    json_t *j = NULL;
    if (wsc_recv(ws, &m, timeout_ms) < 0)
        return NULL;
    if (m.opcode == WSC_OP_TEXT)
        j = json_loadb(m.data, m.len, 0, &err);
    wsc_msg_free(&m);
    return j;
}

json_t *wsc_recv_type(struct wsc *ws, const char *type, int timeout_ms) {
    int64_t deadline = deadline_after(timeout_ms);
    if (!ws || !type)
        return NULL;
    for (;;) {
        struct wsc_msg m;
        json_error_t err;
        int r = wsc_recv(ws, &m, proc_remaining_ms(deadline));
        if (r < 0)
            return NULL;
        if (m.opcode == WSC_OP_CLOSE) {
            wsc_msg_free(&m);
            return NULL;
        }
        json_t *j = m.opcode == WSC_OP_TEXT ? json_loadb(m.data, m.len, 0, &err) : NULL;
        wsc_msg_free(&m);
        if (j && json_is_object(j)) {
            const char *t = json_string_value(json_object_get(j, "type"));
            if (t && strcmp(t, type) == 0)
                return j;
        }
        json_decref(j);
    }
}

int wsc_wait_closed(struct wsc *ws, int timeout_ms, int *close_code) {
    int64_t deadline = deadline_after(timeout_ms);
    if (!ws)
        return -EINVAL;
    for (;;) {
        struct wsc_msg m;
        if (ws->close_received) {
            if (close_code)
                *close_code = ws->close_code;
            return 0;
        }
        int r = wsc_recv(ws, &m, proc_remaining_ms(deadline));
        if (r == -ECONNRESET || r == -EPIPE) {
            if (close_code)
                *close_code = WSC_CLOSE_ABNORMAL;
            return 0;
        }
        if (r < 0)
            return r;
        wsc_msg_free(&m);
    }
}
