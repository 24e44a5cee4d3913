/* The archiver's HTTP listener (see httpd.h).
 *
 * Each connection goes READ (until the blank line ending the head, within the size and time
 * limits) -> WRITE (the whole answer) -> LINGER (our side shut down; what the client still sends
 * is read and dropped until it closes, so that closing does not reset the connection before the
 * client has read the answer) -> closed. Every socket is non-blocking; the thread sleeps only in
 * poll(), which a pipe wakes when arch_httpd_stop is called. */
#include "httpd.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINGER_MS 1000

enum conn_state { CONN_FREE = 0, CONN_READ, CONN_WRITE, CONN_LINGER };

struct conn {
    enum conn_state state;
    int fd;
    int64_t deadline_ms;
    char head[ARCH_HTTPD_MAX_HEAD];
    size_t head_len;
    struct prom_buf out; /* the whole answer */
    size_t sent;
};

/* The statuses the server answers with, and the count of each. */
static const int codes[] = {200, 400, 404, 405, 408, 431, 500, 503};
#define N_CODES (sizeof(codes) / sizeof(codes[0]))

struct arch_httpd {
    const struct arch_httpd_ops *ops;
    void *ctx;
    const struct logger *lg;
    int listen_fd;
    int wake[2]; /* pipe: a byte on wake[1] stops the thread */
    pthread_t thread;
    struct conn conns[ARCH_HTTPD_MAX_CONNS];
    uint64_t answered[N_CODES];
};

static const char *reason_phrase(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

static int set_nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

static void conn_close(struct conn *c) {
    close(c->fd);
    prom_buf_free(&c->out);
    c->state = CONN_FREE;
    c->fd = -1;
}

/* Prepares the answer and moves the connection to CONN_WRITE. */
static void respond(struct arch_httpd *h, struct conn *c, int status, const char *ctype,
                    const struct prom_buf *body, int head_only) {
    for (size_t i = 0; i < N_CODES; i++)
        if (codes[i] == status)
            h->answered[i]++;
    struct prom_out o = prom_buf_out(&c->out);
    size_t len = body ? body->len : 0;
    prom_printf(&o,
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
                status, reason_phrase(status), ctype, len,
                status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (len && !head_only)
        o.write(o.ctx, body->text, len);
    c->sent = 0;
    c->state = CONN_WRITE;
    c->deadline_ms = util_mono_ms() + ARCH_HTTPD_TIMEOUT_MS;
}

static void respond_text(struct arch_httpd *h, struct conn *c, int status, const char *text) {
    struct prom_buf body = {0};
    struct prom_out o = prom_buf_out(&body);
    prom_printf(&o, "%s\n", text);
    respond(h, c, status, "text/plain; charset=utf-8", &body, 0);
    prom_buf_free(&body);
}

/* A token of the request line: visible ASCII only. */
static int visible(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return n > 0;
}

/* Checks the request line, request-line = method SP request-target SP HTTP-version CRLF (RFC 9112
 * 3), once c->head holds all of it. Returns 0 when it is well formed, with the method's and the
 * target's ends in *sp1 and *sp2 (the spaces after them), else -1. */
static int parse_request_line(struct conn *c, char **sp1, char **sp2) {
    char *eol = strstr(c->head, "\r\n");
    if (!eol)
        return -1;
    *sp1 = memchr(c->head, ' ', (size_t)(eol - c->head));
    *sp2 = *sp1 ? memchr(*sp1 + 1, ' ', (size_t)(eol - *sp1 - 1)) : NULL;
    if (!*sp2 || !visible(c->head, (size_t)(*sp1 - c->head)) ||
        !visible(*sp1 + 1, (size_t)(*sp2 - *sp1 - 1)) || (*sp1)[1] != '/' ||
        (size_t)(eol - *sp2 - 1) != 8 ||
        (strncmp(*sp2 + 1, "HTTP/1.1", 8) != 0 && strncmp(*sp2 + 1, "HTTP/1.0", 8) != 0))
        return -1;
    for (const char *p = c->head; p < *sp1; p++)
        if (*p < 'A' || *p > 'Z')
            return -1;
    return 0;
}

/* The head is complete and its request line well formed: answer it. */
static void handle_request(struct arch_httpd *h, struct conn *c, char *sp1, char *sp2) {
    size_t mlen = (size_t)(sp1 - c->head);
    int head_only = mlen == 4 && memcmp(c->head, "HEAD", 4) == 0;
    if (!head_only && !(mlen == 3 && memcmp(c->head, "GET", 3) == 0)) {
        respond_text(h, c, 405, "method not allowed");
        return;
    }
    *sp2 = '\0';
    char *path = sp1 + 1;
    path[strcspn(path, "?#")] = '\0';
    struct prom_buf body = {0};
    const char *ctype = "text/plain; charset=utf-8";
    int status = h->ops->get(h->ctx, h, path, &body, &ctype);
    if (body.failed) {
        prom_buf_free(&body);
        respond_text(h, c, 500, "out of memory");
        return;
    }
    respond(h, c, status, ctype, &body, head_only);
    prom_buf_free(&body);
}

/* Looks at what has arrived: garbage is answered as soon as it shows (a NUL or a control
 * character, a malformed first line), a complete head is handled, anything else waits for more. */
static void examine(struct arch_httpd *h, struct conn *c) {
    for (size_t i = 0; i < c->head_len; i++) {
        unsigned char ch = (unsigned char)c->head[i];
        if ((ch < 0x20 && ch != '\r' && ch != '\n' && ch != '\t') || ch == 0x7f) {
            respond_text(h, c, 400, "bad request");
            return;
        }
    }
    if (!memchr(c->head, '\n', c->head_len))
        return;
    char *sp1, *sp2;
    if (parse_request_line(c, &sp1, &sp2)) {
        respond_text(h, c, 400, "bad request");
        return;
    }
    if (strstr(c->head, "\r\n\r\n"))
        handle_request(h, c, sp1, sp2);
}

static void on_readable(struct arch_httpd *h, struct conn *c) {
    for (;;) {
        if (c->state == CONN_LINGER) {
            char sink[4096];
            ssize_t r = recv(c->fd, sink, sizeof(sink), 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                conn_close(c);
            if (r <= 0)
                return;
            continue;
        }
        size_t room = sizeof(c->head) - 1 - c->head_len;
        if (room == 0) {
            respond_text(h, c, 431, "request head too large");
            return;
        }
        ssize_t r = recv(c->fd, c->head + c->head_len, room, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            conn_close(c); /* gone before its request was complete: nobody to answer */
            return;
        }
        if (r < 0)
            return;
        c->head_len += (size_t)r;
        c->head[c->head_len] = '\0';
        examine(h, c);
        if (c->state != CONN_READ)
            return;
    }
}

static void on_writable(struct conn *c) {
    while (c->sent < c->out.len) {
        ssize_t w = send(c->fd, c->out.text + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (w <= 0) {
            conn_close(c);
            return;
        }
        c->sent += (size_t)w;
    }
    shutdown(c->fd, SHUT_WR);
    prom_buf_free(&c->out);
    c->state = CONN_LINGER;
    c->deadline_ms = util_mono_ms() + LINGER_MS;
}

static void accept_all(struct arch_httpd *h) {
    for (;;) {
        struct conn *c = NULL;
        for (int i = 0; i < ARCH_HTTPD_MAX_CONNS && !c; i++)
            if (h->conns[i].state == CONN_FREE)
                c = &h->conns[i];
        if (!c)
            return; /* the rest wait in the listen backlog */
        int fd = accept(h->listen_fd, NULL, NULL);
        if (fd < 0)
            return;
        if (set_nonblocking(fd)) {
            close(fd);
            continue;
        }
        memset(c, 0, sizeof(*c));
        c->fd = fd;
        c->state = CONN_READ;
        c->deadline_ms = util_mono_ms() + ARCH_HTTPD_TIMEOUT_MS;
    }
}

static void *serve(void *arg) {
    struct arch_httpd *h = arg;
    struct pollfd pfd[ARCH_HTTPD_MAX_CONNS + 2];
    struct conn *owner[ARCH_HTTPD_MAX_CONNS + 2];
    for (;;) {
        int64_t now = util_mono_ms(), next = now + 60000;
        int n = 0, free_slot = 0;
        pfd[n++] = (struct pollfd){.fd = h->wake[0], .events = POLLIN};
        for (int i = 0; i < ARCH_HTTPD_MAX_CONNS; i++) {
            struct conn *c = &h->conns[i];
            if (c->state == CONN_FREE) {
                free_slot = 1;
                continue;
            }
            if (now >= c->deadline_ms) {
                if (c->state == CONN_READ) {
                    respond_text(h, c, 408, "request timeout");
                    c->deadline_ms = now + ARCH_HTTPD_TIMEOUT_MS;
                } else {
                    conn_close(c);
                    free_slot = 1;
                    continue;
                }
            }
            if (c->deadline_ms < next)
                next = c->deadline_ms;
            owner[n] = c;
            pfd[n++] =
                (struct pollfd){.fd = c->fd, .events = c->state == CONN_WRITE ? POLLOUT : POLLIN};
        }
        int listen_at = -1;
        if (free_slot) {
            listen_at = n;
            pfd[n++] = (struct pollfd){.fd = h->listen_fd, .events = POLLIN};
        }
        int rc = poll(pfd, (nfds_t)n, (int)(next - now));
        if (rc < 0 && errno != EINTR) {
            log_msg(h->lg, LOG_ERROR, "metrics listener: poll: %s", strerror(errno));
            break;
        }
        if (rc <= 0)
            continue;
        if (pfd[0].revents)
            break;
        for (int i = 1; i < n; i++) {
            if (i == listen_at || !pfd[i].revents)
                continue;
            struct conn *c = owner[i];
            if (c->state == CONN_WRITE)
                on_writable(c);
            else
                on_readable(h, c);
            /* A request answered while reading: try to write it at once. */
            if (c->state == CONN_WRITE)
                on_writable(c);
        }
        if (listen_at >= 0 && pfd[listen_at].revents)
            accept_all(h);
    }
    return NULL;
}

static int open_listener(const char *bind_addr, int port, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(bind_addr && bind_addr[0] ? bind_addr : NULL, service, &hints, &res);
    if (gai) {
        snprintf(err, errlen, "cannot resolve '%s': %s", bind_addr, gai_strerror(gai));
        return -1;
    }
    int fd = -1, saved = 0;
    /* The wildcard gives :: and 0.0.0.0: :: takes IPv4 too where the host has IPv6 at all. */
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 64) || set_nonblocking(fd)) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "cannot listen on %s:%d: %s",
                 bind_addr && bind_addr[0] ? bind_addr : "*", port, strerror(saved));
    return fd;
}

struct arch_httpd *arch_httpd_start(const char *bind_addr, int port,
                                    const struct arch_httpd_ops *ops, void *ctx,
                                    const struct logger *lg, char *err, size_t errlen) {
    struct arch_httpd *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->ops = ops;
    h->ctx = ctx;
    h->lg = lg;
    h->wake[0] = h->wake[1] = -1;
    h->listen_fd = open_listener(bind_addr, port, err, errlen);
    if (h->listen_fd < 0) {
        free(h);
        return NULL;
    }
    if (pipe2(h->wake, O_CLOEXEC)) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        close(h->listen_fd);
        free(h);
        return NULL;
    }
    /* The thread blocks every signal, so SIGTERM always reaches the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&h->thread, NULL, serve, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        snprintf(err, errlen, "pthread_create: %s", strerror(rc));
        close(h->wake[0]);
        close(h->wake[1]);
        close(h->listen_fd);
        free(h);
        return NULL;
    }
    return h;
}

void arch_httpd_stop(struct arch_httpd *h) {
    if (!h)
        return;
    char b = 0;
    while (write(h->wake[1], &b, 1) < 0 && errno == EINTR)
        ;
    pthread_join(h->thread, NULL);
    for (int i = 0; i < ARCH_HTTPD_MAX_CONNS; i++)
        if (h->conns[i].state != CONN_FREE)
            conn_close(&h->conns[i]);
    close(h->wake[0]);
    close(h->wake[1]);
    close(h->listen_fd);
    free(h);
}

void arch_httpd_write_metrics(struct arch_httpd *h, const struct prom_out *o) {
    prom_family(o, "rrm_archiver_http_requests_total", "counter",
                "Requests to the metrics port answered, by HTTP status (400: malformed, 405: not "
                "GET or HEAD, 408: not sent in time, 431: head too large).");
    for (size_t i = 0; i < N_CODES; i++)
        prom_printf(o, "rrm_archiver_http_requests_total{code=\"%d\"} %" PRIu64 "\n", codes[i],
                    h->answered[i]);
}
