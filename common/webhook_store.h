/*
 * webhook_store — webhook registrations and API tokens in Redis (keys in docs/DESIGN.md and README).
 *
 * Every call costs one round trip. Create and delete are Lua scripts, so the per-(organization, event type)
 * limit holds under concurrency and the subscriber hash the dispatcher reads is never out of step with the
 * webhook objects. Every change bumps hookd:subs:version, records "<version>:<org>:<event_type>" in the change
 * log hookd:subs:changes and publishes "<org>:<event_type>" on hookd:subs:changed, so dispatchers drop the
 * cached subscriber lists that changed.
 *
 * Ownership: json_t results are new references the caller releases with json_decref().
 * Thread contract: a webhook_store is one Redis connection, used by one thread at a time.
 */
#ifndef HOOKD_WEBHOOK_STORE_H
#define HOOKD_WEBHOOK_STORE_H

#include "redis_conn.h"

#include <jansson.h>

#define WEBHOOK_LIMIT_PER_TYPE 10
#define WEBHOOK_CHANGES_CHANNEL "hookd:subs:changed"
#define WEBHOOK_VERSION_KEY "hookd:subs:version"
/* The change log: a sorted set of "<version>:<org>:<event_type>", scored by the version each change bumped
 * hookd:subs:version to, trimmed to the newest WEBHOOK_CHANGE_LOG_KEEP. Dispatchers read it to drop only the
 * cached subscriber lists that changed (webhook_store_changes_since). */
#define WEBHOOK_CHANGE_LOG_KEY "hookd:subs:changes"
#define WEBHOOK_CHANGE_LOG_KEEP 10000
#define WEBHOOK_CHANGE_LOG_KEEP_TEXT "10000"
/* Incremented by every token revocation: producer-api drops its token cache when it changes. */
#define TOKENS_VERSION_KEY "hookd:tokens:version"

typedef enum store_status {
    STORE_OK = 0,
    STORE_NOT_FOUND = 1,   /* no such webhook/token, or it belongs to another organization */
    STORE_LIMIT = 2,       /* the organization already has WEBHOOK_LIMIT_PER_TYPE webhooks of that type */
    STORE_EXISTS = 3,      /* an idempotency key was already claimed and its event is durable */
    STORE_PENDING = 4,     /* an idempotency key is claimed by a request still waiting for Kafka */
    STORE_UNAVAILABLE = -1 /* Redis unreachable or answered an error: the caller answers 503 */
} store_status;

typedef struct webhook_store webhook_store;

/* Opens a store on its own Redis connection. Returns NULL with errbuf filled for an invalid URL. */
webhook_store *webhook_store_open(const char *redis_url, char *errbuf, size_t errlen);

/* Closes the connection and frees store; NULL is ignored. */
void webhook_store_close(webhook_store *store);

/* The store's connection (owned by the store), for callers that issue their own commands. */
redis_conn *webhook_store_conn(webhook_store *store);

/* Returns 0 when Redis answers PING, -1 otherwise. */
int webhook_store_ping(webhook_store *store);

/* Creates a webhook (the caller validated url and event_type) with a fresh secret. On STORE_OK *out is the new
 * webhook object. STORE_LIMIT when the type is full. */
store_status webhook_store_create(webhook_store *store, long long org, const char *url, const char *event_type,
                                  json_t **out);

/* Fetches webhook id of organization org. STORE_NOT_FOUND also when it belongs to another organization. */
store_status webhook_store_get(webhook_store *store, long long org, long long id, json_t **out);

/* Deletes webhook id of organization org and returns the deleted object in *out (may be NULL to skip). */
store_status webhook_store_delete(webhook_store *store, long long org, long long id, json_t **out);

/* One page of org's webhooks, newest first: *items is an array of objects, *total the organization's count. */
store_status webhook_store_list(webhook_store *store, long long org, long page, long per_page, json_t **items,
                                long long *total);

/* The current value of hookd:subs:version (0 when never set). */
store_status webhook_store_version(webhook_store *store, long long *version);

/* One (organization, event type index) whose subscribers changed. */
typedef struct subscription_key {
    long long org;
    int type;
} subscription_key;

/* What changed in the subscriptions between two reads of hookd:subs:version. A plain value: zero-initialised is
 * empty; keys is owned and freed with subscription_changes_free(). */
typedef struct subscription_changes {
    long long since;         /* the version the changes are counted from (-1: none) */
    long long version;       /* hookd:subs:version at the read */
    int complete;            /* 1: keys holds every (org, type) changed after `since` up to version (none when the
                              * version did not move); 0: not known, drop everything (no earlier read, the log was
                              * trimmed past it, a writer that keeps no log moved the version, or more than
                              * max_changes changes) */
    subscription_key *keys;  /* owned; may repeat a key */
    size_t count, cap;
} subscription_changes;

/* Reads hookd:subs:version and, when it moved past since (a version read earlier; -1: none), the change log's
 * entries after it, in one round trip (a read-only script). On STORE_OK *out (emptied first) says what changed. */
store_status webhook_store_changes_since(webhook_store *store, long long since, size_t max_changes,
                                         subscription_changes *out);

/* The subscriber hashes (every webhook of an organization and event type, what the dispatcher delivers to) of n
 * (org, event type) keys in one pipelined round trip (n HVALS): on STORE_OK items[i] is key i's array of webhook
 * objects (the caller releases each with json_decref); on STORE_UNAVAILABLE none is set. */
store_status webhook_store_subscribers_many(webhook_store *store, const subscription_key *keys, size_t n,
                                            json_t **items);

/* Appends key to changes (complete turns 0 when out of memory). */
void subscription_changes_add(subscription_changes *changes, subscription_key key);

/* Frees changes' keys; changes is empty afterwards (version and complete are kept). */
void subscription_changes_free(subscription_changes *changes);

/* Replaces the webhook's secret with a fresh one. The old secret stays valid for signing for grace_ms
 * (stored as "previous_secret" and "previous_secret_expires_at", RFC 3339): the dispatcher signs with both
 * until then. *out is the updated object. Atomic (compare-and-set on the stored object). */
store_status webhook_store_rotate_secret(webhook_store *store, long long org, long long id, long long grace_ms,
                                         json_t **out);

/* Removes the fields that are hookd's own bookkeeping (previous_secret, previous_secret_expires_at) so obj
 * is the public webhook object. */
void webhook_public_view(json_t *obj);

/* The last WEBHOOK_DELIVERY_LOG_MAX delivery attempts of webhook id (newest first) as an array of objects,
 * after checking it belongs to org (STORE_NOT_FOUND otherwise). */
store_status webhook_store_deliveries(webhook_store *store, long long org, long long id, json_t **items);

/* Delivery-log records held in memory until a flush, in arrival order. A plain value (zero-initialised is empty),
 * used by one thread at a time; whole buffers move between threads with webhook_log_buffer_move() under the
 * callers' lock (the dispatcher collects on its loop and flushes on its Redis thread). The records' JSON texts
 * share one growing array: no allocation per record, and none freed by another thread than the one that made it
 * (one per record, freed on the Redis thread, made the dispatch benchmark ~5 % slower). */
typedef struct webhook_log_record {
    long long webhook_id;
    size_t seq;     /* arrival order within its buffer */
    size_t offset;  /* where its NUL-terminated JSON starts in the buffer's text */
} webhook_log_record;

typedef struct webhook_log_buffer {
    webhook_log_record *records; /* owned */
    size_t len, cap;
    char *text;                  /* owned: the records' JSON, each NUL-terminated */
    size_t text_len, text_cap;
} webhook_log_buffer;

/* Record i's JSON (valid until log changes). */
const char *webhook_log_buffer_json(const webhook_log_buffer *log, size_t i);

/* Appends one attempt record (compact JSON, copied) for webhook id. Dropped when out of memory (best effort). */
void webhook_log_buffer_add(webhook_log_buffer *log, long long id, const char *record_json);

/* Moves src's records to the end of dst, keeping dst at most max_len long; src is left empty. Returns how many
 * records were dropped for want of room (or memory). */
size_t webhook_log_buffer_move(webhook_log_buffer *dst, webhook_log_buffer *src, size_t max_len);

/* Empties log and keeps its capacity. */
void webhook_log_buffer_clear(webhook_log_buffer *log);

/* Frees log's arrays; log is empty afterwards and may be used again. */
void webhook_log_buffer_free(webhook_log_buffer *log);

/* Writes log's records to their webhooks' delivery logs in one round trip and empties log: three commands per
 * webhook (one LPUSH of its newest records, LTRIM to WEBHOOK_DELIVERY_LOG_MAX, EXPIRE after
 * WEBHOOK_DELIVERY_LOG_TTL_S) however many attempts it had. Returns the number of commands sent, or:
 *   WEBHOOK_LOG_UNSENT when Redis could not be reached, or refused every command with READONLY (a replica since a
 *     failover; the connection is dropped so the next round reaches the master): nothing was written and log is
 *     left as it was (the caller may try again later);
 *   WEBHOOK_LOG_LOST when the connection failed during the round trip (a timeout included), or refused only some
 *     commands: log is emptied, and its records may or may not have been written (sending them again could log
 *     them twice). */
int webhook_store_flush_log(webhook_store *store, webhook_log_buffer *log);

#define WEBHOOK_LOG_UNSENT (-1)
#define WEBHOOK_LOG_LOST (-2)

#define WEBHOOK_DELIVERY_LOG_MAX 100
#define WEBHOOK_DELIVERY_LOG_TTL_S (7 * 86400)

/* Creates an API token: org > 0 for an organization token, org == 0 for a service token. Writes the token
 * text into token_out (SECRET_TEXT_MAX bytes); only its SHA-256 is stored. */
store_status token_store_create(webhook_store *store, long long org, char *token_out, size_t outlen);

/* Looks a token up. On STORE_OK *org is its organization (0 for a service token) and *is_service is set. */
store_status token_store_lookup(webhook_store *store, const char *token, long long *org, int *is_service);

/* Revokes a token: deletes it and increments TOKENS_VERSION_KEY in one script, so token caches drop it.
 * STORE_NOT_FOUND when it did not exist. */
store_status token_store_revoke(webhook_store *store, const char *token);

/* The current value of TOKENS_VERSION_KEY (0 when never set). */
store_status token_store_version(webhook_store *store, long long *version);

/* Claims client event id for org while its write is in flight: the key holds "pending" for pending_ttl_s
 * (long enough for the write to be acknowledged or to fail; a crashed writer's claim then lapses). Returns
 * STORE_OK when claimed now, STORE_PENDING when another request's write is still in flight, STORE_EXISTS when
 * the event was already accepted (confirmed) within 24 h. */
store_status event_id_claim(webhook_store *store, long long org, const char *event_id, long long pending_ttl_s);

/* Marks a claimed id as accepted: it answers STORE_EXISTS for 24 h from now. */
store_status event_id_confirm(webhook_store *store, long long org, const char *event_id);

/* Releases a claim (the event was not accepted after all). */
store_status event_id_release(webhook_store *store, long long org, const char *event_id);

#endif
