/*
 * http_server — the producer-api's HTTP front: libmicrohttpd with a pool of epoll worker threads.
 *
 * Owns connections and request bodies: buffers each body up to its route's limit (413 past it, decided from
 * Content-Length before reading when possible), hands complete requests to router_dispatch(), and writes the
 * api_reply as JSON. Requests may suspend (events waiting for Kafka) without holding a thread.
 *
 * Thread contract: http_server_start/stop from the main thread; handlers run on the worker threads.
 */
#ifndef HOOKD_HTTP_SERVER_H
#define HOOKD_HTTP_SERVER_H

#include "api.h"

typedef struct http_server http_server;

/* Starts listening on listen_addr ("host:port", "[v6]:port" or ":port") with threads workers. api must
 * outlive the server. Returns NULL with errbuf filled on failure. */
http_server *http_server_start(const char *listen_addr, int threads, const api_context *api, char *errbuf,
                               size_t errlen);

/* Stops accepting new connections, waits up to grace_ms for requests in flight, then stops and frees.
 * before_drain, when not NULL, runs after accepting stopped (e.g. flush Kafka so suspended requests finish). */
void http_server_stop(http_server *server, long long grace_ms, void (*before_drain)(void *), void *arg);

#endif
