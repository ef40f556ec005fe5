/* Unit tests for dispatcher/http1_fallback.c (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http1_fallback.h"

static void test_unknown_webhook_is_not_active(void **state)
{
    (void)state;
    http1_fallback *t = http1_fallback_new();
    assert_non_null(t);
    assert_int_equal(http1_fallback_active(t, 42, 1000), 0);
    http1_fallback_free(t);
    http1_fallback_free(NULL);
}

static void test_mark_lasts_for_the_fallback_period(void **state)
{
    (void)state;
    http1_fallback *t = http1_fallback_new();
    assert_int_equal(http1_fallback_mark(t, 42, 1000), 1);
    assert_int_equal(http1_fallback_active(t, 42, 1000), 1);
    assert_int_equal(http1_fallback_active(t, 42, 1000 + HTTP1_FALLBACK_MS - 1), 1);
    assert_int_equal(http1_fallback_active(t, 42, 1000 + HTTP1_FALLBACK_MS), 0);
    assert_int_equal(http1_fallback_active(t, 43, 1000), 0);
    http1_fallback_free(t);
}

static void test_remark_extends_and_reports_only_new_marks(void **state)
{
    (void)state;
    http1_fallback *t = http1_fallback_new();
    assert_int_equal(http1_fallback_mark(t, 7, 0), 1);
    assert_int_equal(http1_fallback_mark(t, 7, 10), 0); /* already active: no new log line */
    assert_int_equal(http1_fallback_active(t, 7, HTTP1_FALLBACK_MS + 5), 1);
    /* expired, then marked again: reported as new */
    assert_int_equal(http1_fallback_mark(t, 7, 10 + HTTP1_FALLBACK_MS), 1);
    http1_fallback_free(t);
}

static void test_bounded_table_keeps_the_newest_marks(void **state)
{
    (void)state;
    http1_fallback *t = http1_fallback_new();
    /* far more webhooks than slots: every mark must still be visible right after it is made, and nothing may
     * crash; an old mark may be forgotten (it only means HTTP/2 is tried again) */
    const long long n = 4 * HTTP1_FALLBACK_SLOTS;
    for (long long id = 1; id <= n; id++) {
        http1_fallback_mark(t, id, id);
        assert_int_equal(http1_fallback_active(t, id, id), 1);
    }
    long long remembered = 0;
    for (long long id = 1; id <= n; id++)
        remembered += http1_fallback_active(t, id, n);
    assert_true(remembered <= HTTP1_FALLBACK_SLOTS);
    assert_true(remembered >= HTTP1_FALLBACK_SLOTS / 2); /* the table is actually used, not one slot */
    /* the most recent marks survive */
    assert_int_equal(http1_fallback_active(t, n, n), 1);
    assert_int_equal(http1_fallback_active(t, n - 1, n), 1);
    http1_fallback_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_webhook_is_not_active),
        cmocka_unit_test(test_mark_lasts_for_the_fallback_period),
        cmocka_unit_test(test_remark_extends_and_reports_only_new_marks),
        cmocka_unit_test(test_bounded_table_keeps_the_newest_marks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
