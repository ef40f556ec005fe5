/*
 * Unit tests for common/http_parser.c (cmocka): the in-place HTTP/1.x request-head parser and the resumable
 * chunked-body decoder that common/http_server.c runs on every connection.
 *
 *   test_simple_get           method, percent-decoded path ('+' kept), minor version, defaults; query arguments
 *                             percent-decoded with '+' as a space, arguments without '=' (value ""), empty and
 *                             malformed arguments skipped, lookup exact; header lookup case-insensitive; header
 *                             values with their leading/trailing SP/HTAB trimmed (inner whitespace kept)
 *   test_query_limits         at most HTTP_MAX_QUERY_ARGS arguments, the rest ignored (not refused)
 *   test_line_endings         CRLF, bare LF and a mix of both; a value never keeps its CR
 *   test_leading_empty_lines  CRLF / LF lines before the request line are part of the head and skipped; a head
 *                             that is only empty lines is incomplete; a bare CR before the request line is 400
 *   test_head_length_prefixes http_head_length: 0 for every proper prefix, the head's length for the whole and
 *                             with a pipelined request after it; the same length when the head arrives one byte
 *                             at a time with `scanned` kept between calls (leading empty lines, "\n\r\n" and
 *                             "\n\n" terminators included)
 *   test_refusals             every refusal of http_parse_head's header comment with its status and a why:
 *                             400 (request line, header line, space before the colon, obs-fold, bad escapes,
 *                             %00, target not a path, Content-Length not digits / conflicting, CL + TE, TE in
 *                             HTTP/1.0, a Transfer-Encoding other than chunked, an HTTP version other than 1.0 and
 *                             1.1 — the header documents 400 for these two, not RFC 9110's 501 / 505), 413 (19+
 *                             digit Content-Length), 417, 431 (HTTP_MAX_HEADERS + 1)
 *   test_accepted_framing     what must not be refused: two equal Content-Lengths, 18 digits, leading zeros,
 *                             "Transfer-Encoding: Chunked", "Expect: 100-Continue", exactly HTTP_MAX_HEADERS headers
 *   test_keep_alive           1.1 -> 1, 1.0 -> 0, Connection: close / keep-alive (any case, inside a token list)
 *   test_expect_continue      expect_continue set only by Expect: 100-continue
 *   test_chunked_decode       a multi-chunk body with extensions and trailers decodes to the right bytes and
 *                             `consumed` ends exactly after the trailers when a pipelined request follows;
 *                             bare-LF line ends; the empty body; MORE consumes everything while incomplete
 *   test_chunked_pieces       the same body one byte at a time, and split in two at every position: same bytes,
 *                             same total consumed
 *   test_chunked_errors       non-hex size, no size, 16 hex digits (15 accepted), no CRLF after the data, a CR
 *                             not followed by LF, control characters in an extension or a trailer, an extension
 *                             longer than the line limit
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_parser.h"

/* ---- heads ------------------------------------------------------------------------------------------------ */

/* The head's buffer: the parsed strings point into it, so it lives as long as the assertions on them. */
static char head_buf[16384];
static http_request_head head;

/* Copies text (a complete head) into head_buf, checks http_head_length measures all of it, parses it. */
static int parse_n(const char *text, size_t len, const char **why)
{
    assert_true(len < sizeof head_buf);
    memcpy(head_buf, text, len);
    head_buf[len] = '\0';
    size_t scanned = 0;
    if (http_head_length(head_buf, len, &scanned) != len)
        fail_msg("http_head_length does not measure the whole head of: %.*s", (int)len, text);
    *why = NULL;
    return http_parse_head(head_buf, len, &head, why);
}

static int parse(const char *text, const char **why)
{
    return parse_n(text, strlen(text), why);
}

/* Parses text and asserts it is accepted. */
static void parse_ok(const char *text)
{
    const char *why = NULL;
    int status = parse(text, &why);
    if (status != 0)
        fail_msg("refused with %d (%s): %s", status, why ? why : "(null)", text);
}

static void test_simple_get(void **state)
{
    (void)state;
    parse_ok("GET /hooks/a%20b%2fc+d%41?x=1&name=J%C3%B6rg+M&flag&empty=&a+b=c%2Bd&&bad=%zz&nul=%00&last=%7e "
             "HTTP/1.1\r\n"
             "Host: example.com\r\n"
             "X-Trim: \t  v a l \t \r\n"
             "accept:text/plain\r\n"
             "X-Empty:   \r\n"
             "\r\n");
    assert_string_equal(head.method, "GET");
    assert_string_equal(head.path, "/hooks/a b/c+dA"); /* '+' is not a space in the path */
    assert_int_equal(head.minor_version, 1);
    assert_int_equal(head.keep_alive, 1);
    assert_int_equal(head.expect_continue, 0);
    assert_int_equal(head.chunked, 0);
    assert_true(head.content_length == -1);

    assert_int_equal(head.header_count, 4);
    assert_string_equal(head.headers[0].name, "Host");
    assert_string_equal(head.headers[0].value, "example.com");
    assert_string_equal(head.headers[2].name, "accept");
    assert_string_equal(http_head_header(&head, "host"), "example.com");
    assert_string_equal(http_head_header(&head, "HOST"), "example.com");
    assert_string_equal(http_head_header(&head, "x-trim"), "v a l");
    assert_string_equal(http_head_header(&head, "Accept"), "text/plain");
    assert_string_equal(http_head_header(&head, "x-empty"), "");
    assert_null(http_head_header(&head, "Content-Length"));
    assert_null(http_head_header(&head, "Hos"));

    /* "&&" yields no argument; bad escapes and encoded NULs make the argument be skipped */
    assert_int_equal(head.query_count, 6);
    assert_string_equal(head.query[0].name, "x");
    assert_string_equal(head.query[0].value, "1");
    assert_string_equal(http_head_query(&head, "name"), "J\xc3\xb6rg M");
    assert_string_equal(http_head_query(&head, "flag"), "");
    assert_string_equal(http_head_query(&head, "empty"), "");
    assert_string_equal(http_head_query(&head, "a b"), "c+d");
    assert_string_equal(http_head_query(&head, "last"), "~");
    assert_null(http_head_query(&head, "bad"));
    assert_null(http_head_query(&head, "nul"));
    assert_null(http_head_query(&head, "X")); /* exact match */
    assert_null(http_head_query(&head, "a+b"));

    /* an argument without '=' at the very end, and a bare '?' */
    parse_ok("GET /p?a=1&verbose HTTP/1.1\r\n\r\n");
    assert_string_equal(head.path, "/p");
    assert_int_equal(head.query_count, 2);
    assert_string_equal(http_head_query(&head, "verbose"), "");
    parse_ok("GET /p? HTTP/1.1\r\n\r\n");
    assert_string_equal(head.path, "/p");
    assert_int_equal(head.query_count, 0);
    parse_ok("DELETE / HTTP/1.1\r\n\r\n");
    assert_string_equal(head.method, "DELETE");
    assert_string_equal(head.path, "/");
    assert_int_equal(head.header_count, 0);
    assert_int_equal(head.query_count, 0);
}

static void test_query_limits(void **state)
{
    (void)state;
    char text[1024];
    size_t n = (size_t)snprintf(text, sizeof text, "GET /q?");
    for (int i = 0; i < HTTP_MAX_QUERY_ARGS + 5; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%sk%d=%d", i > 0 ? "&" : "", i, i);
    snprintf(text + n, sizeof text - n, " HTTP/1.1\r\n\r\n");
    parse_ok(text);
    assert_int_equal(head.query_count, HTTP_MAX_QUERY_ARGS);
    assert_string_equal(http_head_query(&head, "k0"), "0");
    char name[16];
    snprintf(name, sizeof name, "k%d", HTTP_MAX_QUERY_ARGS - 1);
    assert_non_null(http_head_query(&head, name));
    snprintf(name, sizeof name, "k%d", HTTP_MAX_QUERY_ARGS);
    assert_null(http_head_query(&head, name));
}

static void test_line_endings(void **state)
{
    (void)state;
    parse_ok("POST /e HTTP/1.1\nHost: h\nContent-Length: 5\n\n");
    assert_string_equal(head.method, "POST");
    assert_string_equal(head.path, "/e");
    assert_int_equal(head.header_count, 2);
    assert_string_equal(http_head_header(&head, "host"), "h");
    assert_true(head.content_length == 5);

    parse_ok("PUT /m HTTP/1.1\r\nA: 1\nB: 2\r\n\n");
    assert_int_equal(head.header_count, 2);
    assert_string_equal(http_head_header(&head, "a"), "1");
    assert_string_equal(http_head_header(&head, "b"), "2");

    parse_ok("GET / HTTP/1.1\nA: x\n\r\n"); /* "\n\r\n" ends the head */
    assert_int_equal(head.header_count, 1);
    assert_string_equal(http_head_header(&head, "A"), "x");
}

static void test_leading_empty_lines(void **state)
{
    (void)state;
    parse_ok("\r\n\n\r\nGET /after-blanks HTTP/1.1\r\nA: b\r\n\r\n");
    assert_string_equal(head.method, "GET");
    assert_string_equal(head.path, "/after-blanks");
    assert_int_equal(head.header_count, 1);
    parse_ok("\nGET / HTTP/1.0\n\n");
    assert_int_equal(head.minor_version, 0);

    /* only empty lines so far: no head yet, however many */
    size_t scanned = 0;
    assert_int_equal(http_head_length("\r\n\r\n\n\r\n", 7, &scanned), 0);
    scanned = 0;
    assert_int_equal(http_head_length("\n\n\n\n", 4, &scanned), 0);

    /* a bare CR is not a line end: before the request line it is refused like anywhere else */
    const char *why = NULL;
    assert_int_equal(parse("\rGET / HTTP/1.1\r\n\r\n", &why), 400);
    assert_non_null(why);
    assert_int_equal(parse("\r\n\rGET / HTTP/1.1\r\n\r\n", &why), 400);
    assert_non_null(why);
}

/* Heads to measure: every proper prefix is incomplete, the whole is the head. */
static const char *const heads[] = {
    "GET / HTTP/1.1\r\n\r\n",
    "GET / HTTP/1.1\n\n",
    "GET / HTTP/1.1\n\r\n",
    "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n",
    "GET / HTTP/1.1\r\nA: b\n\r\n",
    "GET / HTTP/1.1\r\nA: b\r\n\n",
    "\r\nGET / HTTP/1.1\r\n\r\n",
    "\r\n\r\nGET / HTTP/1.1\r\nA: b\r\n\r\n",
    "\r\n\r\n\r\nGET / HTTP/1.1\r\nA: b\r\n\r\n",
    "\n\n\nGET /x HTTP/1.1\nA: b\n\r\n",
    "\r\n\n\r\n\nPOST /x HTTP/1.0\nA: 1\r\nB: 2\n\r\n",
    "\n\r\n\r\n\nGET / HTTP/1.1\r\n\n",
    "GET /\rx HTTP/1.1\r\n\r\n", /* malformed (bare CR), but measured like any other */
};

static void test_head_length_prefixes(void **state)
{
    (void)state;
    static const char pipelined[] = "GET /next HTTP/1.1\r\nHost: n\r\n\r\n";
    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) {
        const char *text = heads[h];
        size_t len = strlen(text);
        char buf[256];
        assert_true(len + sizeof pipelined < sizeof buf);
        memcpy(buf, text, len);
        memcpy(buf + len, pipelined, sizeof pipelined);
        size_t total = len + sizeof pipelined - 1;

        size_t scanned = 0;
        for (size_t k = 0; k < len; k++) {
            scanned = 0;
            if (http_head_length(buf, k, &scanned) != 0)
                fail_msg("head %zu: prefix of %zu bytes measured as complete", h, k);
        }
        scanned = 0;
        assert_int_equal(http_head_length(buf, len, &scanned), len);
        scanned = 0;
        assert_int_equal(http_head_length(buf, total, &scanned), len);

        /* one byte at a time, scanned kept: the same length, reached exactly at the last byte */
        scanned = 0;
        for (size_t k = 1; k <= total; k++) {
            size_t got = http_head_length(buf, k, &scanned);
            if (k < len && got != 0)
                fail_msg("head %zu: fed byte by byte, measured %zu after %zu bytes", h, got, k);
            if (k == len) {
                if (got != len)
                    fail_msg("head %zu: fed byte by byte, measured %zu, whole %zu", h, got, len);
                break;
            }
            assert_true(scanned <= k);
        }
        /* in uneven steps, scanned kept */
        static const size_t steps[] = {2, 3, 5, 7};
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
            scanned = 0;
            size_t got = 0, k = 0;
            while (got == 0 && k < total) {
                k = k + steps[s] < total ? k + steps[s] : total;
                got = http_head_length(buf, k, &scanned);
            }
            if (got != len)
                fail_msg("head %zu: fed %zu bytes at a time, measured %zu, whole %zu", h, steps[s], got, len);
        }
    }

    /* a head that is a long run of empty lines before the request line, fed a byte at a time */
    char buf[512];
    size_t n = 0;
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, i % 3 == 0 ? "\n" : "\r\n");
    n += (size_t)snprintf(buf + n, sizeof buf - n, "GET / HTTP/1.1\r\n\r\n");
    size_t scanned = 0;
    for (size_t k = 1; k < n; k++)
        if (http_head_length(buf, k, &scanned) != 0)
            fail_msg("blank-line run: measured as complete after %zu of %zu bytes", k, n);
    assert_int_equal(http_head_length(buf, n, &scanned), n);
}

struct refusal {
    const char *head;
    int status;
    const char *why; /* substring of *why */
};

static const struct refusal refusals[] = {
    /* request line */
    {"GET\r\n\r\n", 400, "request line"},
    {"GET /\r\n\r\n", 400, "request line"},
    {"GET  / HTTP/1.1\r\n\r\n", 400, "request line"},
    {" GET / HTTP/1.1\r\n\r\n", 400, "request line"},
    {"G@T / HTTP/1.1\r\n\r\n", 400, "request line"},
    {"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG / HTTP/1.1\r\n\r\n", 400, "request line"}, /* 33-char method */
    {"GET / HTTP/1.1 x\r\n\r\n", 400, "request line"},
    {"GET / HTTX/1.1\r\n\r\n", 400, "request line"},
    {"GET / HTTP/11\r\n\r\n", 400, "request line"},
    {"GET / http/1.1\r\n\r\n", 400, "request line"},
    {"GET /a\x01z HTTP/1.1\r\n\r\n", 400, "request line"},
    {"GET /a\x7fz HTTP/1.1\r\n\r\n", 400, "request line"},
    {"GET /a\rz HTTP/1.1\r\n\r\n", 400, "request line"}, /* bare CR */
    {"GET / HTTP/1.1\r\r\n\r\n", 400, "request line"},
    /* header lines */
    {"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400, "header line"}, /* bare CR */
    {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, "header line"},
    {"GET / HTTP/1.1\r\n: value\r\n\r\n", 400, "header line"},
    {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "header name"}, /* space before the colon */
    {"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, "header name"},
    {"GET / HTTP/1.1\r\nX(y): a\r\n\r\n", 400, "header name"},
    {"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 400, "folded"}, /* obs-fold */
    {"GET / HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n", 400, "folded"},
    {"GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 400, "header value"},
    {"GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n", 400, "header value"},
    /* the target */
    {"GET /a%zz HTTP/1.1\r\n\r\n", 400, "path"},
    {"GET /a%4 HTTP/1.1\r\n\r\n", 400, "path"},
    {"GET /a% HTTP/1.1\r\n\r\n", 400, "path"},
    {"GET /a%00b HTTP/1.1\r\n\r\n", 400, "path"},
    {"GET http://example.com/ HTTP/1.1\r\n\r\n", 400, "path"},
    {"OPTIONS * HTTP/1.1\r\n\r\n", 400, "path"},
    {"GET ?a=1 HTTP/1.1\r\n\r\n", 400, "path"},
    /* Content-Length */
    {"POST / HTTP/1.1\r\nContent-Length: 1a\r\n\r\n", 400, "Content-Length"},
    {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"},
    {"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400, "Content-Length"},
    {"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400, "Content-Length"},
    {"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400, "Content-Length"},
    {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400, "Content-Length"},
    {"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n", 400, "conflicting"},
    {"POST / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 00001\r\n\r\n", 400, "conflicting"},
    /* the request-smuggling pair, in either order */
    {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both"},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, "both"},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0"},
    /* 413 */
    {"POST / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n", 413, "too large"},
    {"POST / HTTP/1.1\r\nContent-Length: 0000000000000000000\r\n\r\n", 413, "too large"},
    {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999999999\r\n\r\n", 413, "too large"},
    /* 417 */
    {"POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417, "Expect"},
    {"POST / HTTP/1.1\r\nExpect: 100-continue, x\r\n\r\n", 417, "Expect"},
    {"POST / HTTP/1.1\r\nExpect:\r\n\r\n", 417, "Expect"},
    /* a Transfer-Encoding other than chunked: 400 (http_parser.h: not RFC 9110's 501, the API answers 4xx) */
    {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "Transfer-Encoding"},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400, "Transfer-Encoding"},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400, "Transfer-Encoding"},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
     "Transfer-Encoding"}, /* chunked twice */
    {"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", 400, "Transfer-Encoding"},
    /* an HTTP version other than 1.0 and 1.1: 400 (http_parser.h: not RFC 9110's 505) */
    {"GET / HTTP/2.0\r\n\r\n", 400, "version"},
    {"GET / HTTP/1.2\r\n\r\n", 400, "version"},
    {"GET / HTTP/1.9\r\n\r\n", 400, "version"},
    {"GET / HTTP/0.9\r\n\r\n", 400, "version"},
    {"GET / HTTP/3.1\r\n\r\n", 400, "version"},
};

static void test_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        const struct refusal *r = &refusals[i];
        const char *why = NULL;
        int status = parse(r->head, &why);
        if (status != r->status || why == NULL || strstr(why, r->why) == NULL)
            fail_msg("%s: got %d (%s), expected %d (%s)", r->head, status, why ? why : "(null)", r->status, r->why);
    }

    /* a NUL inside the request line or a header line */
    const char *why = NULL;
    static const char nul_line[] = "GET /a\0b HTTP/1.1\r\n\r\n";
    assert_int_equal(parse_n(nul_line, sizeof nul_line - 1, &why), 400);
    static const char nul_value[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    assert_int_equal(parse_n(nul_value, sizeof nul_value - 1, &why), 400);
    static const char nul_name[] = "GET / HTTP/1.1\r\nX\0Y: a\r\n\r\n";
    assert_int_equal(parse_n(nul_name, sizeof nul_name - 1, &why), 400);

    /* 431: one header line more than HTTP_MAX_HEADERS */
    static char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "X-H%d: %d\r\n", i, i);
    snprintf(text + n, sizeof text - n, "\r\n");
    why = NULL;
    assert_int_equal(parse(text, &why), 431);
    assert_non_null(why);
    assert_non_null(strstr(why, "header"));
}

static void test_accepted_framing(void **state)
{
    (void)state;
    parse_ok("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length:5\r\n\r\n");
    assert_true(head.content_length == 5);
    parse_ok("POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n");
    assert_true(head.content_length == 7);
    parse_ok("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_true(head.content_length == 0);
    parse_ok("POST / HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\n"); /* 18 digits */
    assert_true(head.content_length == 999999999999999999LL);
    parse_ok("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_int_equal(head.chunked, 1);
    assert_true(head.content_length == -1);
    parse_ok("POST / HTTP/1.1\r\ntransfer-encoding:  chunked \r\n\r\n");
    assert_int_equal(head.chunked, 1);
    parse_ok("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n");
    assert_true(head.content_length == 3);
    assert_int_equal(head.chunked, 0);

    /* exactly HTTP_MAX_HEADERS header lines */
    static char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "X-H%d: %d\r\n", i, i);
    snprintf(text + n, sizeof text - n, "\r\n");
    parse_ok(text);
    assert_int_equal(head.header_count, HTTP_MAX_HEADERS);
    assert_string_equal(http_head_header(&head, "x-h99"), "99");
    assert_string_equal(head.headers[HTTP_MAX_HEADERS - 1].name, "X-H99");
}

static void test_keep_alive(void **state)
{
    (void)state;
    static const struct {
        const char *head;
        int keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n", 1},
        {"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nConnection: foo,close ,bar\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nConnection: \tfoo ,\tCLOSE\t\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\nConnection: upgrade, keep-alive\r\n\r\n", 1},
        {"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", 0}, /* close wins */
        {"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", 1},            /* not the token */
        {"GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nConnection:\r\n\r\n", 1},
        {"GET / HTTP/1.1\r\nConnection: ,,\r\n\r\n", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parse_ok(cases[i].head);
        if (head.keep_alive != cases[i].keep_alive)
            fail_msg("%s: keep_alive %d, expected %d", cases[i].head, head.keep_alive, cases[i].keep_alive);
    }
}

static void test_expect_continue(void **state)
{
    (void)state;
    parse_ok("POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    assert_int_equal(head.expect_continue, 1);
    assert_true(head.content_length == 3);
    parse_ok("POST / HTTP/1.1\r\nexpect:  100-Continue \r\n\r\n");
    assert_int_equal(head.expect_continue, 1);
    parse_ok("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
    assert_int_equal(head.expect_continue, 0);
}

/* ---- chunked bodies --------------------------------------------------------------------------------------- */

struct sink_buf {
    char data[4096];
    size_t len;
    size_t calls;
};

static void sink(void *ctx, const char *data, size_t n)
{
    struct sink_buf *s = ctx;
    assert_true(s->len + n <= sizeof s->data);
    memcpy(s->data + s->len, data, n);
    s->len += n;
    s->calls++;
}

static const char body_crlf[] = "4;name=value\r\nWiki\r\n"
                                "5 ; ext ; other=\"quoted\"\r\npedia\r\n"
                                "E\r\n in\r\n\r\nchunks.\r\n"
                                "0a\r\n0123456789\r\n"
                                "0;last\r\nTrailer: x\r\nOther-Trailer: y z\r\n\r\n";
static const char body_crlf_data[] = "Wikipedia in\r\n\r\nchunks.0123456789";

static const char body_lf[] = "3\nabc\n1;x\nd\n0\nT: 1\n\n";
static const char pipelined[] = "GET /next HTTP/1.1\r\n\r\n";

/* Feeds in[0, len) in one call; asserts the verdict and, on DONE, consumed. Returns the decoded bytes in s. */
static int feed_whole(const char *in, size_t len, struct sink_buf *s, size_t *consumed)
{
    http_chunked d;
    memset(&d, 0, sizeof d);
    memset(s, 0, sizeof *s);
    *consumed = (size_t)-1;
    return http_chunked_feed(&d, in, len, consumed, sink, s);
}

static void test_chunked_decode(void **state)
{
    (void)state;
    struct sink_buf s;
    char buf[512];
    size_t body_len = sizeof body_crlf - 1, consumed;

    /* the body alone */
    assert_int_equal(feed_whole(body_crlf, body_len, &s, &consumed), HTTP_CHUNKED_DONE);
    assert_int_equal(consumed, body_len);
    assert_int_equal(s.len, sizeof body_crlf_data - 1);
    assert_memory_equal(s.data, body_crlf_data, s.len);

    /* with a pipelined request after it: consumed ends right after the trailers' empty line */
    memcpy(buf, body_crlf, body_len);
    memcpy(buf + body_len, pipelined, sizeof pipelined);
    assert_int_equal(feed_whole(buf, body_len + sizeof pipelined - 1, &s, &consumed), HTTP_CHUNKED_DONE);
    assert_int_equal(consumed, body_len);
    assert_int_equal(s.len, sizeof body_crlf_data - 1);
    assert_memory_equal(s.data, body_crlf_data, s.len);

    /* bare LF line ends */
    size_t lf_len = sizeof body_lf - 1;
    memcpy(buf, body_lf, lf_len);
    memcpy(buf + lf_len, pipelined, sizeof pipelined);
    assert_int_equal(feed_whole(buf, lf_len + sizeof pipelined - 1, &s, &consumed), HTTP_CHUNKED_DONE);
    assert_int_equal(consumed, lf_len);
    assert_int_equal(s.len, 4);
    assert_memory_equal(s.data, "abcd", 4);

    /* the empty body, with and without a trailer */
    assert_int_equal(feed_whole("0\r\n\r\nGET", 8, &s, &consumed), HTTP_CHUNKED_DONE);
    assert_int_equal(consumed, 5);
    assert_int_equal(s.len, 0);
    assert_int_equal(s.calls, 0);
    assert_int_equal(feed_whole("000\r\nA: b\r\n\r\n", 13, &s, &consumed), HTTP_CHUNKED_DONE);
    assert_int_equal(consumed, 13);

    /* upper- and lower-case hex sizes */
    assert_int_equal(feed_whole("A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n", 36, &s, &consumed),
                     HTTP_CHUNKED_DONE);
    assert_int_equal(consumed, 36);
    assert_int_equal(s.len, 21);
    assert_memory_equal(s.data, "0123456789abcdefghijk", 21);

    /* every proper prefix of the body is MORE and consumes all of it */
    for (size_t k = 0; k < body_len; k++) {
        int rc = feed_whole(body_crlf, k, &s, &consumed);
        if (rc != HTTP_CHUNKED_MORE || consumed != k)
            fail_msg("prefix of %zu bytes: rc %d, consumed %zu", k, rc, consumed);
    }
}

static void test_chunked_pieces(void **state)
{
    (void)state;
    struct sink_buf s;
    char buf[512];
    size_t body_len = sizeof body_crlf - 1;
    memcpy(buf, body_crlf, body_len);
    memcpy(buf + body_len, pipelined, sizeof pipelined);
    size_t total = body_len + sizeof pipelined - 1;

    /* one byte at a time: MORE with 1 consumed, DONE exactly at the body's last byte */
    http_chunked d;
    memset(&d, 0, sizeof d);
    memset(&s, 0, sizeof s);
    size_t pos = 0;
    int rc = HTTP_CHUNKED_MORE;
    while (pos < total) {
        size_t consumed = (size_t)-1;
        rc = http_chunked_feed(&d, buf + pos, 1, &consumed, sink, &s);
        assert_int_not_equal(rc, HTTP_CHUNKED_ERROR);
        assert_int_equal(consumed, 1);
        pos++;
        if (rc == HTTP_CHUNKED_DONE)
            break;
    }
    assert_int_equal(rc, HTTP_CHUNKED_DONE);
    assert_int_equal(pos, body_len);
    assert_int_equal(s.len, sizeof body_crlf_data - 1);
    assert_memory_equal(s.data, body_crlf_data, s.len);

    /* split in two at every position */
    for (size_t cut = 0; cut <= total; cut++) {
        memset(&d, 0, sizeof d);
        memset(&s, 0, sizeof s);
        size_t consumed = (size_t)-1, used = 0;
        rc = http_chunked_feed(&d, buf, cut, &consumed, sink, &s);
        used = consumed;
        if (rc == HTTP_CHUNKED_MORE) {
            assert_int_equal(consumed, cut);
            rc = http_chunked_feed(&d, buf + cut, total - cut, &consumed, sink, &s);
            used += consumed;
        }
        if (rc != HTTP_CHUNKED_DONE || used != body_len)
            fail_msg("split at %zu: rc %d, consumed %zu of %zu", cut, rc, used, body_len);
        assert_int_equal(s.len, sizeof body_crlf_data - 1);
        assert_memory_equal(s.data, body_crlf_data, s.len);
    }
}

static void test_chunked_errors(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *what;
    } bad[] = {
        {"g\r\n", "non-hex size"},
        {"x1\r\n", "non-hex size"},
        {"-1\r\n", "negative size"},
        {"\r\n", "no size"},
        {";ext\r\n", "no size"},
        {"1000000000000000\r\n", "16 hex digits"},
        {"0000000000000000\r\n", "16 hex digits, even zeros"},
        {"3\r\nabcX\r\n", "no CRLF after the data"},
        {"3\r\nabc\rX", "CR after the data not followed by LF"},
        {"3\r\nabcd\r\n0\r\n\r\n", "more data than the size"},
        {"3\rX", "CR after the size not followed by LF"},
        {"3;a\rb\r\n", "CR in an extension"},
        {"1;a\x01z\r\nx\r\n0\r\n\r\n", "control character in an extension"},
        {"1;a\x7fz\r\nx\r\n0\r\n\r\n", "DEL in an extension"},
        {"1;a\x1bz\r\nx\r\n0\r\n\r\n", "ESC in an extension"},
        {"0\r\nT: a\x01z\r\n\r\n", "control character in a trailer"},
        {"0\r\nT: a\rz\r\n\r\n", "bare CR in a trailer"},
        {"5 6\r\nabcde\r\n0\r\n\r\n", "a second number after the size (read as 5 here, maybe 0x56 elsewhere)"},
        {"5 x;e\r\nabcde\r\n0\r\n\r\n", "text other than an extension after the size"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sink_buf s;
        size_t consumed;
        int rc = feed_whole(bad[i].body, strlen(bad[i].body), &s, &consumed);
        if (rc != HTTP_CHUNKED_ERROR)
            fail_msg("%s: rc %d, expected an error", bad[i].what, rc);
    }
    /* a NUL in an extension */
    struct sink_buf s;
    size_t consumed;
    assert_int_equal(feed_whole("1;a\0b\r\nx\r\n0\r\n\r\n", 15, &s, &consumed), HTTP_CHUNKED_ERROR);

    /* 15 hex digits are fine */
    static const char fifteen[] = "000000000000001\r\nx\r\n0\r\n\r\n";
    assert_int_equal(feed_whole(fifteen, sizeof fifteen - 1, &s, &consumed), HTTP_CHUNKED_DONE);
    assert_int_equal(consumed, sizeof fifteen - 1);
    assert_int_equal(s.len, 1);

    /* the size line with its extensions is limited */
    static char line[2200];
    size_t n = (size_t)snprintf(line, sizeof line, "1;");
    while (n < 2000)
        line[n++] = 'e';
    memcpy(line + n, "\r\nx\r\n0\r\n\r\n", 10);
    assert_int_equal(feed_whole(line, n + 10, &s, &consumed), HTTP_CHUNKED_ERROR);
    /* whitespace between the size and ';' or the line's end is fine (BWS) */
    static const char bws[] = "1 \t;a=b\r\nx\r\n2 \r\nyz\r\n0\r\n\r\n";
    assert_int_equal(feed_whole(bws, sizeof bws - 1, &s, &consumed), HTTP_CHUNKED_DONE);
    assert_int_equal(s.len, 3);
    /* a short extension with a tab is fine */
    static const char tab_ext[] = "1;a=\tb\r\nx\r\n0\r\n\r\n";
    assert_int_equal(feed_whole(tab_ext, sizeof tab_ext - 1, &s, &consumed), HTTP_CHUNKED_DONE);
    assert_int_equal(consumed, sizeof tab_ext - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_query_limits),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_leading_empty_lines),
        cmocka_unit_test(test_head_length_prefixes),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_accepted_framing),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_chunked_decode),
        cmocka_unit_test(test_chunked_pieces),
        cmocka_unit_test(test_chunked_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
