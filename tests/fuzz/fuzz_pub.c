/* Fuzzes the pub/sub payload split (proto_pub_parse): an accepted payload is exactly kind byte,
 * connection id without a newline or tab, optionally '\t' and the seq, or '\t', the sender's time,
 * '\t' and the seq (each 1-20 digits), '\n', frame, with every part inside the input; a refused
 * one really lacks a kind or a newline, or has a bad number. The same payload as a presence event
 * (proto_presence_parse), as the node tries it when it is not a relayed frame: never both; an
 * accepted one is 'P', join or leave, and tab-separated fields inside the input, and its frame
 * (proto_presence_frame) is JSON or refused. */
#include "fuzz.h"
#include "proto.h"

#include <stdlib.h>
#include <string.h>

/* 1 if [p, end) is 1-20 digits that fit in 64 bits (compared as text with UINT64_MAX's 20). */
static int number_ok(const char *p, const char *end) {
    size_t n = (size_t)(end - p);
    if (n == 0 || n > 20)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return n < 20 || memcmp(p, "18446744073709551615", 20) <= 0;
}

/* The number in [p, end), known to be valid. */
static uint64_t number_of(const char *p, const char *end) {
    uint64_t v = 0;
    for (; p < end; p++)
        v = v * 10 + (uint64_t)(*p - '0');
    return v;
}

/* With a kind and a newline: 1 if the header line has no tab, or after its first tab a number
 * (the seq), or a number, a tab and a number (the time, then the seq). */
static int numbers_ok(const char *p, size_t size) {
    const char *nl = memchr(p + 1, '\n', size - 1);
    const char *tab = memchr(p + 1, '\t', (size_t)(nl - p - 1));
    if (!tab)
        return 1;
    const char *tab2 = memchr(tab + 1, '\t', (size_t)(nl - tab - 1));
    return tab2 ? number_ok(tab + 1, tab2) && number_ok(tab2 + 1, nl) : number_ok(tab + 1, nl);
}

/* The presence reading of the payload (rc: proto_pub_parse's answer). */
static void presence(const char *p, size_t size, int rc) {
    struct proto_presence pr;
    if (proto_presence_parse(p, size, &pr))
        return;
    FUZZ_CHECK(rc != 0 && p[0] == PROTO_PUB_PRESENCE);
    FUZZ_CHECK(memcmp(p + 1, pr.leave ? "leave\t" : "join\t", pr.leave ? 6 : 5) == 0);
    FUZZ_CHECK(pr.conn == p + (pr.leave ? 7 : 6));
    FUZZ_CHECK(memchr(pr.conn, '\t', pr.conn_len) == NULL && pr.conn[pr.conn_len] == '\t');
    FUZZ_CHECK(pr.device_len > 0 && memchr(pr.device, '\t', pr.device_len) == NULL);
    FUZZ_CHECK(pr.device > pr.conn && pr.device[pr.device_len] == '\t');
    FUZZ_CHECK(pr.identity == pr.device + pr.device_len + 1);
    FUZZ_CHECK(pr.identity + pr.identity_len == p + size);
    FUZZ_CHECK(pr.ts >= 0);
    size_t len = 0;
    char *f = proto_presence_frame(&pr, "ROOM", &len);
    if (f) {
        json_t *o = json_loadb(f, len, JSON_ALLOW_NUL, NULL);
        FUZZ_CHECK(o != NULL && json_is_object(o));
        json_decref(o);
        free(f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data;
    struct proto_pub pub;
    memset(&pub, 0, sizeof(pub));
    int rc = proto_pub_parse(p, size, &pub);
    presence(p, size, rc);
    int kind_ok = size >= 1 && (p[0] == PROTO_PUB_TEXT || p[0] == PROTO_PUB_BINARY);
    int has_nl = size >= 2 && memchr(p + 1, '\n', size - 1) != NULL;
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(!kind_ok || !has_nl || !numbers_ok(p, size));
        return 0;
    }
    FUZZ_CHECK(kind_ok && has_nl);
    FUZZ_CHECK(pub.kind == p[0]);
    FUZZ_CHECK(pub.conn == p + 1);
    FUZZ_CHECK(memchr(pub.conn, '\n', pub.conn_len) == NULL);
    FUZZ_CHECK(memchr(pub.conn, '\t', pub.conn_len) == NULL);
    const char *nl = memchr(p + 1, '\n', size - 1);
    FUZZ_CHECK(pub.frame == nl + 1);
    FUZZ_CHECK(pub.frame + pub.frame_len == p + size);
    if (pub.conn[pub.conn_len] == '\t') {
        const char *tab = pub.conn + pub.conn_len;
        const char *tab2 = memchr(tab + 1, '\t', (size_t)(nl - tab - 1));
        const char *seq_at = tab2 ? tab2 + 1 : tab + 1;
        FUZZ_CHECK(number_ok(seq_at, nl)); /* the numbers read back give the fields */
        FUZZ_CHECK(number_of(seq_at, nl) == pub.seq);
        FUZZ_CHECK(tab2 ? number_ok(tab + 1, tab2) && number_of(tab + 1, tab2) == pub.sent_us
                        : pub.sent_us == 0);
    } else {
        FUZZ_CHECK(pub.conn + pub.conn_len == nl);
        FUZZ_CHECK(pub.seq == 0 && pub.sent_us == 0);
    }
    return 0;
}
