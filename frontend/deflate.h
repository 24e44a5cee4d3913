/* permessage-deflate (RFC 7692) without per-connection compression state.
 *
 * The node answers every accepted offer with server_no_context_takeover and
 * client_no_context_takeover (RFC 7692 7.1.1.1 and 7.1.1.2 let a server add both even when the
 * client did not ask), so every message is a deflate stream of its own in both directions. Then:
 * - a relayed frame is compressed at most once per node and window size, and the compressed twin
 *   is shared among every recipient that negotiated the extension, like the plain frame among
 *   the others (deflate_frame_for caches it on the plain frame);
 * - a client's compressed message is inflated, once whole, by the node's one inflate stream,
 *   reset per message, into at most max-frame-bytes.
 * An idle connection keeps nothing but the window size it negotiated (a byte in its session).
 *
 * How it fits libwebsockets 4.1.6, whose own permessage-deflate keeps zlib streams per
 * connection and compresses each write for each connection:
 * - deflate_extensions is the clients' vhost's extension list: one extension named
 *   "permessage-deflate" whose callback does nothing to frames. Its only use is that lws, with an
 *   extension active on a connection, accepts frames with RSV1 set (it fails them otherwise);
 *   lws hands their payload over as it came and the session inflates it here.
 * - Whether an offer is accepted is decided here (deflate_negotiate, through lws's
 *   LWS_CALLBACK_CONFIRM_EXTENSION_OKAY); lws then writes a bare "Sec-WebSocket-Extensions:
 *   permessage-deflate" line (its handshake can only echo parameters the client sent), which
 *   deflate_headers_take removes from the 101 in LWS_CALLBACK_ADD_HEADERS and
 *   deflate_headers_put writes again with the parameters.
 * - Outgoing frames are pre-built with RSV1 set (frame.h) and written as raw bytes by outq.c,
 *   which lws passes through untouched.
 * Since the extension's callback does nothing, lws's UTF-8 check would see compressed bytes: the
 * node checks text messages itself once they are whole and inflated (utf8.h). */
#ifndef RRM_DEFLATE_H
#define RRM_DEFLATE_H

#include "frame.h"

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

/* The clients' vhost's extensions (lws_context_creation_info.extensions). */
extern const struct lws_extension deflate_extensions[];

/* What an accepted offer agreed. */
struct deflate_params {
    uint8_t server_bits; /* the window the node compresses with (server_max_window_bits), 9-15 */
    uint8_t bits_asked;  /* the offer had server_max_window_bits: the answer names it */
};

/* Chooses from a Sec-WebSocket-Extensions request header (len bytes) the permessage-deflate
 * offer to accept: the first one, if the node can honour it (known parameters, each at most once,
 * valid values; server_max_window_bits=8 cannot be: zlib's raw deflate has no 256-byte window).
 * Returns 1 and fills *p, or 0 to decline the extension. Pure. */
int deflate_negotiate(const char *header, size_t len, struct deflate_params *p);

/* The response's extension line for p, CRLF included, into buf (cap bytes). Returns its length,
 * or -1 if it does not fit. Pure. */
int deflate_response_line(const struct deflate_params *p, char *buf, size_t cap);

/* Node-wide counters (metrics.c reads them). */
struct deflate_stats {
    uint64_t connections;           /* open connections that negotiated it (a gauge) */
    uint64_t compressions;          /* messages compressed (once per message and window size) */
    uint64_t compress_in_bytes;     /* ... their size before */
    uint64_t compress_out_bytes;    /* ... and after */
    uint64_t skipped;               /* messages that compressed to no less: sent plain */
    uint64_t deliveries;            /* compressed frames queued to clients */
    uint64_t delivered_plain_bytes; /* ... their size uncompressed */
    uint64_t delivered_bytes;       /* ... and compressed */
    uint64_t inflations;            /* client messages inflated */
    uint64_t inflate_in_bytes, inflate_out_bytes;
    uint64_t inflate_invalid; /* not valid deflate data: closed with 1007 */
    uint64_t inflate_too_big; /* inflated over max-frame-bytes: closed with 1009 */
};

struct deflate;

/* min_bytes: payloads below it are sent plain. NULL when out of memory. */
struct deflate *deflate_create(size_t min_bytes);
void deflate_destroy(struct deflate *d);

struct deflate_stats *deflate_stats(struct deflate *d);

/* From LWS_CALLBACK_CONFIRM_EXTENSION_OKAY (ext is its in): 0 to accept, 1 to decline. */
int deflate_confirm(struct lws *wsi, const char *ext);

/* From LWS_CALLBACK_ADD_HEADERS, around whatever else edits the end of the 101 response: take
 * removes the line lws wrote for the extension and says whether there was one (1) or not (0);
 * put, if take said 1, writes the full line and fills *p. put returns 0, or -1 when the line
 * does not fit (the handshake is to fail). */
int deflate_headers_take(struct lws_process_html_args *args);
int deflate_headers_put(struct lws *wsi, struct lws_process_html_args *args,
                        struct deflate_params *p);

/* The frame to queue for a recipient that negotiated window bits (0: none): f itself, or its
 * compressed twin, built on first use and kept on f for the other recipients. Returns a new
 * reference (caller drops it with frame_unref); f when compression is off for the recipient, f
 * is below min_bytes, compressing does not make it smaller or memory ran out. */
struct frame *deflate_frame_for(struct deflate *d, struct frame *f, int bits);

/* The largest compressed message taken for a limit of max inflated bytes: deflate can make data
 * that does not compress slightly larger (5 bytes per stored block of up to 64 KiB). */
static inline size_t deflate_input_limit(size_t max) {
    return max + max / 1024 + 64;
}

enum deflate_rx {
    DEFLATE_RX_OK,
    DEFLATE_RX_INVALID, /* not a valid deflate stream */
    DEFLATE_RX_TOO_BIG, /* inflates to more than max */
    DEFLATE_RX_NOMEM,
};

/* Inflates one whole compressed message (len bytes as received, without the 00 00 ff ff tail
 * RFC 7692 strips) into at most max bytes, stopping as soon as it would be more. On
 * DEFLATE_RX_OK *out (borrowed, the node's buffer) holds *out_len bytes until the next call or
 * deflate_rx_done. */
enum deflate_rx deflate_inflate(struct deflate *d, const void *in, size_t len, size_t max,
                                const void **out, size_t *out_len);

/* The inflated message was handled: a buffer grown for a large one is given back. */
void deflate_rx_done(struct deflate *d);

#endif
