/* The Lua scripts that make the cluster's actions atomic steps, each on the keys of one Redis
 * Cluster slot, and their loading. Every script's keys and arguments are documented next to its
 * source in scripts.c. */
#ifndef RRM_SCRIPTS_H
#define RRM_SCRIPTS_H

#include <hiredis/async.h>
#include <stddef.h>

enum script_id {
    SCRIPT_CLAIM,        /* identify, device: take the device over, say which room to join */
    SCRIPT_JOIN,         /* identify, room: join (or create) it, record the events */
    SCRIPT_REMEMBER,     /* identify, device: its room, if the connection still holds it */
    SCRIPT_REGISTER,     /* node: conn -> room and device, for the reaper */
    SCRIPT_MEMBER_LEAVE, /* room: remove a member if the connection holds it, record it */
    SCRIPT_RELEASE,      /* device: give it up if the connection holds it */
    SCRIPT_SEND,         /* seq + publish + history + archive event for one message */
    SCRIPT_QUERY,        /* room members + query event */
    SCRIPT_HEARTBEAT,
    SCRIPT_DEAD_NODES,     /* nodes whose heartbeat is too old */
    SCRIPT_RECYCLE,        /* delete a shard's rooms empty for longer than the grace period */
    SCRIPT_RESTORE_DEVICE, /* restore after Redis came back: the device */
    SCRIPT_RESTORE_ROOM,   /* ... the membership */
    SCRIPT_RESUME,         /* a room's history after a client's last seq */
    SCRIPT_PUBLISH,        /* server API: the send script for a message of the server */
    SCRIPT_ROOM_INFO,      /* server API: a room's state and members */
    SCRIPT_ROOMS_PAGE,     /* server API: a page of a shard's rooms with member counts */
    SCRIPT_COUNT
};

/* Settings written into the send script's text when it is loaded: the script run once per message
 * does not carry them as arguments. */
struct scripts_params {
    long stream_maxlen;  /* the approximate cap of one shard's events stream */
    long history_size;   /* messages a room's history keeps (0: no history) */
    long history_ttl_ms; /* a history's life after it is refreshed */
    long ack_window_ms;  /* how long an ack_id is remembered */
};

struct scripts {
    struct scripts_params params; /* set before scripts_load */
    char sha[SCRIPT_COUNT][41];
    int loaded;  /* all SHAs known on the current connection */
    int pending; /* SCRIPT LOAD replies outstanding */
    int failed;
    void (*done)(void *arg, int ok);
    void *arg;
};

/* Sends SCRIPT LOAD for every script on ac; calls done(arg, ok) once all replies are in. */
int scripts_load(struct scripts *s, redisAsyncContext *ac, void (*done)(void *arg, int ok),
                 void *arg);

/* Writes the Redis request (RESP array of bulk strings) for argv into buf if it fits in cap.
 * Returns the bytes written, or, when more than cap, an upper bound of the bytes needed
 * (nothing written). */
size_t scripts_resp_argv(char *buf, size_t cap, int argc, const char *const *argv,
                         const size_t *lens);

/* The arguments of an EVALSHA of sha with nkeys keys: av and al (argc + 3 entries) get "EVALSHA",
 * sha, nkeys (written into nk), then argv (lens NULL: NUL-terminated strings). */
void scripts_evalsha_args(const char *sha, int nkeys, int argc, const char **argv,
                          const size_t *lens, const char **av, size_t *al, char nk[24]);

/* EVALSHA script with nkeys keys followed by the other arguments (argv/lens hold keys first).
 * Returns 0 if queued (cb will be called exactly once), -1 if not (cb is not called). */
int scripts_eval(const struct scripts *s, redisAsyncContext *ac, enum script_id id,
                 redisCallbackFn *cb, void *priv, int nkeys, int argc, const char **argv,
                 const size_t *lens);

#endif
