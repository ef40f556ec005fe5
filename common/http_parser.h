/*
 * http_parser — HTTP/1.x request heads and chunked bodies, parsed in place. No I/O, no allocation.
 *
 * http_server.c reads bytes off a connection and asks http_head_length() whether a whole head (request line,
 * header lines, blank line) has arrived; it copies the head into a buffer of its own and http_parse_head()
 * splits that buffer in place (NULs written over separators), so every string in http_request_head points into
 * the caller's buffer and lives exactly as long as it. Bodies sent with `Transfer-Encoding: chunked` go through
 * http_chunked_feed(), a resumable decoder that hands the data bytes to a sink as they are decoded.
 *
 * What is refused, and with which status (http_parse_head's return value; *why is a static message for the
 * JSON error body):
 *   400  anything not a well-formed request line or header line (bare CR, control characters, a space before
 *        the colon, an obsolete folded line, a bad percent-escape or an encoded NUL in the path, a target that
 *        does not start with '/'), a Content-Length that is not all digits, two different Content-Lengths,
 *        both Content-Length and Transfer-Encoding (the request-smuggling pair), Transfer-Encoding in HTTP/1.0,
 *        a Transfer-Encoding other than chunked, an HTTP version other than 1.0 and 1.1 (RFC 9110 has 501 and
 *        505 for the last two; the API answers every malformed request with a 4xx, so that a client reads
 *        "fix your request", never "the server failed")
 *   413  a Content-Length of more than 18 digits
 *   417  an Expect other than 100-continue
 *   431  more than HTTP_MAX_HEADERS header lines
 * The size of the head as a whole is the caller's limit (it decides 431 before calling).
 */
#ifndef HOOKD_HTTP_PARSER_H
#define HOOKD_HTTP_PARSER_H

#include <stddef.h>

#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_QUERY_ARGS 32

/* A header line or a query argument: NUL-terminated strings inside the parsed buffer. */
typedef struct http_field {
    const char *name;
    const char *value;
} http_field;

typedef struct http_request_head {
    const char *method;             /* e.g. "POST" */
    const char *path;               /* the target's path, percent-decoded */
    int minor_version;              /* HTTP/1.<minor_version>: 0 or 1 */
    int keep_alive;                 /* the connection may carry another request after this one */
    int expect_continue;            /* "Expect: 100-continue" */
    int chunked;                    /* "Transfer-Encoding: chunked" */
    long long content_length;       /* -1 when absent */
    size_t header_count;
    http_field headers[HTTP_MAX_HEADERS];
    size_t query_count;             /* arguments past HTTP_MAX_QUERY_ARGS are ignored */
    http_field query[HTTP_MAX_QUERY_ARGS]; /* decoded ('+' is a space) */
} http_request_head;

/* Length of the head at the start of buf (through its blank line; lines end in CRLF or LF), or 0 while it is
 * incomplete. Leading empty lines are part of the head (http_parse_head skips them). *scanned is the caller's
 * memory of how far earlier calls looked, so that a head arriving a byte at a time is not scanned again from
 * its start each time: 0 for a new head, then left as this function sets it while it returns 0. */
size_t http_head_length(const char *buf, size_t len, size_t *scanned);

/* Parses the len bytes of a complete head (as measured by http_head_length) in place. Returns 0, or the HTTP
 * status to refuse the request with and *why (a static string). head's strings point into buf. */
int http_parse_head(char *buf, size_t len, http_request_head *head, const char **why);

/* Value of the first header named name (case-insensitive), or NULL. */
const char *http_head_header(const http_request_head *head, const char *name);

/* Value of the first query argument named name (exact), or NULL. */
const char *http_head_query(const http_request_head *head, const char *name);

/* Resumable decoder of a chunked body. Zero-initialise it before the first call. */
typedef struct http_chunked {
    int state;                    /* internal */
    unsigned long long remaining; /* data bytes left in the current chunk */
    size_t line_len;              /* bytes of the current size or trailer line seen */
    size_t trailer_bytes;         /* bytes of trailer section seen */
} http_chunked;

#define HTTP_CHUNKED_MORE 0  /* every input byte consumed, the body goes on */
#define HTTP_CHUNKED_DONE 1  /* the last chunk and the trailers are in; *consumed says where the body ended */
#define HTTP_CHUNKED_ERROR -1 /* malformed: answer 400 and close */

/* Decodes len bytes of in, calling sink(ctx, data, n) for the data bytes. *consumed is set to the bytes used
 * (all of them unless the body ended inside in). */
int http_chunked_feed(http_chunked *decoder, const char *in, size_t len, size_t *consumed,
                      void (*sink)(void *ctx, const char *data, size_t n), void *ctx);

#endif
