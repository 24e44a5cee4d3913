/* UTF-8 validation of text messages (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF). The node checks a text message once it is whole (and inflated, for a compressed
 * one), so lws's own check, which would see compressed bytes, is off. Pure. */
#ifndef RRM_UTF8_H
#define RRM_UTF8_H

#include <stddef.h>

/* 1 if the len bytes at s are valid UTF-8, else 0. */
int utf8_valid(const void *s, size_t len);

#endif
