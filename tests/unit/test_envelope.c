/* Unit tests for common/envelope.c, event_types.c, uuid.c, timeutil.c and config.c: the codec and parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "envelope.h"
#include "event_types.h"
#include "timeutil.h"
#include "uuid.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void valid_event_becomes_envelope_and_round_trips(void **state)
{
    (void)state;
    const char *event = "{\"type\":\"time.entry.created\",\"organization_id\":7,\"id\":\"evt-1\","
                        "\"occurred_at\":\"2026-11-29T01:02:03+01:00\",\"data\":{\"id\":123,\"hours\":1.5}}";
    json_t *errors = json_array();
    envelope env;
    assert_int_equal(envelope_from_request(event, strlen(event), 0, -1, &env, errors), 0);
    assert_int_equal(json_array_size(errors), 0);
    assert_string_equal(env.id, "evt-1");
    assert_string_equal(event_type_name(env.type), "time.entry.created");
    assert_string_equal(env.occurred_at, "2026-11-29T00:02:03.000Z");

    size_t len = 0;
    char *text = envelope_encode(&env, &len);
    assert_string_equal(text, "{\"id\":\"evt-1\",\"type\":\"time.entry.created\",\"organization_id\":7,"
                              "\"occurred_at\":\"2026-11-29T00:02:03.000Z\",\"data\":{\"id\":123,\"hours\":1.5}}");
    envelope decoded;
    char err[128];
    assert_int_equal(envelope_decode(text, len, &decoded, err, sizeof err), 0);
    assert_string_equal(decoded.id, "evt-1");
    assert_int_equal(decoded.organization_id, 7);
    char *body = envelope_delivery_body(&decoded, &len);
    assert_string_equal(body, "{\"data\":{\"id\":123,\"hours\":1.5},\"type\":\"time.entry.created\"}");
    /* the dispatcher keeps only the body: a view of the envelope in it copies back to the same envelope */
    envelope view, copy;
    assert_int_equal(envelope_view_in_body(&decoded, body, len, &view), 0);
    assert_int_equal(view.data_len, decoded.data_len);
    assert_memory_equal(view.data, decoded.data, decoded.data_len);
    assert_int_equal(envelope_copy(&copy, &view), 0);
    assert_string_equal(copy.data, decoded.data);
    assert_string_equal(copy.id, "evt-1");
    envelope_clear(&copy);
    assert_int_equal(envelope_view_in_body(&decoded, "{\"data\":{}}", 11, &view), -1);
    assert_int_equal(envelope_view_in_body(&decoded, text, strlen(text), &view), -1);
    free(body);
    free(text);
    envelope_clear(&decoded);
    envelope_clear(&env);
    json_decref(errors);
}

/* data reaches Kafka without the whitespace between its tokens and otherwise as the client wrote it (escapes,
 * number spellings, key order); escaped member names of the event are read decoded. */
static void request_data_is_compacted_not_rewritten(void **state)
{
    (void)state;
    const char *event = " {\"t\\u0079pe\" : \"user.updated\", \"organization_id\":\t3,\r\n"
                        "  \"data\" : { \"z\" : [ 1 , 2.50 , -0 ] , \"id\" : 9, \"s\": \"a \\\" \\u00e9 \\/ b\" } , \"extra\": 1 }";
    json_t *errors = json_array();
    envelope env;
    assert_int_equal(envelope_from_request(event, strlen(event), 0, -1, &env, errors), 0);
    assert_int_equal(json_array_size(errors), 0);
    assert_string_equal(event_type_name(env.type), "user.updated");
    assert_int_equal(env.organization_id, 3);
    assert_string_equal(env.data, "{\"z\":[1,2.50,-0],\"id\":9,\"s\":\"a \\\" \\u00e9 \\/ b\"}");
    assert_int_equal(env.data_len, strlen(env.data));
    envelope_clear(&env);

    /* not one valid JSON object: refused as a whole, nothing kept */
    static const char *const not_events[] = {"", "[]", "{\"a\":1,\"a\":2}", "{\"type\":\"user.created\"", "7"};
    for (size_t i = 0; i < sizeof not_events / sizeof not_events[0]; i++) {
        assert_int_equal(envelope_from_request(not_events[i], strlen(not_events[i]), 0, 2, &env, errors), -1);
        assert_null(env.data);
    }
    char *text = json_dumps(json_array_get(errors, 0), JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(text, "{\"field\":\"event\",\"message\":\"must be a JSON object\",\"index\":2}");
    free(text);
    assert_int_equal(json_array_size(errors), 5);
    json_decref(errors);
}

/* Validates event_json with token_org and returns the errors array as compact text (caller frees). */
static char *errors_of(const char *event_json, long long token_org, int index)
{
    json_t *errors = json_array();
    envelope env;
    int rc = envelope_from_request(event_json, strlen(event_json), token_org, index, &env, errors);
    assert_int_equal(rc, json_array_size(errors) > 0 ? -1 : 0);
    char *text = json_dumps(errors, JSON_COMPACT | JSON_PRESERVE_ORDER);
    envelope_clear(&env);
    json_decref(errors);
    return text;
}

static void invalid_events_name_each_field(void **state)
{
    (void)state;
    char *text = errors_of("{\"type\":\"project.deleted\",\"organization_id\":-1,\"data\":{\"id\":\"x\"}}", 0, 3);
    assert_non_null(strstr(text, "\"field\":\"type\""));
    assert_non_null(strstr(text, "\"field\":\"organization_id\""));
    assert_non_null(strstr(text, "\"field\":\"data.id\""));
    assert_non_null(strstr(text, "\"index\":3"));
    free(text);

    text = errors_of("{\"type\":\"user.created\",\"data\":{\"id\":1}}", 0, -1);
    assert_non_null(strstr(text, "required with a service token"));
    assert_null(strstr(text, "index"));
    free(text);

    text = errors_of("{\"type\":\"user.created\",\"organization_id\":8,\"data\":{\"id\":1}}", 7, -1);
    assert_non_null(strstr(text, "your own organization"));
    free(text);

    text = errors_of("{\"type\":\"user.created\",\"data\":[],\"id\":\"has space\",\"occurred_at\":\"yesterday\"}", 7, -1);
    assert_non_null(strstr(text, "\"field\":\"data\""));
    assert_non_null(strstr(text, "\"field\":\"id\""));
    assert_non_null(strstr(text, "\"field\":\"occurred_at\""));
    free(text);

    text = errors_of("{\"type\":\"user.created\",\"data\":{\"id\":5}}", 7, -1);
    assert_string_equal(text, "[]"); /* an organization token supplies the organization */
    free(text);
}

static void decode_refuses_broken_messages(void **state)
{
    (void)state;
    static const char *const broken[] = {
        "",
        "not json",
        "[]",
        "{\"id\":\"a\",\"type\":\"project.created\",\"organization_id\":1,\"occurred_at\":\"2026-01-01T00:00:00Z\"}",
        "{\"id\":\"a\",\"type\":\"nope\",\"organization_id\":1,\"occurred_at\":\"2026-01-01T00:00:00Z\",\"data\":{\"id\":1}}",
        "{\"id\":\"a\",\"type\":\"project.created\",\"organization_id\":0,\"occurred_at\":\"2026-01-01T00:00:00Z\",\"data\":{\"id\":1}}",
        "{\"id\":\"\",\"type\":\"project.created\",\"organization_id\":1,\"occurred_at\":\"2026-01-01T00:00:00Z\",\"data\":{\"id\":1}}",
        "{\"id\":\"a\",\"type\":\"project.created\",\"organization_id\":1,\"occurred_at\":\"soon\",\"data\":{\"id\":1}}",
        "{\"id\":\"a\",\"type\":\"project.created\",\"organization_id\":1,\"occurred_at\":\"2026-01-01T00:00:00Z\",\"data\":{\"id\":1.5}}",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        envelope env;
        char err[160] = "";
        assert_int_equal(envelope_decode(broken[i], strlen(broken[i]), &env, err, sizeof err), -1);
        assert_true(err[0] != '\0');
        assert_null(env.data);
    }
}

static void event_types_and_topics(void **state)
{
    (void)state;
    char topic[64];
    assert_int_equal(event_type_index("assignment.updated"), 7);
    assert_int_equal(event_type_index("Project.created"), -1);
    assert_int_equal(event_type_index(NULL), -1);
    assert_int_equal(event_type_topic("webhooks.", 2, topic, sizeof topic), 0);
    assert_string_equal(topic, "webhooks.time.entry.created");
    assert_int_equal(event_type_topic("webhooks.", 2, topic, 8), -1);
}

static void uuid_v7_has_version_variant_and_sorts(void **state)
{
    (void)state;
    char a[UUID_TEXT_LEN + 1], b[UUID_TEXT_LEN + 1];
    assert_int_equal(uuid_v7_generate(a), 0);
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[14], '7');
    assert_non_null(strchr("89ab", a[19]));
    struct timespec pause = {0, 2000000};
    nanosleep(&pause, NULL);
    assert_int_equal(uuid_v7_generate(b), 0);
    assert_true(strcmp(a, b) < 0);
}

static int compare_ids(const void *x, const void *y)
{
    return strcmp(x, y);
}

/* Ids across many refills of the per-thread random pool: well formed, and no two alike. */
static void uuid_v7_many_are_distinct(void **state)
{
    (void)state;
    enum { N = 1000 };
    static char ids[N][UUID_TEXT_LEN + 1];
    for (int i = 0; i < N; i++) {
        assert_int_equal(uuid_v7_generate(ids[i]), 0);
        for (int k = 0; k < UUID_TEXT_LEN; k++) {
            if (k == 8 || k == 13 || k == 18 || k == 23)
                assert_int_equal(ids[i][k], '-');
            else
                assert_non_null(strchr("0123456789abcdef", ids[i][k]));
        }
        assert_int_equal(ids[i][UUID_TEXT_LEN], '\0');
        assert_int_equal(ids[i][14], '7');
    }
    qsort(ids, N, sizeof ids[0], compare_ids);
    for (int i = 1; i < N; i++)
        assert_true(strcmp(ids[i - 1], ids[i]) != 0);
}

static void rfc3339_parse_and_format(void **state)
{
    (void)state;
    int64_t ms = 0;
    char text[TIME_TEXT_MAX];
    assert_int_equal(time_parse_rfc3339("1970-01-01T00:00:01.5Z", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(time_parse_rfc3339("2026-11-29T01:02:03-02:30", &ms), 0);
    time_format_rfc3339(ms, 0, text);
    assert_string_equal(text, "2026-11-29T03:32:03Z");
    static const char *const bad[] = {"2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01", "2026-01-01T00:00:00",
                                      "2026-01-01T00:00:00Zjunk", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00.Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(time_parse_rfc3339(bad[i], &ms), -1);
}

/* The per-thread cache of the last second gives the same text as formatting from scratch: same second with
 * other milliseconds, the next second, back in time, with and without milliseconds, before 1970. */
static void rfc3339_format_reuses_the_last_second_correctly(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        int millis;
        const char *want;
    } cases[] = {
        {1796000000000LL, 1, "2026-11-30T00:53:20.000Z"}, {1796000000007LL, 1, "2026-11-30T00:53:20.007Z"},
        {1796000000999LL, 0, "2026-11-30T00:53:20Z"},     {1796000000999LL, 1, "2026-11-30T00:53:20.999Z"},
        {1796000001000LL, 1, "2026-11-30T00:53:21.000Z"}, {1796000000450LL, 1, "2026-11-30T00:53:20.450Z"},
        {-1LL, 1, "1969-12-31T23:59:59.999Z"},            {-1000LL, 1, "1969-12-31T23:59:59.000Z"},
        {0LL, 0, "1970-01-01T00:00:00Z"},                  {0LL, 1, "1970-01-01T00:00:00.000Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[TIME_TEXT_MAX];
        time_format_rfc3339(cases[i].ms, cases[i].millis, text);
        assert_string_equal(text, cases[i].want);
    }
}

static void durations_parse_with_units(void **state)
{
    (void)state;
    long long ms = 0;
    assert_int_equal(duration_parse_ms("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(duration_parse_ms("5s", &ms), 0);
    assert_int_equal(ms, 5000);
    assert_int_equal(duration_parse_ms("1.5", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(duration_parse_ms("2m", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(duration_parse_ms("12h", &ms), 0);
    assert_int_equal(ms, 43200000);
    static const char *const bad[] = {"", "s", "-1s", "5 s", "5x", "1e400", "nan", "1d2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(duration_parse_ms(bad[i], &ms), -1);
}

static void config_readers_fall_back_and_validate(void **state)
{
    (void)state;
    char err[200];
    long value = 0;
    int flag = 0;
    long long ms = 0;
    unsetenv("HOOKD_TEST_X");
    assert_int_equal(config_long("HOOKD_TEST_X", 12, 1, 100, &value, err, sizeof err), 0);
    assert_int_equal(value, 12);
    setenv("HOOKD_TEST_X", "101", 1);
    assert_int_equal(config_long("HOOKD_TEST_X", 12, 1, 100, &value, err, sizeof err), -1);
    assert_non_null(strstr(err, "HOOKD_TEST_X"));
    setenv("HOOKD_TEST_X", "yes", 1);
    assert_int_equal(config_bool("HOOKD_TEST_X", 0, &flag, err, sizeof err), 0);
    assert_int_equal(flag, 1);
    setenv("HOOKD_TEST_X", "maybe", 1);
    assert_int_equal(config_bool("HOOKD_TEST_X", 0, &flag, err, sizeof err), -1);
    setenv("HOOKD_TEST_X", "3s", 1);
    assert_int_equal(config_duration_ms("HOOKD_TEST_X", "1s", 0, 10000, &ms, err, sizeof err), 0);
    assert_int_equal(ms, 3000);
    unsetenv("HOOKD_TEST_X");

    char host[64];
    int port = 0;
    assert_int_equal(config_split_host_port("0.0.0.0:8080", host, sizeof host, &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(port, 8080);
    assert_int_equal(config_split_host_port("[::1]:9090", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(config_split_host_port("127.0.0.1:http", host, sizeof host, &port), -1);
    assert_int_equal(config_split_host_port("127.0.0.1:70000", host, sizeof host, &port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_event_becomes_envelope_and_round_trips),
        cmocka_unit_test(request_data_is_compacted_not_rewritten),
        cmocka_unit_test(invalid_events_name_each_field),
        cmocka_unit_test(decode_refuses_broken_messages),
        cmocka_unit_test(event_types_and_topics),
        cmocka_unit_test(uuid_v7_has_version_variant_and_sorts),
        cmocka_unit_test(uuid_v7_many_are_distinct),
        cmocka_unit_test(rfc3339_parse_and_format),
        cmocka_unit_test(rfc3339_format_reuses_the_last_second_correctly),
        cmocka_unit_test(durations_parse_with_units),
        cmocka_unit_test(config_readers_fall_back_and_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
