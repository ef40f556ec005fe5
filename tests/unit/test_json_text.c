/* Unit tests for common/json_text.c (json_buf) and the log_line builder of common/log.c (cmocka). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "json_text.h"
#include "log.h"

/* Every byte 0x01..0x7f in a string survives a round trip through jansson's parser. */
static void test_string_escapes_round_trip(void **state)
{
    (void)state;
    char input[130], text[1024];
    size_t n = 0;
    for (int c = 1; c < 0x80; c++)
        input[n++] = (char)c;
    input[n] = '\0';
    json_buf b;
    json_buf_init(&b, text, sizeof text);
    json_buf_string(&b, input);
    assert_false(b.overflow);
    assert_int_equal(strlen(text), b.len);
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    assert_non_null(v);
    assert_string_equal(json_string_value(v), input);
    json_decref(v);
}

static void test_utf8_passes_through(void **state)
{
    (void)state;
    char text[64];
    json_buf b;
    json_buf_init(&b, text, sizeof text);
    json_buf_string(&b, "caf\xc3\xa9 \xe2\x82\xac");
    assert_string_equal(text, "\"caf\xc3\xa9 \xe2\x82\xac\"");
}

/* Bytes that are not well-formed UTF-8 become U+FFFD one byte at a time; well-formed sequences pass unchanged;
 * the result is always valid JSON (jansson rejects invalid UTF-8 on input). */
static void test_invalid_utf8_becomes_replacement_characters(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\xff" "b", "\"a\\ufffdb\""},                         /* never a UTF-8 byte */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                     /* overlong '/' */
        {"\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""},          /* overlong, 3 bytes */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},          /* a surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* above U+10FFFF */
        {"ok\xe2\x82", "\"ok\\ufffd\\ufffd\""},                 /* cut short by the end of the string */
        {"\xe2\x82x", "\"\\ufffd\\ufffdx\""},                   /* cut short by another character */
        {"\xf0\x9f\x98\x80 \xc3\xa9", "\"\xf0\x9f\x98\x80 \xc3\xa9\""}, /* well-formed: as is */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[64];
        json_buf b;
        json_buf_init(&b, text, sizeof text);
        json_buf_string(&b, cases[i].in);
        assert_false(b.overflow);
        assert_string_equal(text, cases[i].out);
        json_error_t err;
        json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
        assert_non_null(v);
        json_decref(v);
    }
}

/* JSON has no NaN or infinity: such a latency is written as 0. */
static void test_fixed1_never_writes_what_json_cannot_read(void **state)
{
    (void)state;
    const double odd[] = {NAN, INFINITY, -INFINITY, 1e300};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        char text[64];
        json_buf b;
        json_buf_init(&b, text, sizeof text);
        json_buf_fixed1(&b, odd[i]);
        assert_string_equal(text, "0");
    }
}

/* json_buf_fixed1(v) writes what snprintf("%.1f") writes. */
static void fixed1_like_printf(double v)
{
    char text[64], expected[64];
    json_buf b;
    json_buf_init(&b, text, sizeof text);
    json_buf_fixed1(&b, v);
    snprintf(expected, sizeof expected, "%.1f", v);
    assert_string_equal(text, expected);
}

/* Written by hand now: the same text as printf's %.1f (which it replaced) away from exact ties. */
static void test_fixed1_matches_printf(void **state)
{
    (void)state;
    for (int i = -20000; i <= 20000; i++) {
        fixed1_like_printf(i * 0.013 + 0.0011);
        fixed1_like_printf(i * 7.77 - 0.0013);
        fixed1_like_printf(i * 1e9 + 0.31);
        fixed1_like_printf(i / 1000.0 + 0.0004);
    }
    const double edges[] = {0.0, -0.0, -0.04, 0.04, 0.05 + 1e-9, 99.95 + 1e-9, 1e14 + 0.25, -1e14 - 0.25, 123456789012345.6};
    for (size_t k = 0; k < sizeof edges / sizeof edges[0]; k++)
        fixed1_like_printf(edges[k]);
}

static void test_object_with_keys_and_numbers(void **state)
{
    (void)state;
    char text[256];
    json_buf b;
    json_buf_init(&b, text, sizeof text);
    json_buf_raw(&b, "{", 1);
    json_buf_key(&b, "a");
    json_buf_int(&b, -42);
    json_buf_key(&b, "b");
    json_buf_string(&b, NULL);
    json_buf_key(&b, "c");
    json_buf_fixed1(&b, 12.34);
    json_buf_key(&b, "d");
    json_buf_int(&b, 9007199254740993LL);
    json_buf_raw(&b, "}", 1);
    assert_false(b.overflow);
    assert_string_equal(text, "{\"a\":-42,\"b\":null,\"c\":12.3,\"d\":9007199254740993}");
}

/* The hand-written integer formatter agrees with printf on the extremes and around powers of ten. */
static void test_integers_match_printf(void **state)
{
    (void)state;
    static const long long values[] = {0, 1, -1, 9, 10, -10, 99, 100, 1234567890123LL, -9223372036854775807LL,
                                       9223372036854775807LL, -9223372036854775807LL - 1};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char text[64], want[64];
        json_buf b;
        json_buf_init(&b, text, sizeof text);
        json_buf_int(&b, values[i]);
        snprintf(want, sizeof want, "%lld", values[i]);
        assert_false(b.overflow);
        assert_string_equal(text, want);
    }
}

static void test_overflow_stops_and_stays_terminated(void **state)
{
    (void)state;
    char text[8];
    json_buf b;
    json_buf_init(&b, text, sizeof text);
    json_buf_string(&b, "abc");     /* 5 bytes + NUL: fits */
    assert_false(b.overflow);
    json_buf_string(&b, "toolong"); /* does not fit (what did fit may stay: callers drop the text) */
    assert_true(b.overflow);
    size_t len = b.len;
    assert_true(len < sizeof text);
    assert_int_equal(text[len], '\0');
    json_buf_raw(&b, "x", 1);       /* no-op after overflow */
    json_buf_int(&b, 1);
    assert_int_equal(b.len, len);
    assert_int_equal(strncmp(text, "\"abc\"", 5), 0);
}

/* Captures what log_line_end() writes to stderr. */
static size_t capture_line(void (*fill)(void), char *out, size_t cap)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    fill();
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return n;
}

static void fill_normal(void)
{
    log_line l;
    if (log_line_begin(&l, LOG_WARN, "delivery \"attempt\"")) {
        json_buf_key(&l.fields, "url");
        json_buf_string(&l.fields, "https://example.com/a\\b");
        json_buf_key(&l.fields, "attempt");
        json_buf_int(&l.fields, 3);
        log_line_end(&l);
    }
}

static void fill_huge(void)
{
    static char big[LOG_LINE_MAX * 2];
    memset(big, 'x', sizeof big - 1);
    log_line l;
    if (log_line_begin(&l, LOG_INFO, "huge")) {
        json_buf_key(&l.fields, "big");
        json_buf_string(&l.fields, big);
        log_line_end(&l);
    }
}

static void fill_disabled(void)
{
    log_line l;
    assert_int_equal(log_line_begin(&l, LOG_DEBUG, "not written"), 0);
}

static void test_log_line_is_one_json_object(void **state)
{
    (void)state;
    assert_int_equal(log_init("unit", "info"), 0);
    char out[LOG_LINE_MAX + 64];
    size_t n = capture_line(fill_normal, out, sizeof out);
    assert_true(n > 0 && out[n - 1] == '\n');
    assert_null(memchr(out, '\n', n - 1)); /* exactly one line */
    json_error_t err;
    json_t *v = json_loads(out, 0, &err);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(v, "service")), "unit");
    assert_string_equal(json_string_value(json_object_get(v, "msg")), "delivery \"attempt\"");
    assert_string_equal(json_string_value(json_object_get(v, "url")), "https://example.com/a\\b");
    assert_int_equal(json_integer_value(json_object_get(v, "attempt")), 3);
    assert_true(strlen(json_string_value(json_object_get(v, "ts"))) == 24);
    json_decref(v);

    n = capture_line(fill_huge, out, sizeof out);
    v = json_loads(out, 0, &err);
    assert_non_null(v);
    assert_null(json_object_get(v, "big"));
    assert_string_equal(json_string_value(json_object_get(v, "log_error")), "line too long");
    assert_string_equal(json_string_value(json_object_get(v, "msg")), "huge");
    json_decref(v);

    assert_int_equal(capture_line(fill_disabled, out, sizeof out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_escapes_round_trip),
        cmocka_unit_test(test_utf8_passes_through),
        cmocka_unit_test(test_invalid_utf8_becomes_replacement_characters),
        cmocka_unit_test(test_fixed1_never_writes_what_json_cannot_read),
        cmocka_unit_test(test_fixed1_matches_printf),
        cmocka_unit_test(test_object_with_keys_and_numbers),
        cmocka_unit_test(test_integers_match_printf),
        cmocka_unit_test(test_overflow_stops_and_stays_terminated),
        cmocka_unit_test(test_log_line_is_one_json_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
