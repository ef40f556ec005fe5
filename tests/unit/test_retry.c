/* Unit tests for common/retry_policy.c and common/retry_record.c: schedules, jitter, Retry-After, codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "retry_policy.h"
#include "retry_record.h"

#include <stdio.h>
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

/* A parked delivery's record says how many times it was parked; a plain retry's says nothing (and reads as 0). */
static void retry_record_keeps_the_times_parked(void **state)
{
    (void)state;
    retry_record rec;
    memset(&rec, 0, sizeof rec);
    const char *env_text = "{\"id\":\"e2\",\"type\":\"user.created\",\"organization_id\":9,"
                           "\"occurred_at\":\"2026-11-29T01:02:03.000Z\",\"data\":{\"id\":5}}";
    char err[160];
    assert_int_equal(envelope_decode(env_text, strlen(env_text), &rec.env, err, sizeof err), 0);
    rec.webhook_id = 3;
    rec.attempt = 1;
    rec.due_ms = 1795917445123LL;
    size_t len = 0;
    char *text = retry_record_encode(&rec, &len);
    assert_non_null(text);
    assert_null(strstr(text, "parked"));
    retry_record back;
    assert_int_equal(retry_record_decode(text, len, &back, err, sizeof err), 0);
    assert_int_equal(back.parked, 0);
    free(text);
    retry_record_clear(&back);

    rec.parked = 3;
    text = retry_record_encode(&rec, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"parked\":3"));
    assert_int_equal(retry_record_decode(text, len, &back, err, sizeof err), 0);
    assert_int_equal(back.parked, 3);
    assert_int_equal(back.attempt, 1);
    assert_int_equal(back.attempt_count, 0);
    free(text);
    retry_record_clear(&back);
    retry_record_clear(&rec);
}

/* A record as releases before 2026-11-30 wrote it (jansson: data re-serialised, so "Zoë" as UTF-8): still read. */
static const char OLD_RECORD[] =
    "{\"envelope\":{\"id\":\"e1\",\"type\":\"user.created\",\"organization_id\":9,"
    "\"occurred_at\":\"2026-11-29T01:02:03.000Z\",\"data\":{\"id\":5,\"name\":\"Zo\xc3\xab \\\"q\\\"\"}},"
    "\"webhook_id\":17,\"attempt\":3,\"due_at\":\"2026-11-29T01:57:25.123Z\",\"attempts\":["
    "{\"attempt\":1,\"at\":\"2026-11-29T01:57:20.000Z\",\"status\":503,\"latency_ms\":12.5,\"error\":\"HTTP status 503\"},"
    "{\"attempt\":2,\"at\":\"2026-11-29T01:57:22.001Z\",\"status\":null,\"latency_ms\":0.0,\"error\":\"circuit breaker open\"},"
    "{\"attempt\":3,\"at\":\"2026-11-29T01:57:23.002Z\",\"status\":200,\"latency_ms\":3.0,\"error\":null}]}";

static void retry_record_reads_earlier_records_and_writes_the_same_layout(void **state)
{
    (void)state;
    retry_record rec;
    char err[160];
    assert_int_equal(retry_record_decode(OLD_RECORD, sizeof OLD_RECORD - 1, &rec, err, sizeof err), 0);
    assert_int_equal(rec.webhook_id, 17);
    assert_int_equal(rec.attempt, 3);
    assert_int_equal(rec.due_ms, 1795917445123LL);
    assert_string_equal(rec.env.data, "{\"id\":5,\"name\":\"Zo\xc3\xab \\\"q\\\"\"}");
    assert_int_equal(rec.attempt_count, 3);
    assert_int_equal(rec.attempts[0].status, 503);
    assert_true(rec.attempts[0].latency_ms == 12.5);
    assert_int_equal(rec.attempts[1].at_ms, 1795917442001LL);
    assert_int_equal(rec.attempts[1].status, 0);
    assert_string_equal(rec.attempts[1].error, "circuit breaker open");
    assert_int_equal(rec.attempts[2].status, 200);
    assert_true(rec.attempts[2].latency_ms == 3.0);
    assert_string_equal(rec.attempts[2].error, "");
    assert_string_equal(rec.webhook_url, "");
    assert_int_equal(rec.dead_ms, 0);
    /* written back: the same bytes, key order and number forms included */
    size_t len = 0;
    char *text = retry_record_encode(&rec, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_string_equal(text, OLD_RECORD);
    free(text);
    retry_record_clear(&rec);
}

/* Strings longer than their field are cut at a character boundary, and whatever a record holds encodes to JSON
 * that decodes again (invalid UTF-8 in an error text becomes U+FFFD). */
static void retry_record_strings_stay_valid_utf8(void **state)
{
    (void)state;
    char err[160], text[1024];
    char euro_run[3 * 100 + 1] = ""; /* 100 x U+20AC (3 bytes each): longer than RETRY_ERROR_MAX */
    for (int i = 0; i < 100; i++)
        strcat(euro_run, "\xe2\x82\xac");
    snprintf(text, sizeof text,
             "{\"envelope\":{\"id\":\"e1\",\"type\":\"user.created\",\"organization_id\":9,"
             "\"occurred_at\":\"2026-11-29T01:02:03Z\",\"data\":{\"id\":5}},\"webhook_id\":1,\"attempt\":2,"
             "\"due_at\":\"2026-11-29T01:57:25Z\",\"attempts\":[{\"attempt\":1,\"error\":\"x%s\"}],\"reason\":\"x%s\"}",
             euro_run, euro_run);
    retry_record rec;
    assert_int_equal(retry_record_decode(text, strlen(text), &rec, err, sizeof err), 0);
    size_t n = strlen(rec.attempts[0].error);
    assert_int_equal(n, 1 + (RETRY_ERROR_MAX - 2) / 3 * 3); /* "x" and whole characters only */
    assert_memory_equal(rec.attempts[0].error + 1, euro_run, n - 1);
    assert_int_equal(strlen(rec.reason), n);
    snprintf(rec.attempts[0].error, sizeof rec.attempts[0].error, "bad \xff\xfe bytes");
    size_t len = 0;
    char *out = retry_record_encode(&rec, &len);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"bad \\ufffd\\ufffd bytes\""));
    retry_record back;
    assert_int_equal(retry_record_decode(out, len, &back, err, sizeof err), 0);
    assert_string_equal(back.attempts[0].error, "bad \xef\xbf\xbd\xef\xbf\xbd bytes");
    assert_string_equal(back.reason, rec.reason);
    free(out);
    retry_record_clear(&back);
    retry_record_clear(&rec);
}

/* Malformed records are refused with a reason; members of an attempt with the wrong type are ignored. */
static void retry_record_refuses_malformed_records(void **state)
{
    (void)state;
#define ENV "\"envelope\":{\"id\":\"e1\",\"type\":\"user.created\",\"organization_id\":9," \
            "\"occurred_at\":\"2026-11-29T01:02:03Z\",\"data\":{\"id\":5}}"
#define DUE "\"due_at\":\"2026-11-29T01:57:25Z\""
    static const char *const bad[] = {
        "{}",
        "nope",
        "[1]",
        "{" ENV ",\"webhook_id\":1,\"attempt\":2," DUE "}",                            /* no attempts */
        "{" ENV ",\"webhook_id\":1,\"attempt\":2," DUE ",\"attempts\":{}}",            /* not an array */
        "{" ENV ",\"webhook_id\":0,\"attempt\":2," DUE ",\"attempts\":[]}",            /* webhook id */
        "{" ENV ",\"webhook_id\":\"1\",\"attempt\":2," DUE ",\"attempts\":[]}",
        "{" ENV ",\"webhook_id\":1,\"attempt\":0," DUE ",\"attempts\":[]}",            /* attempt */
        "{" ENV ",\"webhook_id\":1,\"attempt\":2.5," DUE ",\"attempts\":[]}",
        "{" ENV ",\"webhook_id\":1,\"attempt\":9999999999," DUE ",\"attempts\":[]}",
        "{" ENV ",\"webhook_id\":1,\"attempt\":2,\"due_at\":\"soon\",\"attempts\":[]}",
        "{" ENV ",\"webhook_id\":1,\"attempt\":2,\"due_at\":7,\"attempts\":[]}",
        "{\"envelope\":[],\"webhook_id\":1,\"attempt\":2," DUE ",\"attempts\":[]}",
        "{\"envelope\":{\"id\":\"e1\"},\"webhook_id\":1,\"attempt\":2," DUE ",\"attempts\":[]}",
        "{" ENV ",\"webhook_id\":1,\"webhook_id\":2,\"attempt\":2," DUE ",\"attempts\":[]}", /* duplicate */
        "{" ENV ",\"webhook_id\":1,\"attempt\":2," DUE ",\"attempts\":[]} x",
    };
    retry_record rec;
    char err[160];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(retry_record_decode(bad[i], strlen(bad[i]), &rec, err, sizeof err), -1);
        assert_true(err[0] != '\0');
        assert_null(rec.env.data);
    }
    const char *odd = "{" ENV ",\"webhook_id\":1,\"attempt\":2," DUE ",\"extra\":true,\"attempts\":["
                      "{\"attempt\":\"1\",\"status\":\"500\",\"latency_ms\":\"x\",\"error\":7,\"at\":\"then\"},4]}";
    assert_int_equal(retry_record_decode(odd, strlen(odd), &rec, err, sizeof err), 0);
    assert_int_equal(rec.attempt_count, 2);
    assert_int_equal(rec.attempts[0].attempt, 0);
    assert_int_equal(rec.attempts[0].status, 0);
    assert_true(rec.attempts[0].latency_ms == 0.0);
    assert_string_equal(rec.attempts[0].error, "");
    assert_int_equal(rec.attempts[0].at_ms, 0);
    retry_record_clear(&rec);
#undef ENV
#undef DUE
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
        cmocka_unit_test(retry_record_keeps_the_times_parked),
        cmocka_unit_test(retry_record_reads_earlier_records_and_writes_the_same_layout),
        cmocka_unit_test(retry_record_strings_stay_valid_utf8),
        cmocka_unit_test(retry_record_refuses_malformed_records),
        cmocka_unit_test(history_keeps_the_newest_attempts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
