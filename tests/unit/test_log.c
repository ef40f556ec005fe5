/* Unit tests for common/log.c: line format and the per-thread batching (cmocka). stderr is pointed at a
 * SOCK_SEQPACKET socket, so each write(2) arrives as one record and write boundaries can be checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log.h"
#include "stderr_capture.h"

#include <stdio.h>
#include <string.h>

static void log_numbered(int i)
{
    log_line l;
    if (log_line_begin(&l, LOG_INFO, "delivery attempt")) {
        json_buf_key(&l.fields, "n");
        json_buf_int(&l.fields, i);
        log_line_end(&l);
    }
}

static void test_unbatched_lines_go_out_one_write_each(void **state)
{
    (void)state;
    char buf[70000];
    log_numbered(1);
    log_json(LOG_WARN, "hello", "{s:i}", "x", 2);
    log_line l;
    assert_int_equal(log_line_begin(&l, LOG_DEBUG, "below the level"), 0); /* nothing written */
    log_numbered(3);
    assert_true(stderr_capture_next(buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "\"msg\":\"delivery attempt\",\"n\":1}\n"));
    assert_non_null(strstr(buf, "\"service\":\"test\""));
    assert_true(stderr_capture_next(buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "\"level\":\"warn\""));
    assert_non_null(strstr(buf, "\"x\":2"));
    assert_true(stderr_capture_next(buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "\"n\":3}\n"));
    assert_int_equal(stderr_capture_next(buf, sizeof buf), -1);
}

static void test_batch_waits_for_flush_and_keeps_order(void **state)
{
    (void)state;
    char buf[70000];
    log_batch_begin();
    log_numbered(1);
    log_json(LOG_INFO, "in between", NULL);
    log_numbered(2);
    assert_int_equal(stderr_capture_next(buf, sizeof buf), -1); /* nothing written yet */
    log_flush();
    ssize_t n = stderr_capture_next(buf, sizeof buf);
    assert_true(n > 0);
    const char *a = strstr(buf, "\"n\":1}\n");
    const char *b = strstr(buf, "\"msg\":\"in between\"");
    const char *c = strstr(buf, "\"n\":2}\n");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    assert_int_equal(buf[n - 1], '\n');
    assert_int_equal(stderr_capture_next(buf, sizeof buf), -1); /* one write for the three lines */
    log_flush();                                       /* nothing pending: no empty write */
    assert_int_equal(stderr_capture_next(buf, sizeof buf), -1);
    log_batch_end();
}

static void test_batch_writes_whole_lines_up_to_pipe_buf(void **state)
{
    (void)state;
    char buf[70000];
    log_batch_begin();
    for (int i = 0; i < 200; i++) /* ~100 bytes each: several batches */
        log_numbered(i);
    log_batch_end(); /* flushes the rest and stops batching */
    int seen = 0, writes = 0;
    ssize_t n;
    while ((n = stderr_capture_next(buf, sizeof buf)) > 0) {
        writes++;
        assert_true(n <= LOG_BATCH_MAX);
        assert_int_equal(buf[n - 1], '\n'); /* whole lines only */
        for (char *p = buf; (p = strstr(p, "\"n\":")) != NULL; p++) {
            int v = -1;
            sscanf(p + 4, "%d", &v);
            assert_int_equal(v, seen); /* every line, in order */
            seen++;
        }
    }
    assert_int_equal(seen, 200);
    assert_true(writes > 1 && writes < 200);
    log_numbered(7); /* batching ended: written at once */
    assert_true(stderr_capture_next(buf, sizeof buf) > 0);
}

static void test_line_longer_than_a_batch_goes_alone(void **state)
{
    (void)state;
    char buf[70000];
    static char big[6000];
    memset(big, 'y', sizeof big - 1);
    log_batch_begin();
    log_numbered(1);
    log_json(LOG_INFO, "big", "{s:s}", "v", big);
    log_numbered(2);
    log_batch_end();
    assert_true(stderr_capture_next(buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "\"n\":1}"));
    assert_null(strstr(buf, "yyyy")); /* the small line was flushed before the big one */
    ssize_t n = stderr_capture_next(buf, sizeof buf);
    assert_true(n > (ssize_t)sizeof big);
    assert_non_null(strstr(buf, "\"msg\":\"big\""));
    assert_true(stderr_capture_next(buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "\"n\":2}"));
    assert_int_equal(stderr_capture_next(buf, sizeof buf), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unbatched_lines_go_out_one_write_each),
        cmocka_unit_test(test_batch_waits_for_flush_and_keeps_order),
        cmocka_unit_test(test_batch_writes_whole_lines_up_to_pipe_buf),
        cmocka_unit_test(test_line_longer_than_a_batch_goes_alone),
    };
    return cmocka_run_group_tests(tests, stderr_capture_setup, stderr_capture_teardown);
}
