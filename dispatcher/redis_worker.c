/* redis_worker — see redis_worker.h. */
#include "redis_worker.h"

#include "log.h"
#include "subscriber_cache.h"
#include "timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct redis_worker {
    webhook_store *store;         /* owned: this thread's connection */
    pthread_t thread;
    pthread_mutex_t lock;         /* guards everything below but busy_since_ms */
    pthread_cond_t wake;          /* records handed over, or stop */
    int stop;
    webhook_log_buffer inbox;     /* handed over by the loop, not yet taken by the thread */
    size_t held;                  /* records the thread kept from its last round (Redis unreachable) */
    int drop_held;                /* set by the hand-over when held + inbox passed REDIS_WORKER_LOG_MAX */
    uint64_t log_dropped;
    int have_result, result_ok;   /* what the reads since the loop's last take found, until it takes it */
    const char *result_failure;   /* static: why the last read failed (redis_conn_failure), NULL when it did not */
    subscription_changes result;  /* their changes merged (result.since: the version the loop's last take had) */
    int64_t result_done_ms;
    subscription_key *refresh_asked; /* keys whose subscribers the loop asked to read, for the next rounds (a FIFO
                                      * of REDIS_WORKER_REFRESH_QUEUE) */
    size_t refresh_count;
    subscriber_refresh *refreshed;   /* read, until the loop takes them (owned lists; REDIS_WORKER_REFRESH_QUEUE) */
    size_t refreshed_count;
    int ready_fd;                    /* eventfd: lists were read (the loop takes them at once) */
    long long read_version;       /* the worker's thread only: the version its last read saw (-1: none, or the
                                   * read failed, so the next one cannot say what changed) */
    _Atomic int64_t busy_since_ms; /* monotonic start of the call in progress, 0 when none */
    int log_failing;              /* the worker's thread only: the last delivery-log write failed (logged once) */
};

/* One round: write the delivery-log records in batch, then read what changed in the subscriptions since the last
 * round (*changes; *ok 0 when Redis did not answer, *failure then saying why: redis_conn_failure). Runs on the
 * worker's thread with the lock released. When Redis cannot be reached, nothing is sent and batch keeps its records
 * for the next round; when the connection fails during the write, they are lost (*lost: how many), since sending
 * them again could log them twice. */
static void worker_round(redis_worker *w, webhook_log_buffer *batch, int *ok, const char **failure,
                         subscription_changes *changes, size_t *lost, const subscription_key *refresh,
                         size_t refresh_count, subscriber_refresh *refreshed, size_t *refreshed_count)
{
    atomic_store(&w->busy_since_ms, time_monotonic_ms());
    *lost = 0;
    if (batch->len > 0) {
        size_t records = batch->len;
        int rc = webhook_store_flush_log(w->store, batch);
        if (rc == WEBHOOK_LOG_LOST) { /* each time: it takes a connection failing in the middle of a write */
            *lost = records;
            log_json(LOG_WARN, "delivery log records lost: the connection to redis failed while they were written",
                     "{s:I}", "records", (json_int_t)records);
        } else if (rc == WEBHOOK_LOG_UNSENT && !w->log_failing) { /* once per outage, not at every round */
            log_json(LOG_WARN, "delivery log held while redis is unavailable (written when it answers again)",
                     "{s:I}", "records", (json_int_t)records);
        }
        w->log_failing = rc < 0;
    }
    /* a tick's records at full speed take ~2 MiB: the arrays go back to malloc rather than circulate between the
     * loop, the hand-over and here (three sets kept made the dispatch row's RSS 5 MiB larger) */
    if (batch->len == 0)
        webhook_log_buffer_free(batch);
    *ok = webhook_store_changes_since(w->store, w->read_version, REDIS_WORKER_CHANGES_MAX, changes) == STORE_OK;
    w->read_version = *ok ? changes->version : -1;
    *failure = *ok ? NULL : redis_conn_failure(webhook_store_conn(w->store));
    /* after the changes read: a list read here is at least as new as the changes the loop applies with it */
    *refreshed_count = 0;
    json_t *items[REDIS_WORKER_REFRESH_MAX];
    if (*ok && refresh_count > 0 &&
        webhook_store_subscribers_many(w->store, refresh, refresh_count, items) == STORE_OK) {
        for (size_t i = 0; i < refresh_count; i++) {
            refreshed[i] = (subscriber_refresh){refresh[i], subscriber_list_from_json(items[i])};
            json_decref(items[i]);
        }
        *refreshed_count = refresh_count;
    }
    atomic_store(&w->busy_since_ms, 0);
}

/* Releases the lists read that the loop did not take (the lock is held, or the thread is gone). */
static void drop_refreshed(redis_worker *w)
{
    for (size_t i = 0; i < w->refreshed_count; i++)
        subscriber_list_release(w->refreshed[i].list);
    w->refreshed_count = 0;
}

/* 1 when key is among changes' keys. */
static int listed(const subscription_changes *changes, subscription_key key)
{
    for (size_t i = 0; i < changes->count; i++)
        if (changes->keys[i].org == key.org && changes->keys[i].type == key.type)
            return 1;
    return 0;
}

/* Adds a round's read to what waits for the loop (the lock is held): a failure replaces it (the loop learns that
 * Redis did not answer; the next read cannot say what changed, so the cache will be dropped), a success after a
 * success extends it, up to REDIS_WORKER_CHANGES_MAX keys. round is left empty. Lists read in earlier rounds and
 * not taken yet stay unless this round's changes may be newer than them (their key changed, or the changes could
 * not be listed): the loop applies all the changes before all the lists. The round's lists are added (those past
 * REDIS_WORKER_REFRESH_QUEUE released: the cache asks again). */
static void merge_result(redis_worker *w, int ok, const char *failure, subscription_changes *round,
                         subscriber_refresh *refreshed, size_t refreshed_count)
{
    size_t kept = 0;
    for (size_t i = 0; i < w->refreshed_count; i++) {
        if (ok && round->complete && !listed(round, w->refreshed[i].key))
            w->refreshed[kept++] = w->refreshed[i];
        else
            subscriber_list_release(w->refreshed[i].list);
    }
    w->refreshed_count = kept;
    for (size_t i = 0; i < refreshed_count; i++) {
        if (w->refreshed_count < REDIS_WORKER_REFRESH_QUEUE)
            w->refreshed[w->refreshed_count++] = refreshed[i];
        else
            subscriber_list_release(refreshed[i].list);
    }
    subscription_changes *r = &w->result;
    if (!ok || !w->have_result || !w->result_ok) {
        subscription_changes_free(r);
        *r = *round;
        *round = (subscription_changes){0};
    } else {
        r->complete = r->complete && round->complete && r->count + round->count <= REDIS_WORKER_CHANGES_MAX;
        for (size_t i = 0; r->complete && i < round->count; i++)
            subscription_changes_add(r, round->keys[i]);
        if (!r->complete)
            subscription_changes_free(r);
        r->version = round->version;
        subscription_changes_free(round);
    }
    w->have_result = 1;
    w->result_ok = ok;
    w->result_failure = failure;
    w->result_done_ms = time_monotonic_ms();
}

/* Takes what the loop handed over after the records kept from the last round (the lock is held). */
static void take_inbox(redis_worker *w, webhook_log_buffer *batch)
{
    if (w->drop_held && batch->len > 0) { /* the oldest go first: the log keeps the newest attempts */
        w->log_dropped += batch->len;
        webhook_log_buffer_free(batch);
    }
    w->drop_held = 0;
    w->log_dropped += webhook_log_buffer_move(batch, &w->inbox, SIZE_MAX);
}

static void *worker_main(void *arg)
{
    redis_worker *w = arg;
    webhook_log_buffer batch = {0};
    subscription_key refresh[REDIS_WORKER_REFRESH_MAX];
    subscriber_refresh refreshed[REDIS_WORKER_REFRESH_MAX];
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        take_inbox(w, &batch);
        /* the oldest requests, at most one pipeline's worth; the rest stay for the next round, run at once */
        size_t refresh_count = w->refresh_count < REDIS_WORKER_REFRESH_MAX ? w->refresh_count
                                                                           : REDIS_WORKER_REFRESH_MAX;
        memcpy(refresh, w->refresh_asked, refresh_count * sizeof *refresh);
        w->refresh_count -= refresh_count;
        memmove(w->refresh_asked, w->refresh_asked + refresh_count, w->refresh_count * sizeof *refresh);
        pthread_mutex_unlock(&w->lock);
        int ok = 0;
        const char *failure = NULL;
        subscription_changes round = {0};
        size_t lost = 0, refreshed_count = 0;
        worker_round(w, &batch, &ok, &failure, &round, &lost, refresh, refresh_count, refreshed, &refreshed_count);
        pthread_mutex_lock(&w->lock);
        w->held = batch.len;
        w->log_dropped += lost;
        merge_result(w, ok, failure, &round, refreshed, refreshed_count);
        if (refreshed_count > 0) { /* the loop takes them now, not at its next tick: events wait for them */
            uint64_t one = 1;
            ssize_t written = write(w->ready_fd, &one, sizeof one);
            (void)written; /* EAGAIN: the counter is already non-zero */
        }
        if (w->stop)
            break;
        if (w->refresh_count > 0)
            continue; /* more lists asked for than one pipeline: no wait */
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)REDIS_WORKER_POLL_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        /* the next round: when records are handed over (each tick of the loop), lists are asked for, or
         * REDIS_WORKER_POLL_MS from now */
        while (!w->stop && w->inbox.len == 0 && w->refresh_count == 0 &&
               pthread_cond_timedwait(&w->wake, &w->lock, &until) != ETIMEDOUT) {
        }
    }
    /* the last records handed over (redis_worker_stop): one more write */
    take_inbox(w, &batch);
    pthread_mutex_unlock(&w->lock);
    if (batch.len > 0)
        webhook_store_flush_log(w->store, &batch);
    webhook_log_buffer_free(&batch);
    return NULL;
}

redis_worker *redis_worker_start(const char *redis_url, char *errbuf, size_t errlen)
{
    redis_worker *w = calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    w->read_version = -1;
    w->refresh_asked = calloc(REDIS_WORKER_REFRESH_QUEUE, sizeof *w->refresh_asked);
    w->refreshed = calloc(REDIS_WORKER_REFRESH_QUEUE, sizeof *w->refreshed);
    w->ready_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->refresh_asked == NULL || w->refreshed == NULL || w->ready_fd < 0) {
        snprintf(errbuf, errlen, "out of memory (or no eventfd)");
        if (w->ready_fd >= 0)
            close(w->ready_fd);
        free(w->refresh_asked);
        free(w->refreshed);
        free(w);
        return NULL;
    }
    if ((w->store = webhook_store_open(redis_url, errbuf, errlen)) == NULL) {
        close(w->ready_fd);
        free(w->refresh_asked);
        free(w->refreshed);
        free(w);
        return NULL;
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, &attr);
    pthread_condattr_destroy(&attr);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        snprintf(errbuf, errlen, "cannot start the redis thread: %s", strerror(rc));
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        webhook_store_close(w->store);
        close(w->ready_fd);
        free(w->refresh_asked);
        free(w->refreshed);
        free(w);
        return NULL;
    }
    pthread_setname_np(w->thread, "redis");
    return w;
}

void redis_worker_stop(redis_worker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    webhook_log_buffer_free(&w->inbox);
    subscription_changes_free(&w->result);
    drop_refreshed(w);
    free(w->refreshed);
    free(w->refresh_asked);
    close(w->ready_fd);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    webhook_store_close(w->store);
    free(w);
}

void redis_worker_hand_log(redis_worker *w, webhook_log_buffer *log)
{
    if (log->len == 0)
        return;
    pthread_mutex_lock(&w->lock);
    size_t dropped = 0;
    if (w->held + w->inbox.len + log->len > REDIS_WORKER_LOG_MAX) { /* Redis is away or stuck: keep the newest */
        if (w->held > 0) { /* the thread drops what it kept (and counts it) before taking the inbox */
            w->drop_held = 1;
            w->held = 0;
        }
        if (w->inbox.len + log->len > REDIS_WORKER_LOG_MAX) {
            dropped = w->inbox.len;
            webhook_log_buffer_clear(&w->inbox);
        }
    }
    dropped += webhook_log_buffer_move(&w->inbox, log, REDIS_WORKER_LOG_MAX);
    int first = dropped > 0 && w->log_dropped == 0;
    w->log_dropped += dropped;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    if (first)
        log_json(LOG_WARN, "delivery log records dropped: redis is not keeping up (the log keeps the newest)",
                 "{s:I}", "dropped", (json_int_t)dropped);
}

int redis_worker_poll_result(redis_worker *w, int *ok, const char **failure, subscription_changes *changes,
                             int64_t *done_ms, subscriber_refresh *refreshed, size_t *refreshed_count)
{
    pthread_mutex_lock(&w->lock);
    int have = w->have_result;
    *refreshed_count = 0;
    if (have) {
        *ok = w->result_ok;
        *failure = w->result_failure;
        subscription_changes_free(changes);
        *changes = w->result;
        w->result = (subscription_changes){0};
        *done_ms = w->result_done_ms;
        w->have_result = 0;
        memcpy(refreshed, w->refreshed, w->refreshed_count * sizeof *refreshed);
        *refreshed_count = w->refreshed_count;
        w->refreshed_count = 0;
    }
    pthread_mutex_unlock(&w->lock);
    return have;
}

int redis_worker_ready_fd(redis_worker *w)
{
    return w->ready_fd;
}

void redis_worker_refresh(void *ctx, subscription_key key)
{
    redis_worker *w = ctx;
    pthread_mutex_lock(&w->lock);
    if (w->refresh_count < REDIS_WORKER_REFRESH_QUEUE) { /* else dropped: the cache asks again */
        w->refresh_asked[w->refresh_count++] = key;
        pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&w->lock);
}

int redis_worker_stalled(void *ctx, int64_t now_ms)
{
    redis_worker *w = ctx;
    int64_t since = atomic_load(&w->busy_since_ms);
    return since != 0 && now_ms - since > REDIS_WORKER_STALL_MS;
}

uint64_t redis_worker_log_dropped(redis_worker *w)
{
    pthread_mutex_lock(&w->lock);
    uint64_t n = w->log_dropped;
    pthread_mutex_unlock(&w->lock);
    return n;
}
