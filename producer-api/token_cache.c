/* token_cache — see token_cache.h. */
#include "token_cache.h"

#include "log.h"
#include "timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Open addressing, linear probing; twice as many slots as entries so probes stay short. */
#define SLOT_COUNT (2 * TOKEN_CACHE_MAX_ENTRIES)

typedef struct cache_slot {
    char digest[SHA256_HEX_LEN + 1]; /* empty string: free slot */
    token_grant grant;
} cache_slot;

struct token_cache {
    pthread_mutex_t lock;       /* guards slots, count, generation, trusted_until_us */
    cache_slot *slots;          /* SLOT_COUNT, owned */
    size_t count;               /* occupied slots */
    uint64_t generation;        /* incremented by every clear */
    int64_t trusted_until_us;   /* monotonic time after which entries are not served (no recent check) */
    long long refresh_ms;       /* 0: disabled */
    metric_series *hits;        /* borrowed, may be NULL */
    metric_series *misses;      /* borrowed, may be NULL */

    webhook_store *store;       /* the refresher's own connection, owned */
    pthread_t refresher;
    int refresher_started;
    pthread_mutex_t stop_lock;  /* guards stopping, with stop_cond */
    pthread_cond_t stop_cond;
    int stopping;
};

/* A slot index from the digest's first 16 hex digits (the digest is already uniformly distributed). */
static size_t slot_of(const char *digest)
{
    uint64_t h = 0;
    for (int i = 0; i < 16; i++) {
        char c = digest[i];
        h = (h << 4) | (uint64_t)(c >= 'a' ? c - 'a' + 10 : c - '0');
    }
    return (size_t)(h % SLOT_COUNT);
}

/* The slot holding digest, or the free slot where it would go. Called with the lock held. */
static cache_slot *probe(token_cache *cache, const char *digest)
{
    size_t i = slot_of(digest);
    for (;;) {
        cache_slot *slot = &cache->slots[i];
        if (slot->digest[0] == '\0' || memcmp(slot->digest, digest, SHA256_HEX_LEN) == 0)
            return slot;
        i = (i + 1) % SLOT_COUNT;
    }
}

/* Empties the table and starts a new generation. Called with the lock held. */
static void clear_locked(token_cache *cache)
{
    if (cache->count > 0)
        memset(cache->slots, 0, SLOT_COUNT * sizeof *cache->slots);
    cache->count = 0;
    cache->generation++;
}

void token_cache_clear(token_cache *cache)
{
    pthread_mutex_lock(&cache->lock);
    clear_locked(cache);
    pthread_mutex_unlock(&cache->lock);
}

int token_cache_get(token_cache *cache, const char digest[SHA256_HEX_LEN + 1], token_grant *grant,
                    uint64_t *generation)
{
    int hit = 0;
    *generation = 0;
    if (cache == NULL)
        return 0;
    pthread_mutex_lock(&cache->lock);
    *generation = cache->generation;
    if (cache->refresh_ms > 0 && cache->count > 0 && time_monotonic_us() <= cache->trusted_until_us) {
        cache_slot *slot = probe(cache, digest);
        if (slot->digest[0] != '\0') {
            *grant = slot->grant;
            hit = 1;
        }
    }
    pthread_mutex_unlock(&cache->lock);
    if (hit) {
        if (cache->hits != NULL)
            metric_counter_add(cache->hits, 1);
    } else if (cache->misses != NULL) {
        metric_counter_add(cache->misses, 1);
    }
    return hit;
}

void token_cache_put(token_cache *cache, const char digest[SHA256_HEX_LEN + 1], const token_grant *grant,
                     uint64_t generation)
{
    if (cache == NULL || cache->refresh_ms <= 0 || strlen(digest) != SHA256_HEX_LEN)
        return;
    pthread_mutex_lock(&cache->lock);
    if (generation == cache->generation && time_monotonic_us() <= cache->trusted_until_us) {
        if (cache->count >= TOKEN_CACHE_MAX_ENTRIES)
            clear_locked(cache); /* the new generation only matters to puts racing this one: they skip */
        cache_slot *slot = probe(cache, digest);
        if (slot->digest[0] == '\0') {
            memcpy(slot->digest, digest, SHA256_HEX_LEN + 1);
            cache->count++;
        }
        slot->grant = *grant;
    }
    pthread_mutex_unlock(&cache->lock);
}

size_t token_cache_size(token_cache *cache)
{
    pthread_mutex_lock(&cache->lock);
    size_t count = cache->count;
    pthread_mutex_unlock(&cache->lock);
    return count;
}

/* Sleeps up to ms or until destroy asks the refresher to stop. Returns 1 when stopping. */
static int wait_or_stop(token_cache *cache, long long ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&cache->stop_lock);
    while (!cache->stopping) {
        if (pthread_cond_timedwait(&cache->stop_cond, &cache->stop_lock, &deadline) == ETIMEDOUT)
            break;
    }
    int stopping = cache->stopping;
    pthread_mutex_unlock(&cache->stop_lock);
    return stopping;
}

/* The refresher: every refresh_ms, reads the token version; a change drops the cache, an answer extends the
 * trust, no answer drops the cache (revocations may be missed while Redis is unreachable). */
static void *refresher_main(void *arg)
{
    token_cache *cache = arg;
    long long seen = -1;
    int reachable = 1;
    do {
        long long version = 0;
        int64_t asked_us = time_monotonic_us();
        store_status status = token_store_version(cache->store, &version);
        pthread_mutex_lock(&cache->lock);
        if (status == STORE_OK) {
            if (version != seen)
                clear_locked(cache);
            /* trust counts from when the question was asked: a revocation committed after that is not known */
            cache->trusted_until_us = asked_us + 2 * cache->refresh_ms * 1000;
        } else {
            clear_locked(cache);
            cache->trusted_until_us = 0;
        }
        pthread_mutex_unlock(&cache->lock);
        if (status == STORE_OK) {
            seen = version;
            if (!reachable)
                log_json(LOG_INFO, "token cache: redis answers again", NULL);
            reachable = 1;
        } else if (reachable) {
            log_json(LOG_WARN, "token cache: redis unreachable, every token is looked up", NULL);
            reachable = 0;
        }
    } while (!wait_or_stop(cache, cache->refresh_ms));
    return NULL;
}

token_cache *token_cache_create(const char *redis_url, long long refresh_ms, metric_series *hits,
                                metric_series *misses, char *errbuf, size_t errlen)
{
    token_cache *cache = calloc(1, sizeof *cache);
    if (cache == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    cache->refresh_ms = refresh_ms > 0 ? refresh_ms : 0;
    cache->hits = hits;
    cache->misses = misses;
    pthread_mutex_init(&cache->lock, NULL);
    pthread_mutex_init(&cache->stop_lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&cache->stop_cond, &attr);
    pthread_condattr_destroy(&attr);
    if (cache->refresh_ms == 0)
        return cache;

    cache->slots = calloc(SLOT_COUNT, sizeof *cache->slots);
    cache->store = cache->slots != NULL ? webhook_store_open(redis_url, errbuf, errlen) : NULL;
    if (cache->slots == NULL || cache->store == NULL) {
        if (cache->slots == NULL)
            snprintf(errbuf, errlen, "out of memory");
        token_cache_destroy(cache);
        return NULL;
    }
    if (pthread_create(&cache->refresher, NULL, refresher_main, cache) != 0) {
        snprintf(errbuf, errlen, "cannot start the token cache thread");
        token_cache_destroy(cache);
        return NULL;
    }
    cache->refresher_started = 1;
    return cache;
}

void token_cache_destroy(token_cache *cache)
{
    if (cache == NULL)
        return;
    if (cache->refresher_started) {
        pthread_mutex_lock(&cache->stop_lock);
        cache->stopping = 1;
        pthread_cond_signal(&cache->stop_cond);
        pthread_mutex_unlock(&cache->stop_lock);
        pthread_join(cache->refresher, NULL);
    }
    webhook_store_close(cache->store);
    free(cache->slots);
    pthread_cond_destroy(&cache->stop_cond);
    pthread_mutex_destroy(&cache->stop_lock);
    pthread_mutex_destroy(&cache->lock);
    free(cache);
}
