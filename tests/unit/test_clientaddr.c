/* Unit tests for frontend/clientaddr.c: the trusted-proxy list (CIDR blocks, IPv4, IPv6,
 * IPv4-mapped), entries of forwarding headers (ports, brackets, spaces, garbage, overlong) and the
 * walk of an X-Forwarded-For chain that names the client. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "clientaddr.h"

#include <stdlib.h>
#include <string.h>

static struct clientaddr_trust *trust(const char *list) {
    char err[160] = "";
    struct clientaddr_trust *t = clientaddr_trust_parse(list, err, sizeof(err));
    if (!t)
        fail_msg("'%s' refused: %s", list, err);
    return t;
}

static int refused(const char *list) {
    char err[160] = "";
    struct clientaddr_trust *t = clientaddr_trust_parse(list, err, sizeof(err));
    clientaddr_trust_free(t);
    return !t && err[0];
}

static int trusted(const struct clientaddr_trust *t, const char *addr) {
    return clientaddr_trusted(t, addr, strlen(addr));
}

static void test_trust_list(void **state) {
    (void)state;
    struct clientaddr_trust *t =
        trust(" 10.0.0.0/8 ,192.168.1.7,  2001:db8::/32,::1, 172.16.0.0/12");
    assert_int_equal(clientaddr_trust_count(t), 5);
    assert_true(trusted(t, "10.1.2.3"));
    assert_true(trusted(t, "10.255.255.255"));
    assert_false(trusted(t, "11.0.0.0"));
    assert_false(trusted(t, "9.255.255.255"));
    assert_true(trusted(t, "192.168.1.7"));
    assert_false(trusted(t, "192.168.1.8"));
    assert_true(trusted(t, "172.31.255.1"));
    assert_false(trusted(t, "172.32.0.1"));
    assert_true(trusted(t, "2001:db8:ffff::5"));
    assert_true(trusted(t, "2001:DB8::5"));
    assert_false(trusted(t, "2001:db9::5"));
    assert_true(trusted(t, "::1"));
    assert_false(trusted(t, "::2"));
    assert_false(trusted(t, "garbage"));
    assert_false(trusted(t, ""));
    clientaddr_trust_free(t);
}

static void test_trust_prefixes(void **state) {
    (void)state;
    struct clientaddr_trust *t = trust("10.0.0.1/8,1.2.3.4/0,fe80::1/10,192.0.2.128/25");
    /* bits below the prefix are ignored */
    assert_true(trusted(t, "10.200.0.1"));
    /* /0 of IPv4: every IPv4 address, no IPv6 one */
    assert_true(trusted(t, "203.0.113.9"));
    assert_false(trusted(t, "2001:db8::1"));
    assert_true(trusted(t, "febf::1"));
    assert_false(trusted(t, "fec0::1"));
    clientaddr_trust_free(t);
    t = trust("192.0.2.128/25");
    assert_true(trusted(t, "192.0.2.200"));
    assert_false(trusted(t, "192.0.2.127"));
    clientaddr_trust_free(t);
    t = trust("::/0");
    assert_true(trusted(t, "2001:db8::1"));
    assert_true(trusted(t, "1.2.3.4")); /* ::/0 holds ::ffff:1.2.3.4 too */
    clientaddr_trust_free(t);
}

static void test_trust_mapped(void **state) {
    (void)state;
    /* an IPv4-mapped IPv6 address is the IPv4 address, either way round */
    struct clientaddr_trust *t = trust("127.0.0.2/32, ::ffff:10.0.0.0/104");
    assert_true(trusted(t, "::ffff:127.0.0.2"));
    assert_true(trusted(t, "127.0.0.2"));
    assert_true(trusted(t, "10.9.8.7"));
    assert_true(trusted(t, "::ffff:10.9.8.7"));
    assert_false(trusted(t, "11.0.0.1"));
    clientaddr_trust_free(t);
}

static void test_trust_empty_and_bad(void **state) {
    (void)state;
    struct clientaddr_trust *t = trust("");
    assert_int_equal(clientaddr_trust_count(t), 0);
    assert_false(trusted(t, "127.0.0.1"));
    clientaddr_trust_free(t);
    t = trust(NULL);
    assert_int_equal(clientaddr_trust_count(t), 0);
    clientaddr_trust_free(t);
    t = trust(" , ,");
    assert_int_equal(clientaddr_trust_count(t), 0);
    clientaddr_trust_free(t);
    assert_true(refused("10.0.0.0/33"));
    assert_true(refused("::/129"));
    assert_true(refused("10.0.0.0/"));
    assert_true(refused("10.0.0.0/8x"));
    assert_true(refused("10.0.0.0/-1"));
    assert_true(refused("10.0.0/8"));
    assert_true(refused("localhost"));
    assert_true(refused("10.0.0.1:80"));
    assert_true(refused("[::1]"));
    assert_true(refused("10.0.0.1, nonsense"));
    assert_true(refused("fe80::1%eth0"));
    assert_true(refused("10.0.0.1/8/8"));
    char longer[300];
    memset(longer, '1', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    assert_true(refused(longer));
}

static int parses(const char *s, const char *want) {
    char out[CLIENTADDR_MAX];
    if (clientaddr_parse(s, strlen(s), out))
        return want == NULL;
    if (!want) {
        print_error("'%s' parsed as '%s'\n", s, out);
        return 0;
    }
    if (strcmp(out, want) != 0)
        print_error("'%s' parsed as '%s', not '%s'\n", s, out, want);
    return strcmp(out, want) == 0;
}

static void test_parse_entries(void **state) {
    (void)state;
    assert_true(parses("203.0.113.9", "203.0.113.9"));
    assert_true(parses("  203.0.113.9\t", "203.0.113.9"));
    assert_true(parses("203.0.113.9:51234", "203.0.113.9"));
    assert_true(parses("2001:DB8:0:0::1", "2001:db8::1"));
    assert_true(parses("[2001:db8::1]", "2001:db8::1"));
    assert_true(parses("[2001:db8::1]:443", "2001:db8::1"));
    assert_true(parses("::ffff:198.51.100.3", "198.51.100.3"));
    assert_true(parses("[::ffff:198.51.100.3]:80", "198.51.100.3"));
    assert_true(parses("::ffff:c633:6403", "198.51.100.3"));
    assert_true(parses("::1", "::1"));
    /* garbage */
    assert_true(parses("", NULL));
    assert_true(parses("   ", NULL));
    assert_true(parses("unknown", NULL));
    assert_true(parses("_hidden", NULL));
    assert_true(parses("example.com", NULL));
    assert_true(parses("203.0.113", NULL));
    assert_true(parses("203.0.113.256", NULL));
    assert_true(parses("203.000.113.9", NULL));
    assert_true(parses("203.0.113.9:", NULL));
    assert_true(parses("203.0.113.9:65536", NULL));
    assert_true(parses("203.0.113.9:80x", NULL));
    assert_true(parses("203.0.113.9:123456", NULL));
    assert_true(parses("[203.0.113.9]", NULL));
    assert_true(parses("[2001:db8::1", NULL));
    assert_true(parses("[2001:db8::1]x", NULL));
    assert_true(parses("[2001:db8::1]:", NULL));
    assert_true(parses("fe80::1%eth0", NULL));
    assert_true(parses("2001:db8::1 2001:db8::2", NULL));
    assert_true(parses("1.2.3.4 5.6.7.8", NULL));
    assert_true(parses("\"1.2.3.4\"", NULL));
    assert_true(parses("1.2.3.4\r\n", NULL));
    assert_true(parses("1.2.3.4\0", "1.2.3.4"));
    char nul[] = {'1', '.', '2', '.', '3', '.', '4', '\0', '5'};
    char out[CLIENTADDR_MAX];
    assert_int_equal(clientaddr_parse(nul, sizeof(nul), out), -1);
    /* spaces around an entry do not count towards its length; the entry itself is bounded */
    char pad[200];
    memset(pad, ' ', sizeof(pad));
    memcpy(pad + 100, "1.2.3.4", 7);
    assert_int_equal(clientaddr_parse(pad, sizeof(pad), out), 0);
    assert_string_equal(out, "1.2.3.4");
    char zeros[80] = "1.2.3.4:";
    memset(zeros + 8, '0', sizeof(zeros) - 11);
    memcpy(zeros + sizeof(zeros) - 3, "80", 3);
    assert_int_equal(clientaddr_parse(zeros, strlen(zeros), out), -1);
}

static enum clientaddr_source resolve(const struct clientaddr_trust *t, const char *peer,
                                      const char *xff, const char *real_ip, char *out) {
    memset(out, 'x', CLIENTADDR_MAX);
    return clientaddr_resolve(t, peer, xff, xff ? strlen(xff) : 0, real_ip,
                              real_ip ? strlen(real_ip) : 0, out);
}

static void test_resolve_untrusted_peer(void **state) {
    (void)state;
    struct clientaddr_trust *t = trust("127.0.0.2/32");
    char out[CLIENTADDR_MAX];
    /* a forged header from an untrusted peer is ignored */
    assert_int_equal(resolve(t, "127.0.0.5", "203.0.113.9", NULL, out), CLIENTADDR_PEER);
    assert_string_equal(out, "127.0.0.5");
    assert_int_equal(resolve(t, "127.0.0.5", NULL, "203.0.113.9", out), CLIENTADDR_PEER);
    assert_string_equal(out, "127.0.0.5");
    /* nobody trusted by default */
    struct clientaddr_trust *none = trust("");
    assert_int_equal(resolve(none, "127.0.0.2", "203.0.113.9", NULL, out), CLIENTADDR_PEER);
    assert_string_equal(out, "127.0.0.2");
    /* a peer written as IPv4-mapped IPv6 is recorded as IPv4 */
    assert_int_equal(resolve(none, "::ffff:127.0.0.9", NULL, NULL, out), CLIENTADDR_PEER);
    assert_string_equal(out, "127.0.0.9");
    clientaddr_trust_free(none);
    clientaddr_trust_free(t);
}

static void test_resolve_chain(void **state) {
    (void)state;
    struct clientaddr_trust *t = trust("10.0.0.0/8, 127.0.0.2");
    char out[CLIENTADDR_MAX];
    /* one proxy: its header holds the client */
    assert_int_equal(resolve(t, "127.0.0.2", "203.0.113.9", NULL, out), CLIENTADDR_FORWARDED);
    assert_string_equal(out, "203.0.113.9");
    /* the right-most untrusted one, whatever the client itself put in front */
    assert_int_equal(
        resolve(t, "127.0.0.2", "1.1.1.1, 198.51.100.7, 10.0.0.3, 10.9.9.9", NULL, out),
        CLIENTADDR_FORWARDED);
    assert_string_equal(out, "198.51.100.7");
    /* every hop trusted: the left-most */
    assert_int_equal(resolve(t, "127.0.0.2", "10.1.1.1,10.2.2.2", NULL, out), CLIENTADDR_FORWARDED);
    assert_string_equal(out, "10.1.1.1");
    /* ports, brackets, IPv6, mapped, spaces and empty elements */
    assert_int_equal(resolve(t, "127.0.0.2", " [2001:db8::7]:4711 ,, 10.0.0.1:80 ,", NULL, out),
                     CLIENTADDR_FORWARDED);
    assert_string_equal(out, "2001:db8::7");
    assert_int_equal(resolve(t, "127.0.0.2", "::ffff:203.0.113.4", NULL, out),
                     CLIENTADDR_FORWARDED);
    assert_string_equal(out, "203.0.113.4");
    assert_int_equal(resolve(t, "127.0.0.2", "1.2.3.4, ::ffff:10.0.0.8", NULL, out),
                     CLIENTADDR_FORWARDED);
    assert_string_equal(out, "1.2.3.4");
    /* two header lines, as lws joins them */
    assert_int_equal(resolve(t, "127.0.0.2", "203.0.113.1,  10.0.0.4", NULL, out),
                     CLIENTADDR_FORWARDED);
    assert_string_equal(out, "203.0.113.1");
    /* a trusted peer without headers, or with only separators */
    assert_int_equal(resolve(t, "127.0.0.2", NULL, NULL, out), CLIENTADDR_PEER);
    assert_string_equal(out, "127.0.0.2");
    assert_int_equal(resolve(t, "127.0.0.2", " , ,", NULL, out), CLIENTADDR_PEER);
    assert_string_equal(out, "127.0.0.2");
    clientaddr_trust_free(t);
}

static void test_resolve_malformed(void **state) {
    (void)state;
    struct clientaddr_trust *t = trust("10.0.0.0/8, 127.0.0.2");
    char out[CLIENTADDR_MAX];
    /* the right-most entry is garbage: the peer */
    assert_int_equal(resolve(t, "127.0.0.2", "203.0.113.9, unknown", NULL, out),
                     CLIENTADDR_MALFORMED);
    assert_string_equal(out, "127.0.0.2");
    /* garbage behind a trusted hop: that hop, never the garbage nor what is left of it */
    assert_int_equal(resolve(t, "127.0.0.2", "203.0.113.9, <script>, 10.0.0.3", NULL, out),
                     CLIENTADDR_MALFORMED);
    assert_string_equal(out, "10.0.0.3");
    /* garbage left of the client does not matter: the walk stopped before it */
    assert_int_equal(resolve(t, "127.0.0.2", "garbage, 203.0.113.9", NULL, out),
                     CLIENTADDR_FORWARDED);
    assert_string_equal(out, "203.0.113.9");
    /* an entry longer than any address */
    char big[5000];
    memset(big, '9', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(resolve(t, "127.0.0.2", big, NULL, out), CLIENTADDR_MALFORMED);
    assert_string_equal(out, "127.0.0.2");
    /* a long chain of trusted hops is walked to its client */
    size_t n = 0;
    memcpy(big, "198.51.100.1", 12);
    n = 12;
    while (n + 12 < sizeof(big)) {
        memcpy(big + n, ", 10.1.2.3", 10);
        n += 10;
    }
    big[n] = '\0';
    assert_int_equal(resolve(t, "127.0.0.2", big, NULL, out), CLIENTADDR_FORWARDED);
    assert_string_equal(out, "198.51.100.1");
    clientaddr_trust_free(t);
}

static void test_resolve_real_ip(void **state) {
    (void)state;
    struct clientaddr_trust *t = trust("127.0.0.2");
    char out[CLIENTADDR_MAX];
    assert_int_equal(resolve(t, "127.0.0.2", NULL, " 203.0.113.5 ", out), CLIENTADDR_REAL_IP);
    assert_string_equal(out, "203.0.113.5");
    assert_int_equal(resolve(t, "127.0.0.2", NULL, "2001:DB8::5", out), CLIENTADDR_REAL_IP);
    assert_string_equal(out, "2001:db8::5");
    /* X-Forwarded-For wins */
    assert_int_equal(resolve(t, "127.0.0.2", "198.51.100.2", "203.0.113.5", out),
                     CLIENTADDR_FORWARDED);
    assert_string_equal(out, "198.51.100.2");
    assert_int_equal(resolve(t, "127.0.0.2", NULL, "1.2.3.4, 5.6.7.8", out), CLIENTADDR_MALFORMED);
    assert_string_equal(out, "127.0.0.2");
    assert_int_equal(resolve(t, "127.0.0.2", NULL, "", out), CLIENTADDR_MALFORMED);
    assert_string_equal(out, "127.0.0.2");
    clientaddr_trust_free(t);
}

static void test_resolve_odd_peer(void **state) {
    (void)state;
    struct clientaddr_trust *t = trust("0.0.0.0/0");
    char out[CLIENTADDR_MAX];
    /* lws could not name the peer: nothing is believed, the text is kept as it is */
    assert_int_equal(resolve(t, "", "203.0.113.9", NULL, out), CLIENTADDR_PEER);
    assert_string_equal(out, "");
    clientaddr_trust_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trust_list),      cmocka_unit_test(test_trust_prefixes),
        cmocka_unit_test(test_trust_mapped),    cmocka_unit_test(test_trust_empty_and_bad),
        cmocka_unit_test(test_parse_entries),   cmocka_unit_test(test_resolve_untrusted_peer),
        cmocka_unit_test(test_resolve_chain),   cmocka_unit_test(test_resolve_malformed),
        cmocka_unit_test(test_resolve_real_ip), cmocka_unit_test(test_resolve_odd_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
