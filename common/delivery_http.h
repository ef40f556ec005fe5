/*
 * delivery_http — one webhook delivery attempt over libcurl, shared by the dispatcher (libcurl multi, many
 * attempts on the event loop) and producer-api (POST /api/v1/webhooks/{id}/test: one synchronous attempt).
 *
 * What an attempt is (docs/DESIGN.md "Delivery"): POST to an https URL, no redirects, TLS verification on,
 * environment proxies ignored, DELIVERY_TIMEOUT for the whole attempt, User-Agent hookd/<version>, the Standard
 * Webhooks headers signed at the attempt's start (webhook-signature carries "v1,<new> v1,<old>" while a rotated
 * secret's previous one is still valid), the SSRF guard on every address tried at connect time, the response
 * body counted and dropped, a Retry-After response header captured, and the result classified (success,
 * http_error, timeout, forbidden, network_error).
 *
 * The receiver's final status is its answer: once a status (200 or more) has been received, the attempt is
 * classified by it even when the exchange then ends in a libcurl error (the receiver answered before reading
 * the whole body and reset the stream, which RFC 9113 8.1 allows; the response body stalled until the timeout).
 * The response body is never used, so nothing is lost by not waiting for it, nor by not reading past
 * DELIVERY_RESPONSE_BODY_MAX: the attempt ends there (the connection is dropped). A receiver that answered 200 and
 * then streamed without end held its attempt until DELIVERY_TIMEOUT, taking whatever it sent meanwhile.
 *
 * Two ways to use it:
 *   - synchronous: delivery_http_perform_once() (its own easy handle, curl_easy_perform; blocks up to the
 *     timeout). Call curl_global_init() once first.
 *   - with your own (multi) easy handles: delivery_http_easy_setup() once per handle with a delivery_http_attempt
 *     that stays at a fixed address, then per attempt delivery_http_begin() ... run the transfer ...
 *     delivery_http_finish().
 *
 * Ownership: a delivery_http_attempt owns its header list between begin and finish (finish frees it). Strings of
 * a delivery_http_request are borrowed until the transfer ended (libcurl does not copy POSTFIELDS).
 * Thread contract: stateless apart from the structures the caller owns; one attempt per thread at a time.
 */
#ifndef HOOKD_DELIVERY_HTTP_H
#define HOOKD_DELIVERY_HTTP_H

#include "signature_cache.h"

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#define DELIVERY_RESPONSE_BODY_MAX (64 * 1024) /* response body bytes read before the attempt ends */

/* How an attempt ended (the dispatcher's "outcome" label; same order as its dm_outcome). */
typedef enum delivery_http_outcome {
    DELIVERY_HTTP_SUCCESS = 0,   /* 2xx */
    DELIVERY_HTTP_HTTP_ERROR,    /* any other status, 3xx included (no redirects are followed) */
    DELIVERY_HTTP_TIMEOUT,       /* the timeout hit */
    DELIVERY_HTTP_FORBIDDEN,     /* the SSRF guard refused every resolved address */
    DELIVERY_HTTP_NETWORK_ERROR  /* DNS, connect, TLS or protocol failure; also "could not be started" */
} delivery_http_outcome;

#define DELIVERY_HTTP_ERROR_MAX (CURL_ERROR_SIZE + 32)
#define DELIVERY_HTTP_SIGNATURES_MAX 160 /* two "v1,<b64>" entries and a space */
#define DELIVERY_HTTP_HEADER_COUNT 6       /* Content-Type, webhook-id, -timestamp, -signature, Expect, Accept */
#define DELIVERY_HTTP_HEADER_TEXT_MAX 768  /* the six "name: value" lines, NUL-terminated */

/* Settings shared by every attempt. Strings are borrowed for as long as handles set up with it live. */
typedef struct delivery_http_config {
    long long timeout_ms;        /* per attempt (DELIVERY_TIMEOUT) */
    int allow_private;           /* 1: skip the connect-time address check (ALLOW_PRIVATE_TARGETS) */
    const char *ca_bundle;       /* CURLOPT_CAINFO (a delivery_http_ca_bundle's path); NULL: libcurl default */
    const char *user_agent;      /* NULL: "hookd/<HOOKD_VERSION>" */
} delivery_http_config;

/* What to send. Borrowed until the attempt ends. */
typedef struct delivery_http_request {
    const char *url;             /* https target */
    const char *secret;          /* "whsec_..." */
    const char *previous_secret; /* a rotated webhook's old secret while still valid, else NULL */
    const char *event_id;        /* webhook-id header */
    const char *body;            /* exact JSON body */
    size_t body_len;
    int http1_only;              /* 1: HTTP/1.1 even where the receiver offers HTTP/2 (see http2_reset) */
} delivery_http_request;

/* Whether an attempt opened a connection and how its TLS handshake went. */
typedef enum delivery_http_tls {
    DELIVERY_HTTP_TLS_NONE = 0, /* no new connection (a kept-alive one, an HTTP/2 stream), none that got as far
                                 * as the request, or not known (a TLS backend other than OpenSSL) */
    DELIVERY_HTTP_TLS_FULL,     /* a new connection with a full handshake */
    DELIVERY_HTTP_TLS_RESUMED,  /* a new connection that resumed an earlier TLS session */
} delivery_http_tls;

/* How one attempt ended. */
typedef struct delivery_http_result {
    int ok;                            /* 1 for a 2xx */
    delivery_http_outcome outcome;
    long status;                       /* HTTP status, 0 when there was no response */
    double latency_ms;                 /* begin to end */
    long long timestamp;               /* the webhook-timestamp that was sent (unix seconds) */
    int64_t started_at_ms;             /* epoch ms when the attempt began */
    long long retry_after_ms;          /* the response's Retry-After (any status), -1 when none/invalid */
    int http2_reset;                   /* 1: libcurl failed the HTTP/2 stream (CURLE_HTTP2_STREAM/CURLE_HTTP2) */
    delivery_http_tls tls_handshake;   /* the attempt's new connection's handshake, if it opened one */
    char error[DELIVERY_HTTP_ERROR_MAX]; /* "" on success, else a short reason ("HTTP status 500", "timeout") */
} delivery_http_result;

/* Per-attempt state of one easy handle. Keep it at a fixed address while the handle is set up with it. */
typedef struct delivery_http_attempt {
    const delivery_http_config *cfg; /* borrowed */
    struct curl_slist *headers;      /* &header_nodes[0] between begin and finish, else NULL */
    /* The request headers live in the attempt itself (libcurl only reads a CURLOPT_HTTPHEADER list): no
     * allocation per attempt for them. */
    struct curl_slist header_nodes[DELIVERY_HTTP_HEADER_COUNT];
    char header_text[DELIVERY_HTTP_HEADER_TEXT_MAX];
    long long timestamp;
    int64_t started_at_ms;
    int64_t start_us;                /* monotonic */
    int forbidden;                   /* the open-socket callback refused an address */
    /* Called (when set) with every socket the open-socket callback creates for this handle, before libcurl
     * uses it: a new socket means any earlier socket with that number was closed. The delivery worker keeps
     * its epoll bookkeeping per socket number with it. delivery_http_easy_setup() clears both; set them after. */
    void (*socket_opened)(void *ctx, int fd);
    void *socket_opened_ctx;
    /* Prepared signing keys of the thread running this handle (borrowed; NULL: each attempt prepares its
     * secret). delivery_http_easy_setup() clears it; set it after. */
    signature_cache *signing_keys;
    size_t response_bytes;           /* response body bytes (dropped) */
    CURL *easy;                      /* the handle this attempt state belongs to (delivery_http_easy_setup) */
    int tls_resumed;                 /* -1 unknown (set by delivery_http_begin); else SSL_session_reused() of
                                      * the connection the request used, read just before it was sent
                                      * (CURLOPT_PREREQFUNCTION) */
    char retry_after[64];            /* raw Retry-After value of the last response, "" none */
    char errbuf[CURL_ERROR_SIZE];    /* libcurl's detailed error */
} delivery_http_attempt;

/* The system CA bundle libcurl uses by default (static string). */
const char *delivery_http_system_ca(void);

/* The CAs receivers are checked against when RECEIVER_CA_FILE adds some: the system bundle followed by that PEM
 * file, in a file libcurl reads by name (CURLOPT_CAINFO; a name, not a blob, so that libcurl keeps the parsed
 * store across connections).
 *
 * The file lives in memory: a memfd, named by path as /proc/self/fd/N, so nothing is written to disk and nothing
 * is left behind when the process is killed. A temp file under /tmp held it before, and every SIGKILL (an OOM
 * kill, a liveness probe's) left one behind, the size of the system bundle (~220 KiB on Debian 12): in a pod
 * whose /tmp is an emptyDir with a size limit (16 MiB in deploy/), some 75 kills of a crash loop fill it, and
 * the kubelet evicts the pod. Where memfd or /proc is missing, a temp file in $TMPDIR (default /tmp) is the
 * fallback (delivery_http_ca_bundle_open_file), removed by delivery_http_ca_bundle_close. Owned by its creator;
 * path is read by every delivery thread until close. */
typedef struct delivery_http_ca_bundle {
    char path[256]; /* what CURLOPT_CAINFO gets; "" before open and after close */
    int fd;         /* the memfd (open until close), or -1 */
    int temp_file;  /* 1: path is the fallback temp file, unlinked at close */
} delivery_http_ca_bundle;

/* Builds the bundle from the system CAs and the PEM file extra. Returns 0, or -1 with errbuf (bundle then
 * empty, nothing to close). */
int delivery_http_ca_bundle_open(delivery_http_ca_bundle *bundle, const char *extra, char *errbuf, size_t errlen);

/* The fallback on its own: the bundle in a new temp file dir/hookd-ca-XXXXXX (unlinked at close). Returns 0, or
 * -1 with errbuf (bundle then empty). */
int delivery_http_ca_bundle_open_file(delivery_http_ca_bundle *bundle, const char *extra, const char *dir,
                                      char *errbuf, size_t errlen);

/* Releases what open made (the memfd, or the temp file); harmless on an empty or zeroed bundle. */
void delivery_http_ca_bundle_close(delivery_http_ca_bundle *bundle);

/* The webhook-signature value: "v1,<sig>" or, with previous_secret, "v1,<sig> v1,<sig with previous>".
 * keys (may be NULL) keeps the secrets' prepared keys for the calling thread. Returns 0, or -1 when secret (or
 * previous_secret) is not a valid whsec_ secret. */
int delivery_http_signatures(signature_cache *keys, const char *secret, const char *previous_secret,
                             const char *event_id, long long timestamp, const char *body, size_t body_len, char *out,
                             size_t outlen);

/* A receiver's key: a 64-bit hash (FNV-1a) of its URL's authority (the text between "://" and the path, ASCII
 * letters folded to lower case; a URL without "://" hashes as a whole). Never fails. */
uint64_t delivery_http_authority_key(const char *url);

/* The TLS sessions libcurl kept on one thread's connections, newest last: keys[(stored - 1) % N] is the
 * authority key of the latest. Written by the connections' new-session callback (delivery_http_prepare_ssl_ctx). */
#define DELIVERY_HTTP_SESSION_LOG 8
typedef struct delivery_http_session_log {
    unsigned long stored;                     /* sessions kept so far */
    uint64_t keys[DELIVERY_HTTP_SESSION_LOG]; /* the receivers of the latest ones */
} delivery_http_session_log;

/* Prepares an OpenSSL SSL_CTX that libcurl made for one connection (delivery_http_easy_setup installs it as the
 * CURLOPT_SSL_CTX_FUNCTION when libcurl uses OpenSSL; exposed for the unit tests): OpenSSL keeps the connection's
 * read and write buffers between records, and a TLS 1.3 session stays resumable after a connection used it, so
 * the many connections a burst opens to one receiver all resume the one session libcurl keeps for it (OpenSSL
 * would otherwise retire a session after its first use). When log is not NULL, each session the context's
 * new-session callback (libcurl's) keeps is recorded in it under key (the receiver's authority key). A handle's
 * owner asks for that by setting CURLOPT_SSL_CTX_DATA to its log (delivery_worker.c, "first contact"); the log
 * must outlive every connection the handle opens and is only written on the thread that drives the handle.
 * ssl_ctx is an SSL_CTX *; the caller keeps ownership of it and of the log. */
void delivery_http_prepare_ssl_ctx(void *ssl_ctx, delivery_http_session_log *log, uint64_t key);

/* Sets every per-handle option (protocols, no redirects, HTTP/2 over TLS, TLS verification, CA file, no proxy,
 * timeout, keep-alive, user agent, SSRF open-socket guard, body discard, Retry-After header capture, POST) with
 * a as the callbacks' state. Call once per handle; the handle may be reused for many attempts. */
void delivery_http_easy_setup(CURL *easy, const delivery_http_config *cfg, delivery_http_attempt *a);

/* Starts an attempt on a set-up handle: resets a, signs with the current time, sets URL, headers and body.
 * Returns 0, or -1 with errbuf (invalid secret, out of memory; nothing to finish). */
int delivery_http_begin(CURL *easy, delivery_http_attempt *a, const delivery_http_request *req, char *errbuf,
                        size_t errlen);

/* Ends an attempt with the transfer's CURLcode: classifies it into out and frees the attempt's headers. */
void delivery_http_finish(CURL *easy, delivery_http_attempt *a, CURLcode code, delivery_http_result *out);

/* One synchronous attempt (curl_easy_perform on a fresh handle). Always fills out; returns 0 for a 2xx, -1
 * otherwise (out->error says why; "delivery could not be started: ..." when it never went out). */
int delivery_http_perform_once(const delivery_http_config *cfg, const char *url, const char *secret,
                               const char *previous_secret, const char *event_id, const char *body, size_t len,
                               delivery_http_result *out);

#endif
