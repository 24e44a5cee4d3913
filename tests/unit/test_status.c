/* test_status.c - the pure parts of /status.json (status.h): which rooms a search finds and which
 * of the ranked rooms a page shows. */
#include "status.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_matches(void **state) {
    (void)state;
    assert_true(status_room_matches("ABC123", "", NULL)); /* no search: every room */
    assert_true(status_room_matches("ABC123", "abc", NULL));
    assert_true(status_room_matches("ABC123", "C12", NULL));
    assert_true(status_room_matches("ABC123", "ABC123", NULL));
    assert_false(status_room_matches("ABC123", "ABC1234", NULL));
    assert_false(status_room_matches("ABC123", "x", NULL));
    /* a device id: the device's room, whatever its id */
    assert_true(status_room_matches("lobby", "phone-1", "lobby"));
    assert_false(status_room_matches("other", "phone-1", "lobby"));
}

static void test_page_span(void **state) {
    (void)state;
    long per = 5, page = 0, pages = 0;
    /* 13 rooms, 5 a page: 3 pages, the last with 3 */
    assert_int_equal(status_page_span(13, 1, &per, &page, &pages), 0);
    assert_int_equal(page, 1);
    assert_int_equal(pages, 3);
    assert_int_equal(status_page_span(13, 3, &per, &page, &pages), 10);
    assert_int_equal(page, 3);
    /* past the last: the last; below the first: the first */
    assert_int_equal(status_page_span(13, 99, &per, &page, &pages), 10);
    assert_int_equal(page, 3);
    assert_int_equal(status_page_span(13, -4, &per, &page, &pages), 0);
    assert_int_equal(page, 1);
    /* exactly full pages */
    assert_int_equal(status_page_span(10, 2, &per, &page, &pages), 5);
    assert_int_equal(pages, 2);
    /* nothing found: one empty page */
    assert_int_equal(status_page_span(0, 2, &per, &page, &pages), 0);
    assert_int_equal(page, 1);
    assert_int_equal(pages, 1);
    /* a page size out of range: the default */
    per = 0;
    status_page_span(100, 1, &per, &page, &pages);
    assert_int_equal(per, STATUS_PER_PAGE_DEFAULT);
    per = STATUS_PER_PAGE_MAX + 1;
    status_page_span(1000, 2, &per, &page, &pages);
    assert_int_equal(per, STATUS_PER_PAGE_DEFAULT);
    per = STATUS_PER_PAGE_MAX;
    assert_int_equal(status_page_span(1000, 2, &per, &page, &pages), STATUS_PER_PAGE_MAX);
    assert_int_equal(pages, (1000 + STATUS_PER_PAGE_MAX - 1) / STATUS_PER_PAGE_MAX);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_page_span),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
