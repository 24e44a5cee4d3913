/* Authentication with JSON Web Tokens: owns the node's verification keys (RRM_JWT_SECRET for
 * HS256/384/512, the public keys of the PEM file RRM_JWT_PUBLIC_KEY for RS* and ES*) and turns a
 * token into the claims a session is allowed (struct auth_claims). Which key and algorithm may
 * be used is decided here, from the token's header, before any signature is checked: libjwt
 * 1.10's jwt_decode accepts alg "none" when given no key, checks an HS* token's HMAC against an
 * empty key when given none, verifies an HS* token against whatever key it is handed (a PEM
 * text would serve as HMAC secret: algorithm confusion), and looks at no time claim. HS*
 * signatures are checked by libjwt; RS* and ES* ones with OpenSSL against keys parsed once at
 * load (libjwt would parse the PEM text again for every token, see auth.c). No I/O but reading
 * the key file. */
#ifndef RRM_AUTH_H
#define RRM_AUTH_H

#include "proto.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Longest token accepted from any source (identify, Authorization header, ?token=). */
#define AUTH_MAX_TOKEN 8192

/* Why a token was refused; each has a metric label (auth_reason_label). */
enum auth_result {
    AUTH_OK = 0,
    AUTH_MISSING,        /* no token at all */
    AUTH_TOO_LONG,       /* over AUTH_MAX_TOKEN bytes */
    AUTH_MALFORMED,      /* not three base64url parts with a JSON header and payload */
    AUTH_ALGORITHM,      /* alg none, unknown, or not the configured key type */
    AUTH_BAD_SIGNATURE,  /* no configured key verifies it */
    AUTH_EXPIRED,        /* exp (+ leeway) has passed */
    AUTH_NOT_YET_VALID,  /* nbf or iat (- leeway) is in the future */
    AUTH_INVALID_CLAIMS, /* exp or sub missing, or a claim of the wrong type */
    AUTH_OTHER_DEVICE,   /* sub is not the identify's device_id */
    AUTH_FORBIDDEN_ROOM, /* the room is outside the rooms claim */
    AUTH_AUTO_ROOM,      /* no room_id, no allowed last room, and auto_room is false */
    AUTH_RESULT_COUNT
};

/* Metric label of a refusal ("missing", "bad_signature", ...). */
const char *auth_reason_label(enum auth_result r);

/* The message of the error frame sent for a refusal. */
const char *auth_reason_message(enum auth_result r);

/* 1 for refusals answered "forbidden" (close 4403), 0 for "unauthorized" (close 4401). */
int auth_reason_forbidden(enum auth_result r);

/* What a verified token allows. */
struct auth_claims {
    char sub[PROTO_MAX_DEVICE_ID + 1];
    char *rooms;    /* comma-separated patterns (exact ids, or prefixes ending in '*'); "*"
                       when the token has no rooms claim; "" when it allows none. Owned. */
    char *identity; /* the identity claim, or NULL. Owned. */
    int auto_room;  /* 0 when the token says auto_room: false */
    int64_t exp;    /* seconds since the epoch */
};

/* Frees what c owns (not c) and zeroes it. */
void auth_claims_free(struct auth_claims *c);

/* Reads the claims of a token's payload (borrowed) at now_s with leeway_s seconds of leeway on
 * exp, nbf and iat. On AUTH_OK *out holds the claims (caller frees with auth_claims_free);
 * otherwise *out is zeroed. */
enum auth_result auth_claims_parse(json_t *payload, int64_t now_s, long leeway_s,
                                   struct auth_claims *out);

/* 1 if room matches one of the comma-separated patterns of a rooms claim: an exact room id, or
 * a prefix ending in '*' ("*" alone: any room). */
int auth_room_allowed(const char *patterns, const char *room);

/* Splits token (NUL-terminated) into its header's alg and its payload without verifying it.
 * Returns AUTH_OK with *alg (borrowed from a static table: "HS256", ...) and *payload (caller
 * json_decref's), or AUTH_MALFORMED / AUTH_ALGORITHM (alg missing, "none" or not one of
 * HS/RS/ES 256/384/512, spelled exactly). */
enum auth_result auth_token_peek(const char *token, const char **alg, json_t **payload);

/* The node's keys. */
struct auth;

/* Keys from secret (may be "") and the PEM file at pem_path (may be ""; public keys only, one
 * or several), with leeway_s seconds on the time claims. Returns NULL with a one-line reason in
 * err if a key cannot be used. Destroy with auth_destroy. */
struct auth *auth_create(const char *secret, const char *pem_path, long leeway_s, char *err,
                         size_t errlen);
void auth_destroy(struct auth *a);

/* Reads the PEM file again (SIGHUP). On failure the keys in use stay and err says why; returns
 * 0 or -1. Without a PEM file there is nothing to reload (0). */
int auth_reload(struct auth *a, char *err, size_t errlen);

/* Number of public keys in use. */
size_t auth_public_key_count(const struct auth *a);

/* Verifies token (NUL-terminated) at now_s: length, algorithm against the configured key type,
 * signature (any public key of the file may match), time claims and claim types. On AUTH_OK
 * *out holds the claims (caller frees with auth_claims_free); otherwise *out is zeroed. */
enum auth_result auth_verify(const struct auth *a, const char *token, int64_t now_s,
                             struct auth_claims *out);

#endif
