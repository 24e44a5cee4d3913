/* rrm-token: prints a JSON Web Token for one device, signed with the secret (HS256/384/512) or
 * a private key (RS256/384/512, ES256/384/512) the frontends verify (README "Authentication").
 * For operators and tests; the signing is libjwt's. */
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f, "usage: rrm-token (--secret S | --key PRIVATE.pem) --sub DEVICE [options]\n"
               "Prints a JSON Web Token for rrm-frontend (RRM_JWT_SECRET / RRM_JWT_PUBLIC_KEY).\n"
               "  --secret S         HMAC secret (default algorithm HS256); env RRM_JWT_SECRET if\n"
               "                     neither --secret nor --key is given\n"
               "  --key FILE         PEM private key (default algorithm RS256)\n"
               "  --alg ALG          HS256 HS384 HS512 RS256 RS384 RS512 ES256 ES384 ES512\n"
               "  --sub DEVICE       the device id the token is for (required)\n"
               "  --rooms 'a,b*'     rooms it may join: exact ids or prefixes ending in *\n"
               "                     (default: no rooms claim, any room)\n"
               "  --identity X       identity claim (overrides the identify's)\n"
               "  --no-auto-room     auto_room: false (no fresh room without a room_id)\n"
               "  --ttl SECONDS      exp = now + SECONDS (default 3600)\n"
               "  --nbf SECONDS      nbf = now + SECONDS (may be negative)\n"
               "  --version          the version of rrm-token\n");
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1024 * 1024 + 1);
    size_t n = buf ? fread(buf, 1, 1024 * 1024, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    *out = strtol(s, &end, 10);
    return errno || end == s || *end ? -1 : 0;
}

/* The rooms claim as a JSON object {"rooms":[...]} from "a,b*". */
static char *rooms_json(const char *list) {
    json_t *arr = json_array();
    char *copy = strdup(list), *save = NULL;
    for (char *p = copy ? strtok_r(copy, ",", &save) : NULL; p; p = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(p));
    free(copy);
    json_t *o = json_pack("{s:o}", "rooms", arr);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

int main(int argc, char **argv) {
    const char *secret = NULL, *keyfile = NULL, *alg_name = NULL, *sub = NULL, *rooms = NULL,
               *identity = NULL;
    long ttl = 3600, nbf = 0;
    int has_nbf = 0, no_auto_room = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("rrm-token %s\n", RRM_VERSION);
            return 0;
        } else if (strcmp(a, "--no-auto-room") == 0) {
            no_auto_room = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "rrm-token: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--secret") == 0)
            secret = v;
        else if (strcmp(a, "--key") == 0)
            keyfile = v;
        else if (strcmp(a, "--alg") == 0)
            alg_name = v;
        else if (strcmp(a, "--sub") == 0)
            sub = v;
        else if (strcmp(a, "--rooms") == 0)
            rooms = v;
        else if (strcmp(a, "--identity") == 0)
            identity = v;
        else if (strcmp(a, "--ttl") == 0 && parse_long(v, &ttl) == 0)
            continue;
        else if (strcmp(a, "--nbf") == 0 && parse_long(v, &nbf) == 0)
            has_nbf = 1;
        else {
            fprintf(stderr, "rrm-token: bad option %s %s (--help)\n", a, v);
            return 2;
        }
    }
    if (!secret && !keyfile)
        secret = getenv("RRM_JWT_SECRET");
    if (!sub || (!secret == !keyfile) || (secret && !secret[0])) {
        usage(stderr);
        return 2;
    }
    jwt_alg_t alg = jwt_str_alg(alg_name ? alg_name : secret ? "HS256" : "RS256");
    int hs = alg == JWT_ALG_HS256 || alg == JWT_ALG_HS384 || alg == JWT_ALG_HS512;
    if (alg == JWT_ALG_INVAL || alg == JWT_ALG_NONE || hs != !!secret) {
        fprintf(stderr, "rrm-token: algorithm %s does not fit %s\n", alg_name,
                secret ? "--secret (HS*)" : "--key (RS*, ES*)");
        return 2;
    }
    size_t klen = 0;
    char *key = secret ? strdup(secret) : read_file(keyfile, &klen);
    if (!key) {
        fprintf(stderr, "rrm-token: cannot read %s\n", keyfile ? keyfile : "the secret");
        return 1;
    }
    if (secret)
        klen = strlen(secret);
    long now = (long)time(NULL);
    jwt_t *jwt = NULL;
    char *rj = rooms ? rooms_json(rooms) : NULL;
    int rc = jwt_new(&jwt) || jwt_add_grant(jwt, "sub", sub) ||
             jwt_add_grant_int(jwt, "iat", now) || jwt_add_grant_int(jwt, "exp", now + ttl) ||
             (has_nbf && jwt_add_grant_int(jwt, "nbf", now + nbf)) ||
             (identity && jwt_add_grant(jwt, "identity", identity)) ||
             (no_auto_room && jwt_add_grant_bool(jwt, "auto_room", 0)) ||
             (rooms && (!rj || jwt_add_grants_json(jwt, rj))) ||
             jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)klen);
    char *token = rc ? NULL : jwt_encode_str(jwt);
    free(rj);
    memset(key, 0, klen);
    free(key);
    jwt_free(jwt);
    if (!token) {
        fprintf(stderr, "rrm-token: could not sign the token (is the key a private key of "
                        "that algorithm?)\n");
        return 1;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}
