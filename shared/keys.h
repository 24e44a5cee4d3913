/* Redis key and channel names: the one place that knows the data layout in Redis.
 *
 * Every script touches the keys of one Redis Cluster slot (a cluster refuses any other script),
 * so the keys are grouped by hash tag:
 * - a room's keys carry its archive shard N = keys_room_shard(room) as their tag ({N}), the tag
 *   of the shard's events stream too: the script run for a message updates the room, publishes,
 *   appends the history and records the archive event as one atomic step. Rooms spread over the
 *   cluster by shard (RRM_EVENT_SHARDS of them).
 * - a device's keys carry the device id, a node's keys the node id.
 *
 *   rrm:room:{N}:R         hash   created_at, created_by, seq (last message number), epoch
 *                                 (random id made when the hash is created: seq starts again
 *                                 only under a new epoch)
 *   rrm:room:{N}:R:members hash   device_id -> "conn\tnode\tidentity"
 *   rrm:room:{N}:R:ch      sharded channel  relayed frames of room R (proto.h: the pub/sub
 *                                 payload) and its presence events (proto.h)
 *   rrm:room:{N}:R:history list   the room's last messages for resume, in seq order, each
 *                                 "device\tts\tpayload" (the sender's device, the message's
 *                                 ts, the payload as published); capped and expiring (history-*)
 *   rrm:room:{N}:R:ack:D/A string seq of device D's message with ack_id A (expires after the
 *                                 ack window); '/' cannot occur in ids
 *   rrm:rooms:empty:{N}    zset   room -> when it became empty (ms), for recycling, per shard
 *   rrm:rooms:{N}          zset   room -> 0: the shard's rooms in id order (the server API's
 *                                 room list); added by every join and restore, removed by the
 *                                 recycler
 *   rrm:events:{N}         stream archive events of shard N, 0 <= N < RRM_EVENT_SHARDS (see
 *                          event.h): a room's events all go to its shard, so they keep their
 *                          order; events without a room go by device (or node) id
 *   rrm:device:{D}         hash   room, conn, node, identity, since (device -> room memory, with
 *                                 a TTL; conn: the connection that holds the device, since: when
 *                                 it connected, ms)
 *   rrm:node:{X}:conns     hash   conn -> "room\tdevice" (what to clean if X dies)
 *   rrm:node:{X}:reaper    string the node reaping dead node X (a lock with an expiry)
 *   rrm:node:{X}:version   string node X's build version (RRM_VERSION), written with every
 *                                 heartbeat, expiring after two node timeouts (/status)
 *   rrm:node:{X}:ch        channel  control messages to node X (kick a replaced connection,
 *                                 disconnect a device for the server API)
 *   rrm:nodes              zset   node -> last heartbeat (ms, Redis clock)
 *   rrm:events             stream the single archive stream of older versions: no longer
 *                          written, drained by the archiver while it holds entries
 *   rrm:events:dead        stream events the archiver could not write, with the reason
 *   rrm:archiver:alive:G:C string  archiver C of consumer group G is alive (PX expiry); the
 *                          archiver reads the marks on their own, then claims shard by shard
 *                          (no command names keys of two slots)
 *
 * Room ids have no braces (proto_valid_id), so a room key's tag is always its shard. The shard
 * count is part of the layout: nodes with another RRM_EVENT_SHARDS see other keys.
 * Tabs cannot occur in ids or identities (proto.c refuses control characters). The Lua scripts
 * (frontend/scripts.c) build per-room names from the same pieces as the functions below. */
#ifndef RRM_KEYS_H
#define RRM_KEYS_H

#include <stddef.h>

#define KEYS_NODES "rrm:nodes"
#define KEYS_EMPTY_ROOMS_PREFIX "rrm:rooms:empty:"
#define KEYS_ROOMS_PREFIX "rrm:rooms:"
#define KEYS_EVENTS "rrm:events" /* the legacy single stream */
#define KEYS_EVENTS_PREFIX "rrm:events:"
#define KEYS_EVENT_SHARDS_MAX 1024
#define KEYS_DEAD_LETTER "rrm:events:dead"
#define KEYS_ARCHIVER_ALIVE_PREFIX "rrm:archiver:alive:"
#define KEYS_MAX 256     /* enough for any key built from validated ids */
#define KEYS_ACK_MAX 320 /* an ack key: room, device and ack_id ids together */

/* The pieces of the per-id names: prefix, then the hash tag, (for rooms: ':' and the id,) then a
 * suffix. */
#define KEYS_ROOM_PREFIX "rrm:room:"
#define KEYS_DEVICE_PREFIX "rrm:device:"
#define KEYS_NODE_PREFIX "rrm:node:"
#define KEYS_MEMBERS_SUFFIX ":members"
#define KEYS_CONNS_SUFFIX ":conns"
#define KEYS_CHANNEL_SUFFIX ":ch"
#define KEYS_HISTORY_SUFFIX ":history"
#define KEYS_REAPER_SUFFIX ":reaper"
#define KEYS_VERSION_SUFFIX ":version"
#define KEYS_ACK_SUFFIX ":ack:"

/* The shard of room: the tag of its keys and the stream of its events (keys_event_shard). */
unsigned keys_room_shard(const char *room, unsigned shards);

/* Each writes the name into buf and returns its length, or -1 if cap is too small. The room
 * names take the room's shard (keys_room_shard). */
int keys_room(char *buf, size_t cap, unsigned shard, const char *room);
int keys_room_members(char *buf, size_t cap, unsigned shard, const char *room);
int keys_room_channel(char *buf, size_t cap, unsigned shard, const char *room);
int keys_room_history(char *buf, size_t cap, unsigned shard, const char *room);
/* rrm:room:{N}:R:ack:<device>/<ack_id> */
int keys_room_ack(char *buf, size_t cap, unsigned shard, const char *room, const char *device,
                  const char *ack_id);
/* rrm:rooms:{N}: the shard's rooms */
int keys_rooms(char *buf, size_t cap, unsigned shard);
/* rrm:rooms:empty:{N} */
int keys_empty_rooms(char *buf, size_t cap, unsigned shard);
int keys_device(char *buf, size_t cap, const char *device);
int keys_node_conns(char *buf, size_t cap, const char *node);
int keys_node_channel(char *buf, size_t cap, const char *node);
int keys_node_reaper(char *buf, size_t cap, const char *node);
int keys_node_version(char *buf, size_t cap, const char *node);
/* rrm:events:{N}: the archive stream of shard N (its hash tag is exactly {N}). */
int keys_events(char *buf, size_t cap, unsigned shard);

/* The shard of the archive events about id (a room; a device or node id for events without a
 * room): FNV-1a 32-bit of the len bytes of id, modulo shards (shards 0 is taken as 1). It places
 * data: events already in Redis stay in the shard it gave when they were written, so it must never
 * change (the frontend's scripts carry a Lua copy of it; tests pin its values). */
unsigned keys_event_shard(const char *id, size_t len, unsigned shards);

/* keys_events of keys_event_shard(id): the stream that takes the events about id. */
int keys_events_for(char *buf, size_t cap, const char *id, unsigned shards);

int keys_archiver_alive(char *buf, size_t cap, const char *group, const char *consumer);

#endif
