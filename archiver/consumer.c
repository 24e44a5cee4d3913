/* Consumer-group reads, acknowledgements, alive marks, takeover, reclaiming and dead letters on
 * the archive streams (see consumer.h). */
#include "consumer.h"

#include "keys.h"
#include "rconn.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* While rrm:events does not exist, it is looked for this often. */
#define LEGACY_CHECK_MS 5000

/* One stream the consumer reads: a shard, or the single stream of older versions. */
struct stream {
    char key[32];
    int shard;               /* -1: the legacy stream rrm:events */
    int ready;               /* the group exists on it (legacy: the stream exists) */
    int backlog;             /* reading our own pending entries before new ones (>) */
    char backlog_cursor[48]; /* the last own pending entry read; the next read starts after it */
    char claim_cursor[48];   /* where the next XAUTOCLAIM continues */
};

struct arch_consumer {
    struct arch_consumer_config cfg;
    const struct logger *lg;
    struct rconn *rc;       /* one connection, or one per master of a cluster */
    struct stream *streams; /* the shards 0..shards-1, then the legacy stream */
    int nstreams;
    int backlog;          /* some stream is still in its backlog */
    int next_read;        /* the stream the next read tries first */
    int claim_at;         /* the stream the XAUTOCLAIM scan is at */
    int takeover_at;      /* the stream the takeover scan is at */
    int64_t legacy_check; /* when to look for rrm:events again (monotonic ms) */
    char *alive_key;      /* this consumer's alive mark */
    long mark_ttl;        /* PX of the mark, 0 while unmarked */
    char err[256];
};

static struct stream *legacy(struct arch_consumer *c) {
    return &c->streams[c->nstreams - 1];
}

static char *dup_or_empty(const char *s) {
    return strdup(s ? s : "");
}

struct arch_consumer *arch_consumer_create(const struct arch_consumer_config *cfg,
                                           const struct logger *lg) {
    struct arch_consumer *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = *cfg;
    c->lg = lg;
    c->cfg.host = dup_or_empty(cfg->host);
    c->cfg.password = dup_or_empty(cfg->password);
    c->cfg.group = dup_or_empty(cfg->group);
    c->cfg.name = dup_or_empty(cfg->name);
    c->cfg.nodes = NULL; /* rconn keeps the seeds */
    struct rconn_config rcfg = {
        .host = cfg->host,
        .port = cfg->port,
        .password = cfg->password,
        .cluster = cfg->cluster,
        .nodes = cfg->nodes,
        .timeout_ms = cfg->timeout_ms,
        .read_extra_ms = cfg->block_ms,
    };
    c->rc = rconn_create(&rcfg, lg);
    if (c->cfg.shards < 1)
        c->cfg.shards = 1;
    if (c->cfg.shards > KEYS_EVENT_SHARDS_MAX)
        c->cfg.shards = KEYS_EVENT_SHARDS_MAX;
    c->nstreams = (int)c->cfg.shards + 1;
    c->streams = calloc((size_t)c->nstreams, sizeof(*c->streams));
    for (int i = 0; c->streams && i < c->nstreams; i++) {
        struct stream *s = &c->streams[i];
        s->shard = i < (int)c->cfg.shards ? i : -1;
        if (s->shard >= 0)
            keys_events(s->key, sizeof(s->key), (unsigned)i);
        else
            snprintf(s->key, sizeof(s->key), "%s", KEYS_EVENTS);
        strcpy(s->claim_cursor, "0-0");
    }
    char key[512];
    if (c->cfg.group && c->cfg.name &&
        keys_archiver_alive(key, sizeof(key), c->cfg.group, c->cfg.name) > 0)
        c->alive_key = strdup(key);
    if (!c->cfg.host || !c->cfg.password || !c->cfg.group || !c->cfg.name || !c->alive_key ||
        !c->streams || !c->rc) {
        arch_consumer_destroy(c);
        return NULL;
    }
    return c;
}

void arch_consumer_destroy(struct arch_consumer *c) {
    if (!c)
        return;
    rconn_destroy(c->rc);
    free((char *)c->cfg.host);
    free((char *)c->cfg.password);
    free((char *)c->cfg.group);
    free((char *)c->cfg.name);
    free(c->alive_key);
    free(c->streams);
    free(c);
}

const char *arch_consumer_error(const struct arch_consumer *c) {
    return c->err;
}

void arch_entries_free(struct arch_entries *e) {
    if (e->reply)
        freeReplyObject(e->reply);
    free(e->items);
    free(e->strs);
    free(e->lens);
    memset(e, 0, sizeof(*e));
}

/* Closes the connections, if any; the next call reconnects (and, in a cluster, learns the slot
 * table again). */
static void forget(struct arch_consumer *c) {
    rconn_reset(c->rc);
}

/* Forgets connections that failed, saying why (rconn_error). */
static void drop(struct arch_consumer *c, const char *what) {
    snprintf(c->err, sizeof(c->err), "%s: %s", what, rconn_error(c->rc));
    forget(c);
}

/* Sends one command to the Redis that holds key (the only key, or the one that routes it: every
 * command names keys of one slot); lens NULL means the arguments are NUL-terminated strings
 * (hiredis measures them). NULL (and the connections dropped) on I/O error. An error reply is
 * returned like any other: callers check its type. Caller frees the reply. */
static redisReply *command(struct arch_consumer *c, const char *what, const char *key, int argc,
                           const char **argv, const size_t *lens) {
    if (arch_consumer_connect(c))
        return NULL;
    redisReply *r = rconn_command(c->rc, key, strlen(key), argc, argv, lens);
    if (!r)
        drop(c, what);
    return r;
}

static int is_error(struct arch_consumer *c, redisReply *r, const char *what) {
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    snprintf(c->err, sizeof(c->err), "%s: %.*s", what, (int)r->len, r->str);
    /* The group was removed (stream deleted, FLUSHALL): recreate it on a fresh connection. */
    if (strncmp(r->str, "NOGROUP", 7) == 0)
        forget(c);
    return 1;
}

/* command() for callers to whom an error reply is a failure. Returns 0 and hands over the reply
 * (caller frees; freed here when reply is NULL), -1 when the connection failed (it is dropped), or
 * 1 when Redis answered with an error (nothing to free). c->err says why. */
static int call(struct arch_consumer *c, const char *what, const char *key, int argc,
                const char **argv, const size_t *lens, redisReply **reply) {
    if (reply)
        *reply = NULL;
    redisReply *r = command(c, what, key, argc, argv, lens);
    if (!r)
        return -1;
    if (is_error(c, r, what)) {
        freeReplyObject(r);
        return 1;
    }
    if (reply)
        *reply = r;
    else
        freeReplyObject(r);
    return 0;
}

/* SET the alive mark on the current connection. Returns 0 or -1 (c->err says why). */
static int set_mark(struct arch_consumer *c) {
    char ttl[24], now[24];
    snprintf(ttl, sizeof(ttl), "%ld", c->mark_ttl);
    snprintf(now, sizeof(now), "%" PRId64, util_now_ms());
    const char *argv[] = {"SET", c->alive_key, now, "PX", ttl};
    return call(c, "SET alive mark", c->alive_key, 5, argv, NULL, NULL) ? -1 : 0;
}

/* Creates the group on stream s from its start (from 0, not $: whatever the frontends appended
 * before the first archiver started counts); a shard's stream is made if missing (MKSTREAM), the
 * legacy one never. BUSYGROUP (the group exists) is the usual answer, so this one error reply is
 * checked here. Returns 1 (s is ready), 0 (legacy stream absent) or -1 (connection dropped). */
static int create_group(struct arch_consumer *c, struct stream *s) {
    const char *argv[] = {"XGROUP", "CREATE", s->key, c->cfg.group, "0", "MKSTREAM"};
    redisReply *r = command(c, "XGROUP CREATE", s->key, s->shard >= 0 ? 6 : 5, argv, NULL);
    if (!r)
        return -1;
    int busy = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0;
    if (r->type == REDIS_REPLY_ERROR && !busy) {
        if (s->shard < 0) { /* "requires the key to exist": no older frontend wrote to it */
            freeReplyObject(r);
            return 0;
        }
        snprintf(c->err, sizeof(c->err), "XGROUP CREATE %s: %s", s->key, r->str);
        freeReplyObject(r);
        forget(c);
        return -1;
    }
    if (!busy)
        log_json(c->lg, LOG_INFO, "consumer group created",
                 json_pack("{s:s, s:s}", "stream", s->key, "group", c->cfg.group));
    if (s->shard < 0)
        log_json(c->lg, LOG_INFO, "reading the single stream of older versions too",
                 json_pack("{s:s, s:s}", "stream", s->key, "group", c->cfg.group));
    freeReplyObject(r);
    s->ready = 1;
    return 1;
}

/* Looks for rrm:events (written by frontends of older versions) when it is time to. Returns 0 or
 * -1 (connection dropped). */
static int check_legacy(struct arch_consumer *c) {
    struct stream *s = legacy(c);
    int64_t now = util_mono_ms();
    if (s->ready || now < c->legacy_check)
        return 0;
    c->legacy_check = now + LEGACY_CHECK_MS;
    int rc = create_group(c, s);
    if (rc == 1) { /* its pending entries (of a consumer that had it before) come first */
        s->backlog = 1;
        c->backlog = 1;
        strcpy(s->backlog_cursor, "0");
    }
    return rc < 0 ? -1 : 0;
}

int arch_consumer_connect(struct arch_consumer *c) {
    if (rconn_is_up(c->rc))
        return 0;
    /* Connects and authenticates (a cluster: learns the slot table; each master's connection is
     * opened by its first command). */
    if (rconn_up(c->rc)) {
        snprintf(c->err, sizeof(c->err), "%s", rconn_error(c->rc));
        return -1;
    }

    /* rconn is up, so command() and call() use it and do not reconnect. */

    for (int i = 0; i < c->nstreams; i++) {
        c->streams[i].ready = 0;
        if (c->streams[i].shard >= 0 && create_group(c, &c->streams[i]) < 0)
            return -1;
    }
    c->legacy_check = 0;
    if (check_legacy(c) < 0)
        return -1;
    /* Whatever happened to Redis meanwhile (a restart without persistence), say at once that we
     * are alive, before the first read makes us a consumer of the group again. */
    if (c->mark_ttl > 0 && set_mark(c)) {
        forget(c);
        return -1;
    }
    /* A read whose reply was lost with the old connection left entries pending for us. */
    c->backlog = 1;
    for (int i = 0; i < c->nstreams; i++) {
        c->streams[i].backlog = 1;
        strcpy(c->streams[i].backlog_cursor, "0");
    }
    return 0;
}

int arch_consumer_in_backlog(const struct arch_consumer *c) {
    return c->backlog;
}

/* Fills out from an array of [id, [field, value, ...] | nil] entries of stream number `stream`;
 * takes ownership of reply. */
static int take_entries(struct arch_consumer *c, int stream, redisReply *reply, redisReply *list,
                        struct arch_entries *out) {
    memset(out, 0, sizeof(*out));
    out->reply = reply;
    if (!list || list->type != REDIS_REPLY_ARRAY || list->elements == 0)
        return 0;
    size_t total = 0;
    for (size_t i = 0; i < list->elements; i++) {
        redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            goto malformed;
        redisReply *f = e->element[1];
        if (f->type == REDIS_REPLY_ARRAY) {
            for (size_t k = 0; k < f->elements; k++)
                if (f->element[k]->type != REDIS_REPLY_STRING)
                    goto malformed;
            total += f->elements;
        } else if (f->type != REDIS_REPLY_NIL) {
            goto malformed;
        }
    }
    out->items = calloc(list->elements, sizeof(*out->items));
    out->strs = malloc((total ? total : 1) * sizeof(*out->strs));
    out->lens = malloc((total ? total : 1) * sizeof(*out->lens));
    if (!out->items || !out->strs || !out->lens) {
        snprintf(c->err, sizeof(c->err), "out of memory reading a batch");
        arch_entries_free(out);
        return -1;
    }
    size_t at = 0;
    for (size_t i = 0; i < list->elements; i++) {
        redisReply *e = list->element[i], *f = e->element[1];
        struct arch_entry *it = &out->items[i];
        it->id = e->element[0]->str;
        it->id_len = e->element[0]->len;
        it->stream = stream;
        int shard = c->streams[stream].shard;
        int n = shard >= 0
                    ? snprintf(it->event_id, sizeof(it->event_id), "%d/%.*s", shard,
                               (int)it->id_len, it->id)
                    : snprintf(it->event_id, sizeof(it->event_id), "%.*s", (int)it->id_len, it->id);
        /* a longer id than Redis makes is cut short: the archive's check refuses it */
        it->event_id_len = n < 0                              ? 0
                           : (size_t)n < sizeof(it->event_id) ? (size_t)n
                                                              : sizeof(it->event_id) - 1;
        if (f->type == REDIS_REPLY_NIL) {
            it->deleted = 1;
            continue;
        }
        /* Names and values are laid out as [names..., values...] for event_decode. */
        size_t pairs = f->elements / 2;
        it->nfields = pairs;
        it->names = out->strs + at;
        it->name_lens = out->lens + at;
        it->values = out->strs + at + pairs;
        it->value_lens = out->lens + at + pairs;
        for (size_t k = 0; k < pairs; k++) {
            out->strs[at + k] = f->element[2 * k]->str;
            out->lens[at + k] = f->element[2 * k]->len;
            out->strs[at + pairs + k] = f->element[2 * k + 1]->str;
            out->lens[at + pairs + k] = f->element[2 * k + 1]->len;
        }
        at += 2 * pairs;
    }
    out->n = list->elements;
    return 0;

malformed:
    snprintf(c->err, sizeof(c->err), "unexpected reply shape for stream entries");
    arch_entries_free(out);
    return -1;
}

static int read_group(struct arch_consumer *c, int stream, const char *from, long block,
                      struct arch_entries *out) {
    char count[24], block_ms[24];
    snprintf(count, sizeof(count), "%ld", c->cfg.batch);
    snprintf(block_ms, sizeof(block_ms), "%ld", block);
    const char *argv[11] = {"XREADGROUP", "GROUP", c->cfg.group, c->cfg.name, "COUNT", count};
    int argc = 6;
    if (block > 0) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block_ms;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = c->streams[stream].key;
    argv[argc++] = from;
    redisReply *r;
    if (call(c, "XREADGROUP", c->streams[stream].key, argc, argv, NULL, &r))
        return -1;
    redisReply *list = NULL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2)
        list = r->element[0]->element[1];
    return take_entries(c, stream, r, list, out);
}

/* Sleeps ms; a signal ends it early (the main loop then sees its stop flag). */
static void nap(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int arch_consumer_read(struct arch_consumer *c, struct arch_entries *out, long block_ms) {
    memset(out, 0, sizeof(*out));
    if (arch_consumer_connect(c) || check_legacy(c))
        return -1;
    if (c->backlog) {
        for (int i = 0; i < c->nstreams; i++) {
            struct stream *s = &c->streams[i];
            if (!s->backlog)
                continue;
            if (!s->ready) {
                s->backlog = 0;
                continue;
            }
            /* Reading from a cursor, not from 0 again: earlier backlog batches may still be in
             * flight, and reading them again would write them twice. */
            if (read_group(c, i, s->backlog_cursor, 0, out))
                return -1;
            if (out->n > 0) {
                const struct arch_entry *last = &out->items[out->n - 1];
                snprintf(s->backlog_cursor, sizeof(s->backlog_cursor), "%.*s", (int)last->id_len,
                         last->id);
                return 0;
            }
            arch_entries_free(out);
            s->backlog = 0;
        }
        c->backlog = 0;
    }
    /* One stream per command (a cluster refuses keys of several slots in one): the streams in
     * turn from the one after the last that had entries, each read without blocking. With one
     * stream only, the read itself waits. */
    int ready = 0, only = 0;
    for (int i = 0; i < c->nstreams; i++)
        if (c->streams[i].ready) {
            ready++;
            only = i;
        }
    long block = block_ms > 0 ? block_ms : 1;
    if (block > c->cfg.block_ms)
        block = c->cfg.block_ms;
    if (ready == 1)
        return read_group(c, only, ">", block, out);
    for (int k = 0; k < c->nstreams; k++) {
        int i = (c->next_read + k) % c->nstreams;
        if (!c->streams[i].ready)
            continue;
        if (read_group(c, i, ">", 0, out))
            return -1;
        if (out->n > 0) {
            c->next_read = (i + 1) % c->nstreams;
            return 0;
        }
        arch_entries_free(out);
    }
    nap(block);
    return 0;
}

int arch_consumer_reclaim(struct arch_consumer *c, struct arch_entries *out, int *wrapped,
                          long long *lost) {
    memset(out, 0, sizeof(*out));
    *wrapped = 0;
    *lost = 0;
    char idle[24], count[24];
    snprintf(idle, sizeof(idle), "%ld", c->cfg.claim_idle_ms);
    snprintf(count, sizeof(count), "%ld", c->cfg.batch);
    /* The streams in turn; a stream whose scan reached its end passes to the next, and the last
     * one's end is the end of the whole scan. */
    for (; c->claim_at < c->nstreams; c->claim_at++) {
        struct stream *s = &c->streams[c->claim_at];
        if (!s->ready)
            continue;
        const char *argv[] = {"XAUTOCLAIM", s->key,          c->cfg.group, c->cfg.name,
                              idle,         s->claim_cursor, "COUNT",      count};
        redisReply *r;
        if (call(c, "XAUTOCLAIM", s->key, 8, argv, NULL, &r))
            return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
            r->element[0]->type != REDIS_REPLY_STRING) {
            snprintf(c->err, sizeof(c->err), "unexpected XAUTOCLAIM reply");
            freeReplyObject(r);
            return -1;
        }
        snprintf(s->claim_cursor, sizeof(s->claim_cursor), "%.*s", (int)r->element[0]->len,
                 r->element[0]->str);
        int done = strcmp(s->claim_cursor, "0-0") == 0;
        if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_ARRAY)
            *lost = (long long)r->element[2]->elements;
        int n = r->element[1]->type == REDIS_REPLY_ARRAY ? (int)r->element[1]->elements : 0;
        if (n == 0 && *lost == 0 && done) {
            freeReplyObject(r);
            continue;
        }
        int stream = c->claim_at;
        if (done && ++c->claim_at == c->nstreams) {
            c->claim_at = 0;
            *wrapped = 1;
        }
        return take_entries(c, stream, r, r->element[1], out);
    }
    c->claim_at = 0;
    *wrapped = 1;
    return 0;
}

/* The arguments "<head...> <id>... [tail]" for a list of entries: fills *argv and *lens (caller
 * frees both; they borrow the strings) and returns their count, or -1 when out of memory. */
static int id_args(const char *const *head, int nhead, const char *tail,
                   const struct arch_entry *const *entries, size_t n, const char ***argv,
                   size_t **lens) {
    size_t argc = (size_t)nhead + n + (tail ? 1 : 0);
    const char **v = malloc(argc * sizeof(*v));
    size_t *l = malloc(argc * sizeof(*l));
    if (!v || !l) {
        free(v);
        free(l);
        return -1;
    }
    for (int i = 0; i < nhead; i++) {
        v[i] = head[i];
        l[i] = strlen(head[i]);
    }
    for (size_t i = 0; i < n; i++) {
        v[nhead + i] = entries[i]->id;
        l[nhead + i] = entries[i]->id_len;
    }
    if (tail) {
        v[argc - 1] = tail;
        l[argc - 1] = strlen(tail);
    }
    *argv = v;
    *lens = l;
    return (int)argc;
}

/* Runs "<head...> <id>... [tail]" for a list of entries and discards the reply. Returns 0 or -1. */
static int call_with_ids(struct arch_consumer *c, const char *what, const char *const *head,
                         int nhead, const char *tail, const struct arch_entry *const *entries,
                         size_t n) {
    const char **argv;
    size_t *lens;
    int argc = id_args(head, nhead, tail, entries, n, &argv, &lens);
    if (argc < 0) {
        snprintf(c->err, sizeof(c->err), "out of memory");
        return -1;
    }
    int rc = call(c, what, head[1], argc, argv, lens, NULL);
    free(argv);
    free(lens);
    return rc ? -1 : 0;
}

/* The stream key of entries of stream number `stream` (an unknown number: a key no stream has,
 * so that the command fails instead of touching another stream). */
static const char *stream_key(const struct arch_consumer *c, int stream) {
    return stream >= 0 && stream < c->nstreams ? c->streams[stream].key : "rrm:events:{?}";
}

/* call_with_ids once per run of entries of one stream; head[1] is set to that stream's key. */
static int call_per_stream(struct arch_consumer *c, const char *what, const char **head, int nhead,
                           const char *tail, const struct arch_entry *const *entries, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && entries[j]->stream == entries[i]->stream)
            j++;
        head[1] = stream_key(c, entries[i]->stream);
        if (call_with_ids(c, what, head, nhead, tail, entries + i, j - i))
            return -1;
        i = j;
    }
    return 0;
}

int arch_consumer_touch(struct arch_consumer *c, const struct arch_entry *const *entries,
                        size_t n) {
    const char *head[] = {"XCLAIM", NULL, c->cfg.group, c->cfg.name, "0"};
    return call_per_stream(c, "XCLAIM", head, 5, "JUSTID", entries, n);
}

int arch_consumer_ack(struct arch_consumer *c, const struct arch_entry *const *entries, size_t n) {
    const char *head[] = {"XACK", NULL, c->cfg.group};
    return call_per_stream(c, "XACK", head, 3, NULL, entries, n);
}

/* Appends one XADD of a dead letter to the pipeline of ctx. */
static int append_dead_letter(struct arch_consumer *c, redisContext *ctx,
                              const struct arch_entry *e, const char *reason, const char *now) {
    char maxlen[24];
    snprintf(maxlen, sizeof(maxlen), "%ld", c->cfg.dead_maxlen);
    size_t argc = 2 + (c->cfg.dead_maxlen > 0 ? 3 : 0) + 1 + 8 + 2 * e->nfields;
    const char **argv = malloc(argc * sizeof(*argv));
    size_t *lens = malloc(argc * sizeof(*lens));
    int rc = -1;
    if (!argv || !lens)
        goto out;
    size_t i = 0;
#define ARG(s, l) (argv[i] = (s), lens[i] = (l), i++)
    ARG("XADD", 4);
    ARG(KEYS_DEAD_LETTER, strlen(KEYS_DEAD_LETTER));
    if (c->cfg.dead_maxlen > 0) {
        ARG("MAXLEN", 6);
        ARG("~", 1);
        ARG(maxlen, strlen(maxlen));
    }
    ARG("*", 1);
    ARG("original_id", 11);
    ARG(e->event_id, e->event_id_len);
    ARG("dead_reason", 11);
    ARG(reason, strlen(reason));
    ARG("dead_consumer", 13);
    ARG(c->cfg.name, strlen(c->cfg.name));
    ARG("dead_at", 7);
    ARG(now, strlen(now));
    for (size_t k = 0; k < e->nfields; k++) {
        ARG(e->names[k], e->name_lens[k]);
        ARG(e->values[k], e->value_lens[k]);
    }
#undef ARG
    rc = redisAppendCommandArgv(ctx, (int)argc, argv, lens) == REDIS_OK ? 0 : -1;
out:
    free(argv);
    free(lens);
    return rc;
}

int arch_consumer_dead_letter(struct arch_consumer *c, const struct arch_entry *const *entries,
                              const char *const *reasons, size_t n) {
    if (n == 0)
        return 0;
    if (arch_consumer_connect(c))
        return -1;
    /* Every key of the transaction is rrm:events:dead: its master takes it all. */
    redisContext *ctx = rconn_context(c->rc, KEYS_DEAD_LETTER, strlen(KEYS_DEAD_LETTER));
    if (!ctx) {
        drop(c, "dead letter");
        return -1;
    }
    char now[24];
    snprintf(now, sizeof(now), "%" PRId64, util_now_ms());

    /* Queue MULTI, the XADDs, then EXEC: the dead letters of a batch are written together, or
     * none of them. */
    const char *multi[] = {"MULTI"};
    int queued = redisAppendCommandArgv(ctx, 1, multi, NULL) == REDIS_OK;
    for (size_t i = 0; queued && i < n; i++)
        queued = append_dead_letter(c, ctx, entries[i], reasons[i], now) == 0;
    const char *exec[] = {"EXEC"};
    if (!queued || redisAppendCommandArgv(ctx, 1, exec, NULL) != REDIS_OK) {
        /* Half a transaction may sit in the output buffer: only a new connection is clean. */
        rconn_failed(c->rc, ctx, "queueing dead letters");
        drop(c, "dead letter");
        return -1;
    }

    int rc = 0;
    size_t replies = n + 2; /* MULTI, n x XADD, EXEC */
    for (size_t i = 0; i < replies; i++) {
        redisReply *r = NULL;
        if (redisGetReply(ctx, (void **)&r) != REDIS_OK || !r) {
            rconn_failed(c->rc, ctx, "reading the replies");
            drop(c, "dead letter");
            return -1;
        }
        if (i + 1 < replies) {
            /* A slot that moved answers MOVED to the XADD (EXEC then aborts): the next try goes
             * to its new master. */
            rconn_redirected(c->rc, ctx, r);
            if (is_error(c, r, "dead letter"))
                rc = -1;
        } else if (r->type != REDIS_REPLY_ARRAY) {
            if (!is_error(c, r, "EXEC"))
                snprintf(c->err, sizeof(c->err), "EXEC: transaction aborted");
            rc = -1;
        } else {
            for (size_t k = 0; k < r->elements; k++)
                if (is_error(c, r->element[k], "dead letter"))
                    rc = -1;
        }
        freeReplyObject(r);
        if (!rconn_is_up(c->rc))
            return -1;
    }
    return rc;
}

/* Value of `field` in a flat [name, value, ...] reply, or NULL. */
static redisReply *field(redisReply *flat, const char *name) {
    if (flat->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < flat->elements; i += 2) {
        redisReply *k = flat->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) &&
            strcmp(k->str, name) == 0)
            return flat->element[i + 1];
    }
    return NULL;
}

static long long int_value(redisReply *r, long long absent) {
    if (!r)
        return absent;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return absent;
}

/* Length, pending count and lag of the group on one stream. Returns 0 or -1. */
static int stream_lag(struct arch_consumer *c, const struct stream *s, struct arch_lag *out) {
    out->length = out->pending = 0;
    out->lag = -1;
    const char *xlen[] = {"XLEN", s->key};
    redisReply *r;
    if (call(c, "XLEN", s->key, 2, xlen, NULL, &r))
        return -1;
    out->length = r->integer;
    freeReplyObject(r);

    const char *info[] = {"XINFO", "GROUPS", s->key};
    if (call(c, "XINFO GROUPS", s->key, 3, info, NULL, &r))
        return -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *name = field(r->element[i], "name");
        if (!name || name->type != REDIS_REPLY_STRING || strcmp(name->str, c->cfg.group) != 0)
            continue;
        out->pending = int_value(field(r->element[i], "pending"), 0);
        out->lag = int_value(field(r->element[i], "lag"), -1);
    }
    freeReplyObject(r);
    return 0;
}

int arch_consumer_lag(struct arch_consumer *c, struct arch_lag *out,
                      struct arch_stream_lag *streams, int cap, int *n) {
    memset(out, 0, sizeof(*out));
    out->shard_max = -1;
    if (n)
        *n = 0;
    if (arch_consumer_connect(c) || check_legacy(c))
        return -1;
    for (int i = 0; i < c->nstreams; i++) {
        const struct stream *s = &c->streams[i];
        if (!s->ready)
            continue;
        struct arch_lag one;
        if (stream_lag(c, s, &one))
            return -1;
        if (streams && n && *n < cap)
            streams[(*n)++] = (struct arch_stream_lag){
                .shard = s->shard, .length = one.length, .pending = one.pending, .lag = one.lag};
        out->length += one.length;
        out->pending += one.pending;
        if (out->lag >= 0)
            out->lag = one.lag >= 0 ? out->lag + one.lag : -1;
        long long backlog = one.pending + (one.lag > 0 ? one.lag : 0);
        if (s->shard < 0)
            out->legacy_backlog = backlog;
        else if (out->shard_max < 0 || backlog > out->shard_backlog_max) {
            out->shard_backlog_max = backlog;
            out->shard_max = s->shard;
        }
    }
    return 0;
}

/* arch_consumer_forget_idle on one stream: returns the number removed or -1. */
static int forget_idle(struct arch_consumer *c, const struct stream *s, long long idle_ms) {
    const char *argv[] = {"XINFO", "CONSUMERS", s->key, c->cfg.group};
    redisReply *r;
    if (call(c, "XINFO CONSUMERS", s->key, 4, argv, NULL, &r))
        return -1;
    int removed = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *name = field(r->element[i], "name");
        if (!name || name->type != REDIS_REPLY_STRING || strcmp(name->str, c->cfg.name) == 0)
            continue;
        if (int_value(field(r->element[i], "pending"), 1) != 0 ||
            int_value(field(r->element[i], "idle"), 0) < idle_ms)
            continue;
        const char *del[] = {"XGROUP", "DELCONSUMER", s->key, c->cfg.group, name->str};
        /* DELCONSUMER returns the pending count it dropped; 0 was checked just above. An error
         * reply skips this consumer; a lost connection ends the scan. */
        int rc = call(c, "XGROUP DELCONSUMER", s->key, 5, del, NULL, NULL);
        if (rc < 0)
            break;
        if (rc == 0) {
            removed++;
            log_json(c->lg, LOG_INFO, "idle consumer removed",
                     json_pack("{s:s, s:s}", "consumer", name->str, "stream", s->key));
        }
    }
    freeReplyObject(r);
    return rconn_is_up(c->rc) ? removed : -1;
}

int arch_consumer_forget_idle(struct arch_consumer *c, long long idle_ms) {
    int removed = 0;
    for (int i = 0; i < c->nstreams; i++) {
        if (!c->streams[i].ready)
            continue;
        int n = forget_idle(c, &c->streams[i], idle_ms);
        if (n < 0)
            return -1;
        removed += n;
    }
    return removed;
}

int arch_consumer_mark_alive(struct arch_consumer *c, long ttl_ms) {
    c->mark_ttl = ttl_ms > 0 ? ttl_ms : 1;
    if (arch_consumer_connect(c))
        return -1;
    return set_mark(c);
}

int arch_consumer_unmark(struct arch_consumer *c) {
    c->mark_ttl = 0;
    const char *argv[] = {"DEL", c->alive_key};
    return call(c, "DEL alive mark", c->alive_key, 2, argv, NULL, NULL) ? -1 : 0;
}

/* One dead consumer's takeover in one stream, atomically. KEYS: the stream (the alive mark was
 * read before, on its own: it is of another slot). ARGV: group, consumer, the claiming consumer,
 * most entries to claim. Answers {2} when the consumer had nothing pending and was deleted,
 * {1, entries, asked} when its entries were claimed: XCLAIM drops entries trimmed from the stream
 * from the pending list and does not return them, so asked - #entries were lost. Being one
 * script, nothing runs between the look at the pending list and the claim: a second archiver finds
 * the entries gone, and a consumer cannot read between the check that it has nothing pending and
 * its deletion. XCLAIM is given at most 500 ids at a time, below Lua's limit on unpack. */
static const char takeover_lua[] =
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[4], ARGV[2])\n"
    "if #p == 0 then\n"
    "  redis.pcall('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])\n"
    "  return {2}\n"
    "end\n"
    "local ids = {}\n"
    "for i, e in ipairs(p) do ids[i] = e[1] end\n"
    "local got = {}\n"
    "for i = 1, #ids, 500 do\n"
    "  local part = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0,\n"
    "                          unpack(ids, i, math.min(i + 499, #ids)))\n"
    "  for _, e in ipairs(part) do got[#got + 1] = e end\n"
    "end\n"
    "return {1, got, #ids}\n";

/* Runs takeover_lua for consumer `name` on stream number `stream` unless its alive mark exists.
 * Returns 0 alive, 1 claimed (into out, lost counted), 2 removed, -1 on error. */
static int takeover_one(struct arch_consumer *c, int stream, const char *name,
                        struct arch_entries *out, long long *lost) {
    char key[512], count[24];
    if (keys_archiver_alive(key, sizeof(key), c->cfg.group, name) < 0) {
        snprintf(c->err, sizeof(c->err), "consumer name too long: %.64s...", name);
        return -1;
    }
    const char *exists[] = {"EXISTS", key};
    redisReply *r;
    if (call(c, "EXISTS alive mark", key, 2, exists, NULL, &r))
        return -1;
    int alive = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    if (alive)
        return 0;
    snprintf(count, sizeof(count), "%ld", c->cfg.batch);
    const char *argv[] = {"EVAL",       takeover_lua, "1",         c->streams[stream].key,
                          c->cfg.group, name,         c->cfg.name, count};
    if (call(c, "takeover", c->streams[stream].key, 8, argv, NULL, &r))
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        (r->element[0]->integer == 1 &&
         (r->elements != 3 || r->element[2]->type != REDIS_REPLY_INTEGER))) {
        snprintf(c->err, sizeof(c->err), "unexpected takeover reply");
        freeReplyObject(r);
        return -1;
    }
    int state = (int)r->element[0]->integer;
    if (state != 1) {
        freeReplyObject(r);
        return state == 2 ? 2 : 0;
    }
    long long asked = r->element[2]->integer;
    redisReply *list = r->element[1];
    *lost = asked - (list->type == REDIS_REPLY_ARRAY ? (long long)list->elements : 0);
    return take_entries(c, stream, r, list, out) ? -1 : 1;
}

/* The takeover scan of one stream (see arch_consumer_takeover). */
static int takeover_stream(struct arch_consumer *c, int stream, struct arch_entries *out,
                           struct arch_takeover *t) {
    const char *argv[] = {"XINFO", "CONSUMERS", c->streams[stream].key, c->cfg.group};
    redisReply *r;
    if (call(c, "XINFO CONSUMERS", c->streams[stream].key, 4, argv, NULL, &r))
        return -1;
    int rc = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *name = field(r->element[i], "name");
        if (!name || name->type != REDIS_REPLY_STRING || strcmp(name->str, c->cfg.name) == 0)
            continue;
        t->consumers++;
        long long lost = 0;
        int state = takeover_one(c, stream, name->str, out, &lost);
        if (state < 0) {
            rc = -1;
            break;
        }
        if (state == 0) {
            t->alive++;
        } else if (state == 2) {
            t->removed++;
            log_json(
                c->lg, LOG_INFO, "dead consumer removed",
                json_pack("{s:s, s:s}", "consumer", name->str, "stream", c->streams[stream].key));
        } else {
            snprintf(t->dead, sizeof(t->dead), "%s", name->str);
            t->lost = lost;
            rc = 1;
            break;
        }
    }
    freeReplyObject(r);
    return rc;
}

int arch_consumer_takeover(struct arch_consumer *c, struct arch_entries *out,
                           struct arch_takeover *t) {
    memset(out, 0, sizeof(*out));
    memset(t, 0, sizeof(*t));
    if (arch_consumer_connect(c))
        return -1;
    /* The streams in turn from where the last call stopped at a claim (there may be more). */
    for (; c->takeover_at < c->nstreams; c->takeover_at++) {
        if (!c->streams[c->takeover_at].ready)
            continue;
        int rc = takeover_stream(c, c->takeover_at, out, t);
        if (rc != 0)
            return rc;
    }
    c->takeover_at = 0;
    return 0;
}
