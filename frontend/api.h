/* The server API for backends: JSON over HTTP under /api/ on the admin listener, with the key
 * RRM_API_KEY (Authorization: Bearer), off when it is empty. Owns the requests' routing, their
 * checks, the Redis work each needs (one command or one-slot script at a time, through the
 * router) and the JSON answers; http.c owns the connection and writes what api.c built. The
 * endpoints (README "Server API"):
 *   POST /api/rooms/{room}/publish        a message of the server to every member
 *   GET  /api/rooms?cursor=&limit=        rooms with their member counts, a page at a time
 *   GET  /api/rooms/{room}                the room and its members (the shape of room_info)
 *   GET  /api/devices/{device}            where the device is connected, since when
 *   POST /api/devices/{device}/disconnect closes the device's connection, on whatever node
 * Errors are {"error":{"code","message"}} with an HTTP status; every answer is counted by
 * endpoint and status (api_metrics). */
#ifndef RRM_API_H
#define RRM_API_H

#include "textbuf.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stddef.h>

struct app;
struct api_op;

/* What the HTTP side does next with a request. */
enum api_step {
    API_ANSWER,    /* the answer is built: write it (after the request's body, if any) */
    API_READ_BODY, /* read the body (api_body), then call api_body_done */
    API_WAIT,      /* the answer comes later: done is called */
};

/* One request, embedded by its owner (http.c), which cancels it if it goes away first. */
struct api_call {
    struct app *app;
    struct api_op *op; /* Redis work in progress (NULL: none) */
    void (*done)(struct api_call *c);
    struct textbuf *out; /* the answer's body */
    int code;            /* the answer's HTTP status */
    int close_after;     /* the connection ends with the answer (a body not read) */
    const char *allow;   /* 405: the methods the path takes */
    int endpoint;
    /* what the request carries, copied while its headers are at hand */
    char target[160]; /* the room or device of the path */
    int binary;       /* Content-Type: application/octet-stream */
    char idem[72];    /* Idempotency-Key ("" none) */
    char from[136];   /* ?from_device_id= ("" none) */
    char cursor[80], limit[16];
    int has_cursor, has_limit;
    /* disconnect: the connection holding the device, and its node (from Redis) */
    char holder_conn[128], holder_node[128];
    int reading; /* API_READ_BODY: the body is being read */
    char *body;
    size_t body_len, body_cap;
};

/* 1 when RRM_API_KEY is set. */
int api_enabled(const struct app *app);

/* 1 if path (without its query) is the API's: "/api" or under "/api/". */
int api_path(const char *path);

/* Starts request c (method "GET", "POST", ...; path without the query) on wsi, its answer to be
 * built into out; done(c) is called when an API_WAIT answer is complete. */
enum api_step api_begin(struct app *app, struct api_call *c, struct lws *wsi, const char *method,
                        const char *path, struct textbuf *out, void (*done)(struct api_call *c));

/* A piece of the body (API_READ_BODY): kept up to the announced length. */
void api_body(struct api_call *c, const void *in, size_t len);

/* The body is complete: runs the request. */
enum api_step api_body_done(struct api_call *c);

/* The owner goes away: done will not be called; frees what c holds. Safe to call again. */
void api_cancel(struct api_call *c);

/* The members of a room's flat device/value list (a room's members hash, as the room script
 * returns it: values "conn\tnode\tidentity"): a JSON array of {device_id, identity, node, conn}
 * in device order, at most `most` of them (a new reference; NULL without memory). Also /status's
 * (status.c). */
struct redisReply;
json_t *api_room_clients(const struct redisReply *list, size_t most);

/* What GET /api/devices/{device} answers of device, from the HGETALL of its hash (a non-empty
 * array of field/value pairs): {device_id, connected, node, conn, since, room, identity} (a new
 * reference; NULL without memory). Also /status's search (status.c). */
json_t *api_device(const char *device, const struct redisReply *hash);

/* rrm_api_requests_total{endpoint,code} of app. */
void api_metrics(const struct app *app, struct textbuf *b);

#endif
