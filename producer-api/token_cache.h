/*
 * token_cache — API tokens producer-api has already looked up, so an authenticated request does not wait for
 * a Redis round trip.
 *
 * Only tokens Redis said are valid are cached (an unknown token always costs a lookup, so guessing cannot
 * fill the cache), keyed by the token's SHA-256 (hex), never the token itself. Revocation: `token revoke`
 * deletes the token and increments hookd:tokens:version in one script; the cache's refresher thread reads
 * that version every refresh_ms and drops every entry when it changed. A revoked token therefore stops
 * working on every producer-api within refresh_ms (plus one Redis round trip).
 *
 * The refresher is also what makes an entry trustworthy: entries are served only while the last successful
 * version check is at most 2 x refresh_ms old. When Redis stops answering, the cache empties and stays unused,
 * so requests go to Redis (503 while it is down) instead of honouring a token that may have been revoked
 * meanwhile. A lookup that raced a revocation cannot repopulate the cache: token_cache_put() takes the
 * generation read before the lookup and is ignored when the cache was dropped in between.
 *
 * At most TOKEN_CACHE_MAX_ENTRIES tokens are kept; a put into a full cache empties it first (a deployment
 * with more active tokens than that pays a Redis lookup now and then, nothing else).
 *
 * Ownership: token_cache_create() returns a cache the caller frees with token_cache_destroy(), which stops
 * and joins the refresher. With refresh_ms == 0 the cache is disabled: no thread, get always misses, put does
 * nothing (every request is looked up in Redis: revocation effective on the next request).
 * Thread contract: get/put from any thread (one mutex, held for a table probe only); a NULL cache always
 * misses.
 */
#ifndef HOOKD_TOKEN_CACHE_H
#define HOOKD_TOKEN_CACHE_H

#include "metrics.h"
#include "secret.h"
#include "webhook_store.h"

#include <stddef.h>
#include <stdint.h>

#define TOKEN_CACHE_MAX_ENTRIES 8192

typedef struct token_cache token_cache;

/* What a cached token grants. */
typedef struct token_grant {
    long long org;   /* organization; 0 for a service token */
    int is_service;  /* 1 for a service token */
} token_grant;

/* Creates the cache and, when refresh_ms > 0, its refresher thread with its own connection to redis_url.
 * hits and misses (may be NULL) count token_cache_get() answers. Returns NULL with errbuf filled when the URL
 * is invalid or a thread cannot start. */
token_cache *token_cache_create(const char *redis_url, long long refresh_ms, metric_series *hits,
                                metric_series *misses, char *errbuf, size_t errlen);

/* Stops the refresher and frees everything. NULL is ignored. */
void token_cache_destroy(token_cache *cache);

/* Looks the token's digest up. Returns 1 with *grant filled on a hit; 0 on a miss, with *generation set to
 * the value to hand to token_cache_put() after looking the token up in Redis. */
int token_cache_get(token_cache *cache, const char digest[SHA256_HEX_LEN + 1], token_grant *grant,
                    uint64_t *generation);

/* Remembers a token Redis just confirmed, unless the cache was dropped since token_cache_get() gave
 * generation, or the cache is not currently trusted. */
void token_cache_put(token_cache *cache, const char digest[SHA256_HEX_LEN + 1], const token_grant *grant,
                     uint64_t generation);

/* Drops every entry now (what the refresher does when the version changes). */
void token_cache_clear(token_cache *cache);

/* Entries currently cached. */
size_t token_cache_size(token_cache *cache);

#endif
