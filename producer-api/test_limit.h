/*
 * test_limit — how many test deliveries (POST /api/v1/webhooks/{id}/test) run at once: at most TEST_LIMIT_TOTAL
 * in the process and TEST_LIMIT_PER_ORG for one organization. Past either, the request gets 429 with
 * Retry-After instead of a thread.
 *
 * Why: each test delivery runs on a thread of its own for up to DELIVERY_TIMEOUT (its request is suspended, so no
 * HTTP thread waits). Unbounded, one organization posting 500 tests at once to a receiver that hangs made 370
 * threads and 478 MB of RSS in two seconds, on the way to running the process out of memory. The per-organization
 * cap keeps one organization from taking every slot.
 *
 * Ownership: the caller frees with test_limit_free. Thread contract: any thread (a mutex guards the counts).
 */
#ifndef HOOKD_TEST_LIMIT_H
#define HOOKD_TEST_LIMIT_H

#define TEST_LIMIT_TOTAL 64
#define TEST_LIMIT_PER_ORG 4

typedef struct test_limit test_limit;

/* A limiter with every slot free. NULL when out of memory. */
test_limit *test_limit_new(void);

/* Frees l (every slot must have been given back). NULL is ignored. */
void test_limit_free(test_limit *l);

/* Takes a slot for org. Returns 0, or -1 when the process or org is at its limit (nothing taken). */
int test_limit_take(test_limit *l, long long org);

/* Gives back a slot test_limit_take gave org. */
void test_limit_give(test_limit *l, long long org);

#endif
