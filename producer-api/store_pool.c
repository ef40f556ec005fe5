/* store_pool — see store_pool.h. */
#include "store_pool.h"

#include "log.h"
#include "timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct store_pool {
    pthread_mutex_t lock;   /* guards free_count, free_stores and stop */
    pthread_cond_t freed;   /* signalled when a connection is released */
    pthread_cond_t wake;    /* signalled to stop the prober */
    int size;               /* connections owned */
    int free_count;         /* connections available in free_stores[0 .. free_count) */
    webhook_store **free_stores;
    webhook_store **all;    /* every connection, for destroy */
    redis_gate gate;        /* shared by every pooled connection */
    webhook_store *prober;  /* owned: the prober's connection (without the gate) */
    metric_series *redis_up; /* borrowed, may be NULL */
    pthread_t prober_thread;
    int prober_started;
    int stop;
};

/* PINGs Redis every STORE_POOL_PROBE_MS (a PING may wait REDIS_CONN_TIMEOUT_MS): an answer (an error reply
 * included) opens the gate, a PING that waited REDIS_GATE_SLOW_MS or more for nothing closes it; the gauge says
 * whether PING succeeded. */
static void *prober_main(void *arg)
{
    store_pool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    while (!pool->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)STORE_POOL_PROBE_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        while (!pool->stop && pthread_cond_timedwait(&pool->wake, &pool->lock, &until) != ETIMEDOUT) {
        }
        if (pool->stop)
            break;
        pthread_mutex_unlock(&pool->lock);
        int64_t start = time_monotonic_ms();
        const char *ping[] = {"PING"};
        redisReply *reply = redis_conn_commandv(webhook_store_conn(pool->prober), 1, ping);
        /* an error reply (NOAUTH, WRONGPASS, LOADING) is an answer too: Redis does not hang, so the gate opens and
         * the pool's commands meet that error themselves (and /readyz names it). Counted as a hang, a slow refusal
         * closed the gate for good: a wrong password read "not answering" on a slow machine (valgrind) */
        int answered = reply != NULL;
        int ok = answered && reply->type != REDIS_REPLY_ERROR;
        if (reply != NULL)
            freeReplyObject(reply);
        if (answered && redis_gate_open(&pool->gate))
            log_json(LOG_INFO, "redis answers again: commands go through", NULL);
        else if (!answered && time_monotonic_ms() - start >= REDIS_GATE_SLOW_MS && redis_gate_close(&pool->gate))
            log_json(LOG_WARN, "redis hangs: commands fail at once until it answers again", NULL);
        if (pool->redis_up != NULL)
            metric_gauge_set(pool->redis_up, ok);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

store_pool *store_pool_create(const char *redis_url, int size, metric_series *redis_up, char *errbuf,
                              size_t errlen)
{
    store_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return NULL;
    pool->redis_up = redis_up;
    pool->free_stores = calloc((size_t)size, sizeof *pool->free_stores);
    pool->all = calloc((size_t)size, sizeof *pool->all);
    if (pool->free_stores == NULL || pool->all == NULL)
        goto err;
    for (int i = 0; i < size; i++) {
        pool->all[i] = webhook_store_open(redis_url, errbuf, errlen);
        if (pool->all[i] == NULL)
            goto err;
        redis_conn_set_gate(webhook_store_conn(pool->all[i]), &pool->gate);
        pool->free_stores[i] = pool->all[i];
        pool->size = i + 1;
    }
    if ((pool->prober = webhook_store_open(redis_url, errbuf, errlen)) == NULL)
        goto err;
    pool->free_count = size;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->freed, NULL);
    pthread_cond_init(&pool->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&pool->prober_thread, NULL, prober_main, pool) == 0)
        pool->prober_started = 1;
    else
        log_json(LOG_WARN, "cannot start the redis prober: after a redis stall, commands stay failed", NULL);
    return pool;
err:
    for (int i = 0; i < pool->size; i++)
        webhook_store_close(pool->all[i]);
    webhook_store_close(pool->prober);
    free(pool->free_stores);
    free(pool->all);
    free(pool);
    return NULL;
}

void store_pool_destroy(store_pool *pool)
{
    if (pool == NULL)
        return;
    if (pool->prober_started) {
        pthread_mutex_lock(&pool->lock);
        pool->stop = 1;
        pthread_cond_signal(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
        pthread_join(pool->prober_thread, NULL);
    }
    for (int i = 0; i < pool->size; i++)
        webhook_store_close(pool->all[i]);
    webhook_store_close(pool->prober);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->freed);
    pthread_cond_destroy(&pool->wake);
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
