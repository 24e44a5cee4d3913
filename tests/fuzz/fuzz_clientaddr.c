/* Fuzzes the client address behind trusted proxies (frontend/clientaddr.c): X-Forwarded-For and
 * X-Real-IP values as a proxy would pass them on, entries, and trusted-proxy lists. Input: one
 * byte choosing the peer and the list, then the X-Forwarded-For value, then after a newline (if
 * any) the X-Real-IP value. Checks: what is recorded is always an address in canonical text (its
 * own parse gives it back), never a client's string; an untrusted peer is recorded as itself; a
 * walk ended by garbage records a trusted hop. */
#include "clientaddr.h"
#include "fuzz.h"

#include <stdint.h>
#include <string.h>

static const char *const lists[] = {
    "",
    "127.0.0.2",
    "10.0.0.0/8, 127.0.0.0/8",
    "0.0.0.0/0, ::/0",
    "2001:db8::/32, ::ffff:127.0.0.0/104",
};
static const char *const peers[] = {"127.0.0.2", "10.1.2.3", "203.0.113.9", "::1", ""};

/* text (NUL-terminated) is an address in canonical form */
static int canonical(const char *text) {
    char again[CLIENTADDR_MAX];
    return clientaddr_parse(text, strlen(text), again) == 0 && strcmp(again, text) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct clientaddr_trust *trust[sizeof(lists) / sizeof(lists[0])];
    if (!trust[0])
        for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
            char err[160];
            trust[i] = clientaddr_trust_parse(lists[i], err, sizeof(err));
            FUZZ_CHECK(trust[i] != NULL);
        }
    if (size == 0)
        return 0;
    const struct clientaddr_trust *t = trust[data[0] % (sizeof(lists) / sizeof(lists[0]))];
    const char *peer = peers[(data[0] >> 4) % (sizeof(peers) / sizeof(peers[0]))];
    const char *xff = (const char *)data + 1;
    size_t xlen = size - 1;
    const char *nl = memchr(xff, '\n', xlen);
    const char *real_ip = nl ? nl + 1 : NULL;
    size_t rlen = nl ? xlen - (size_t)(nl + 1 - xff) : 0;
    if (nl)
        xlen = (size_t)(nl - xff);

    char out[CLIENTADDR_MAX + 8];
    memset(out, 'x', sizeof(out));
    enum clientaddr_source src = clientaddr_resolve(t, peer, xff, xlen, real_ip, rlen, out);
    FUZZ_CHECK(memchr(out, '\0', CLIENTADDR_MAX) != NULL);
    int peer_trusted = clientaddr_trusted(t, peer, strlen(peer));
    if (!peer_trusted) {
        FUZZ_CHECK(src == CLIENTADDR_PEER);
        FUZZ_CHECK(!*peer || canonical(out));
    } else {
        FUZZ_CHECK(canonical(out));
        if (src == CLIENTADDR_MALFORMED || src == CLIENTADDR_PEER)
            FUZZ_CHECK(clientaddr_trusted(t, out, strlen(out)));
    }

    /* one entry: parses to a canonical address or not at all */
    char one[CLIENTADDR_MAX + 8];
    if (clientaddr_parse(xff, xlen, one) == 0)
        FUZZ_CHECK(canonical(one));

    /* the same bytes as a trusted-proxy list: accepted or refused with a reason */
    if (xlen < 4096) {
        char list[4096], err[160] = "";
        memcpy(list, xff, xlen);
        list[xlen] = '\0';
        struct clientaddr_trust *mine = clientaddr_trust_parse(list, err, sizeof(err));
        FUZZ_CHECK(mine || err[0]);
        clientaddr_trust_free(mine);
    }
    return 0;
}
