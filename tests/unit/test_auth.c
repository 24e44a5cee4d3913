/* Unit tests for frontend/auth.c: claim parsing and time checks, room patterns, the token's
 * header, and verification of tokens made here with libjwt (HS, RS and ES keys generated at test
 * time), including what libjwt 1.10's jwt_decode does on its own with alg "none", an empty key
 * and a PEM text used as HMAC secret, which auth_verify must not inherit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW 1800000000LL

/* ---- helpers ---- */

static enum auth_result parse(const char *payload, long leeway, struct auth_claims *c) {
    json_error_t err;
    json_t *j = json_loads(payload, 0, &err);
    assert_non_null(j);
    enum auth_result r = auth_claims_parse(j, NOW, leeway, c);
    json_decref(j);
    return r;
}

static enum auth_result parse_only(const char *payload, long leeway) {
    struct auth_claims c;
    enum auth_result r = parse(payload, leeway, &c);
    auth_claims_free(&c);
    return r;
}

/* A token signed by libjwt with alg and key; grants is a JSON object text. Caller frees. */
static char *mint(jwt_alg_t alg, const char *key, size_t keylen, const char *grants) {
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, grants), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)keylen), 0);
    char *t = jwt_encode_str(jwt);
    assert_non_null(t);
    jwt_free(jwt);
    return t;
}

static const char grants[] = "{\"sub\":\"dev-1\",\"exp\":1800000100,\"rooms\":[\"team-*\"]}";

static char *b64url(const unsigned char *in, size_t len) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len * 4 / 3 + 4), *p = out;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = tbl[v >> 18], *p++ = tbl[(v >> 12) & 63], *p++ = tbl[(v >> 6) & 63],
        *p++ = tbl[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *p++ = tbl[v >> 18], *p++ = tbl[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *p++ = tbl[v >> 18], *p++ = tbl[(v >> 12) & 63], *p++ = tbl[(v >> 6) & 63];
    }
    *p = '\0';
    return out;
}

/* header.payload.signature from texts (signature already encoded, may be ""). Caller frees. */
static char *raw_token(const char *header, const char *payload, const char *sig) {
    char *h = b64url((const unsigned char *)header, strlen(header));
    char *b = b64url((const unsigned char *)payload, strlen(payload));
    char *t = malloc(strlen(h) + strlen(b) + strlen(sig) + 3);
    sprintf(t, "%s.%s.%s", h, b, sig);
    free(h);
    free(b);
    return t;
}

struct keypair {
    char *priv, *pub; /* PEM texts */
};

/* The bytes written to a memory BIO, as a C string (they are not NUL-terminated there). */
static char *bio_text(BIO *bio) {
    char *d;
    long n = BIO_get_mem_data(bio, &d);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    memcpy(s, d, (size_t)n);
    s[n] = '\0';
    return s;
}

/* ec: 0 for RSA 2048, else the curve's size (256, 384, 521). */
static void keypair_make(struct keypair *k, int ec) {
    EVP_PKEY *p = ec == 0     ? EVP_RSA_gen(2048)
                  : ec == 256 ? EVP_EC_gen("P-256")
                  : ec == 384 ? EVP_EC_gen("P-384")
                              : EVP_EC_gen("P-521");
    assert_non_null(p);
    BIO *a = BIO_new(BIO_s_mem()), *b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_PrivateKey(a, p, NULL, NULL, 0, NULL, NULL));
    assert_true(PEM_write_bio_PUBKEY(b, p));
    k->priv = bio_text(a);
    k->pub = bio_text(b);
    BIO_free(a);
    BIO_free(b);
    EVP_PKEY_free(p);
}

static void keypair_free(struct keypair *k) {
    free(k->priv);
    free(k->pub);
}

static struct keypair rsa1, rsa2, ec1, ec384, ec521;
static char pem_path[64];

static void write_file(const char *path, const char *a, const char *b) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(a, f);
    if (b)
        fputs(b, f);
    fclose(f);
}

static enum auth_result verify(struct auth *a, const char *token) {
    struct auth_claims c;
    enum auth_result r = auth_verify(a, token, NOW, &c);
    auth_claims_free(&c);
    return r;
}

static int setup_keys(void **state) {
    (void)state;
    keypair_make(&rsa1, 0);
    keypair_make(&rsa2, 0);
    keypair_make(&ec1, 256);
    keypair_make(&ec384, 384);
    keypair_make(&ec521, 521);
    snprintf(pem_path, sizeof(pem_path), "/tmp/rrm-test-auth-XXXXXX");
    int fd = mkstemp(pem_path);
    assert_true(fd >= 0);
    close(fd);
    return 0;
}

static int teardown_keys(void **state) {
    (void)state;
    keypair_free(&rsa1);
    keypair_free(&rsa2);
    keypair_free(&ec1);
    keypair_free(&ec384);
    keypair_free(&ec521);
    unlink(pem_path);
    return 0;
}

/* ---- claims ---- */

static void test_claims_full(void **state) {
    (void)state;
    struct auth_claims c;
    assert_int_equal(parse("{\"sub\":\"dev-1\",\"exp\":1800000100,\"nbf\":1799999990,"
                           "\"iat\":1799999990,\"rooms\":[\"a\",\"team-*\"],\"identity\":\"Bob\","
                           "\"auto_room\":false}",
                           30, &c),
                     AUTH_OK);
    assert_string_equal(c.sub, "dev-1");
    assert_string_equal(c.rooms, "a,team-*");
    assert_string_equal(c.identity, "Bob");
    assert_int_equal(c.auto_room, 0);
    assert_int_equal(c.exp, 1800000100LL);
    auth_claims_free(&c);
}

static void test_claims_defaults(void **state) {
    (void)state;
    struct auth_claims c;
    assert_int_equal(parse("{\"sub\":\"d\",\"exp\":1800000100}", 0, &c), AUTH_OK);
    assert_string_equal(c.rooms, "*"); /* no rooms claim: any room */
    assert_null(c.identity);
    assert_int_equal(c.auto_room, 1);
    auth_claims_free(&c);
    assert_int_equal(parse("{\"sub\":\"d\",\"exp\":1800000100,\"rooms\":[]}", 0, &c), AUTH_OK);
    assert_string_equal(c.rooms, ""); /* an empty list: no named room */
    auth_claims_free(&c);
    assert_int_equal(
        parse("{\"sub\":\"d\",\"exp\":1800000100,\"rooms\":null,\"identity\":null}", 0, &c),
        AUTH_OK);
    assert_string_equal(c.rooms, "*");
    auth_claims_free(&c);
}

static void test_claims_time(void **state) {
    (void)state;
    /* exp is required */
    assert_int_equal(parse_only("{\"sub\":\"d\"}", 30), AUTH_INVALID_CLAIMS);
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":\"soon\"}", 30), AUTH_INVALID_CLAIMS);
    /* expired at exp; leeway extends it */
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1800000000}", 0), AUTH_EXPIRED);
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1799999999}", 0), AUTH_EXPIRED);
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1800000001}", 0), AUTH_OK);
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1799999980}", 30), AUTH_OK);
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1799999970}", 30), AUTH_EXPIRED);
    /* nbf and iat in the future, beyond the leeway */
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1800000100,\"nbf\":1800000010}", 0),
                     AUTH_NOT_YET_VALID);
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1800000100,\"nbf\":1800000010}", 30),
                     AUTH_OK);
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1800000100,\"nbf\":1800000000}", 0),
                     AUTH_OK);
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1800000100,\"iat\":1800000031}", 30),
                     AUTH_NOT_YET_VALID);
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1800000100,\"iat\":1799990000}", 0),
                     AUTH_OK);
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1800000100,\"nbf\":true}", 0),
                     AUTH_INVALID_CLAIMS);
    /* far beyond any real date (no overflow when the leeway is added) */
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":9223372036854775807}", 30),
                     AUTH_INVALID_CLAIMS);
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1e300}", 30), AUTH_INVALID_CLAIMS);
    assert_int_equal(
        parse_only("{\"sub\":\"d\",\"exp\":1800000100,\"nbf\":-9223372036854775807}", 30),
        AUTH_INVALID_CLAIMS);
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":99999999999}", 30), AUTH_OK);
    /* a real number is read as seconds */
    assert_int_equal(parse_only("{\"sub\":\"d\",\"exp\":1800000100.5}", 0), AUTH_OK);
}

static void test_claims_invalid(void **state) {
    (void)state;
    static const char *const bad[] = {
        "{\"exp\":1800000100}",                                   /* no sub */
        "{\"sub\":7,\"exp\":1800000100}",                         /* sub not a string */
        "{\"sub\":\"a b\",\"exp\":1800000100}",                   /* not a device id */
        "{\"sub\":\"\",\"exp\":1800000100}",                      /* empty */
        "{\"sub\":\"d\",\"exp\":1800000100,\"rooms\":\"a\"}",     /* rooms not a list */
        "{\"sub\":\"d\",\"exp\":1800000100,\"rooms\":[\"a*b\"]}", /* '*' only at the end */
        "{\"sub\":\"d\",\"exp\":1800000100,\"rooms\":[\"a,b\"]}", /* not a room id */
        "{\"sub\":\"d\",\"exp\":1800000100,\"rooms\":[\"\"]}",
        "{\"sub\":\"d\",\"exp\":1800000100,\"rooms\":[1]}",
        "{\"sub\":\"d\",\"exp\":1800000100,\"identity\":5}",
        "{\"sub\":\"d\",\"exp\":1800000100,\"identity\":\"a\\u0001b\"}",
        "{\"sub\":\"d\",\"exp\":1800000100,\"auto_room\":0}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct auth_claims c;
        assert_int_equal(parse(bad[i], 0, &c), AUTH_INVALID_CLAIMS);
        assert_null(c.rooms);
        assert_null(c.identity);
    }
}

/* ---- room patterns ---- */

static void test_room_allowed(void **state) {
    (void)state;
    assert_true(auth_room_allowed("*", "anything"));
    assert_true(auth_room_allowed("lobby", "lobby"));
    assert_false(auth_room_allowed("lobby", "lobby2"));
    assert_false(auth_room_allowed("lobby2", "lobby"));
    assert_true(auth_room_allowed("team-*", "team-red"));
    assert_true(auth_room_allowed("team-*", "team-"));
    assert_false(auth_room_allowed("team-*", "team"));
    assert_false(auth_room_allowed("team-*", "other"));
    assert_true(auth_room_allowed("a,team-*,b", "b"));
    assert_true(auth_room_allowed("a,team-*,b", "team-x"));
    assert_false(auth_room_allowed("a,team-*,b", "c"));
    assert_false(auth_room_allowed("", "a"));
}

/* ---- the token's header ---- */

static void test_peek(void **state) {
    (void)state;
    const char *alg;
    json_t *payload;
    char *t = raw_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"sub\":\"d\"}", "sig");
    assert_int_equal(auth_token_peek(t, &alg, &payload), AUTH_OK);
    assert_string_equal(alg, "HS256");
    assert_string_equal(json_string_value(json_object_get(payload, "sub")), "d");
    json_decref(payload);
    free(t);

    static const char *const algorithm[] = {"{\"alg\":\"none\"}", "{\"alg\":\"hs256\"}",
                                            "{\"alg\":\"PS256\"}", "{\"typ\":\"JWT\"}",
                                            "{\"alg\":null}"};
    for (size_t i = 0; i < sizeof(algorithm) / sizeof(algorithm[0]); i++) {
        t = raw_token(algorithm[i], "{\"sub\":\"d\"}", "");
        assert_int_equal(auth_token_peek(t, &alg, &payload), AUTH_ALGORITHM);
        assert_null(payload);
        free(t);
    }
    static const char *const malformed[] = {"",
                                            "abc",
                                            "a.b",
                                            "a.b.c.d",
                                            "!!.e30.x",
                                            "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.x", /* not json */
                                            "eyJhbGciOiJIUzI1NiJ9.WzFd.x",        /* an array */
                                            "eyJhbGciOiJIUzI1NiJ9.e30=.x"};       /* padding */
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
        assert_int_equal(auth_token_peek(malformed[i], &alg, &payload), AUTH_MALFORMED);
}

/* ---- verification ---- */

static void test_verify_hs(void **state) {
    (void)state;
    char err[256];
    struct auth *a = auth_create("s3cret", "", 0, err, sizeof(err));
    assert_non_null(a);
    char *t = mint(JWT_ALG_HS256, "s3cret", 6, grants);
    struct auth_claims c;
    assert_int_equal(auth_verify(a, t, NOW, &c), AUTH_OK);
    assert_string_equal(c.sub, "dev-1");
    assert_string_equal(c.rooms, "team-*");
    auth_claims_free(&c);
    /* the same claims after their exp */
    assert_int_equal(auth_verify(a, t, 1800000100LL, &c), AUTH_EXPIRED);
    free(t);
    t = mint(JWT_ALG_HS512, "s3cret", 6, grants);
    assert_int_equal(verify(a, t), AUTH_OK);
    free(t);
    t = mint(JWT_ALG_HS256, "other", 5, grants);
    assert_int_equal(verify(a, t), AUTH_BAD_SIGNATURE);
    free(t);
    /* an RS token where only a secret is configured */
    t = mint(JWT_ALG_RS256, rsa1.priv, strlen(rsa1.priv), grants);
    assert_int_equal(verify(a, t), AUTH_ALGORITHM);
    free(t);
    assert_int_equal(verify(a, NULL), AUTH_MISSING);
    assert_int_equal(verify(a, ""), AUTH_MISSING);
    char *huge = malloc(AUTH_MAX_TOKEN + 2);
    memset(huge, 'a', AUTH_MAX_TOKEN + 1);
    huge[AUTH_MAX_TOKEN + 1] = '\0';
    assert_int_equal(verify(a, huge), AUTH_TOO_LONG);
    free(huge);
    /* a good signature over claims that are not acceptable */
    t = mint(JWT_ALG_HS256, "s3cret", 6, "{\"sub\":\"dev-1\"}");
    assert_int_equal(verify(a, t), AUTH_INVALID_CLAIMS);
    free(t);
    auth_destroy(a);
}

/* alg "none": jwt_decode without a key accepts it unverified; auth_verify never does. */
static void test_alg_none(void **state) {
    (void)state;
    char *t = raw_token("{\"alg\":\"none\"}", grants, "");
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_decode(&jwt, t, NULL, 0), 0); /* libjwt alone: accepted */
    jwt_free(jwt);
    jwt = NULL;
    assert_int_not_equal(jwt_decode(&jwt, t, (const unsigned char *)"k", 1), 0);
    char err[256];
    write_file(pem_path, rsa1.pub, NULL);
    struct auth *a = auth_create("s3cret", pem_path, 0, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(verify(a, t), AUTH_ALGORITHM);
    free(t);
    /* the same with a signature part, and libjwt's own encoding of alg none */
    t = raw_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", grants, "c2ln");
    assert_int_equal(verify(a, t), AUTH_ALGORITHM);
    free(t);
    jwt_new(&jwt);
    jwt_add_grants_json(jwt, grants);
    t = jwt_encode_str(jwt);
    jwt_free(jwt);
    assert_int_equal(verify(a, t), AUTH_ALGORITHM);
    free(t);
    auth_destroy(a);
}

/* An HS256 token whose HMAC key is empty: jwt_decode with no key checks it against the empty
 * key and accepts it, so auth_verify must never call it without one. */
static void test_empty_key(void **state) {
    (void)state;
    const char *header = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *unsigned_part = raw_token(header, grants, "");
    size_t n = strlen(unsigned_part) - 1; /* without the last '.' */
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), "", 0, (const unsigned char *)unsigned_part, n, mac, &maclen);
    char *sig = b64url(mac, maclen);
    char *t = raw_token(header, grants, sig);
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_decode(&jwt, t, NULL, 0), 0); /* libjwt alone: accepted */
    jwt_free(jwt);
    char err[256];
    struct auth *a = auth_create("s3cret", "", 0, err, sizeof(err));
    assert_int_equal(verify(a, t), AUTH_BAD_SIGNATURE);
    auth_destroy(a);
    /* only public keys configured: no secret to check an HS token with */
    write_file(pem_path, rsa1.pub, NULL);
    a = auth_create("", pem_path, 0, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(verify(a, t), AUTH_ALGORITHM);
    auth_destroy(a);
    free(sig);
    free(t);
    free(unsigned_part);
}

/* Algorithm confusion: an HS256 token "signed" with the public key's PEM text. jwt_decode given
 * that text as key verifies it; auth_verify checks HS tokens against the secret only. */
static void test_algorithm_confusion(void **state) {
    (void)state;
    write_file(pem_path, rsa1.pub, NULL);
    char *t = mint(JWT_ALG_HS256, rsa1.pub, strlen(rsa1.pub), grants);
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_decode(&jwt, t, (const unsigned char *)rsa1.pub, (int)strlen(rsa1.pub)),
                     0); /* libjwt alone: accepted */
    jwt_free(jwt);
    char err[256];
    struct auth *a = auth_create("", pem_path, 0, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(verify(a, t), AUTH_ALGORITHM);
    auth_destroy(a);
    a = auth_create("s3cret", pem_path, 0, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(verify(a, t), AUTH_BAD_SIGNATURE);
    auth_destroy(a);
    free(t);
}

static void test_verify_rs_es_and_reload(void **state) {
    (void)state;
    char err[256];
    write_file(pem_path, rsa1.pub, NULL);
    struct auth *a = auth_create("", pem_path, 0, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(auth_public_key_count(a), 1);
    char *t1 = mint(JWT_ALG_RS256, rsa1.priv, strlen(rsa1.priv), grants);
    char *t2 = mint(JWT_ALG_RS512, rsa2.priv, strlen(rsa2.priv), grants);
    char *te = mint(JWT_ALG_ES256, ec1.priv, strlen(ec1.priv), grants);
    char *ths = mint(JWT_ALG_HS256, "s3cret", 6, grants);
    assert_int_equal(verify(a, t1), AUTH_OK);
    assert_int_equal(verify(a, t2), AUTH_BAD_SIGNATURE);
    assert_int_equal(verify(a, te), AUTH_BAD_SIGNATURE);
    assert_int_equal(verify(a, ths), AUTH_ALGORITHM); /* HS token, no secret configured */

    /* rotation: the new key alone, then both, then all three */
    write_file(pem_path, rsa2.pub, NULL);
    assert_int_equal(auth_reload(a, err, sizeof(err)), 0);
    assert_int_equal(verify(a, t1), AUTH_BAD_SIGNATURE);
    assert_int_equal(verify(a, t2), AUTH_OK);
    write_file(pem_path, rsa1.pub, rsa2.pub);
    assert_int_equal(auth_reload(a, err, sizeof(err)), 0);
    assert_int_equal(auth_public_key_count(a), 2);
    assert_int_equal(verify(a, t1), AUTH_OK);
    assert_int_equal(verify(a, t2), AUTH_OK);
    char both[8192];
    snprintf(both, sizeof(both), "%s%s", rsa2.pub, ec1.pub);
    write_file(pem_path, rsa1.pub, both);
    assert_int_equal(auth_reload(a, err, sizeof(err)), 0);
    assert_int_equal(verify(a, te), AUTH_OK);

    /* a failed reload keeps the keys in use */
    write_file(pem_path, "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
               NULL);
    assert_int_equal(auth_reload(a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not an RSA or EC public key"));
    write_file(pem_path, rsa1.priv, NULL);
    assert_int_equal(auth_reload(a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "PUBLIC KEY"));
    write_file(pem_path, "", NULL);
    assert_int_equal(auth_reload(a, err, sizeof(err)), -1);
    unlink(pem_path);
    assert_int_equal(auth_reload(a, err, sizeof(err)), -1);
    assert_int_equal(auth_public_key_count(a), 3);
    assert_int_equal(verify(a, t1), AUTH_OK);
    assert_int_equal(verify(a, te), AUTH_OK);
    auth_destroy(a);

    /* a file that cannot be used is refused at start */
    assert_null(auth_create("", pem_path, 0, err, sizeof(err)));
    write_file(pem_path, rsa1.priv, NULL);
    assert_null(auth_create("", pem_path, 0, err, sizeof(err)));
    free(t1);
    free(t2);
    free(te);
    free(ths);
}

/* Every RS and ES algorithm libjwt signs verifies against the matching key of the file, and
 * only that one: an ES token needs an EC key of its own curve, an RS token an RSA key. */
static void test_verify_all_public_algorithms(void **state) {
    (void)state;
    char err[256], all[16384];
    snprintf(all, sizeof(all), "%s%s%s", ec1.pub, ec384.pub, ec521.pub);
    write_file(pem_path, rsa1.pub, all);
    struct auth *a = auth_create("", pem_path, 0, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(auth_public_key_count(a), 4);
    static const struct {
        jwt_alg_t alg;
        struct keypair *k;
    } good[] = {{JWT_ALG_RS256, &rsa1}, {JWT_ALG_RS384, &rsa1},  {JWT_ALG_RS512, &rsa1},
                {JWT_ALG_ES256, &ec1},  {JWT_ALG_ES384, &ec384}, {JWT_ALG_ES512, &ec521}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char *t = mint(good[i].alg, good[i].k->priv, strlen(good[i].k->priv), grants);
        if (verify(a, t) != AUTH_OK)
            fail_msg("%s token not verified", jwt_alg_str(good[i].alg));
        /* a flipped bit in the signature */
        char *last = t + strlen(t) - 2;
        *last = *last == 'A' ? 'B' : 'A';
        assert_int_equal(verify(a, t), AUTH_BAD_SIGNATURE);
        /* the signature cut short */
        t[strlen(t) - 4] = '\0';
        assert_int_equal(verify(a, t), AUTH_BAD_SIGNATURE);
        free(t);
    }
    auth_destroy(a);
    /* ES256 named but the key's curve is P-384: refused even with that key in the file */
    write_file(pem_path, ec384.pub, NULL);
    a = auth_create("", pem_path, 0, err, sizeof(err));
    assert_non_null(a);
    char *t = mint(JWT_ALG_ES384, ec384.priv, strlen(ec384.priv), grants);
    assert_int_equal(verify(a, t), AUTH_OK);
    free(t);
    jwt_t *jwt = NULL;
    jwt_new(&jwt);
    jwt_add_grants_json(jwt, grants);
    if (jwt_set_alg(jwt, JWT_ALG_ES256, (const unsigned char *)ec384.priv,
                    (int)strlen(ec384.priv)) == 0 &&
        (t = jwt_encode_str(jwt)) != NULL) {
        assert_int_equal(verify(a, t), AUTH_BAD_SIGNATURE);
        free(t);
    }
    jwt_free(jwt);
    /* an RS token against EC keys only, and an ES token against an RSA key only */
    t = mint(JWT_ALG_RS256, rsa1.priv, strlen(rsa1.priv), grants);
    assert_int_equal(verify(a, t), AUTH_BAD_SIGNATURE);
    free(t);
    auth_destroy(a);
    write_file(pem_path, rsa1.pub, NULL);
    a = auth_create("", pem_path, 0, err, sizeof(err));
    t = mint(JWT_ALG_ES256, ec1.priv, strlen(ec1.priv), grants);
    assert_int_equal(verify(a, t), AUTH_BAD_SIGNATURE);
    free(t);
    auth_destroy(a);
}

/* A token whose signature is right but whose claims were altered afterwards. */
static void test_tampered(void **state) {
    (void)state;
    char err[256];
    struct auth *a = auth_create("s3cret", "", 0, err, sizeof(err));
    char *t = mint(JWT_ALG_HS256, "s3cret", 6, grants);
    char *sig = strrchr(t, '.') + 1;
    char *forged = raw_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                             "{\"sub\":\"dev-1\",\"exp\":1800000100,\"rooms\":[\"*\"]}", sig);
    assert_int_equal(verify(a, forged), AUTH_BAD_SIGNATURE);
    free(forged);
    free(t);
    auth_destroy(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims_full),
        cmocka_unit_test(test_claims_defaults),
        cmocka_unit_test(test_claims_time),
        cmocka_unit_test(test_claims_invalid),
        cmocka_unit_test(test_room_allowed),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_verify_hs),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_empty_key),
        cmocka_unit_test(test_algorithm_confusion),
        cmocka_unit_test(test_verify_rs_es_and_reload),
        cmocka_unit_test(test_verify_all_public_algorithms),
        cmocka_unit_test(test_tampered),
    };
    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
