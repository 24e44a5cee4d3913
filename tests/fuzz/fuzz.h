/* What the fuzz targets share: an invariant check that survives NDEBUG and makes libFuzzer
 * record the input (abort() is a crash to it), and a reference JSON reader. */
#ifndef RRM_FUZZ_H
#define RRM_FUZZ_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The reference JSON reader: jansson, but no raw NUL byte anywhere (RFC 8259 has none; jansson
 * 2.14 skips one after a number or a literal). NULL if buf is not JSON. */
static inline json_t *fuzz_json_load(const char *buf, size_t len, size_t flags) {
    json_error_t err;
    if (memchr(buf, '\0', len))
        return NULL;
    return json_loadb(buf, len, flags, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
