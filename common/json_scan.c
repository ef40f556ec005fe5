/* json_scan — see json_scan.h. One pass, no recursion: an explicit stack of open containers and a stack of the
 * keys of the objects still open (for the duplicate check, done when an object closes). */
#include "json_scan.h"
#include "hex.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LOCAL_FRAMES = 64, LOCAL_KEYS = 64, PAIRWISE_MAX = 16 };

/* One open array or object. */
typedef struct frame {
    const unsigned char *start; /* its '[' or '{' */
    size_t key_base;            /* objects: index of its first key in scanner.keys */
    int object;
} frame;

typedef struct scanner {
    const unsigned char *buf, *p, *end;
    char *err;
    size_t errlen;
    frame *frames; /* frame_local or malloc'd */
    size_t depth, frame_cap;
    json_scan_span *keys; /* key_local or malloc'd */
    size_t nkeys, key_cap;
    int allow_duplicates; /* json_scan_object_lenient: keys are not kept nor compared */
    frame frame_local[LOCAL_FRAMES];
    json_scan_span key_local[LOCAL_KEYS];
} scanner;

static int fail(scanner *sc, const char *what)
{
    if (sc->err != NULL && sc->errlen > 0)
        snprintf(sc->err, sc->errlen, "%s at byte %zu", what, (size_t)(sc->p - sc->buf));
    return -1;
}

/* JSON's insignificant whitespace (RFC 8259): the scanner's and the trusted walk's. */
static int is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static void skip_ws(scanner *sc)
{
    while (sc->p < sc->end && is_ws(*sc->p))
        sc->p++;
}

/* Grows a stack held in a local array first. Returns 0, or -1 when out of memory. */
static int grow(void **items, size_t *cap, size_t item_size, void *local)
{
    size_t next = *cap * 2;
    void *bigger = *items == local ? malloc(next * item_size) : realloc(*items, next * item_size);
    if (bigger == NULL)
        return -1;
    if (*items == local)
        memcpy(bigger, local, *cap * item_size);
    *items = bigger;
    *cap = next;
    return 0;
}

/* The 4 hex digits at p (p + 4 <= end), or -1. */
static long hex4(const unsigned char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_digit_value(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return n;
}

/* 1 when none of the 8 bytes in v needs a look of its own inside a string: no control character (< 0x20), no
 * byte >= 0x80 (UTF-8 is checked sequence by sequence), no '"' and no '\\'. Word-at-a-time tests ("has a byte
 * less than n", "has a zero byte"): each is exact as a yes/no for the whole word, which is all this needs. */
static int plain_word(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t quote = v ^ (ones * '"'), backslash = v ^ (ones * '\\');
    uint64_t special = (v & highs) | ((v - ones * 0x20) & ~v & highs) | ((quote - ones) & ~quote & highs) |
                       ((backslash - ones) & ~backslash & highs);
    return special == 0;
}

/* Scans the string whose opening quote is at sc->p; leaves sc->p after the closing quote. */
static int scan_string(scanner *sc, json_scan_span *out)
{
    const unsigned char *p = sc->p + 1, *end = sc->end;
    out->start = (const char *)p;
    out->kind = JSON_SCAN_STRING;
    out->escaped = 0;
    for (;;) {
        uint64_t word;
        while (end - p >= 8 && (memcpy(&word, p, 8), plain_word(word)))
            p += 8;
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        sc->p = p;
        if (p == end)
            return fail(sc, "unterminated string");
        unsigned char c = *p;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(sc, "control character in a string");
        if (c >= 0x80) {
            size_t n = utf8_sequence(p, end);
            if (n == 0)
                return fail(sc, "invalid UTF-8");
            p += n;
            continue;
        }
        /* a backslash */
        out->escaped = 1;
        if (end - p < 2)
            return fail(sc, "unterminated string");
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p += 2;
            continue;
        case 'u':
            break;
        default:
            return fail(sc, "invalid escape");
        }
        long v = end - p >= 6 ? hex4(p + 2) : -1;
        if (v < 0)
            return fail(sc, "invalid \\u escape");
        p += 6;
        if (v == 0)
            return fail(sc, "\\u0000 is not allowed");
        if (v >= 0xDC00 && v <= 0xDFFF)
            return fail(sc, "lone low surrogate");
        if (v >= 0xD800 && v <= 0xDBFF) {
            long low = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
            if (low < 0xDC00 || low > 0xDFFF) {
                sc->p = p;
                return fail(sc, "high surrogate without a low one");
            }
            p += 6;
        }
    }
    out->len = (size_t)(p - (const unsigned char *)out->start);
    sc->p = p + 1;
    return 0;
}

static int is_digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* Skips the run of digits at *p, which must not be empty (a fraction or an exponent). */
static int digit_run(scanner *sc, const unsigned char **p)
{
    if (!is_digit(*p, sc->end)) {
        sc->p = *p;
        return fail(sc, "invalid number");
    }
    while (is_digit(*p, sc->end))
        (*p)++;
    return 0;
}

/* Scans the number at sc->p (a '-' or a digit). */
static int scan_number(scanner *sc, json_scan_span *out)
{
    const unsigned char *p = sc->p, *end = sc->end;
    int negative = 0;
    out->start = (const char *)p;
    out->escaped = 0;
    if (*p == '-') {
        negative = 1;
        p++;
    }
    if (!is_digit(p, end)) {
        sc->p = p;
        return fail(sc, "invalid number");
    }
    unsigned long long magnitude = 0;
    int overflow = 0;
    if (*p == '0') {
        p++;
        if (is_digit(p, end)) {
            sc->p = p;
            return fail(sc, "leading zero in a number");
        }
    } else {
        for (; is_digit(p, end); p++) {
            unsigned d = (unsigned)(*p - '0');
            if (magnitude > (ULLONG_MAX - d) / 10)
                overflow = 1;
            else
                magnitude = magnitude * 10 + d;
        }
    }
    int real = 0;
    if (p < end && *p == '.') {
        real = 1;
        p++;
        if (digit_run(sc, &p) != 0)
            return -1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (digit_run(sc, &p) != 0)
            return -1;
    }
    out->len = (size_t)(p - (const unsigned char *)out->start);
    sc->p = p;
    if (!real) {
        out->kind = JSON_SCAN_INTEGER;
        if (overflow || magnitude > (negative ? (unsigned long long)INT64_MAX + 1 : (unsigned long long)INT64_MAX))
            return fail(sc, "integer out of range");
        return 0;
    }
    out->kind = JSON_SCAN_REAL;
    /* strtod needs a terminated copy; only overflow is an error (as in jansson), underflow is not */
    char local[64];
    char *text = out->len < sizeof local ? local : malloc(out->len + 1);
    if (text == NULL)
        return fail(sc, "out of memory");
    memcpy(text, out->start, out->len);
    text[out->len] = '\0';
    errno = 0;
    double v = strtod(text, NULL);
    int range = errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL);
    if (text != local)
        free(text);
    return range ? fail(sc, "real number out of range") : 0;
}

static int scan_literal(scanner *sc, json_scan_span *out)
{
    static const struct {
        const char *text;
        size_t len;
        json_scan_kind kind;
    } literals[] = {{"true", 4, JSON_SCAN_TRUE}, {"false", 5, JSON_SCAN_FALSE}, {"null", 4, JSON_SCAN_NULL}};
    for (size_t i = 0; i < sizeof literals / sizeof literals[0]; i++) {
        if ((size_t)(sc->end - sc->p) >= literals[i].len && memcmp(sc->p, literals[i].text, literals[i].len) == 0) {
            out->start = (const char *)sc->p;
            out->len = literals[i].len;
            out->kind = literals[i].kind;
            out->escaped = 0;
            sc->p += literals[i].len;
            return 0;
        }
    }
    return fail(sc, "invalid literal");
}

/* Decoded-byte reader over a validated string span. */
typedef struct string_reader {
    const unsigned char *p, *end;
    unsigned char pending[4];
    int npending, ipending;
} string_reader;

static void reader_init(string_reader *r, const json_scan_span *s)
{
    r->p = (const unsigned char *)s->start;
    r->end = r->p + s->len;
    r->npending = r->ipending = 0;
}

/* The next decoded byte, or -1 at the end. */
static int reader_next(string_reader *r)
{
    if (r->ipending < r->npending)
        return r->pending[r->ipending++];
    if (r->p >= r->end)
        return -1;
    if (*r->p != '\\')
        return *r->p++;
    unsigned char e = r->p[1];
    r->p += 2;
    switch (e) {
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'u': break;
    default: return e; /* '"', '\\', '/' */
    }
    uint32_t cp = (uint32_t)hex4(r->p);
    r->p += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) { /* validated: a low surrogate escape follows */
        uint32_t low = (uint32_t)hex4(r->p + 2);
        r->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    if (cp < 0x80)
        return (int)cp;
    if (cp < 0x800) {
        r->pending[0] = (unsigned char)(0x80 | (cp & 0x3F));
        r->npending = 1;
        r->ipending = 0;
        return (int)(0xC0 | (cp >> 6));
    }
    if (cp < 0x10000) {
        r->pending[0] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        r->pending[1] = (unsigned char)(0x80 | (cp & 0x3F));
        r->npending = 2;
        r->ipending = 0;
        return (int)(0xE0 | (cp >> 12));
    }
    r->pending[0] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    r->pending[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    r->pending[2] = (unsigned char)(0x80 | (cp & 0x3F));
    r->npending = 3;
    r->ipending = 0;
    return (int)(0xF0 | (cp >> 18));
}

/* Orders two string spans by their decoded bytes (qsort comparator on json_scan_span). */
static int compare_decoded(const void *a, const void *b)
{
    const json_scan_span *x = a, *y = b;
    if (!x->escaped && !y->escaped) {
        size_t n = x->len < y->len ? x->len : y->len;
        int c = memcmp(x->start, y->start, n);
        return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
    }
    string_reader rx, ry;
    reader_init(&rx, x);
    reader_init(&ry, y);
    for (;;) {
        int cx = reader_next(&rx), cy = reader_next(&ry);
        if (cx != cy || cx < 0)
            return cx - cy;
    }
}

/* Checks the keys [from, sc->nkeys) of the object that just closed for duplicates. */
static int check_duplicates(scanner *sc, size_t from)
{
    json_scan_span *keys = sc->keys + from;
    size_t n = sc->nkeys - from;
    if (n <= PAIRWISE_MAX) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if ((keys[i].escaped || keys[j].escaped || keys[i].len == keys[j].len) &&
                    compare_decoded(&keys[i], &keys[j]) == 0)
                    return fail(sc, "duplicate object key");
        return 0;
    }
    qsort(keys, n, sizeof *keys, compare_decoded); /* they are popped right after: order does not matter */
    for (size_t i = 1; i < n; i++)
        if (compare_decoded(&keys[i - 1], &keys[i]) == 0)
            return fail(sc, "duplicate object key");
    return 0;
}

/* Reads `"key" :` of the innermost (object) frame, remembering the key for the duplicate check. */
static int scan_key(scanner *sc, json_scan_span *key)
{
    skip_ws(sc);
    if (sc->p == sc->end || *sc->p != '"')
        return fail(sc, "expected a string key");
    if (scan_string(sc, key) != 0)
        return -1;
    if (!sc->allow_duplicates) { /* json_scan_object_lenient remembers no keys */
        if (sc->nkeys == sc->key_cap &&
            grow((void **)&sc->keys, &sc->key_cap, sizeof *sc->keys, sc->key_local) != 0)
            return fail(sc, "out of memory");
        sc->keys[sc->nkeys++] = *key;
    }
    skip_ws(sc);
    if (sc->p == sc->end || *sc->p != ':')
        return fail(sc, "expected ':'");
    sc->p++;
    return 0;
}

static int push_frame(scanner *sc, int object)
{
    if (sc->depth == sc->frame_cap &&
        grow((void **)&sc->frames, &sc->frame_cap, sizeof *sc->frames, sc->frame_local) != 0)
        return fail(sc, "out of memory");
    frame *f = &sc->frames[sc->depth++];
    f->start = sc->p;
    f->key_base = sc->nkeys;
    f->object = object;
    sc->p++;
    return 0;
}

/* Closes the innermost container at sc->p (its '}' or ']'), describing it in value. */
static int pop_frame(scanner *sc, json_scan_span *value)
{
    frame *f = &sc->frames[--sc->depth];
    if (f->object) {
        if (check_duplicates(sc, f->key_base) != 0)
            return -1;
        sc->nkeys = f->key_base;
    }
    sc->p++;
    value->start = (const char *)f->start;
    value->len = (size_t)(sc->p - f->start);
    value->kind = f->object ? JSON_SCAN_OBJECT : JSON_SCAN_ARRAY;
    value->escaped = 0;
    return 0;
}

/* Scans the whole input: one object (or, when allow_array, an object or an array), reporting the values of the
 * top-level container to member (for an array the key is NULL). */
static int scan(scanner *sc, int allow_array, json_scan_member_fn member, void *ctx)
{
    json_scan_span key = {0}, top_key = {0}, value;
    skip_ws(sc);
    if (sc->p == sc->end || (*sc->p != '{' && (!allow_array || *sc->p != '[')))
        return fail(sc, allow_array ? "expected a JSON object or array" : "expected a JSON object");

    for (;;) {
        /* a value is expected */
        skip_ws(sc);
        if (sc->p == sc->end)
            return fail(sc, "unexpected end of input");
        if (sc->depth + 1 > JSON_SCAN_MAX_DEPTH)
            return fail(sc, "nesting too deep");
        switch (*sc->p) {
        case '{':
            if (push_frame(sc, 1) != 0)
                return -1;
            skip_ws(sc);
            if (sc->p < sc->end && *sc->p == '}')
                goto close;
            if (scan_key(sc, sc->depth == 1 ? &top_key : &key) != 0)
                return -1;
            continue;
        case '[':
            if (push_frame(sc, 0) != 0)
                return -1;
            skip_ws(sc);
            if (sc->p < sc->end && *sc->p == ']')
                goto close;
            continue;
        case '"':
            if (scan_string(sc, &value) != 0)
                return -1;
            break;
        case '-': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8':
        case '9':
            if (scan_number(sc, &value) != 0)
                return -1;
            break;
        case 't': case 'f': case 'n':
            if (scan_literal(sc, &value) != 0)
                return -1;
            break;
        default:
            return fail(sc, "unexpected character");
        }

        /* a value is complete: report it when it belongs to the top-level object, then find what follows */
        for (;;) {
            if (sc->depth == 1 && member != NULL &&
                member(ctx, sc->frames[0].object ? &top_key : NULL, &value) != 0)
                return fail(sc, "stopped");
            skip_ws(sc);
            if (sc->p == sc->end)
                return fail(sc, "unexpected end of input");
            frame *f = &sc->frames[sc->depth - 1];
            if (*sc->p == ',') {
                sc->p++;
                if (f->object && scan_key(sc, sc->depth == 1 ? &top_key : &key) != 0)
                    return -1;
                break; /* to the next value */
            }
            if (*sc->p != (f->object ? '}' : ']'))
                return fail(sc, f->object ? "expected ',' or '}'" : "expected ',' or ']'");
        close:
            if (pop_frame(sc, &value) != 0)
                return -1;
            if (sc->depth == 0) {
                skip_ws(sc);
                return sc->p == sc->end ? 0 : fail(sc, "trailing characters after the value");
            }
        }
    }
}

static int scan_input(const char *buf, size_t len, int allow_array, int allow_duplicates, json_scan_member_fn member,
                      void *ctx, char *err, size_t errlen)
{
    scanner sc;
    sc.allow_duplicates = allow_duplicates;
    sc.buf = sc.p = (const unsigned char *)buf;
    sc.end = sc.buf + len;
    sc.err = err;
    sc.errlen = errlen;
    sc.frames = sc.frame_local;
    sc.frame_cap = LOCAL_FRAMES;
    sc.depth = 0;
    sc.keys = sc.key_local;
    sc.key_cap = LOCAL_KEYS;
    sc.nkeys = 0;
    if (buf == NULL)
        sc.end = sc.p;
    int rc = scan(&sc, allow_array, member, ctx);
    if (sc.frames != sc.frame_local)
        free(sc.frames);
    if (sc.keys != sc.key_local)
        free(sc.keys);
    return rc;
}

int json_scan_object(const char *buf, size_t len, json_scan_member_fn member, void *ctx, char *err, size_t errlen)
{
    return scan_input(buf, len, 0, 0, member, ctx, err, errlen);
}

int json_scan_object_lenient(const char *buf, size_t len, json_scan_member_fn member, void *ctx, char *err,
                             size_t errlen)
{
    return scan_input(buf, len, 0, 1, member, ctx, err, errlen);
}

int json_scan_document(const char *buf, size_t len, json_scan_member_fn member, void *ctx, char *err,
                       size_t errlen)
{
    return scan_input(buf, len, 1, 0, member, ctx, err, errlen);
}

size_t json_scan_compact(char *out, const char *text, size_t len)
{
    size_t n = 0, i = 0;
    int in_string = 0;
    while (i < len) {
        if (in_string) {
            uint64_t word; /* runs of plain string bytes go 8 at a time */
            while (len - i >= 8 && (memcpy(&word, text + i, 8), plain_word(word))) {
                memcpy(out + n, &word, 8);
                n += 8;
                i += 8;
            }
            if (i == len)
                break;
        }
        char c = text[i++];
        if (in_string) {
            out[n++] = c;
            if (c == '\\' && i < len)
                out[n++] = text[i++]; /* the escaped character, a quote included */
            else if (c == '"')
                in_string = 0;
        } else if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            out[n++] = c;
            in_string = c == '"';
        }
    }
    return n;
}

/* json_scan_members: walking text a scan already accepted. Every index stays below end, whatever the text. */

static size_t trusted_skip_ws(const char *t, size_t i, size_t end)
{
    while (i < end && is_ws(t[i]))
        i++;
    return i;
}

/* Index just past the closing quote of the string whose opening quote is at t[i] (end when there is none): the
 * first quote not preceded by an odd run of backslashes. */
static size_t trusted_string_end(const char *t, size_t i, size_t end)
{
    size_t from = i + 1;
    while (from < end) {
        const char *quote = memchr(t + from, '"', end - from);
        if (quote == NULL)
            break;
        size_t k = (size_t)(quote - t), backslashes = 0;
        while (k - backslashes > i + 1 && t[k - backslashes - 1] == '\\')
            backslashes++;
        if (backslashes % 2 == 0)
            return k + 1;
        from = k + 1;
    }
    return end;
}

/* Fills v with the value starting at t[i]; returns the index just past it. */
static size_t trusted_value(const char *t, size_t i, size_t end, json_scan_span *v)
{
    char c = t[i];
    v->start = t + i;
    v->escaped = 0;
    if (c == '"') {
        size_t after = trusted_string_end(t, i, end);
        v->start = t + i + 1;
        v->len = after > i + 1 ? after - i - 2 : 0;
        v->kind = JSON_SCAN_STRING;
        v->escaped = memchr(v->start, '\\', v->len) != NULL;
        return after;
    }
    if (c == '{' || c == '[') {
        size_t depth = 0, k = i;
        while (k < end) {
            char d = t[k];
            if (d == '"') {
                k = trusted_string_end(t, k, end);
                continue;
            }
            k++;
            if (d == '{' || d == '[')
                depth++;
            else if ((d == '}' || d == ']') && --depth == 0)
                break;
        }
        v->len = k - i;
        v->kind = c == '{' ? JSON_SCAN_OBJECT : JSON_SCAN_ARRAY;
        return k;
    }
    size_t k = i;
    int real = 0;
    while (k < end && t[k] != ',' && t[k] != '}' && t[k] != ']' && !is_ws(t[k])) {
        real |= t[k] == '.' || t[k] == 'e' || t[k] == 'E';
        k++;
    }
    v->len = k - i;
    v->kind = c == 't' ? JSON_SCAN_TRUE : c == 'f' ? JSON_SCAN_FALSE : c == 'n' ? JSON_SCAN_NULL
              : real    ? JSON_SCAN_REAL : JSON_SCAN_INTEGER;
    return k;
}

int json_scan_members(const json_scan_span *object, json_scan_member_fn member, void *ctx)
{
    if (object->kind != JSON_SCAN_OBJECT)
        return -1;
    const char *t = object->start;
    size_t end = object->len, i = 1; /* past the '{' */
    for (;;) {
        i = trusted_skip_ws(t, i, end);
        if (i < end && t[i] == ',')
            i = trusted_skip_ws(t, i + 1, end);
        if (i >= end || t[i] != '"')
            return 0; /* the closing '}' */
        json_scan_span key, value;
        i = trusted_value(t, i, end, &key);
        i = trusted_skip_ws(t, i, end);
        if (i < end && t[i] == ':')
            i = trusted_skip_ws(t, i + 1, end);
        if (i >= end)
            return 0;
        i = trusted_value(t, i, end, &value);
        if (member != NULL) {
            int rc = member(ctx, &key, &value);
            if (rc != 0)
                return rc;
        }
    }
}

int json_scan_string_equals(const json_scan_span *s, const char *plain)
{
    size_t n = strlen(plain);
    if (!s->escaped)
        return s->len == n && memcmp(s->start, plain, n) == 0;
    string_reader r;
    reader_init(&r, s);
    for (size_t i = 0;; i++) {
        int c = reader_next(&r);
        if (c < 0)
            return i == n;
        if (i == n || (unsigned char)plain[i] != c)
            return 0;
    }
}

long json_scan_string_decode(const json_scan_span *s, char *out, size_t cap)
{
    if (cap == 0)
        return -1;
    string_reader r;
    reader_init(&r, s);
    size_t n = 0;
    for (int c; (c = reader_next(&r)) >= 0;) {
        if (n + 1 >= cap) {
            out[0] = '\0';
            return -1;
        }
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return (long)n;
}

int json_scan_integer(const json_scan_span *s, long long *out)
{
    if (s->kind != JSON_SCAN_INTEGER)
        return -1;
    const char *p = s->start, *end = s->start + s->len;
    int negative = *p == '-';
    unsigned long long magnitude = 0;
    for (p += negative; p < end; p++)
        magnitude = magnitude * 10 + (unsigned)(*p - '0');
    *out = negative ? (long long)(0 - magnitude) : (long long)magnitude;
    return 0;
}

int json_scan_pick_member(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    json_scan_pick *p = ctx;
    for (int i = 0; i < p->count && i < JSON_SCAN_PICK_MAX; i++) {
        if (json_scan_string_equals(key, p->names[i])) {
            p->span[i] = *value;
            p->seen |= 1u << i;
            break;
        }
    }
    return 0;
}

int json_scan_picked(const json_scan_pick *p, int i)
{
    return i >= 0 && i < JSON_SCAN_PICK_MAX && (p->seen & (1u << i)) != 0;
}
