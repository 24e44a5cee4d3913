/* Fuzzes the pub/sub payload split (proto_pub_parse): an accepted payload is exactly kind byte,
 * connection id without a newline, '\n', frame, with every part inside the input; a refused one
 * really lacks a kind or a newline. */
#include "fuzz.h"
#include "proto.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data;
    struct proto_pub pub;
    memset(&pub, 0, sizeof(pub));
    int rc = proto_pub_parse(p, size, &pub);
    int kind_ok = size >= 1 && (p[0] == PROTO_PUB_TEXT || p[0] == PROTO_PUB_BINARY);
    int has_nl = size >= 2 && memchr(p + 1, '\n', size - 1) != NULL;
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(!kind_ok || !has_nl);
        return 0;
    }
    FUZZ_CHECK(kind_ok && has_nl);
    FUZZ_CHECK(pub.kind == p[0]);
    FUZZ_CHECK(pub.conn == p + 1);
    FUZZ_CHECK(1 + pub.conn_len + 1 + pub.frame_len == size);
    FUZZ_CHECK(memchr(pub.conn, '\n', pub.conn_len) == NULL);
    FUZZ_CHECK(pub.conn[pub.conn_len] == '\n');
    FUZZ_CHECK(pub.frame == pub.conn + pub.conn_len + 1);
    return 0;
}
