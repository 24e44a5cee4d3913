/* The client protocol's pure logic: identify validation, id rules, classification of client
 * frames, the relay envelope, error frames, and the pub/sub payload that carries a relayed frame
 * between nodes. No I/O here. */
#ifndef RRM_PROTO_H
#define RRM_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_MAX_DEVICE_ID 128
#define PROTO_MAX_ROOM_ID 64
#define PROTO_MAX_IDENTITY 256
#define PROTO_ROOM_ID_LEN 6
#define PROTO_MAX_EPOCH 64  /* a room epoch a client may name (the server makes 16 hex digits) */
#define PROTO_MAX_ACK_ID 64 /* an ack_id: 1..64 characters of the id set */

/* Error codes sent in {"type":"error","code":...} frames. */
#define PROTO_E_INVALID_JSON "invalid_json"
#define PROTO_E_INVALID_IDENTIFY "invalid_identify"
#define PROTO_E_INVALID_DEVICE_ID "invalid_device_id"
#define PROTO_E_INVALID_ROOM_ID "invalid_room_id"
#define PROTO_E_INVALID_IDENTITY "invalid_identity"
#define PROTO_E_NOT_IDENTIFIED "not_identified"
#define PROTO_E_RESERVED_TYPE "reserved_type"
#define PROTO_E_RATE_LIMITED "rate_limited"
#define PROTO_E_TOO_BIG "message_too_big"
#define PROTO_E_UNAVAILABLE "unavailable"
#define PROTO_E_REPLACED "replaced"
#define PROTO_E_IDENTIFY_TIMEOUT "identify_timeout"
#define PROTO_E_SERVER_FULL "server_full"
#define PROTO_E_DRAINING "draining"
#define PROTO_E_NOT_MEMBER "not_member"
#define PROTO_E_OUTCOME_UNKNOWN "outcome_unknown"
#define PROTO_E_UNAUTHORIZED "unauthorized"
#define PROTO_E_FORBIDDEN "forbidden"
#define PROTO_E_INVALID_ACK_ID "invalid_ack_id"
#define PROTO_E_DISCONNECTED "disconnected" /* closed through the server API */

struct proto_identify {
    char device_id[PROTO_MAX_DEVICE_ID + 1];
    char identity[PROTO_MAX_IDENTITY + 1];
    char room_id[PROTO_MAX_ROOM_ID + 1]; /* "" when the client named no room */
    /* Resume: the identify carried "last_seq" (an integer >= 0), and maybe the room's "epoch"
     * ("" when absent). Without last_seq both are unset. */
    int resume;
    int64_t last_seq;
    char epoch[PROTO_MAX_EPOCH + 1];
    /* "presence": 1 true, 0 false, -1 absent or null (the node's default applies) */
    int presence;
};

/* 1 if s (len bytes) is a valid device or room id: 1..max bytes of [A-Za-z0-9_.:@-]. */
int proto_valid_id(const char *s, size_t len, size_t max);

/* Parses and validates the first frame. Returns 0, or -1 with *code set to a PROTO_E_* constant
 * and a human-readable reason in msg. */
int proto_parse_identify(const char *buf, size_t len, struct proto_identify *out, const char **code,
                         char *msg, size_t msglen);

/* 1 if s (len bytes) is an acceptable identity: at most PROTO_MAX_IDENTITY bytes of UTF-8
 * without control characters. */
int proto_valid_identity(const char *s, size_t len);

/* The identify's "token" member (authentication): 1 with *token a malloc'd copy (caller frees),
 * 0 when there is none (absent or null), -1 when it is not a string or the frame is not a JSON
 * object. */
int proto_identify_token(const char *buf, size_t len, char **token);

/* Writes a fresh room id of PROTO_ROOM_ID_LEN upper-case letters and digits plus NUL. */
int proto_random_room_id(char out[PROTO_ROOM_ID_LEN + 1]);

enum proto_kind {
    PROTO_RELAY,      /* a message for the other members */
    PROTO_QUERY_ROOM, /* {"type":"query_room"} */
    PROTO_REFRESH,    /* {"type":"refresh","token":...}: *value is the object (never relayed) */
    PROTO_REJECT,     /* not acceptable: *code and msg say why */
};

/* The "ack_id" of a message object value: 1 with *ack pointing into value (valid while value
 * lives), 0 when there is none (absent, or value is not an object), -1 when it is not a string
 * of 1-64 characters from A-Z a-z 0-9 _ . : @ - (the message is then refused). */
int proto_ack_id(const json_t *value, const char **ack);

/* Classifies a text frame from an identified client. For PROTO_RELAY and PROTO_REFRESH, *value
 * receives the parsed JSON (caller json_decref's) and *msg_type the message kind for the archive
 * ("text" or "json"). For PROTO_REJECT, *code and msg are set. */
enum proto_kind proto_classify(const char *buf, size_t len, json_t **value, const char **msg_type,
                               const char **code, char *msg, size_t msglen);

/* Builds the relayed frame for value, minus its closing: the object (or the
 * {"type":"message", "data":value} wrapper) with from_device_id, room_id and ts set by the server,
 * and without its ack_id (which is for the sender only), without the final '}'. Whoever assigns the
 * sequence number appends ,"seq":N}. text/text_len is the frame value was parsed from (NULL if
 * none): an object that carries none of the server's fields is relayed as the client wrote it, with
 * the server's fields spliced in before its '}', which spares dumping it again; otherwise value
 * (modified in place) is dumped compactly. Returns a malloc'd string (caller frees) and its length
 * in *len, or NULL. */
char *proto_envelope_prefix(json_t *value, const char *text, size_t text_len, const char *device_id,
                            const char *room_id, int64_t ts_ms, size_t *len);

/* The server's own frames. Each returns a malloc'd compact JSON text (caller frees) and its
 * length in *len (len may be NULL), or NULL when out of memory. */

/* {"type":"error","code":code,"message":message} */
char *proto_error_frame(const char *code, const char *message, size_t *len);

/* {"type":"connection","status":"connected","device_id","node_id","conn_id","server_time"} */
char *proto_connection_frame(const char *device_id, const char *node_id, const char *conn_id,
                             int64_t server_time_ms, size_t *len);

/* {"type":"room","room_id","action","total_clients","seq","epoch"}, then "recovered" when
 * recovered is 0 or 1 (an identify that asked to resume); recovered < 0 leaves it out. */
char *proto_room_frame(const char *room_id, const char *action, long long total, long long seq,
                       const char *epoch, int recovered, size_t *len);

/* {"type":"ack","ack_id":ack_id,"seq":seq}: the sender's message was accepted as seq. */
char *proto_ack_frame(const char *ack_id, long long seq, size_t *len);

/* {"type":"refreshed","exp":exp} */
char *proto_refreshed_frame(int64_t exp, size_t *len);

/* One listed member of a room_info; the strings need not be NUL-terminated. */
struct proto_member {
    const char *device_id, *identity;
    size_t device_len, identity_len;
};

/* {"type":"room_info","room_id","total_clients","clients":[{"device_id","identity"}...]}, with
 * "truncated":true appended when the list is not every other member. */
char *proto_room_info_frame(const char *room_id, long long total, const struct proto_member *m,
                            size_t n, int truncated, size_t *len);

/* Pub/sub payload of a relayed frame: one byte kind ('T' text, 'B' binary), the sender's
 * connection id, '\t', when the sender's node took the message (wall-clock microseconds), '\t',
 * the message's seq, both in decimal, '\n', then the frame bytes exactly as delivered to clients.
 * (Payloads of earlier versions have no time, or neither time nor seq: those are 0.) */
#define PROTO_PUB_TEXT 'T'
#define PROTO_PUB_BINARY 'B'

struct proto_pub {
    char kind;
    const char *conn; /* borrowed from the payload */
    size_t conn_len;
    uint64_t seq;      /* 0 when the payload carries none */
    uint64_t sent_us;  /* 0 when the payload carries none */
    const char *frame; /* borrowed from the payload */
    size_t frame_len;
};

/* Writes the start of the payload's header (kind, connection id, '\t', sent_us, '\t') into buf;
 * the send script appends the seq and '\n'. Returns its length, or -1 if it does not fit in cap
 * bytes. */
int proto_pub_header(char *buf, size_t cap, int binary, const char *conn, uint64_t sent_us);

/* Splits a pub/sub payload; returns 0 or -1 if it is malformed (no kind, no '\n', or a time or
 * seq that is not 1-20 decimal digits fitting in 64 bits). */
int proto_pub_parse(const char *payload, size_t len, struct proto_pub *out);

/* Pub/sub payload of a presence event, published on the room's channel by the scripts that change
 * its membership (scripts.c): 'P', then "join" or "leave", the member's connection id, the time
 * of the change (ms since the epoch, decimal), its device id and its identity (possibly empty, to
 * the end of the payload), separated by '\t'. A relayed frame's payload starts with 'T' or 'B',
 * which proto_pub_header alone writes, so no client message takes this form. */
#define PROTO_PUB_PRESENCE 'P'

struct proto_presence {
    int leave;                            /* 0 join, 1 leave */
    const char *conn, *device, *identity; /* borrowed from the payload */
    size_t conn_len, device_len, identity_len;
    int64_t ts;
};

/* Splits a presence payload; returns 0, or -1 if it is not one (or malformed). */
int proto_presence_parse(const char *payload, size_t len, struct proto_presence *out);

/* {"type":"join"|"leave","device_id","identity","room_id","ts"}: returns a malloc'd compact JSON
 * text (caller frees) and its length in *len, or NULL (no memory, or an identity that is not
 * UTF-8). */
char *proto_presence_frame(const struct proto_presence *p, const char *room_id, size_t *len);

#endif
