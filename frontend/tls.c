/* TLS credentials of the client listener: loading, checking, installing and renewing (see tls.h).
 */
#include "tls.h"

#include <errno.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* What stat() says of a file: a renewal changes at least one of these. */
struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    int missing;
};

/* One certificate with its chain and key, read from the files and checked together. */
struct creds {
    X509 *cert;
    STACK_OF(X509) * chain;
    EVP_PKEY *key;
    int64_t not_after;
    char serial[80]; /* hex, for the log */
};

struct tls {
    char *cert_path, *key_path;
    long watch_ms;
    int64_t next_watch_ms;
    struct file_id cert_id, key_id; /* the files as last read (or last refused) */
    const struct logger *log;
    SSL_CTX *live; /* the vhost's; borrowed */
    struct creds cur;
    struct tls_stats stats;
};

static void creds_free(struct creds *c) {
    X509_free(c->cert);
    sk_X509_pop_free(c->chain, X509_free);
    EVP_PKEY_free(c->key);
    memset(c, 0, sizeof(*c));
}

static void file_id_of(const char *path, struct file_id *id) {
    struct stat st;
    memset(id, 0, sizeof(*id));
    if (stat(path, &st) != 0) {
        id->missing = 1;
        return;
    }
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
}

static int file_id_same(const struct file_id *a, const struct file_id *b) {
    return a->missing == b->missing && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* The reason of the oldest error OpenSSL queued, and the queue emptied: lws reads the same
 * thread's queue to judge its own connections' errors, so nothing may be left there. */
static const char *ssl_reason(char *buf, size_t cap) {
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, cap);
    else
        snprintf(buf, cap, "no details");
    ERR_clear_error();
    return buf;
}

/* An encrypted key cannot be used: a node restarts unattended. Without this callback OpenSSL
 * would ask for the passphrase on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

static int64_t asn1_time_unix(const ASN1_TIME *t) {
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

static void serial_hex(X509 *cert, char *buf, size_t cap) {
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(buf, cap, "%s", hex ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
}

/* Reads the certificate file: the certificate, then any chain certificates after it. */
static int read_cert(const char *path, struct creds *c, char *err, size_t errlen) {
    char why[256];
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "RRM_TLS_CERT: cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    c->cert = PEM_read_X509(f, NULL, no_passphrase, NULL);
    c->chain = sk_X509_new_null();
    if (!c->cert || !c->chain) {
        snprintf(err, errlen, "RRM_TLS_CERT: '%s' holds no PEM certificate (%s)", path,
                 ssl_reason(why, sizeof(why)));
        fclose(f);
        return -1;
    }
    X509 *x;
    while ((x = PEM_read_X509(f, NULL, no_passphrase, NULL)))
        if (!sk_X509_push(c->chain, x)) {
            X509_free(x);
            break;
        }
    unsigned long e = ERR_peek_last_error();
    int rc = 0;
    if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error(); /* the end of the file */
    } else if (e) {
        snprintf(err, errlen, "RRM_TLS_CERT: '%s': a chain certificate is unreadable (%s)", path,
                 ssl_reason(why, sizeof(why)));
        rc = -1;
    }
    fclose(f);
    return rc;
}

static int read_key(const char *path, struct creds *c, char *err, size_t errlen) {
    char why[256];
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "RRM_TLS_KEY: cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    c->key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (!c->key) {
        snprintf(err, errlen, "RRM_TLS_KEY: '%s' holds no unencrypted PEM private key (%s)", path,
                 ssl_reason(why, sizeof(why)));
        return -1;
    }
    return 0;
}

/* Reads both files into c and checks them the way a handshake would use them: the key matches
 * the certificate, and a scratch SSL_CTX accepts the pair (OpenSSL's security level refuses,
 * e.g., keys that are too small). Returns 0, or -1 with the reason in err (c is then empty). */
static int creds_load(const char *cert_path, const char *key_path, struct creds *c, char *err,
                      size_t errlen) {
    char why[256];
    memset(c, 0, sizeof(*c));
    if (read_cert(cert_path, c, err, errlen) || read_key(key_path, c, err, errlen))
        goto fail;
    if (X509_check_private_key(c->cert, c->key) != 1) {
        ERR_clear_error();
        snprintf(err, errlen,
                 "RRM_TLS_KEY: the key in '%s' does not match the certificate in '%s' "
                 "(RRM_TLS_CERT)",
                 key_path, cert_path);
        goto fail;
    }
    SSL_CTX *scratch = SSL_CTX_new(TLS_server_method());
    int ok = scratch && SSL_CTX_use_cert_and_key(scratch, c->cert, c->key, c->chain, 1) == 1;
    SSL_CTX_free(scratch);
    if (!ok) {
        snprintf(err, errlen, "RRM_TLS_CERT: '%s' with its key cannot be used (%s)", cert_path,
                 ssl_reason(why, sizeof(why)));
        goto fail;
    }
    c->not_after = asn1_time_unix(X509_get0_notAfter(c->cert));
    serial_hex(c->cert, c->serial, sizeof(c->serial));
    ERR_clear_error();
    return 0;
fail:
    creds_free(c);
    return -1;
}

/* Replaces the live SSL_CTX's certificate, chain and key in one call (it checks that they match
 * before it changes anything). */
static int install(SSL_CTX *ctx, const struct creds *c, char *err, size_t errlen) {
    char why[256];
    if (SSL_CTX_use_cert_and_key(ctx, c->cert, c->key, c->chain, 1) != 1) {
        snprintf(err, errlen, "installing the certificate failed (%s)",
                 ssl_reason(why, sizeof(why)));
        return -1;
    }
    return 0;
}

static void log_cert(const struct tls *t, enum log_level level, const char *msg) {
    log_json(t->log, level, msg,
             json_pack("{s:s, s:s, s:I}", "cert", t->cert_path, "serial", t->cur.serial,
                       "not_after", (json_int_t)t->cur.not_after));
    if (t->cur.not_after && t->cur.not_after < (int64_t)time(NULL))
        log_json(t->log, LOG_WARN, "the TLS certificate has expired",
                 json_pack("{s:s, s:I}", "cert", t->cert_path, "not_after",
                           (json_int_t)t->cur.not_after));
}

struct tls *tls_create(const char *cert_path, const char *key_path, long watch_ms,
                       const struct logger *log, char *err, size_t errlen) {
    struct tls *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->cert_path = strdup(cert_path);
    t->key_path = strdup(key_path);
    t->watch_ms = watch_ms;
    t->log = log;
    if (!t->cert_path || !t->key_path) {
        snprintf(err, errlen, "out of memory");
        tls_destroy(t);
        return NULL;
    }
    file_id_of(cert_path, &t->cert_id);
    file_id_of(key_path, &t->key_id);
    if (creds_load(cert_path, key_path, &t->cur, err, errlen)) {
        tls_destroy(t);
        return NULL;
    }
    t->stats.not_after = t->cur.not_after;
    return t;
}

void tls_destroy(struct tls *t) {
    if (!t)
        return;
    creds_free(&t->cur);
    free(t->cert_path);
    free(t->key_path);
    free(t);
}

int tls_attach(struct tls *t, void *ssl_ctx) {
    char err[512];
    t->live = ssl_ctx;
    if (install(t->live, &t->cur, err, sizeof(err))) {
        log_json(t->log, LOG_ERROR, "TLS setup failed", json_pack("{s:s}", "error", err));
        return -1;
    }
    log_cert(t, LOG_INFO, "TLS certificate loaded");
    return 0;
}

/* A key of another type would go into another of the SSL_CTX's per-type slots and leave the old
 * certificate there beside it, still offered to some clients. */
static int same_key_type(const struct creds *a, const struct creds *b) {
    return EVP_PKEY_get_base_id(a->key) == EVP_PKEY_get_base_id(b->key);
}

int tls_reload(struct tls *t) {
    char err[512];
    struct creds next;
    file_id_of(t->cert_path, &t->cert_id);
    file_id_of(t->key_path, &t->key_id);
    int rc = creds_load(t->cert_path, t->key_path, &next, err, sizeof(err));
    if (rc == 0 && !same_key_type(&next, &t->cur)) {
        snprintf(err, sizeof(err),
                 "RRM_TLS_KEY: the renewed key is of another type (%s, was %s); restart the node "
                 "to change the key type",
                 OBJ_nid2sn(EVP_PKEY_get_base_id(next.key)),
                 OBJ_nid2sn(EVP_PKEY_get_base_id(t->cur.key)));
        creds_free(&next);
        rc = -1;
    }
    if (rc == 0 && t->live && install(t->live, &next, err, sizeof(err))) {
        creds_free(&next);
        rc = -1;
    }
    if (rc) {
        t->stats.reloads_failed++;
        log_json(t->log, LOG_ERROR, "TLS reload refused; the previous certificate stays in use",
                 json_pack("{s:s, s:s}", "error", err, "serial", t->cur.serial));
        return -1;
    }
    creds_free(&t->cur);
    t->cur = next;
    t->stats.reloads_ok++;
    t->stats.not_after = t->cur.not_after;
    log_cert(t, LOG_INFO, "TLS certificate reloaded");
    return 0;
}

void tls_watch(struct tls *t, int64_t now_ms) {
    if (!t->watch_ms || now_ms < t->next_watch_ms)
        return;
    t->next_watch_ms = now_ms + t->watch_ms;
    struct file_id c, k;
    file_id_of(t->cert_path, &c);
    file_id_of(t->key_path, &k);
    if (!file_id_same(&c, &t->cert_id) || !file_id_same(&k, &t->key_id))
        tls_reload(t);
}

void tls_get_stats(const struct tls *t, struct tls_stats *out) {
    *out = t->stats;
}
