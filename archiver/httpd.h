/* The archiver's HTTP listener (RRM_METRICS_PORT): a small HTTP/1.1 server on a thread of its own,
 * with its own poll loop, so that no request, slow client or flood of garbage ever blocks or slows
 * the archiving loop. It owns the listening socket, the thread and up to ARCH_HTTPD_MAX_CONNS
 * connections, each answered once and closed (Connection: close). What to answer for a GET is the
 * caller's (ops->get, called on the server's thread); the server itself answers malformed requests
 * (400), other methods (405), oversized heads (431) and clients too slow to send a request (408),
 * and counts every answer by status. */
#ifndef ARCH_HTTPD_H
#define ARCH_HTTPD_H

#include "log.h"
#include "promtext.h"

#include <stddef.h>

#define ARCH_HTTPD_MAX_CONNS 16
#define ARCH_HTTPD_MAX_HEAD 8192   /* bytes of request line and headers */
#define ARCH_HTTPD_TIMEOUT_MS 5000 /* for a client to send its request and read the answer */

struct arch_httpd;

struct arch_httpd_ops {
    /* Answers GET (or HEAD) of path (the request target without its query string): returns the
     * HTTP status and appends the body to body; *content_type is a static string. Runs on the
     * server's thread; h may be passed to arch_httpd_write_metrics. */
    int (*get)(void *ctx, struct arch_httpd *h, const char *path, struct prom_buf *body,
               const char **content_type);
};

/* Listens on bind (empty: every interface) and port, and starts the thread. ops, ctx and lg are
 * borrowed and must outlive the server. Returns NULL with the reason in err. */
struct arch_httpd *arch_httpd_start(const char *bind, int port, const struct arch_httpd_ops *ops,
                                    void *ctx, const struct logger *lg, char *err, size_t errlen);

/* Stops the thread, closes every connection and the listener, and frees h. NULL is allowed. */
void arch_httpd_stop(struct arch_httpd *h);

/* Appends rrm_archiver_http_requests_total{code} (answers so far, by status). Only on the
 * server's thread (from ops->get). */
void arch_httpd_write_metrics(struct arch_httpd *h, const struct prom_out *o);

#endif
