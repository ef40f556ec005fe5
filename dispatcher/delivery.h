/*
 * delivery — the HTTP side: one libcurl multi handle driven by the dispatcher's epoll loop
 * (CURLMOPT_SOCKETFUNCTION + CURLMOPT_TIMERFUNCTION), reused easy handles, keep-alive and HTTP/2 multiplexing.
 *
 * One call to delivery_start() is one attempt: POST url with the Standard Webhooks headers, signed at start
 * with the webhook's secret (and its previous one during a rotation) and the attempt's own timestamp. The
 * per-attempt libcurl setup, signing and result classification live in common/delivery_http.h. When the attempt ends (2xx, other status, timeout,
 * SSRF refusal, network error) the engine calls the done callback exactly once with the result, from inside
 * delivery_on_socket() / delivery_on_timer() (never from delivery_start()). A webhook whose receiver broke an
 * HTTP/2 stream is delivered over HTTP/1.1 for a while (http1_fallback.h).
 *
 * Ownership: the engine owns the multi handle, the easy-handle pool, its timerfd, the CA bundle temp file and
 * the HTTP/1.1 fallback table.
 * The strings of a delivery_request are borrowed until its done callback returns.
 * Thread contract: the event-loop thread only.
 */
#ifndef HOOKD_DELIVERY_H
#define HOOKD_DELIVERY_H

#include "dispatcher_metrics.h"
#include "event_loop.h"

#include <stddef.h>
#include <stdint.h>

typedef struct delivery_options {
    long long timeout_ms;      /* DELIVERY_TIMEOUT, per attempt */
    int allow_private;         /* ALLOW_PRIVATE_TARGETS: skip the connect-time address check */
    const char *ca_file;       /* RECEIVER_CA_FILE: extra trusted CAs (added to the system bundle), or NULL */
} delivery_options;

/* What to send. Every pointer is borrowed until the done callback. */
typedef struct delivery_request {
    const char *url;           /* https target */
    const char *secret;        /* "whsec_..." */
    const char *previous_secret; /* a rotated webhook's old secret while it is still valid, else NULL */
    long long webhook_id;
    const char *event_id;      /* webhook-id header */
    const char *body;          /* JSON body (shared by every webhook of the event) */
    size_t body_len;
    void *user;                /* handed back to the callback */
} delivery_request;

/* How one attempt ended. */
typedef struct delivery_result {
    int ok;                    /* 1 for a 2xx */
    dm_outcome outcome;
    long status;               /* HTTP status, 0 when no response */
    double latency_ms;
    const char *error;         /* NULL on success; a short reason otherwise (valid during the callback) */
    long long timestamp;       /* the webhook-timestamp that was sent */
    long long retry_after_ms;  /* Retry-After of a non-2xx response, -1 when none */
    int64_t started_at_ms;     /* epoch ms when the attempt started */
} delivery_result;

typedef void (*delivery_done_fn)(void *ctx, const delivery_request *req, const delivery_result *res);

typedef struct delivery_engine delivery_engine;

/* Creates the engine on loop (registers its timerfd with tag LOOP_TAG_CURL_TIMER; sockets get
 * LOOP_TAG_CURL_SOCKET). Call curl_global_init() first. Returns NULL with errbuf on failure. */
delivery_engine *delivery_engine_new(event_loop *loop, const delivery_options *opts, delivery_done_fn done,
                                     void *ctx, char *errbuf, size_t errlen);

/* Aborts every transfer still running (no callbacks), frees the engine. NULL is ignored. */
void delivery_engine_free(delivery_engine *eng);

/* Starts one attempt. Returns 0 (the callback will follow) or -1 when the request could not even be built (no
 * callback; the caller counts it as a failed attempt). */
int delivery_start(delivery_engine *eng, const delivery_request *req);

/* Loop hooks: a LOOP_TAG_CURL_SOCKET fd became ready / the LOOP_TAG_CURL_TIMER fired. */
void delivery_on_socket(delivery_engine *eng, int fd, unsigned events);
void delivery_on_timer(delivery_engine *eng);

/* Runs what libcurl asked to run "now" (a timeout of 0, asked for after every new transfer) since the last call.
 * Call once at the end of every loop pass. Returns 1 when libcurl asked for "now" again (the loop must then not
 * sleep before the next call), else 0. */
int delivery_run_pending(delivery_engine *eng);

/* Attempts started and not finished. */
size_t delivery_active(const delivery_engine *eng);

#endif
