/*
 * proc.c - process, filesystem and small network helpers for tests.
 *
 * See proc.h for the API contract. Waiting for a child uses a pidfd (poll()
 * wakes up exactly when the child exits) when the kernel supports it, and a
 * short poll() timeout inside a deadline loop otherwise.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Upper bound for a single short wait inside a deadline loop. */
#define PROC_RETRY_MS 20
/* How long to wait for a SIGKILLed child to disappear. */
#define PROC_KILL_WAIT_MS 10000
/* Refuse HTTP responses larger than this. */
#define PROC_HTTP_MAX (64u * 1024u * 1024u)

int64_t proc_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int proc_remaining_ms(int64_t deadline_ms) {
    int64_t left = deadline_ms - proc_now_ms();
    if (left <= 0)
        return 0;
    if (left > 0x7fffffff)
        return 0x7fffffff;
    return (int)left;
}

static int min_int(int a, int b) {
    return a < b ? a : b;
}

/* First port of the kernel's ephemeral range (32768 if it cannot be read). */
static int ephemeral_low(void) {
    int lo = 32768, hi = 0;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    return lo;
}

/* 0 if 127.0.0.1:port can be bound now, else a negative errno value. */
static int bindable(int port) {
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int proc_free_port(void) {
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() ^ (unsigned)proc_now_ms();
    int lo = 10000, hi = ephemeral_low();
    if (hi - lo < 1000)
        lo = 1024;
    for (int tries = 0; tries < 1000; tries++) {
        int port = lo + (int)(rand_r(&seed) % (unsigned)(hi - lo));
        if (bindable(port) == 0)
            return port;
    }
    return -EADDRINUSE;
}

int proc_free_port_pair(int offset) {
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() ^ (unsigned)proc_now_ms() ^ 0x5a5a5a5au;
    if (offset <= 0 || offset > 65535 - 1024)
        return -EINVAL;
    int lo = 10000, hi = ephemeral_low() - offset;
    if (hi - lo < 1000) {
        lo = 1024;
        hi = 65536 - offset;
    }
    for (int tries = 0; tries < 1000; tries++) {
        int port = lo + (int)(rand_r(&seed) % (unsigned)(hi - lo));
        if (bindable(port) == 0 && bindable(port + offset) == 0)
            return port;
    }
    return -EADDRINUSE;
}

/* Binds fd to the literal address src (any port) of the given family. 0 or -errno. */
static int bind_source(int fd, int family, const char *src) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    if (getaddrinfo(src, NULL, &hints, &res) != 0)
        return -EADDRNOTAVAIL;
    int r = bind(fd, res->ai_addr, res->ai_addrlen) < 0 ? -errno : 0;
    freeaddrinfo(res);
    return r;
}

/* Connect one resolved address within the deadline, from src if not NULL. Returns fd or
 * -errno. */
static int connect_addr(const struct addrinfo *ai, const char *src, int64_t deadline) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    if (src) {
        int r = bind_source(fd, ai->ai_family, src);
        if (r < 0) {
            close(fd);
            return r;
        }
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS) {
            int err = -errno;
            close(fd);
            return err;
        }
        for (;;) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int rem = proc_remaining_ms(deadline);
            int r = poll(&pfd, 1, rem);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                int err = -errno;
                close(fd);
                return err;
            }
            if (r == 0) {
                close(fd);
                return -ETIMEDOUT;
            }
            break;
        }
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            soerr = errno;
        if (soerr != 0) {
            close(fd);
            return -soerr;
        }
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int proc_tcp_connect(const char *host, int port, int timeout_ms) {
    return proc_tcp_connect_from(NULL, host, port, timeout_ms);
}

int proc_tcp_connect_from(const char *src, const char *host, int port, int timeout_ms) {
    struct addrinfo hints, *res = NULL;
    char portstr[16];
    int64_t deadline = proc_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    int err = -ECONNREFUSED;

    if (!host || port <= 0 || port > 65535)
        return -EINVAL;
    snprintf(portstr, sizeof(portstr), "%d", port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int gr = getaddrinfo(host, portstr, &hints, &res);
    if (gr != 0)
        return gr == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = connect_addr(ai, src, deadline);
        if (fd >= 0) {
            freeaddrinfo(res);
            return fd;
        }
        err = fd;
        if (err == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return err;
}

int proc_wait_port(int port, int timeout_ms) {
    int64_t deadline = proc_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        int fd = proc_tcp_connect("127.0.0.1", port, proc_remaining_ms(deadline));
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        int rem = proc_remaining_ms(deadline);
        if (rem == 0)
            return -ETIMEDOUT;
        /* Short bounded wait before the next attempt, still inside deadline. */
        poll(NULL, 0, min_int(rem, PROC_RETRY_MS));
    }
}

static int is_executable_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Returns malloc'd dir/name if it is executable, else NULL. */
static char *try_dir(const char *dir, size_t dlen, const char *name) {
    size_t nlen = strlen(name);
    char *p = malloc(dlen + 1 + nlen + 1);
    if (!p)
        return NULL;
    memcpy(p, dir, dlen);
    p[dlen] = '/';
    memcpy(p + dlen + 1, name, nlen + 1);
    if (is_executable_file(p))
        return p;
    free(p);
    return NULL;
}

char *proc_which(const char *name) {
    static const char *const fallback[] = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                           "/usr/bin",        "/sbin",          "/bin"};
    if (!name || !*name)
        return NULL;
    if (strchr(name, '/'))
        return is_executable_file(name) ? strdup(name) : NULL;

    const char *path = getenv("PATH");
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        if (len > 0) {
            char *p = try_dir(path, len, name);
            if (p)
                return p;
        }
        path = colon ? colon + 1 : NULL;
    }
    for (size_t i = 0; i < sizeof(fallback) / sizeof(fallback[0]); i++) {
        char *p = try_dir(fallback[i], strlen(fallback[i]), name);
        if (p)
            return p;
    }
    return NULL;
}

/* Length of the "KEY" part of "KEY=VALUE" (whole length if no '='). */
static size_t env_key_len(const char *kv) {
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

/*
 * Build environ + overrides. Returns a malloc'd NULL-terminated array whose
 * strings are borrowed from environ / env_extra (caller frees only the array).
 */
static char **build_env(const char *const env_extra[]) {
    size_t n_env = 0, n_extra = 0, k = 0;
    while (environ && environ[n_env])
        n_env++;
    while (env_extra && env_extra[n_extra])
        n_extra++;
    char **envp = calloc(n_env + n_extra + 1, sizeof(*envp));
    if (!envp)
        return NULL;
    for (size_t i = 0; i < n_env; i++) {
        size_t klen = env_key_len(environ[i]);
        int overridden = 0;
        for (size_t j = 0; j < n_extra && !overridden; j++) {
            overridden =
                env_key_len(env_extra[j]) == klen && strncmp(environ[i], env_extra[j], klen) == 0;
        }
        if (!overridden)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; j < n_extra; j++)
        envp[k++] = (char *)env_extra[j];
    envp[k] = NULL;
    return envp;
}

/* Child side of fork: make fd appear as target without close-on-exec. */
static int child_dup_to(int fd, int target) {
    if (fd == target) {
        int fl = fcntl(fd, F_GETFD);
        return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
    }
    return dup2(fd, target) < 0 ? -1 : 0;
}

pid_t proc_spawn(const char *const argv[], const char *const env_extra[], const char *log_path) {
    int devnull = -1, logfd = -1, errpipe[2] = {-1, -1};
    char *exe = NULL;
    char **envp = NULL;
    pid_t pid;
    int err = 0;

    if (!argv || !argv[0])
        return -EINVAL;
    exe = proc_which(argv[0]);
    if (!exe)
        return -ENOENT;
    envp = build_env(env_extra);
    if (!envp) {
        err = -ENOMEM;
        goto out;
    }
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) {
        err = -errno;
        goto out;
    }
    if (log_path) {
        logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (logfd < 0) {
            err = -errno;
            goto out;
        }
    }
    if (pipe2(errpipe, O_CLOEXEC) < 0) {
        err = -errno;
        goto out;
    }

    pid_t parent = getpid();
    pid = fork();
    if (pid < 0) {
        err = -errno;
        goto out;
    }
    if (pid == 0) {
        /* Child: only async-signal-safe calls from here on. */
        sigset_t none;
        int e;
        if (child_dup_to(devnull, STDIN_FILENO) < 0)
            goto child_fail;
        if (logfd >= 0 &&
            (child_dup_to(logfd, STDOUT_FILENO) < 0 || child_dup_to(logfd, STDERR_FILENO) < 0))
            goto child_fail;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        /* Do not outlive a crashed test; covers a parent that died already. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        execve(exe, (char *const *)argv, envp);
    child_fail:
        e = errno;
        if (write(errpipe[1], &e, sizeof(e)) < 0) {
            /* nothing more we can do */
        }
        _exit(127);
    }

    /* Parent: the pipe reads EOF on successful exec (close-on-exec). */
    close(errpipe[1]);
    errpipe[1] = -1;
    {
        int child_errno = 0;
        ssize_t r;
        do {
            r = read(errpipe[0], &child_errno, sizeof(child_errno));
        } while (r < 0 && errno == EINTR);
        if (r == (ssize_t)sizeof(child_errno)) {
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
            }
            err = child_errno > 0 ? -child_errno : -ECHILD;
        } else {
            err = (int)pid;
        }
    }

out:
    if (errpipe[0] >= 0)
        close(errpipe[0]);
    if (errpipe[1] >= 0)
        close(errpipe[1]);
    if (logfd >= 0)
        close(logfd);
    if (devnull >= 0)
        close(devnull);
    free(envp);
    free(exe);
    return (pid_t)err;
}

int proc_check_exited(pid_t pid, int *status) {
    int st = 0;
    pid_t r;
    if (pid <= 0)
        return -EINVAL;
    do {
        r = waitpid(pid, &st, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (r == 0)
        return 1;
    if (status)
        *status = st;
    return 0;
}

/* pidfd for pid, or -1 if unsupported (then we fall back to short polls). */
static int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        int ifd = (int)fd;
        int fl = fcntl(ifd, F_GETFD);
        if (fl >= 0)
            fcntl(ifd, F_SETFD, fl | FD_CLOEXEC);
        return ifd;
    }
#else
    (void)pid;
#endif
    return -1;
}

int proc_wait_exit(pid_t pid, int timeout_ms, int *status) {
    int64_t deadline = proc_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    int pidfd = -1;
    int ret;

    if (pid <= 0)
        return -EINVAL;
    pidfd = open_pidfd(pid);
    for (;;) {
        ret = proc_check_exited(pid, status);
        if (ret <= 0)
            break;
        int rem = proc_remaining_ms(deadline);
        if (rem == 0) {
            ret = -ETIMEDOUT;
            break;
        }
        if (pidfd >= 0) {
            struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
            poll(&pfd, 1, rem);
        } else {
            poll(NULL, 0, min_int(rem, PROC_RETRY_MS));
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    return ret;
}

int proc_stop(pid_t pid, int sig, int timeout_ms, int *status) {
    int r;
    if (pid <= 0)
        return -EINVAL;
    if (kill(pid, sig) < 0 && errno != ESRCH)
        return -errno;
    r = proc_wait_exit(pid, timeout_ms, status);
    if (r != -ETIMEDOUT)
        return r;
    kill(pid, SIGKILL);
    r = proc_wait_exit(pid, PROC_KILL_WAIT_MS, status);
    return r == 0 ? -ETIMEDOUT : r;
}

char *proc_tmpdir(const char *tag) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    if (!tag || !*tag)
        tag = "test";
    size_t len = strlen(base) + strlen(tag) + sizeof("/rrm--XXXXXX");
    char *path = malloc(len);
    if (!path)
        return NULL;
    snprintf(path, len, "%s/rrm-%s-XXXXXX", base, tag);
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static int rmtree_cb(const char *path, const struct stat *sb, int typeflag, struct FTW *ftw) {
    (void)sb;
    (void)typeflag;
    (void)ftw;
    if (remove(path) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

int proc_rmtree(const char *dir) {
    struct stat st;
    if (!dir || !*dir)
        return -EINVAL;
    if (lstat(dir, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    int r = nftw(dir, rmtree_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (r < 0)
        return -errno;
    return r;
}

/* Send all bytes before the deadline. Returns 0 or -errno. */
static int send_all(int fd, const char *buf, size_t len, int64_t deadline) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int rem = proc_remaining_ms(deadline);
        if (rem == 0 || poll(&pfd, 1, rem) == 0)
            return -ETIMEDOUT;
    }
    return 0;
}

/*
 * Find header `name` in the header block hdr[0..len) (which starts after the
 * status line). Returns a pointer to the trimmed value and its length, or NULL.
 */
static const char *http_find_header(const char *hdr, size_t len, const char *name, size_t *vlen) {
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

/*
 * Decode a chunked body in buf[0..len). Returns 1 when complete (decoded data
 * written into out, which must have room for len bytes, *outlen set), 0 if
 * more input is needed, -EPROTO on malformed input.
 */
static int http_dechunk(const char *buf, size_t len, char *out, size_t *outlen) {
    size_t pos = 0, o = 0;
    for (;;) {
        const char *eol = memmem(buf + pos, len - pos, "\r\n", 2);
        if (!eol)
            return 0;
        char *endp;
        unsigned long sz = strtoul(buf + pos, &endp, 16);
        if (endp == buf + pos)
            return -EPROTO;
        pos = (size_t)(eol - buf) + 2;
        if (sz == 0) {
            /* Optional trailers, then an empty line. */
            for (;;) {
                const char *t = memmem(buf + pos, len - pos, "\r\n", 2);
                if (!t)
                    return 0;
                if (t == buf + pos) {
                    *outlen = o;
                    return 1;
                }
                pos = (size_t)(t - buf) + 2;
            }
        }
        if (sz > len || len - pos < sz + 2)
            return 0;
        memcpy(out + o, buf + pos, sz);
        o += sz;
        pos += sz;
        if (buf[pos] != '\r' || buf[pos + 1] != '\n')
            return -EPROTO;
        pos += 2;
    }
}

/*
 * Examine a (possibly partial) response. Returns 1 if complete (status and
 * body filled; body malloc'd), 0 if more is needed, negative on error.
 * at_eof tells whether the peer has closed the connection.
 */
static int http_parse(const char *buf, size_t len, int at_eof, int *status, char **body) {
    const char *hend = memmem(buf, len, "\r\n\r\n", 4);
    if (!hend)
        return at_eof ? -EPROTO : 0;
    int major, minor, code;
    if (sscanf(buf, "HTTP/%d.%d %d", &major, &minor, &code) != 3)
        return -EPROTO;
    const char *sl_end = memmem(buf, len, "\r\n", 2);
    const char *hdr = sl_end + 2;
    size_t hlen = (size_t)(hend + 2 - hdr);
    const char *b = hend + 4;
    size_t blen = len - (size_t)(b - buf);
    size_t vlen;
    const char *v;
    char *out;

    if (code == 204 || code == 304 || (code >= 100 && code < 200)) {
        blen = 0;
    } else if ((v = http_find_header(hdr, hlen, "Transfer-Encoding", &vlen)) && vlen >= 7 &&
               strncasecmp(v + vlen - 7, "chunked", 7) == 0) {
        out = malloc(blen + 1);
        if (!out)
            return -ENOMEM;
        size_t olen = 0;
        int r = http_dechunk(b, blen, out, &olen);
        if (r <= 0) {
            free(out);
            return r < 0 ? r : (at_eof ? -EPROTO : 0);
        }
        out[olen] = '\0';
        *status = code;
        *body = out;
        return 1;
    } else if ((v = http_find_header(hdr, hlen, "Content-Length", &vlen))) {
        unsigned long long cl = strtoull(v, NULL, 10);
        if (blen < cl)
            return at_eof ? -EPROTO : 0;
        blen = (size_t)cl;
    } else if (!at_eof) {
        return 0;
    }
    out = malloc(blen + 1);
    if (!out)
        return -ENOMEM;
    memcpy(out, b, blen);
    out[blen] = '\0';
    *status = code;
    *body = out;
    return 1;
}

int proc_http_get(int port, const char *path, int timeout_ms, int *status, char **body) {
    int64_t deadline = proc_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    char *req = NULL, *buf = NULL;
    size_t len = 0, cap = 0;
    int fd, ret, code = 0;
    char *out = NULL;

    if (body)
        *body = NULL;
    if (!path || path[0] != '/')
        return -EINVAL;
    fd = proc_tcp_connect("127.0.0.1", port, proc_remaining_ms(deadline));
    if (fd < 0)
        return fd;
    if (asprintf(&req,
                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: rrm-testsupport\r\n"
                 "Accept: */*\r\nConnection: close\r\n\r\n",
                 path, port) < 0) {
        req = NULL;
        ret = -ENOMEM;
        goto out;
    }
    ret = send_all(fd, req, strlen(req), deadline);
    if (ret < 0)
        goto out;
    for (;;) {
        if (cap - len < 4096) {
            size_t ncap = cap ? cap * 2 : 8192;
            if (ncap > PROC_HTTP_MAX) {
                ret = -EMSGSIZE;
                goto out;
            }
            char *nb = realloc(buf, ncap);
            if (!nb) {
                ret = -ENOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            int rem = proc_remaining_ms(deadline);
            if (rem == 0 || poll(&pfd, 1, rem) == 0) {
                ret = -ETIMEDOUT;
                goto out;
            }
            continue;
        }
        if (n < 0) {
            /* A reset after a complete response is still a response. */
            int e = errno;
            if (http_parse(buf, len, 1, &code, &out) == 1)
                break;
            ret = -e;
            goto out;
        }
        len += (size_t)n;
        buf[len] = '\0';
        ret = http_parse(buf, len, n == 0, &code, &out);
        if (ret < 0)
            goto out;
        if (ret == 1)
            break;
    }
    ret = 0;
    if (status)
        *status = code;
    if (body) {
        *body = out;
        out = NULL;
    }
out:
    free(out);
    free(buf);
    free(req);
    close(fd);
    return ret;
}

void proc_dump_file_tail(const char *path, size_t max_bytes) {
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "---- %s: cannot open: %s ----\n", path, strerror(errno));
        return;
    }
    if (fstat(fd, &st) == 0 && (size_t)st.st_size > max_bytes)
        lseek(fd, st.st_size - (off_t)max_bytes, SEEK_SET);
    fprintf(stderr, "---- tail of %s ----\n", path);
    fflush(stderr);
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        fwrite(chunk, 1, (size_t)n, stderr);
    fprintf(stderr, "\n---- end of %s ----\n", path);
    close(fd);
}

int proc_http_exchange(const char *src, int port, const char *req, int timeout_ms, char *head,
                       size_t cap) {
    int fd = proc_tcp_connect_from(src, "127.0.0.1", port, timeout_ms);
    if (fd < 0)
        return fd;
    head[0] = '\0';
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
        close(fd);
        return -ECONNRESET;
    }
    size_t len = 0;
    int64_t deadline = proc_now_ms() + timeout_ms;
    int ret = -ETIMEDOUT;
    while (proc_remaining_ms(deadline) > 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, proc_remaining_ms(deadline)) <= 0)
            continue;
        ssize_t n = recv(fd, head + len, cap - 1 - len, 0);
        if (n <= 0) {
            ret = -ECONNRESET;
            break;
        }
        len += (size_t)n;
        head[len] = '\0';
        if (strstr(head, "\r\n\r\n") || len == cap - 1) {
            int code = 0;
            ret = sscanf(head, "HTTP/%*d.%*d %d", &code) == 1 ? code : -EPROTO;
            break;
        }
    }
    close(fd);
    return ret;
}

int proc_promtool_check(const char *text, char *out, size_t cap) {
    char path[] = "/tmp/rrm-metrics-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || cap == 0)
        return -1;
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
    FILE *f = w == (ssize_t)len ? popen(cmd, "r") : NULL;
    if (!f) {
        unlink(path);
        return -1;
    }
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int status = pclose(f);
    unlink(path);
    return status;
}
