/* Lua scripts run by Redis. They share a prelude of helpers; key names follow keys.h, event
 * fields follow event.h. Member values are "conn\tnode\tidentity" and node-conn values are
 * "room\tdevice": tabs cannot occur in ids or identities (proto.c rejects control characters). */
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
    /* key names from the pieces keys.h defines */
    "local function rkey(r) return '" KEYS_ROOM_PREFIX "{' .. r .. '}' end\n"
    "local function mkey(r) return '" KEYS_ROOM_PREFIX "{' .. r .. '}" KEYS_MEMBERS_SUFFIX "' end\n"
    "local function hkey(r) return '" KEYS_ROOM_PREFIX "{' .. r .. '}" KEYS_HISTORY_SUFFIX "' end\n"
    "local function dkey(d) return '" KEYS_DEVICE_PREFIX "{' .. d .. '}' end\n"
    "local function nconns(n) return '" KEYS_NODE_PREFIX "{' .. n .. '}" KEYS_CONNS_SUFFIX "' end\n"
    "local function nchannel(n) return '" KEYS_NODE_PREFIX "{' .. n .. '}" KEYS_CHANNEL_SUFFIX
    "' end\n"
    "local function emit(stream, maxlen, ...)\n"
    "  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'v', '1', ...) end\n"
    /* Removes the device from the room if conn still holds it; an emptied room starts its
     * grace period in the empty-rooms set. */
    "local function member_leave(room, device, conn, now, empty)\n"
    "  local m = redis.call('HGET', mkey(room), device)\n"
    "  if m and string.sub(m, 1, #conn + 1) == conn .. '\\t' then\n"
    "    redis.call('HDEL', mkey(room), device)\n"
    "    if redis.call('HLEN', mkey(room)) == 0 then redis.call('ZADD', empty, now, room) end\n"
    "    return 1\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "local function device_release(device, conn)\n"
    "  local dk = dkey(device)\n"
    "  if redis.call('HGET', dk, 'conn') == conn then redis.call('HDEL', dk, 'conn', 'node') end\n"
    "end\n";

/* KEYS: device, own node conns, empty rooms, the wanted room's events stream (rrm:events:{N}).
 * ARGV: device, identity, wanted room ('' none), conn, node, now, ip, device ttl, maxlen (of one
 *       shard), rooms the token allows (comma-separated ids and prefixes ending in '*'; '*' any
 *       room), '1' if a fresh room may be created ('0': the token says auto_room false),
 *       epoch for the room if its hash is created now (or has none), event shards, candidate ids
 *       for a new room...
 * With no room wanted, the events go to the stream of the room picked here: ev_shard is
 * keys_event_shard (shared/keys.c) in Lua, and must stay equal to it.
 * A room hash created here gets the new epoch and loses any history left from before (a room
 * whose state Redis lost starts its seq again, under another epoch).
 * Returns {room, action, members, replaced conn or '', last seq, epoch}, or a FORBIDDEN error
 * (nothing changed) when no room was named, the last room is not allowed and no fresh room may be
 * made. The wanted room was checked against the token by the caller; the last room is checked here,
 * where it is read, so that the decision and the join are one atomic step. */
static const char identify_lua[] =
    "local device, identity, want, conn, node, now, ip, ttl, maxlen, rooms, auto, epoch =\n"
    "  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9],\n"
    "  ARGV[10], ARGV[11], ARGV[12]\n"
    /* FNV-1a 32-bit: h * 16777619 mod 2^32 as h * 403 + (h mod 256) * 2^24, exact in doubles */
    "local function ev_shard(id, n)\n"
    "  local h = 2166136261\n"
    "  for i = 1, #id do\n"
    "    h = bit.bxor(h, string.byte(id, i)) % 4294967296\n"
    "    h = (h * 403 + (h % 256) * 16777216) % 4294967296\n"
    "  end\n"
    "  return h % n\n"
    "end\n"
    "local function allowed(r)\n"
    "  for p in string.gmatch(rooms, '[^,]+') do\n"
    "    if string.sub(p, -1) == '*' then\n"
    "      if string.sub(r, 1, #p - 1) == string.sub(p, 1, -2) then return true end\n"
    "    elseif p == r then return true end\n"
    "  end\n"
    "  return false\n"
    "end\n"
    "local prev = redis.call('HMGET', KEYS[1], 'room', 'conn', 'node')\n"
    "local prev_room, prev_conn, prev_node = prev[1], prev[2], prev[3]\n"
    "local room, action = want, 'joined'\n"
    "if room == '' then\n"
    "  if prev_room and allowed(prev_room) and redis.call('EXISTS', rkey(prev_room)) == 1 then\n"
    "    room = prev_room\n"
    "  elseif auto ~= '1' then\n"
    "    return redis.error_reply('FORBIDDEN the token allows no new room')\n"
    "  else\n"
    "    for i = 14, #ARGV do\n"
    "      if redis.call('EXISTS', rkey(ARGV[i])) == 0 then room = ARGV[i] break end\n"
    "    end\n"
    "    if room == '' then return redis.error_reply('ROOMID no free room id') end\n"
    "  end\n"
    "end\n"
    "local replaced = ''\n"
    "if prev_conn and prev_conn ~= conn then\n"
    "  if prev_room then member_leave(prev_room, device, prev_conn, now, KEYS[3]) end\n"
    "  if prev_node then\n"
    "    redis.call('HDEL', nconns(prev_node), prev_conn)\n"
    "    redis.call('PUBLISH', nchannel(prev_node), 'kick ' .. prev_conn)\n"
    "  end\n"
    "  replaced = prev_conn\n"
    "end\n"
    "local ev = KEYS[4]\n"
    "if want == '' then\n"
    "  ev = '" KEYS_EVENTS_PREFIX
    "{' .. string.format('%d', ev_shard(room, tonumber(ARGV[13]))) .. '}'\n"
    "end\n"
    "emit(ev, maxlen, 'type', 'connect', 'ts', now, 'node', node, 'conn', conn,\n"
    "  'device', device, 'identity', identity, 'ip', ip, 'room', room)\n"
    "if redis.call('HSETNX', rkey(room), 'created_at', now) == 1 then\n"
    "  redis.call('HSET', rkey(room), 'created_by', device, 'seq', 0, 'epoch', epoch)\n"
    "  redis.call('DEL', hkey(room))\n"
    "  action = 'created'\n"
    "  emit(ev, maxlen, 'type', 'room_created', 'ts', now, 'node', node, 'conn', conn,\n"
    "    'device', device, 'room', room)\n"
    "elseif room == prev_room then\n"
    "  action = 'rejoined'\n"
    "end\n"
    "redis.call('HSETNX', rkey(room), 'epoch', epoch)\n"
    "redis.call('HSET', mkey(room), device, conn .. '\\t' .. node .. '\\t' .. identity)\n"
    "redis.call('ZREM', KEYS[3], room)\n"
    "redis.call('HSET', KEYS[1], 'room', room, 'conn', conn, 'node', node, 'identity', identity)\n"
    "redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "redis.call('HSET', KEYS[2], conn, room .. '\\t' .. device)\n"
    "emit(ev, maxlen, 'type', 'room', 'ts', now, 'node', node, 'conn', conn,\n"
    "  'device', device, 'identity', identity, 'room', room, 'action', action)\n"
    "local st = redis.call('HMGET', rkey(room), 'seq', 'epoch')\n"
    "return {room, action, redis.call('HLEN', mkey(room)), replaced, st[1] or '0', st[2]}\n";

/* KEYS: device, own node conns, empty rooms, the room's events stream.
 * ARGV: device, room, conn, node, now, reason, connected_at, maxlen (of one shard). Returns 1 if it
 * left. */
static const char leave_lua[] =
    "local left = member_leave(ARGV[2], ARGV[1], ARGV[3], ARGV[5], KEYS[3])\n"
    "if redis.call('HGET', KEYS[1], 'conn') == ARGV[3] then\n"
    "  redis.call('HDEL', KEYS[1], 'conn', 'node') end\n"
    "redis.call('HDEL', KEYS[2], ARGV[3])\n"
    "emit(KEYS[4], ARGV[8], 'type', 'disconnect', 'ts', ARGV[5], 'node', ARGV[4], 'conn', "
    "ARGV[3],\n"
    "  'device', ARGV[1], 'room', ARGV[2], 'reason', ARGV[6], 'connected_at', ARGV[7])\n"
    "return left\n";

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
static const char send_lua[] =
    "local m = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "if not m or string.sub(m, 1, #ARGV[2] + 1) ~= ARGV[2] .. '\\t' then\n"
    "  return redis.error_reply('NOTMEMBER connection no longer holds the membership') end\n"
    "if KEYS[6] then\n"
    "  local first = redis.call('GET', KEYS[6])\n"
    "  if first then return first end\n"
    "end\n"
    "local n = redis.call('HINCRBY', KEYS[1], 'seq', 1)\n"
    "local seq = tostring(n)\n"
    "local p\n"
    "if ARGV[4] ~= '' then p = ARGV[3] .. seq .. '\\n' .. ARGV[4] .. ',\"seq\":' .. seq .. '}'\n"
    "else p = ARGV[3] .. seq .. '\\n' .. ARGV[5] end\n"
    "redis.call('SPUBLISH', KEYS[3], p)\n"
    "if HSIZE > 0 then\n"
    "  local len = redis.call('RPUSH', KEYS[5], ARGV[1] .. '\\t' .. ARGV[6] .. '\\t' .. p)\n"
    "  if len >= HTRIM then redis.call('LTRIM', KEYS[5], -HSIZE, -1) end\n"
    "  if len == 1 or ARGV[10] == '1' then redis.call('PEXPIRE', KEYS[5], HTTL) end\n"
    "end\n"
    "if KEYS[6] then redis.call('SET', KEYS[6], seq, 'PX', ACKWIN) end\n"
    "redis.call('XADD', KEYS[4], 'MAXLEN', '~', MAXLEN, '*', 'v', '1', 'type', 'message',\n"
    "  'ts', ARGV[6], 'node', ARGV[7], 'conn', ARGV[2], 'device', ARGV[1], 'room', ARGV[8],\n"
    "  'kind', ARGV[9], 'seq', seq, 'body', ARGV[5])\n"
    "return n\n";

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

/* KEYS: members, the room's events stream. ARGV: device, conn, room, node, now, maxlen, identity,
 * most members listed. Returns {total members, flat device/value list}. A room larger than the list
 * gets a random sample (HRANDFIELD takes distinct fields), so the reply Redis builds and buffers
 * stays bounded however large the room grows; one more than asked, as the asker may be among them.
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

/* KEYS: nodes, empty rooms, the events stream of the node running it (its disconnects are of
 * many rooms). ARGV: timeout ms, maxlen, node to reset ('' = every node
 * silent for longer than the timeout), own node (never reaped as dead), reason.
 * Returns the number of memberships removed. */
static const char reap_lua[] =
    "local now = now_ms()\n"
    "local dead\n"
    "if ARGV[3] ~= '' then dead = {ARGV[3]} else\n"
    "  dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]),\n"
    "    'LIMIT', 0, 16) end\n"
    "local removed = 0\n"
    "for _, node in ipairs(dead) do\n"
    "  if ARGV[3] ~= '' or node ~= ARGV[4] then\n"
    "    local ck = nconns(node)\n"
    "    local conns = redis.call('HGETALL', ck)\n"
    "    for i = 1, #conns, 2 do\n"
    "      local conn, v = conns[i], conns[i + 1]\n"
    "      local tab = string.find(v, '\\t', 1, true)\n"
    "      if tab then\n"
    "        local room, device = string.sub(v, 1, tab - 1), string.sub(v, tab + 1)\n"
    "        removed = removed + member_leave(room, device, conn, now, KEYS[2])\n"
    "        device_release(device, conn)\n"
    "        emit(KEYS[3], ARGV[2], 'type', 'disconnect', 'ts', now, 'node', node, 'conn', conn,\n"
    "          'device', device, 'room', room, 'reason', ARGV[5])\n"
    "      end\n"
    "    end\n"
    "    redis.call('DEL', ck)\n"
    "    redis.call('ZREM', KEYS[1], node)\n"
    "  end\n"
    "end\n"
    "return removed\n";

/* KEYS: empty rooms, the events stream of the node running it (the rooms are of any shard).
 * ARGV: grace ms, maxlen, node, now, most rooms looked at.
 * Returns {rooms recycled, rooms looked at}: as many looked at as allowed means more may be due. */
static const char recycle_lua[] =
    "local rooms = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf',\n"
    "  tonumber(ARGV[4]) - tonumber(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[5]))\n"
    "local n = 0\n"
    "for _, room in ipairs(rooms) do\n"
    "  if redis.call('HLEN', mkey(room)) == 0 then\n"
    "    redis.call('DEL', rkey(room), mkey(room), hkey(room))\n"
    "    emit(KEYS[2], ARGV[2], 'type', 'room_recycled', 'ts', ARGV[4], 'node', ARGV[3],\n"
    "      'room', room)\n"
    "    n = n + 1\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[1], room)\n"
    "end\n"
    "return {n, #rooms}\n";

/* KEYS: device, own node conns, empty rooms. ARGV: device, identity, room, conn, node, now, ttl,
 * epoch for the room if its hash is recreated (Redis lost it: seq starts again, with no history).
 * Returns {the room's last seq, its epoch, its members} if restored, 0 if the device now belongs
 * to another connection. A membership that is all still there is only confirmed, without a
 * memory-growing write, so that it succeeds while Redis is full (a node whose link dropped then
 * keeps its clients). */
static const char restore_lua[] =
    "local function room_state()\n"
    "  local st = redis.call('HMGET', rkey(ARGV[3]), 'seq', 'epoch')\n"
    "  return {st[1] or '0', st[2] or '', redis.call('HLEN', mkey(ARGV[3]))}\n"
    "end\n"
    "local cur = redis.call('HGET', KEYS[1], 'conn')\n"
    "if cur and cur ~= ARGV[4] then return 0 end\n"
    "if cur and redis.call('HGET', mkey(ARGV[3]), ARGV[1]) ==\n"
    "    ARGV[4] .. '\\t' .. ARGV[5] .. '\\t' .. ARGV[2]\n"
    "  and redis.call('HGET', KEYS[2], ARGV[4]) == ARGV[3] .. '\\t' .. ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[7])\n"
    "  return room_state()\n"
    "end\n"
    "if redis.call('HSETNX', rkey(ARGV[3]), 'created_at', ARGV[6]) == 1 then\n"
    "  redis.call('HSET', rkey(ARGV[3]), 'seq', 0, 'epoch', ARGV[8])\n"
    "  redis.call('DEL', hkey(ARGV[3]))\n"
    "else\n"
    "  redis.call('HSETNX', rkey(ARGV[3]), 'epoch', ARGV[8])\n"
    "end\n"
    "redis.call('HSET', mkey(ARGV[3]), ARGV[1], ARGV[4] .. '\\t' .. ARGV[5] .. '\\t' .. ARGV[2])\n"
    "redis.call('ZREM', KEYS[3], ARGV[3])\n"
    "redis.call('HSET', KEYS[1], 'room', ARGV[3], 'conn', ARGV[4], 'node', ARGV[5],\n"
    "  'identity', ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[7])\n"
    "redis.call('HSET', KEYS[2], ARGV[4], ARGV[3] .. '\\t' .. ARGV[1])\n"
    "return room_state()\n";

static const char *const bodies[SCRIPT_COUNT] = {
    [SCRIPT_IDENTIFY] = identify_lua,   [SCRIPT_LEAVE] = leave_lua,
    [SCRIPT_SEND] = send_lua,           [SCRIPT_QUERY] = query_lua,
    [SCRIPT_HEARTBEAT] = heartbeat_lua, [SCRIPT_REAP] = reap_lua,
    [SCRIPT_RECYCLE] = recycle_lua,     [SCRIPT_RESTORE] = restore_lua,
    [SCRIPT_RESUME] = resume_lua,
};

/* History kept beyond its size before a trim: one LTRIM per this many messages. */
#define HISTORY_TRIM_SLACK 64

/* Redis runs a script's whole text on every call, so the prelude's helpers are defined again
 * each time; the script run once per message goes without them (about a fifth of its cost) and
 * gets its settings as constants instead of arguments. The text is allocated (NULL: no memory). */
static char *script_prelude(const struct scripts *s, enum script_id id) {
    char *pre = NULL;
    const struct scripts_params *p = &s->params;
    int n = id != SCRIPT_SEND
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
