/* JWT verification and the node's keys (see auth.h). */
#include "auth.h"

#include <errno.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct auth {
    unsigned char *secret; /* HS*: NULL when not configured */
    size_t secret_len;
    char pem_path[1024];
    EVP_PKEY **keys; /* RS*, ES*: the public keys of the file, parsed once */
    size_t nkeys;
    long leeway_s;
};

static const struct {
    const char *label, *message;
} reasons[AUTH_RESULT_COUNT] = {
    [AUTH_OK] = {"ok", "ok"},
    [AUTH_MISSING] = {"missing", "a token is required: \"token\" in the identify, an "
                                 "Authorization: Bearer header or ?token= in the URL"},
    [AUTH_TOO_LONG] = {"too_long", "the token is longer than 8192 bytes"},
    [AUTH_MALFORMED] = {"malformed", "the token is not a well-formed JWT"},
    [AUTH_ALGORITHM] = {"algorithm", "the token's algorithm is not accepted by this server"},
    [AUTH_BAD_SIGNATURE] = {"bad_signature", "the token's signature does not verify"},
    [AUTH_EXPIRED] = {"expired", "token expired"},
    [AUTH_NOT_YET_VALID] = {"not_yet_valid", "the token is not valid yet (nbf or iat)"},
    [AUTH_INVALID_CLAIMS] = {"invalid_claims",
                             "the token's claims are invalid: exp and sub (the device id) are "
                             "required; rooms is a list of room ids or prefixes ending in *, "
                             "identity a string, auto_room a boolean"},
    [AUTH_OTHER_DEVICE] = {"other_device", "the token is for another device"},
    [AUTH_FORBIDDEN_ROOM] = {"forbidden_room", "the token does not allow this room"},
    [AUTH_AUTO_ROOM] = {"auto_room", "the token does not allow a new room: name a room_id"},
};

const char *auth_reason_label(enum auth_result r) {
    return (unsigned)r < AUTH_RESULT_COUNT ? reasons[r].label : "unknown";
}

const char *auth_reason_message(enum auth_result r) {
    return (unsigned)r < AUTH_RESULT_COUNT ? reasons[r].message : "unknown";
}

int auth_reason_forbidden(enum auth_result r) {
    return r == AUTH_FORBIDDEN_ROOM || r == AUTH_AUTO_ROOM;
}

void auth_claims_free(struct auth_claims *c) {
    free(c->rooms);
    free(c->identity);
    memset(c, 0, sizeof(*c));
}

/* ---- claims ---------------------------------------------------------------------------------- */

/* Time claims beyond this (year 33658) are refused, so that adding the leeway or converting to
 * milliseconds cannot overflow. */
#define MAX_SECONDS 1000000000000LL

/* A JSON number as whole seconds; 0 if v is not a number or out of range. */
static int seconds_of(json_t *v, int64_t *out) {
    if (json_is_integer(v) && json_integer_value(v) > -MAX_SECONDS &&
        json_integer_value(v) < MAX_SECONDS) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    if (json_is_real(v) && json_real_value(v) > -MAX_SECONDS && json_real_value(v) < MAX_SECONDS) {
        *out = (int64_t)json_real_value(v);
        return 1;
    }
    return 0;
}

/* An exact room id, or a prefix of one (possibly empty) followed by '*'. */
static int valid_pattern(const char *p, size_t len) {
    if (len > 0 && p[len - 1] == '*')
        return len == 1 || proto_valid_id(p, len - 1, PROTO_MAX_ROOM_ID);
    return proto_valid_id(p, len, PROTO_MAX_ROOM_ID);
}

/* The rooms claim as "a,b*": NULL when it is not an array of valid patterns. */
static char *rooms_of(json_t *rooms) {
    if (!json_is_array(rooms))
        return NULL;
    size_t cap = 1, i;
    json_t *v;
    json_array_foreach(rooms, i, v) {
        if (!json_is_string(v) || !valid_pattern(json_string_value(v), json_string_length(v)))
            return NULL;
        cap += json_string_length(v) + 1;
    }
    char *out = malloc(cap), *p = out;
    if (!out)
        return NULL;
    json_array_foreach(rooms, i, v) {
        if (p != out)
            *p++ = ',';
        memcpy(p, json_string_value(v), json_string_length(v));
        p += json_string_length(v);
    }
    *p = '\0';
    return out;
}

enum auth_result auth_claims_parse(json_t *payload, int64_t now_s, long leeway_s,
                                   struct auth_claims *out) {
    memset(out, 0, sizeof(*out));
    if (!json_is_object(payload))
        return AUTH_MALFORMED;
    int64_t exp, t;
    json_t *v = json_object_get(payload, "exp");
    if (!seconds_of(v, &exp))
        return AUTH_INVALID_CLAIMS;
    if (now_s >= exp + leeway_s)
        return AUTH_EXPIRED;
    v = json_object_get(payload, "nbf");
    if (v && !json_is_null(v)) {
        if (!seconds_of(v, &t))
            return AUTH_INVALID_CLAIMS;
        if (t > now_s + leeway_s)
            return AUTH_NOT_YET_VALID;
    }
    v = json_object_get(payload, "iat");
    if (v && !json_is_null(v)) {
        if (!seconds_of(v, &t))
            return AUTH_INVALID_CLAIMS;
        if (t > now_s + leeway_s)
            return AUTH_NOT_YET_VALID;
    }
    v = json_object_get(payload, "sub");
    if (!json_is_string(v) ||
        !proto_valid_id(json_string_value(v), json_string_length(v), PROTO_MAX_DEVICE_ID))
        return AUTH_INVALID_CLAIMS;
    memcpy(out->sub, json_string_value(v), json_string_length(v) + 1);
    out->exp = exp;
    out->auto_room = 1;
    v = json_object_get(payload, "auto_room");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v))
            goto invalid;
        out->auto_room = json_is_true(v);
    }
    v = json_object_get(payload, "identity");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) ||
            !proto_valid_identity(json_string_value(v), json_string_length(v)))
            goto invalid;
        if (!(out->identity = strdup(json_string_value(v))))
            goto invalid;
    }
    v = json_object_get(payload, "rooms");
    out->rooms = v && !json_is_null(v) ? rooms_of(v) : strdup("*");
    if (!out->rooms)
        goto invalid;
    return AUTH_OK;
invalid:
    auth_claims_free(out);
    return AUTH_INVALID_CLAIMS;
}

int auth_room_allowed(const char *patterns, const char *room) {
    size_t rlen = strlen(room);
    const char *p = patterns;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0 && p[n - 1] == '*') {
            if (rlen >= n - 1 && memcmp(room, p, n - 1) == 0)
                return 1;
        } else if (n == rlen && memcmp(room, p, n) == 0) {
            return 1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* ---- the token's parts ----------------------------------------------------------------------- */

static int b64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes unpadded base64url (len bytes) into a malloc'd buffer; NULL if it is not that. */
static unsigned char *b64url_decode(const char *s, size_t len, size_t *out_len) {
    if (len % 4 == 1)
        return NULL;
    unsigned char *out = malloc(len * 3 / 4 + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    *out_len = n;
    return out;
}

static json_t *part_json(const char *s, size_t len) {
    size_t n;
    unsigned char *raw = b64url_decode(s, len, &n);
    if (!raw)
        return NULL;
    json_error_t jerr;
    json_t *v = memchr(raw, '\0', n) ? NULL : json_loadb((const char *)raw, n, 0, &jerr);
    free(raw);
    if (v && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static const char *const algs[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                   "RS512", "ES256", "ES384", "ES512"};

enum auth_result auth_token_peek(const char *token, const char **alg, json_t **payload) {
    *alg = NULL;
    *payload = NULL;
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || strchr(dot2 + 1, '.'))
        return AUTH_MALFORMED;
    json_t *head = part_json(token, (size_t)(dot1 - token));
    json_t *body = head ? part_json(dot1 + 1, (size_t)(dot2 - dot1 - 1)) : NULL;
    if (!body) {
        json_decref(head);
        return AUTH_MALFORMED;
    }
    const char *a = json_string_value(json_object_get(head, "alg"));
    for (size_t i = 0; a && i < sizeof(algs) / sizeof(algs[0]); i++)
        if (strcmp(a, algs[i]) == 0)
            *alg = algs[i];
    json_decref(head);
    if (!*alg) {
        json_decref(body);
        return AUTH_ALGORITHM;
    }
    *payload = body;
    return AUTH_OK;
}

/* ---- keys ------------------------------------------------------------------------------------ */

static void free_keys(EVP_PKEY **keys, size_t n) {
    for (size_t i = 0; i < n; i++)
        EVP_PKEY_free(keys[i]);
    free(keys);
}

/* The RSA or EC public key of one PEM block (len bytes), or NULL. */
static EVP_PKEY *public_key(const char *pem, size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *k = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    int id = k ? EVP_PKEY_get_base_id(k) : 0;
    if (id != EVP_PKEY_RSA && id != EVP_PKEY_EC) {
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

static char *read_file(const char *path, size_t max, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read RRM_JWT_PUBLIC_KEY %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > max) {
        snprintf(err, errlen, "cannot read RRM_JWT_PUBLIC_KEY %s: %s", path,
                 !buf  ? "out of memory"
                 : bad ? "read error"
                       : "larger than 1 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* Every PEM block of the file as its own string; only "PUBLIC KEY" blocks are accepted, so that
 * a private key or a certificate put there by mistake is reported instead of ignored. */
static int load_keys(const char *path, EVP_PKEY ***out, size_t *count, char *err, size_t errlen) {
    static const char begin[] = "-----BEGIN ", pub[] = "-----BEGIN PUBLIC KEY-----",
                      end[] = "-----END PUBLIC KEY-----";
    char *text = read_file(path, 1024 * 1024, err, errlen);
    if (!text)
        return -1;
    EVP_PKEY **keys = NULL;
    size_t n = 0;
    int rc = -1;
    for (const char *p = strstr(text, begin); p; p = strstr(p, begin)) {
        const char *e = strncmp(p, pub, sizeof(pub) - 1) == 0 ? strstr(p, end) : NULL;
        if (!e) {
            snprintf(err, errlen,
                     "RRM_JWT_PUBLIC_KEY %s: key %zu is not a complete \"PUBLIC KEY\" PEM block "
                     "(only public keys belong there)",
                     path, n + 1);
            goto out;
        }
        e += sizeof(end) - 1;
        EVP_PKEY **grown = realloc(keys, (n + 1) * sizeof(*keys));
        if (!grown) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        keys = grown;
        if (!(keys[n] = public_key(p, (size_t)(e - p)))) {
            snprintf(err, errlen, "RRM_JWT_PUBLIC_KEY %s: key %zu is not an RSA or EC public key",
                     path, n + 1);
            goto out;
        }
        n++;
        p = e;
    }
    if (n == 0) {
        snprintf(err, errlen, "RRM_JWT_PUBLIC_KEY %s holds no PEM public key", path);
        goto out;
    }
    rc = 0;
out:
    free(text);
    if (rc) {
        free_keys(keys, n);
        return -1;
    }
    *out = keys;
    *count = n;
    return 0;
}

struct auth *auth_create(const char *secret, const char *pem_path, long leeway_s, char *err,
                         size_t errlen) {
    struct auth *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->leeway_s = leeway_s;
    if (secret && secret[0]) {
        a->secret_len = strlen(secret);
        a->secret = (unsigned char *)strdup(secret);
        if (!a->secret) {
            snprintf(err, errlen, "out of memory");
            auth_destroy(a);
            return NULL;
        }
    }
    if (pem_path && pem_path[0]) {
        if (strlen(pem_path) >= sizeof(a->pem_path)) {
            snprintf(err, errlen, "RRM_JWT_PUBLIC_KEY: path too long");
            auth_destroy(a);
            return NULL;
        }
        strcpy(a->pem_path, pem_path);
        if (load_keys(a->pem_path, &a->keys, &a->nkeys, err, errlen)) {
            auth_destroy(a);
            return NULL;
        }
    }
    return a;
}

void auth_destroy(struct auth *a) {
    if (!a)
        return;
    if (a->secret)
        memset(a->secret, 0, a->secret_len);
    free(a->secret);
    free_keys(a->keys, a->nkeys);
    free(a);
}

int auth_reload(struct auth *a, char *err, size_t errlen) {
    if (!a->pem_path[0])
        return 0;
    EVP_PKEY **keys;
    size_t n;
    if (load_keys(a->pem_path, &keys, &n, err, errlen))
        return -1;
    free_keys(a->keys, a->nkeys);
    a->keys = keys;
    a->nkeys = n;
    return 0;
}

size_t auth_public_key_count(const struct auth *a) {
    return a->nkeys;
}

/* 1 if libjwt verifies the HS* token with key (len bytes) and agrees on the algorithm. key is
 * never NULL or empty here: jwt_decode would then accept alg "none", or check an HMAC with an
 * empty key. (Upstream 1.10.2 compares the HMAC with strcmp, a timing side channel; Debian's
 * 1.10.2-1+deb12u1 fixes it: CVE-2024-25189.) */
static int verifies(const char *token, const unsigned char *key, size_t len, const char *alg) {
    jwt_t *jwt = NULL;
    if (!key || len == 0 || len > 1024 * 1024)
        return 0;
    int ok =
        jwt_decode(&jwt, token, key, (int)len) == 0 && jwt && jwt_get_alg(jwt) == jwt_str_alg(alg);
    jwt_free(jwt);
    return ok;
}

/* The signature of an RS* or ES* token checked with OpenSSL against a key parsed at load.
 * libjwt 1.10 takes the key as PEM text and parses it on every verification, which costs
 * OpenSSL 3.0 about 0.6 ms of CPU per parse (1.1 ms per RS256 verification against 12 us for
 * HS256, measured on the CI machine): every connection would pay it. The key must be of the
 * algorithm's type, and an EC key of the algorithm's curve (RFC 7518 3.4). */
static int verifies_pkey(const char *token, const char *alg, EVP_PKEY *key) {
    const char *dot = strrchr(token, '.');
    const EVP_MD *md = strcmp(alg + 2, "256") == 0   ? EVP_sha256()
                       : strcmp(alg + 2, "384") == 0 ? EVP_sha384()
                                                     : EVP_sha512();
    int rsa = alg[0] == 'R', bits = EVP_PKEY_get_bits(key);
    if (EVP_PKEY_get_base_id(key) != (rsa ? EVP_PKEY_RSA : EVP_PKEY_EC))
        return 0;
    size_t slen;
    unsigned char *sig = b64url_decode(dot + 1, strlen(dot + 1), &slen), *der = NULL;
    if (!sig)
        return 0;
    int ok = 0, dlen = 0;
    if (!rsa) {
        /* JWS carries r and s as two big-endian numbers of the curve's size; OpenSSL wants
         * DER. */
        int want = strcmp(alg, "ES256") == 0 ? 256 : strcmp(alg, "ES384") == 0 ? 384 : 521;
        size_t n = (size_t)(want + 7) / 8;
        if (bits != want || slen != 2 * n)
            goto out;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, (int)n, NULL), *s = BN_bin2bn(sig + n, (int)n, NULL);
        if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            goto out;
        }
        dlen = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (dlen <= 0)
            goto out;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, key) == 1 &&
         EVP_DigestVerify(ctx, rsa ? sig : der, rsa ? slen : (size_t)dlen,
                          (const unsigned char *)token, (size_t)(dot - token)) == 1;
    EVP_MD_CTX_free(ctx);
out:
    OPENSSL_free(der);
    free(sig);
    return ok;
}

enum auth_result auth_verify(const struct auth *a, const char *token, int64_t now_s,
                             struct auth_claims *out) {
    memset(out, 0, sizeof(*out));
    size_t len = token ? strlen(token) : 0;
    if (len == 0)
        return AUTH_MISSING;
    if (len > AUTH_MAX_TOKEN)
        return AUTH_TOO_LONG;
    const char *alg;
    json_t *payload;
    enum auth_result r = auth_token_peek(token, &alg, &payload);
    if (r != AUTH_OK)
        return r;
    /* The key is chosen by the algorithm the token names, and only keys of that type are
     * tried: an HS* token is checked against the secret alone, never against a PEM text. */
    int ok = 0;
    if (alg[0] == 'H') {
        if (!a->secret)
            r = AUTH_ALGORITHM;
        else
            ok = verifies(token, a->secret, a->secret_len, alg);
    } else if (a->nkeys == 0) {
        r = AUTH_ALGORITHM;
    } else {
        for (size_t i = 0; i < a->nkeys && !ok; i++)
            ok = verifies_pkey(token, alg, a->keys[i]);
    }
    if (r == AUTH_OK)
        r = ok ? auth_claims_parse(payload, now_s, a->leeway_s, out) : AUTH_BAD_SIGNATURE;
    json_decref(payload);
    return r;
}
