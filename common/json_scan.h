/*
 * json_scan — validates JSON text without building a tree, and hands out the members of the top-level object as
 * spans of the input.
 *
 * Why it exists: the dispatcher parsed every event envelope into a jansson tree and serialised `data` again for
 * the delivery body; that was 23 % of its CPU and most of its allocations (docs/BENCHMARKS.md). With this scanner
 * an envelope costs one pass over its bytes and the body is spliced from the input's own `data` bytes. The same
 * holds for producer-api's POST /api/v1/events, where jansson was 64 % of the CPU of a batch of 500 events.
 *
 * What "valid" means is jansson 2.14's json_loadb(JSON_REJECT_DUPLICATES) on an object, so the dispatcher accepts
 * exactly the envelopes it accepted before (tests/fuzz/fuzz_json_scan.c compares the two on arbitrary input):
 *   - RFC 8259 grammar; whitespace is space, tab, CR and LF; nothing but whitespace after the value;
 *   - strings: UTF-8 without overlong forms, surrogates or code points above U+10FFFF; no control characters
 *     below 0x20; escapes \" \\ \/ \b \f \n \r \t \uXXXX, surrogate pairs only as pairs, no \u0000;
 *   - integers (no fraction or exponent) must fit in a signed 64-bit integer; reals must not overflow a double;
 *   - no two keys of one object equal once decoded (at any depth);
 *   - at most 2048 levels: a value nested in n arrays or objects has depth n + 1.
 *
 * Stateless and thread-safe; the spans borrow the caller's buffer.
 */
#ifndef HOOKD_JSON_SCAN_H
#define HOOKD_JSON_SCAN_H

#include <stddef.h>

#define JSON_SCAN_MAX_DEPTH 2048

typedef enum json_scan_kind {
    JSON_SCAN_OBJECT,
    JSON_SCAN_ARRAY,
    JSON_SCAN_STRING,
    JSON_SCAN_INTEGER,
    JSON_SCAN_REAL,
    JSON_SCAN_TRUE,
    JSON_SCAN_FALSE,
    JSON_SCAN_NULL
} json_scan_kind;

/* A piece of the input. Strings: the text between the quotes, escapes not decoded. Everything else: the value's
 * whole text, from its first byte to its last (objects and arrays include their brackets). */
typedef struct json_scan_span {
    const char *start; /* borrowed from the scanned buffer */
    size_t len;
    json_scan_kind kind;
    int escaped; /* strings: 1 when the text contains a backslash */
} json_scan_span;

/* Called for every member of the top-level object, in input order, as soon as the member's value has been scanned.
 * Return 0 to go on, anything else to stop the scan (json_scan_object() then fails with "stopped"). The scan may
 * still fail after the last call: act on the members only once json_scan_object() returned 0. */
typedef int (*json_scan_member_fn)(void *ctx, const json_scan_span *key, const json_scan_span *value);

/* Validates buf[0, len) as one JSON object (see the rules above) and reports its top-level members to member
 * (may be NULL). Returns 0 when valid, or -1 with a reason (and the byte offset) in err. Allocates only for
 * objects of more than 64 keys or nesting deeper than 64 levels. */
int json_scan_object(const char *buf, size_t len, json_scan_member_fn member, void *ctx, char *err, size_t errlen);

/* json_scan_object without the duplicate-key rule (as jansson's json_loadb without JSON_REJECT_DUPLICATES; with
 * json_scan_pick the last of equal keys wins, as in jansson): for documents from a trusted producer where the
 * check is pure cost. librdkafka's statistics (~40 keys per partition object, ~80 KB) spent more than half of
 * their scan sorting keys. Everything else is validated as by json_scan_object; nothing is allocated. */
int json_scan_object_lenient(const char *buf, size_t len, json_scan_member_fn member, void *ctx, char *err,
                             size_t errlen);

/* The same for a document whose top level is an object or an array (a request body that holds one item or a
 * batch of them): for an array, member is called once per element with key NULL. */
int json_scan_document(const char *buf, size_t len, json_scan_member_fn member, void *ctx, char *err,
                       size_t errlen);

/* Reports the members of object, an object span from a successful scan (a value json_scan_object() handed out),
 * to member in input order, without validating again: strings are skipped to their closing quote and nested
 * values by counting brackets outside strings, so descending into an accepted document costs a fraction of a
 * scan. Spans are as json_scan_object() reports them. Returns 0 after the last member, the callback's nonzero
 * result (the walk stops there), or -1 when object is not of kind JSON_SCAN_OBJECT. Never reads outside the
 * span; on text no scan accepted the members reported are unspecified. */
int json_scan_members(const json_scan_span *object, json_scan_member_fn member, void *ctx);

/* Collects the members a decoder looks for, by name, as a json_scan_member_fn: pass json_scan_pick_member and a
 * json_scan_pick (names and count set, the rest zeroed) to json_scan_object(). Later duplicates cannot occur (the
 * scan refuses them); members not named are skipped. */
#define JSON_SCAN_PICK_MAX 16
typedef struct json_scan_pick {
    const char *const *names;            /* borrowed, count entries */
    int count;                           /* at most JSON_SCAN_PICK_MAX */
    json_scan_span span[JSON_SCAN_PICK_MAX]; /* span[i]: the value of names[i], when picked */
    unsigned seen;                       /* bit i: names[i] was found */
} json_scan_pick;

int json_scan_pick_member(void *ctx, const json_scan_span *key, const json_scan_span *value);

/* 1 when names[i] was found, else 0. */
int json_scan_picked(const json_scan_pick *p, int i);

/* Copies text[0, len), a JSON value json_scan accepted, into out (room for len bytes) without the whitespace
 * between tokens; strings are copied byte for byte, escapes as written. Returns the length written (no NUL). */
size_t json_scan_compact(char *out, const char *text, size_t len);

/* 1 when the string span, decoded, is exactly the NUL-terminated text plain; else 0. */
int json_scan_string_equals(const json_scan_span *s, const char *plain);

/* Decodes a string span (from a successful scan) into out, NUL-terminated. Returns the decoded length, or -1
 * when it needs more than cap - 1 bytes (out is then left empty). */
long json_scan_string_decode(const json_scan_span *s, char *out, size_t cap);

/* Parses an integer span (from a successful scan). Returns 0, or -1 when s is not JSON_SCAN_INTEGER. */
int json_scan_integer(const json_scan_span *s, long long *out);

#endif
