/*
 * store_pool — a fixed set of webhook_store connections shared by the HTTP worker threads.
 *
 * hiredis contexts are not thread-safe, so each request borrows one connection for its duration and gives it
 * back. The pool is sized to the number of worker threads, so a borrow never waits in practice.
 *
 * Redis that hangs: the pooled connections share a redis_gate (redis_conn.h). The first command that times out
 * closes it, and from then on every request that needs Redis gets its 503 at once instead of a 2 s wait on an
 * HTTP thread (which also held every other request of that thread, /healthz included: 40 concurrent requests
 * took up to 16 s). A prober thread, with a connection of its own, PINGs Redis every STORE_POOL_PROBE_MS: it
 * opens the gate when Redis answers, closes it when a PING waited REDIS_GATE_SLOW_MS or more without an answer
 * (before any request has to), and reports what it saw in a gauge (hookd_api_redis_up).
 *
 * Thread contract: store_pool_acquire/release may be called from any thread.
 */
#ifndef HOOKD_STORE_POOL_H
#define HOOKD_STORE_POOL_H

#include "metrics.h"
#include "webhook_store.h"

typedef struct store_pool store_pool;

/* Opens size connections to redis_url and starts the prober, which sets redis_up (borrowed, may be NULL) to 1 or 0
 * after each PING. Returns NULL with errbuf filled when the URL is invalid. */
store_pool *store_pool_create(const char *redis_url, int size, metric_series *redis_up, char *errbuf,
                              size_t errlen);

#define STORE_POOL_PROBE_MS 100

/* Closes every connection (all must have been released) and stops the prober. NULL is ignored. */
void store_pool_destroy(store_pool *pool);

/* Borrows a connection, waiting while all are in use. Never NULL. */
webhook_store *store_pool_acquire(store_pool *pool);

/* Gives a borrowed connection back. */
void store_pool_release(store_pool *pool, webhook_store *store);

#endif
