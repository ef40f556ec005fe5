/* Unit tests for redis_sentinels_new (common/redis_sentinel.c): how REDIS_SENTINELS, REDIS_SENTINEL_MASTER and
 * REDIS_SENTINEL_PASSWORD are read. Asking real sentinels, failovers and READONLY: tests/e2e/test_redis_sentinel.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "redis_sentinel.h"

static void assert_sentinel(const redis_sentinels *s, int i, const char *host, int port)
{
    int got = 0;
    assert_string_equal(redis_sentinels_at(s, i, &got), host);
    assert_int_equal(got, port);
}

static void a_list_keeps_its_order_and_defaults_the_port(void **state)
{
    (void)state;
    char err[256] = "";
    redis_sentinels *s =
        redis_sentinels_new("sentinel-0:26380, sentinel-1 ,[fd00::1]:5000,[::1],10.0.0.7", "mymaster", NULL, NULL, err,
                            sizeof err);
    assert_non_null(s);
    assert_int_equal(redis_sentinels_count(s), 5);
    assert_sentinel(s, 0, "sentinel-0", 26380);
    assert_sentinel(s, 1, "sentinel-1", 26379);
    assert_sentinel(s, 2, "fd00::1", 5000);
    assert_sentinel(s, 3, "::1", 26379);
    assert_sentinel(s, 4, "10.0.0.7", 26379);
    assert_string_equal(redis_sentinels_master(s), "mymaster");
    redis_sentinels_free(s);
}

static void malformed_lists_are_refused_with_a_reason(void **state)
{
    (void)state;
    const char *bad[] = {
        "",              /* nothing */
        "a:1,,b:2",      /* an empty item */
        "a:1,",          /* a trailing comma */
        "::1:26379",     /* a bare IPv6 literal: which part is the port? */
        "[::1:26379",    /* an unclosed bracket */
        "[::1]x",        /* junk after the bracket */
        "h:0",           /* port out of range */
        "h:65536",
        "h:12ab",
        "h:",
        ":26379",        /* no host */
        "user@h:26379",  /* not a URL */
        "redis://h:26379",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        redis_sentinels *s = redis_sentinels_new(bad[i], "mymaster", NULL, "", err, sizeof err);
        if (s != NULL)
            fail_msg("accepted REDIS_SENTINELS=\"%s\"", bad[i]);
        assert_non_null(strstr(err, "REDIS_SENTINELS must be host[:port]"));
    }
}

static void at_most_sixteen_sentinels(void **state)
{
    (void)state;
    char list[1024] = "", err[256] = "";
    for (int i = 0; i < REDIS_SENTINELS_MAX; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%ss%d", i ? "," : "", i);
    redis_sentinels *s = redis_sentinels_new(list, "m", NULL, NULL, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(redis_sentinels_count(s), REDIS_SENTINELS_MAX);
    redis_sentinels_free(s);
    strcat(list, ",one-more");
    assert_null(redis_sentinels_new(list, "m", NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "at most 16"));
}

static void the_master_name_is_required(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(redis_sentinels_new("s:26379", NULL, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "REDIS_SENTINEL_MASTER"));
    err[0] = '\0';
    assert_null(redis_sentinels_new("s:26379", "", NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "REDIS_SENTINEL_MASTER"));
    char long_password[300];
    memset(long_password, 'p', sizeof long_password - 1);
    long_password[sizeof long_password - 1] = '\0';
    assert_null(redis_sentinels_new("s:26379", "m", NULL, long_password, err, sizeof err));
    assert_non_null(strstr(err, "REDIS_SENTINEL_PASSWORD"));
}

static void a_username_needs_a_password(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(redis_sentinels_new("s:26379", "m", "hookd", NULL, err, sizeof err));
    assert_non_null(strstr(err, "REDIS_SENTINEL_USERNAME needs REDIS_SENTINEL_PASSWORD"));
    err[0] = '\0';
    assert_null(redis_sentinels_new("s:26379", "m", "hookd", "", err, sizeof err));
    assert_non_null(strstr(err, "REDIS_SENTINEL_USERNAME needs REDIS_SENTINEL_PASSWORD"));
    redis_sentinels *s = redis_sentinels_new("s:26379", "m", "hookd", "pw", err, sizeof err);
    assert_non_null(s);
    redis_sentinels_free(s);
    s = redis_sentinels_new("s:26379", "m", "", "pw", err, sizeof err); /* the default user */
    assert_non_null(s);
    redis_sentinels_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_list_keeps_its_order_and_defaults_the_port),
        cmocka_unit_test(a_username_needs_a_password),
        cmocka_unit_test(malformed_lists_are_refused_with_a_reason),
        cmocka_unit_test(at_most_sixteen_sentinels),
        cmocka_unit_test(the_master_name_is_required),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
