/*
 * proc.h - process, filesystem and small network helpers for tests.
 *
 * This module owns: spawning/stopping child processes (servers under test and
 * their dependencies), temporary directories, picking free TCP ports, waiting
 * for a port to accept, a monotonic millisecond clock for deadlines, and a tiny
 * blocking HTTP/1.1 GET client (for /healthz style endpoints).
 *
 * Conventions: functions returning int return 0 (or a documented non-negative
 * value) on success and a negative errno-style value on failure. Nothing here
 * sleeps for a fixed time: every wait is a poll() against a deadline.
 * No global mutable state is kept.
 */
#ifndef RRM_TESTSUPPORT_PROC_H
#define RRM_TESTSUPPORT_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Monotonic clock in milliseconds (CLOCK_MONOTONIC). */
int64_t proc_now_ms(void);

/* Milliseconds left until deadline_ms (a proc_now_ms() value); 0 if passed. */
int proc_remaining_ms(int64_t deadline_ms);

/*
 * A port that 127.0.0.1 can bind now, chosen at random below the kernel's
 * ephemeral range (net.ipv4.ip_local_port_range): a port from that range can
 * be taken meanwhile by any outgoing connection as its local port, and tests
 * open thousands. Returns the port (> 0) or a negative errno value. The port is
 * still only "probably free": another process may bind it before the caller.
 */
int proc_free_port(void);

/*
 * Like proc_free_port, for a server that also listens on port + offset (offset > 0; a Redis
 * Cluster node's bus port is port + 10000): both ports can be bound now and port + offset is at
 * most 65535. Both are chosen below the ephemeral range when it leaves room for them (else
 * anywhere from 1024 up). Returns the port (> 0) or a negative errno value; "probably free" as
 * for proc_free_port.
 */
int proc_free_port_pair(int offset);

/*
 * Open a TCP connection to host:port (host may be a name or a literal address)
 * within timeout_ms. Returns a connected, blocking, close-on-exec socket fd
 * (caller closes it) or a negative errno value (-ETIMEDOUT on timeout).
 */
int proc_tcp_connect(const char *host, int port, int timeout_ms);

/*
 * Like proc_tcp_connect, from the local address src (a literal address, e.g. "127.0.0.5": any
 * 127.0.0.0/8 address works on Linux loopback; NULL: chosen by the kernel).
 */
int proc_tcp_connect_from(const char *src, const char *host, int port, int timeout_ms);

/*
 * Retry connecting to 127.0.0.1:port until a connection is accepted or
 * timeout_ms passes. Returns 0 once the port accepts, -ETIMEDOUT otherwise.
 */
int proc_wait_port(int port, int timeout_ms);

/*
 * Locate an executable: if name contains '/', it is checked as is; otherwise
 * $PATH is searched, then /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin,
 * /sbin, /bin. Returns a malloc'd absolute path (caller frees) or NULL.
 */
char *proc_which(const char *name);

/*
 * fork+exec argv[0] (looked up with proc_which) with argv, in an environment
 * made of the current environment plus env_extra ("K=V" strings, NULL
 * terminated, may be NULL) which override variables of the same name.
 * If log_path is not NULL, the child's stdout and stderr are appended to it;
 * otherwise they are inherited. stdin is /dev/null. The child's signal mask is
 * cleared and SIGPIPE reset to default. The child gets SIGKILL when the
 * calling thread exits (PR_SET_PDEATHSIG), so servers never outlive a crashed
 * test; therefore spawn from a thread that lives as long as the child should.
 * Returns the child's pid (> 0), or a negative errno value if the fork failed
 * or the exec failed (in which case the child has already been reaped).
 */
pid_t proc_spawn(const char *const argv[], const char *const env_extra[], const char *log_path);

/*
 * Wait up to timeout_ms for child pid to exit and reap it.
 * Returns 0 if it exited (raw waitpid status stored in *status if not NULL),
 * -ETIMEDOUT if it is still running, or another negative errno value
 * (e.g. -ECHILD if pid is not a child of this process).
 */
int proc_wait_exit(pid_t pid, int timeout_ms, int *status);

/*
 * Non-blocking check: returns 1 if child pid is still running, 0 if it has
 * exited (it is then reaped and its status stored in *status if not NULL),
 * negative errno on error.
 */
int proc_check_exited(pid_t pid, int *status);

/*
 * Send sig to pid and wait up to timeout_ms for it to exit. If it is still
 * alive at the deadline, send SIGKILL and reap it (bounded extra wait of 10 s).
 * Returns 0 if the process exited within timeout_ms after sig, -ETIMEDOUT if
 * SIGKILL was needed, other negative errno on error. *status (if not NULL)
 * receives the raw waitpid status whenever the process was reaped.
 */
int proc_stop(pid_t pid, int sig, int timeout_ms, int *status);

/*
 * Create a fresh private directory "$TMPDIR/rrm-<tag>-XXXXXX" (TMPDIR defaults
 * to /tmp). Returns a malloc'd path (caller frees, and usually removes it with
 * proc_rmtree first) or NULL.
 */
char *proc_tmpdir(const char *tag);

/*
 * Recursively remove dir (does not follow symlinks). Returns 0 on success
 * (also if dir does not exist), negative errno otherwise.
 */
int proc_rmtree(const char *dir);

/*
 * Minimal HTTP/1.1 GET http://127.0.0.1:port<path> with "Connection: close".
 * Understands Content-Length, chunked transfer encoding, and read-to-EOF.
 * On success returns 0, stores the status code in *status (if not NULL) and a
 * malloc'd NUL-terminated body in *body (if not NULL; caller frees).
 * Returns -ETIMEDOUT if the whole exchange did not finish in timeout_ms,
 * -EPROTO for an unparsable response, other negative errno on error.
 */
int proc_http_get(int port, const char *path, int timeout_ms, int *status, char **body);

/*
 * Sends the raw request req on a new connection to 127.0.0.1:port (from the
 * local address src unless NULL) and reads the response head into head (cap
 * bytes, NUL-terminated; what fits when the head is longer). Returns the HTTP
 * status, -ECONNRESET if the server closed without an answer, -EPROTO for an
 * answer that is not HTTP, or -ETIMEDOUT after timeout_ms.
 */
int proc_http_exchange(const char *src, int port, const char *req, int timeout_ms, char *head,
                       size_t cap);

/*
 * Print (to stderr) the last max_bytes of the file at path, prefixed by a
 * header line naming it. Used to show server logs when a test helper fails.
 */
void proc_dump_file_tail(const char *path, size_t max_bytes);

/*
 * Run `promtool check metrics` (Debian's prometheus package) on text, a Prometheus exposition.
 * Its output (at most cap - 1 bytes, NUL-terminated) goes to out. Returns promtool's exit
 * status as pclose gives it (0: the text passes), or -1 if it could not be run.
 */
int proc_promtool_check(const char *text, char *out, size_t cap);

#endif /* RRM_TESTSUPPORT_PROC_H */
