/* json_text — see json_text.h. */
#include "json_text.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

char *json_text_take(json_t *obj, size_t *len)
{
    if (obj == NULL)
        return NULL;
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (text != NULL && len != NULL)
        *len = strlen(text);
    return text;
}

void json_buf_init(json_buf *b, char *data, size_t cap)
{
    b->data = data;
    b->cap = cap;
    b->len = 0;
    b->overflow = cap == 0;
    if (cap > 0)
        data[0] = '\0';
}

void json_buf_raw(json_buf *b, const char *text, size_t len)
{
    if (b->overflow)
        return;
    if (len >= b->cap - b->len) {
        b->overflow = 1;
        return;
    }
    memcpy(b->data + b->len, text, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void json_buf_key(json_buf *b, const char *key)
{
    if (b->len > 0 && b->data[b->len - 1] != '{')
        json_buf_raw(b, ",", 1);
    json_buf_string(b, key);
    json_buf_raw(b, ":", 1);
}

/* The length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), or 0 when it is not one (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF; a NUL ends the string, so it ends a sequence too). */
static size_t utf8_sequence(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    if (u[0] >= 0xC2 && u[0] <= 0xDF) {
        n = 2;
    } else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
        n = 3;
        if (u[0] == 0xE0)
            lo = 0xA0; /* overlong */
        else if (u[0] == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
        n = 4;
        if (u[0] == 0xF0)
            lo = 0x90; /* overlong */
        else if (u[0] == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (u[1] < lo || u[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (u[i] < 0x80 || u[i] > 0xBF)
            return 0;
    return n;
}

void json_buf_string(json_buf *b, const char *s)
{
    if (s == NULL) {
        json_buf_raw(b, "null", 4);
        return;
    }
    json_buf_raw(b, "\"", 1);
    const char *run = s; /* start of the bytes not yet copied */
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x80) {
            size_t n = utf8_sequence(p);
            if (n > 0) {
                p += n - 1;
                continue;
            }
            /* not UTF-8 (a truncated or foreign string): U+FFFD, so the text stays valid JSON */
            json_buf_raw(b, run, (size_t)(p - run));
            json_buf_raw(b, "\\ufffd", 6);
            run = p + 1;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        json_buf_raw(b, run, (size_t)(p - run));
        char esc[8];
        int n;
        switch (c) {
        case '"': n = snprintf(esc, sizeof esc, "\\\""); break;
        case '\\': n = snprintf(esc, sizeof esc, "\\\\"); break;
        case '\n': n = snprintf(esc, sizeof esc, "\\n"); break;
        case '\r': n = snprintf(esc, sizeof esc, "\\r"); break;
        case '\t': n = snprintf(esc, sizeof esc, "\\t"); break;
        default: n = snprintf(esc, sizeof esc, "\\u%04x", c); break;
        }
        json_buf_raw(b, esc, (size_t)n);
        run = p + 1;
    }
    json_buf_raw(b, run, strlen(run));
    json_buf_raw(b, "\"", 1);
}

void json_buf_int(json_buf *b, long long v)
{
    /* digits right to left into the end of text (no snprintf: this runs several times per delivery) */
    char text[24];
    char *p = text + sizeof text;
    unsigned long long magnitude = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude > 0);
    if (v < 0)
        *--p = '-';
    json_buf_raw(b, p, (size_t)(text + sizeof text - p));
}

void json_buf_fixed1(json_buf *b, double v)
{
    if (!isfinite(v)) { /* JSON has no NaN or infinity */
        json_buf_raw(b, "0", 1);
        return;
    }
    double tenths = nearbyint(v * 10.0); /* the current rounding mode: to nearest, ties to even */
    if (fabs(tenths) < 1e15) {
        /* integer digits by hand (snprintf's %.1f, __printf_fp, was ~5 % of the dispatcher's event loop: this
         * runs per attempt, for the delivery log's latency); can differ from %.1f only on exact ties */
        long long t = (long long)tenths;
        if (t < 0) {
            json_buf_raw(b, "-", 1);
            t = -t;
        } else if (signbit(v) && t == 0) {
            json_buf_raw(b, "-", 1); /* as printf: -0.04 is "-0.0" */
        }
        json_buf_int(b, t / 10);
        char frac[2] = {'.', (char)('0' + t % 10)};
        json_buf_raw(b, frac, 2);
        return;
    }
    char text[40]; /* too long a number (beyond 1e38) is written as 0, like NaN */
    int n = snprintf(text, sizeof text, "%.1f", v);
    if (n < 0 || (size_t)n >= sizeof text)
        n = snprintf(text, sizeof text, "0");
    json_buf_raw(b, text, (size_t)n);
}
