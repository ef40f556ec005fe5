/* Unit tests for dispatcher/first_contact.c (cmocka): which job scouts a new receiver, which wait, and what
 * releases them. End to end (libcurl, a real receiver): tests/e2e/test_delivery.py,
 * test_a_burst_to_a_new_receiver_resumes_the_first_connections_session. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "first_contact.h"

#define HOLD_US ((int64_t)FIRST_CONTACT_HOLD_MS * 1000)

static delivery_job jobs[8];

/* The jobs of a released chain, as indexes into jobs[], into out (up to cap); returns how many. */
static int chain(delivery_job *j, int *out, int cap)
{
    int n = 0;
    for (; j != NULL && n < cap; j = j->next)
        out[n++] = (int)(j - jobs);
    return n;
}

static void test_the_first_job_scouts_and_the_rest_wait_for_it(void **state)
{
    (void)state;
    first_contact *fc = first_contact_new();
    assert_non_null(fc);
    int slot = -1, other = -1;
    assert_int_equal(first_contact_admit(fc, 42, &jobs[0], 1000, &slot), FIRST_CONTACT_SCOUT);
    assert_true(slot >= 0);
    assert_int_equal(first_contact_admit(fc, 42, &jobs[1], 1001, &other), FIRST_CONTACT_HELD);
    assert_int_equal(first_contact_admit(fc, 42, &jobs[2], 1002, &other), FIRST_CONTACT_HELD);
    assert_int_equal(other, -1); /* only a scout gets a slot */
    assert_int_equal(first_contact_holding(fc), 1);
    assert_int_equal(first_contact_next_deadline(fc), 1000 + HOLD_US);
    int got[8];
    assert_int_equal(chain(first_contact_scout_done(fc, slot), got, 8), 2);
    assert_int_equal(got[0], 1); /* in the order they came */
    assert_int_equal(got[1], 2);
    assert_int_equal(first_contact_holding(fc), 0);
    assert_int_equal(first_contact_next_deadline(fc), 0);
    /* known from now on: every job goes at once, and a second scout_done releases nothing */
    assert_int_equal(first_contact_admit(fc, 42, &jobs[3], 5000, &other), FIRST_CONTACT_GO);
    assert_null(first_contact_scout_done(fc, slot));
    assert_null(first_contact_scout_done(fc, -1));
    first_contact_free(fc);
}

static void test_receivers_are_held_apart(void **state)
{
    (void)state;
    first_contact *fc = first_contact_new();
    int a = -1, b = -1, unused = -1;
    assert_int_equal(first_contact_admit(fc, 1, &jobs[0], 0, &a), FIRST_CONTACT_SCOUT);
    assert_int_equal(first_contact_admit(fc, 2, &jobs[1], 10, &b), FIRST_CONTACT_SCOUT);
    assert_int_equal(first_contact_admit(fc, 1, &jobs[2], 20, &unused), FIRST_CONTACT_HELD);
    assert_int_equal(first_contact_admit(fc, 2, &jobs[3], 30, &unused), FIRST_CONTACT_HELD);
    assert_int_equal(first_contact_holding(fc), 2);
    assert_int_equal(first_contact_next_deadline(fc), HOLD_US); /* receiver 1's, the earlier */
    int got[8];
    assert_int_equal(chain(first_contact_scout_done(fc, b), got, 8), 1);
    assert_int_equal(got[0], 3);
    assert_int_equal(first_contact_holding(fc), 1);
    assert_int_equal(first_contact_admit(fc, 1, &jobs[4], 40, &unused), FIRST_CONTACT_HELD); /* still scouting */
    assert_int_equal(chain(first_contact_scout_done(fc, a), got, 8), 2);
    assert_int_equal(got[0], 2);
    assert_int_equal(got[1], 4);
    first_contact_free(fc);
}

static void test_a_hold_runs_out(void **state)
{
    (void)state;
    first_contact *fc = first_contact_new();
    int slot = -1, unused = -1;
    delivery_http_session_log log;
    memset(&log, 0, sizeof log);
    assert_int_equal(first_contact_admit(fc, 7, &jobs[0], 100, &slot), FIRST_CONTACT_SCOUT);
    assert_int_equal(first_contact_admit(fc, 7, &jobs[1], 200, &unused), FIRST_CONTACT_HELD);
    assert_null(first_contact_release_due(fc, 100 + HOLD_US - 1, &log)); /* not yet */
    int got[8];
    assert_int_equal(chain(first_contact_release_due(fc, 100 + HOLD_US, &log), got, 8), 1);
    assert_int_equal(got[0], 1);
    assert_int_equal(first_contact_holding(fc), 0);
    assert_null(first_contact_scout_done(fc, slot)); /* the scout ending later changes nothing */
    assert_int_equal(first_contact_admit(fc, 7, &jobs[2], 300, &unused), FIRST_CONTACT_GO);
    first_contact_free(fc);
}

/* Two new receivers a and b, each with its scout out (jobs 0 and 2) and one job held (1 and 3). */
static void scout_two(first_contact *fc, uint64_t a, uint64_t b)
{
    int slot = -1, unused = -1;
    assert_int_equal(first_contact_admit(fc, a, &jobs[0], 0, &slot), FIRST_CONTACT_SCOUT);
    assert_int_equal(first_contact_admit(fc, a, &jobs[1], 0, &unused), FIRST_CONTACT_HELD);
    assert_int_equal(first_contact_admit(fc, b, &jobs[2], 0, &slot), FIRST_CONTACT_SCOUT);
    assert_int_equal(first_contact_admit(fc, b, &jobs[3], 0, &unused), FIRST_CONTACT_HELD);
    assert_int_equal(first_contact_holding(fc), 2);
}

static void test_a_session_kept_for_the_receiver_releases_its_jobs_only(void **state)
{
    (void)state;
    first_contact *fc = first_contact_new();
    delivery_http_session_log log;
    memset(&log, 0, sizeof log);
    scout_two(fc, 11, 12);
    assert_null(first_contact_release_due(fc, 10, &log)); /* nothing kept yet */
    log.keys[log.stored++ % DELIVERY_HTTP_SESSION_LOG] = 99; /* another receiver's session */
    log.keys[log.stored++ % DELIVERY_HTTP_SESSION_LOG] = 12;
    int got[8];
    assert_int_equal(chain(first_contact_release_due(fc, 20, &log), got, 8), 1);
    assert_int_equal(got[0], 3);
    assert_int_equal(first_contact_holding(fc), 1);
    assert_null(first_contact_release_due(fc, 30, &log)); /* those entries were seen */
    assert_null(first_contact_release_due(fc, 30, NULL));
    first_contact_free(fc);
}

static void test_a_wrapped_log_releases_every_hold(void **state)
{
    (void)state;
    first_contact *fc = first_contact_new();
    delivery_http_session_log log;
    memset(&log, 0, sizeof log);
    scout_two(fc, 21, 22);
    for (int i = 0; i < DELIVERY_HTTP_SESSION_LOG + 1; i++) /* more sessions than the log remembers */
        log.keys[log.stored++ % DELIVERY_HTTP_SESSION_LOG] = 1000 + (uint64_t)i;
    int got[8];
    assert_int_equal(chain(first_contact_release_due(fc, 1, &log), got, 8), 2);
    assert_int_equal(first_contact_holding(fc), 0);
    first_contact_free(fc);
}

static void test_a_full_table_holds_nothing(void **state)
{
    (void)state;
    first_contact *fc = first_contact_new();
    int slot = -1;
    delivery_job job;
    int scouts = 0;
    for (uint64_t k = 1; k <= FIRST_CONTACT_SLOTS; k++) {
        first_contact_verdict v = first_contact_admit(fc, k * 0x9e3779b97f4a7c15u, &job, 0, &slot);
        if (v == FIRST_CONTACT_SCOUT)
            scouts++;
        else
            assert_int_equal(v, FIRST_CONTACT_GO);
        first_contact_scout_done(fc, slot);
    }
    assert_int_equal(scouts, FIRST_CONTACT_SLOTS / 4 * 3); /* then new receivers simply go */
    assert_int_equal(first_contact_holding(fc), 0);
    first_contact_free(fc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_first_job_scouts_and_the_rest_wait_for_it),
        cmocka_unit_test(test_receivers_are_held_apart),
        cmocka_unit_test(test_a_hold_runs_out),
        cmocka_unit_test(test_a_session_kept_for_the_receiver_releases_its_jobs_only),
        cmocka_unit_test(test_a_wrapped_log_releases_every_hold),
        cmocka_unit_test(test_a_full_table_holds_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
