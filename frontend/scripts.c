/* Lua scripts run by Redis. Each touches the keys of one slot, all given as KEYS (keys.h), except
 * the recycler's room keys, built from the shard's prefix it is given. They share a prelude of
 * helpers; event fields follow event.h. Member values are "conn\tnode\tidentity" and node-conn
 * values are "room\tdevice": tabs cannot occur in ids or identities (proto.c rejects control
 * characters). */
#include "scripts.h"

#include "keys.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char prelude[] =
    "local function now_ms() local t = redis.call('TIME') "
    "  return t[1] * 1000 + math.floor(t[2] / 1000) end\n"
    "local function emit(stream, maxlen, ...)\n"
    "  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'v', '1', ...) end\n";

/* Identify runs as steps on three slots (room.c orders them): claim (device) and register (node),
 * then join (room), then the replaced connection is removed (its room, its node); remember
 * (device) only when the room joined is not the one the claim recorded.
 *
 * KEYS: device. ARGV: conn, node, identity, device ttl, wanted room ('' none), rooms the token
 * allows (comma-separated ids and prefixes ending in '*'; '*' any room), '1' if a fresh room may
 * be created ('0': the token says auto_room false), the fresh room's id if one is made, when the
 * connection was accepted (ms: the device's 'since').
 * The connection takes the device over, and the device's room is set to the one it is to join
 * (unchanged for 'last'). Returns {mode, previous room, previous conn, previous node} ('' where
 * none): mode 'want' (join the wanted room), 'last' (no room named: join the previous room,
 * which the token allows, if it still exists) or 'new' (make the fresh room); or a FORBIDDEN
 * error, with nothing changed, when no room was named, the last room is not allowed and no
 * fresh room may be made. The last room is checked here, where it is read. */
static const char claim_lua[] =
    "local conn, node, identity, ttl, want, rooms, auto =\n"
    "  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]\n"
    "local function allowed(r)\n"
    "  for p in string.gmatch(rooms, '[^,]+') do\n"
    "    if string.sub(p, -1) == '*' then\n"
    "      if string.sub(r, 1, #p - 1) == string.sub(p, 1, -2) then return true end\n"
    "    elseif p == r then return true end\n"
    "  end\n"
    "  return false\n"
    "end\n"
    "local prev = redis.call('HMGET', KEYS[1], 'room', 'conn', 'node')\n"
    "local mode = 'want'\n"
    "if want == '' then\n"
    "  if prev[1] and allowed(prev[1]) then mode = 'last'\n"
    "  elseif auto ~= '1' then\n"
    "    return redis.error_reply('FORBIDDEN the token allows no new room')\n"
    "  else mode = 'new' end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'conn', conn, 'node', node, 'identity', identity,\n"
    "  'since', ARGV[9])\n"
    "if mode == 'want' then redis.call('HSET', KEYS[1], 'room', want)\n"
    "elseif mode == 'new' then redis.call('HSET', KEYS[1], 'room', ARGV[8]) end\n"
    "redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "return {mode, prev[1] or '', prev[2] or '', prev[3] or ''}\n";

/* KEYS: room, members, the shard's empty rooms, the shard's events stream, room history, the
 * shard's rooms, room channel. ARGV: mode (claim_lua's), room, device, conn, node, identity, ip,
 * now, epoch for the room if its hash is created now (or has none), maxlen (of one shard), the
 * device's previous room, the time of the join (ms, for the presence event). A room hash created
 * here gets the new epoch and loses any history left from before (a room whose state Redis lost
 * starts its seq again, under another epoch). A device that was not a member yet is announced on
 * the room channel (proto.h: presence payload) in the same atomic step, unless it is alone there;
 * one that was (its previous connection, replaced now) is not: for the others it never left.
 * Returns {action, members, last seq, epoch}, or a NEEDNEW error with nothing changed when mode
 * 'last' finds the room gone or mode 'new' finds it taken. */
static const char join_lua[] =
    "local mode, room, device, conn, node, identity, ip, now, epoch, maxlen, prev =\n"
    "  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9],\n"
    "  ARGV[10], ARGV[11]\n"
    "local exists = redis.call('EXISTS', KEYS[1]) == 1\n"
    "if (mode == 'last' and not exists) or (mode == 'new' and exists) then\n"
    "  return redis.error_reply('NEEDNEW the room cannot be used') end\n"
    "local action = 'joined'\n"
    "emit(KEYS[4], maxlen, 'type', 'connect', 'ts', now, 'node', node, 'conn', conn,\n"
    "  'device', device, 'identity', identity, 'ip', ip, 'room', room)\n"
    "if redis.call('HSETNX', KEYS[1], 'created_at', now) == 1 then\n"
    "  redis.call('HSET', KEYS[1], 'created_by', device, 'seq', 0, 'epoch', epoch)\n"
    "  redis.call('DEL', KEYS[5])\n"
    "  action = 'created'\n"
    "  emit(KEYS[4], maxlen, 'type', 'room_created', 'ts', now, 'node', node, 'conn', conn,\n"
    "    'device', device, 'room', room)\n"
    "elseif room == prev then\n"
    "  action = 'rejoined'\n"
    "end\n"
    "redis.call('HSETNX', KEYS[1], 'epoch', epoch)\n"
    "local added =\n"
    "  redis.call('HSET', KEYS[2], device, conn .. '\\t' .. node .. '\\t' .. identity)\n"
    "local n = redis.call('HLEN', KEYS[2])\n"
    "if added == 1 and n > 1 then\n"
    "  redis.call('SPUBLISH', KEYS[7],\n"
    "    'Pjoin\\t' .. conn .. '\\t' .. ARGV[12] .. '\\t' .. device .. '\\t' .. identity) end\n"
    "redis.call('ZREM', KEYS[3], room)\n"
    "redis.call('ZADD', KEYS[6], 0, room)\n"
    "emit(KEYS[4], maxlen, 'type', 'room', 'ts', now, 'node', node, 'conn', conn,\n"
    "  'device', device, 'identity', identity, 'room', room, 'action', action)\n"
    "local st = redis.call('HMGET', KEYS[1], 'seq', 'epoch')\n"
    "return {action, n, st[1] or '0', st[2]}\n";

/* KEYS: device. ARGV: conn, room, device ttl. Records the device's room if conn still holds the
 * device (a newer connection took it over otherwise). Returns 1 or 0. */
static const char remember_lua[] =
    "if redis.call('HGET', KEYS[1], 'conn') ~= ARGV[1] then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'room', ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "return 1\n";

/* KEYS: node conns. ARGV: conn, "room\tdevice". Written before the member joins, so that the
 * reaper finds it if the node dies; an entry already so is left alone (no write: it works while
 * Redis is full). Returns 1. */
static const char register_lua[] = "if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then\n"
                                   "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end\n"
                                   "return 1\n";

/* KEYS: members, the shard's empty rooms, the shard's events stream, room channel. ARGV: room,
 * device, conn, now, when to record the disconnect ('1' always, 'r' only if the member was removed
 * here, '0' never), maxlen (of one shard), node, reason, connected_at ('' none).
 * Removes the device from the room if conn still holds it, and announces its leave on the room
 * channel (proto.h: presence payload; the identity is the member's) in the same atomic step; an
 * emptied room (nobody to tell) starts its grace period in the empty-rooms set instead. Returns 1
 * if it removed the member. */
static const char member_leave_lua[] =
    "local room, device, conn, now, when = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]\n"
    "local left = 0\n"
    "local m = redis.call('HGET', KEYS[1], device)\n"
    "if m and string.sub(m, 1, #conn + 1) == conn .. '\\t' then\n"
    "  redis.call('HDEL', KEYS[1], device)\n"
    "  if redis.call('HLEN', KEYS[1]) == 0 then redis.call('ZADD', KEYS[2], now, room)\n"
    "  else\n"
    "    local t = string.find(m, '\\t', #conn + 2, true)\n"
    "    local identity = t and string.sub(m, t + 1) or ''\n"
    "    redis.call('SPUBLISH', KEYS[4],\n"
    "      'Pleave\\t' .. conn .. '\\t' .. now .. '\\t' .. device .. '\\t' .. identity) end\n"
    "  left = 1\n"
    "end\n"
    "if when == '1' or (when == 'r' and left == 1) then\n"
    "  if ARGV[9] ~= '' then\n"
    "    emit(KEYS[3], ARGV[6], 'type', 'disconnect', 'ts', now, 'node', ARGV[7], 'conn', conn,\n"
    "      'device', device, 'room', room, 'reason', ARGV[8], 'connected_at', ARGV[9])\n"
    "  else\n"
    "    emit(KEYS[3], ARGV[6], 'type', 'disconnect', 'ts', now, 'node', ARGV[7], 'conn', conn,\n"
    "      'device', device, 'room', room, 'reason', ARGV[8])\n"
    "  end\n"
    "end\n"
    "return left\n";

/* KEYS: device. ARGV: conn, the connection to give the device back to ('' none), its node, and
 * when an identify is undone, the room to put back ('' none; without it the room is kept).
 * If conn holds the device, it no longer does (its 'since' goes: unknown for the connection given
 * the device back). Returns 1 if so, else 0. */
static const char release_lua[] =
    "if redis.call('HGET', KEYS[1], 'conn') ~= ARGV[1] then return 0 end\n"
    "if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'conn', ARGV[2], 'node', ARGV[3])\n"
    "else redis.call('HDEL', KEYS[1], 'conn', 'node') end\n"
    "redis.call('HDEL', KEYS[1], 'since')\n"
    "if ARGV[4] and ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'room', ARGV[4])\n"
    "elseif ARGV[4] then redis.call('HDEL', KEYS[1], 'room') end\n"
    "return 1\n";

/* KEYS: room, members, room channel, the room's events stream, room history, and the message's ack
 * key when it carries an ack_id. ARGV: device, conn, pub header without its seq (proto_pub_header),
 * text frame without its closing ',"seq":N}' ('' for binary), body as the client sent it, ts, node,
 * room, kind, '1' to refresh the history's TTL now ('0': only if the history is new). The settings
 * come first in the loaded text (send_params): MAXLEN (events stream), HSIZE (history size, 0:
 * none), HTRIM (history length that triggers a trim), HTTL (history TTL, ms), ACKWIN (ack key life,
 * ms). Returns the message's seq (an integer), the first seq as a string when the ack key says this
 * is a resend (nothing else done), or a NOTMEMBER error if conn no longer holds the membership.
 * The published payload is made once: the history keeps it behind the sender's device and the
 * ts ("device\tts\tpayload"), in a list appended in seq order and trimmed to the last HSIZE once
 * it holds HTRIM. Run once per message: no prelude, few arguments, one number formatted. */
#define SEND_MEMBER_CHECK                                                                          \
    "local m = redis.call('HGET', KEYS[2], ARGV[1])\n"                                             \
    "if not m or string.sub(m, 1, #ARGV[2] + 1) ~= ARGV[2] .. '\\t' then\n"                        \
    "  return redis.error_reply('NOTMEMBER connection no longer holds the membership') end\n"
#define SEND_BODY                                                                                  \
    "if KEYS[6] then\n"                                                                            \
    "  local first = redis.call('GET', KEYS[6])\n"                                                 \
    "  if first then return first end\n"                                                           \
    "end\n"                                                                                        \
    "local n = redis.call('HINCRBY', KEYS[1], 'seq', 1)\n"                                         \
    "local seq = tostring(n)\n"                                                                    \
    "local p\n"                                                                                    \
    "if ARGV[4] ~= '' then p = ARGV[3] .. seq .. '\\n' .. ARGV[4] .. ',\"seq\":' .. seq .. '}'\n"  \
    "else p = ARGV[3] .. seq .. '\\n' .. ARGV[5] end\n"                                            \
    "redis.call('SPUBLISH', KEYS[3], p)\n"                                                         \
    "if HSIZE > 0 then\n"                                                                          \
    "  local len = redis.call('RPUSH', KEYS[5], ARGV[1] .. '\\t' .. ARGV[6] .. '\\t' .. p)\n"      \
    "  if len >= HTRIM then redis.call('LTRIM', KEYS[5], -HSIZE, -1) end\n"                        \
    "  if len == 1 or ARGV[10] == '1' then redis.call('PEXPIRE', KEYS[5], HTTL) end\n"             \
    "end\n"                                                                                        \
    "if KEYS[6] then redis.call('SET', KEYS[6], seq, 'PX', ACKWIN) end\n"                          \
    "redis.call('XADD', KEYS[4], 'MAXLEN', '~', MAXLEN, '*', 'v', '1', 'type', 'message',\n"       \
    "  'ts', ARGV[6], 'node', ARGV[7], 'conn', ARGV[2], 'device', ARGV[1], 'room', ARGV[8],\n"     \
    "  'kind', ARGV[9], 'seq', seq, 'body', ARGV[5])\n"                                            \
    "return n\n"
static const char send_lua[] = SEND_MEMBER_CHECK SEND_BODY;

/* The server API's publish (api.c): the send script with the room's existence in place of the
 * member check, so a client's message still needs its membership. KEYS and ARGV as the send
 * script's, with ARGV[1] the sender named by the API ("server" by default: the history's and the
 * archive event's device), ARGV[2] the API's conn ("api", which no connection has: every member
 * receives it), the ack key (KEYS[6]) made of the Idempotency-Key. Returns as the send script, or
 * a NOROOM error with nothing done when the room does not exist (the API creates no rooms). */
static const char publish_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  return redis.error_reply('NOROOM the room does not exist') end\n" SEND_BODY;

/* The server API's room (api.c). KEYS: room, members. ARGV: most members listed. Returns
 * {exists (1/0), last seq, epoch, total members, flat device/value list}: every member when there
 * are at most that many, else the first ones HSCAN finds (at least that many). Read-only. */
static const char room_info_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, '', 0, {}} end\n"
    "local st = redis.call('HMGET', KEYS[1], 'seq', 'epoch')\n"
    "local total, most = redis.call('HLEN', KEYS[2]), tonumber(ARGV[1])\n"
    "local list\n"
    "if total <= most then list = redis.call('HGETALL', KEYS[2])\n"
    "else\n"
    "  list = {}\n"
    "  local cur = '0'\n"
    "  repeat\n"
    "    local r = redis.call('HSCAN', KEYS[2], cur, 'COUNT', most)\n"
    "    cur = r[1]\n"
    "    for i = 1, #r[2] do list[#list + 1] = r[2][i] end\n"
    "  until cur == '0' or #list >= 2 * most\n"
    "end\n"
    "return {1, tonumber(st[1] or '0'), st[2] or '', total, list}\n";

/* The server API's room list (api.c). KEYS: the shard's rooms. ARGV: the last room of the previous
 * page ('' from the start), most rooms, the shard's room key prefix ("rrm:room:{N}:"). Returns a
 * flat room/members list of the next rooms in id order; a listed room whose hash is gone (recycled
 * by a node of an older version) is skipped and removed from the set. */
static const char rooms_page_lua[] =
    "local from = ARGV[1] == '' and '-' or '(' .. ARGV[1]\n"
    "local out, most = {}, tonumber(ARGV[2])\n"
    "while #out < 2 * most do\n"
    "  local rooms = redis.call('ZRANGEBYLEX', KEYS[1], from, '+', 'LIMIT', 0, most - #out / 2)\n"
    "  if #rooms == 0 then break end\n"
    "  for _, room in ipairs(rooms) do\n"
    "    local rk = ARGV[3] .. room\n"
    "    if redis.call('EXISTS', rk) == 1 then\n"
    "      out[#out + 1] = room\n"
    "      out[#out + 1] = redis.call('HLEN', rk .. '" KEYS_MEMBERS_SUFFIX "')\n"
    "    else redis.call('ZREM', KEYS[1], room) end\n"
    "  end\n"
    "  from = '(' .. rooms[#rooms]\n"
    "end\n"
    "return out\n";

/* KEYS: room, room history. ARGV: last seq the client saw, the epoch it saw, history size, most
 * bytes of payloads to return, the client's device.
 * Returns {recovered (1/0), the room's last seq, its epoch, {payload, ...}}: with 1 the list
 * holds the published payload (proto_pub_parse) of every message after the client's last seq up
 * to the room's, in order, except the client's own (its device's). 0 when the epoch differs (or
 * the room has none), history is off, the last seq is ahead of the room's, or the messages since
 * are not all in the history (more than its size, expired, trimmed, or not the seqs expected) or
 * over the bytes allowed: then the list is empty. Read-only; reads at most history size entries. */
static const char resume_lua[] =
    "local st = redis.call('HMGET', KEYS[1], 'seq', 'epoch')\n"
    "local last, epoch = tonumber(st[1] or '0'), st[2] or ''\n"
    "local n, size, out = tonumber(ARGV[1]), tonumber(ARGV[3]), {}\n"
    "if size == 0 or epoch == '' or epoch ~= ARGV[2] or n > last or last - n > size then\n"
    "  return {0, last, epoch, out} end\n"
    "if n == last then return {1, last, epoch, out} end\n"
    "local e = redis.call('LRANGE', KEYS[2], n - last, -1)\n"
    "if #e ~= last - n then return {0, last, epoch, out} end\n"
    "local bytes, most = 0, tonumber(ARGV[4])\n"
    "for i = 1, #e do\n"
    "  local t1 = string.find(e[i], '\\t', 1, true)\n"
    "  local t2 = t1 and string.find(e[i], '\\t', t1 + 1, true)\n"
    "  local p = t2 and string.sub(e[i], t2 + 1) or ''\n"
    "  local s = string.match(p, '^[^\\n]*\\t(%d+)\\n')\n"
    "  if not s or tonumber(s) ~= n + i then return {0, last, epoch, {}} end\n"
    "  if string.sub(e[i], 1, t1 - 1) ~= ARGV[5] then\n"
    "    bytes = bytes + #p\n"
    "    if bytes > most then return {0, last, epoch, {}} end\n"
    "    out[#out + 1] = p\n"
    "  end\n"
    "end\n"
    "return {1, last, epoch, out}\n";

/* KEYS: members, the room's shard's events stream. ARGV: device, conn, room, node, now, maxlen,
 * identity, most members listed. Returns {total members, flat device/value list}. A room larger
 * than the list gets a random sample (HRANDFIELD takes distinct fields), so the reply Redis builds
 * and buffers stays bounded however large the room grows; one more than asked, as the asker may be
 * among them.
 */
static const char query_lua[] =
    "local total = redis.call('HLEN', KEYS[1])\n"
    "local n = tonumber(ARGV[8]) + 1\n"
    "local list\n"
    "if total <= n then list = redis.call('HGETALL', KEYS[1])\n"
    "else list = redis.call('HRANDFIELD', KEYS[1], n, 'WITHVALUES') end\n"
    "emit(KEYS[2], ARGV[6], 'type', 'query', 'ts', ARGV[5], 'node', ARGV[4], 'conn', ARGV[2],\n"
    "  'device', ARGV[1], 'identity', ARGV[7], 'room', ARGV[3], 'total', total)\n"
    "return {total, list}\n";

/* KEYS: nodes. ARGV: node. Returns 1 if the node was not registered (first beat, or the
 * cluster declared it dead meanwhile). Runs also when Redis is at maxmemory (it only updates a
 * score): otherwise a full Redis would make every node look dead and the others would remove
 * all its members. */
static const char heartbeat_lua[] = "return redis.call('ZADD', KEYS[1], now_ms(), ARGV[1])\n";

/* KEYS: nodes. ARGV: timeout ms, most nodes listed. Returns the nodes whose last heartbeat is
 * older than the timeout, by Redis's clock (the one the heartbeats are written with). */
static const char dead_nodes_lua[] =
    "return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms() - tonumber(ARGV[1]),\n"
    "  'LIMIT', 0, tonumber(ARGV[2]))\n";

/* KEYS: the shard's empty rooms, the shard's events stream, the shard's rooms. ARGV: grace ms,
 * maxlen, node, now,
 * most rooms looked at, the shard's room key prefix ("rrm:room:{N}:").
 * Returns {rooms recycled, rooms looked at}: as many looked at as allowed means more may be due. */
static const char recycle_lua[] =
    "local pre = ARGV[6]\n"
    "local rooms = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf',\n"
    "  tonumber(ARGV[4]) - tonumber(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[5]))\n"
    "local n = 0\n"
    "for _, room in ipairs(rooms) do\n"
    "  local rk = pre .. room\n"
    "  if redis.call('HLEN', rk .. '" KEYS_MEMBERS_SUFFIX "') == 0 then\n"
    "    redis.call('DEL', rk, rk .. '" KEYS_MEMBERS_SUFFIX "', rk .. '" KEYS_HISTORY_SUFFIX "')\n"
    "    redis.call('ZREM', KEYS[3], room)\n"
    "    emit(KEYS[2], ARGV[2], 'type', 'room_recycled', 'ts', ARGV[4], 'node', ARGV[3],\n"
    "      'room', room)\n"
    "    n = n + 1\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[1], room)\n"
    "end\n"
    "return {n, #rooms}\n";

/* Restore (room.c) re-asserts a local membership in three steps: device, node, room. Each writes
 * nothing when what it would write is all still there, so that a node whose link dropped keeps
 * its clients while Redis is full.
 *
 * KEYS: device. ARGV: conn, node, identity, room, device ttl, when the connection was accepted
 * (ms). Returns 0 if the device now belongs to another connection, else 1 (the device is conn's,
 * in room). */
static const char restore_device_lua[] =
    "local cur = redis.call('HMGET', KEYS[1], 'conn', 'node', 'identity', 'room')\n"
    "if cur[1] and cur[1] ~= ARGV[1] then return 0 end\n"
    "if not (cur[1] and cur[2] == ARGV[2] and cur[3] == ARGV[3] and cur[4] == ARGV[4]) then\n"
    "  redis.call('HSET', KEYS[1], 'room', ARGV[4], 'conn', ARGV[1], 'node', ARGV[2],\n"
    "    'identity', ARGV[3], 'since', ARGV[6]) end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
    "return 1\n";

/* KEYS: room, members, the shard's empty rooms, room history, the shard's rooms. ARGV: device,
 * "conn\tnode\tidentity", now, epoch for the room if its hash is recreated (Redis lost it: seq
 * starts again, with no history), room. Returns {the room's last seq, its epoch, its members}. */
static const char restore_room_lua[] =
    "local function state()\n"
    "  local st = redis.call('HMGET', KEYS[1], 'seq', 'epoch')\n"
    "  return {st[1] or '0', st[2] or '', redis.call('HLEN', KEYS[2])}\n"
    "end\n"
    "if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then return state() end\n"
    "if redis.call('HSETNX', KEYS[1], 'created_at', ARGV[3]) == 1 then\n"
    "  redis.call('HSET', KEYS[1], 'seq', 0, 'epoch', ARGV[4])\n"
    "  redis.call('DEL', KEYS[4])\n"
    "else\n"
    "  redis.call('HSETNX', KEYS[1], 'epoch', ARGV[4])\n"
    "end\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
    "redis.call('ZREM', KEYS[3], ARGV[5])\n"
    "redis.call('ZADD', KEYS[5], 0, ARGV[5])\n"
    "return state()\n";

static const char *const bodies[SCRIPT_COUNT] = {
    [SCRIPT_CLAIM] = claim_lua,
    [SCRIPT_JOIN] = join_lua,
    [SCRIPT_REMEMBER] = remember_lua,
    [SCRIPT_REGISTER] = register_lua,
    [SCRIPT_MEMBER_LEAVE] = member_leave_lua,
    [SCRIPT_RELEASE] = release_lua,
    [SCRIPT_SEND] = send_lua,
    [SCRIPT_QUERY] = query_lua,
    [SCRIPT_HEARTBEAT] = heartbeat_lua,
    [SCRIPT_DEAD_NODES] = dead_nodes_lua,
    [SCRIPT_RECYCLE] = recycle_lua,
    [SCRIPT_RESTORE_DEVICE] = restore_device_lua,
    [SCRIPT_RESTORE_ROOM] = restore_room_lua,
    [SCRIPT_RESUME] = resume_lua,
    [SCRIPT_PUBLISH] = publish_lua,
    [SCRIPT_ROOM_INFO] = room_info_lua,
    [SCRIPT_ROOMS_PAGE] = rooms_page_lua,
};

/* History kept beyond its size before a trim: one LTRIM per this many messages. */
#define HISTORY_TRIM_SLACK 64

/* Redis runs a script's whole text on every call, so the prelude's helpers are defined again
 * each time; the script run once per message goes without them (about a fifth of its cost) and
 * gets its settings as constants instead of arguments. The text is allocated (NULL: no memory). */
static char *script_prelude(const struct scripts *s, enum script_id id) {
    char *pre = NULL;
    const struct scripts_params *p = &s->params;
    int n = id != SCRIPT_SEND && id != SCRIPT_PUBLISH
                ? asprintf(&pre, "%s", prelude)
                : asprintf(&pre,
                           "local MAXLEN, HSIZE, HTRIM, HTTL, ACKWIN = '%ld', %ld, %ld, '%ld', "
                           "'%ld'\n",
                           p->stream_maxlen, p->history_size, p->history_size + HISTORY_TRIM_SLACK,
                           p->history_ttl_ms, p->ack_window_ms);
    return n < 0 ? NULL : pre;
}

/* Scripts without flags keep Redis's pre-7 rules: refused at their first memory-growing write
 * while Redis is over maxmemory, never stopped half-way. A flags line must come first. */
static const char *script_flags(enum script_id id) {
    return id == SCRIPT_HEARTBEAT ? "#!lua flags=allow-oom\n" : "";
}

struct load_ticket {
    struct scripts *s;
    enum script_id id;
};

static void load_reply(redisAsyncContext *ac, void *r, void *priv) {
    (void)ac;
    struct load_ticket *t = priv;
    struct scripts *s = t->s;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40)
        memcpy(s->sha[t->id], reply->str, 41);
    else
        s->failed = 1;
    free(t);
    if (--s->pending == 0) {
        s->loaded = !s->failed;
        s->done(s->arg, s->loaded);
    }
}

int scripts_load(struct scripts *s, redisAsyncContext *ac, void (*done)(void *arg, int ok),
                 void *arg) {
    s->loaded = 0;
    s->failed = 0;
    s->pending = 0;
    s->done = done;
    s->arg = arg;
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        const char *flags = script_flags((enum script_id)i);
        char *pre = script_prelude(s, (enum script_id)i);
        char *src = NULL;
        int n = pre ? asprintf(&src, "%s%s%s", flags, pre, bodies[i]) : -1;
        free(pre);
        struct load_ticket *t = malloc(sizeof(*t));
        if (n < 0 || !t) {
            if (n >= 0)
                free(src);
            free(t);
            s->failed = 1;
            break;
        }
        t->s = s;
        t->id = (enum script_id)i;
        s->pending++;
        if (redisAsyncCommand(ac, load_reply, t, "SCRIPT LOAD %b", src, (size_t)n) != REDIS_OK) {
            s->pending--;
            s->failed = 1;
            free(t);
        }
        free(src);
    }
    return s->pending > 0 ? 0 : -1;
}

size_t scripts_resp_argv(char *buf, size_t cap, int argc, const char *const *argv,
                         const size_t *lens) {
    size_t need = 1 + 20 + 2;
    for (int i = 0; i < argc; i++)
        need += 1 + 20 + 2 + lens[i] + 2;
    if (need > cap)
        return need;
    char *p = buf;
    *p++ = '*';
    p += util_u64_dec(p, (uint64_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        *p++ = '$';
        p += util_u64_dec(p, lens[i]);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], lens[i]);
        p += lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    return (size_t)(p - buf);
}

void scripts_evalsha_args(const char *sha, int nkeys, int argc, const char **argv,
                          const size_t *lens, const char **av, size_t *al, char nk[24]) {
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = sha;
    al[1] = 40;
    al[2] = util_u64_dec(nk, (uint64_t)(nkeys > 0 ? nkeys : 0));
    av[2] = nk;
    for (int i = 0; i < argc; i++) {
        av[i + 3] = argv[i];
        al[i + 3] = lens ? lens[i] : strlen(argv[i]);
    }
}

int scripts_eval(const struct scripts *s, redisAsyncContext *ac, enum script_id id,
                 redisCallbackFn *cb, void *priv, int nkeys, int argc, const char **argv,
                 const size_t *lens) {
    enum { MAX_ARGS = 64 };
    const char *av[MAX_ARGS + 3];
    size_t al[MAX_ARGS + 3];
    char nk[24];
    if (!ac || !s->loaded || argc > MAX_ARGS)
        return -1;
    scripts_evalsha_args(s->sha[id], nkeys, argc, argv, lens, av, al, nk);
    /* The request is formatted here rather than by hiredis's printf-style formatter, which was
     * the largest single cost of a relayed message in the frontend (callgrind). hiredis 0.14
     * looks for the command's name with strchr, so the request ends with a NUL. */
    char stack[4096], *buf = stack;
    size_t n = scripts_resp_argv(stack, sizeof(stack) - 1, argc + 3, av, al);
    if (n > sizeof(stack) - 1) {
        if (!(buf = malloc(n + 1)))
            return -1;
        n = scripts_resp_argv(buf, n, argc + 3, av, al);
    }
    buf[n] = '\0';
    int rc = redisAsyncFormattedCommand(ac, cb, priv, buf, n) == REDIS_OK ? 0 : -1;
    if (buf != stack)
        free(buf);
    return rc;
}
