/* Unit tests for the string-keyed hash map in shared/hmap.c: put/get/del/replace, growth, key
 * copies, iteration and value snapshots. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int setup_map(void **state) {
    *state = hmap_create();
    return *state ? 0 : -1;
}

static int teardown_map(void **state) {
    hmap_destroy(*state);
    return 0;
}

static void test_empty(void **state) {
    struct hmap *m = *state;
    assert_int_equal(hmap_count(m), 0);
    assert_null(hmap_get(m, "a", 1));
    assert_null(hmap_del(m, "a", 1));
    void *out[4];
    assert_int_equal(hmap_values(m, out, 4), 0);
}

static void test_put_get_del(void **state) {
    struct hmap *m = *state;
    int a = 1, b = 2;
    assert_int_equal(hmap_put(m, "alpha", 5, &a), 0);
    assert_int_equal(hmap_put(m, "beta", 4, &b), 0);
    assert_int_equal(hmap_count(m), 2);
    assert_ptr_equal(hmap_get(m, "alpha", 5), &a);
    assert_ptr_equal(hmap_get(m, "beta", 4), &b);
    assert_null(hmap_get(m, "gamma", 5));

    assert_ptr_equal(hmap_del(m, "alpha", 5), &a);
    assert_int_equal(hmap_count(m), 1);
    assert_null(hmap_get(m, "alpha", 5));
    assert_null(hmap_del(m, "alpha", 5)); /* already gone */
    assert_int_equal(hmap_count(m), 1);
    assert_ptr_equal(hmap_get(m, "beta", 4), &b);

    /* A deleted key can be inserted again. */
    assert_int_equal(hmap_put(m, "alpha", 5, &b), 0);
    assert_ptr_equal(hmap_get(m, "alpha", 5), &b);
    assert_int_equal(hmap_count(m), 2);
}

static void test_replace(void **state) {
    struct hmap *m = *state;
    int a = 1, b = 2;
    assert_int_equal(hmap_put(m, "k", 1, &a), 0);
    assert_int_equal(hmap_put(m, "k", 1, &b), 0);
    assert_int_equal(hmap_count(m), 1);
    assert_ptr_equal(hmap_get(m, "k", 1), &b);
    assert_ptr_equal(hmap_del(m, "k", 1), &b);
    assert_int_equal(hmap_count(m), 0);
}

static void test_keys_are_length_delimited_and_copied(void **state) {
    struct hmap *m = *state;
    int a = 1, b = 2, c = 3, d = 4;
    char key[16];
    strcpy(key, "room-1");
    assert_int_equal(hmap_put(m, key, 6, &a), 0);
    /* The map keeps its own copy: changing the caller's buffer does not change the key. */
    strcpy(key, "XXXX-X");
    assert_ptr_equal(hmap_get(m, "room-1", 6), &a);
    assert_null(hmap_get(m, key, 6));

    /* Prefixes, embedded NULs and the empty key are distinct keys. */
    assert_int_equal(hmap_put(m, "room", 4, &b), 0);
    assert_int_equal(hmap_put(m, "ro\0om", 5, &c), 0);
    assert_int_equal(hmap_put(m, "", 0, &d), 0);
    assert_int_equal(hmap_count(m), 4);
    assert_ptr_equal(hmap_get(m, "room-1", 6), &a);
    assert_ptr_equal(hmap_get(m, "room-1", 4), &b);
    assert_ptr_equal(hmap_get(m, "ro\0om", 5), &c);
    assert_null(hmap_get(m, "ro", 2));
    assert_ptr_equal(hmap_get(m, "", 0), &d);
    assert_ptr_equal(hmap_get(m, "anything", 0), &d);
}

static void test_null_value_is_stored(void **state) {
    struct hmap *m = *state;
    assert_int_equal(hmap_put(m, "n", 1, NULL), 0);
    assert_int_equal(hmap_count(m), 1);
    assert_null(hmap_get(m, "n", 1));
    assert_null(hmap_del(m, "n", 1));
    assert_int_equal(hmap_count(m), 0);
}

#define MANY 5000

static void test_growth(void **state) {
    struct hmap *m = *state;
    static int values[MANY];
    char key[32];
    for (int i = 0; i < MANY; i++) {
        values[i] = i;
        int n = snprintf(key, sizeof(key), "node-a#%d", i);
        assert_int_equal(hmap_put(m, key, (size_t)n, &values[i]), 0);
        assert_int_equal(hmap_count(m), (size_t)i + 1);
        /* Entries inserted before a resize are still found after it. */
        if (i == 63 || i == 64 || i == 65 || i == 1000 || i == 1025)
            for (int k = 0; k <= i; k++) {
                int kn = snprintf(key, sizeof(key), "node-a#%d", k);
                assert_ptr_equal(hmap_get(m, key, (size_t)kn), &values[k]);
            }
    }
    for (int i = 0; i < MANY; i++) {
        int n = snprintf(key, sizeof(key), "node-a#%d", i);
        assert_ptr_equal(hmap_get(m, key, (size_t)n), &values[i]);
    }
    assert_null(hmap_get(m, "node-a#5000", 11));

    /* Replacing after growth does not duplicate. */
    assert_int_equal(hmap_put(m, "node-a#1234", 11, &values[0]), 0);
    assert_int_equal(hmap_count(m), MANY);
    assert_ptr_equal(hmap_get(m, "node-a#1234", 11), &values[0]);

    /* Delete the even ones; the odd ones stay. */
    for (int i = 0; i < MANY; i += 2) {
        int n = snprintf(key, sizeof(key), "node-a#%d", i);
        void *v = hmap_del(m, key, (size_t)n);
        assert_ptr_equal(v, i == 1234 ? &values[0] : &values[i]);
    }
    assert_int_equal(hmap_count(m), MANY / 2);
    for (int i = 0; i < MANY; i++) {
        int n = snprintf(key, sizeof(key), "node-a#%d", i);
        if (i % 2)
            assert_ptr_equal(hmap_get(m, key, (size_t)n), &values[i]);
        else
            assert_null(hmap_get(m, key, (size_t)n));
    }
}

static void test_values(void **state) {
    struct hmap *m = *state;
    static int values[1500];
    char key[32];
    for (int i = 0; i < 1500; i++) {
        values[i] = i;
        int n = snprintf(key, sizeof(key), "dev-%d", i);
        assert_int_equal(hmap_put(m, key, (size_t)n, &values[i]), 0);
    }

    /* All values, each exactly once. */
    void **out = calloc(1600, sizeof(*out));
    assert_non_null(out);
    assert_int_equal(hmap_values(m, out, 1600), 1500);
    char seen[1500] = {0};
    for (int i = 0; i < 1500; i++) {
        int *v = out[i];
        assert_true(v >= values && v < values + 1500);
        assert_int_equal(seen[*v], 0);
        seen[*v] = 1;
    }

    /* Capped at cap, never writing past it. */
    for (int i = 0; i < 1600; i++)
        out[i] = NULL;
    assert_int_equal(hmap_values(m, out, 10), 10);
    for (int i = 0; i < 10; i++)
        assert_non_null(out[i]);
    assert_null(out[10]);
    assert_int_equal(hmap_values(m, out, 0), 0);

    /* The snapshot stays usable while the map is emptied through it. */
    assert_int_equal(hmap_values(m, out, 1600), 1500);
    for (int i = 0; i < 1500; i++) {
        int n = snprintf(key, sizeof(key), "dev-%d", *(int *)out[i]);
        assert_ptr_equal(hmap_del(m, key, (size_t)n), out[i]);
    }
    assert_int_equal(hmap_count(m), 0);
    assert_int_equal(hmap_values(m, out, 1600), 0);
    free(out);
}

struct each_acc {
    size_t calls;
    long sum;
    int key_ok;
};

static void each_fn(const char *key, void *value, void *arg) {
    struct each_acc *acc = arg;
    int v = *(int *)value;
    char want[16];
    snprintf(want, sizeof(want), "k%d", v);
    if (strcmp(key, want) != 0) /* keys are handed out NUL-terminated */
        acc->key_ok = 0;
    acc->calls++;
    acc->sum += v;
}

static void test_each(void **state) {
    struct hmap *m = *state;
    static int values[200];
    long want = 0;
    for (int i = 0; i < 200; i++) {
        char key[16];
        values[i] = i;
        want += i;
        int n = snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(hmap_put(m, key, (size_t)n, &values[i]), 0);
    }
    struct each_acc acc = {0, 0, 1};
    hmap_each(m, each_fn, &acc);
    assert_int_equal(acc.calls, 200);
    assert_int_equal(acc.sum, want);
    assert_true(acc.key_ok);
}

static void test_destroy_null(void **state) {
    (void)state;
    hmap_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup_map, teardown_map),
        cmocka_unit_test_setup_teardown(test_put_get_del, setup_map, teardown_map),
        cmocka_unit_test_setup_teardown(test_replace, setup_map, teardown_map),
        cmocka_unit_test_setup_teardown(test_keys_are_length_delimited_and_copied, setup_map,
                                        teardown_map),
        cmocka_unit_test_setup_teardown(test_null_value_is_stored, setup_map, teardown_map),
        cmocka_unit_test_setup_teardown(test_growth, setup_map, teardown_map),
        cmocka_unit_test_setup_teardown(test_values, setup_map, teardown_map),
        cmocka_unit_test_setup_teardown(test_each, setup_map, teardown_map),
        cmocka_unit_test(test_destroy_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
