/* Fuzzes the pub/sub payload split (proto_pub_parse): an accepted payload is exactly kind byte,
 * connection id without a newline or tab, optionally '\t' and the seq's 1-20 digits, '\n',
 * frame, with every part inside the input; a refused one really lacks a kind or a newline, or
 * has a bad seq. */
#include "fuzz.h"
#include "proto.h"

#include <string.h>

/* With a kind and a newline: 1 if the header line has no tab, or 1-20 digits after its first
 * tab that fit in 64 bits (compared as text with UINT64_MAX's 20 digits). */
static int seq_ok(const char *p, size_t size) {
    const char *nl = memchr(p + 1, '\n', size - 1);
    const char *tab = memchr(p + 1, '\t', (size_t)(nl - p - 1));
    if (!tab)
        return 1;
    size_t n = (size_t)(nl - tab - 1);
    if (n == 0 || n > 20)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (tab[1 + i] < '0' || tab[1 + i] > '9')
            return 0;
    return n < 20 || memcmp(tab + 1, "18446744073709551615", 20) <= 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data;
    struct proto_pub pub;
    memset(&pub, 0, sizeof(pub));
    int rc = proto_pub_parse(p, size, &pub);
    int kind_ok = size >= 1 && (p[0] == PROTO_PUB_TEXT || p[0] == PROTO_PUB_BINARY);
    int has_nl = size >= 2 && memchr(p + 1, '\n', size - 1) != NULL;
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(!kind_ok || !has_nl || !seq_ok(p, size));
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
        size_t digits = (size_t)(nl - (pub.conn + pub.conn_len + 1));
        FUZZ_CHECK(digits >= 1 && digits <= 20);
        uint64_t back = 0; /* the digits read back give the seq */
        for (const char *d = pub.conn + pub.conn_len + 1; d < nl; d++)
            back = back * 10 + (uint64_t)(*d - '0');
        FUZZ_CHECK(back == pub.seq);
    } else {
        FUZZ_CHECK(pub.conn + pub.conn_len == nl);
        FUZZ_CHECK(pub.seq == 0);
    }
    return 0;
}
