/* The node's Redis subscription links (see sublinks.h for what it owns and the rules it keeps). */
#include "sublinks.h"

#include "hmap.h"
#include "log.h"
#include "redis_loop.h"
#include "router.h"
#include "slots.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_FIRST_MS 50
#define RETRY_MAX_MS 1000
#define NAME_MAX_LEN 255

/* A channel's life here:
 *   WAIT     wanted, no command out (in s->waiting): tried at the next retry;
 *   PENDING  SSUBSCRIBE sent on ch->link;
 *   ACTIVE   confirmed on ch->link;
 *   LEAVING  SUNSUBSCRIBE sent on ch->link: unsubscribed follows;
 *   CANCEL   unsubscribed asked while PENDING: SUNSUBSCRIBE once Redis confirms. */
enum ch_state { CH_WAIT, CH_PENDING, CH_ACTIVE, CH_LEAVING, CH_CANCEL };

struct sch {
    lws_dll2_t node;    /* in its link's chans, or in s->waiting */
    struct slink *link; /* NULL while WAIT */
    unsigned slot;
    uint8_t state;
    uint8_t len;
    char name[NAME_MAX_LEN + 1];
};

/* A command sent on a link and not answered yet. Replies come in order, and a channel's reply
 * names it, except an error: the oldest command gets it. */
enum cmd_kind { CMD_SSUB, CMD_SUNSUB, CMD_SUB };

struct cmd {
    struct cmd *next;
    uint8_t kind;
    uint8_t len;
    char name[]; /* not NUL-terminated */
};

enum ctl_state { CTL_NONE, CTL_PENDING, CTL_ACTIVE };

struct slink {
    struct sublinks *s;
    struct slink *next;
    char host[SLOTS_HOST_MAX];
    unsigned port;
    struct rl *rl;
    int up;
    int master;                  /* in the router's latest table */
    lws_dll2_owner_t chans;      /* PENDING, ACTIVE, LEAVING, CANCEL channels on this link */
    struct cmd *fifo, *fifo_end; /* commands not answered, oldest first */
};

struct sublinks {
    struct lws_context *cx;
    struct lws_vhost *vh;
    struct router *router;
    const struct sublinks_ops *ops;
    void *arg;
    const struct logger *lg;
    char password[256];
    int connect_timeout_ms, ping_timeout_ms;
    char control[NAME_MAX_LEN + 1];
    size_t control_len;

    struct hmap *chans; /* name -> struct sch */
    lws_dll2_owner_t waiting;
    struct slink *links;
    struct slink *ctl_link; /* where the control channel is PENDING or ACTIVE */
    enum ctl_state ctl;
    int is_up;
    int destroying;
    int retry_ms;
    uint64_t losses, drops_closed;

    lws_sorted_usec_list_t sul_retry;
    lws_sorted_usec_list_t sul_topology;
};

static void schedule_retry(struct sublinks *s, int now);

/* ---- commands ------------------------------------------------------------------------------ */

static int send_cmd(struct slink *l, enum cmd_kind kind, const char *name, size_t len) {
    static const char *const verbs[] = {"SSUBSCRIBE", "SUNSUBSCRIBE", "SUBSCRIBE"};
    struct cmd *c = malloc(sizeof(*c) + len);
    if (!c)
        return -1;
    const char *argv[] = {verbs[kind], name};
    size_t lens[] = {strlen(verbs[kind]), len};
    if (rl_push_send(l->rl, 2, argv, lens) != 0) {
        free(c);
        return -1;
    }
    c->next = NULL;
    c->kind = (uint8_t)kind;
    c->len = (uint8_t)len;
    memcpy(c->name, name, len);
    if (l->fifo_end)
        l->fifo_end->next = c;
    else
        l->fifo = c;
    l->fifo_end = c;
    return 0;
}

/* Removes the oldest command of kind for name; 1 if there was one. */
static int take_cmd(struct slink *l, enum cmd_kind kind, const char *name, size_t len) {
    struct cmd *prev = NULL;
    for (struct cmd *c = l->fifo; c; prev = c, c = c->next) {
        if (c->kind != kind || c->len != len || memcmp(c->name, name, len) != 0)
            continue;
        if (prev)
            prev->next = c->next;
        else
            l->fifo = c->next;
        if (l->fifo_end == c)
            l->fifo_end = prev;
        free(c);
        return 1;
    }
    return 0;
}

static void free_cmds(struct slink *l) {
    while (l->fifo) {
        struct cmd *c = l->fifo;
        l->fifo = c->next;
        free(c);
    }
    l->fifo_end = NULL;
}

/* ---- channels ------------------------------------------------------------------------------ */

static struct sch *find(struct sublinks *s, const char *name, size_t len) {
    return hmap_get(s->chans, name, len);
}

static void forget(struct sublinks *s, struct sch *ch) {
    lws_dll2_remove(&ch->node);
    hmap_del(s->chans, ch->name, ch->len);
    free(ch);
}

/* ch is gone from Redis: forgotten, and its owner told if it had asked. The name is copied
 * first: the callback may subscribe a channel of the same name. */
static void gone(struct sublinks *s, struct sch *ch) {
    char name[NAME_MAX_LEN + 1];
    size_t len = ch->len;
    int asked = ch->state == CH_LEAVING || ch->state == CH_CANCEL;
    memcpy(name, ch->name, len);
    forget(s, ch);
    if (asked)
        s->ops->unsubscribed(name, len, s->arg);
}

static void to_waiting(struct sublinks *s, struct sch *ch) {
    lws_dll2_remove(&ch->node);
    ch->link = NULL;
    ch->state = CH_WAIT;
    lws_dll2_add_tail(&ch->node, &s->waiting);
}

/* A PENDING or ACTIVE channel dropped without being asked: back to waiting, its owner told. */
static void lost(struct sublinks *s, struct sch *ch) {
    char name[NAME_MAX_LEN + 1];
    size_t len = ch->len;
    memcpy(name, ch->name, len);
    to_waiting(s, ch);
    s->losses++;
    schedule_retry(s, 0);
    s->ops->lost(name, len, s->arg);
}

static struct slink *link_find(struct sublinks *s, const char *host, unsigned port) {
    for (struct slink *l = s->links; l; l = l->next)
        if (l->port == port && strcmp(l->host, host) == 0)
            return l;
    return NULL;
}

static struct slink *link_get(struct sublinks *s, const char *host, unsigned port);

/* Sends ch's SSUBSCRIBE to its slot's master; 0, or -1 if it has to wait (master unknown or
 * not linked, or no memory). */
static int try_channel(struct sublinks *s, struct sch *ch) {
    char host[SLOTS_HOST_MAX];
    unsigned port;
    if (router_slot_owner(s->router, ch->slot, host, sizeof(host), &port) != 0)
        return -1;
    struct slink *l = link_get(s, host, port);
    if (!l || !l->up || send_cmd(l, CMD_SSUB, ch->name, ch->len) != 0)
        return -1;
    lws_dll2_remove(&ch->node);
    ch->link = l;
    ch->state = CH_PENDING;
    lws_dll2_add_tail(&ch->node, &l->chans);
    return 0;
}

/* ---- up, control channel ------------------------------------------------------------------- */

static void update_up(struct sublinks *s) {
    if (s->destroying)
        return;
    int up = s->ctl == CTL_ACTIVE, masters = 0;
    for (struct slink *l = s->links; l; l = l->next)
        if (l->master) {
            masters++;
            if (!l->up)
                up = 0;
        }
    if (!masters)
        up = 0;
    if (up == s->is_up)
        return;
    s->is_up = up;
    log_json(s->lg, up ? LOG_INFO : LOG_WARN,
             up ? "redis subscriptions up" : "redis subscriptions down", NULL);
    if (up)
        s->ops->up(s->arg);
    else
        s->ops->down(s->arg);
}

/* Subscribes the control channel on a live link (a master first) if it is nowhere. */
static void ensure_control(struct sublinks *s) {
    if (s->ctl != CTL_NONE || s->destroying)
        return;
    struct slink *best = NULL;
    for (struct slink *l = s->links; l; l = l->next)
        if (l->up && (!best || (l->master && !best->master)))
            best = l;
    if (!best || send_cmd(best, CMD_SUB, s->control, s->control_len) != 0) {
        if (best)
            schedule_retry(s, 0);
        return;
    }
    s->ctl_link = best;
    s->ctl = CTL_PENDING;
}

/* ---- retries ------------------------------------------------------------------------------- */

static void retry_cb(lws_sorted_usec_list_t *sul) {
    struct sublinks *s = lws_container_of(sul, struct sublinks, sul_retry);
    int failed = 0;
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, lws_dll2_get_head(&s->waiting)) {
        if (try_channel(s, lws_container_of(d, struct sch, node)) != 0)
            failed = 1;
    }
    lws_end_foreach_dll_safe(d, d1);
    ensure_control(s);
    if (s->ctl == CTL_NONE)
        failed = 1;
    if (!failed) {
        s->retry_ms = RETRY_FIRST_MS;
        return;
    }
    lws_sul_schedule(s->cx, 0, &s->sul_retry, retry_cb, (lws_usec_t)s->retry_ms * LWS_US_PER_MS);
    s->retry_ms = s->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : s->retry_ms * 2;
}

/* A retry round now (a link came up, the table changed), or after the current backoff (a
 * channel was just refused or lost: its slot's master may not be known yet). Never sooner than
 * a round already scheduled unless now. */
static void schedule_retry(struct sublinks *s, int now) {
    if (s->destroying)
        return;
    if (now) {
        lws_sul_schedule(s->cx, 0, &s->sul_retry, retry_cb, 1);
        return;
    }
    if (!s->sul_retry.list.owner)
        lws_sul_schedule(s->cx, 0, &s->sul_retry, retry_cb,
                         (lws_usec_t)s->retry_ms * LWS_US_PER_MS);
}

/* ---- what a link reads --------------------------------------------------------------------- */

static int is(const redisReply *r, const char *word, size_t n) {
    return r->len == n && memcmp(r->str, word, n) == 0;
}

static void on_ssubscribe(struct slink *l, const char *name, size_t len) {
    struct sublinks *s = l->s;
    take_cmd(l, CMD_SSUB, name, len);
    struct sch *ch = find(s, name, len);
    if (ch && ch->link == l && ch->state == CH_PENDING) {
        ch->state = CH_ACTIVE;
        s->ops->confirmed(name, len, s->arg);
        return;
    }
    if (ch && ch->link == l && ch->state == CH_CANCEL) {
        if (send_cmd(l, CMD_SUNSUB, name, len) == 0)
            ch->state = CH_LEAVING;
        else
            gone(s, ch);
        return;
    }
    if (!ch || ch->link != l)
        send_cmd(l, CMD_SUNSUB, name, len); /* not wanted here (any more) */
}

static void on_sunsubscribe(struct slink *l, const char *name, size_t len) {
    struct sublinks *s = l->s;
    int asked = take_cmd(l, CMD_SUNSUB, name, len);
    struct sch *ch = find(s, name, len);
    if (!ch || ch->link != l)
        return;
    if (ch->state == CH_LEAVING || ch->state == CH_CANCEL)
        gone(s, ch);
    else if (!asked) /* Redis dropped it: the slot moved away */
        lost(s, ch);
    if (!asked)
        router_refresh(s->router);
}

static void on_subscribe(struct slink *l, const char *name, size_t len) {
    struct sublinks *s = l->s;
    take_cmd(l, CMD_SUB, name, len);
    if (s->ctl_link == l && s->ctl == CTL_PENDING && len == s->control_len &&
        memcmp(name, s->control, len) == 0) {
        s->ctl = CTL_ACTIVE;
        update_up(s);
    }
}

/* An error answers the oldest command, except a redirection naming another slot than that
 * command's: it answers a command already settled by a push (a SUNSUBSCRIBE that met the
 * unasked 'sunsubscribe' of a moved slot). */
static void on_error(struct slink *l, const redisReply *reply) {
    struct sublinks *s = l->s;
    struct cmd *c = l->fifo;
    if (!c)
        return;
    struct slots_redirect rd;
    int redirect = slots_parse_redirect(reply->str, reply->len, &rd) == 0;
    if (redirect && (c->kind == CMD_SUB || slots_of_key(c->name, c->len) != rd.slot))
        return;
    l->fifo = c->next;
    if (!l->fifo)
        l->fifo_end = NULL;
    if (c->kind == CMD_SUB) {
        if (s->ctl_link == l && s->ctl == CTL_PENDING) {
            s->ctl = CTL_NONE;
            s->ctl_link = NULL;
            schedule_retry(s, 0);
        }
    } else {
        struct sch *ch = find(s, c->name, c->len);
        if (ch && ch->link == l) {
            if (ch->state == CH_PENDING && c->kind == CMD_SSUB)
                lost(s, ch);
            else if (ch->state == CH_CANCEL || ch->state == CH_LEAVING)
                gone(s, ch);
        }
        if (redirect)
            router_refresh(s->router);
    }
    free(c);
}

static void on_push(const redisReply *reply, void *arg) {
    struct slink *l = arg;
    if (reply->type == REDIS_REPLY_ERROR) {
        on_error(l, reply);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *kind = reply->element[0], *ch = reply->element[1], *data = reply->element[2];
    struct sublinks *s = l->s;
    if (is(kind, "smessage", 8)) {
        if (data->type == REDIS_REPLY_STRING)
            s->ops->message(ch->str, ch->len, data->str, data->len, s->arg);
    } else if (is(kind, "message", 7)) {
        if (data->type == REDIS_REPLY_STRING && ch->len == s->control_len &&
            memcmp(ch->str, s->control, ch->len) == 0)
            s->ops->control(data->str, data->len, s->arg);
    } else if (is(kind, "ssubscribe", 10)) {
        on_ssubscribe(l, ch->str, ch->len);
    } else if (is(kind, "sunsubscribe", 12)) {
        on_sunsubscribe(l, ch->str, ch->len);
    } else if (is(kind, "subscribe", 9)) {
        on_subscribe(l, ch->str, ch->len);
    }
}

/* ---- links --------------------------------------------------------------------------------- */

static void link_up(struct rl *rl, void *arg) {
    (void)rl;
    struct slink *l = arg;
    l->up = 1;
    schedule_retry(l->s, 1);
    ensure_control(l->s);
    update_up(l->s);
}

/* Everything the link held is gone: its channels lost (or unsubscribed, if that was asked),
 * the control channel to be subscribed elsewhere. */
static void link_lost(struct slink *l) {
    struct sublinks *s = l->s;
    l->up = 0;
    free_cmds(l);
    if (s->ctl_link == l) {
        s->ctl = CTL_NONE;
        s->ctl_link = NULL;
    }
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, lws_dll2_get_head(&l->chans)) {
        struct sch *ch = lws_container_of(d, struct sch, node);
        if (ch->state == CH_LEAVING || ch->state == CH_CANCEL)
            gone(s, ch);
        else
            lost(s, ch);
    }
    lws_end_foreach_dll_safe(d, d1);
}

static void link_down(struct rl *rl, void *arg) {
    (void)rl;
    struct slink *l = arg;
    struct sublinks *s = l->s;
    link_lost(l);
    update_up(s);
    ensure_control(s);
    router_refresh(s->router);
}

static void link_read_begin(void *arg) {
    struct slink *l = arg;
    if (l->s->ops->on_read_begin)
        l->s->ops->on_read_begin(l->s->arg);
}

static void link_read_end(void *arg) {
    struct slink *l = arg;
    if (l->s->ops->on_read_end)
        l->s->ops->on_read_end(l->s->arg);
}

static const struct rl_ops link_ops = {link_up, link_down, link_read_begin, link_read_end, on_push};

/* The link to host:port, opened if there is none. NULL without memory. */
static struct slink *link_get(struct sublinks *s, const char *host, unsigned port) {
    struct slink *l = link_find(s, host, port);
    if (l)
        return l;
    if (!(l = calloc(1, sizeof(*l))))
        return NULL;
    l->s = s;
    util_strlcpy(l->host, host, sizeof(l->host));
    l->port = port;
    struct rl_options ro = {
        .name = "sub",
        .host = l->host,
        .port = (int)port,
        .password = s->password,
        .connect_timeout_ms = s->connect_timeout_ms,
        .ping_interval_ms = 0, /* a subscribed connection cannot answer PING */
        .ping_timeout_ms = s->ping_timeout_ms,
    };
    if (!(l->rl = rl_create(s->cx, s->vh, &ro, &link_ops, l, s->lg))) {
        free(l);
        return NULL;
    }
    l->next = s->links;
    s->links = l;
    return l;
}

static void mark_master(const char *host, unsigned port, void *arg) {
    struct sublinks *s = arg;
    struct slink *l = link_get(s, host, port);
    if (l)
        l->master = 1;
}

/* The links follow the router's masters: one opened for each new master; one to a node that is
 * no longer a master closed, its channels lost (a demoted master may keep them without ever
 * getting their messages again). */
static void topology_cb(lws_sorted_usec_list_t *sul) {
    struct sublinks *s = lws_container_of(sul, struct sublinks, sul_topology);
    for (struct slink *l = s->links; l; l = l->next)
        l->master = 0;
    int masters = router_each_master(s->router, mark_master, s);
    struct slink **pp = &s->links;
    while (masters > 0 && *pp) {
        struct slink *l = *pp;
        if (l->master) {
            pp = &l->next;
            continue;
        }
        *pp = l->next;
        link_lost(l);
        s->drops_closed += rl_drops(l->rl);
        log_json(s->lg, LOG_INFO, "redis subscription link closed",
                 json_pack("{s:s, s:i}", "host", l->host, "port", (int)l->port));
        rl_destroy(l->rl);
        free(l);
    }
    update_up(s);
    ensure_control(s);
    schedule_retry(s, 1);
}

void sublinks_topology(struct sublinks *s) {
    if (!s->destroying)
        lws_sul_schedule(s->cx, 0, &s->sul_topology, topology_cb, 1);
}

/* ---- life ---------------------------------------------------------------------------------- */

struct sublinks *sublinks_create(struct lws_context *cx, struct lws_vhost *vh,
                                 struct router *router, const struct sublinks_options *opts,
                                 const struct sublinks_ops *ops, void *arg,
                                 const struct logger *lg) {
    size_t clen = strlen(opts->control);
    if (clen == 0 || clen > NAME_MAX_LEN)
        return NULL;
    struct sublinks *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cx = cx;
    s->vh = vh;
    s->router = router;
    s->ops = ops;
    s->arg = arg;
    s->lg = lg;
    util_strlcpy(s->password, opts->password ? opts->password : "", sizeof(s->password));
    s->connect_timeout_ms = opts->connect_timeout_ms;
    s->ping_timeout_ms = opts->ping_timeout_ms;
    memcpy(s->control, opts->control, clen + 1);
    s->control_len = clen;
    s->retry_ms = RETRY_FIRST_MS;
    if (!(s->chans = hmap_create())) {
        free(s);
        return NULL;
    }
    sublinks_topology(s); /* a single Redis: its link opens now */
    return s;
}

static void free_chan(const char *key, void *value, void *arg) {
    (void)key;
    (void)arg;
    free(value);
}

void sublinks_destroy(struct sublinks *s) {
    if (!s)
        return;
    s->destroying = 1;
    lws_sul_cancel(&s->sul_retry);
    lws_sul_cancel(&s->sul_topology);
    while (s->links) {
        struct slink *l = s->links;
        s->links = l->next;
        rl_destroy(l->rl);
        free_cmds(l);
        free(l);
    }
    hmap_each(s->chans, free_chan, NULL);
    hmap_destroy(s->chans);
    free(s);
}

int sublinks_subscribe(struct sublinks *s, const char *name, size_t len) {
    if (len == 0 || len > NAME_MAX_LEN)
        return -1;
    struct sch *ch = find(s, name, len);
    if (ch) {
        if (ch->state == CH_LEAVING)
            return -1;
        if (ch->state == CH_CANCEL)
            ch->state = CH_PENDING; /* wanted again before Redis answered */
        return 0;
    }
    if (!(ch = calloc(1, sizeof(*ch))))
        return -1;
    memcpy(ch->name, name, len);
    ch->len = (uint8_t)len;
    ch->slot = slots_of_key(name, len);
    if (hmap_put(s->chans, ch->name, len, ch) != 0) {
        free(ch);
        return -1;
    }
    ch->state = CH_WAIT;
    lws_dll2_add_tail(&ch->node, &s->waiting);
    if (try_channel(s, ch) != 0)
        schedule_retry(s, 0);
    return 0;
}

int sublinks_unsubscribe(struct sublinks *s, const char *name, size_t len) {
    struct sch *ch = find(s, name, len);
    if (!ch)
        return -1;
    switch ((enum ch_state)ch->state) {
    case CH_WAIT:
        forget(s, ch);
        return 1;
    case CH_PENDING:
        ch->state = CH_CANCEL;
        return 0;
    case CH_ACTIVE:
        if (send_cmd(ch->link, CMD_SUNSUB, name, len) != 0) {
            forget(s, ch); /* its messages, if any come, name a channel nobody serves */
            return 1;
        }
        ch->state = CH_LEAVING;
        return 0;
    case CH_LEAVING:
    case CH_CANCEL:
        break;
    }
    return -1;
}

int sublinks_ready(const struct sublinks *s) {
    return s->is_up;
}

size_t sublinks_count(const struct sublinks *s) {
    return hmap_count(s->chans);
}

uint64_t sublinks_losses(const struct sublinks *s) {
    return s->losses;
}

uint64_t sublinks_drops(const struct sublinks *s) {
    uint64_t drops = s->drops_closed;
    for (const struct slink *l = s->links; l; l = l->next)
        drops += rl_drops(l->rl);
    return drops;
}
