/* Unit tests for common/retry_policy.c and common/retry_record.c: schedules, jitter, Retry-After, codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "retry_policy.h"
#include "retry_record.h"

#include <stdlib.h>
#include <string.h>

static void default_schedule_has_ten_retries_in_ten_tiers(void **state)
{
    (void)state;
    retry_policy p;
    char err[128];
    assert_int_equal(retry_policy_parse(RETRY_DEFAULT_SCHEDULE, &p, err, sizeof err), 0);
    assert_int_equal(p.steps, 10);
    assert_int_equal(p.tiers, 10);
    assert_string_equal(p.tier_name[0], "5s");
    assert_string_equal(p.tier_name[2], "2m");
    assert_string_equal(p.tier_name[5], "1h");
    assert_string_equal(p.tier_name[9], "12h");
    long long total = 0;
    for (int i = 0; i < p.steps; i++)
        total += p.delay_ms[i];
    assert_true(total > 27LL * 3600 * 1000 && total < 28LL * 3600 * 1000); /* "about a day" */
}

static void repeated_delays_share_one_tier(void **state)
{
    (void)state;
    retry_policy p;
    char err[128];
    assert_int_equal(retry_policy_parse("1s, 1s,1s", &p, err, sizeof err), 0);
    assert_int_equal(p.steps, 3);
    assert_int_equal(p.tiers, 1);
    assert_string_equal(p.tier_name[0], "1s");
    assert_int_equal(retry_tier_for_attempt(&p, 1), 0);
    assert_int_equal(retry_tier_for_attempt(&p, 3), 0);
    assert_int_equal(retry_tier_for_attempt(&p, 4), -1); /* the 4th attempt was the last: dead letter */
    assert_int_equal(retry_next_delay_ms(&p, 4, 0.5, 0), -1);

    assert_int_equal(retry_policy_parse("2m,500ms,90s", &p, err, sizeof err), 0);
    assert_int_equal(p.tiers, 3);
    assert_string_equal(p.tier_name[0], "500ms");
    assert_string_equal(p.tier_name[1], "90s");
    assert_string_equal(p.tier_name[2], "2m");
    assert_int_equal(retry_tier_for_attempt(&p, 1), 2);
    assert_int_equal(retry_tier_for_attempt(&p, 2), 0);

    assert_int_equal(retry_policy_parse("none", &p, err, sizeof err), 0);
    assert_int_equal(p.steps, 0);
}

static void bad_schedules_are_refused(void **state)
{
    (void)state;
    retry_policy p;
    char err[128];
    static const char *const bad[] = {"", ",", "5s,,", "0s", "5x", "-1s", "8d", "soon"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(retry_policy_parse(bad[i], &p, err, sizeof err), -1);
        assert_true(err[0] != '\0');
    }
}

static void jitter_stays_within_twenty_percent_and_retry_after_wins(void **state)
{
    (void)state;
    retry_policy p;
    char err[128];
    assert_int_equal(retry_policy_parse("10s,1m", &p, err, sizeof err), 0);
    assert_int_equal(retry_next_delay_ms(&p, 1, 0.0, 0), 8000);
    assert_int_equal(retry_next_delay_ms(&p, 1, 0.999999, 0), 11999);
    assert_int_equal(retry_next_delay_ms(&p, 2, 0.5, 0), 60000);
    assert_int_equal(retry_next_delay_ms(&p, 1, 0.5, 30000), 30000);
    assert_int_equal(retry_next_delay_ms(&p, 1, 0.5, 5LL * 3600 * 1000), RETRY_AFTER_CAP_MS);
}

static void retry_after_seconds_and_dates(void **state)
{
    (void)state;
    int64_t now = 1445412480000LL; /* Wed, 21 Oct 2015 07:28:00 GMT */
    assert_int_equal(retry_after_parse_ms("120", now), 120000);
    assert_int_equal(retry_after_parse_ms(" 0 ", now), 0);
    assert_int_equal(retry_after_parse_ms("999999999999", now), RETRY_AFTER_CAP_MS);
    assert_int_equal(retry_after_parse_ms("Wed, 21 Oct 2015 07:28:30 GMT", now), 30000);
    assert_int_equal(retry_after_parse_ms("Wed, 21 Oct 2015 07:27:00 GMT", now), 0);
    assert_int_equal(retry_after_parse_ms("Thu, 22 Oct 2015 07:28:00 GMT", now), RETRY_AFTER_CAP_MS);
    assert_int_equal(retry_after_parse_ms("-5", now), -1);
    assert_int_equal(retry_after_parse_ms("5s", now), -1);
    assert_int_equal(retry_after_parse_ms("tomorrow", now), -1);
    assert_int_equal(retry_after_parse_ms("", now), -1);
    assert_int_equal(retry_after_parse_ms(NULL, now), -1);
}

static void retry_record_round_trips(void **state)
{
    (void)state;
    retry_record rec;
    memset(&rec, 0, sizeof rec);
    const char *env_text = "{\"id\":\"e1\",\"type\":\"user.created\",\"organization_id\":9,"
                           "\"occurred_at\":\"2026-11-29T01:02:03.000Z\",\"data\":{\"id\":5}}";
    char err[160];
    assert_int_equal(envelope_decode(env_text, strlen(env_text), &rec.env, err, sizeof err), 0);
    rec.webhook_id = 17;
    rec.attempt = 2;
    rec.due_ms = 1795917445123LL;
    attempt_record a = {.attempt = 1, .at_ms = 1795917440000LL, .status = 503, .latency_ms = 12.5};
    snprintf(a.error, sizeof a.error, "HTTP status 503");
    retry_record_add_attempt(&rec, &a);
    snprintf(rec.reason, sizeof rec.reason, "gave up after 4 attempts");
    snprintf(rec.webhook_url, sizeof rec.webhook_url, "https://example.com/h");
    rec.dead_ms = 1795917449000LL;

    size_t len = 0;
    char *text = retry_record_encode(&rec, &len);
    assert_non_null(text);
    retry_record back;
    assert_int_equal(retry_record_decode(text, len, &back, err, sizeof err), 0);
    assert_string_equal(back.env.id, "e1");
    assert_int_equal(back.env.organization_id, 9);
    assert_int_equal(back.webhook_id, 17);
    assert_int_equal(back.attempt, 2);
    assert_int_equal(back.due_ms, 1795917445123LL);
    assert_int_equal(back.attempt_count, 1);
    assert_int_equal(back.attempts[0].status, 503);
    assert_string_equal(back.attempts[0].error, "HTTP status 503");
    assert_string_equal(back.reason, "gave up after 4 attempts");
    assert_string_equal(back.webhook_url, "https://example.com/h");
    assert_int_equal(back.dead_ms, 1795917449000LL);
    free(text);
    retry_record_clear(&back);
    retry_record_clear(&rec);

    assert_int_equal(retry_record_decode("{}", 2, &back, err, sizeof err), -1);
    assert_int_equal(retry_record_decode("nope", 4, &back, err, sizeof err), -1);
}

static void history_keeps_the_newest_attempts(void **state)
{
    (void)state;
    retry_record rec;
    memset(&rec, 0, sizeof rec);
    for (int i = 1; i <= RETRY_RECORD_MAX_ATTEMPTS + 3; i++) {
        attempt_record a = {.attempt = i};
        retry_record_add_attempt(&rec, &a);
    }
    assert_int_equal(rec.attempt_count, RETRY_RECORD_MAX_ATTEMPTS);
    assert_int_equal(rec.attempts[0].attempt, 4);
    assert_int_equal(rec.attempts[RETRY_RECORD_MAX_ATTEMPTS - 1].attempt, RETRY_RECORD_MAX_ATTEMPTS + 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_schedule_has_ten_retries_in_ten_tiers),
        cmocka_unit_test(repeated_delays_share_one_tier),
        cmocka_unit_test(bad_schedules_are_refused),
        cmocka_unit_test(jitter_stays_within_twenty_percent_and_retry_after_wins),
        cmocka_unit_test(retry_after_seconds_and_dates),
        cmocka_unit_test(retry_record_round_trips),
        cmocka_unit_test(history_keeps_the_newest_attempts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
