/* Unit tests for dispatcher/tls_sessions.c (cmocka). Resumption itself is tested end to end against a real
 * HTTPS receiver (tests/e2e/test_delivery.py, test_new_connections_resume_the_tls_session). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "delivery_http.h"
#include "tls_sessions.h"

/* The shard a receiver's URL gets, as delivery_worker.c computes it. */
static unsigned shard_of(const char *url)
{
    return tls_sessions_shard(delivery_http_authority_key(url));
}

static void test_shard_depends_on_the_authority_only(void **state)
{
    (void)state;
    unsigned a = shard_of("https://hooks.example.com/a");
    assert_true(a < TLS_SESSION_SHARDS);
    assert_int_equal(shard_of("https://hooks.example.com/b/c?d=1"), a);
    assert_int_equal(shard_of("https://hooks.example.com"), a);
    assert_int_equal(shard_of("https://hooks.example.com?x"), a);
    assert_int_equal(shard_of("https://hooks.example.com#frag"), a);
    assert_int_equal(shard_of("https://HOOKS.Example.COM/other"), a); /* host names ignore case */
}

static void test_shards_spread_receivers(void **state)
{
    (void)state;
    int used[TLS_SESSION_SHARDS] = {0};
    char url[64];
    for (int i = 0; i < 256; i++) {
        snprintf(url, sizeof url, "https://receiver-%d.example.com:8443/hook", i);
        used[shard_of(url)]++;
    }
    for (int s = 0; s < TLS_SESSION_SHARDS; s++) /* 16 on average: no shard is left out or takes most */
        assert_true(used[s] >= 4 && used[s] <= 40);
    /* the port is part of the authority: the same host on 256 ports spreads too */
    int ports[TLS_SESSION_SHARDS] = {0};
    for (int p = 0; p < 256; p++) {
        snprintf(url, sizeof url, "https://127.0.0.1:%d/", 20000 + p);
        ports[shard_of(url)]++;
    }
    int distinct = 0;
    for (int s = 0; s < TLS_SESSION_SHARDS; s++)
        distinct += ports[s] > 0;
    assert_true(distinct >= TLS_SESSION_SHARDS / 2);
    assert_true(shard_of("no scheme at all") < TLS_SESSION_SHARDS);
    assert_true(shard_of("") < TLS_SESSION_SHARDS);
}

static void test_attach_moves_a_handle_between_shards(void **state)
{
    (void)state;
    tls_sessions *cache = tls_sessions_new();
    assert_non_null(cache);
    CURL *easy = curl_easy_init();
    assert_non_null(easy);
    int current = -1;
    assert_int_equal(tls_sessions_attach(cache, easy, 3, &current), 0);
    assert_int_equal(current, 3);
    assert_int_equal(tls_sessions_attach(cache, easy, 3, &current), 0); /* already there */
    assert_int_equal(current, 3);
    assert_int_equal(tls_sessions_attach(cache, easy, 11, &current), 0);
    assert_int_equal(current, 11);
    assert_int_equal(tls_sessions_attach(cache, easy, TLS_SESSION_SHARDS, &current), -1); /* no such shard */
    assert_int_equal(current, 11);
    curl_easy_cleanup(easy); /* handles go before the cache (valgrind checks the shares are freed) */
    tls_sessions_free(cache);
    tls_sessions_free(NULL);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_depends_on_the_authority_only),
        cmocka_unit_test(test_shards_spread_receivers),
        cmocka_unit_test(test_attach_moves_a_handle_between_shards),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
