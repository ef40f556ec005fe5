/* Unit tests for common/json_scan.c (cmocka). Each boundary is also put to jansson, whose rules json_scan
 * promises (json_scan.h), so a jansson upgrade that moves a boundary fails here instead of in production. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "json_scan.h"

static int jansson_accepts(const char *text, size_t len)
{
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    int ok = json_is_object(v);
    json_decref(v);
    return ok;
}

/* Asserts that json_scan and jansson both accept (want = 1) or both refuse (want = 0) text. */
static void expect_n(const char *text, size_t len, int want)
{
    char err[128] = "";
    int rc = json_scan_object(text, len, NULL, NULL, err, sizeof err);
    if ((rc == 0) != want || jansson_accepts(text, len) != want)
        fail_msg("%.*s: json_scan %s (%s), jansson %s, expected %s", (int)(len > 200 ? 200 : len), text,
                 rc == 0 ? "accepts" : "refuses", err, jansson_accepts(text, len) ? "accepts" : "refuses",
                 want ? "accept" : "refuse");
}

static void expect(const char *text, int want)
{
    expect_n(text, strlen(text), want);
}

static void test_grammar(void **state)
{
    (void)state;
    expect("{}", 1);
    expect(" \t\r\n{ } \n", 1);
    expect("{\"a\":[1,-2,3.5,-0,0e0,1E+2,1e-2,true,false,null,\"s\",{},[]]}", 1);
    expect("", 0);
    expect("[]", 0); /* not an object */
    expect("\"a\"", 0);
    expect("{\"a\":1,}", 0);
    expect("{\"a\":[1,]}", 0);
    expect("{\"a\" 1}", 0);
    expect("{a:1}", 0);
    expect("{\"a\":1}x", 0);
    expect("{\"a\":1}{}", 0);
    expect("{\"a\":tru}", 0);
    expect("{\"a\":truex}", 0);
    expect("{\"a\":nul}", 0);
    expect("{\"a\":[}", 0);
    expect("{\"a\":{]}", 0);
    expect("{\"a\":1", 0);
    expect("{\"a\":\"1}", 0);
    expect("{\"a\":1}\v", 0); /* vertical tab is not JSON whitespace */
}

static void test_numbers(void **state)
{
    (void)state;
    expect("{\"a\":9223372036854775807}", 1);
    expect("{\"a\":-9223372036854775808}", 1);
    expect("{\"a\":9223372036854775808}", 0);
    expect("{\"a\":-9223372036854775809}", 0);
    expect("{\"a\":99999999999999999999999}", 0);
    expect("{\"a\":1e308}", 1);
    expect("{\"a\":1e309}", 0);
    expect("{\"a\":-1e309}", 0);
    expect("{\"a\":1e-400}", 1); /* underflow is not an error */
    expect("{\"a\":01}", 0);
    expect("{\"a\":-01}", 0);
    expect("{\"a\":-}", 0);
    expect("{\"a\":+1}", 0);
    expect("{\"a\":.5}", 0);
    expect("{\"a\":1.}", 0);
    expect("{\"a\":1e}", 0);
    expect("{\"a\":1e+}", 0);
    expect("{\"a\":0x10}", 0);
    expect("{\"a\":NaN}", 0);
}

static void test_strings(void **state)
{
    (void)state;
    expect("{\"a\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00\"}", 1);
    expect("{\"a\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"}", 1);
    expect("{\"a\":\"\\u0000\"}", 0);
    expect("{\"a\":\"\\ud83d\"}", 0);      /* high surrogate alone */
    expect("{\"a\":\"\\ud83d\\u0041\"}", 0); /* high surrogate, then not a low one */
    expect("{\"a\":\"\\ude00\"}", 0);      /* low surrogate alone */
    expect("{\"a\":\"\\x\"}", 0);
    expect("{\"a\":\"\\u12\"}", 0);
    expect("{\"a\":\"\\u12g4\"}", 0);
    expect("{\"a\":\"\t\"}", 0);               /* raw control character */
    expect("{\"a\":\"\xc3\"}", 0);             /* truncated sequence */
    expect("{\"a\":\"\xc0\xaf\"}", 0);         /* overlong '/' */
    expect("{\"a\":\"\xe0\x80\xaf\"}", 0);     /* overlong, 3 bytes */
    expect("{\"a\":\"\xed\xa0\x80\"}", 0);     /* UTF-8 encoded surrogate */
    expect("{\"a\":\"\xf4\x90\x80\x80\"}", 0); /* above U+10FFFF */
    expect("{\"a\":\"\xff\"}", 0);
    expect_n("{\"a\":\"x\0y\"}", 10, 0);       /* raw NUL in a string */
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    expect("{\"a\":1,\"a\":2}", 0);
    expect("{\"a\":1,\"\\u0061\":2}", 0);           /* equal once decoded */
    expect("{\"\xc3\xa9\":1,\"\\u00e9\":2}", 0);     /* raw UTF-8 vs escape */
    expect("{\"a\":1,\"b\":{\"a\":2}}", 1);         /* other object */
    expect("{\"a\":{\"x\":1,\"x\":2}}", 0);         /* nested */
    expect("{\"a\":[{\"x\":1},{\"x\":2}]}", 1);
    expect("{\"ab\":1,\"a\":2,\"\":3}", 1);
    /* more keys than the pairwise check covers (sorted instead) */
    char text[2048];
    size_t n = (size_t)snprintf(text, sizeof text, "{");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\"key%d\":%d", i > 0 ? "," : "", i, i);
    snprintf(text + n, sizeof text - n, "}");
    expect(text, 1);
    snprintf(text + n, sizeof text - n, ",\"key\\u0035\\u0030\":0}"); /* "key50" again */
    expect(text, 0);
}

/* Nesting: a value inside n containers has depth n + 1, at most 2048. */
static void test_depth_limit(void **state)
{
    (void)state;
    for (int containers = 2046; containers <= 2049; containers++) {
        for (int scalar = 0; scalar <= 1; scalar++) {
            size_t cap = (size_t)containers * 8 + 64, n = 0;
            char *text = malloc(cap);
            assert_non_null(text);
            n += (size_t)snprintf(text + n, cap - n, "{\"a\":");
            for (int i = 1; i < containers; i++)
                text[n++] = '[';
            if (scalar)
                text[n++] = '1';
            for (int i = 1; i < containers; i++)
                text[n++] = ']';
            text[n++] = '}';
            int want = containers + scalar <= JSON_SCAN_MAX_DEPTH;
            if (containers == 1 && !scalar)
                want = 1;
            expect_n(text, n, want);
            free(text);
        }
    }
}

static void test_nul_after_number_refused(void **state)
{
    (void)state;
    /* jansson skips this NUL (fuzz_util.h explains why); json_scan refuses it, on purpose */
    char err[128];
    assert_int_equal(json_scan_object("{\"a\":1\0}", 8, NULL, NULL, err, sizeof err), -1);
    assert_int_equal(json_scan_object("{\"a\":true\0}", 11, NULL, NULL, err, sizeof err), -1);
}

typedef struct seen {
    int count;
    char keys[8][32];
    json_scan_span values[8];
} seen;

static int collect(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    seen *s = ctx;
    if (s->count < 8) {
        assert_true(json_scan_string_decode(key, s->keys[s->count], sizeof s->keys[0]) >= 0);
        s->values[s->count] = *value;
    }
    s->count++;
    return 0;
}

static void test_members_and_spans(void **state)
{
    (void)state;
    const char *text = " { \"id\" : \"e\\u0031\" , \"n\":-42,\"r\":2.5,\"d\": {\"id\":7, \"x\":[1,{\"y\":null}]} ,"
                       "\"t\":true,\"f\":false,\"z\":null,\"a\":[] } ";
    seen s;
    memset(&s, 0, sizeof s);
    char err[128];
    assert_int_equal(json_scan_object(text, strlen(text), collect, &s, err, sizeof err), 0);
    assert_int_equal(s.count, 8);
    const char *keys[] = {"id", "n", "r", "d", "t", "f", "z", "a"};
    const json_scan_kind kinds[] = {JSON_SCAN_STRING, JSON_SCAN_INTEGER, JSON_SCAN_REAL, JSON_SCAN_OBJECT,
                                    JSON_SCAN_TRUE, JSON_SCAN_FALSE, JSON_SCAN_NULL, JSON_SCAN_ARRAY};
    for (int i = 0; i < 8; i++) {
        assert_string_equal(s.keys[i], keys[i]);
        assert_int_equal(s.values[i].kind, kinds[i]);
    }
    char decoded[16];
    assert_int_equal(json_scan_string_decode(&s.values[0], decoded, sizeof decoded), 2);
    assert_string_equal(decoded, "e1");
    assert_true(s.values[0].escaped);
    assert_true(json_scan_string_equals(&s.values[0], "e1"));
    assert_false(json_scan_string_equals(&s.values[0], "e"));
    assert_false(json_scan_string_equals(&s.values[0], "e12"));
    assert_int_equal(json_scan_string_decode(&s.values[0], decoded, 2), -1); /* does not fit */
    assert_string_equal(decoded, "");
    long long v;
    assert_int_equal(json_scan_integer(&s.values[1], &v), 0);
    assert_int_equal(v, -42);
    assert_int_equal(json_scan_integer(&s.values[2], &v), -1);
    assert_int_equal(s.values[3].len, strlen("{\"id\":7, \"x\":[1,{\"y\":null}]}"));
    assert_memory_equal(s.values[3].start, "{\"id\":7, \"x\":[1,{\"y\":null}]}", s.values[3].len);
    assert_int_equal(s.values[7].len, 2);
}

static int stop_at_second(void *ctx, const json_scan_span *key, const json_scan_span *value);

static int count_only(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    (void)key;
    (void)value;
    ((seen *)ctx)->count++;
    return 0;
}

/* json_scan_members walks an accepted object's members as the validating scan reports them: strings with escaped
 * quotes and backslashes right before the closing quote, brackets inside strings, nested containers, whitespace
 * everywhere it may be. */
static void test_members_walk_matches_the_scan(void **state)
{
    (void)state;
    const char *texts[] = {
        "{ \"d\" : { \"s\" : \"a \\\" } ] \\\\\" , \"id\":7 ,\"x\":[1,{\"y\":\"}\"}] ,\"k\\\"\":1e3,\"z\":null } }",
        "{\"d\":{}}",
        "{\"d\":{\"a\":[[[]]],\"b\":-0,\"c\":0.5,\"t\":true,\"f\":false,\"e\":\"\\\\\",\"g\":{\"h\":{}}}}",
    };
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        const char *text = texts[t];
        seen outer, scanned, walked;
        memset(&outer, 0, sizeof outer);
        memset(&scanned, 0, sizeof scanned);
        memset(&walked, 0, sizeof walked);
        char err[128] = "";
        if (json_scan_object(text, strlen(text), collect, &outer, err, sizeof err) != 0)
            fail_msg("%s refused: %s", text, err);
        assert_true(jansson_accepts(text, strlen(text)));
        const json_scan_span *d = &outer.values[0];
        assert_int_equal(d->kind, JSON_SCAN_OBJECT);
        assert_int_equal(json_scan_object(d->start, d->len, collect, &scanned, NULL, 0), 0);
        assert_int_equal(json_scan_members(d, collect, &walked), 0);
        assert_int_equal(walked.count, scanned.count);
        for (int i = 0; i < walked.count && i < 8; i++) {
            assert_string_equal(walked.keys[i], scanned.keys[i]);
            assert_ptr_equal(walked.values[i].start, scanned.values[i].start);
            assert_int_equal(walked.values[i].len, scanned.values[i].len);
            assert_int_equal(walked.values[i].kind, scanned.values[i].kind);
            assert_int_equal(walked.values[i].escaped, scanned.values[i].escaped);
        }
    }
    int calls = 0; /* the callback's result ends the walk and is returned */
    json_scan_span object = {"{\"a\":1,\"b\":2,\"c\":3}", 19, JSON_SCAN_OBJECT, 0};
    assert_int_equal(json_scan_members(&object, stop_at_second, &calls), 1);
    assert_int_equal(calls, 2);
    json_scan_span array = {"[1]", 3, JSON_SCAN_ARRAY, 0};
    assert_int_equal(json_scan_members(&array, collect, &calls), -1);
    /* text no scan accepted: whatever is reported, nothing is read outside the span (checked under ASan) */
    const char *bad[] = {"{", "{\"", "{\"a", "{\"a\":", "{\"a\":\"", "{\"a\":{", "{\"a\":[\"]", "{,,}", "{\"a\"::}", "{\"a\\"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *copy = malloc(strlen(bad[i])); /* exactly the span: no terminator to lean on */
        assert_non_null(copy);
        memcpy(copy, bad[i], strlen(bad[i]));
        json_scan_span b = {copy, strlen(bad[i]), JSON_SCAN_OBJECT, 0};
        seen ignored;
        memset(&ignored, 0, sizeof ignored);
        json_scan_members(&b, count_only, &ignored);
        free(copy);
    }
}

static int stop_at_second(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    (void)key;
    (void)value;
    return ++*(int *)ctx == 2;
}

static void test_callback_can_stop(void **state)
{
    (void)state;
    int calls = 0;
    char err[128];
    assert_int_equal(json_scan_object("{\"a\":1,\"b\":2,\"c\":3}", 19, stop_at_second, &calls, err, sizeof err), -1);
    assert_int_equal(calls, 2);
    assert_non_null(strstr(err, "stopped"));
}

/* Strings are checked 8 bytes at a time while no byte needs a look of its own: put each kind of such byte at
 * every offset of a long string (and of a compacted copy) and let jansson say what is right. */
static void test_special_bytes_at_every_offset(void **state)
{
    (void)state;
    static const char *const specials[] = {"\x01", "\x1f", "\x7f", "\"", "\\n", "\\u00e9", "\\", "\xc3\xa9",
                                           "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xff", "\xc3", "\xed\xa0\x80", " "};
    for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
        for (int offset = 0; offset < 24; offset++) {
            char text[128], compact[128];
            int n = snprintf(text, sizeof text, "{\"key\": \"%.*s%s%.*s\"}", offset, "abcdefghijklmnopqrstuvwxyz",
                             specials[k], 17, "0123456789ABCDEFG");
            expect_n(text, (size_t)n, jansson_accepts(text, (size_t)n));
            if (jansson_accepts(text, (size_t)n)) {
                size_t c = json_scan_compact(compact, text, (size_t)n);
                json_t *a = json_loadb(text, (size_t)n, 0, NULL), *b = json_loadb(compact, c, 0, NULL);
                assert_true(json_equal(a, b));
                assert_int_equal(c, (size_t)n - 1); /* only the space after ':' goes */
                json_decref(a);
                json_decref(b);
            }
        }
    }
}

static int count_elements(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    assert_null(key);
    assert_int_equal(value->kind, JSON_SCAN_OBJECT);
    ++*(int *)ctx;
    return 0;
}

/* json_scan_document(): an object or an array at the top, elements reported with no key; the same rules inside,
 * put to jansson as the other tests do (JSON_DECODE_ANY is not what it promises: scalars stay refused). */
static void test_document_arrays(void **state)
{
    (void)state;
    static const struct { const char *text; int valid; } cases[] = {
        {"[]", 1}, {" [ {} , {\"a\":[1,2]} ] ", 1}, {"{\"a\":1}", 1}, {"[1,]", 0}, {"[{\"a\":1,\"a\":2}]", 0},
        {"[{}", 0}, {"[{}]]", 0}, {"7", 0}, {"\"s\"", 0}, {"", 0}, {"[\"\\u0000\"]", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *t = cases[i].text;
        json_t *v = json_loadb(t, strlen(t), JSON_REJECT_DUPLICATES, NULL);
        int rc = json_scan_document(t, strlen(t), NULL, NULL, NULL, 0);
        if ((rc == 0) != cases[i].valid || (v != NULL) != cases[i].valid)
            fail_msg("%s: json_scan_document %d, jansson %s", t, rc, v != NULL ? "accepts" : "refuses");
        json_decref(v);
    }
    int elements = 0;
    const char *batch = "[{\"id\":1},{\"id\":2}, {}]";
    assert_int_equal(json_scan_document(batch, strlen(batch), count_elements, &elements, NULL, 0), 0);
    assert_int_equal(elements, 3);
    assert_int_equal(json_scan_object(batch, strlen(batch), NULL, NULL, NULL, 0), -1); /* objects only there */
}

static void test_compact(void **state)
{
    (void)state;
    const char *text = " { \"a b\" : [ 1 ,\t2.50e1 , \"x\\\" \\\\\" ] ,\r\n \"c\" : { } } ";
    char out[128];
    size_t n = json_scan_compact(out, text, strlen(text));
    out[n] = '\0';
    assert_string_equal(out, "{\"a b\":[1,2.50e1,\"x\\\" \\\\\"],\"c\":{}}");
    assert_int_equal(json_scan_object(out, n, NULL, NULL, NULL, 0), 0);
}

static void test_integer_extremes(void **state)
{
    (void)state;
    json_scan_span s = {"-9223372036854775808", 20, JSON_SCAN_INTEGER, 0};
    long long v;
    assert_int_equal(json_scan_integer(&s, &v), 0);
    assert_true(v == INT64_MIN);
    json_scan_span t = {"9223372036854775807", 19, JSON_SCAN_INTEGER, 0};
    assert_int_equal(json_scan_integer(&t, &v), 0);
    assert_true(v == INT64_MAX);
}

/* json_scan_pick_member collects the named members' spans and skips the rest. */
static void test_pick_collects_named_members(void **state)
{
    (void)state;
    static const char *const names[] = {"b", "a", "missing"};
    const char *text = "{\"a\": [1, 2], \"other\": {\"b\": 1}, \"b\": \"x\\\"y\"}";
    json_scan_pick p = {.names = names, .count = 3};
    assert_int_equal(json_scan_object(text, strlen(text), json_scan_pick_member, &p, NULL, 0), 0);
    assert_true(json_scan_picked(&p, 0));
    assert_int_equal(p.span[0].kind, JSON_SCAN_STRING);
    assert_true(json_scan_string_equals(&p.span[0], "x\"y"));
    assert_true(json_scan_picked(&p, 1));
    assert_int_equal(p.span[1].kind, JSON_SCAN_ARRAY);
    assert_int_equal(p.span[1].len, 6); /* [1, 2] */
    assert_false(json_scan_picked(&p, 2));
    assert_false(json_scan_picked(&p, JSON_SCAN_PICK_MAX));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_collects_named_members),
        cmocka_unit_test(test_grammar),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_nul_after_number_refused),
        cmocka_unit_test(test_members_and_spans),
        cmocka_unit_test(test_callback_can_stop),
        cmocka_unit_test(test_members_walk_matches_the_scan),
        cmocka_unit_test(test_integer_extremes),
        cmocka_unit_test(test_document_arrays),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_special_bytes_at_every_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
