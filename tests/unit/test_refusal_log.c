/* Unit tests for dispatcher/refusal_log.c: the first refusal of a webhook's interval is logged on its own, the
 * rest are summed into one "deliveries refused" line per interval, and nothing counted is lost (cmocka). stderr
 * is pointed at a SOCK_SEQPACKET socket, so each written line arrives as one record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log.h"
#include "refusal_log.h"
#include "stderr_capture.h"

#include <jansson.h>
#include <string.h>

/* The next line written, parsed; NULL when nothing more was written. */
static json_t *next_line(void)
{
    char buf[8192];
    if (stderr_capture_next(buf, sizeof buf) <= 0)
        return NULL;
    json_t *line = json_loads(buf, 0, NULL);
    assert_non_null(line);
    return line;
}

static long long field_int(json_t *line, const char *key)
{
    json_t *v = json_object_get(line, key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void first_is_logged_rest_summed_per_interval(void **state)
{
    (void)state;
    refusal_log *r = refusal_log_new();
    assert_non_null(r);
    assert_int_equal(refusal_log_note(r, 7, "https://a.example/h", REFUSED_BREAKER_OPEN, 1000), 1);
    assert_int_equal(refusal_log_note(r, 9, "https://b.example/h", REFUSED_BACKLOG_FULL, 1000), 1);
    for (int i = 0; i < 500; i++)
        assert_int_equal(refusal_log_note(r, 7, "https://a.example/h", i % 5 ? REFUSED_BREAKER_OPEN
                                                                                : REFUSED_BACKLOG_FULL, 1000 + i), 0);
    for (int i = 0; i < 30; i++)
        refusal_log_note_dead(r, 7);
    refusal_log_note_dead(r, 12345); /* not counted for a webhook without refusals: nothing to attach it to */
    assert_int_equal(refusal_log_pending(r), 500);

    refusal_log_flush(r, 1000 + REFUSAL_LOG_INTERVAL_MS - 1, 0); /* the interval has not run yet */
    assert_null(next_line());

    refusal_log_flush(r, 1000 + REFUSAL_LOG_INTERVAL_MS, 0);
    json_t *line = next_line(); /* webhook 7 only: 9 had nothing after its first refusal */
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "msg")), "deliveries refused");
    assert_string_equal(json_string_value(json_object_get(line, "level")), "warn");
    assert_int_equal(field_int(line, "webhook_id"), 7);
    assert_string_equal(json_string_value(json_object_get(line, "url")), "https://a.example/h");
    assert_int_equal(field_int(line, "refused"), 500);
    assert_int_equal(field_int(line, "breaker_open"), 400);
    assert_int_equal(field_int(line, "backlog_full"), 100);
    assert_int_equal(field_int(line, "dead_lettered"), 30);
    json_decref(line);
    assert_null(next_line());
    assert_int_equal(refusal_log_pending(r), 0);

    /* 9's quiet interval forgot it: its next refusal is logged on its own again; 7 keeps being summed */
    assert_int_equal(refusal_log_note(r, 9, "https://b.example/h", REFUSED_BACKLOG_FULL, 12000), 1);
    assert_int_equal(refusal_log_note(r, 7, "https://a.example/h", REFUSED_BREAKER_OPEN, 12000), 0);
    refusal_log_flush(r, 2000 + 2 * REFUSAL_LOG_INTERVAL_MS, 0);
    line = next_line();
    assert_non_null(line);
    assert_int_equal(field_int(line, "webhook_id"), 7);
    assert_int_equal(field_int(line, "refused"), 1);
    assert_int_equal(field_int(line, "dead_lettered"), 0);
    json_decref(line);
    assert_null(next_line());

    /* 7 had a whole interval without a refusal: forgotten, so its next one is logged on its own */
    refusal_log_flush(r, 2000 + 3 * REFUSAL_LOG_INTERVAL_MS, 0);
    assert_null(next_line());
    assert_int_equal(refusal_log_note(r, 7, "https://a.example/h", REFUSED_BREAKER_OPEN, 40000), 1);
    refusal_log_free(r);
}

static void shutdown_writes_what_is_counted(void **state)
{
    (void)state;
    refusal_log *r = refusal_log_new();
    assert_non_null(r);
    for (long long id = 1; id <= 40; id++) /* more webhooks than the first allocation */
        for (int i = 0; i < 3; i++)
            refusal_log_note(r, id, "https://c.example/h", REFUSED_BREAKER_OPEN, 5);
    refusal_log_flush(r, 6, 1);
    long long total = 0;
    int lines = 0;
    json_t *line;
    while ((line = next_line()) != NULL) {
        total += field_int(line, "refused");
        lines++;
        json_decref(line);
    }
    assert_int_equal(lines, 40);
    assert_int_equal(total, 80);
    assert_int_equal(refusal_log_pending(r), 0);
    refusal_log_flush(r, 7, 1);
    assert_null(next_line());
    refusal_log_free(r);
}

/* Parked deliveries are summed per webhook into an info line of their own, not counted as refusals. */
static void parked_deliveries_get_a_line_of_their_own(void **state)
{
    (void)state;
    refusal_log *r = refusal_log_new();
    assert_non_null(r);
    assert_int_equal(refusal_log_note(r, 4, "https://p.example/h", PARKED_BACKLOGGED, 100), 1);
    for (int i = 0; i < 250; i++)
        assert_int_equal(refusal_log_note(r, 4, "https://p.example/h", PARKED_BACKLOGGED, 100 + i), 0);
    assert_int_equal(refusal_log_pending(r), 0); /* refusals only */
    refusal_log_flush(r, 100 + REFUSAL_LOG_INTERVAL_MS, 0);
    json_t *line = next_line();
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "msg")), "deliveries parked");
    assert_string_equal(json_string_value(json_object_get(line, "level")), "info");
    assert_int_equal(field_int(line, "webhook_id"), 4);
    assert_int_equal(field_int(line, "parked"), 250);
    json_decref(line);
    assert_null(next_line()); /* no "deliveries refused" line: nothing was refused */

    /* both in one interval: the first refusal still gets its own line (a webhook is parked while slow, then
     * refused once it hangs), and one summary line each */
    assert_int_equal(refusal_log_note(r, 4, "https://p.example/h", PARKED_BACKLOGGED, 11000), 0);
    assert_int_equal(refusal_log_note(r, 4, "https://p.example/h", REFUSED_BACKLOG_FULL, 11001), 1);
    assert_int_equal(refusal_log_note(r, 4, "https://p.example/h", REFUSED_BACKLOG_FULL, 11002), 0);
    refusal_log_flush(r, 100 + 2 * REFUSAL_LOG_INTERVAL_MS, 0);
    line = next_line();
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "msg")), "deliveries parked");
    assert_int_equal(field_int(line, "parked"), 1);
    json_decref(line);
    line = next_line();
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "msg")), "deliveries refused");
    assert_int_equal(field_int(line, "refused"), 1);
    assert_int_equal(field_int(line, "backlog_full"), 1);
    json_decref(line);
    assert_null(next_line());
    refusal_log_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_is_logged_rest_summed_per_interval),
        cmocka_unit_test(shutdown_writes_what_is_counted),
        cmocka_unit_test(parked_deliveries_get_a_line_of_their_own),
    };
    return cmocka_run_group_tests(tests, stderr_capture_setup, stderr_capture_teardown);
}
