/* http_server — see http_server.h. */
#include "http_server.h"

#include "config.h"
#include "http_parser.h"
#include "log.h"
#include "timeutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (64 * 1024)          /* request line and headers together: past it, 431 */
#define READ_CHUNK (16 * 1024)        /* bytes asked of read() at a time */
#define INPUT_HELD_MAX (64 * 1024)    /* unparsed input kept while a request is answered (pipelining) */
#define IDLE_TIMEOUT_MS (30 * 1000)   /* a connection silent this long is closed (never while suspended) */
#define REQUEST_TIMEOUT_MS (30 * 1000) /* default time from a request's first byte to its last: then 408 */
#define CONNECTION_LIMIT 20000        /* connections past this are closed on accept (or past the fd limit) */
#define FD_RESERVE 128                /* descriptors kept for Redis, Kafka, logs and test deliveries */
#define BODY_KEEP_MAX (64 * 1024)     /* a body buffer up to this size is kept for the connection's next request */
#define EVENTS_PER_WAIT 128

struct http_loop;

/* Where a connection is in its current request. */
enum conn_state {
    CONN_HEAD,     /* waiting for (the rest of) a request head */
    CONN_BODY,     /* reading a Content-Length body */
    CONN_CHUNKED,  /* reading a chunked body */
    CONN_HANDLING, /* suspended in a handler: waiting for api_request_resume() */
    CONN_WRITING,  /* the reply did not fit in the socket buffer: waiting for EPOLLOUT */
};

/*
 * One client connection. Owned by its loop (loop thread only), except resume_next, which api_request_resume()
 * writes under the loop's lock. The api_request is the first member so that api_request_resume() can find the
 * connection from the request the handler holds.
 */
typedef struct http_conn {
    api_request req;                /* the request being served (valid from head to reply) */
    struct http_loop *loop;         /* owner */
    int fd;
    struct http_conn *prev, *next;  /* the loop's connection list */
    struct http_conn *resume_next;  /* the loop's resume queue */
    enum conn_state state;
    int in_request;                 /* req is live (counted in the server's in_flight) */
    int closed;                     /* conn_close() ran: freed when the loop's current batch of events is done */
    int read_closed;                /* the peer sent EOF: answer what is pending, then close */
    int socket_drained;             /* the last recv() came back short (or EAGAIN) and no input event came since:
                                     * the socket is empty, and with edge-triggered epoll the next bytes bring an
                                     * event of their own, so the recv() that would only say EAGAIN is skipped
                                     * (two of them per request on a keep-alive connection) */
    int eof_pending;                /* EPOLLRDHUP came: read until recv() says EOF, short reads or not */
    int close_after_write;          /* close once out is written */
    int64_t last_active_ms;         /* for the idle timeout */
    int64_t reading_since_ms;       /* first byte of the request being read, 0 between requests: a client that
                                     * trickles a request (a byte now and then keeps it from being idle) gets
                                     * 408 once the server's request timeout has passed */
    int64_t started_us;             /* first byte of the request's head, for the latency histogram */

    char *in;                       /* bytes read and not yet parsed: in[in_off .. in_len) */
    size_t in_off, in_len, in_cap;

    char *head_buf;                 /* the current request's head, parsed in place (head's strings) */
    size_t head_cap;
    http_request_head head;
    size_t head_scanned;            /* http_head_length()'s progress through an incomplete head */

    size_t body_cap;                /* bytes allocated for req.body */
    size_t body_limit;              /* the route's limit */
    long long body_left;            /* Content-Length bytes still to read */
    int too_large;                  /* the body passed body_limit: read and dropped, then 413 */
    size_t dropped;                 /* body bytes read and dropped since then */
    http_chunked chunked;           /* chunked body decoder */

    char *out;                      /* reply bytes: out[out_off .. out_len) still to write */
    size_t out_off, out_len, out_cap;
} http_conn;

/* One event loop thread: its epoll set, its connections, and the queue other threads resume requests through. */
typedef struct http_loop {
    struct http_server *server;
    pthread_t thread;
    int started;                    /* thread created */
    int epoll_fd;
    int wake_fd;                    /* eventfd: resumed requests waiting, or stop */
    pthread_mutex_t lock;           /* guards resumed_head/tail and wake_pending */
    http_conn *resumed_head, *resumed_tail;
    int wake_pending;               /* wake_fd written and not yet read */
    int resumed_here;               /* this loop's own thread queued a resume during the current batch of events
                                     * (no wake_fd write): served when the batch ends; loop thread only */
    http_conn *conns;               /* every connection of this loop */
    http_conn *closed;              /* closed during this batch of events, freed after it (a later event of the
                                     * same epoll_wait may still name them) */
    int64_t last_sweep_ms;
    int64_t last_fd_warning_ms;     /* "out of file descriptors" is logged at most once a second per loop */
    time_t date_second;             /* the second date_text was written for */
    char date_text[64];             /* "Date: ...\r\n" */
} http_loop;

struct http_server {
    http_server_config config;      /* copied, request_timeout_ms defaulted; config.api and the strings borrowed */
    int listen_fd;
    int loop_count;
    http_loop *loops;
    atomic_int stopping;
    atomic_int in_flight;           /* requests with a head parsed and no reply completed */
    atomic_int connections;         /* open connections, all loops */
    int connection_limit;           /* CONNECTION_LIMIT, lowered to what RLIMIT_NOFILE leaves */
};

/* The loop whose thread this is (NULL on other threads): a resume queued from a loop's own thread (a delivery
 * report served there) needs no eventfd write, the loop serves it when its current batch of events ends. */
static _Thread_local struct http_loop *running_loop;

/* Servers kept at exit because a request was still suspended (a late resume must find its loop): reachable, so
 * leak checkers do not count them. Written by the main thread only. */
static struct http_server *abandoned_server;

const char *api_header(api_request *req, const char *name)
{
    return http_head_header(&((http_conn *)req)->head, name);
}

const char *api_query(api_request *req, const char *name)
{
    return http_head_query(&((http_conn *)req)->head, name);
}

void api_request_suspend(api_request *req)
{
    ((http_conn *)req)->state = CONN_HANDLING;
}

void api_request_resume(api_request *req)
{
    http_conn *conn = (http_conn *)req;
    http_loop *loop = conn->loop;
    pthread_mutex_lock(&loop->lock);
    conn->resume_next = NULL;
    if (loop->resumed_tail != NULL)
        loop->resumed_tail->resume_next = conn;
    else
        loop->resumed_head = conn;
    loop->resumed_tail = conn;
    int wake = 0;
    if (running_loop == loop) {
        loop->resumed_here = 1;
    } else {
        wake = !loop->wake_pending;
        loop->wake_pending = 1;
    }
    pthread_mutex_unlock(&loop->lock);
    if (wake) {
        uint64_t one = 1;
        ssize_t n = write(loop->wake_fd, &one, sizeof one);
        (void)n; /* an eventfd write fails only when the counter would overflow: it is then readable anyway */
    }
}

/* ---- output ---- */

static int out_reserve(http_conn *conn, size_t more)
{
    if (conn->out_len + more <= conn->out_cap)
        return 0;
    size_t cap = conn->out_cap ? conn->out_cap : 1024;
    while (cap < conn->out_len + more)
        cap *= 2;
    char *grown = realloc(conn->out, cap);
    if (grown == NULL)
        return -1;
    conn->out = grown;
    conn->out_cap = cap;
    return 0;
}

static void out_append(http_conn *conn, const char *text, size_t len)
{
    memcpy(conn->out + conn->out_len, text, len);
    conn->out_len += len;
}

static void out_append_str(http_conn *conn, const char *text)
{
    out_append(conn, text, strlen(text));
}

static void out_append_number(http_conn *conn, unsigned long long value)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    while (n > 0)
        conn->out[conn->out_len++] = digits[--n];
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* The Date header of the current second, formatted once per second per loop. */
static const char *date_header(http_loop *loop)
{
    time_t now = time(NULL);
    if (now != loop->date_second || loop->date_text[0] == '\0') {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(loop->date_text, sizeof loop->date_text, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        loop->date_second = now;
    }
    return loop->date_text;
}

/* Appends the reply (status line, headers, body) to out and releases what the reply owns. A HEAD request gets
 * the headers only. Returns -1 when out of memory (the connection is then closed). */
static int queue_reply(http_conn *conn, api_reply *reply, int is_head)
{
    char *text = NULL;
    const char *content_type = "application/json";
    int free_text = 1;
    if (reply->text_owned != NULL) {
        text = reply->text_owned;
        reply->text_owned = NULL;
        content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (reply->text != NULL) {
        text = (char *)reply->text;
        free_text = 0;
        content_type = "text/plain; charset=utf-8";
    } else if (reply->json_owned != NULL) {
        text = reply->json_owned;
        reply->json_owned = NULL;
    } else if (reply->body != NULL) {
        /* reals with 15 significant digits: the delivery log's latency_ms 43.4 is 43.4, not jansson's default
         * 17 digits (43.399999999999999) */
        text = json_dumps(reply->body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    } else {
        text = "";
        free_text = 0;
    }
    json_decref(reply->body);
    reply->body = NULL;
    if (text == NULL)
        return -1;
    size_t len = strlen(text);
    int rc = out_reserve(conn, len + 512 + (reply->allow ? strlen(reply->allow) : 0));
    if (rc == 0) {
        char status[4] = {(char)('0' + reply->status / 100 % 10), (char)('0' + reply->status / 10 % 10),
                          (char)('0' + reply->status % 10), ' '};
        out_append_str(conn, "HTTP/1.1 ");
        out_append(conn, status, sizeof status);
        out_append_str(conn, reason_phrase(reply->status));
        out_append_str(conn, "\r\n");
        out_append_str(conn, date_header(conn->loop));
        out_append_str(conn, "Content-Length: ");
        out_append_number(conn, len);
        out_append_str(conn, "\r\n");
        if (len > 0) {
            out_append_str(conn, "Content-Type: ");
            out_append_str(conn, content_type);
            out_append_str(conn, "\r\n");
        }
        if (reply->retry_after[0] != '\0') {
            out_append_str(conn, "Retry-After: ");
            out_append(conn, reply->retry_after, strnlen(reply->retry_after, sizeof reply->retry_after));
            out_append_str(conn, "\r\n");
        }
        if (reply->allow != NULL) {
            out_append_str(conn, "Allow: ");
            out_append_str(conn, reply->allow);
            out_append_str(conn, "\r\n");
        }
        if (conn->close_after_write)
            out_append_str(conn, "Connection: close\r\n");
        else if (conn->head.minor_version == 0)
            out_append_str(conn, "Connection: keep-alive\r\n");
        out_append_str(conn, "\r\n");
        if (!is_head)
            out_append(conn, text, len);
    }
    if (free_text)
        free(text);
    return rc;
}

/* Writes what out holds. Returns 0 when all of it is written, 1 when the socket is full, -1 on error. */
static int flush_out(http_conn *conn)
{
    while (conn->out_off < conn->out_len) {
        ssize_t n = send(conn->fd, conn->out + conn->out_off, conn->out_len - conn->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            conn->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        return -1;
    }
    conn->out_off = conn->out_len = 0;
    return 0;
}

/* ---- connection life ---- */

/* Ends the current request: frees what the handler kept and takes it out of in_flight. */
static void request_end(http_conn *conn)
{
    if (!conn->in_request)
        return;
    if (conn->req.async_free != NULL)
        conn->req.async_free(conn->req.async_state);
    conn->req.async_free = NULL;
    conn->req.async_state = NULL;
    conn->req.resume_handler = NULL;
    if (conn->body_cap > BODY_KEEP_MAX) {
        free(conn->req.body);
        conn->req.body = NULL;
        conn->body_cap = 0;
    }
    conn->req.body_len = 0;
    conn->in_request = 0;
    atomic_fetch_sub(&conn->loop->server->in_flight, 1);
}

/* Closes the socket and ends the request; the memory goes on the loop's closed list until free_closed(). */
static void conn_close(http_conn *conn)
{
    http_loop *loop = conn->loop;
    if (conn->closed)
        return;
    request_end(conn);
    epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, conn->fd, NULL);
    close(conn->fd);
    conn->fd = -1;
    conn->closed = 1;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        loop->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    conn->prev = NULL;
    conn->next = loop->closed;
    loop->closed = conn;
    atomic_fetch_sub(&loop->server->connections, 1);
}

/* Frees the connections closed since the last call. */
static void free_closed(http_loop *loop)
{
    while (loop->closed != NULL) {
        http_conn *conn = loop->closed;
        loop->closed = conn->next;
        free(conn->in);
        free(conn->head_buf);
        free(conn->req.body);
        free(conn->out);
        free(conn);
    }
}

/* Appends body bytes to req.body, or marks the request too large (the rest is read and dropped). */
static void append_body(void *ctx, const char *data, size_t len)
{
    http_conn *conn = ctx;
    if (conn->too_large || conn->req.body_len + len > conn->body_limit) {
        conn->too_large = 1;
        conn->dropped += len;
        return;
    }
    if (conn->req.body_len + len + 1 > conn->body_cap) {
        size_t cap = conn->body_cap ? conn->body_cap : 4096;
        while (cap < conn->req.body_len + len + 1)
            cap *= 2;
        char *grown = realloc(conn->req.body, cap);
        if (grown == NULL) {
            conn->too_large = 1;
            return;
        }
        conn->req.body = grown;
        conn->body_cap = cap;
    }
    memcpy(conn->req.body + conn->req.body_len, data, len);
    conn->req.body_len += len;
    conn->req.body[conn->req.body_len] = '\0';
}

/* Queues a reply and what follows it: the connection goes on (keep-alive) or closes after writing. Records the
 * request in the metrics when one was started. */
static void finish(http_conn *conn, api_reply *reply)
{
    int is_head = conn->in_request && strcmp(conn->req.method, "HEAD") == 0;
    const http_server_config *config = &conn->loop->server->config;
    if (conn->in_request && config->observe != NULL)
        config->observe(config->api, conn->req.path, reply->status, time_monotonic_us() - conn->started_us);
    if (!conn->head.keep_alive || conn->read_closed || atomic_load(&conn->loop->server->stopping))
        conn->close_after_write = 1;
    if (queue_reply(conn, reply, is_head) != 0)
        conn->close_after_write = 1;
    free(reply->text_owned);
    free(reply->json_owned);
    json_decref(reply->body);
    request_end(conn);
    conn->state = CONN_WRITING;
    conn->last_active_ms = time_monotonic_ms();
    conn->reading_since_ms = 0;
}

/* Refuses the request or connection with status and a JSON message, then closes. */
static void refuse(http_conn *conn, int status, const char *message)
{
    api_reply reply = {0};
    api_reply_message(&reply, status, message);
    conn->close_after_write = 1;
    finish(conn, &reply);
}

/* Hands a complete request to the router (or answers 413). */
static void dispatch(http_conn *conn)
{
    api_reply reply = {0};
    if (conn->too_large) { /* the body was read and dropped: the connection may go on */
        api_reply_message(&reply, 413, "request body too large");
        finish(conn, &reply);
        return;
    }
    append_body(conn, "", 0); /* handlers rely on a NUL-terminated body, also an empty one */
    if (conn->req.body == NULL) {
        refuse(conn, 500, "out of memory");
        return;
    }
    conn->state = CONN_HANDLING; /* a handler that suspends finds it so; api_request_suspend() says it again */
    conn->reading_since_ms = 0;
    int outcome = conn->loop->server->config.dispatch(&conn->req, &reply);
    if (outcome == API_SUSPENDED)
        return;
    finish(conn, &reply);
}

/* Starts a request from a complete head of head_len bytes at the front of the input. */
static void begin_request(http_conn *conn, size_t head_len)
{
    if (head_len + 1 > conn->head_cap) {
        size_t cap = conn->head_cap ? conn->head_cap : 1024;
        while (cap < head_len + 1)
            cap *= 2;
        char *grown = realloc(conn->head_buf, cap);
        if (grown == NULL) {
            refuse(conn, 500, "out of memory");
            return;
        }
        conn->head_buf = grown;
        conn->head_cap = cap;
    }
    memcpy(conn->head_buf, conn->in + conn->in_off, head_len);
    conn->head_buf[head_len] = '\0';
    conn->in_off += head_len;
    conn->head_scanned = 0;
    conn->started_us = time_monotonic_us();
    const char *why = NULL;
    int status = http_parse_head(conn->head_buf, head_len, &conn->head, &why);
    if (status != 0) {
        conn->head.keep_alive = 0;
        refuse(conn, status, why);
        return;
    }
    http_server *server = conn->loop->server;
    conn->in_request = 1;
    atomic_fetch_add(&server->in_flight, 1);
    conn->req.api = server->config.api;
    conn->req.method = conn->head.method;
    conn->req.path = conn->head.path;
    conn->req.body_len = 0;
    conn->req.async_state = NULL;
    conn->req.async_free = NULL;
    conn->req.resume_handler = NULL;
    conn->body_limit = server->config.body_limit(conn->head.method, conn->head.path);
    conn->too_large = 0;
    conn->dropped = 0;
    memset(&conn->chunked, 0, sizeof conn->chunked);
    if (conn->head.content_length > (long long)conn->body_limit) {
        /* A modestly oversized body is read and dropped so the client, still sending, gets to read the 413
         * (answering early makes the kernel reset the connection under its feet). A huge one is refused at
         * once: reading it would cost more than a reset client. */
        if (conn->head.content_length > (long long)conn->body_limit * 16) {
            conn->head.keep_alive = 0;
            refuse(conn, 413, "request body too large");
            return;
        }
        conn->too_large = 1;
    }
    int has_body = conn->head.chunked || conn->head.content_length > 0;
    if (has_body && conn->head.expect_continue && conn->in_off == conn->in_len) {
        if (conn->too_large) {
            conn->head.keep_alive = 0; /* the client will not send the body: nothing to skip */
            refuse(conn, 413, "request body too large");
            return;
        }
        if (out_reserve(conn, 32) == 0)
            out_append_str(conn, "HTTP/1.1 100 Continue\r\n\r\n");
    }
    if (conn->head.chunked) {
        conn->state = CONN_CHUNKED;
    } else if (conn->head.content_length > 0) {
        conn->body_left = conn->head.content_length;
        conn->state = CONN_BODY;
    } else {
        dispatch(conn);
    }
}

/*
 * Parses what the input holds: heads, bodies, as far as it goes. Stops when more input is needed, or a request
 * is being handled or answered (refusals are queued as replies, closed once written).
 */
static void parse_input(http_conn *conn)
{
    for (;;) {
        size_t avail = conn->in_len - conn->in_off;
        switch (conn->state) {
        case CONN_HEAD: {
            if (avail > 0 && conn->reading_since_ms == 0)
                conn->reading_since_ms = time_monotonic_ms(); /* blank lines count: they keep it from being idle */
            /* empty lines before a request (some clients send CRLF after a body) are dropped as they come, so
             * that a stream of them is neither rescanned nor held */
            while (conn->head_scanned == 0 && avail > 0 &&
                   (conn->in[conn->in_off] == '\n' ||
                    (avail > 1 && conn->in[conn->in_off] == '\r' && conn->in[conn->in_off + 1] == '\n'))) {
                size_t skip = conn->in[conn->in_off] == '\n' ? 1 : 2;
                conn->in_off += skip;
                avail -= skip;
            }
            if (avail == 0)
                return;
            size_t head_len = http_head_length(conn->in + conn->in_off, avail, &conn->head_scanned);
            if (head_len == 0) {
                if (avail > HEAD_MAX) {
                    conn->head.keep_alive = 0;
                    refuse(conn, 431, "request head too large");
                }
                if (conn->state == CONN_HEAD)
                    return;
                break;
            }
            if (head_len > HEAD_MAX) {
                conn->head.keep_alive = 0;
                refuse(conn, 431, "request head too large");
                break;
            }
            begin_request(conn, head_len);
            break;
        }
        case CONN_BODY: {
            if (avail == 0)
                return;
            size_t take = (long long)avail < conn->body_left ? avail : (size_t)conn->body_left;
            append_body(conn, conn->in + conn->in_off, take);
            conn->in_off += take;
            conn->body_left -= (long long)take;
            if (conn->body_left > 0)
                return;
            dispatch(conn);
            break;
        }
        case CONN_CHUNKED: {
            if (avail == 0)
                return;
            size_t used = 0;
            int rc = http_chunked_feed(&conn->chunked, conn->in + conn->in_off, avail, &used, append_body, conn);
            conn->in_off += used;
            if (rc == HTTP_CHUNKED_ERROR) {
                conn->head.keep_alive = 0;
                refuse(conn, 400, "malformed chunked body");
                break;
            }
            if (conn->too_large && conn->dropped > conn->body_limit * 16) {
                /* like a huge Content-Length: refused at once rather than read on; a modestly oversized body is
                 * read and dropped so that the client, still sending, gets to read its 413 */
                conn->head.keep_alive = 0;
                refuse(conn, 413, "request body too large");
                break;
            }
            if (rc == HTTP_CHUNKED_MORE)
                return;
            dispatch(conn);
            break;
        }
        case CONN_HANDLING:
        case CONN_WRITING:
            return;
        }
    }
}

/* Drops parsed input from the front of the buffer. */
static void compact_input(http_conn *conn)
{
    if (conn->in_off == 0)
        return;
    if (conn->in_off < conn->in_len)
        memmove(conn->in, conn->in + conn->in_off, conn->in_len - conn->in_off);
    conn->in_len -= conn->in_off;
    conn->in_off = 0;
}

/*
 * Moves the connection as far as it can: writes pending output, parses input, reads more while the socket has
 * some (edge-triggered epoll: until EAGAIN, unless the buffer of held input is full). Closes the connection when
 * it is done; the caller must not touch conn after a return of -1.
 */
static int conn_run(http_conn *conn)
{
    for (;;) {
        if (conn->out_len > conn->out_off || conn->state == CONN_WRITING) {
            int rc = flush_out(conn);
            if (rc < 0) {
                if (conn->state == CONN_HANDLING) { /* keep it until its resume; the reply will fail too */
                    conn->read_closed = 1;
                    return 0;
                }
                conn_close(conn);
                return -1;
            }
            if (rc > 0)
                return 0; /* EPOLLOUT will call again */
            if (conn->state == CONN_WRITING) {
                if (conn->close_after_write) {
                    conn_close(conn);
                    return -1;
                }
                conn->state = CONN_HEAD;
            }
        }
        parse_input(conn);
        if (conn->state == CONN_WRITING || (conn->out_len > conn->out_off && conn->state != CONN_HANDLING))
            continue; /* a reply (or a 100 Continue) was queued: write it, then parse on */
        if (conn->read_closed) {
            if (conn->state == CONN_HANDLING)
                return 0; /* the reply is still owed */
            conn_close(conn);
            return -1;
        }
        compact_input(conn);
        if (conn->in_len >= INPUT_HELD_MAX && conn->state == CONN_HANDLING)
            return 0; /* read again once the request is answered */
        if (conn->in_cap - conn->in_len < READ_CHUNK) {
            size_t cap = conn->in_cap ? conn->in_cap * 2 : READ_CHUNK;
            if (cap > HEAD_MAX + 2 * READ_CHUNK)
                cap = HEAD_MAX + 2 * READ_CHUNK;
            if (cap > conn->in_cap) {
                char *grown = realloc(conn->in, cap);
                if (grown == NULL) {
                    conn_close(conn);
                    return -1;
                }
                conn->in = grown;
                conn->in_cap = cap;
            }
        }
        size_t room = conn->in_cap - conn->in_len;
        if (room == 0) {
            /* the head limit stops a head before this; only a request being handled holds input this long */
            return 0;
        }
        if (conn->socket_drained)
            return 0; /* nothing came since the socket was found empty: the next bytes bring an event */
        ssize_t n = recv(conn->fd, conn->in + conn->in_len, room, 0);
        if (n > 0) {
            conn->in_len += (size_t)n;
            conn->last_active_ms = time_monotonic_ms();
            /* a short read took everything the socket held, unless an EOF is waiting behind it (no event of its
             * own would announce that one: EPOLLRDHUP already came) */
            if ((size_t)n < room && !conn->eof_pending)
                conn->socket_drained = 1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn->socket_drained = 1;
            return 0;
        }
        /* EOF or a reset: a request still being handled is answered (or fails to be) first */
        conn->read_closed = 1;
        if (conn->state == CONN_HANDLING)
            return 0;
        conn_close(conn);
        return -1;
    }
}

/* ---- the loop ---- */

static void accept_connections(http_loop *loop)
{
    http_server *server = loop->server;
    for (;;) {
        int fd = accept4(server->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && time_monotonic_ms() - loop->last_fd_warning_ms >= 1000) {
                loop->last_fd_warning_ms = time_monotonic_ms();
                log_json(LOG_WARN, "http", "{s:s}", "detail", "out of file descriptors: connection not accepted");
            }
            return; /* EAGAIN, or the listener is shut down */
        }
        if (atomic_load(&server->connections) >= server->connection_limit) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        http_conn *conn = calloc(1, sizeof *conn);
        if (conn == NULL) {
            close(fd);
            continue;
        }
        conn->loop = loop;
        conn->fd = fd;
        conn->state = CONN_HEAD;
        conn->last_active_ms = time_monotonic_ms();
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = conn};
        if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(conn);
            continue;
        }
        conn->next = loop->conns;
        if (loop->conns != NULL)
            loop->conns->prev = conn;
        loop->conns = conn;
        atomic_fetch_add(&server->connections, 1);
        conn_run(conn);
    }
}

/* Runs the resume handlers of the requests resumed (by other threads, woken through wake_fd, or by this one),
 * and answers them. from_wake: wake_fd was readable (read it; only then may another thread write it again). */
static void serve_resumed(http_loop *loop, int from_wake)
{
    if (from_wake) {
        uint64_t count;
        ssize_t n = read(loop->wake_fd, &count, sizeof count);
        (void)n;
    }
    loop->resumed_here = 0;
    pthread_mutex_lock(&loop->lock);
    http_conn *conn = loop->resumed_head;
    loop->resumed_head = loop->resumed_tail = NULL;
    if (from_wake)
        loop->wake_pending = 0;
    pthread_mutex_unlock(&loop->lock);
    while (conn != NULL) {
        http_conn *next = conn->resume_next;
        if (conn->closed) { /* cannot happen: a suspended connection is never closed; kept as a guard */
            conn = next;
            continue;
        }
        api_reply reply = {0};
        int outcome = conn->req.resume_handler(&conn->req, &reply);
        if (outcome != API_SUSPENDED) {
            finish(conn, &reply);
            conn_run(conn);
        }
        conn = next;
    }
}

/* Closes connections silent for IDLE_TIMEOUT_MS (a request being handled is never cut) and answers 408 to a
 * request still being read request_timeout_ms after its first byte (slowloris: one byte now and then would
 * otherwise hold a connection, and enough of them every connection the server allows). */
static void sweep_idle(http_loop *loop, int64_t now_ms)
{
    loop->last_sweep_ms = now_ms;
    http_conn *conn = loop->conns;
    int64_t request_timeout_ms = loop->server->config.request_timeout_ms;
    while (conn != NULL) {
        http_conn *next = conn->next;
        int reading = conn->state == CONN_HEAD || conn->state == CONN_BODY || conn->state == CONN_CHUNKED;
        if (conn->state != CONN_HANDLING && now_ms - conn->last_active_ms > IDLE_TIMEOUT_MS) {
            conn_close(conn);
        } else if (reading && conn->reading_since_ms != 0 && now_ms - conn->reading_since_ms > request_timeout_ms) {
            size_t pending = conn->in_len - conn->in_off;
            if (conn->state == CONN_HEAD &&
                (pending == 0 || (pending == 1 && conn->in[conn->in_off] == '\r'))) {
                /* only blank lines since the last request (the last one's CR may have come without its LF yet):
                 * closed like an idle connection */
                conn_close(conn);
            } else {
                conn->head.keep_alive = 0;
                refuse(conn, 408, "request not received in time");
                conn_run(conn); /* writes the 408, then closes */
            }
        }
        conn = next;
    }
}

static void *loop_main(void *arg)
{
    http_loop *loop = arg;
    http_server *server = loop->server;
    struct epoll_event events[EVENTS_PER_WAIT];
    running_loop = loop;
    while (!atomic_load(&server->stopping)) {
        int n = epoll_wait(loop->epoll_fd, events, EVENTS_PER_WAIT, 1000);
        if (n < 0 && errno != EINTR) {
            log_json(LOG_ERROR, "http", "{s:s, s:s}", "detail", "epoll_wait failed", "error", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            void *ptr = events[i].data.ptr;
            if (ptr == &server->listen_fd)
                accept_connections(loop);
            else if (ptr == &loop->wake_fd)
                serve_resumed(loop, 1);
            else if (ptr == &server->config.notify_fd)
                server->config.on_notify(server->config.notify_arg);
            else if (!((http_conn *)ptr)->closed) {
                http_conn *conn = ptr;
                if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    conn->socket_drained = 0; /* input (or its end, or an error) arrived: read again */
                if (events[i].events & (EPOLLRDHUP | EPOLLHUP))
                    conn->eof_pending = 1;
                conn_run(conn);
            }
        }
        if (loop->resumed_here)
            serve_resumed(loop, 0);
        int64_t now = time_monotonic_ms();
        if (now - loop->last_sweep_ms >= 1000)
            sweep_idle(loop, now);
        free_closed(loop);
    }
    return NULL;
}

/* ---- start and stop ---- */

static int open_listener(const char *listen_addr, const char *setting, char *errbuf, size_t errlen)
{
    char host[128];
    int port = 0;
    if (config_split_host_port(listen_addr, host, sizeof host, &port) != 0) {
        snprintf(errbuf, errlen, "%s must be host:port, got \"%s\"", setting, listen_addr);
        return -1;
    }
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    struct sockaddr_storage addr = {0};
    socklen_t addr_len = sizeof(struct sockaddr_in);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    if (host[0] == '\0') {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        addr_len = sizeof(struct sockaddr_in6);
    } else {
        snprintf(errbuf, errlen, "%s host must be an IP address, got \"%s\"", setting, host);
        return -1;
    }
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(errbuf, errlen, "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, addr_len) != 0 || listen(fd, 4096) != 0) {
        snprintf(errbuf, errlen, "cannot listen on %s: %s", listen_addr, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void free_server(http_server *server)
{
    for (int i = 0; i < server->loop_count; i++) {
        http_loop *loop = &server->loops[i];
        while (loop->conns != NULL)
            conn_close(loop->conns);
        free_closed(loop);
        if (loop->epoll_fd >= 0)
            close(loop->epoll_fd);
        if (loop->wake_fd >= 0)
            close(loop->wake_fd);
        pthread_mutex_destroy(&loop->lock);
    }
    if (server->listen_fd >= 0)
        close(server->listen_fd);
    free(server->loops);
    free(server);
}

static void join_loops(http_server *server)
{
    atomic_store(&server->stopping, 1);
    for (int i = 0; i < server->loop_count; i++) {
        uint64_t one = 1;
        if (server->loops[i].wake_fd >= 0) {
            ssize_t n = write(server->loops[i].wake_fd, &one, sizeof one);
            (void)n;
        }
    }
    for (int i = 0; i < server->loop_count; i++)
        if (server->loops[i].started)
            pthread_join(server->loops[i].thread, NULL);
}

http_server *http_server_start(const http_server_config *config, char *errbuf, size_t errlen)
{
    const char *setting = config->addr_setting != NULL ? config->addr_setting : "listen address";
    int threads = config->threads > 0 ? config->threads : 1;
    if (config->dispatch == NULL || config->body_limit == NULL) {
        snprintf(errbuf, errlen, "http_server_start: dispatch and body_limit are required");
        return NULL;
    }
    int listen_fd = open_listener(config->listen_addr, setting, errbuf, errlen);
    if (listen_fd < 0)
        return NULL;
    http_server *server = calloc(1, sizeof *server);
    http_loop *loops = calloc((size_t)threads, sizeof *loops);
    if (server == NULL || loops == NULL) {
        free(server);
        free(loops);
        close(listen_fd);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    server->config = *config;
    server->listen_fd = listen_fd;
    server->loops = loops;
    server->loop_count = threads;
    atomic_init(&server->stopping, 0);
    atomic_init(&server->in_flight, 0);
    atomic_init(&server->connections, 0);
    server->connection_limit = config->max_connections > 0 ? config->max_connections : CONNECTION_LIMIT;
    if (server->config.request_timeout_ms <= 0)
        server->config.request_timeout_ms = REQUEST_TIMEOUT_MS;
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY &&
        files.rlim_cur < (rlim_t)server->connection_limit + FD_RESERVE)
        server->connection_limit = files.rlim_cur > 2 * FD_RESERVE ? (int)(files.rlim_cur - FD_RESERVE)
                                                                   : (int)(files.rlim_cur / 2);
    for (int i = 0; i < threads; i++) {
        http_loop *loop = &loops[i];
        loop->server = server;
        loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        pthread_mutex_init(&loop->lock, NULL);
        struct epoll_event listen_ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &server->listen_fd};
        struct epoll_event wake_ev = {.events = EPOLLIN, .data.ptr = &loop->wake_fd};
        struct epoll_event notify_ev = {.events = EPOLLIN | EPOLLET, .data.ptr = &server->config.notify_fd};
        if (loop->epoll_fd < 0 || loop->wake_fd < 0 ||
            epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, listen_fd, &listen_ev) != 0 ||
            epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, loop->wake_fd, &wake_ev) != 0 ||
            (i == 0 && config->on_notify != NULL &&
             epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, config->notify_fd, &notify_ev) != 0) ||
            pthread_create(&loop->thread, NULL, loop_main, loop) != 0) {
            snprintf(errbuf, errlen, "cannot start the HTTP threads: %s", strerror(errno));
            server->loop_count = i + 1;
            join_loops(server);
            free_server(server);
            return NULL;
        }
        loop->started = 1;
    }
    return server;
}

/* True when some connection still waits for a resume (a delivery report may yet arrive for it). */
static int has_suspended(http_server *server)
{
    for (int i = 0; i < server->loop_count; i++)
        for (http_conn *conn = server->loops[i].conns; conn != NULL; conn = conn->next)
            if (conn->state == CONN_HANDLING)
                return 1;
    return 0;
}

void http_server_stop(http_server *server, long long grace_ms, void (*before_drain)(void *), void *arg)
{
    if (server == NULL)
        return;
    /* stop accepting: new connections are refused by the kernel from here on */
    for (int i = 0; i < server->loop_count; i++)
        epoll_ctl(server->loops[i].epoll_fd, EPOLL_CTL_DEL, server->listen_fd, NULL);
    shutdown(server->listen_fd, SHUT_RDWR);
    if (before_drain != NULL)
        before_drain(arg);
    int64_t deadline = time_monotonic_ms() + grace_ms;
    while (atomic_load(&server->in_flight) > 0 && time_monotonic_ms() < deadline)
        usleep(10 * 1000);
    join_loops(server);
    if (has_suspended(server)) {
        /* a late delivery report would resume into freed memory: keep the server until the process exits */
        log_json(LOG_WARN, "http", "{s:s}", "detail", "requests still waiting for Kafka at shutdown");
        abandoned_server = server;
        return;
    }
    free_server(server);
}
