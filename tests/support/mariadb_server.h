/*
 * mariadb_server.h - run a private, throw-away MariaDB server for tests.
 *
 * This module owns one mariadbd child process together with its temporary
 * directory (data dir initialised by mariadb-install-db, unix socket, pid file,
 * logs) and its TCP port on 127.0.0.1. Login: user MARIADB_SERVER_USER with an
 * empty password over TCP 127.0.0.1:<port>; database MARIADB_SERVER_DATABASE
 * is created at start. The data dir survives stop/kill/restart, so restarts
 * keep data (and a kill exercises InnoDB crash recovery).
 *
 * The server is started with --no-defaults (system my.cnf is ignored) and
 * character-set-server=utf8mb4 / collation-server=utf8mb4_general_ci (the
 * Debian packaged defaults), plus settings that make startup fast and
 * durability relaxed (innodb-flush-log-at-trx-commit=2).
 *
 * Files in the temp dir: install.log (mariadb-install-db output), err.log
 * (server error log), mariadbd.out (server stdout/stderr), data/ (datadir),
 * mysqld.sock, mysqld.pid. Logs are printed to stderr when a start fails.
 */
#ifndef RRM_TESTSUPPORT_MARIADB_SERVER_H
#define RRM_TESTSUPPORT_MARIADB_SERVER_H

#include <mysql.h>
#include <sys/types.h>

#define MARIADB_SERVER_USER "root"
#define MARIADB_SERVER_PASSWORD ""
#define MARIADB_SERVER_DATABASE "websocketdata"

struct mariadb_server;

/* Options of mariadb_server_start_opts; every field may be NULL. */
struct mariadb_server_options {
    /* TLS: the server's certificate and key and the CA of client certificates (PEM files,
     * paths copied), passed as --ssl-cert, --ssl-key and --ssl-ca. With ssl_cert and ssl_key
     * set the server offers TLS; users created with REQUIRE SSL must use it. The test login
     * (MARIADB_SERVER_USER) stays plain. */
    const char *ssl_ca, *ssl_cert, *ssl_key;
};

/*
 * Find mariadb-install-db and mariadbd (PATH, /usr/sbin, /usr/bin), create a
 * temp dir, initialise a data dir, pick a free port, start the server and wait
 * (up to 30 s) until a client login over TCP works; then create database
 * MARIADB_SERVER_DATABASE. Returns the new object (caller frees with
 * mariadb_server_destroy) or NULL.
 */
struct mariadb_server *mariadb_server_start(void);

/* mariadb_server_start with options (NULL: none); restarts keep them. */
struct mariadb_server *mariadb_server_start_opts(const struct mariadb_server_options *opts);

/* TCP port on 127.0.0.1 (stable across restarts). */
int mariadb_server_port(const struct mariadb_server *ms);

/* Pid of the running server, or 0 if it is not running. */
pid_t mariadb_server_pid(const struct mariadb_server *ms);

/* Temp directory / unix socket path (owned by ms; valid until destroy). */
const char *mariadb_server_dir(const struct mariadb_server *ms);
const char *mariadb_server_socket(const struct mariadb_server *ms);

/*
 * Stop the server: SIGTERM (clean shutdown), wait up to 30 s, SIGKILL as
 * fallback. The object and data dir are kept for mariadb_server_restart.
 * Returns 0 on a clean stop or if not running, negative otherwise.
 */
int mariadb_server_stop(struct mariadb_server *ms);

/* SIGKILL the server and reap it (simulates a crash). 0 or negative. */
int mariadb_server_kill(struct mariadb_server *ms);

/*
 * Start the server again with the same port and data dir (stopping it first
 * if running) and wait until a login works. Returns 0 or negative.
 */
int mariadb_server_restart(struct mariadb_server *ms);

/* Stop if running, remove the temp dir and free ms. NULL is allowed. */
void mariadb_server_destroy(struct mariadb_server *ms);

/*
 * New client connection over TCP as MARIADB_SERVER_USER, default database db
 * (may be NULL), connect/read/write timeouts of a few seconds, utf8mb4.
 * Returns NULL on failure (error printed to stderr); caller frees with
 * mysql_close.
 */
MYSQL *mariadb_server_client(const struct mariadb_server *ms, const char *db);

/*
 * Run sql (one or more ';'-separated statements, results discarded) in
 * database MARIADB_SERVER_DATABASE. Returns 0, or -EIO on an SQL error (the
 * error is printed to stderr), other negative on failure.
 */
int mariadb_server_exec(const struct mariadb_server *ms, const char *sql);

/*
 * Read the file at path and run it like mariadb_server_exec. Client-side
 * commands of the mariadb CLI (DELIMITER, SOURCE, ...) are not supported.
 */
int mariadb_server_exec_file(const struct mariadb_server *ms, const char *path);

#endif /* RRM_TESTSUPPORT_MARIADB_SERVER_H */
