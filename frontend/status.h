/* /status.json: what an operator sees of the node and of the whole cluster, read from Redis when
 * asked (status.html draws it at /status). The node: its connections (with the client address
 * each came from) and busiest client addresses. The cluster: every node (connections, heartbeat
 * age, version), the rooms with their member counts busiest first (searched and paged), and for
 * the rooms of the page their members, identities and the nodes hosting them. The work per
 * request is bounded: one room list per shard and one HLEN per room listed (STATUS_MAX_ROOMS in
 * all, pipelined through the router, one slot each), then the server API's room script for each
 * room of the page (at most STATUS_PER_PAGE_MAX). struct
 * status owns the requests waiting for Redis; a request (struct status_wait) is embedded by its
 * owner, who cancels it if it goes away first. */
#ifndef RRM_STATUS_H
#define RRM_STATUS_H

#include "textbuf.h"

#include <libwebsockets.h>
#include <stdint.h>

struct app;
struct status;

/* Rooms counted at most, spread over the shards (STATUS_MAX_ROOMS / RRM_EVENT_SHARDS from each;
 * more: "rooms_truncated"); rooms a page lists by default and at most; members listed per room
 * of the page at most. */
#define STATUS_MAX_ROOMS 10000
#define STATUS_PER_PAGE_DEFAULT 20
#define STATUS_PER_PAGE_MAX 100
#define STATUS_ROOM_MEMBERS 50
#define STATUS_QUERY_MAX 128

/* What a request asks for (the query string of /status.json). */
struct status_query {
    char q[STATUS_QUERY_MAX + 1]; /* search: part of a room id, or a device id ("": all rooms) */
    long page;                    /* 1-based; past the last page: the last page */
    long per_page;                /* 1..STATUS_PER_PAGE_MAX */
};

struct status_wait {
    lws_dll2_t link; /* in the status's waiting list */
    uint64_t no;
    struct textbuf *out;
    void (*done)(struct status_wait *w); /* the answer is complete */
};

/* Which of `matched` ranked rooms a page shows: per_page (1..STATUS_PER_PAGE_MAX, else the
 * default) of them from the asked page (from 1; below 1: the first; past the last: the last).
 * Writes the page shown to *page and the number of pages (at least 1) to *pages; returns the
 * index of the page's first room (== matched when there is none). */
size_t status_page_span(size_t matched, long asked, long *per_page, long *page, long *pages);

/* 1 if room is found by the search q: no search, q a part of the room id in any case, or the
 * room the device named by q is in (device_room, NULL: unknown). */
int status_room_matches(const char *room, const char *q, const char *device_room);

struct status *status_create(struct app *app);
void status_destroy(struct status *st);

/* Writes the JSON answer to q into out: now, without the cluster ("cluster": null), when Redis
 * is not available (returns 0); else once Redis answers, then w->done(w) is called (returns 1). */
int status_request(struct status *st, struct status_wait *w, const struct status_query *q,
                   struct textbuf *out, void (*done)(struct status_wait *w));

/* The owner of w goes away: it will not be called. Safe if w is not waiting. */
void status_cancel(struct status_wait *w);

#endif
