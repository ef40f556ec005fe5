/* subscriber_cache — see subscriber_cache.h. */
#include "subscriber_cache.h"

#include "event_types.h"
#include "log.h"
#include "timeutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One cached (org, type) answer; owned by the cache's hash chain, and on its recency list. */
typedef struct cache_entry {
    long long org;
    int type;
    int64_t loaded_ms;            /* monotonic time of the HVALS */
    int64_t refresh_asked_ms;     /* past its age, or loading: when a read was asked for (0: none pending) */
    subscriber_list *list;        /* the cache's reference; NULL while loading (asked of the refresher) */
    struct cache_entry *next;     /* hash chain */
    struct cache_entry *newer, *older; /* recency list: looked up after / before this one */
} cache_entry;

/* Chained hash table of entries plus the last seen version. */
struct subscriber_cache {
    webhook_store *store;         /* borrowed */
    dispatcher_metrics *dm;       /* borrowed */
    cache_entry **buckets;        /* owned */
    size_t nbuckets;              /* power of two */
    size_t count;
    size_t max_entries;           /* SUBSCRIBER_CACHE_MAX_ENTRIES: past it, the least recently used entry goes */
    cache_entry *newest, *oldest; /* recency list, by last lookup (or insertion) */
    long long version;            /* last hookd:subs:version seen */
    int have_version;             /* version is valid */
    int redis_failed;             /* the previous Redis call failed, or one is stalled: no lookup until retry_at_ms */
    int failed_hard;              /* a call failed (not only slow): changes may have been missed, so the cache is
                                   * dropped when Redis answers again */
    int64_t retry_at_ms;          /* while failed: no list asked of the refresher before this monotonic time */
    int backoff_ms;               /* 250 ms doubling to 4 s */
    int64_t failed_at_ms;         /* monotonic time of the last failed call (or stall) */
    int64_t max_age_ms;           /* SUBSCRIBER_CACHE_MAX_AGE */
    void (*refresh)(void *ctx, subscription_key key); /* reads a list on another thread (the Redis thread) */
    void *refresh_ctx;
};

/* An aged or loading entry whose read got no answer is asked for again after this long. */
#define REFRESH_AGAIN_MS 2000

subscriber_list *subscriber_list_ref(subscriber_list *list)
{
    if (list != NULL)
        list->refs++;
    return list;
}

void subscriber_list_release(subscriber_list *list)
{
    if (list == NULL || --list->refs > 0)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].url);
        free(list->items[i].secret);
        free(list->items[i].previous_secret);
    }
    free(list);
}

subscriber_cache *subscriber_cache_new(webhook_store *store, dispatcher_metrics *dm, int64_t max_age_ms,
                                       size_t max_entries, void (*refresh)(void *ctx, subscription_key key),
                                       void *refresh_ctx)
{
    subscriber_cache *cache = calloc(1, sizeof *cache);
    if (cache == NULL)
        return NULL;
    cache->nbuckets = 1024;
    cache->buckets = calloc(cache->nbuckets, sizeof *cache->buckets);
    if (cache->buckets == NULL) {
        free(cache);
        return NULL;
    }
    cache->store = store;
    cache->dm = dm;
    cache->max_age_ms = max_age_ms;
    cache->max_entries = max_entries > 0 ? max_entries : 1;
    cache->refresh = refresh;
    cache->refresh_ctx = refresh_ctx;
    return cache;
}

static size_t hash(long long org, int type, size_t nbuckets)
{
    uint64_t h = (uint64_t)org * 0x9E3779B97F4A7C15ull ^ (uint64_t)type * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    return (size_t)h & (nbuckets - 1);
}

/* Empties the table. */
static void cache_clear(subscriber_cache *cache)
{
    for (size_t i = 0; i < cache->nbuckets; i++) {
        cache_entry *e = cache->buckets[i];
        while (e != NULL) {
            cache_entry *next = e->next;
            subscriber_list_release(e->list);
            free(e);
            e = next;
        }
        cache->buckets[i] = NULL;
    }
    cache->count = 0;
    cache->newest = cache->oldest = NULL;
}

/* Takes e off the recency list. */
static void recency_unlink(subscriber_cache *cache, cache_entry *e)
{
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        cache->newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        cache->oldest = e->newer;
    e->newer = e->older = NULL;
}

/* Puts e (not on the list) at the recency list's newest end. */
static void recency_push_newest(subscriber_cache *cache, cache_entry *e)
{
    e->older = cache->newest;
    e->newer = NULL;
    if (cache->newest != NULL)
        cache->newest->newer = e;
    else
        cache->oldest = e;
    cache->newest = e;
}

/* e was just looked up: it becomes the newest. */
static void recency_touch(subscriber_cache *cache, cache_entry *e)
{
    if (cache->newest == e)
        return;
    recency_unlink(cache, e);
    recency_push_newest(cache, e);
}

/* Takes e out of the table and frees it (its list reference released). */
static void cache_remove(subscriber_cache *cache, cache_entry *e)
{
    for (cache_entry **pp = &cache->buckets[hash(e->org, e->type, cache->nbuckets)]; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    recency_unlink(cache, e);
    subscriber_list_release(e->list);
    free(e);
    cache->count--;
}

void subscriber_cache_free(subscriber_cache *cache)
{
    if (cache == NULL)
        return;
    cache_clear(cache);
    free(cache->buckets);
    free(cache);
}

size_t subscriber_cache_size(const subscriber_cache *cache)
{
    return cache->count;
}


/* Doubles the table when it gets crowded (best effort). */
static void maybe_grow(subscriber_cache *cache)
{
    if (cache->count < cache->nbuckets)
        return;
    size_t n = cache->nbuckets * 2;
    cache_entry **b = calloc(n, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < cache->nbuckets; i++) {
        cache_entry *e = cache->buckets[i];
        while (e != NULL) {
            cache_entry *next = e->next;
            size_t h = hash(e->org, e->type, n);
            e->next = b[h];
            b[h] = e;
            e = next;
        }
    }
    free(cache->buckets);
    cache->buckets = b;
    cache->nbuckets = n;
}

subscriber_list *subscriber_list_from_json(json_t *items)
{
    size_t n = json_array_size(items);
    subscriber_list *list = calloc(1, sizeof *list + n * sizeof(subscriber));
    if (list == NULL)
        return NULL;
    list->refs = 1;
    size_t i;
    json_t *obj;
    json_array_foreach(items, i, obj) {
        json_int_t id = 0;
        const char *url = NULL, *secret = NULL, *status = "active";
        if (json_unpack(obj, "{s:I, s:s, s:s, s?:s}", "id", &id, "url", &url, "secret", &secret, "status",
                        &status) != 0) {
            log_json(LOG_WARN, "skipping a malformed webhook in the subscriber hash", NULL);
            continue;
        }
        if (strcmp(status, "active") != 0)
            continue;
        subscriber *s = &list->items[list->count];
        s->id = (long long)id;
        s->url = strdup(url);
        s->secret = strdup(secret);
        const char *prev = json_string_value(json_object_get(obj, "previous_secret"));
        const char *prev_until = json_string_value(json_object_get(obj, "previous_secret_expires_at"));
        int64_t until_ms = 0;
        if (prev != NULL && prev_until != NULL && time_parse_rfc3339(prev_until, &until_ms) == 0) {
            s->previous_secret = strdup(prev);
            s->previous_expires_ms = until_ms;
        }
        if (s->url == NULL || s->secret == NULL || (prev != NULL && until_ms > 0 && s->previous_secret == NULL)) {
            free(s->url);
            free(s->secret);
            free(s->previous_secret);
            subscriber_list_release(list);
            return NULL;
        }
        list->count++;
    }
    return list;
}

const subscriber *subscriber_list_find(const subscriber_list *list, long long id)
{
    for (size_t i = 0; list != NULL && i < list->count; i++)
        if (list->items[i].id == id)
            return &list->items[i];
    return NULL;
}

const char *subscriber_previous_secret(const subscriber *sub, int64_t now_ms)
{
    return sub->previous_secret != NULL && now_ms < sub->previous_expires_ms ? sub->previous_secret : NULL;
}

/* Redis failed a call (hard) or has a call waiting too long (a stall: it may yet answer): lookups wait, backing
 * off from 250 ms to 4 s. */
static void redis_unavailable(subscriber_cache *cache, int hard)
{
    if (!cache->redis_failed) {
        log_json(LOG_WARN, hard ? "redis unavailable; subscriber lookups paused"
                                : "redis slow (a call has waited over 250 ms); subscriber lookups paused", NULL);
        cache->backoff_ms = 250;
    } else if (cache->backoff_ms < 4000) {
        cache->backoff_ms *= 2;
    }
    if (hard && cache->redis_failed && !cache->failed_hard)
        log_json(LOG_WARN, "redis unavailable; subscriber lookups paused", NULL);
    cache->redis_failed = 1;
    cache->failed_hard |= hard;
    cache->failed_at_ms = time_monotonic_ms();
    cache->retry_at_ms = cache->failed_at_ms + cache->backoff_ms;
    atomic_store(&cache->dm->redis_ok, 0);
    metric_gauge_set(cache->dm->redis_up, 0);
}

/* Notes the result of a Redis call: flags a failure; when Redis answers again after one, drops the cache (changes
 * may have been missed meanwhile), or after a stall only, keeps it (the stalled call answered: nothing was lost,
 * and the next changes read lists what changed since the last). */
static void redis_result(subscriber_cache *cache, int ok)
{
    if (!ok) {
        redis_unavailable(cache, 1);
        return;
    }
    if (cache->redis_failed && cache->failed_hard) {
        log_json(LOG_INFO, "redis available again; subscriber cache dropped", NULL);
        cache->have_version = 0; /* the next poll re-reads it */
        cache_clear(cache);
        metric_counter_add(cache->dm->cache_flushes, 1);
    } else if (cache->redis_failed) {
        log_json(LOG_INFO, "redis answering again after a stall; subscriber cache kept", NULL);
    }
    cache->redis_failed = 0;
    cache->failed_hard = 0;
    atomic_store(&cache->dm->redis_ok, 1);
    metric_gauge_set(cache->dm->redis_up, 1);
}

void subscriber_cache_note_stall(subscriber_cache *cache)
{
    redis_unavailable(cache, 0);
}

/* The entry of (org, type), or NULL. */
static cache_entry *cache_find(subscriber_cache *cache, long long org, int type)
{
    for (cache_entry *e = cache->buckets[hash(org, type, cache->nbuckets)]; e != NULL; e = e->next)
        if (e->org == org && e->type == type)
            return e;
    return NULL;
}

/* A hit: a new reference to e's list in *out. stale: used past its age because Redis cannot be asked. */
static int hit(subscriber_cache *cache, cache_entry *e, int stale, subscriber_list **out)
{
    metric_counter_add(stale ? cache->dm->cache_stale_hits : cache->dm->cache_hits, 1);
    *out = subscriber_list_ref(e->list);
    return 0;
}

/* Asks the refresher to read e (a loading entry, or an aged one) unless it was asked within REFRESH_AGAIN_MS or Redis
 * is known to be down. Returns 1 when it asked, else 0. */
static int ask_refresher(subscriber_cache *cache, cache_entry *e, int64_t now)
{
    if (cache->redis_failed && now < cache->retry_at_ms)
        return 0;
    if (e->refresh_asked_ms != 0 && now - e->refresh_asked_ms <= REFRESH_AGAIN_MS)
        return 0;
    e->refresh_asked_ms = now != 0 ? now : 1;
    cache->refresh(cache->refresh_ctx, (subscription_key){e->org, e->type});
    return 1;
}

/* Serves e (not loading). Past its age it is used still: while Redis is known to be down as a stale hit, else
 * while the refresher reads it again (asked for once per REFRESH_AGAIN_MS). */
static int serve(subscriber_cache *cache, cache_entry *e, int64_t now, subscriber_list **out)
{
    recency_touch(cache, e);
    if (now - e->loaded_ms <= cache->max_age_ms)
        return hit(cache, e, 0, out);
    if (cache->redis_failed)
        return hit(cache, e, 1, out);
    if (ask_refresher(cache, e, now))
        metric_counter_add(cache->dm->cache_refreshes, 1);
    return hit(cache, e, 0, out);
}

/* Adds an entry for (org, type) with list (a reference taken; NULL: loading) loaded at now, as the newest; with
 * the cache full, the least recently looked up entry goes first. Returns it, or NULL when out of memory. */
static cache_entry *cache_insert(subscriber_cache *cache, long long org, int type, subscriber_list *list, int64_t now)
{
    while (cache->count >= cache->max_entries && cache->oldest != NULL) {
        cache_remove(cache, cache->oldest);
        metric_counter_add(cache->dm->cache_evictions, 1);
    }
    cache_entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    maybe_grow(cache);
    size_t h = hash(org, type, cache->nbuckets);
    e->org = org;
    e->type = type;
    e->loaded_ms = now;
    e->list = subscriber_list_ref(list);
    e->next = cache->buckets[h];
    cache->buckets[h] = e;
    recency_push_newest(cache, e);
    cache->count++;
    return e;
}

int subscriber_cache_get(subscriber_cache *cache, long long org, int type, subscriber_list **out)
{
    int64_t now = time_monotonic_ms();
    cache_entry *e = cache_find(cache, org, type);
    if (e != NULL && e->list != NULL)
        return serve(cache, e, now, out);
    if (e != NULL) {
        recency_touch(cache, e); /* loading: its events are waiting for it */
    } else { /* a miss: a loading entry, read on the refresher's thread while the caller waits */
        if (cache->redis_failed && now < cache->retry_at_ms)
            return -1;
        if ((e = cache_insert(cache, org, type, NULL, now)) == NULL)
            return -1;
        metric_counter_add(cache->dm->cache_misses, 1);
    }
    ask_refresher(cache, e, now); /* for a loading entry: again, if its answer is overdue */
    return -1;
}

int subscriber_cache_poll(subscriber_cache *cache)
{
    long long version = 0;
    if (cache->redis_failed && time_monotonic_ms() < cache->retry_at_ms)
        return -1;
    store_status st = webhook_store_version(cache->store, &version);
    subscriber_cache_apply_version(cache, st == STORE_OK, version, time_monotonic_ms());
    return st == STORE_OK ? 0 : -1;
}

/* Drops the entry of (org, type) if there is one. */
static void cache_drop(subscriber_cache *cache, long long org, int type)
{
    cache_entry *e = cache_find(cache, org, type);
    if (e != NULL)
        cache_remove(cache, e);
}

void subscriber_cache_apply_changes(subscriber_cache *cache, int ok, const subscription_changes *changes,
                                    int64_t done_ms)
{
    if (ok && cache->redis_failed && done_ms < cache->failed_at_ms)
        return; /* a read that answered before a later failure was seen: not a sign that Redis is back */
    redis_result(cache, ok);
    if (!ok)
        return;
    if (!cache->have_version) { /* entries loaded before the first version read may predate it */
        if (cache->count > 0)
            metric_counter_add(cache->dm->cache_flushes, 1);
        cache_clear(cache);
    } else if (changes->version != cache->version) {
        if (changes->complete && changes->since == cache->version) {
            for (size_t i = 0; i < changes->count; i++)
                cache_drop(cache, changes->keys[i].org, changes->keys[i].type);
            metric_counter_add(cache->dm->subscription_changes, changes->count);
        } else {
            log_json(LOG_DEBUG, "subscriptions changed; cache dropped", "{s:I, s:I}", "from",
                     (json_int_t)cache->version, "to", (json_int_t)changes->version);
            cache_clear(cache);
            metric_counter_add(cache->dm->cache_flushes, 1);
        }
    }
    cache->version = changes->version;
    cache->have_version = 1;
}

void subscriber_cache_apply_refreshes(subscriber_cache *cache, subscriber_refresh *refreshes, size_t n)
{
    int64_t now = time_monotonic_ms();
    for (size_t i = 0; i < n; i++) {
        cache_entry *e = cache_find(cache, refreshes[i].key.org, refreshes[i].key.type);
        /* only the aged or loading entry it was asked for: one dropped since (a change, or the whole cache) is not
         * filled with an answer that may predate the drop */
        if (e != NULL && e->refresh_asked_ms != 0 && refreshes[i].list != NULL) {
            subscriber_list_release(e->list);
            e->list = refreshes[i].list;
            e->loaded_ms = now;
            e->refresh_asked_ms = 0;
        } else {
            subscriber_list_release(refreshes[i].list);
        }
        refreshes[i].list = NULL;
    }
}

void subscriber_cache_apply_version(subscriber_cache *cache, int ok, long long version, int64_t done_ms)
{
    subscription_changes unknown = {.since = -1, .version = version};
    subscriber_cache_apply_changes(cache, ok, &unknown, done_ms);
}
