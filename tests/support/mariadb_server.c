/*
 * mariadb_server.c - run a private, throw-away MariaDB server for tests.
 *
 * See mariadb_server.h. Start = mariadb-install-db into TMP/data (password-less
 * root, no test db), then mariadbd on a free 127.0.0.1 port. Readiness is "a
 * real client login over TCP succeeds"; the child is watched meanwhile so a
 * server that dies at startup is reported at once with its error log.
 * When running as root, both tools need --user=root (mariadbd refuses to run
 * as root otherwise).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "mariadb_server.h"

#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS_INSTALL_TIMEOUT_MS 60000
#define MS_START_TIMEOUT_MS 30000
#define MS_STOP_TIMEOUT_MS 30000
#define MS_CLIENT_TIMEOUT_S 10
#define MS_RETRY_MS 20
#define MS_PORT_ATTEMPTS 3
#define MS_MAX_ARGS 40
#define MS_MAX_SQL_FILE (16 * 1024 * 1024)

/* InnoDB settings shared by install-db and the server (keeps files compatible). */
#define MS_INNODB_POOL "--innodb-buffer-pool-size=64M"
#define MS_INNODB_LOG "--innodb-log-file-size=16M"

struct mariadb_server {
    char *install_exe;                 /* mariadb-install-db / mysql_install_db; owned */
    char *server_exe;                  /* mariadbd / mysqld; owned */
    char *dir;                         /* temp dir; owned, removed by destroy */
    char *datadir;                     /* dir/data; owned */
    char *sock;                        /* dir/mysqld.sock; owned */
    char *pidfile;                     /* dir/mysqld.pid; owned */
    char *errlog;                      /* dir/err.log; owned */
    char *outlog;                      /* dir/mariadbd.out; owned */
    char *installlog;                  /* dir/install.log; owned */
    char *user;                        /* "--user=NAME" when running as root, else NULL; owned */
    char *ssl_ca, *ssl_cert, *ssl_key; /* TLS files, NULL if not given; owned */
    int port;
    pid_t pid; /* 0 when not running */
};

/* A small argv under construction; every string is malloc'd and owned. */
struct argv_buf {
    char *v[MS_MAX_ARGS + 1];
    int n;
    int failed;
};

static void arg_add(struct argv_buf *a, const char *fmt, ...) {
    va_list ap;
    char *s = NULL;
    if (a->failed || a->n >= MS_MAX_ARGS) {
        a->failed = 1;
        return;
    }
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) {
        s = NULL;
        a->failed = 1;
    }
    va_end(ap);
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void arg_free(struct argv_buf *a) {
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    a->n = 0;
}

static char *path_join(const char *dir, const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

static char *find_first(const char *a, const char *b) {
    char *p = proc_which(a);
    return p ? p : proc_which(b);
}

static void report_failure(const struct mariadb_server *ms, const char *what, int err) {
    fprintf(stderr, "mariadb_server: %s failed (port %d): %s\n", what, ms->port,
            strerror(err < 0 ? -err : err));
    if (ms->installlog)
        proc_dump_file_tail(ms->installlog, 4096);
    if (ms->errlog)
        proc_dump_file_tail(ms->errlog, 6144);
    if (ms->outlog)
        proc_dump_file_tail(ms->outlog, 2048);
}

/* Run mariadb-install-db into ms->datadir. 0 or negative. */
static int install_db(struct mariadb_server *ms) {
    struct argv_buf a = {.n = 0};
    int status = 0, r;

    arg_add(&a, "%s", ms->install_exe);
    arg_add(&a, "--no-defaults");
    arg_add(&a, "--auth-root-authentication-method=normal");
    arg_add(&a, "--datadir=%s", ms->datadir);
    arg_add(&a, "--skip-test-db");
    arg_add(&a, "--skip-name-resolve");
    if (ms->user)
        arg_add(&a, "%s", ms->user);
    /* Passed through to the bootstrap server. A private tmpdir matters:
     * concurrent bootstraps sharing /tmp can delete each other's temp tables. */
    arg_add(&a, "--tmpdir=%s", ms->dir);
    arg_add(&a, MS_INNODB_POOL);
    arg_add(&a, MS_INNODB_LOG);
    arg_add(&a, "--skip-log-bin");
    if (a.failed) {
        arg_free(&a);
        return -ENOMEM;
    }
    pid_t pid = proc_spawn((const char *const *)a.v, NULL, ms->installlog);
    arg_free(&a);
    if (pid < 0)
        return (int)pid;
    r = proc_wait_exit(pid, MS_INSTALL_TIMEOUT_MS, &status);
    if (r == -ETIMEDOUT) {
        proc_stop(pid, SIGKILL, MS_STOP_TIMEOUT_MS, NULL);
        return r;
    }
    if (r < 0)
        return r;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -EIO;
    return 0;
}

/* Spawn mariadbd on ms->port. 0 or negative. */
static int spawn_server(struct mariadb_server *ms) {
    struct argv_buf a = {.n = 0};
    arg_add(&a, "%s", ms->server_exe);
    arg_add(&a, "--no-defaults"); /* must be the first option */
    if (ms->user)
        arg_add(&a, "%s", ms->user);
    arg_add(&a, "--datadir=%s", ms->datadir);
    arg_add(&a, "--tmpdir=%s", ms->dir);
    arg_add(&a, "--socket=%s", ms->sock);
    arg_add(&a, "--port=%d", ms->port);
    arg_add(&a, "--bind-address=127.0.0.1");
    arg_add(&a, "--skip-networking=0");
    arg_add(&a, "--pid-file=%s", ms->pidfile);
    arg_add(&a, "--log-error=%s", ms->errlog);
    arg_add(&a, MS_INNODB_POOL);
    arg_add(&a, MS_INNODB_LOG);
    arg_add(&a, "--innodb-flush-log-at-trx-commit=2");
    arg_add(&a, "--skip-log-bin");
    arg_add(&a, "--skip-name-resolve");
    arg_add(&a, "--character-set-server=utf8mb4");
    arg_add(&a, "--collation-server=utf8mb4_general_ci");
    if (ms->ssl_ca)
        arg_add(&a, "--ssl-ca=%s", ms->ssl_ca);
    if (ms->ssl_cert)
        arg_add(&a, "--ssl-cert=%s", ms->ssl_cert);
    if (ms->ssl_key)
        arg_add(&a, "--ssl-key=%s", ms->ssl_key);
    if (a.failed) {
        arg_free(&a);
        return -ENOMEM;
    }
    pid_t pid = proc_spawn((const char *const *)a.v, NULL, ms->outlog);
    arg_free(&a);
    if (pid < 0)
        return (int)pid;
    ms->pid = pid;
    return 0;
}

/* Open a TCP connection; quiet = don't print errors. NULL on failure. */
static MYSQL *client_connect(int port, const char *db, unsigned timeout_s, unsigned long flags,
                             int quiet) {
    MYSQL *m = mysql_init(NULL);
    unsigned proto = MYSQL_PROTOCOL_TCP;
    if (!m)
        return NULL;
    mysql_options(m, MYSQL_OPT_PROTOCOL, &proto);
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout_s);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout_s);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &timeout_s);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (!mysql_real_connect(m, "127.0.0.1", MARIADB_SERVER_USER, MARIADB_SERVER_PASSWORD, db,
                            (unsigned)port, NULL, flags)) {
        if (!quiet)
            fprintf(stderr, "mariadb_server: connect to 127.0.0.1:%d failed: %s\n", port,
                    mysql_error(m));
        mysql_close(m);
        return NULL;
    }
    return m;
}

/*
 * Wait until a login works (then create the test database), the child dies
 * or the deadline passes. 0 when ready; -ECHILD if the child exited (it is
 * reaped); -ETIMEDOUT; -EIO if the database could not be created.
 */
static int wait_ready(struct mariadb_server *ms, int timeout_ms) {
    int64_t deadline = proc_now_ms() + timeout_ms;
    for (;;) {
        if (proc_check_exited(ms->pid, NULL) == 0) {
            ms->pid = 0;
            return -ECHILD;
        }
        MYSQL *m = client_connect(ms->port, NULL, 2, 0, 1);
        if (m) {
            int r = 0;
            if (mysql_query(m, "CREATE DATABASE IF NOT EXISTS " MARIADB_SERVER_DATABASE) != 0) {
                fprintf(stderr, "mariadb_server: create database: %s\n", mysql_error(m));
                r = -EIO;
            }
            mysql_close(m);
            return r;
        }
        int rem = proc_remaining_ms(deadline);
        if (rem == 0)
            return -ETIMEDOUT;
        poll(NULL, 0, rem < MS_RETRY_MS ? rem : MS_RETRY_MS);
    }
}

/* Spawn and wait for readiness; kills the child unless it is ready. */
static int start_and_wait(struct mariadb_server *ms) {
    int r = spawn_server(ms);
    if (r < 0)
        return r;
    r = wait_ready(ms, MS_START_TIMEOUT_MS);
    if (r < 0 && ms->pid > 0) {
        proc_stop(ms->pid, SIGKILL, MS_STOP_TIMEOUT_MS, NULL);
        ms->pid = 0;
    }
    return r;
}

/* "--user=NAME" of the effective user if we are root, else NULL. */
static char *root_user_option(void) {
    if (geteuid() != 0)
        return NULL;
    struct passwd pw, *res = NULL;
    char buf[4096];
    char *opt = NULL;
    const char *name = "root";
    if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
        name = res->pw_name;
    if (asprintf(&opt, "--user=%s", name) < 0)
        return NULL;
    return opt;
}

struct mariadb_server *mariadb_server_start(void) {
    return mariadb_server_start_opts(NULL);
}

static int copy_opt(char **dst, const char *src) {
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

struct mariadb_server *mariadb_server_start_opts(const struct mariadb_server_options *opts) {
    struct mariadb_server *ms = calloc(1, sizeof(*ms));
    int r = -ENOMEM;
    if (!ms)
        return NULL;
    if (opts && (copy_opt(&ms->ssl_ca, opts->ssl_ca) || copy_opt(&ms->ssl_cert, opts->ssl_cert) ||
                 copy_opt(&ms->ssl_key, opts->ssl_key)))
        goto fail;
    ms->install_exe = find_first("mariadb-install-db", "mysql_install_db");
    ms->server_exe = find_first("mariadbd", "mysqld");
    if (!ms->install_exe || !ms->server_exe) {
        fprintf(stderr, "mariadb_server: mariadb-install-db or mariadbd not found\n");
        r = -ENOENT;
        goto fail;
    }
    if (geteuid() == 0) {
        ms->user = root_user_option();
        if (!ms->user)
            goto fail;
    }
    ms->dir = proc_tmpdir("mariadb");
    if (!ms->dir) {
        r = -errno;
        goto fail;
    }
    ms->datadir = path_join(ms->dir, "data");
    ms->sock = path_join(ms->dir, "mysqld.sock");
    ms->pidfile = path_join(ms->dir, "mysqld.pid");
    ms->errlog = path_join(ms->dir, "err.log");
    ms->outlog = path_join(ms->dir, "mariadbd.out");
    ms->installlog = path_join(ms->dir, "install.log");
    if (!ms->datadir || !ms->sock || !ms->pidfile || !ms->errlog || !ms->outlog || !ms->installlog)
        goto fail;
    if (strlen(ms->sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "mariadb_server: socket path too long (set a shorter TMPDIR): %s\n",
                ms->sock);
        r = -ENAMETOOLONG;
        goto fail;
    }
    r = install_db(ms);
    if (r < 0)
        goto fail;
    /* The free port may be taken by someone else before mariadbd binds it. */
    for (int attempt = 0; attempt < MS_PORT_ATTEMPTS; attempt++) {
        ms->port = proc_free_port();
        if (ms->port < 0) {
            r = ms->port;
            goto fail;
        }
        r = start_and_wait(ms);
        if (r != -ECHILD)
            break;
    }
    if (r < 0)
        goto fail;
    return ms;
fail:
    report_failure(ms, "start", r);
    mariadb_server_destroy(ms);
    return NULL;
}

int mariadb_server_port(const struct mariadb_server *ms) {
    return ms ? ms->port : -EINVAL;
}

pid_t mariadb_server_pid(const struct mariadb_server *ms) {
    return ms ? ms->pid : 0;
}

const char *mariadb_server_dir(const struct mariadb_server *ms) {
    return ms ? ms->dir : NULL;
}

const char *mariadb_server_socket(const struct mariadb_server *ms) {
    return ms ? ms->sock : NULL;
}

int mariadb_server_stop(struct mariadb_server *ms) {
    if (!ms)
        return -EINVAL;
    if (ms->pid <= 0)
        return 0;
    int r = proc_stop(ms->pid, SIGTERM, MS_STOP_TIMEOUT_MS, NULL);
    ms->pid = 0;
    return r;
}

int mariadb_server_kill(struct mariadb_server *ms) {
    if (!ms)
        return -EINVAL;
    if (ms->pid <= 0)
        return 0;
    int r = proc_stop(ms->pid, SIGKILL, MS_STOP_TIMEOUT_MS, NULL);
    ms->pid = 0;
    return r;
}

int mariadb_server_restart(struct mariadb_server *ms) {
    if (!ms)
        return -EINVAL;
    mariadb_server_stop(ms);
    int r = start_and_wait(ms);
    if (r < 0)
        report_failure(ms, "restart", r);
    return r;
}

void mariadb_server_destroy(struct mariadb_server *ms) {
    if (!ms)
        return;
    mariadb_server_stop(ms);
    if (ms->dir)
        proc_rmtree(ms->dir);
    free(ms->install_exe);
    free(ms->server_exe);
    free(ms->dir);
    free(ms->datadir);
    free(ms->sock);
    free(ms->pidfile);
    free(ms->errlog);
    free(ms->outlog);
    free(ms->installlog);
    free(ms->user);
    free(ms->ssl_ca);
    free(ms->ssl_cert);
    free(ms->ssl_key);
    free(ms);
}

MYSQL *mariadb_server_client(const struct mariadb_server *ms, const char *db) {
    if (!ms || ms->port <= 0)
        return NULL;
    return client_connect(ms->port, db, MS_CLIENT_TIMEOUT_S, 0, 0);
}

int mariadb_server_exec(const struct mariadb_server *ms, const char *sql) {
    int ret = 0;
    if (!ms || !sql)
        return -EINVAL;
    MYSQL *m = client_connect(ms->port, MARIADB_SERVER_DATABASE, MS_CLIENT_TIMEOUT_S,
                              CLIENT_MULTI_STATEMENTS, 0);
    if (!m)
        return -ECONNREFUSED;
    if (mysql_real_query(m, sql, strlen(sql)) != 0) {
        ret = -EIO;
    } else {
        int more;
        do {
            MYSQL_RES *res = mysql_store_result(m);
            if (res)
                mysql_free_result(res);
            else if (mysql_field_count(m) != 0)
                ret = -EIO;
            more = mysql_next_result(m);
            if (more > 0)
                ret = -EIO;
        } while (more == 0);
    }
    if (ret < 0)
        fprintf(stderr, "mariadb_server: SQL error %u: %s\n", mysql_errno(m), mysql_error(m));
    mysql_close(m);
    return ret;
}

int mariadb_server_exec_file(const struct mariadb_server *ms, const char *path) {
    struct stat st;
    int ret;
    if (!ms || !path)
        return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        ret = -errno;
        close(fd);
        return ret;
    }
    if (st.st_size > MS_MAX_SQL_FILE) {
        close(fd);
        return -EFBIG;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *sql = malloc(size + 1);
    if (!sql) {
        close(fd);
        return -ENOMEM;
    }
    while (got < size) {
        ssize_t n = read(fd, sql + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    sql[got] = '\0';
    ret = mariadb_server_exec(ms, sql);
    free(sql);
    return ret;
}
