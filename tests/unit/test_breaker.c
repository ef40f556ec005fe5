/* Unit tests for dispatcher/breaker.c: per-webhook cap, FIFO, stall-bounded queue, shedding, circuit breaker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "breaker.h"
#include "dispatcher_metrics.h"

enum { WAITERS = 16 };

typedef struct fixture {
    dispatcher_metrics *dm;
    breaker_table *t;
    breaker_waiter w[WAITERS];
} fixture;

static fixture *fixture_new(long cap, long queue, long failures)
{
    static fixture f;
    f.dm = dm_new();
    assert_non_null(f.dm);
    f.t = breaker_new(cap, queue, failures, f.dm);
    assert_non_null(f.t);
    return &f;
}

static void fixture_free(fixture *f)
{
    breaker_free(f->t);
    dm_free(f->dm);
}

static void test_cap_then_fifo_in_order(void **state)
{
    (void)state;
    fixture *f = fixture_new(2, 10, 0);
    assert_int_equal(breaker_admit(f->t, 7, 0, &f->w[0], 0), BREAKER_GO);
    assert_int_equal(breaker_admit(f->t, 7, 0, &f->w[1], 0), BREAKER_GO);
    assert_int_equal(breaker_admit(f->t, 7, 0, &f->w[2], 0), BREAKER_QUEUED);
    assert_int_equal(breaker_admit(f->t, 7, 0, &f->w[3], 0), BREAKER_QUEUED);
    assert_int_equal(breaker_admit(f->t, 8, 0, &f->w[4], 0), BREAKER_GO); /* another webhook is not held up */
    breaker_verdict v;
    assert_null(breaker_dequeue(f->t, 7, &v)); /* still at the cap */
    breaker_finish(f->t, 7, 1, 0, 5);
    assert_ptr_equal(breaker_dequeue(f->t, 7, &v), &f->w[2]);
    assert_int_equal(v, BREAKER_GO);
    assert_null(breaker_dequeue(f->t, 7, &v));
    breaker_finish(f->t, 7, 1, 0, 6);
    assert_ptr_equal(breaker_dequeue(f->t, 7, &v), &f->w[3]);
    fixture_free(f);
}

static void test_progressing_webhook_queues_past_the_bound(void **state)
{
    (void)state;
    fixture *f = fixture_new(1, 2, 0);
    assert_int_equal(breaker_admit(f->t, 1, 0, &f->w[0], 0), BREAKER_GO);
    for (int i = 1; i <= 6; i++) /* within BREAKER_STALL_MS of the attempt's start: a burst, not a stall */
        assert_int_equal(breaker_admit(f->t, 1, 0, &f->w[i], (BREAKER_STALL_MS / 10) * i), BREAKER_QUEUED);
    breaker_waiter *out[8];
    assert_int_equal(breaker_shed(f->t, BREAKER_STALL_MS - 1, out, 8), 0);
    /* an attempt finishing keeps it healthy */
    const int64_t t1 = BREAKER_STALL_MS * 9 / 10;
    breaker_finish(f->t, 1, 1, 0, t1);
    breaker_verdict v;
    assert_ptr_equal(breaker_dequeue(f->t, 1, &v), &f->w[1]);
    assert_int_equal(breaker_admit(f->t, 1, 0, &f->w[7], t1 + BREAKER_STALL_MS - 1), BREAKER_QUEUED);
    assert_int_equal(breaker_shed(f->t, t1 + BREAKER_STALL_MS - 1, out, 8), 0);
    fixture_free(f);
}

/* A receiver whose first answers take a second (connecting, the TLS handshake, a slow handler) is slow, not
 * hanging: its burst past the bound is held back (backlogged), not refused. It was refused at 0.5 s. */
static void test_first_answer_after_a_second_is_slow_not_stalled(void **state)
{
    (void)state;
    fixture *f = fixture_new(2, 1, 0);
    assert_int_equal(breaker_admit(f->t, 4, 0, &f->w[0], 0), BREAKER_GO);
    assert_int_equal(breaker_admit(f->t, 4, 0, &f->w[1], 0), BREAKER_GO);
    assert_int_equal(breaker_admit(f->t, 4, 0, &f->w[2], 0), BREAKER_QUEUED);
    assert_int_equal(breaker_admit(f->t, 4, 0, &f->w[3], 1000), BREAKER_QUEUED);
    breaker_waiter *out[4];
    assert_int_equal(breaker_shed(f->t, 1000, out, 4), 0);
    assert_int_equal(breaker_backlogged(f->t, 4, 1000), 1);
    assert_int_equal(breaker_stalled(f->t, 4, 1000), 0);
    /* no answer at all for BREAKER_STALL_MS: now it hangs (a partition held for it is released) */
    assert_int_equal(breaker_admit(f->t, 4, 0, &f->w[4], BREAKER_STALL_MS), BREAKER_REJECT_FULL);
    assert_int_equal(breaker_backlogged(f->t, 4, BREAKER_STALL_MS), 0);
    assert_int_equal(breaker_stalled(f->t, 4, BREAKER_STALL_MS), 1);
    assert_int_equal(breaker_stalled(f->t, 99, BREAKER_STALL_MS), 0); /* unknown: idle */
    fixture_free(f);
}

/* Backlogged: healthy (attempts finishing), FIFO at PER_WEBHOOK_QUEUE, its oldest waiter BREAKER_BACKLOG_MS old. */
static void test_backlogged_means_full_slow_and_healthy(void **state)
{
    (void)state;
    fixture *f = fixture_new(1, 3, 2);
    const int64_t t0 = 1000;
    assert_int_equal(breaker_backlogged(f->t, 5, t0), 0); /* unknown webhook */
    assert_int_equal(breaker_queued(f->t, 5), 0);
    assert_int_equal(breaker_max_queue(f->t), 3);
    assert_int_equal(breaker_admit(f->t, 5, 0, &f->w[0], t0), BREAKER_GO);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(breaker_admit(f->t, 5, 0, &f->w[i], t0 + i), BREAKER_QUEUED);
    assert_int_equal(breaker_queued(f->t, 5), 3);
    /* full, but the oldest has not waited long yet: a fast receiver empties it */
    assert_int_equal(breaker_backlogged(f->t, 5, t0 + BREAKER_BACKLOG_MS), 0);
    assert_int_equal(breaker_backlogged(f->t, 5, t0 + 1 + BREAKER_BACKLOG_MS), 1);
    /* one finishes (progress) and the oldest leaves: 2 queued, below the bound */
    const int64_t t1 = t0 + 1 + BREAKER_BACKLOG_MS;
    breaker_finish(f->t, 5, 1, 0, t1);
    breaker_verdict v;
    assert_ptr_equal(breaker_dequeue(f->t, 5, &v), &f->w[1]);
    assert_int_equal(breaker_backlogged(f->t, 5, t1), 0);
    assert_int_equal(breaker_admit(f->t, 5, 0, &f->w[4], t1), BREAKER_QUEUED); /* 3 again, head w[2] from t0+2 */
    assert_int_equal(breaker_backlogged(f->t, 5, t1 + 1), 1);
    /* stalled (no success for BREAKER_STALL_MS): not backlogged, its deliveries are refused instead */
    const int64_t t2 = t1 + BREAKER_STALL_MS;
    assert_int_equal(breaker_backlogged(f->t, 5, t2), 0);
    assert_int_equal(breaker_admit(f->t, 5, 0, &f->w[5], t2), BREAKER_REJECT_FULL);
    /* open breaker: not backlogged either */
    breaker_finish(f->t, 5, 0, 0, t2);
    assert_ptr_equal(breaker_dequeue(f->t, 5, &v), &f->w[2]);
    breaker_finish(f->t, 5, 0, 0, t2); /* second consecutive failure: open */
    assert_int_equal(breaker_open_count(f->t), 1);
    assert_int_equal(breaker_backlogged(f->t, 5, t2 + 1), 0);
    fixture_free(f);
}

/* Behind = backlogged with a FIFO that has not been empty for BREAKER_BEHIND_MS: a burst being caught up is not. */
static void test_behind_means_backlogged_for_a_second_without_emptying(void **state)
{
    (void)state;
    fixture *f = fixture_new(1, 3, 0);
    const int64_t t0 = 1000;
    breaker_verdict v;
    assert_int_equal(breaker_behind(f->t, 6, t0), 0); /* unknown webhook */
    assert_int_equal(breaker_admit(f->t, 6, 0, &f->w[0], t0), BREAKER_GO);
    for (int i = 1; i <= 3; i++) /* the FIFO is busy from t0 + 1 */
        assert_int_equal(breaker_admit(f->t, 6, 0, &f->w[i], t0 + i), BREAKER_QUEUED);
    assert_int_equal(breaker_backlogged(f->t, 6, t0 + 500), 1);
    assert_int_equal(breaker_behind(f->t, 6, t0 + 500), 0); /* may still be a burst it catches up with */
    /* the receiver answers (progress, not stalled) but the FIFO refills before it empties */
    const int64_t t1 = t0 + 900;
    breaker_finish(f->t, 6, 1, 0, t1);
    assert_ptr_equal(breaker_dequeue(f->t, 6, &v), &f->w[1]);
    assert_int_equal(v, BREAKER_GO);
    assert_int_equal(breaker_admit(f->t, 6, 0, &f->w[4], t1), BREAKER_QUEUED);
    assert_int_equal(breaker_behind(f->t, 6, t0 + BREAKER_BEHIND_MS), 0);
    assert_int_equal(breaker_behind(f->t, 6, t0 + 1 + BREAKER_BEHIND_MS), 1);
    /* the FIFO empties: the next fill starts a new second */
    int64_t t2 = t0 + 1 + BREAKER_BEHIND_MS;
    for (int i = 0; i < 4; i++) {
        breaker_finish(f->t, 6, 1, 0, t2);
        breaker_waiter *w = breaker_dequeue(f->t, 6, &v);
        if (i < 3)
            assert_non_null(w);
    }
    assert_int_equal(breaker_queued(f->t, 6), 0);
    const int64_t t3 = t2 + 10;
    assert_int_equal(breaker_admit(f->t, 6, 0, &f->w[5], t3), BREAKER_GO);
    for (int i = 6; i <= 8; i++)
        assert_int_equal(breaker_admit(f->t, 6, 0, &f->w[i], t3), BREAKER_QUEUED);
    assert_int_equal(breaker_backlogged(f->t, 6, t3 + 1 + BREAKER_BACKLOG_MS), 1);
    assert_int_equal(breaker_behind(f->t, 6, t3 + BREAKER_BEHIND_MS - 1), 0);
    assert_int_equal(breaker_behind(f->t, 6, t3 + BREAKER_BEHIND_MS), 1);
    fixture_free(f);
}

static void test_stalled_webhook_refuses_and_sheds_the_oldest(void **state)
{
    (void)state;
    fixture *f = fixture_new(1, 2, 0);
    assert_int_equal(breaker_admit(f->t, 3, 0, &f->w[0], 0), BREAKER_GO);
    for (int i = 1; i <= 5; i++)
        assert_int_equal(breaker_admit(f->t, 3, 0, &f->w[i], 10 * i), BREAKER_QUEUED);
    /* nothing finished for BREAKER_STALL_MS: stalled */
    assert_int_equal(breaker_admit(f->t, 3, 0, &f->w[6], BREAKER_STALL_MS), BREAKER_REJECT_FULL);
    breaker_waiter *out[2];
    /* 5 queued, bound 2: three shed, oldest first, in batches of the caller's size */
    assert_int_equal(breaker_shed(f->t, BREAKER_STALL_MS, out, 2), 2);
    assert_ptr_equal(out[0], &f->w[1]);
    assert_ptr_equal(out[1], &f->w[2]);
    assert_int_equal(breaker_shed(f->t, BREAKER_STALL_MS, out, 2), 1);
    assert_ptr_equal(out[0], &f->w[3]);
    assert_int_equal(breaker_shed(f->t, BREAKER_STALL_MS, out, 2), 0);
    /* below the bound a stalled webhook still queues */
    breaker_verdict v;
    assert_null(breaker_dequeue(f->t, 3, &v));
    /* the hanging attempt times out: a slot is free (the queue drains in order) but that is no progress */
    breaker_finish(f->t, 3, 0, 0, 2 * BREAKER_STALL_MS);
    assert_ptr_equal(breaker_dequeue(f->t, 3, &v), &f->w[4]);
    assert_int_equal(v, BREAKER_GO);
    assert_int_equal(breaker_admit(f->t, 3, 0, &f->w[7], 2 * BREAKER_STALL_MS), BREAKER_QUEUED); /* 2 queued */
    assert_int_equal(breaker_admit(f->t, 3, 0, &f->w[8], 2 * BREAKER_STALL_MS), BREAKER_REJECT_FULL);
    /* a success is progress: the receiver may take a burst again */
    breaker_finish(f->t, 3, 1, 0, 2 * BREAKER_STALL_MS + 1);
    assert_ptr_equal(breaker_dequeue(f->t, 3, &v), &f->w[5]);
    assert_int_equal(breaker_admit(f->t, 3, 0, &f->w[9], 2 * BREAKER_STALL_MS + 2), BREAKER_QUEUED);
    assert_int_equal(breaker_admit(f->t, 3, 0, &f->w[10], 2 * BREAKER_STALL_MS + 2), BREAKER_QUEUED); /* past it */
    fixture_free(f);
}

static void test_breaker_opens_rejects_probes_and_closes(void **state)
{
    (void)state;
    fixture *f = fixture_new(1, 10, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(breaker_admit(f->t, 9, 0, &f->w[i], i), BREAKER_GO);
        if (i == 2)
            assert_int_equal(breaker_admit(f->t, 9, 0, &f->w[3], i), BREAKER_QUEUED);
        breaker_finish(f->t, 9, 0, 0, i);
    }
    assert_int_equal(breaker_open_count(f->t), 1);
    assert_int_equal(breaker_stalled(f->t, 9, 3), 1); /* open: its deliveries are refused, not waited for */
    breaker_verdict v;
    assert_ptr_equal(breaker_dequeue(f->t, 9, &v), &f->w[3]); /* the waiter is failed at once */
    assert_int_equal(v, BREAKER_REJECT_OPEN);
    assert_int_equal(breaker_admit(f->t, 9, 0, &f->w[4], 4), BREAKER_REJECT_OPEN);
    assert_int_equal(breaker_admit(f->t, 9, 1, &f->w[5], 5), BREAKER_PROBE);
    assert_int_equal(breaker_admit(f->t, 9, 1, &f->w[6], 5), BREAKER_REJECT_OPEN); /* one probe at a time */
    breaker_finish(f->t, 9, 1, 1, 6);
    assert_int_equal(breaker_open_count(f->t), 0);
    assert_int_equal(breaker_stalled(f->t, 9, 6), 0);
    assert_int_equal(breaker_admit(f->t, 9, 0, &f->w[7], 7), BREAKER_GO);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_then_fifo_in_order),
        cmocka_unit_test(test_progressing_webhook_queues_past_the_bound),
        cmocka_unit_test(test_stalled_webhook_refuses_and_sheds_the_oldest),
        cmocka_unit_test(test_first_answer_after_a_second_is_slow_not_stalled),
        cmocka_unit_test(test_backlogged_means_full_slow_and_healthy),
        cmocka_unit_test(test_behind_means_backlogged_for_a_second_without_emptying),
        cmocka_unit_test(test_breaker_opens_rejects_probes_and_closes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
