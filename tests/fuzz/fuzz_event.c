/* Fuzzes archive events: whatever event_decode accepts must survive event_encode and decode again
 * unchanged (the archiver re-encodes what it reads into dead letters and benches; frontends only
 * encode). The input is a stream entry written as "name\nvalue\nname\nvalue...". */
#include "event.h"
#include "fuzz.h"

#include <string.h>

#define MAX_PAIRS 64

static int str_eq(struct event_str a, struct event_str b) {
    if (!a.p || !b.p)
        return !a.p && !b.p;
    return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

static void check_same(const struct rrm_event *a, const struct rrm_event *b) {
    FUZZ_CHECK(a->type == b->type);
    FUZZ_CHECK(a->ts == b->ts);
    FUZZ_CHECK(str_eq(a->node, b->node));
    FUZZ_CHECK(str_eq(a->conn, b->conn));
    FUZZ_CHECK(str_eq(a->device, b->device));
    FUZZ_CHECK(str_eq(a->identity, b->identity));
    FUZZ_CHECK(str_eq(a->ip, b->ip));
    FUZZ_CHECK(str_eq(a->room, b->room));
    FUZZ_CHECK(str_eq(a->action, b->action));
    FUZZ_CHECK(str_eq(a->kind, b->kind));
    FUZZ_CHECK(str_eq(a->reason, b->reason));
    FUZZ_CHECK(str_eq(a->body, b->body));
    FUZZ_CHECK(a->seq == b->seq);
    FUZZ_CHECK(a->total == b->total);
    FUZZ_CHECK(a->connected_at == b->connected_at);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *names[MAX_PAIRS], *values[MAX_PAIRS];
    size_t name_lens[MAX_PAIRS], value_lens[MAX_PAIRS], n = 0;
    const char *p = (const char *)data, *end = p + size;
    while (p < end && n < MAX_PAIRS) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        const char *v = nl + 1;
        const char *vend = memchr(v, '\n', (size_t)(end - v));
        if (!vend)
            vend = end;
        names[n] = p;
        name_lens[n] = (size_t)(nl - p);
        values[n] = v;
        value_lens[n] = (size_t)(vend - v);
        n++;
        p = vend + 1;
    }

    struct rrm_event ev;
    char err[200] = "";
    if (event_decode(&ev, names, name_lens, values, value_lens, n, err, sizeof(err))) {
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }

    struct event_field f[EVENT_MAX_FIELDS];
    struct event_numbers nums;
    size_t m = event_encode(&ev, f, &nums);
    FUZZ_CHECK(m <= EVENT_MAX_FIELDS);
    const char *n2[EVENT_MAX_FIELDS], *v2[EVENT_MAX_FIELDS];
    size_t nl2[EVENT_MAX_FIELDS], vl2[EVENT_MAX_FIELDS];
    for (size_t i = 0; i < m; i++) {
        n2[i] = f[i].name;
        nl2[i] = strlen(f[i].name);
        v2[i] = f[i].value;
        vl2[i] = f[i].len;
    }
    struct rrm_event back;
    if (event_decode(&back, n2, nl2, v2, vl2, m, err, sizeof(err))) {
        fprintf(stderr, "re-encoded %s event refused: %s\n", event_type_name(ev.type), err);
        FUZZ_CHECK(!"decode(encode(decode(x))) failed");
    }
    check_same(&ev, &back);

    /* the XADD argument form lists the same pairs */
    const char *argv[2 * EVENT_MAX_FIELDS];
    size_t lens[2 * EVENT_MAX_FIELDS];
    struct event_numbers nums2;
    FUZZ_CHECK(event_encode_argv(&back, &nums2, argv, lens) == 2 * m);
    for (size_t i = 0; i < m; i++) {
        FUZZ_CHECK(lens[2 * i] == nl2[i] && memcmp(argv[2 * i], n2[i], nl2[i]) == 0);
        FUZZ_CHECK(lens[2 * i + 1] == vl2[i] && memcmp(argv[2 * i + 1], v2[i], vl2[i]) == 0);
    }
    return 0;
}
