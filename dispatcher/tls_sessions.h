/*
 * tls_sessions — one delivery thread's TLS session cache, so a new connection to a receiver offers the TLS
 * session of an earlier one to resume instead of a full handshake.
 *
 * Why: libcurl 7.88 keeps resumable sessions per easy handle (5 each) unless a share object holds them. A
 * delivery thread's easy handles are pooled and taken in no particular order, so a connection opened by a handle
 * that never talked to that receiver (every connection of a burst that needs more of them than the pool had, and
 * every reconnect after a receiver closed idle connections) paid a full handshake: in the fan-out benchmark 1,071
 * of 1,085 connections were full handshakes, each costing the receiver a certificate signature (~0.3 ms of RSA-2048
 * on the benchmark machine) and the dispatcher a chain verification. With a cache shared by the thread's handles
 * 54-84 % of them resumed; with a session kept resumable after its first use (delivery_http_prepare_ssl_ctx) and
 * a receiver's first connection going alone (first_contact.h), all but one per thread (docs/BENCHMARKS.md,
 * 2026-12-06).
 *
 * How: libcurl's share interface (CURLSH, CURL_LOCK_DATA_SSL_SESSION). A share holds only 8 sessions in libcurl
 * 7.88 (least recently used dropped first) and that size cannot be set, so the cache is TLS_SESSION_SHARDS shares
 * and a transfer joins the share its URL's authority (host and port) hashes to: ~8 receivers per shard, 128 per
 * thread. Sessions are keyed by libcurl on host, port and TLS settings, so a shard shared by several receivers
 * never hands one receiver's session to another. libcurl still checks the certificate of a resumed session's
 * host (the session carries the peer's certificate) and falls back to a full handshake when the receiver does not
 * accept the session.
 *
 * Ownership: the cache owns its shares. An easy handle attached to a share must be cleaned up (or moved to
 * another share) before tls_sessions_free.
 * Thread contract: one thread only (the shares have no lock callbacks): a delivery thread's own cache.
 */
#ifndef HOOKD_TLS_SESSIONS_H
#define HOOKD_TLS_SESSIONS_H

#include <curl/curl.h>
#include <stdint.h>

#define TLS_SESSION_SHARDS 16

typedef struct tls_sessions tls_sessions;

/* Creates the cache. Returns NULL when libcurl cannot make its shares (out of memory). */
tls_sessions *tls_sessions_new(void);

/* Frees the cache (NULL is ignored); see Ownership. */
void tls_sessions_free(tls_sessions *cache);

/* The shard for a receiver: its authority key (delivery_http_authority_key of its URL: the host and port)
 * modulo the shards. */
unsigned tls_sessions_shard(uint64_t authority_key);

/* Attaches easy (not in a transfer) to shard's share unless *current already says it is; *current is the caller's
 * record of the handle's shard (start it at -1). Returns 0, or -1 when libcurl refused (the handle then keeps its
 * own per-handle cache: the transfer still works). */
int tls_sessions_attach(tls_sessions *cache, CURL *easy, unsigned shard, int *current);

#endif
