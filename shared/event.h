/* clang-format off */
/* Archive events: what frontends append to the Redis stream `rrm:events` and the archiver reads.
 *
 * Format version 1. Each stream entry is a flat list of field/value strings:
 *   field         value                                              in
 *   v             "1"                                                always
 *   type          connect | room | message | query | disconnect |    always
 *                 room_created | room_recycled
 *   ts            milliseconds since the Unix epoch, decimal         always
 *   node          id of the frontend that recorded it                always
 *   conn          connection id, unique cluster-wide ("<node>#<n>")  all but room_recycled
 *   device        device_id                                          all but room_recycled
 *   identity      as the client gave it                              connect room query
 *   ip            the client's address                               connect
 *   room          room id                                            all (a disconnect may omit it)
 *   action        created | joined | rejoined                        room
 *   seq           per-room message number from 1, decimal            message
 *   kind          text | json | binary                               message
 *   body          the frame exactly as the client sent it (bytes)    message
 *   total         devices in the room, cluster-wide                  query
 *   reason        why the connection ended                           disconnect
 *   connected_at  ms when the connection was identified              disconnect
 * Readers ignore fields they do not know; a new required field means a new version. */
/* clang-format on */
#ifndef RRM_EVENT_H
#define RRM_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define EVENT_VERSION "1"

enum event_type {
    EV_CONNECT = 0,
    EV_ROOM,
    EV_MESSAGE,
    EV_QUERY,
    EV_DISCONNECT,
    EV_ROOM_CREATED,
    EV_ROOM_RECYCLED,
    EV_TYPE_COUNT
};

/* A borrowed byte string; p == NULL means absent. */
struct event_str {
    const char *p;
    size_t len;
};

struct rrm_event {
    enum event_type type;
    int64_t ts;
    struct event_str node, conn, device, identity, ip, room, action, kind, reason, body;
    int64_t seq;          /* message, from 1; 0 = absent (assigned by Redis when it is sent) */
    int64_t total;        /* query */
    int64_t connected_at; /* disconnect */
};

/* One field/value pair of an encoded event; both borrowed. */
struct event_field {
    const char *name;
    const char *value;
    size_t len;
};

#define EVENT_MAX_FIELDS 20

/* Scratch space for the decimal numbers of one encoded event; lives as long as the fields. */
struct event_numbers {
    char ts[24], seq[24], total[24], connected_at[24];
};

const char *event_type_name(enum event_type t);
/* Returns the type for a name, or -1. */
int event_type_parse(const char *s, size_t len);

/* Lists the fields of ev (present ones only) into out, which must hold EVENT_MAX_FIELDS.
 * Values point into ev's strings and into nums. Returns the number of pairs. */
size_t event_encode(const struct rrm_event *ev, struct event_field *out,
                    struct event_numbers *nums);

/* The same as a Redis command tail: argv/lens (2 * EVENT_MAX_FIELDS entries) receive name, value,
 * name, value... Returns the number of entries written (twice the pairs). */
size_t event_encode_argv(const struct rrm_event *ev, struct event_numbers *nums, const char **argv,
                         size_t *lens);

/* Fills ev from n field/value pairs (names[i], values[i] with lengths). Strings in ev borrow from
 * the inputs. Returns 0, or -1 with the reason in err (unknown version or type, missing or
 * malformed required field). */
int event_decode(struct rrm_event *ev, const char *const *names, const size_t *name_lens,
                 const char *const *values, const size_t *value_lens, size_t n, char *err,
                 size_t errlen);

#endif
