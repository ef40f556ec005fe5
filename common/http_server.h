/*
 * http_server — hookd's HTTP/1.1 server: producer-api's API port and the dispatcher's health and metrics port.
 * `threads` event loops, each an edge-triggered epoll set of its own, all accepting from one listening socket
 * (EPOLLEXCLUSIVE, so one loop wakes per connection).
 *
 * Owns connections and request bodies: parses heads with common/http_parser (malformed HTTP gets a JSON 4xx and
 * the connection is closed), reads Content-Length and chunked bodies up to the route's limit (413 past it,
 * decided from Content-Length before reading when possible, with `Expect: 100-continue` before the client sends
 * it), hands complete requests to the program's dispatch function on the loop's thread, and writes the api_reply
 * as JSON with Date, Content-Length and, when the connection ends, `Connection: close`. Keep-alive and pipelined
 * requests are answered in order, one at a time per connection; a connection silent for 30 s is closed (a
 * request waiting for Kafka never is), a request still arriving request_timeout_ms after its first byte gets 408
 * (a client trickling bytes to hold a connection), and past max_connections (20,000 by default, or the
 * file-descriptor limit less 128) new ones are closed on accept.
 *
 * Requests may suspend (events waiting for Kafka) without holding a thread: api_request_resume(), from any
 * thread, queues the request on its loop and wakes it through an eventfd (one write per batch of resumes; none
 * when called on the loop's own thread, which answers at the end of its current batch of events); the loop runs
 * the resume handler and answers. A client that hangs up meanwhile still has its resume handler
 * run (claims settle), then the connection closes.
 *
 * Why not libmicrohttpd (producer-api's server until 2026-12-03, the dispatcher's metrics port's until
 * 2026-12-04): per request it suspended and resumed through epoll_ctl calls and an inter-thread pipe, cleared a
 * 64 KiB connection pool and ran a thread pool around a shared epoll; the ingress row measured 42 CPU-µs per
 * request with it and 26–31 with this (docs/BENCHMARKS.md). It also
 * accepted requests a proxy in front could read differently (Content-Length with Transfer-Encoding, folded
 * header lines, a space before the colon), which this refuses.
 *
 * Thread contract: http_server_start/stop from the main thread; handlers run on the loop threads. A handler
 * that blocks (producer-api's Redis calls) holds its loop's other connections meanwhile, as the libmicrohttpd
 * thread pool did; anything slow (a test delivery, an event waiting for Kafka) suspends instead.
 */
#ifndef HOOKD_HTTP_SERVER_H
#define HOOKD_HTTP_SERVER_H

#include "http_api.h"

#include <stdint.h>

typedef struct http_server http_server;

/* What a program serves. The server copies the struct; api and the strings must outlive it. */
typedef struct http_server_config {
    const char *listen_addr;   /* "host:port", "[v6]:port" or ":port"; host an IP address or localhost */
    const char *addr_setting;  /* the setting's name for error messages ("LISTEN_ADDR"); NULL: "listen address" */
    int threads;               /* event loops (threads); < 1 means 1 */
    int max_connections;       /* 0: 20,000; lowered to the file-descriptor limit less 128 either way */
    long long request_timeout_ms; /* a request (head and body) must arrive within this of its first byte, else
                                   * 408 and close; 0: 30 s */
    const struct api_context *api; /* handed to every request as req->api; never read by the server */
    /* A complete request: fill *reply and return API_DONE, or suspend and return API_SUSPENDED. Required. */
    int (*dispatch)(api_request *req, api_reply *reply);
    /* The largest body accepted for method and path (413 past it). Required. */
    size_t (*body_limit)(const char *method, const char *path);
    /* Called once per answered request (status and time from its head to its reply), or NULL. */
    void (*observe)(const struct api_context *api, const char *path, int status, int64_t elapsed_us);
    /* Optional (on_notify NULL: none): a descriptor the first loop also watches for input, edge-triggered, and
     * the function that loop then runs with notify_arg, e.g. Kafka's delivery reports served on the thread of the
     * requests they resume. on_notify must read whatever made notify_fd readable. */
    int notify_fd;
    void (*on_notify)(void *notify_arg);
    void *notify_arg;
} http_server_config;

/* Starts listening and the loops. Returns NULL with errbuf filled on failure. */
http_server *http_server_start(const http_server_config *config, char *errbuf, size_t errlen);

/* Stops accepting new connections, waits up to grace_ms for requests in flight, then stops and frees.
 * before_drain, when not NULL, runs after accepting stopped (e.g. flush Kafka so suspended requests finish). */
void http_server_stop(http_server *server, long long grace_ms, void (*before_drain)(void *), void *arg);

#endif
