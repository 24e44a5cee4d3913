/*
 * wsclient.h - small blocking WebSocket (RFC 6455) client for tests.
 *
 * This module owns one client connection object (struct wsc): the TCP socket,
 * the HTTP/1.1 Upgrade handshake (including Sec-WebSocket-Accept
 * verification), client->server framing with masking, and server->client frame
 * parsing with reassembly of fragmented messages. It is written from scratch
 * over plain TCP (no extensions, no libwebsockets) so that tests can also send
 * deliberately malformed traffic; wss connections add OpenSSL on the same
 * socket, verifying the server's certificate against a CA file and its name
 * (wsc_connect_tls), and a small https GET uses the same code (wsc_https_get).
 *
 * Every receive takes a timeout in milliseconds; waits are poll() calls against
 * a deadline, never fixed sleeps. Sends are bounded by a per-connection send
 * timeout (default 10 s, see wsc_set_send_timeout). The client is not thread
 * safe; use one struct wsc per thread.
 *
 * Return convention: 0 (or a documented non-negative value) on success,
 * negative errno values on failure (-ETIMEDOUT on timeout, -ECONNRESET when
 * the peer closed TCP without a close frame, -EPROTO when the server violated
 * the protocol, -EMSGSIZE for messages over WSC_MAX_MESSAGE). After -EPROTO,
 * -EMSGSIZE or -ENOMEM from a receive the stream position is undefined: only
 * wsc_close the connection. Caveat: a send blocks (up to the send timeout)
 * while the socket buffer is full; nothing is read meanwhile.
 */
#ifndef RRM_TESTSUPPORT_WSCLIENT_H
#define RRM_TESTSUPPORT_WSCLIENT_H

#include <jansson.h>
#include <stddef.h>

/* Frame opcodes (RFC 6455 section 5.2). */
enum wsc_opcode {
    WSC_OP_CONT = 0x0,
    WSC_OP_TEXT = 0x1,
    WSC_OP_BINARY = 0x2,
    WSC_OP_CLOSE = 0x8,
    WSC_OP_PING = 0x9,
    WSC_OP_PONG = 0xA,
};

/* Largest message (after reassembly) the client accepts: 256 MiB. */
#define WSC_MAX_MESSAGE ((size_t)256 * 1024 * 1024)

/* Close code reported by wsc_wait_closed when TCP ended without a close frame. */
#define WSC_CLOSE_ABNORMAL 1006
/* Close code reported for a close frame that carried no status code. */
#define WSC_CLOSE_NO_STATUS 1005

/* Opaque connection; created by wsc_connect*, freed by wsc_close. */
struct wsc;

/*
 * One received message. Filled by wsc_recv; release with wsc_msg_free.
 *  - opcode: WSC_OP_TEXT, WSC_OP_BINARY or WSC_OP_CLOSE.
 *  - data/len: payload (malloc'd, owned by the msg, always NUL-terminated so
 *    text can be used as a C string; len excludes the NUL). For close frames
 *    data holds the reason text (possibly empty).
 *  - close_code: for close frames the status code (WSC_CLOSE_NO_STATUS if the
 *    frame had none); 0 otherwise.
 *  - close_reason: for close frames an alias of data (do not free it
 *    separately); NULL otherwise.
 */
struct wsc_msg {
    int opcode;
    char *data;
    size_t len;
    int close_code;
    const char *close_reason;
};

/* Free the payload of msg (not msg itself) and reset it. NULL is allowed. */
void wsc_msg_free(struct wsc_msg *msg);

/*
 * Connect to ws://host:port<path> and perform the opening handshake within
 * timeout_ms. Returns a new connection (caller frees with wsc_close) or NULL.
 */
struct wsc *wsc_connect(const char *host, int port, const char *path, int timeout_ms);

/*
 * Same as wsc_connect, adding extra request headers. extra_headers is a NULL
 * terminated array of complete "Name: value" lines without CRLF (may be NULL);
 * they are sent after the standard handshake headers and do not replace them.
 */
struct wsc *wsc_connect_ex(const char *host, int port, const char *path,
                           const char *const extra_headers[], int timeout_ms);

/*
 * Same as wsc_connect_ex, from the local address src (a literal address such as "127.0.0.5";
 * NULL: chosen by the kernel), so that tests can be several clients on loopback.
 */
struct wsc *wsc_connect_from(const char *src, const char *host, int port, const char *path,
                             const char *const extra_headers[], int timeout_ms);

/*
 * Send an Upgrade request like wsc_connect_ex, read the HTTP response status
 * and close the connection again. Returns the HTTP status code (101 when the
 * server accepted the upgrade with a valid Sec-WebSocket-Accept; a 101 with an
 * invalid accept key yields -EPROTO) or a negative errno value. For tests that
 * expect the server to refuse an upgrade (e.g. 403/404).
 */
int wsc_probe_upgrade(const char *host, int port, const char *path,
                      const char *const extra_headers[], int timeout_ms);

/* wsc_probe_upgrade from the local address src (see wsc_connect_from). */
int wsc_probe_upgrade_from(const char *src, const char *host, int port, const char *path,
                           const char *const extra_headers[], int timeout_ms);

/*
 * TLS settings of a wss:// (or https://) connection. The server's certificate
 * must chain to a certificate in ca_file (PEM; NULL: no verification at all)
 * and name server_name (NULL: the host passed to connect) in its subject
 * alternative names: a DNS name, or an IP address for a literal address (no
 * SNI is sent then). Borrowed for the duration of the call.
 */
struct wsc_tls {
    const char *ca_file;
    const char *server_name;
};

/* What a test may want to know of the certificate the server presented. */
struct wsc_cert_info {
    char serial[80];     /* hexadecimal, upper case, no leading zeros ("1001") */
    long long not_after; /* end of validity, Unix seconds */
};

/*
 * Like wsc_connect_ex over TLS: the TCP connection, the TLS handshake (the
 * certificate verified as tls says) and the upgrade, all within timeout_ms.
 * Returns the connection (caller frees with wsc_close) or NULL; a rejected
 * certificate or failed handshake is printed to stderr.
 */
struct wsc *wsc_connect_tls(const char *host, int port, const char *path, const struct wsc_tls *tls,
                            const char *const extra_headers[], int timeout_ms);

/* wsc_connect_tls from the local address src (see wsc_connect_from). */
struct wsc *wsc_connect_tls_from(const char *src, const char *host, int port, const char *path,
                                 const struct wsc_tls *tls, const char *const extra_headers[],
                                 int timeout_ms);

/* wsc_probe_upgrade over TLS; -EPROTO when the TLS handshake or verification failed. */
int wsc_probe_upgrade_tls(const char *host, int port, const char *path, const struct wsc_tls *tls,
                          const char *const extra_headers[], int timeout_ms);

/* The certificate the server presented on a TLS connection. 0, -EINVAL for a
 * plain connection, -ENOENT if there was none. */
int wsc_peer_cert(const struct wsc *ws, struct wsc_cert_info *out);

/*
 * GET https://host:port<path> with "Connection: close", the certificate
 * verified as tls says; the answer is read to the end of the connection.
 * On success returns 0, the status in *status, the body in *body (malloc'd,
 * NUL-terminated, caller frees; both may be NULL) and the server's certificate
 * in *cert (may be NULL). -EPROTO if the TLS handshake or the answer failed,
 * -ETIMEDOUT, other negative errno.
 */
int wsc_https_get(const char *host, int port, const char *path, const struct wsc_tls *tls,
                  int timeout_ms, int *status, char **body, struct wsc_cert_info *cert);

/* Close the socket (no close frame is sent) and free everything. NULL is ok. */
void wsc_close(struct wsc *ws);

/* The underlying socket fd (still owned by ws). On a TLS connection, bytes written to it
 * directly bypass TLS (use wsc_send_raw to send raw bytes inside the TLS stream). */
int wsc_fd(const struct wsc *ws);

/* Bound for every send call on ws (default 10000 ms). */
void wsc_set_send_timeout(struct wsc *ws, int timeout_ms);

/*
 * Enable (default) or disable answering server pings with pongs. Disabling is
 * useful to test the server's heartbeat timeout.
 */
void wsc_set_auto_pong(struct wsc *ws, int enabled);

/* Number of ping / pong frames received from the server so far. */
unsigned wsc_ping_count(const struct wsc *ws);
unsigned wsc_pong_count(const struct wsc *ws);

/* Send a text message (one frame) containing the C string s. */
int wsc_send_text(struct wsc *ws, const char *s);

/* Send one complete, masked frame with FIN set. Any opcode value is allowed. */
int wsc_send(struct wsc *ws, int opcode, const void *data, size_t len);

/*
 * Send a message split into frames of at most fragment_size payload bytes:
 * the first frame carries opcode, the rest WSC_OP_CONT, the last has FIN.
 * fragment_size must be > 0.
 */
int wsc_send_fragmented(struct wsc *ws, int opcode, const void *data, size_t len,
                        size_t fragment_size);

/*
 * Low-level: send exactly one frame with the given FIN bit and opcode (0..15).
 * masked = 0 sends an unmasked frame (a protocol violation for clients, for
 * negative tests).
 */
int wsc_send_frame(struct wsc *ws, int fin, int opcode, const void *data, size_t len, int masked);

/* Write arbitrary bytes to the socket unchanged (for malformed-frame tests). */
int wsc_send_raw(struct wsc *ws, const void *bytes, size_t len);

/*
 * Send a close frame. code <= 0 sends an empty close payload; otherwise the
 * 2-byte code followed by reason (may be NULL). Status + reason must fit in
 * 125 bytes (-EINVAL otherwise). Marks the connection as closing.
 */
int wsc_send_close(struct wsc *ws, int code, const char *reason);

/*
 * Wait up to timeout_ms for one complete data message or a close frame.
 * Fragmented messages are reassembled; pings are answered automatically (see
 * wsc_set_auto_pong); pongs are counted and skipped. On success returns 0 and
 * fills *out (caller releases it with wsc_msg_free). When a close frame
 * arrives it is returned as opcode WSC_OP_CLOSE and, if we had not sent one
 * yet, a close frame echoing the status code is sent back.
 * Errors: -ETIMEDOUT (a partially received message is kept and completed by a
 * later call), -ECONNRESET (TCP ended without a close frame), -ENOTCONN (a
 * close frame was already received), -EPROTO, -EMSGSIZE, -ENOMEM, -errno.
 */
int wsc_recv(struct wsc *ws, struct wsc_msg *out, int timeout_ms);

/*
 * Receive the next message and parse it as JSON. Returns a new reference
 * (caller json_decref's) or NULL on timeout, error, a non-text message or
 * invalid JSON (the message is consumed either way).
 */
json_t *wsc_recv_json(struct wsc *ws, int timeout_ms);

/*
 * Skip messages until a JSON object whose "type" member is the string type
 * arrives, all within one overall deadline of timeout_ms. Returns a new
 * reference (caller json_decref's), or NULL on timeout, error or close.
 */
json_t *wsc_recv_type(struct wsc *ws, const char *type, int timeout_ms);

/*
 * Read (discarding data messages) until the server's close frame or the end of
 * the TCP stream. Returns 0 and stores the close code in *close_code (if not
 * NULL): the frame's code, WSC_CLOSE_NO_STATUS for an empty close frame, or
 * WSC_CLOSE_ABNORMAL (1006) if TCP ended without a close frame.
 * Returns -ETIMEDOUT if neither happened in time, other negative on error.
 */
int wsc_wait_closed(struct wsc *ws, int timeout_ms, int *close_code);

#endif /* RRM_TESTSUPPORT_WSCLIENT_H */
