/* Redis key names; the layout is described in keys.h. */
#include "keys.h"

#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int fmt(char *buf, size_t cap, const char *pre, const char *id, const char *post) {
    const char *parts[] = {pre, "{", id, "}", post};
    return util_concat(buf, cap, parts, 5);
}

/* rrm:room:{N}:<room><post> */
static int room_fmt(char *buf, size_t cap, unsigned shard, const char *room, const char *post) {
    char num[21];
    util_u64_dec(num, shard);
    const char *parts[] = {KEYS_ROOM_PREFIX "{", num, "}:", room, post};
    return util_concat(buf, cap, parts, 5);
}

unsigned keys_room_shard(const char *room, unsigned shards) {
    return keys_event_shard(room, strlen(room), shards);
}

int keys_room(char *buf, size_t cap, unsigned shard, const char *room) {
    return room_fmt(buf, cap, shard, room, "");
}

int keys_room_members(char *buf, size_t cap, unsigned shard, const char *room) {
    return room_fmt(buf, cap, shard, room, KEYS_MEMBERS_SUFFIX);
}

int keys_room_channel(char *buf, size_t cap, unsigned shard, const char *room) {
    return room_fmt(buf, cap, shard, room, KEYS_CHANNEL_SUFFIX);
}

int keys_room_history(char *buf, size_t cap, unsigned shard, const char *room) {
    return room_fmt(buf, cap, shard, room, KEYS_HISTORY_SUFFIX);
}

int keys_room_ack(char *buf, size_t cap, unsigned shard, const char *room, const char *device,
                  const char *ack_id) {
    char num[21];
    util_u64_dec(num, shard);
    const char *parts[] = {KEYS_ROOM_PREFIX "{", num,    "}:", room,
                           KEYS_ACK_SUFFIX,      device, "/",  ack_id};
    return util_concat(buf, cap, parts, 8);
}

int keys_rooms(char *buf, size_t cap, unsigned shard) {
    char num[21];
    util_u64_dec(num, shard);
    const char *parts[] = {KEYS_ROOMS_PREFIX "{", num, "}"};
    return util_concat(buf, cap, parts, 3);
}

int keys_empty_rooms(char *buf, size_t cap, unsigned shard) {
    char num[21];
    util_u64_dec(num, shard);
    const char *parts[] = {KEYS_EMPTY_ROOMS_PREFIX "{", num, "}"};
    return util_concat(buf, cap, parts, 3);
}

int keys_device(char *buf, size_t cap, const char *device) {
    return fmt(buf, cap, KEYS_DEVICE_PREFIX, device, "");
}

int keys_node_conns(char *buf, size_t cap, const char *node) {
    return fmt(buf, cap, KEYS_NODE_PREFIX, node, KEYS_CONNS_SUFFIX);
}

int keys_node_channel(char *buf, size_t cap, const char *node) {
    return fmt(buf, cap, KEYS_NODE_PREFIX, node, KEYS_CHANNEL_SUFFIX);
}

int keys_node_reaper(char *buf, size_t cap, const char *node) {
    return fmt(buf, cap, KEYS_NODE_PREFIX, node, KEYS_REAPER_SUFFIX);
}

int keys_node_version(char *buf, size_t cap, const char *node) {
    return fmt(buf, cap, KEYS_NODE_PREFIX, node, KEYS_VERSION_SUFFIX);
}

int keys_archiver_alive(char *buf, size_t cap, const char *group, const char *consumer) {
    int n = snprintf(buf, cap, "%s%s:%s", KEYS_ARCHIVER_ALIVE_PREFIX, group, consumer);
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

int keys_events(char *buf, size_t cap, unsigned shard) {
    char num[21];
    util_u64_dec(num, shard);
    const char *parts[] = {KEYS_EVENTS_PREFIX, "{", num, "}"};
    return util_concat(buf, cap, parts, 4);
}

unsigned keys_event_shard(const char *id, size_t len, unsigned shards) {
    uint32_t h = 2166136261u; /* FNV-1a 32-bit offset basis */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 16777619u; /* FNV prime */
    }
    return shards ? h % shards : 0;
}

int keys_events_for(char *buf, size_t cap, const char *id, unsigned shards) {
    return keys_events(buf, cap, keys_event_shard(id, strlen(id), shards));
}
