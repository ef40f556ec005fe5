/*
 * http1_fallback — remembers the webhooks whose receivers broke HTTP/2 streams, so that their next attempts go
 * over HTTP/1.1 for a while.
 *
 * Why: a receiver may answer before it has read the request body and then reset the stream (RST_STREAM
 * NO_ERROR; nginx "return 200", Go handlers that ignore the body). RFC 9113 8.1 allows that, but libcurl 7.88
 * (Debian 12) then fails the transfer with CURLE_HTTP2_STREAM, often before the response status is visible, and
 * the delivery would fail every time for payloads larger than the first flow-control window. HTTP/1.1 has no
 * such failure mode, so after one such reset the webhook is delivered over HTTP/1.1 for HTTP1_FALLBACK_MS.
 *
 * A fixed-size open-addressed table (HTTP1_FALLBACK_SLOTS entries, linear probing over a short window; when
 * the window is full the entry expiring first is replaced), so memory is bounded whatever the receivers do; a
 * webhook forgotten early merely tries HTTP/2 again.
 * Ownership: the caller owns the table. Thread contract: one thread (the dispatcher's event loop).
 */
#ifndef HOOKD_HTTP1_FALLBACK_H
#define HOOKD_HTTP1_FALLBACK_H

#include <stdint.h>

#define HTTP1_FALLBACK_MS (60LL * 60 * 1000) /* one hour, then HTTP/2 is tried again */
#define HTTP1_FALLBACK_SLOTS 4096

typedef struct http1_fallback http1_fallback;

/* A new, empty table; NULL on allocation failure. */
http1_fallback *http1_fallback_new(void);
void http1_fallback_free(http1_fallback *t);

/* now_ms below: a monotonic clock in milliseconds. */

/* Webhook id's receiver broke an HTTP/2 stream at now_ms: use HTTP/1.1 until now_ms + HTTP1_FALLBACK_MS.
 * Returns 1 when the webhook was not already marked (worth a log line), else 0. */
int http1_fallback_mark(http1_fallback *t, long long webhook_id, int64_t now_ms);

/* 1 while webhook id should be delivered over HTTP/1.1, else 0. */
int http1_fallback_active(const http1_fallback *t, long long webhook_id, int64_t now_ms);

#endif
