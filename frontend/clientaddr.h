/* The real client address behind trusted proxies: the list of trusted proxies
 * (RRM_TRUSTED_PROXIES, CIDR blocks), matching an address against it, and the walk of an
 * X-Forwarded-For chain (or an X-Real-IP value) that names the client. Pure: no lws, no I/O; the
 * edge hands it the TCP peer and the header values.
 *
 * Addresses are IPv4 or IPv6; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address,
 * both when matched and when written out. Every address this module writes is canonical text from
 * inet_ntop (at most CLIENTADDR_MAX bytes with the NUL), never a copy of what a client sent. */
#ifndef RRM_CLIENTADDR_H
#define RRM_CLIENTADDR_H

#include <stddef.h>

/* Room for any address written here, with its NUL (INET6_ADDRSTRLEN). */
#define CLIENTADDR_MAX 46

/* The trusted proxies: a list of CIDR blocks. */
struct clientaddr_trust;

/* Parses a comma-separated list of CIDR blocks ("10.0.0.0/8, 2001:db8::/32, 127.0.0.2"; a bare
 * address is /32 or /128; spaces around entries are ignored; bits below the prefix are ignored).
 * An empty list (or NULL) trusts nobody. Returns the list (caller frees with
 * clientaddr_trust_free) or NULL with a one-line reason in err (a malformed entry, named; or out
 * of memory). */
struct clientaddr_trust *clientaddr_trust_parse(const char *list, char *err, size_t errlen);
void clientaddr_trust_free(struct clientaddr_trust *t);

/* Number of blocks in the list. */
size_t clientaddr_trust_count(const struct clientaddr_trust *t);

/* 1 if the address (text of len bytes: an address as clientaddr_parse accepts it) lies inside one
 * of the blocks, 0 if not or if it is not an address. */
int clientaddr_trusted(const struct clientaddr_trust *t, const char *addr, size_t len);

/* Parses one entry of a forwarding header (len bytes): an IPv4 or IPv6 address with optional
 * spaces or tabs around it, optionally with a port ("1.2.3.4:80", "[2001:db8::1]:443") or in
 * brackets ("[2001:db8::1]"). Writes its canonical text to out (CLIENTADDR_MAX bytes). Returns 0,
 * or -1 if it is anything else ("unknown", a host name, a zone id, leading zeros, an entry longer
 * than 64 bytes without the spaces around it). */
int clientaddr_parse(const char *s, size_t len, char *out);

/* Where clientaddr_resolve found the client. */
enum clientaddr_source {
    CLIENTADDR_PEER,      /* the TCP peer: untrusted, or a trusted peer that sent no header */
    CLIENTADDR_FORWARDED, /* from X-Forwarded-For */
    CLIENTADDR_REAL_IP,   /* from X-Real-IP (a trusted peer, no X-Forwarded-For) */
    CLIENTADDR_MALFORMED, /* the walk met an entry that is not an address: see below */
};

/* The client of a request from TCP peer `peer` (NUL-terminated text) carrying X-Forwarded-For
 * `xff` (xff_len bytes; NULL or empty when absent; several header lines joined by commas) and
 * X-Real-IP `real_ip` (real_ip_len bytes; NULL when absent). Writes the client's address to out
 * (CLIENTADDR_MAX bytes) and says where it came from:
 *  - the peer is not trusted (or not an address): the peer, whatever the headers say;
 *  - X-Forwarded-For present: its entries are read from the right, the peer appended; trusted
 *    addresses are passed over; the first one that is not trusted is the client; if every entry
 *    is trusted, the left-most one is; empty entries (",,") are skipped;
 *  - an entry that is not an address ends the walk: the client is then the last trusted hop, the
 *    one that handed the bad entry on (the peer when the bad entry is the right-most), so nothing
 *    a client wrote is ever recorded (CLIENTADDR_MALFORMED);
 *  - no X-Forwarded-For, X-Real-IP present: its value (one address) if it is one, else the peer
 *    (CLIENTADDR_MALFORMED);
 *  - neither: the peer.
 * When the peer is not an address, it is copied as it is (truncated to fit). */
enum clientaddr_source clientaddr_resolve(const struct clientaddr_trust *t, const char *peer,
                                          const char *xff, size_t xff_len, const char *real_ip,
                                          size_t real_ip_len, char *out);

#endif
