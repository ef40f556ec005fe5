/* tls_sessions — see tls_sessions.h. */
#include "tls_sessions.h"

#include <stdlib.h>

/* The shards; a NULL entry never exists once tls_sessions_new returned. */
struct tls_sessions {
    CURLSH *shards[TLS_SESSION_SHARDS];
};

void tls_sessions_free(tls_sessions *cache)
{
    if (cache == NULL)
        return;
    for (unsigned i = 0; i < TLS_SESSION_SHARDS; i++)
        if (cache->shards[i] != NULL)
            curl_share_cleanup(cache->shards[i]);
    free(cache);
}

tls_sessions *tls_sessions_new(void)
{
    tls_sessions *cache = calloc(1, sizeof *cache);
    if (cache == NULL)
        return NULL;
    for (unsigned i = 0; i < TLS_SESSION_SHARDS; i++) {
        cache->shards[i] = curl_share_init();
        if (cache->shards[i] == NULL ||
            curl_share_setopt(cache->shards[i], CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
            tls_sessions_free(cache);
            return NULL;
        }
    }
    return cache;
}

unsigned tls_sessions_shard(uint64_t authority_key)
{
    return (unsigned)(authority_key % TLS_SESSION_SHARDS);
}

int tls_sessions_attach(tls_sessions *cache, CURL *easy, unsigned shard, int *current)
{
    if (shard >= TLS_SESSION_SHARDS)
        return -1;
    if (*current == (int)shard)
        return 0;
    if (curl_easy_setopt(easy, CURLOPT_SHARE, cache->shards[shard]) != CURLE_OK) {
        curl_easy_setopt(easy, CURLOPT_SHARE, (CURLSH *)NULL);
        *current = -1;
        return -1;
    }
    *current = (int)shard;
    return 0;
}
