/* Unit tests for dispatcher/subscriber_cache.c's bound (SUBSCRIBER_CACHE_MAX_ENTRIES): a full cache drops the entry
 * looked up least recently, so organizations whose events keep coming stay cached while others come and go, and
 * the recency list stays whole through changes, whole-cache drops and loading entries. The refresher is this
 * test's own (it records what the cache asks for and answers with lists built from webhook JSON, as the
 * dispatcher's Redis thread does); the Redis side is covered end to end in tests/e2e/test_delivery.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher_metrics.h"
#include "subscriber_cache.h"

#define ASKED_MAX 4096

typedef struct fixture {
    dispatcher_metrics *dm;
    subscriber_cache *cache;
    subscription_key asked[ASKED_MAX]; /* what the cache asked the refresher for, in order */
    size_t asked_count;
} fixture;

static void record_ask(void *ctx, subscription_key key)
{
    fixture *f = ctx;
    assert_true(f->asked_count < ASKED_MAX);
    f->asked[f->asked_count++] = key;
}

static fixture *fixture_new(size_t max_entries)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dm = dm_new();
    assert_non_null(f->dm);
    f->cache = subscriber_cache_new(NULL, f->dm, 60000, max_entries, record_ask, f);
    assert_non_null(f->cache);
    return f;
}

static void fixture_free(fixture *f)
{
    subscriber_cache_free(f->cache);
    dm_free(f->dm);
    free(f);
}

/* How many times the refresher was asked for org's list (type 0). */
static size_t asks_for(const fixture *f, long long org)
{
    size_t n = 0;
    for (size_t i = 0; i < f->asked_count; i++)
        if (f->asked[i].org == org && f->asked[i].type == 0)
            n++;
    return n;
}

/* The refresher's answer for org: one webhook whose id is org * 10. */
static void answer(fixture *f, long long org)
{
    json_t *items = json_pack("[{s:I, s:s, s:s}]", "id", (json_int_t)(org * 10), "url", "https://receiver.example/h",
                              "secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_non_null(items);
    subscriber_refresh r = {.key = {org, 0}, .list = subscriber_list_from_json(items)};
    json_decref(items);
    assert_non_null(r.list);
    subscriber_cache_apply_refreshes(f->cache, &r, 1);
    assert_null(r.list); /* taken: installed, or released when its entry is gone */
}

/* Looks org up: 1 when its list is cached (and checked), 0 when not (the refresher is asked). */
static int lookup(fixture *f, long long org)
{
    subscriber_list *list = NULL;
    if (subscriber_cache_get(f->cache, org, 0, &list) != 0)
        return 0;
    assert_non_null(list);
    assert_int_equal(list->count, 1);
    assert_int_equal(list->items[0].id, org * 10);
    subscriber_list_release(list);
    return 1;
}

/* A miss, answered: org is cached afterwards. */
static void load(fixture *f, long long org)
{
    assert_int_equal(lookup(f, org), 0);
    answer(f, org);
    assert_int_equal(lookup(f, org), 1);
}

static void test_a_full_cache_drops_the_entry_looked_up_least_recently(void **state)
{
    (void)state;
    fixture *f = fixture_new(3);
    load(f, 1);
    load(f, 2);
    load(f, 3);
    assert_int_equal(lookup(f, 1), 1); /* 2 is now the least recently looked up */
    load(f, 4);
    assert_int_equal(subscriber_cache_size(f->cache), 3);
    assert_int_equal(metric_value(f->dm->cache_evictions), 1);
    assert_int_equal(lookup(f, 1), 1);
    assert_int_equal(lookup(f, 3), 1);
    assert_int_equal(lookup(f, 4), 1);
    assert_int_equal(asks_for(f, 1) + asks_for(f, 3) + asks_for(f, 4), 3); /* each read once */
    assert_int_equal(lookup(f, 2), 0); /* 2 went: a miss, asked again */
    assert_int_equal(asks_for(f, 2), 2);
    fixture_free(f);
}

static void test_busy_organizations_stay_cached_while_others_come_and_go(void **state)
{
    (void)state;
    fixture *f = fixture_new(8);
    for (long long hot = 1; hot <= 4; hot++)
        load(f, hot);
    long long cold = 1000;
    for (int round = 0; round < 100; round++) {
        for (long long hot = 1; hot <= 4; hot++)
            assert_int_equal(lookup(f, hot), 1);
        load(f, cold++);
        load(f, cold++);
        assert_true(subscriber_cache_size(f->cache) <= 8);
    }
    for (long long hot = 1; hot <= 4; hot++)
        assert_int_equal(asks_for(f, hot), 1); /* read once in 100 rounds; dropping the whole cache when full read
                                                  * them again every other round */
    assert_int_equal(metric_value(f->dm->cache_evictions), 4 + 200 - 8);
    assert_int_equal(metric_value(f->dm->cache_misses), 4 + 200);
    assert_int_equal(metric_value(f->dm->cache_flushes), 0);
    fixture_free(f);
}

static void test_a_loading_entry_its_events_ask_for_is_kept(void **state)
{
    (void)state;
    fixture *f = fixture_new(2);
    assert_int_equal(lookup(f, 1), 0); /* loading: events of org 1 wait for it */
    load(f, 2);
    assert_int_equal(lookup(f, 1), 0); /* asked for again by its waiting events: the most recent now */
    load(f, 3);                        /* evicts 2, not the loading 1 */
    assert_int_equal(asks_for(f, 1), 1);
    answer(f, 1);
    assert_int_equal(lookup(f, 1), 1);
    answer(f, 2); /* a late answer for an entry that went is released, not installed */
    assert_int_equal(subscriber_cache_size(f->cache), 2);
    assert_int_equal(lookup(f, 2), 0);
    fixture_free(f);
}

static void test_changes_and_whole_cache_drops_keep_the_recency_list_whole(void **state)
{
    (void)state;
    fixture *f = fixture_new(3);
    subscriber_cache_apply_version(f->cache, 1, 5, 0);
    load(f, 1);
    load(f, 2);
    load(f, 3);
    subscription_changes changes = {.since = 5, .version = 6, .complete = 1};
    subscription_changes_add(&changes, (subscription_key){2, 0}); /* org 2's webhooks changed */
    subscriber_cache_apply_changes(f->cache, 1, &changes, 0);
    subscription_changes_free(&changes);
    assert_int_equal(subscriber_cache_size(f->cache), 2);
    load(f, 4); /* room left by 2: nothing evicted */
    assert_int_equal(metric_value(f->dm->cache_evictions), 0);
    load(f, 5); /* evicts 1, the least recently looked up */
    assert_int_equal(metric_value(f->dm->cache_evictions), 1);
    assert_int_equal(lookup(f, 3), 1);
    assert_int_equal(lookup(f, 4), 1);
    assert_int_equal(lookup(f, 5), 1);
    assert_int_equal(lookup(f, 1), 0);

    subscriber_cache_apply_version(f->cache, 1, 9, 0); /* changes not listed: the whole cache goes */
    assert_int_equal(subscriber_cache_size(f->cache), 0);
    for (long long org = 10; org < 20; org++)
        load(f, org);
    assert_int_equal(subscriber_cache_size(f->cache), 3);
    assert_int_equal(lookup(f, 19), 1);
    assert_int_equal(lookup(f, 17), 1);
    assert_int_equal(lookup(f, 16), 0);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_full_cache_drops_the_entry_looked_up_least_recently),
        cmocka_unit_test(test_busy_organizations_stay_cached_while_others_come_and_go),
        cmocka_unit_test(test_a_loading_entry_its_events_ask_for_is_kept),
        cmocka_unit_test(test_changes_and_whole_cache_drops_keep_the_recency_list_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
