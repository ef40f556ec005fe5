/* http_parser — see http_parser.h. */
#include "http_parser.h"
#include "hex.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 tchar: the characters of a method or a header name. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A byte allowed inside a header value: visible ASCII, space, tab, or obs-text (>= 0x80). */
static int is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

size_t http_head_length(const char *buf, size_t len, size_t *scanned)
{
    size_t i = *scanned;
    if (i == 0) {
        /* leading empty lines (RFC 9112 2.2: a server should ignore at least one before the request line) */
        while (i < len && (buf[i] == '\r' || buf[i] == '\n')) {
            if (buf[i] == '\r' && (i + 1 >= len || buf[i + 1] != '\n'))
                break;
            i += buf[i] == '\r' ? 2 : 1;
        }
        /* the input ended among them: *scanned stays 0 so that the next call skips them again (resuming past
         * them would take the next empty line for the end of the head) */
        if (i >= len || (buf[i] == '\r' && i + 1 >= len))
            return 0;
    }
    size_t first = i;
    const char *end = buf + len;
    for (const char *p = buf + i; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        /* nl ends a line; the head ends when the next line is empty */
        const char *next = nl + 1;
        if (next < end && *next == '\n')
            return (size_t)(next + 1 - buf);
        if (next + 1 < end && next[0] == '\r' && next[1] == '\n')
            return (size_t)(next + 2 - buf);
        p = next;
    }
    /* not yet: the next call starts where a terminator could still begin */
    *scanned = len >= 3 && len - 3 > first ? len - 3 : first;
    return 0;
}

/* Splits the next line off *cursor (through end), NUL-terminating it over its CR or LF. Returns the line, or
 * NULL when a CR stands anywhere but right before the LF. */
static char *take_line(char **cursor, char *end, size_t *line_len)
{
    char *line = *cursor;
    char *nl = memchr(line, '\n', (size_t)(end - line));
    if (nl == NULL)
        return NULL;
    char *stop = nl;
    if (stop > line && stop[-1] == '\r')
        stop--;
    if (memchr(line, '\r', (size_t)(stop - line)) != NULL)
        return NULL;
    *stop = '\0';
    *line_len = (size_t)(stop - line);
    *cursor = nl + 1;
    return line;
}

/* Percent-decodes text in place ('+' becomes a space when plus_is_space). Returns -1 on a bad escape or an
 * encoded NUL. */
static int percent_decode(char *text, int plus_is_space)
{
    char *out = text;
    for (char *in = text; *in != '\0'; in++) {
        if (*in == '%') {
            int hi = hex_digit_value((unsigned char)in[1]);
            int lo = hi < 0 ? -1 : hex_digit_value((unsigned char)in[2]);
            if (lo < 0 || (hi == 0 && lo == 0))
                return -1;
            *out++ = (char)(hi * 16 + lo);
            in += 2;
        } else {
            *out++ = plus_is_space && *in == '+' ? ' ' : *in;
        }
    }
    *out = '\0';
    return 0;
}

/* Splits a query string into decoded arguments; malformed escapes make the argument be skipped. */
static void parse_query(char *query, http_request_head *head)
{
    char *save = NULL;
    for (char *pair = strtok_r(query, "&", &save); pair != NULL; pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        char *value = pair + strlen(pair); /* "" inside buf: percent_decode writes its terminator */
        if (eq != NULL) {
            *eq = '\0';
            value = eq + 1;
        }
        if (head->query_count >= HTTP_MAX_QUERY_ARGS || percent_decode(pair, 1) != 0 ||
            percent_decode(value, 1) != 0)
            continue;
        head->query[head->query_count].name = pair;
        head->query[head->query_count].value = value;
        head->query_count++;
    }
}

/* True when the comma-separated list value holds token (case-insensitive). */
static int list_has(const char *value, const char *token)
{
    size_t token_len = strlen(token);
    const char *p = value;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p != '\0' && *p != ',')
            p++;
        const char *stop = p;
        while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if ((size_t)(stop - start) == token_len && strncasecmp(start, token, token_len) == 0)
            return 1;
    }
    return 0;
}

static int refuse(const char **why, const char *message, int status)
{
    *why = message;
    return status;
}

/* Reads the request line into head. Returns 0 or a status. */
static int parse_request_line(char *line, size_t len, http_request_head *head, char **query, const char **why)
{
    char *sp1 = memchr(line, ' ', len);
    if (sp1 == NULL || sp1 == line || sp1 - line > 32)
        return refuse(why, "malformed request line", 400);
    for (char *c = line; c < sp1; c++)
        if (!is_tchar((unsigned char)*c))
            return refuse(why, "malformed request line", 400);
    char *target = sp1 + 1;
    char *sp2 = strchr(target, ' ');
    if (sp2 == NULL || sp2 == target)
        return refuse(why, "malformed request line", 400);
    char *version = sp2 + 1;
    *sp1 = '\0';
    *sp2 = '\0';
    for (char *c = target; *c != '\0'; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c == 0x7f)
            return refuse(why, "malformed request line", 400);
    if (strncmp(version, "HTTP/", 5) != 0 || version[5] < '0' || version[5] > '9' || version[6] != '.' ||
        version[7] < '0' || version[7] > '9' || version[8] != '\0')
        return refuse(why, "malformed request line", 400);
    if (version[5] != '1' || version[7] > '1')
        return refuse(why, "HTTP version not supported (use HTTP/1.1)", 400);
    if (target[0] != '/')
        return refuse(why, "the request target must be a path", 400);
    head->method = line;
    head->minor_version = version[7] - '0';
    head->keep_alive = head->minor_version == 1;
    char *question = strchr(target, '?');
    if (question != NULL) {
        *question = '\0';
        *query = question + 1;
    }
    if (percent_decode(target, 0) != 0)
        return refuse(why, "malformed request path", 400);
    head->path = target;
    return 0;
}

/* Applies one header that changes how the request is framed or the connection is kept. */
static int apply_header(http_request_head *head, const char *name, const char *value, const char **why)
{
    if (strcasecmp(name, "Content-Length") == 0) {
        size_t digits = strlen(value);
        if (digits == 0 || strspn(value, "0123456789") != digits)
            return refuse(why, "invalid Content-Length", 400);
        if (digits > 18)
            return refuse(why, "request body too large", 413);
        long long length = 0;
        for (size_t i = 0; i < digits; i++)
            length = length * 10 + (value[i] - '0');
        if (head->content_length >= 0 && head->content_length != length)
            return refuse(why, "conflicting Content-Length headers", 400);
        head->content_length = length;
    } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
        if (strcasecmp(value, "chunked") != 0 || head->chunked)
            return refuse(why, "unsupported Transfer-Encoding (only chunked is)", 400);
        head->chunked = 1;
    } else if (strcasecmp(name, "Connection") == 0) {
        if (list_has(value, "close"))
            head->keep_alive = 0;
        else if (list_has(value, "keep-alive"))
            head->keep_alive = 1;
    } else if (strcasecmp(name, "Expect") == 0) {
        if (strcasecmp(value, "100-continue") != 0)
            return refuse(why, "unsupported Expect", 417);
        head->expect_continue = 1;
    }
    return 0;
}

int http_parse_head(char *buf, size_t len, http_request_head *head, const char **why)
{
    memset(head, 0, offsetof(http_request_head, headers));
    head->header_count = 0;
    head->query_count = 0;
    head->content_length = -1;
    char *cursor = buf;
    char *end = buf + len;
    /* the leading empty lines http_head_length skipped (a bare CR is not one) */
    while (cursor < end && (*cursor == '\n' || (*cursor == '\r' && cursor + 1 < end && cursor[1] == '\n')))
        cursor += *cursor == '\r' ? 2 : 1;
    size_t line_len = 0;
    char *line = take_line(&cursor, end, &line_len);
    if (line == NULL || line_len == 0 || memchr(line, '\0', line_len) != NULL)
        return refuse(why, "malformed request line", 400);
    char *query = NULL;
    int status = parse_request_line(line, line_len, head, &query, why);
    if (status != 0)
        return status;

    for (;;) {
        line = take_line(&cursor, end, &line_len);
        if (line == NULL)
            return refuse(why, "malformed header line", 400);
        if (line_len == 0)
            break;
        if (line[0] == ' ' || line[0] == '\t')
            return refuse(why, "folded header lines are not accepted", 400);
        char *colon = memchr(line, ':', line_len);
        if (colon == NULL || colon == line)
            return refuse(why, "malformed header line", 400);
        for (char *c = line; c < colon; c++)
            if (!is_tchar((unsigned char)*c))
                return refuse(why, "malformed header name", 400);
        *colon = '\0';
        char *value = colon + 1;
        char *value_end = line + line_len;
        for (char *c = value; c < value_end; c++)
            if (!is_value_char((unsigned char)*c))
                return refuse(why, "malformed header value", 400);
        while (value < value_end && (*value == ' ' || *value == '\t'))
            value++;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            value_end--;
        *value_end = '\0';
        if (head->header_count >= HTTP_MAX_HEADERS)
            return refuse(why, "too many header lines", 431);
        head->headers[head->header_count].name = line;
        head->headers[head->header_count].value = value;
        head->header_count++;
        status = apply_header(head, line, value, why);
        if (status != 0)
            return status;
    }
    if (head->chunked && head->content_length >= 0)
        return refuse(why, "both Content-Length and Transfer-Encoding", 400);
    if (head->chunked && head->minor_version == 0)
        return refuse(why, "Transfer-Encoding in an HTTP/1.0 request", 400);
    if (query != NULL)
        parse_query(query, head);
    return 0;
}

const char *http_head_header(const http_request_head *head, const char *name)
{
    for (size_t i = 0; i < head->header_count; i++)
        if (strcasecmp(head->headers[i].name, name) == 0)
            return head->headers[i].value;
    return NULL;
}

const char *http_head_query(const http_request_head *head, const char *name)
{
    for (size_t i = 0; i < head->query_count; i++)
        if (strcmp(head->query[i].name, name) == 0)
            return head->query[i].value;
    return NULL;
}

/* The decoder's states: where in the chunk grammar the next byte falls. */
enum {
    CHUNK_SIZE = 0,      /* hex digits of a chunk size */
    CHUNK_SIZE_WS,       /* whitespace after the size: only ';' or the line's end may follow */
    CHUNK_EXTENSION,     /* ";name=value" after the size, ignored */
    CHUNK_SIZE_LF,       /* the LF after the size line's CR */
    CHUNK_DATA,          /* remaining data bytes */
    CHUNK_DATA_CR,       /* the CR (or LF) after the data */
    CHUNK_DATA_LF,       /* the LF after that CR */
    CHUNK_TRAILER,       /* a trailer line, or the final empty line */
    CHUNK_TRAILER_LF,    /* the LF after a trailer line's CR */
};

#define CHUNK_LINE_MAX 1024       /* a size line with its extensions */
#define CHUNK_TRAILERS_MAX 16384  /* all trailer lines together */

int http_chunked_feed(http_chunked *d, const char *in, size_t len, size_t *consumed,
                      void (*sink)(void *ctx, const char *data, size_t n), void *ctx)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        switch (d->state) {
        case CHUNK_SIZE: {
            int digit = hex_digit_value(c);
            if (digit >= 0) {
                if (d->line_len >= 15) /* 15 hex digits: far past any body limit, and no overflow */
                    return HTTP_CHUNKED_ERROR;
                d->remaining = d->remaining * 16 + (unsigned long long)digit;
                d->line_len++;
                i++;
                break;
            }
            if (d->line_len == 0)
                return HTTP_CHUNKED_ERROR;
            if (c == ';') {
                d->state = CHUNK_EXTENSION;
                break;
            }
            if (c == ' ' || c == '\t') {
                d->state = CHUNK_SIZE_WS;
                break;
            }
            if (c == '\r') {
                d->state = CHUNK_SIZE_LF;
                i++;
                break;
            }
            if (c == '\n') {
                i++;
                goto size_line_done;
            }
            return HTTP_CHUNKED_ERROR;
        }
        case CHUNK_SIZE_WS:
            /* "5 6" must not pass as 5: a proxy in front may read the line another way (RFC 9112 7.1.1) */
            if (c == ';' || c == '\r' || c == '\n') {
                d->state = CHUNK_EXTENSION;
                break;
            }
            if ((c != ' ' && c != '\t') || ++d->line_len > CHUNK_LINE_MAX)
                return HTTP_CHUNKED_ERROR;
            i++;
            break;
        case CHUNK_EXTENSION:
            if (c == '\r') {
                d->state = CHUNK_SIZE_LF;
            } else if (c == '\n') {
                i++;
                goto size_line_done;
            } else if (++d->line_len > CHUNK_LINE_MAX || (c < 0x20 && c != '\t') || c == 0x7f) {
                return HTTP_CHUNKED_ERROR;
            }
            i++;
            break;
        case CHUNK_SIZE_LF:
            if (c != '\n')
                return HTTP_CHUNKED_ERROR;
            i++;
        size_line_done:
            d->line_len = 0;
            d->state = d->remaining > 0 ? CHUNK_DATA : CHUNK_TRAILER;
            break;
        case CHUNK_DATA: {
            size_t take = len - i;
            if ((unsigned long long)take > d->remaining)
                take = (size_t)d->remaining;
            sink(ctx, in + i, take);
            d->remaining -= take;
            i += take;
            if (d->remaining == 0)
                d->state = CHUNK_DATA_CR;
            break;
        }
        case CHUNK_DATA_CR:
            if (c == '\r')
                d->state = CHUNK_DATA_LF;
            else if (c == '\n')
                d->state = CHUNK_SIZE;
            else
                return HTTP_CHUNKED_ERROR;
            i++;
            break;
        case CHUNK_DATA_LF:
            if (c != '\n')
                return HTTP_CHUNKED_ERROR;
            d->state = CHUNK_SIZE;
            i++;
            break;
        case CHUNK_TRAILER:
            i++;
            if (c == '\r') {
                d->state = CHUNK_TRAILER_LF;
                break;
            }
            if (c == '\n') {
                if (d->line_len == 0) {
                    *consumed = i;
                    return HTTP_CHUNKED_DONE;
                }
                d->line_len = 0;
                break;
            }
            if ((c < 0x20 && c != '\t') || c == 0x7f || ++d->trailer_bytes > CHUNK_TRAILERS_MAX)
                return HTTP_CHUNKED_ERROR;
            d->line_len++;
            break;
        case CHUNK_TRAILER_LF:
            if (c != '\n')
                return HTTP_CHUNKED_ERROR;
            i++;
            if (d->line_len == 0) {
                *consumed = i;
                return HTTP_CHUNKED_DONE;
            }
            d->line_len = 0;
            d->state = CHUNK_TRAILER;
            break;
        default:
            return HTTP_CHUNKED_ERROR;
        }
    }
    *consumed = i;
    return HTTP_CHUNKED_MORE;
}
