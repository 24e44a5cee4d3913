/* Origins: which web pages may open WebSockets (RRM_ALLOWED_ORIGINS). Pure functions: the
 * parsing of an origin (RFC 6454 serialization, scheme://host[:port]) and its comparison with the
 * allowed list; edge.c applies them to an upgrade's Origin header, options.c to the setting. */
#ifndef RRM_ORIGIN_H
#define RRM_ORIGIN_H

#include <stddef.h>

/* Longest origin (an Origin header, an entry of RRM_ALLOWED_ORIGINS) the node reads. */
#define ORIGIN_MAX 512

/* Whether an upgrade whose Origin header is origin (NULL: none sent) may go on, given allowed,
 * the comma-separated RRM_ALLOWED_ORIGINS. "*" among them allows any. Otherwise origin must equal
 * one of them as scheme://host[:port]: scheme and host ignoring case, a port equal to the
 * scheme's default (http/ws 80, https/wss 443) the same as none, and a trailing "/" ignored on
 * either side. A request without Origin is allowed: browsers always send it on a WebSocket
 * upgrade, so its absence means a native client, which could send any Origin it liked anyway;
 * the check protects users' browsers from other sites' pages, not the node from clients. */
int origin_allowed(const char *allowed, const char *origin);

/* Checks an RRM_ALLOWED_ORIGINS value at start: every entry is "*" or an origin. 0, or -1 with a
 * one-line message naming the variable and the entry. */
int origins_check(const char *allowed, char *err, size_t errlen);

#endif
