/* Unit tests for common/offset_tracker.c (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "offset_tracker.h"

static void test_empty(void **state)
{
    (void)state;
    offset_tracker *t = offset_tracker_new();
    assert_non_null(t);
    assert_int_equal(offset_tracker_committable(t), -1);
    assert_int_equal(offset_tracker_pending(t), 0);
    assert_int_equal(offset_tracker_complete(t, 0), -1);
    offset_tracker_free(t);
    offset_tracker_free(NULL);
}

static void test_in_order(void **state)
{
    (void)state;
    offset_tracker *t = offset_tracker_new();
    for (int64_t o = 10; o < 15; o++)
        assert_int_equal(offset_tracker_add(t, o), 0);
    assert_int_equal(offset_tracker_committable(t), 10);
    assert_int_equal(offset_tracker_pending(t), 5);
    for (int64_t o = 10; o < 15; o++) {
        assert_int_equal(offset_tracker_complete(t, o), 0);
        assert_int_equal(offset_tracker_committable(t), o + 1);
    }
    assert_int_equal(offset_tracker_pending(t), 0);
    offset_tracker_free(t);
}

static void test_out_of_order(void **state)
{
    (void)state;
    offset_tracker *t = offset_tracker_new();
    for (int64_t o = 0; o < 5; o++)
        offset_tracker_add(t, o);
    assert_int_equal(offset_tracker_complete(t, 3), 0);
    assert_int_equal(offset_tracker_complete(t, 1), 0);
    assert_int_equal(offset_tracker_committable(t), 0); /* 0 still running */
    assert_int_equal(offset_tracker_complete(t, 0), 0);
    assert_int_equal(offset_tracker_committable(t), 2); /* 0, 1 done; 2 running */
    assert_int_equal(offset_tracker_complete(t, 4), 0);
    assert_int_equal(offset_tracker_committable(t), 2);
    assert_int_equal(offset_tracker_complete(t, 2), 0);
    assert_int_equal(offset_tracker_committable(t), 5);
    offset_tracker_free(t);
}

static void test_rejects(void **state)
{
    (void)state;
    offset_tracker *t = offset_tracker_new();
    assert_int_equal(offset_tracker_add(t, -1), -1);
    assert_int_equal(offset_tracker_add(t, 5), 0);
    assert_int_equal(offset_tracker_add(t, 5), -1); /* not increasing */
    assert_int_equal(offset_tracker_add(t, 4), -1);
    assert_int_equal(offset_tracker_complete(t, 6), -1); /* never added */
    assert_int_equal(offset_tracker_complete(t, 5), 0);
    assert_int_equal(offset_tracker_complete(t, 5), -1); /* twice */
    offset_tracker_free(t);
}

static void test_gaps(void **state)
{
    (void)state;
    offset_tracker *t = offset_tracker_new();
    offset_tracker_add(t, 0);
    offset_tracker_add(t, 7);  /* 1-6 compacted away */
    offset_tracker_add(t, 9);
    assert_int_equal(offset_tracker_complete(t, 8), -1); /* in the gap */
    offset_tracker_complete(t, 0);
    assert_int_equal(offset_tracker_committable(t), 7);
    offset_tracker_complete(t, 9);
    assert_int_equal(offset_tracker_committable(t), 7);
    offset_tracker_complete(t, 7);
    assert_int_equal(offset_tracker_committable(t), 10);
    offset_tracker_free(t);
}

/* A message put back (its partition waits for it): the commit point stays at it, and it may be added again. */
static void test_unadd(void **state)
{
    (void)state;
    offset_tracker *t = offset_tracker_new();
    assert_int_equal(offset_tracker_unadd(t, 0), -1); /* nothing added */
    offset_tracker_add(t, 3);
    offset_tracker_add(t, 4);
    assert_int_equal(offset_tracker_unadd(t, 3), -1); /* not the last one */
    assert_int_equal(offset_tracker_unadd(t, 5), -1); /* never added */
    assert_int_equal(offset_tracker_unadd(t, 4), 0);
    assert_int_equal(offset_tracker_pending(t), 1);
    assert_int_equal(offset_tracker_committable(t), 3);
    assert_int_equal(offset_tracker_unadd(t, 4), -1); /* twice */
    offset_tracker_complete(t, 3);
    assert_int_equal(offset_tracker_committable(t), 4); /* the put-back message, not past it */
    assert_int_equal(offset_tracker_add(t, 3), -1);     /* 3 was taken: a re-fetch of it is still refused */
    assert_int_equal(offset_tracker_add(t, 4), 0);      /* the put-back one comes again */
    assert_int_equal(offset_tracker_committable(t), 4);
    assert_int_equal(offset_tracker_complete(t, 4), 0);
    assert_int_equal(offset_tracker_unadd(t, 4), -1);   /* finished */
    assert_int_equal(offset_tracker_committable(t), 5);
    /* put back after a gap with everything before finished: the commit point is the put-back offset */
    offset_tracker_add(t, 9);
    assert_int_equal(offset_tracker_unadd(t, 9), 0);
    assert_int_equal(offset_tracker_pending(t), 0);
    assert_int_equal(offset_tracker_committable(t), 9);
    offset_tracker_free(t);
}

/* Random completion order over many wraps of the ring: the commit point always equals the lowest unfinished. */
static void test_random_against_model(void **state)
{
    (void)state;
    enum { N = 20000, WINDOW = 300 };
    offset_tracker *t = offset_tracker_new();
    static unsigned char done[N];
    srand(42);
    int64_t next_add = 0, lowest = 0;
    size_t live = 0;
    int64_t live_offsets[WINDOW];
    while (lowest < N) {
        if (next_add < N && live < WINDOW && (live == 0 || rand() % 2)) {
            assert_int_equal(offset_tracker_add(t, next_add), 0);
            live_offsets[live++] = next_add++;
        } else if (live > 0) {
            size_t k = (size_t)rand() % live;
            int64_t o = live_offsets[k];
            live_offsets[k] = live_offsets[--live];
            assert_int_equal(offset_tracker_complete(t, o), 0);
            done[o] = 1;
            while (lowest < next_add && done[lowest])
                lowest++;
        }
        assert_int_equal(offset_tracker_pending(t), live);
        assert_int_equal(offset_tracker_committable(t), lowest < next_add ? lowest : next_add);
        int64_t probe = rand() % (next_add + 2); /* anywhere up to one past the last added */
        offset_state want = probe >= next_add ? OFFSET_UNSEEN : done[probe] ? OFFSET_FINISHED : OFFSET_PENDING;
        assert_int_equal(offset_tracker_state(t, probe), want);
    }
    offset_tracker_free(t);
}

/* What a state lost with its partition knows of each offset: finished out of order, pending, skipped, unseen. */
static void test_state(void **state)
{
    (void)state;
    offset_tracker *t = offset_tracker_new();
    assert_int_equal(offset_tracker_state(t, 0), OFFSET_UNSEEN);
    for (int64_t o = 10; o <= 12; o++)
        assert_int_equal(offset_tracker_add(t, o), 0);
    assert_int_equal(offset_tracker_add(t, 15), 0); /* 13 and 14 skipped (compaction) */
    assert_int_equal(offset_tracker_complete(t, 12), 0);
    assert_int_equal(offset_tracker_state(t, 10), OFFSET_PENDING);
    assert_int_equal(offset_tracker_state(t, 11), OFFSET_PENDING);
    assert_int_equal(offset_tracker_state(t, 12), OFFSET_FINISHED); /* past the commit point, finished */
    assert_int_equal(offset_tracker_state(t, 13), OFFSET_FINISHED);
    assert_int_equal(offset_tracker_state(t, 15), OFFSET_PENDING);
    assert_int_equal(offset_tracker_state(t, 16), OFFSET_UNSEEN);
    assert_int_equal(offset_tracker_complete(t, 10), 0);
    assert_int_equal(offset_tracker_state(t, 10), OFFSET_FINISHED); /* dropped from the window */
    assert_int_equal(offset_tracker_unadd(t, 15), 0);
    assert_int_equal(offset_tracker_state(t, 15), OFFSET_UNSEEN); /* put back: it comes again */
    offset_tracker_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),       cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_out_of_order), cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_gaps),        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_unadd),       cmocka_unit_test(test_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
