/*
 * tls_certs.c - a test CA and server certificates made with the openssl CLI
 * (see tls_certs.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "tls_certs.h"

#include "proc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define TLS_CERTS_CMD_TIMEOUT_MS 30000

struct tls_certs {
    char *openssl; /* the openssl executable; owned */
    char *dir;     /* owned, removed by destroy */
    char log[TLS_CERTS_PATH_MAX];
    char ca_cert[TLS_CERTS_PATH_MAX];
    char ca_key[TLS_CERTS_PATH_MAX];
};

/* Run openssl with args (argv[0] is filled in), its output appended to the log. */
static int run(struct tls_certs *tc, const char **argv) {
    argv[0] = tc->openssl;
    pid_t pid = proc_spawn(argv, NULL, tc->log);
    if (pid < 0)
        return (int)pid;
    int st = 0;
    int r = proc_wait_exit(pid, TLS_CERTS_CMD_TIMEOUT_MS, &st);
    if (r == -ETIMEDOUT)
        proc_stop(pid, SIGKILL, TLS_CERTS_CMD_TIMEOUT_MS, NULL);
    if (r == 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
        r = -EIO;
    if (r < 0) {
        fprintf(stderr, "tls_certs: openssl %s %s failed\n", argv[1], argv[2] ? argv[2] : "");
        proc_dump_file_tail(tc->log, 2048);
    }
    return r;
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    int ok = fputs(text, f) >= 0;
    if (fclose(f) != 0 || !ok)
        return -EIO;
    return 0;
}

struct tls_certs *tls_certs_create(const char *cn) {
    struct tls_certs *tc = calloc(1, sizeof(*tc));
    char subj[256];
    if (!tc)
        return NULL;
    tc->openssl = proc_which("openssl");
    tc->dir = proc_tmpdir("tls");
    if (!tc->openssl || !tc->dir) {
        fprintf(stderr, "tls_certs: %s\n",
                tc->openssl ? "cannot make a temp dir" : "openssl not found (Debian: openssl)");
        tls_certs_destroy(tc);
        return NULL;
    }
    snprintf(tc->log, sizeof(tc->log), "%s/openssl.log", tc->dir);
    snprintf(tc->ca_cert, sizeof(tc->ca_cert), "%s/ca.crt", tc->dir);
    snprintf(tc->ca_key, sizeof(tc->ca_key), "%s/ca.key", tc->dir);
    snprintf(subj, sizeof(subj), "/CN=%s", cn ? cn : "rrm test CA");
    const char *argv[] = {NULL,
                          "req",
                          "-x509",
                          "-newkey",
                          "ec",
                          "-pkeyopt",
                          "ec_paramgen_curve:P-256",
                          "-nodes",
                          "-keyout",
                          tc->ca_key,
                          "-out",
                          tc->ca_cert,
                          "-days",
                          "30",
                          "-subj",
                          subj,
                          "-addext",
                          "basicConstraints=critical,CA:TRUE",
                          "-addext",
                          "keyUsage=critical,keyCertSign,cRLSign",
                          NULL};
    if (run(tc, argv) < 0) {
        tls_certs_destroy(tc);
        return NULL;
    }
    return tc;
}

void tls_certs_destroy(struct tls_certs *tc) {
    if (!tc)
        return;
    if (tc->dir) {
        proc_rmtree(tc->dir);
        free(tc->dir);
    }
    free(tc->openssl);
    free(tc);
}

const char *tls_certs_dir(const struct tls_certs *tc) {
    return tc->dir;
}

const char *tls_certs_ca(const struct tls_certs *tc) {
    return tc->ca_cert;
}

int tls_certs_issue(struct tls_certs *tc, const char *name, long serial, int days, const char *san,
                    struct tls_cert_files *out) {
    struct tls_cert_spec spec = {.name = name, .serial = serial, .days = days, .san = san};
    return tls_certs_issue_spec(tc, &spec, out);
}

int tls_certs_issue_spec(struct tls_certs *tc, const struct tls_cert_spec *spec,
                         struct tls_cert_files *out) {
    struct tls_cert_files f;
    char csr[TLS_CERTS_PATH_MAX], ext[TLS_CERTS_PATH_MAX], subj[160], ser[32], ndays[16];
    char exttext[512];
    if (!tc || !spec || !spec->name || spec->serial <= 0 || spec->days <= 0)
        return -EINVAL;
    const char *name = spec->name, *san = spec->san;
    if (!san)
        san = "DNS:localhost,IP:127.0.0.1";
    snprintf(f.cert, sizeof(f.cert), "%s/%s.crt", tc->dir, name);
    snprintf(f.key, sizeof(f.key), "%s/%s.key", tc->dir, name);
    snprintf(csr, sizeof(csr), "%s/%s.csr", tc->dir, name);
    snprintf(ext, sizeof(ext), "%s/%s.ext", tc->dir, name);
    /* The CN is the first DNS name (or address) of the SANs. */
    const char *first = strchr(san, ':') ? strchr(san, ':') + 1 : san;
    snprintf(subj, sizeof(subj), "/CN=%.*s", (int)strcspn(first, ","), first);
    snprintf(ser, sizeof(ser), "%ld", spec->serial);
    snprintf(ndays, sizeof(ndays), "%d", spec->days);
    snprintf(exttext, sizeof(exttext),
             "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
             "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n",
             san);
    int r = write_file(ext, exttext);
    if (r < 0)
        return r;
    const char *req[] = {NULL,     "req",     "-newkey", spec->rsa ? "rsa:2048" : "ec",
                         "-nodes", "-keyout", f.key,     "-out",
                         csr,      "-subj",   subj,      NULL,
                         NULL,     NULL};
    if (!spec->rsa) { /* before the terminating NULL at [13] */
        req[11] = "-pkeyopt";
        req[12] = "ec_paramgen_curve:P-256";
    }
    const char *sign[] = {NULL,        "x509",     "-req",     "-in",         csr,    "-CA",
                          tc->ca_cert, "-CAkey",   tc->ca_key, "-set_serial", ser,    "-days",
                          ndays,       "-extfile", ext,        "-out",        f.cert, NULL};
    r = run(tc, req);
    if (r == 0)
        r = run(tc, sign);
    if (r == 0 && out)
        *out = f;
    return r;
}
