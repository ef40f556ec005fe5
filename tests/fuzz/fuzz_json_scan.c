/*
 * fuzz_json_scan — json_scan_object() against jansson on arbitrary bytes (the scanner validates every Kafka
 * message the dispatcher consumes; json_scan.h promises jansson 2.14's rules with JSON_REJECT_DUPLICATES).
 *
 * Differential: the scanner accepts exactly what json_loadb(JSON_REJECT_DUPLICATES) parses to an object; then
 * the members it reports are the object's members in order: same decoded keys (json_scan_string_decode,
 * json_scan_string_equals), values of the same kind that parse (as spans) to equal JSON values, integers equal
 * through json_scan_integer.
 * json_scan_document() likewise accepts exactly what jansson parses to an object or an array, reports an array's
 * elements in order with no key, and json_scan_compact() of anything accepted is valid, equal as a JSON value and
 * free of whitespace outside strings.
 * json_scan_object_lenient() accepts exactly what json_loadb() without JSON_REJECT_DUPLICATES parses to an object
 * (what json_scan_object accepts, plus repeated keys), and reports a member per key occurrence.
 * json_scan_members() over an accepted object, and over the objects nested in it, reports the same members with
 * the same spans as the validating scan.
 */
#include "fuzz_util.h"
#include "json_scan.h"

#include <jansson.h>

enum { MAX_MEMBERS = 256 };

typedef struct members {
    json_scan_span keys[MAX_MEMBERS], values[MAX_MEMBERS];
    size_t count;
} members;

static int collect(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    members *m = ctx;
    if (m->count < MAX_MEMBERS) {
        m->keys[m->count] = *key;
        m->values[m->count] = *value;
    }
    m->count++;
    return 0;
}

static int kind_matches(json_scan_kind kind, const json_t *v)
{
    switch (kind) {
    case JSON_SCAN_OBJECT: return json_is_object(v);
    case JSON_SCAN_ARRAY: return json_is_array(v);
    case JSON_SCAN_STRING: return json_is_string(v);
    case JSON_SCAN_INTEGER: return json_is_integer(v);
    case JSON_SCAN_REAL: return json_is_real(v);
    case JSON_SCAN_TRUE: return json_is_true(v);
    case JSON_SCAN_FALSE: return json_is_false(v);
    case JSON_SCAN_NULL: return json_is_null(v);
    }
    return 0;
}

static int count_elements(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    (void)value;
    FUZZ_CHECK(key == NULL, "array element reported with a key");
    ++*(size_t *)ctx;
    return 0;
}

typedef int (*scan_fn)(const char *, size_t, json_scan_member_fn, void *, char *, size_t);

/* When scan refused what jansson parsed: fine only if the input holds NUL bytes jansson skips (fuzz_util.h) and
 * scan accepts the input without them. */
static void refused_only_for_skipped_nuls(const uint8_t *data, size_t size, scan_fn scan, const char *name)
{
    int removed;
    size_t stripped_size;
    char *stripped = fuzz_strip_jansson_nuls(data, size, &stripped_size, &removed);
    FUZZ_CHECK(removed && scan(stripped, stripped_size, NULL, NULL, NULL, 0) == 0, "%s refused what jansson parsed",
               name);
    free(stripped);
}

static void check_document(const uint8_t *data, size_t size)
{
    size_t elements = 0;
    const char *text = (const char *)data;
    int rc = json_scan_document(text, size, NULL, NULL, NULL, 0);
    json_t *root = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
    if (rc != 0 && root != NULL) {
        refused_only_for_skipped_nuls(data, size, json_scan_document, "json_scan_document");
        json_decref(root);
        return;
    }
    FUZZ_CHECK((rc == 0) == (root != NULL), "json_scan_document %d, jansson %s", rc, root ? "parsed" : "refused");
    if (rc != 0)
        return;
    if (json_is_array(root)) {
        FUZZ_CHECK(json_scan_document(text, size, count_elements, &elements, NULL, 0) == 0, "second scan");
        FUZZ_CHECK(elements == json_array_size(root), "%zu elements, jansson %zu", elements, json_array_size(root));
    }
    char *compact = malloc(size + 1);
    FUZZ_CHECK(compact != NULL, "malloc");
    size_t n = json_scan_compact(compact, text, size);
    FUZZ_CHECK(n <= size && json_scan_document(compact, n, NULL, NULL, NULL, 0) == 0, "compact text refused");
    json_t *again = json_loadb(compact, n, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(json_equal(again, root), "compact text differs: %.*s", (int)n, compact);
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        if (in_string && compact[i] == '\\')
            i++;
        else if (compact[i] == '"')
            in_string = !in_string;
        else
            FUZZ_CHECK(in_string || (compact[i] != ' ' && compact[i] != '\n' && compact[i] != '\r' &&
                                     compact[i] != '\t'),
                       "whitespace left at %zu", i);
    }
    json_decref(again);
    json_decref(root);
    free(compact);
}

static int count_members(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    (void)value;
    FUZZ_CHECK(key != NULL, "object member reported without a key");
    ++*(size_t *)ctx;
    return 0;
}

static int is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int same_span(const json_scan_span *a, const json_scan_span *b)
{
    return a->start == b->start && a->len == b->len && a->kind == b->kind && a->escaped == b->escaped;
}

/* json_scan_members over an accepted object (text[0, size) with its surrounding whitespace) reports exactly the
 * members json_scan_object reported, and so for every object value nested in it, to a few levels. */
static void check_members_walk(const char *text, size_t size, const members *expected, int depth)
{
    static members walked[4];
    size_t first = 0, last = size;
    while (first < size && is_json_ws(text[first]))
        first++;
    while (last > first && is_json_ws(text[last - 1]))
        last--;
    json_scan_span object = {text + first, last - first, JSON_SCAN_OBJECT, 0};
    members *w = &walked[depth];
    w->count = 0;
    FUZZ_CHECK(json_scan_members(&object, collect, w) == 0, "json_scan_members failed");
    FUZZ_CHECK(w->count == expected->count, "json_scan_members: %zu members, json_scan_object %zu", w->count,
               expected->count);
    for (size_t i = 0; i < w->count && i < MAX_MEMBERS; i++) {
        FUZZ_CHECK(same_span(&w->keys[i], &expected->keys[i]), "json_scan_members: key %zu differs", i);
        FUZZ_CHECK(same_span(&w->values[i], &expected->values[i]), "json_scan_members: value %zu differs", i);
    }
    if (depth + 1 >= 4)
        return;
    static members nested[4];
    for (size_t i = 0; i < w->count && i < MAX_MEMBERS; i++) {
        const json_scan_span *v = &w->values[i];
        if (v->kind != JSON_SCAN_OBJECT)
            continue;
        members *n = &nested[depth];
        n->count = 0;
        FUZZ_CHECK(json_scan_object_lenient(v->start, v->len, collect, n, NULL, 0) == 0, "nested object refused");
        check_members_walk(v->start, v->len, n, depth + 1);
    }
}

/* json_scan_object_lenient against jansson with repeated keys allowed. */
static void check_lenient(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t reported = 0;
    int rc = json_scan_object_lenient(text, size, count_members, &reported, NULL, 0);
    json_t *root = json_loadb(text, size, 0, NULL);
    int jansson_ok = root != NULL && json_is_object(root);
    if (rc != 0 && jansson_ok) {
        refused_only_for_skipped_nuls(data, size, json_scan_object_lenient, "json_scan_object_lenient");
    } else {
        FUZZ_CHECK((rc == 0) == jansson_ok, "json_scan_object_lenient %d, jansson %s", rc,
                   jansson_ok ? "object" : "refused");
        if (rc == 0) /* repeated keys are reported each time; jansson keeps one */
            FUZZ_CHECK(reported >= json_object_size(root), "%zu members, jansson %zu", reported,
                       json_object_size(root));
        if (rc == 0 && json_scan_object(text, size, NULL, NULL, NULL, 0) == 0)
            FUZZ_CHECK(reported == json_object_size(root), "%zu members without repeats, jansson %zu", reported,
                       json_object_size(root));
    }
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static members m;
    check_document(data, size);
    check_lenient(data, size);
    char err[96];
    memset(err, 'x', sizeof err);
    m.count = 0;
    int rc = json_scan_object((const char *)data, size, collect, &m, err, sizeof err);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    int jansson_ok = root != NULL && json_is_object(root);
    if (rc != 0 && jansson_ok) { /* allowed only for the NUL bytes jansson skips (fuzz_util.h) */
        size_t stripped_size;
        int removed;
        char *stripped = fuzz_strip_jansson_nuls(data, size, &stripped_size, &removed);
        FUZZ_CHECK(removed, "json_scan refused (%s) what jansson parsed", err);
        FUZZ_CHECK(json_scan_object(stripped, stripped_size, NULL, NULL, err, sizeof err) == 0,
                   "json_scan refused (%s) jansson's input without its skipped NULs", err);
        free(stripped);
        json_decref(root);
        return 0;
    }
    FUZZ_CHECK((rc == 0) == jansson_ok, "json_scan %d (%s), jansson %s (%s)", rc, rc != 0 ? err : "",
               jansson_ok ? "object" : "refused", root == NULL ? jerr.text : "not an object");
    if (rc != 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL, "errbuf not terminated");
        json_decref(root);
        return 0;
    }
    FUZZ_CHECK(m.count == json_object_size(root), "%zu members, jansson %zu", m.count, json_object_size(root));
    check_members_walk((const char *)data, size, &m, 0);
    size_t i = 0;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (i >= MAX_MEMBERS)
            break;
        char decoded[512];
        long n = json_scan_string_decode(&m.keys[i], decoded, sizeof decoded);
        if (n >= 0)
            FUZZ_CHECK(strcmp(decoded, key) == 0, "key %zu: %s vs %s", i, decoded, key);
        FUZZ_CHECK(json_scan_string_equals(&m.keys[i], key), "key %zu not equal to %s", i, key);
        const json_scan_span *v = &m.values[i];
        FUZZ_CHECK(kind_matches(v->kind, value), "member %s: kind %d", key, (int)v->kind);
        if (v->kind == JSON_SCAN_STRING) {
            char *text = malloc(v->len + 1);
            FUZZ_CHECK(text != NULL, "malloc");
            long len = json_scan_string_decode(v, text, v->len + 1);
            FUZZ_CHECK(len >= 0 && (size_t)len == json_string_length(value) &&
                           memcmp(text, json_string_value(value), (size_t)len) == 0,
                       "string member %s", key);
            free(text);
        } else {
            json_t *again = json_loadb(v->start, v->len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
            FUZZ_CHECK(json_equal(again, value), "member %s: span %.*s", key, (int)v->len, v->start);
            json_decref(again);
        }
        long long integer;
        if (v->kind == JSON_SCAN_INTEGER)
            FUZZ_CHECK(json_scan_integer(v, &integer) == 0 && integer == json_integer_value(value), "integer %s",
                       key);
        else
            FUZZ_CHECK(json_scan_integer(v, &integer) == -1, "json_scan_integer on kind %d", (int)v->kind);
        i++;
    }
    json_decref(root);
    return 0;
}
