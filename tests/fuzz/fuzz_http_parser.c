/*
 * fuzz_http_parser — common/http_parser.c on arbitrary bytes: common/http_server.c hands it every byte a
 * client sends, the request head to http_head_length() / http_parse_head() and a chunked body to
 * http_chunked_feed().
 *
 * Invariants:
 *   (a) http_head_length() on the whole input equals what the `scanned` resume gives when the input arrives in
 *       growing prefixes (cut at input-derived points, each prefix an exact-size copy so ASan sees a read past
 *       it; and, for inputs up to 512 bytes, one byte at a time): the head is found exactly when its last byte
 *       arrives, never earlier and never at another length; *scanned never points past the prefix.
 *   (b) a head found is parsed (an exact-size copy plus a NUL, as http_server.c does): the status is 0 or one
 *       of 400, 413, 417, 431 with a non-NULL why. Accepted: method non-empty, token characters;
 *       path starts with '/'; header_count <= HTTP_MAX_HEADERS, query_count <= HTTP_MAX_QUERY_ARGS; every
 *       string points into the buffer; header names non-empty without ':', values without CR/LF and without
 *       leading/trailing SP/HTAB; http_head_header() finds every header by its name (the first of that name),
 *       http_head_query() every argument; content_length >= -1, never chunked with a content_length;
 *       minor_version 0 or 1; flags 0 or 1; the head's bytes hold no NUL, no bare CR and no control character
 *       but HTAB/CR/LF (the header's "400 for bare CR, control characters").
 *   (c) http_chunked_feed() on the input as a body (and on what follows a head): fed whole and fed in 2–3
 *       pieces (input-derived cuts; the next piece only after the previous one was fully consumed) gives the
 *       same verdict, the same decoded bytes and the same total consumed; MORE consumes all it is given; DONE
 *       is reported exactly at the body's last byte (the input up to it without that byte is MORE); decoded
 *       length <= input length.
 */
#include "fuzz_util.h"
#include "http_parser.h"

#include <strings.h>

/* ---- (a) http_head_length -------------------------------------------------------------------------------- */

/* http_head_length on an exact-size copy of data[0, len). */
static size_t head_length_copy(const uint8_t *data, size_t len, size_t *scanned)
{
    char *copy = malloc(len > 0 ? len : 1);
    FUZZ_CHECK(copy != NULL, "malloc");
    if (len > 0)
        memcpy(copy, data, len);
    size_t got = http_head_length(copy, len, scanned);
    free(copy);
    return got;
}

/* Input-derived cut points in [0, size], ascending, ending with size. Returns how many. */
static size_t cut_points(const uint8_t *data, size_t size, unsigned salt, size_t cuts[4])
{
    size_t n = 0;
    if (size > 0) {
        unsigned h = salt * 2654435761u ^ (unsigned)size;
        h = h * 31 + data[size - 1];
        h = h * 31 + data[size / 2];
        h = h * 31 + data[0];
        size_t a = h % (size + 1), b = (h / 7919) % (size + 1);
        if (a > b) {
            size_t t = a;
            a = b;
            b = t;
        }
        cuts[n++] = a;
        if (b != a)
            cuts[n++] = b;
        if ((h & 0x10000) != 0 && b + 1 < size) /* sometimes a third cut right after the second */
            cuts[n++] = b + 1;
    }
    if (n == 0 || cuts[n - 1] != size)
        cuts[n++] = size;
    return n;
}

static size_t check_head_length(const uint8_t *data, size_t size)
{
    size_t scanned = 0;
    size_t whole = head_length_copy(data, size, &scanned);
    FUZZ_CHECK(whole <= size, "head length %zu of %zu bytes", whole, size);
    FUZZ_CHECK(whole == 0 || whole >= 3, "head length %zu", whole); /* "x\n\n" at least */
    if (whole == 0)
        FUZZ_CHECK(scanned <= size, "scanned %zu past %zu bytes", scanned, size);

    for (unsigned salt = 0; salt < 2; salt++) {
        size_t cuts[4];
        size_t n = cut_points(data, size, salt, cuts);
        scanned = 0;
        size_t got = 0, at = 0;
        for (size_t i = 0; i < n && got == 0; i++) {
            at = cuts[i];
            got = head_length_copy(data, at, &scanned);
            if (got == 0)
                FUZZ_CHECK(scanned <= at, "scanned %zu past the %zu bytes given", scanned, at);
        }
        FUZZ_CHECK(got == whole, "resumed at cuts: head length %zu (found at %zu bytes), whole input %zu", got, at,
                   whole);
    }
    if (whole > 0) { /* the head minus its last byte is incomplete, looked at fresh */
        scanned = 0;
        FUZZ_CHECK(head_length_copy(data, whole - 1, &scanned) == 0, "a head of %zu found in %zu bytes", whole,
                   whole - 1);
    }
    if (size <= 512) {
        scanned = 0;
        for (size_t k = 0; k <= size; k++) {
            size_t got = http_head_length((const char *)data, k, &scanned);
            if (got != 0) {
                FUZZ_CHECK(got == whole && k == whole, "byte by byte: head length %zu after %zu bytes, whole %zu",
                           got, k, whole);
                break;
            }
            FUZZ_CHECK(scanned <= k, "byte by byte: scanned %zu past %zu bytes", scanned, k);
            FUZZ_CHECK(k < size || whole == 0, "byte by byte: no head, whole input %zu", whole);
        }
    }
    return whole;
}

/* ---- (b) http_parse_head ------------------------------------------------------------------------------------ */

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int inside(const char *s, const char *buf, size_t len)
{
    return s != NULL && s >= buf && s <= buf + len && s + strlen(s) <= buf + len;
}

static void check_value(const char *v)
{
    size_t n = strlen(v);
    FUZZ_CHECK(strpbrk(v, "\r\n") == NULL, "header value with CR/LF");
    FUZZ_CHECK(n == 0 || (v[0] != ' ' && v[0] != '\t' && v[n - 1] != ' ' && v[n - 1] != '\t'),
               "header value not trimmed: [%s]", v);
}

static http_request_head head;

static void check_parse_head(const uint8_t *data, size_t len)
{
    char *buf = fuzz_strdup(data, len);
    const char *why = NULL;
    int status = http_parse_head(buf, len, &head, &why);
    FUZZ_CHECK(status == 0 || status == 400 || status == 413 || status == 417 || status == 431,
               "status %d", status);
    if (status != 0) {
        FUZZ_CHECK(why != NULL && why[0] != '\0', "status %d without a why", status);
        free(buf);
        return;
    }
    FUZZ_CHECK(inside(head.method, buf, len) && head.method[0] != '\0', "method");
    for (const char *c = head.method; *c != '\0'; c++)
        FUZZ_CHECK(is_tchar((unsigned char)*c), "method [%s] not a token", head.method);
    FUZZ_CHECK(inside(head.path, buf, len) && head.path[0] == '/', "path [%s]", head.path ? head.path : "(null)");
    FUZZ_CHECK(head.minor_version == 0 || head.minor_version == 1, "minor_version %d", head.minor_version);
    FUZZ_CHECK(head.keep_alive == 0 || head.keep_alive == 1, "keep_alive %d", head.keep_alive);
    FUZZ_CHECK(head.expect_continue == 0 || head.expect_continue == 1, "expect_continue %d", head.expect_continue);
    FUZZ_CHECK(head.chunked == 0 || head.chunked == 1, "chunked %d", head.chunked);
    FUZZ_CHECK(head.content_length >= -1, "content_length %lld", head.content_length);
    FUZZ_CHECK(!(head.chunked && head.content_length >= 0), "chunked with content_length %lld", head.content_length);
    FUZZ_CHECK(!(head.chunked && head.minor_version == 0), "chunked in HTTP/1.0");
    FUZZ_CHECK(head.header_count <= HTTP_MAX_HEADERS, "header_count %zu", head.header_count);
    FUZZ_CHECK(head.query_count <= HTTP_MAX_QUERY_ARGS, "query_count %zu", head.query_count);
    for (size_t i = 0; i < head.header_count; i++) {
        const http_field *f = &head.headers[i];
        FUZZ_CHECK(inside(f->name, buf, len) && inside(f->value, buf, len), "header %zu outside the buffer", i);
        FUZZ_CHECK(f->name[0] != '\0' && strchr(f->name, ':') == NULL, "header name [%s]", f->name);
        for (const char *c = f->name; *c != '\0'; c++)
            FUZZ_CHECK(is_tchar((unsigned char)*c), "header name [%s] not a token", f->name);
        check_value(f->value);
        const char *found = http_head_header(&head, f->name);
        FUZZ_CHECK(found != NULL, "header %s not found by its name", f->name);
        size_t j = 0;
        while (j < i && strcasecmp(head.headers[j].name, f->name) != 0)
            j++;
        FUZZ_CHECK(found == head.headers[j].value, "header %s: not the first value of that name", f->name);
    }
    for (size_t i = 0; i < head.query_count; i++) {
        const http_field *q = &head.query[i];
        FUZZ_CHECK(inside(q->name, buf, len) && inside(q->value, buf, len), "query argument %zu outside the buffer",
                   i);
        FUZZ_CHECK(http_head_query(&head, q->name) != NULL, "query argument %s not found by its name", q->name);
    }
    if (head.content_length >= 0)
        FUZZ_CHECK(http_head_header(&head, "content-length") != NULL, "content_length without the header");
    if (head.chunked)
        FUZZ_CHECK(http_head_header(&head, "transfer-encoding") != NULL, "chunked without the header");
    if (head.expect_continue)
        FUZZ_CHECK(http_head_header(&head, "expect") != NULL, "expect_continue without the header");
    /* what was accepted holds only the bytes a request head may hold */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = data[i];
        if (c == '\r')
            FUZZ_CHECK(i + 1 < len && data[i + 1] == '\n', "accepted a bare CR at %zu", i);
        else
            FUZZ_CHECK(c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f), "accepted byte 0x%02x at %zu", c, i);
    }
    free(buf);
}

/* ---- (c) http_chunked_feed ---------------------------------------------------------------------------------- */

typedef struct sink_buf {
    char *data;
    size_t len, cap;
} sink_buf;

static void sink(void *ctx, const char *data, size_t n)
{
    sink_buf *s = ctx;
    FUZZ_CHECK(n > 0, "empty sink call");
    FUZZ_CHECK(s->len + n <= s->cap, "decoded %zu bytes, more than the %zu of input", s->len + n, s->cap);
    memcpy(s->data + s->len, data, n);
    s->len += n;
}

/* Feeds data in pieces ending at cuts[] (ascending, the last = the input's size). Returns the verdict; *total is the bytes
 * consumed over all calls. */
static int feed_pieces(const uint8_t *data, const size_t *cuts, size_t ncuts, sink_buf *s, size_t *total)
{
    http_chunked d;
    memset(&d, 0, sizeof d);
    size_t from = 0;
    int rc = HTTP_CHUNKED_MORE;
    *total = 0;
    for (size_t i = 0; i < ncuts; i++) {
        size_t n = cuts[i] - from;
        char *piece = malloc(n > 0 ? n : 1); /* exact size: ASan sees a read past the piece */
        FUZZ_CHECK(piece != NULL, "malloc");
        if (n > 0)
            memcpy(piece, data + from, n);
        size_t consumed = (size_t)-1;
        rc = http_chunked_feed(&d, piece, n, &consumed, sink, s);
        free(piece);
        if (rc == HTTP_CHUNKED_ERROR)
            return rc;
        FUZZ_CHECK(rc == HTTP_CHUNKED_MORE || rc == HTTP_CHUNKED_DONE, "verdict %d", rc);
        FUZZ_CHECK(consumed <= n, "consumed %zu of %zu", consumed, n);
        if (rc == HTTP_CHUNKED_MORE)
            FUZZ_CHECK(consumed == n, "MORE after consuming %zu of %zu", consumed, n);
        *total += consumed;
        if (rc == HTTP_CHUNKED_DONE)
            return rc;
        from = cuts[i];
    }
    return rc;
}

static void check_chunked(const uint8_t *data, size_t size, unsigned salt)
{
    sink_buf whole = {malloc(size + 1), 0, size}, pieces = {malloc(size + 1), 0, size};
    FUZZ_CHECK(whole.data != NULL && pieces.data != NULL, "malloc");
    size_t all = size;
    size_t whole_total;
    int rc = feed_pieces(data, &all, 1, &whole, &whole_total);
    FUZZ_CHECK(whole.len <= size, "decoded %zu of %zu", whole.len, size);

    size_t cuts[4];
    size_t ncuts = cut_points(data, size, salt + 7, cuts);
    size_t pieces_total;
    int rc2 = feed_pieces(data, cuts, ncuts, &pieces, &pieces_total);
    FUZZ_CHECK(rc2 == rc, "whole: verdict %d, in %zu pieces: %d", rc, ncuts, rc2);
    FUZZ_CHECK(pieces.len == whole.len && (whole.len == 0 || memcmp(pieces.data, whole.data, whole.len) == 0),
               "decoded %zu bytes whole, %zu in pieces (or different bytes)", whole.len, pieces.len);
    if (rc != HTTP_CHUNKED_ERROR)
        FUZZ_CHECK(pieces_total == whole_total, "consumed %zu whole, %zu in pieces", whole_total, pieces_total);
    if (rc == HTTP_CHUNKED_MORE)
        FUZZ_CHECK(whole_total == size, "MORE after %zu of %zu", whole_total, size);
    if (rc == HTTP_CHUNKED_DONE) { /* the body without its last byte is not complete */
        FUZZ_CHECK(whole_total >= 3, "a chunked body of %zu bytes", whole_total); /* "0\n\n" at least */
        size_t short_len = whole_total - 1, short_total;
        pieces.len = 0;
        int rc3 = feed_pieces(data, &short_len, 1, &pieces, &short_total);
        FUZZ_CHECK(rc3 == HTTP_CHUNKED_MORE && short_total == short_len, "DONE before the body's last byte: %d", rc3);
    }
    free(whole.data);
    free(pieces.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t head_len = check_head_length(data, size);
    if (head_len > 0) {
        check_parse_head(data, head_len);
        check_chunked(data + head_len, size - head_len, 1); /* the body after a head */
    }
    check_chunked(data, size, 0);
    return 0;
}
