/* The "<node>#<n>" connection id (see connid.h). */
#include "connid.h"

#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int connid_format(const char *node, uint64_t no, char *buf, size_t cap) {
    char num[21];
    util_u64_dec(num, no);
    const char *parts[] = {node, "#", num};
    return util_concat(buf, cap, parts, 3);
}

int connid_parse(const char *node, const char *conn, size_t len, uint64_t *no) {
    size_t nl = strlen(node);
    if (len <= nl + 1 || memcmp(conn, node, nl) != 0 || conn[nl] != '#')
        return -1;
    const char *d = conn + nl + 1;
    size_t nd = len - nl - 1;
    if (d[0] == '0' && nd > 1)
        return -1; /* only one spelling per number, so ids compare as strings too */
    uint64_t n = 0;
    for (size_t i = 0; i < nd; i++) {
        if (d[i] < '0' || d[i] > '9')
            return -1;
        unsigned digit = (unsigned)(d[i] - '0');
        if (n > (UINT64_MAX - digit) / 10)
            return -1;
        n = n * 10 + digit;
    }
    *no = n;
    return 0;
}
