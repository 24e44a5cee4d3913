/* Unit tests for frontend/addrlimit.c: connections per address, the handshake token bucket per
 * address, Retry-After, and that an address's state is freed once it has nothing left and never
 * grows past its bound. The clock is the test's. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "addrlimit.h"

#include <stdio.h>

static struct addrlimit *make(long conns, long rate, long burst, size_t max) {
    struct addrlimit_options o = {
        .max_connections = conns, .rate_per_sec = rate, .burst = burst, .max_addresses = max};
    struct addrlimit *l = addrlimit_create(&o);
    assert_non_null(l);
    return l;
}

static enum addrlimit_verdict admit(struct addrlimit *l, const char *a, int64_t now) {
    long retry = -1;
    enum addrlimit_verdict v = addrlimit_admit(l, a, now, &retry);
    if (v != ADDRLIMIT_OK)
        assert_true(retry >= 1);
    return v;
}

static void test_connections_per_address(void **state) {
    (void)state;
    struct addrlimit *l = make(3, 0, 0, 100);
    for (int i = 0; i < 3; i++)
        assert_int_equal(admit(l, "10.0.0.1", 0), ADDRLIMIT_OK);
    assert_int_equal(admit(l, "10.0.0.1", 0), ADDRLIMIT_CONNECTIONS);
    /* another address is unaffected */
    assert_int_equal(admit(l, "10.0.0.2", 0), ADDRLIMIT_OK);
    assert_int_equal(addrlimit_connections(l, "10.0.0.1"), 3);
    /* closing one frees a slot */
    addrlimit_release(l, "10.0.0.1", 0);
    assert_int_equal(admit(l, "10.0.0.1", 0), ADDRLIMIT_OK);
    assert_int_equal(admit(l, "10.0.0.1", 0), ADDRLIMIT_CONNECTIONS);
    /* without a rate, an address with nothing open is forgotten at once */
    for (int i = 0; i < 3; i++)
        addrlimit_release(l, "10.0.0.1", 0);
    addrlimit_release(l, "10.0.0.2", 0);
    assert_int_equal(addrlimit_count(l), 0);
    /* a release too many is ignored */
    addrlimit_release(l, "10.0.0.1", 0);
    assert_int_equal(addrlimit_count(l), 0);
    addrlimit_destroy(l);
}

static void test_rate_and_burst(void **state) {
    (void)state;
    struct addrlimit *l = make(0, 2, 4, 100);
    long retry;
    for (int i = 0; i < 4; i++)
        assert_int_equal(admit(l, "a", 1000), ADDRLIMIT_OK);
    assert_int_equal(addrlimit_admit(l, "a", 1000, &retry), ADDRLIMIT_RATE);
    assert_int_equal(retry, 1);
    assert_int_equal(admit(l, "b", 1000), ADDRLIMIT_OK);
    /* 2 per second: one more after 500 ms, not before */
    assert_int_equal(admit(l, "a", 1400), ADDRLIMIT_RATE);
    assert_int_equal(admit(l, "a", 1500), ADDRLIMIT_OK);
    assert_int_equal(admit(l, "a", 1500), ADDRLIMIT_RATE);
    /* a long pause refills up to the burst only */
    assert_int_equal(addrlimit_connections(l, "a"), 5);
    for (int i = 0; i < 4; i++)
        assert_int_equal(admit(l, "a", 100000), ADDRLIMIT_OK);
    assert_int_equal(admit(l, "a", 100000), ADDRLIMIT_RATE);
    addrlimit_destroy(l);

    /* a slow rate asks for a longer wait */
    l = make(0, 1, 1, 100);
    assert_int_equal(admit(l, "a", 0), ADDRLIMIT_OK);
    assert_int_equal(addrlimit_admit(l, "a", 0, &retry), ADDRLIMIT_RATE);
    assert_int_equal(retry, 1);
    addrlimit_destroy(l);
    struct addrlimit_options o = {.rate_per_sec = 1, .burst = 1, .max_addresses = 10};
    l = addrlimit_create(&o);
    assert_int_equal(admit(l, "a", 0), ADDRLIMIT_OK);
    assert_int_equal(addrlimit_admit(l, "a", 100, &retry), ADDRLIMIT_RATE);
    assert_int_equal(retry, 1);
    addrlimit_destroy(l);
}

static void test_connection_cap_keeps_tokens(void **state) {
    (void)state;
    /* a refusal for the connection cap does not spend the address's handshakes */
    struct addrlimit *l = make(1, 1, 2, 100);
    long retry;
    assert_int_equal(admit(l, "a", 0), ADDRLIMIT_OK);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(addrlimit_admit(l, "a", 0, &retry), ADDRLIMIT_CONNECTIONS);
        assert_true(retry >= 1);
    }
    addrlimit_release(l, "a", 0);
    assert_int_equal(admit(l, "a", 0), ADDRLIMIT_OK);
    addrlimit_destroy(l);
}

static void test_idle_state_is_freed(void **state) {
    (void)state;
    struct addrlimit *l = make(10, 10, 20, 1000);
    for (int i = 0; i < 5; i++)
        assert_int_equal(admit(l, "a", 0), ADDRLIMIT_OK);
    for (int i = 0; i < 5; i++)
        addrlimit_release(l, "a", 0);
    /* the bucket is not full yet: kept, so that reconnecting does not reset the rate */
    assert_int_equal(addrlimit_count(l), 1);
    assert_int_equal(addrlimit_sweep(l, 100), 1);
    assert_int_equal(addrlimit_count(l), 1);
    /* 5 tokens at 10/s: full after 500 ms */
    assert_int_equal(addrlimit_sweep(l, 500), 0);
    assert_int_equal(addrlimit_count(l), 0);
    /* an address with connections is never swept */
    assert_int_equal(admit(l, "b", 1000), ADDRLIMIT_OK);
    assert_int_equal(addrlimit_sweep(l, 1000000), 0);
    assert_int_equal(addrlimit_count(l), 1);
    /* the last close with a full bucket frees at once */
    addrlimit_release(l, "b", 1000000);
    assert_int_equal(addrlimit_count(l), 0);
    addrlimit_destroy(l);
}

static void test_bounded(void **state) {
    (void)state;
    struct addrlimit *l = make(10, 1, 1, 4);
    char a[16];
    for (int i = 0; i < 4; i++) {
        snprintf(a, sizeof(a), "10.0.0.%d", i);
        assert_int_equal(admit(l, a, 0), ADDRLIMIT_OK);
        addrlimit_release(l, a, 0); /* idle, bucket empty */
    }
    assert_int_equal(addrlimit_count(l), 4);
    /* the table is full of addresses whose buckets have not refilled */
    assert_int_equal(admit(l, "10.0.1.1", 500), ADDRLIMIT_FULL);
    assert_int_equal(addrlimit_count(l), 4);
    /* once they have, they make room */
    assert_int_equal(admit(l, "10.0.1.1", 1000), ADDRLIMIT_OK);
    assert_int_equal(addrlimit_count(l), 1);
    /* connections keep their entries: the table cannot take a fifth address */
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof(a), "10.0.2.%d", i);
        assert_int_equal(admit(l, a, 1000), ADDRLIMIT_OK);
    }
    assert_int_equal(admit(l, "10.0.3.1", 100000), ADDRLIMIT_FULL);
    /* a known address is still served */
    assert_int_equal(admit(l, "10.0.1.1", 100000), ADDRLIMIT_OK);
    addrlimit_destroy(l);
}

static void test_overlong_address(void **state) {
    (void)state;
    struct addrlimit *l = make(1, 0, 0, 10);
    char big[200];
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        big[i] = 'x';
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(admit(l, big, 0), ADDRLIMIT_OK);
    assert_int_equal(admit(l, big, 0), ADDRLIMIT_CONNECTIONS);
    addrlimit_release(l, big, 0);
    assert_int_equal(addrlimit_count(l), 0);
    addrlimit_destroy(l);
}

static void test_top(void **state) {
    (void)state;
    struct addrlimit *l = make(100, 0, 0, 100);
    static const char *const addrs[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"};
    static const int conns[] = {2, 5, 1, 3};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < conns[i]; k++)
            assert_int_equal(admit(l, addrs[i], 0), ADDRLIMIT_OK);
    struct addrlimit_usage top[3];
    assert_int_equal(addrlimit_top(l, top, 3), 3);
    assert_string_equal(top[0].addr, "10.0.0.2");
    assert_int_equal(top[0].connections, 5);
    assert_string_equal(top[1].addr, "10.0.0.4");
    assert_string_equal(top[2].addr, "10.0.0.1");
    assert_int_equal(top[2].connections, 2);
    struct addrlimit_usage all[8];
    assert_int_equal(addrlimit_top(l, all, 8), 4);
    assert_string_equal(all[3].addr, "10.0.0.3");
    assert_int_equal(addrlimit_top(l, all, 0), 0);
    addrlimit_destroy(l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connections_per_address),
        cmocka_unit_test(test_rate_and_burst),
        cmocka_unit_test(test_connection_cap_keeps_tokens),
        cmocka_unit_test(test_idle_state_is_freed),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_overlong_address),
        cmocka_unit_test(test_top),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
