/*
 * signature_cache — prepared signing keys by secret, for one thread that signs many attempts.
 *
 * Preparing a secret (base64 decode, two padded-key blocks hashed) cost 1.9 of the 3.0 µs a 1 KiB signature
 * took when done per attempt; a delivery thread signs tens of thousands of attempts a second for a few hundred
 * webhooks. The cache maps a secret's text to its signature_key in SIGNATURE_CACHE_SLOTS direct-mapped slots
 * (a colliding secret replaces the older one, which is freed and cleared). A rotated secret simply misses and
 * its old entry ages out by replacement.
 *
 * Ownership: the cache owns its keys and a copy of each secret's text (cleared when dropped). Not thread-safe:
 * one cache per thread (the dispatcher's delivery workers each own one).
 */
#ifndef HOOKD_SIGNATURE_CACHE_H
#define HOOKD_SIGNATURE_CACHE_H

#include <stddef.h>

#define SIGNATURE_CACHE_SLOTS 256

typedef struct signature_cache signature_cache;

/* NULL when out of memory. */
signature_cache *signature_cache_new(void);

/* Frees every key and clears every secret copy; NULL is allowed. */
void signature_cache_free(signature_cache *cache);

/* signature_compute()'s contract (same output, 0 or -1 for an invalid secret), with the secret's key prepared
 * once and kept. A key that cannot be kept (out of memory for the secret's copy) signs once and is freed. */
int signature_cache_sign(signature_cache *cache, const char *secret, const char *msg_id, long long timestamp,
                         const char *body, size_t body_len, char *out, size_t outlen);

/* Keys prepared so far (misses) and signatures made with a kept key (hits), for tests and metrics. */
void signature_cache_counts(const signature_cache *cache, unsigned long long *hits, unsigned long long *misses);

#endif
