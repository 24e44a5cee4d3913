/* libwebsockets' own log lines (its errors and warnings) as records of the node's JSON log. */
#ifndef RRM_LWSLOG_H
#define RRM_LWSLOG_H

#include "log.h"

/* At most this many lines of libwebsockets reach the log per second: many of them can be
 * provoked by a client (a malformed handshake), and a client must not be able to flood the log.
 * The next line written after some were dropped says how many ("suppressed"). */
#define LWSLOG_MAX_PER_SEC 20

/* Routes libwebsockets' error and warning lines (and, when lg logs debug, its notices) into lg:
 * each line becomes one record at the matching level, its text in "msg" without the trailing
 * newline, with "source":"libwebsockets". lg is borrowed and must outlive every libwebsockets
 * call; call once at start, before the lws context is created. */
void lwslog_attach(const struct logger *lg);

#endif
