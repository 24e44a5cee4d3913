/* TLS on the client listener: the certificate (with its chain) and private key of the public vhost,
 * read from the PEM files of RRM_TLS_CERT / RRM_TLS_KEY, checked, installed into the SSL_CTX that
 * libwebsockets creates for the vhost, and installed again when the files are renewed (SIGHUP, or a
 * change seen by tls_watch). It owns the credentials it loaded and the reload counters; the SSL_CTX
 * itself is the vhost's (lws frees it). Every OpenSSL call of the frontend is made here.
 *
 * Why this way: lws 4.1 has no call that swaps a vhost's certificate safely (lws_tls_cert_updated()
 * loads the files straight into the live SSL_CTX and ignores a failure half-way, which leaves a
 * certificate without its key). lws hands the vhost's SSL_CTX to the first protocol's callback
 * (LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS); new files are read and checked in a
 * scratch SSL_CTX first and only then installed in that one, in one call. An SSL connection copies
 * the SSL_CTX's certificate when it is accepted, so open connections keep theirs. */
#ifndef RRM_TLS_H
#define RRM_TLS_H

#include "log.h"

#include <stddef.h>
#include <stdint.h>

struct tls;

struct tls_stats {
    uint64_t reloads_ok;     /* renewed files installed */
    uint64_t reloads_failed; /* renewed files refused (the previous certificate stays) */
    int64_t not_after;       /* the certificate in use: end of validity, Unix seconds */
};

/* Reads and checks cert_path (PEM: the certificate, then its chain) and key_path (PEM, not
 * encrypted). watch_ms: how often tls_watch looks at the files (0: never). log is borrowed and
 * must outlive the object. Returns the object (caller frees with tls_destroy), or NULL with a
 * one-line reason naming RRM_TLS_CERT or RRM_TLS_KEY in err. */
struct tls *tls_create(const char *cert_path, const char *key_path, long watch_ms,
                       const struct logger *log, char *err, size_t errlen);

/* After lws_context_destroy() (which frees the SSL_CTX). NULL is allowed. */
void tls_destroy(struct tls *t);

/* Installs the credentials into ssl_ctx (an SSL_CTX *, borrowed: the vhost's, which must outlive
 * t's use of it), which later reloads replace. For the
 * LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS callback. Returns 0, or -1 (logged). */
int tls_attach(struct tls *t, void *ssl_ctx);

/* Reads the files again and, if they hold a valid certificate and matching key, installs them:
 * handshakes from now on present the new certificate. Otherwise the previous one stays and the
 * reason is logged. Counted either way. Returns 0 or -1. */
int tls_reload(struct tls *t);

/* Called on a timer: every watch_ms, reloads if either file changed (another inode, size or
 * modification time: what a renewal by cert-manager and the kubelet looks like) since the last
 * look. A broken file is reported once, not at every look. */
void tls_watch(struct tls *t, int64_t now_ms);

void tls_get_stats(const struct tls *t, struct tls_stats *out);

#endif
