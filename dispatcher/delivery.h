/*
 * delivery — the HTTP side: hands delivery attempts to DELIVERY_THREADS worker threads (delivery_worker.h, each
 * with its own libcurl multi handle, epoll loop, reused easy handles, keep-alive connections and HTTP/2
 * multiplexing) and brings their results back to the dispatcher's event-loop thread.
 *
 * One call to delivery_start() is one attempt: POST url with the Standard Webhooks headers, signed when the
 * worker starts it with the webhook's secret (and its previous one during a rotation) and the attempt's own
 * timestamp. The per-attempt libcurl setup, signing and result classification live in common/delivery_http.h.
 * Attempts started during a loop pass go to the workers together at its end (delivery_flush), the least busy
 * worker first. When the attempt ends (2xx, other status, timeout, SSRF refusal, network error, or it could not
 * be started) the engine calls the done callback exactly once with the result, on the event-loop thread, from
 * inside delivery_on_done() (never from delivery_start()). A webhook whose receiver broke an HTTP/2 stream is
 * delivered over HTTP/1.1 for a while (http1_fallback.h; the table stays on the event-loop thread).
 *
 * Ownership: the engine owns the workers, every job (delivery_job.h), the done queue and its eventfd, the CA
 * bundle temp file and the HTTP/1.1 fallback table.
 * The strings of a delivery_request are borrowed until its done callback returns: a worker reads them while the
 * attempt runs, so they must not change meanwhile.
 * Thread contract: every function here on the event-loop thread only.
 */
#ifndef HOOKD_DELIVERY_H
#define HOOKD_DELIVERY_H

#include "delivery_http.h"
#include "dispatcher_metrics.h"
#include "event_loop.h"

#include <stddef.h>
#include <stdint.h>

typedef struct delivery_options {
    long long timeout_ms;      /* DELIVERY_TIMEOUT, per attempt */
    int allow_private;         /* ALLOW_PRIVATE_TARGETS: skip the connect-time address check */
    const char *ca_file;       /* RECEIVER_CA_FILE: extra trusted CAs (added to the system bundle), or NULL */
    unsigned threads;          /* DELIVERY_THREADS: worker threads (1 to DELIVERY_THREADS_MAX) */
} delivery_options;

#define DELIVERY_THREADS_MAX 64

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
    delivery_http_tls tls_handshake; /* the TLS handshake of the connection the attempt opened, if it opened one */
} delivery_result;

typedef void (*delivery_done_fn)(void *ctx, const delivery_request *req, const delivery_result *res);

typedef struct delivery_engine delivery_engine;

/* Creates the engine on loop (registers its done queue's eventfd with tag LOOP_TAG_DELIVERY_DONE) and starts
 * its workers. Call curl_global_init() and block the signals the main thread handles first (the workers inherit
 * the mask). Returns NULL with errbuf on failure. */
delivery_engine *delivery_engine_new(event_loop *loop, const delivery_options *opts, delivery_done_fn done,
                                     void *ctx, char *errbuf, size_t errlen);

/* Stops the workers, aborting every transfer still running (no callbacks), frees the engine. NULL is ignored. */
void delivery_engine_free(delivery_engine *eng);

/* Starts one attempt (handed to a worker at the next delivery_flush). Returns 0 (the callback will follow) or
 * -1 when no job could be allocated (no callback; the caller counts it as a failed attempt). */
int delivery_start(delivery_engine *eng, const delivery_request *req);

/* Loop hook: LOOP_TAG_DELIVERY_DONE became readable. Calls the done callback for every finished attempt. */
void delivery_on_done(delivery_engine *eng);

/* Hands the attempts started since the last call to the workers. Call once at the end of every loop pass. */
void delivery_flush(delivery_engine *eng);

/* Attempts started and not finished. */
size_t delivery_active(const delivery_engine *eng);

#endif
