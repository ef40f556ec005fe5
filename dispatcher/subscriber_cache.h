/*
 * subscriber_cache — who gets an event: the webhooks of one (organization, event type), cached in process.
 *
 * A miss costs one HVALS, read by the refresher (the dispatcher's Redis thread) while the caller waits (the entry
 * is "loading" meanwhile), so that no Redis call runs on the event loop; the answer, empty lists included, is kept
 * until its webhooks change. What changed is read every ~200 ms on the dispatcher's Redis thread (hookd:subs:version and
 * the change log hookd:subs:changes) and applied with subscriber_cache_apply_changes: only the entries of the
 * (organization, event type) keys that changed are dropped, so one customer's new webhook costs the other
 * organizations' lookups nothing. The whole cache is dropped when the changes cannot be known (the log was
 * trimmed past the last read, a writer without the log moved the version, Redis was unreachable).
 * subscriber_cache_poll reads the version here, at start-up. Entries are also read again once older than
 * SUBSCRIBER_CACHE_MAX_AGE, as a safety net: by the refresher (the dispatcher's Redis thread) while the entry in
 * hand is still used, so that no such read blocks the loop; while Redis cannot answer, an older entry is used still
 * (the list read last is better than no delivery; counted as a stale hit).
 *
 * At most max_entries (organization, event type) entries are kept (SUBSCRIBER_CACHE_MAX_ENTRIES, ~120 bytes each
 * with an empty list): a new one takes the place of the one looked up least recently, so organizations whose events
 * keep coming stay cached however many others come and go. (It used to drop the whole cache when full: each time,
 * every active organization's next event was a lookup again.)
 *
 * Ownership: the cache borrows the webhook_store (the caller closes it after the cache). A subscriber_list is
 * reference counted: the cache holds one reference, every user that keeps it past the next poll takes its own
 * (subscriber_list_ref) and drops it with subscriber_list_release().
 * Thread contract: the event-loop thread only. Only subscriber_cache_poll (at start-up) calls Redis.
 */
#ifndef HOOKD_SUBSCRIBER_CACHE_H
#define HOOKD_SUBSCRIBER_CACHE_H

#include "dispatcher_metrics.h"
#include "webhook_store.h"

#include <stddef.h>
#include <stdint.h>

#define SUBSCRIBER_CACHE_DEFAULT_MAX_AGE "60s"
#define SUBSCRIBER_CACHE_DEFAULT_MAX_ENTRIES 200000

/* A list read again by the refresher, handed to subscriber_cache_apply_refreshes (which takes list). */
typedef struct subscriber_refresh {
    subscription_key key;
    struct subscriber_list *list; /* owned; NULL when it could not be built */
} subscriber_refresh;

/* One active webhook, copied out of its JSON. */
typedef struct subscriber {
    long long id;
    char *url;      /* owned by the list */
    char *secret;   /* owned by the list */
    char *previous_secret;          /* owned; a rotated webhook's old secret, NULL when none */
    int64_t previous_expires_ms;    /* epoch ms until which previous_secret also signs */
} subscriber;

/* The active webhooks of one (org, type). Immutable once built. */
typedef struct subscriber_list {
    int refs;
    size_t count;
    subscriber items[];
} subscriber_list;

typedef struct subscriber_cache subscriber_cache;

/* Creates an empty cache of at most max_entries entries (0 counts as 1). refresh(refresh_ctx, key) asks for key's list to be read on another thread (the
 * dispatcher's Redis thread, redis_worker_refresh); the answers come back through subscriber_cache_apply_refreshes.
 * Entries are read again once older than max_age_ms. store (borrowed) serves subscriber_cache_poll only. Returns
 * NULL on allocation failure. */
subscriber_cache *subscriber_cache_new(webhook_store *store, dispatcher_metrics *dm, int64_t max_age_ms,
                                       size_t max_entries, void (*refresh)(void *ctx, subscription_key key),
                                       void *refresh_ctx);

/* Drops every entry (lists still referenced elsewhere live on) and frees the cache. NULL is ignored. */
void subscriber_cache_free(subscriber_cache *cache);

/* Looks (org, type index) up, never calling Redis. Returns 0 with *out set to a new reference (caller releases), or
 * -1 when the list is not cached: it is asked of the refresher (unless Redis is known to be down and backing off, or
 * it was asked within 2 s), and the caller asks again once the refresher's lists are applied. An entry past its
 * age is used still, and read again meanwhile. */
int subscriber_cache_get(subscriber_cache *cache, long long org, int type, subscriber_list **out);

/* Installs lists read by the refresher (each list is taken: installed or released; set to NULL), each only if its
 * entry is still the aged or loading one the read was asked for. */
void subscriber_cache_apply_refreshes(subscriber_cache *cache, subscriber_refresh *refreshes, size_t n);

/* The active webhooks of a JSON array of webhook objects (as webhook_store_subscribers_many reads them), or NULL when
 * out of memory. Any thread. */
subscriber_list *subscriber_list_from_json(json_t *items);

/* The version check. Returns 0 when Redis answered, -1 when it did not. */
int subscriber_cache_poll(subscriber_cache *cache);

/* A change read's effects, for a read made elsewhere (the dispatcher's Redis thread) that completed at monotonic
 * done_ms: ok 0 when Redis did not answer (lookups back off, the cache is dropped when it answers again); else,
 * when changes->version differs from the last one applied, the entries of changes' keys are dropped when changes
 * is complete and counted from that last version, and the whole cache otherwise. changes is borrowed. A
 * successful read that completed before the last failure the cache saw is ignored. */
void subscriber_cache_apply_changes(subscriber_cache *cache, int ok, const subscription_changes *changes,
                                    int64_t done_ms);

/* As subscriber_cache_apply_changes for a read of the version alone (changes unknown): the version check's
 * effects, for a read made elsewhere (the dispatcher's Redis thread, redis_worker) that
 * completed at monotonic done_ms: ok 0 when Redis did not answer (lookups back off, the cache is dropped when it
 * answers again); else the cache is dropped when version differs from the last one applied. A successful read
 * that completed before the last failure the cache saw is ignored. */
void subscriber_cache_apply_version(subscriber_cache *cache, int ok, long long version, int64_t done_ms);

/* Redis has a call (of the Redis thread) waiting too long: Redis counts as down (lists are not asked for, aged
 * ones are used as stale hits), but when it answers again the cache is kept (the stalled call answered: nothing
 * was missed), unless a call failed meanwhile. */
void subscriber_cache_note_stall(subscriber_cache *cache);

subscriber_list *subscriber_list_ref(subscriber_list *list);
void subscriber_list_release(subscriber_list *list);

/* The subscriber with webhook id in list, or NULL. */
const subscriber *subscriber_list_find(const subscriber_list *list, long long id);

/* The previous secret to sign with too at epoch ms now (NULL when none or expired). */
const char *subscriber_previous_secret(const subscriber *sub, int64_t now_ms);

/* Number of cached (org, type) entries. */
size_t subscriber_cache_size(const subscriber_cache *cache);

#endif
