/*
 * redis_worker — the dispatcher's Redis calls whose answers the event loop does not wait for, on a thread of their
 * own: the subscription changes read (hookd:subs:version and its change log), the subscriber lists the cache
 * asks to read again (past SUBSCRIBER_CACHE_MAX_AGE) and the delivery-log writes. A round writes what the loop
 * handed over, then reads what changed since the last round, then the lists asked for; rounds run when records are
 * handed over (the loop's tick, every 200 ms) and at least every REDIS_WORKER_POLL_MS.
 *
 * A Redis that hangs holds a call for up to REDIS_CONN_TIMEOUT_MS (2 s). On the loop, that stopped every delivery,
 * cached subscribers' included, for the whole stall; here it holds only this thread. The loop takes what the reads
 * found since its last take at each tick, and at once when lists it asked for were read (redis_worker_poll_result:
 * the changed (organization, event type) keys merged, or "drop everything" when they cannot be known, and the
 * lists read), and hands over the attempts it logged since the last (redis_worker_hand_log). redis_worker_stalled()
 * tells the loop that a call here has been waiting for longer than REDIS_WORKER_STALL_MS, so that it counts Redis
 * as down meanwhile (subscriber_cache_note_stall).
 *
 * Delivery-log records wait while Redis cannot be reached (nothing sent: the next round tries again), bounded by
 * REDIS_WORKER_LOG_MAX with what was handed over since: past it the oldest are dropped, so the log keeps the
 * newest attempts. A write that fails part way (the connection broke or timed out) is not repeated, since Redis
 * may have run it: its records are counted as dropped (the log is best effort; deliveries are not affected).
 *
 * Ownership: owns its thread, its webhook_store (a Redis connection of its own) and the records handed to it.
 * Thread contract: the functions are called from the event-loop thread; they share state with the worker's thread
 * under a mutex (the stall clock is atomic).
 */
#ifndef HOOKD_REDIS_WORKER_H
#define HOOKD_REDIS_WORKER_H

#include "subscriber_cache.h"
#include "webhook_store.h"

#include <stdint.h>

#define REDIS_WORKER_POLL_MS 200
#define REDIS_WORKER_STALL_MS 250
#define REDIS_WORKER_LOG_MAX 50000
/* More changed (organization, event type) keys than this between two takes of the loop: it drops its whole cache. */
#define REDIS_WORKER_CHANGES_MAX 4096
/* Subscriber lists read per round at most (one pipeline of HVALS; more wait for the next round, run at once), and
 * waiting at most (more are dropped: the cache asks again), read and not taken by the loop at most. */
#define REDIS_WORKER_REFRESH_MAX 256
#define REDIS_WORKER_REFRESH_QUEUE 8192

typedef struct redis_worker redis_worker;

/* Opens the worker's own connection to redis_url and starts its thread (the first version read happens at once).
 * Returns NULL with errbuf filled when the URL is invalid or the thread cannot start. */
redis_worker *redis_worker_start(const char *redis_url, char *errbuf, size_t errlen);

/* Writes what was handed over and not written yet (one last round trip), stops the thread and frees w. Waits for
 * a call in progress (at most REDIS_CONN_TIMEOUT_MS per call). NULL is ignored. */
void redis_worker_stop(redis_worker *w);

/* Moves log's records to the worker (log is left empty), to be written by its next round. */
void redis_worker_hand_log(redis_worker *w, webhook_log_buffer *log);

/* What the subscription reads completed since the last call found: returns 1 with *ok (0: the last read got no
 * answer from Redis; *failure then says why, redis_conn_failure's static string, else NULL), when ok *changes (its previous keys freed; the caller frees the new ones with
 * subscription_changes_free: changes->since is the version of the previous call's result, -1 when unknown), and
 * the monotonic ms the last read completed at in *done_ms, and the subscriber lists read since (at most
 * REDIS_WORKER_REFRESH_QUEUE, copied to refreshed, the lists owned by the caller: subscriber_cache_apply_refreshes)
 * in *refreshed_count; returns 0 when no read completed since (*refreshed_count 0). */
int redis_worker_poll_result(redis_worker *w, int *ok, const char **failure, subscription_changes *changes,
                             int64_t *done_ms, subscriber_refresh *refreshed, size_t *refreshed_count);

/* Asks for the subscribers of key to be read, in a round that starts at once (the shape subscriber_cache_set_refresher
 * takes; ctx is the redis_worker). Past REDIS_WORKER_REFRESH_QUEUE waiting, the request is dropped. */
void redis_worker_refresh(void *ctx, subscription_key key);

/* An eventfd (owned by the worker) signalled when a round read lists: the loop should take its result at once
 * (redis_worker_poll_result) rather than at its next tick. */
int redis_worker_ready_fd(redis_worker *w);

/* 1 when a call of the worker has been waiting for Redis longer than REDIS_WORKER_STALL_MS at monotonic time now_ms.
 * ctx is the redis_worker. */
int redis_worker_stalled(void *ctx, int64_t now_ms);

/* Delivery-log records dropped so far for want of room (Redis slower than the deliveries, or down). */
uint64_t redis_worker_log_dropped(redis_worker *w);

#endif
