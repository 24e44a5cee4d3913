/*
 * tls_certs.h - test certificates made with the openssl command-line tool.
 *
 * This module owns one private directory with a test certificate authority
 * (ca.crt, ca.key: an EC P-256 self-signed CA) and the server certificates it
 * issues there: <name>.crt and <name>.key, for the subject alternative names
 * DNS:localhost and IP:127.0.0.1 unless others are given, each with the serial
 * number and validity the test asks for, so that a renewed certificate can be
 * told from the first one (wsc_peer_cert). Nothing is fetched; `openssl` is
 * found on PATH or in the usual bin directories. Its output goes to
 * <dir>/openssl.log, printed when a command fails.
 *
 * Functions returning int return 0 on success, a negative errno value on failure.
 */
#ifndef RRM_TESTSUPPORT_TLS_CERTS_H
#define RRM_TESTSUPPORT_TLS_CERTS_H

#include <stddef.h>

#define TLS_CERTS_PATH_MAX 512

struct tls_certs;

/* One issued certificate: the paths of its two PEM files (inside the CA's dir). */
struct tls_cert_files {
    char cert[TLS_CERTS_PATH_MAX];
    char key[TLS_CERTS_PATH_MAX];
};

/*
 * Make a new directory "$TMPDIR/rrm-tls-XXXXXX" with a CA whose subject is
 * "CN=<cn>" (cn may be NULL: "rrm test CA"). Returns the object (caller frees
 * with tls_certs_destroy) or NULL after printing why.
 */
struct tls_certs *tls_certs_create(const char *cn);

/* Remove the directory and free tc. NULL is allowed. */
void tls_certs_destroy(struct tls_certs *tc);

/* The directory and the CA certificate's path (borrowed; valid until destroy). */
const char *tls_certs_dir(const struct tls_certs *tc);
const char *tls_certs_ca(const struct tls_certs *tc);

/*
 * Issue a server certificate signed by the CA into <dir>/<name>.crt and
 * <dir>/<name>.key (overwritten if they exist): a new EC P-256 key, subject
 * "CN=<first name>", serial number `serial` (> 0), valid from now for `days`
 * days, extended key usage serverAuth. san is an openssl subjectAltName value
 * ("DNS:localhost,IP:127.0.0.1" when NULL). The paths go to *out (may be NULL).
 */
int tls_certs_issue(struct tls_certs *tc, const char *name, long serial, int days, const char *san,
                    struct tls_cert_files *out);

/* Everything tls_certs_issue_spec can vary. */
struct tls_cert_spec {
    const char *name;
    long serial;
    int days;
    const char *san; /* NULL: "DNS:localhost,IP:127.0.0.1" */
    int rsa;         /* 0: an EC P-256 key; 1: an RSA 2048-bit key */
};

/* tls_certs_issue with every choice in spec. */
int tls_certs_issue_spec(struct tls_certs *tc, const struct tls_cert_spec *spec,
                         struct tls_cert_files *out);

#endif /* RRM_TESTSUPPORT_TLS_CERTS_H */
