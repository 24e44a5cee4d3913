/* /status: an HTML page of this node's rooms, then every node of the cluster with its rooms and
 * devices, read from Redis when asked. struct status owns the requests waiting for Redis; a
 * request (struct status_wait) is embedded by its owner, who cancels it if it goes away first. */
#ifndef RRM_STATUS_H
#define RRM_STATUS_H

#include "textbuf.h"

#include <libwebsockets.h>
#include <stdint.h>

struct app;
struct status;

struct status_wait {
    lws_dll2_t link; /* in the status's waiting list */
    uint64_t no;
    struct textbuf *page;
    void (*done)(struct status_wait *w); /* the page is complete */
};

struct status *status_create(struct app *app);
void status_destroy(struct status *st);

/* Writes the page into page: now, without the cluster, when Redis is not available (returns 0);
 * else once Redis answers, then w->done(w) is called (returns 1). */
int status_request(struct status *st, struct status_wait *w, struct textbuf *page,
                   void (*done)(struct status_wait *w));

/* The owner of w goes away: it will not be called. Safe if w is not waiting. */
void status_cancel(struct status_wait *w);

#endif
