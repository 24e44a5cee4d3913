/* Fuzzes the Origin check (frontend/origin.c): an RRM_ALLOWED_ORIGINS list and an Origin header
 * value. Input: the list, then after a newline (if any) the header value. Checks: "*" allows
 * anything; a list that passes the start-up check and holds a single origin allows that very
 * origin; a list that does not pass it is never "*"; nothing reads outside the strings. */
#include "fuzz.h"
#include "origin.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* data[0..n) as a C string (it ends at the first NUL byte, as a header value read by lws would) */
static char *dup(const void *data, size_t n) {
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, data, n);
        s[n] = '\0';
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *nl = memchr(data, '\n', size);
    size_t llen = nl ? (size_t)(nl - (const char *)data) : size;
    char *list = dup(data, llen);
    char *origin = nl ? dup(nl + 1, size - llen - 1) : NULL;
    FUZZ_CHECK(list != NULL && (!nl || origin != NULL));

    FUZZ_CHECK(origin_allowed("*", origin ? origin : list) == 1);
    FUZZ_CHECK(origin_allowed(list, NULL) == 1); /* no Origin: not a browser */
    if (origin)
        (void)origin_allowed(list, origin);

    char err[512];
    int ok = origins_check(list, err, sizeof(err)) == 0;
    if (!ok)
        FUZZ_CHECK(strcmp(list, "*") != 0 && err[0] != '\0');
    /* A single valid origin (no separator, no blank to trim) is allowed against itself. */
    if (ok && !strpbrk(list, ", \t") && strcmp(list, "*") != 0)
        FUZZ_CHECK(origin_allowed(list, list) == 1);
    free(list);
    free(origin);
    return 0;
}
