/* store_pool — see store_pool.h. */
#include "store_pool.h"

#include <pthread.h>
#include <stdlib.h>

struct store_pool {
    pthread_mutex_t lock;   /* guards free_count and free_stores */
    pthread_cond_t freed;   /* signalled when a connection is released */
    int size;               /* connections owned */
    int free_count;         /* connections available in free_stores[0 .. free_count) */
    webhook_store **free_stores;
    webhook_store **all;    /* every connection, for destroy */
};

store_pool *store_pool_create(const char *redis_url, int size, char *errbuf, size_t errlen)
{
    store_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return NULL;
    pool->free_stores = calloc((size_t)size, sizeof *pool->free_stores);
    pool->all = calloc((size_t)size, sizeof *pool->all);
    if (pool->free_stores == NULL || pool->all == NULL)
        goto err;
    for (int i = 0; i < size; i++) {
        pool->all[i] = webhook_store_open(redis_url, errbuf, errlen);
        if (pool->all[i] == NULL)
            goto err;
        pool->free_stores[i] = pool->all[i];
        pool->size = i + 1;
    }
    pool->free_count = size;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->freed, NULL);
    return pool;
err:
    for (int i = 0; i < pool->size; i++)
        webhook_store_close(pool->all[i]);
    free(pool->free_stores);
    free(pool->all);
    free(pool);
    return NULL;
}

void store_pool_destroy(store_pool *pool)
{
    if (pool == NULL)
        return;
    for (int i = 0; i < pool->size; i++)
        webhook_store_close(pool->all[i]);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->freed);
    free(pool->free_stores);
    free(pool->all);
    free(pool);
}

webhook_store *store_pool_acquire(store_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    while (pool->free_count == 0)
        pthread_cond_wait(&pool->freed, &pool->lock);
    webhook_store *store = pool->free_stores[--pool->free_count];
    pthread_mutex_unlock(&pool->lock);
    return store;
}

void store_pool_release(store_pool *pool, webhook_store *store)
{
    pthread_mutex_lock(&pool->lock);
    pool->free_stores[pool->free_count++] = store;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
}
