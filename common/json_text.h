/*
 * json_text — jansson values to compact text, the one way hookd serialises JSON on the wire.
 */
#ifndef HOOKD_JSON_TEXT_H
#define HOOKD_JSON_TEXT_H

#include <jansson.h>
#include <stddef.h>

/* Serialises obj compactly, keys in insertion order, and releases obj (a NULL obj gives NULL). Returns a
 * malloc'd string the caller frees, or NULL on allocation failure; *len (may be NULL) gets its length. */
char *json_text_take(json_t *obj, size_t *len);

/* Compact JSON appended to a caller's fixed buffer, for hot paths that cannot afford a jansson tree (one per
 * delivery attempt). Strings are copied byte for byte apart from escaping '"', '\\' and control characters;
 * a byte that does not start a well-formed UTF-8 sequence becomes \ufffd (at most 6 bytes out per byte in).
 * Once something does not fit, overflow is set and every later append is a no-op; data stays NUL-terminated
 * either way. */
typedef struct json_buf {
    char *data;   /* borrowed, cap bytes */
    size_t cap;
    size_t len;
    int overflow;
} json_buf;

void json_buf_init(json_buf *b, char *data, size_t cap);
/* Raw text, no escaping (for '{', '}' and already-valid JSON). */
void json_buf_raw(json_buf *b, const char *text, size_t len);
/* ,"key": — the comma is left out right after '{'. */
void json_buf_key(json_buf *b, const char *key);
/* A string literal, or null for NULL. */
void json_buf_string(json_buf *b, const char *s);
void json_buf_int(json_buf *b, long long v);
/* A number with one decimal (latencies in milliseconds); 0 for NaN, infinities and magnitudes past 1e37. */
void json_buf_fixed1(json_buf *b, double v);

#endif
