/* webhook_store — see webhook_store.h. */
#include "webhook_store.h"

#include "event_types.h"
#include "log.h"
#include "secret.h"
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct webhook_store {
    redis_conn *conn; /* owned */
};

/* The Lua lines every change of a subscriber hash ends with: bumps the version (bump_expr, an INCR that
 * returns the new version), records "<version>:<org>:<event_type>" (org_type_expr) in the change log scored by
 * that version, keeps the log's newest WEBHOOK_CHANGE_LOG_KEEP entries, and publishes "<org>:<event_type>".
 * One entry per version: a reader that finds as many entries as the version moved knows it saw every change. */
#define RECORD_CHANGE(bump_expr, org_type_expr)                                                                  \
    "local changed_to = " bump_expr "\n"                                                                         \
    "redis.call('ZADD', '" WEBHOOK_CHANGE_LOG_KEY "', changed_to, changed_to .. ':' .. " org_type_expr ")\n"      \
    "redis.call('ZREMRANGEBYRANK', '" WEBHOOK_CHANGE_LOG_KEY "', 0, -" WEBHOOK_CHANGE_LOG_KEEP_TEXT " - 1)\n"     \
    "redis.call('PUBLISH', '" WEBHOOK_CHANGES_CHANNEL "', " org_type_expr ")\n"

/* Adds a webhook atomically. KEYS: subs hash, org zset, id sequence, version. ARGV: limit, the object's JSON
 * without its leading '{' and id, the change message. Returns -1 when the type is full, else the object. */
static const char CREATE_SCRIPT[] =
    "if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[1]) then return -1 end\n"
    "local id = redis.call('INCR', KEYS[3])\n"
    "local obj = '{\"id\":' .. id .. ',' .. ARGV[2]\n"
    "redis.call('SET', 'hookd:webhook:' .. id, obj)\n"
    "redis.call('ZADD', KEYS[2], id, id)\n"
    "redis.call('HSET', KEYS[1], id, obj)\n"
    RECORD_CHANGE("redis.call('INCR', KEYS[4])", "ARGV[3]")
    "return obj\n";

/* Removes a webhook atomically when it belongs to the organization. KEYS: webhook key, org zset, version.
 * ARGV: org, id. Returns the removed object, or nil. */
static const char DELETE_SCRIPT[] =
    "local obj = redis.call('GET', KEYS[1])\n"
    "if not obj then return false end\n"
    "local w = cjson.decode(obj)\n"
    "if w.organization_id ~= tonumber(ARGV[1]) then return false end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('ZREM', KEYS[2], ARGV[2])\n"
    "redis.call('HDEL', 'hookd:subs:' .. ARGV[1] .. ':' .. w.event_type, ARGV[2])\n"
    RECORD_CHANGE("redis.call('INCR', KEYS[3])", "ARGV[1] .. ':' .. w.event_type")
    "return obj\n";

/* One page of an organization's webhooks. KEYS: org zset. ARGV: start, stop. Returns {total, obj...}. */
static const char LIST_SCRIPT[] =
    "local out = {redis.call('ZCARD', KEYS[1])}\n"
    "for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[2])) do\n"
    "  local v = redis.call('GET', 'hookd:webhook:' .. id)\n"
    "  if v then out[#out + 1] = v end\n"
    "end\n"
    "return out\n";

/* Replaces a webhook object only if it is still exactly what the caller read (compare-and-set), in both
 * places it is stored. KEYS: webhook key, version. ARGV: expected JSON, new JSON, org, event type, id. */
static const char REPLACE_SCRIPT[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[2])\n"
    "redis.call('HSET', 'hookd:subs:' .. ARGV[3] .. ':' .. ARGV[4], ARGV[5], ARGV[2])\n"
    RECORD_CHANGE("redis.call('INCR', KEYS[2])", "ARGV[3] .. ':' .. ARGV[4]")
    "return 1\n";

webhook_store *webhook_store_open(const char *redis_url, char *errbuf, size_t errlen)
{
    webhook_store *store = calloc(1, sizeof *store);
    if (store == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    store->conn = redis_conn_open(redis_url, errbuf, errlen);
    if (store->conn == NULL) {
        free(store);
        return NULL;
    }
    return store;
}

void webhook_log_buffer_clear(webhook_log_buffer *b)
{
    b->len = 0;
    b->text_len = 0;
}

void webhook_log_buffer_free(webhook_log_buffer *b)
{
    free(b->records);
    free(b->text);
    *b = (webhook_log_buffer){0};
}

/* Room for n more records and text_bytes more text in b. Returns 0, or -1 when out of memory. */
static int log_buffer_reserve(webhook_log_buffer *b, size_t n, size_t text_bytes)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        webhook_log_record *grown = realloc(b->records, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        b->records = grown;
        b->cap = cap;
    }
    if (b->text_len + text_bytes > b->text_cap) {
        size_t cap = b->text_cap ? b->text_cap : 64 * 1024;
        while (cap < b->text_len + text_bytes)
            cap *= 2;
        char *grown = realloc(b->text, cap);
        if (grown == NULL)
            return -1;
        b->text = grown;
        b->text_cap = cap;
    }
    return 0;
}

/* Appends a record for id with len bytes of JSON at json (not NUL-terminated necessarily). */
static int log_buffer_append(webhook_log_buffer *b, long long id, const char *json, size_t len)
{
    if (log_buffer_reserve(b, 1, len + 1) != 0)
        return -1;
    memcpy(b->text + b->text_len, json, len);
    b->text[b->text_len + len] = '\0';
    b->records[b->len] = (webhook_log_record){id, b->len, b->text_len};
    b->text_len += len + 1;
    b->len++;
    return 0;
}

void webhook_log_buffer_add(webhook_log_buffer *b, long long id, const char *record_json)
{
    log_buffer_append(b, id, record_json, strlen(record_json)); /* best effort: dropped when out of memory */
}

const char *webhook_log_buffer_json(const webhook_log_buffer *b, size_t i)
{
    return b->text + b->records[i].offset;
}

size_t webhook_log_buffer_move(webhook_log_buffer *dst, webhook_log_buffer *src, size_t max_len)
{
    size_t room = dst->len < max_len ? max_len - dst->len : 0;
    size_t take = src->len < room ? src->len : room;
    if (take == src->len && dst->len == 0) { /* the common case: the arrays change hands, capacity kept */
        webhook_log_buffer spare = *dst;
        *dst = *src;
        *src = spare;
        webhook_log_buffer_clear(src);
        return 0;
    }
    size_t moved = 0;
    while (moved < take) {
        const char *json = webhook_log_buffer_json(src, moved);
        if (log_buffer_append(dst, src->records[moved].webhook_id, json, strlen(json)) != 0)
            break;
        moved++;
    }
    size_t dropped = src->len - moved;
    webhook_log_buffer_clear(src);
    return dropped;
}

void webhook_store_close(webhook_store *store)
{
    if (store == NULL)
        return;
    redis_conn_close(store->conn);
    free(store);
}

redis_conn *webhook_store_conn(webhook_store *store)
{
    return store->conn;
}


/* Runs a command; returns NULL (and logs) when Redis is unreachable or replies with an error. */
static redisReply *run(webhook_store *store, int argc, const char **argv)
{
    redisReply *reply = redis_conn_commandv(store->conn, argc, argv);
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_json(LOG_ERROR, "redis error reply", "{s:s, s:s}", "command", argv[0], "error", reply->str);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

/* Parses a stored webhook; NULL when the text is not a JSON object (logged: it means corrupted data). */
static json_t *parse_webhook(const char *text, size_t len)
{
    json_error_t error;
    json_t *obj = json_loadb(text, len, 0, &error);
    if (!json_is_object(obj)) {
        log_json(LOG_ERROR, "stored webhook is not a JSON object", "{s:s}", "error", error.text);
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* The webhook objects among an array reply's elements from index first on (others are skipped). */
static json_t *parse_webhook_array(const redisReply *reply, size_t first)
{
    json_t *items = json_array();
    for (size_t i = first; i < reply->elements; i++) {
        const redisReply *element = reply->element[i];
        json_t *obj = element->type == REDIS_REPLY_STRING ? parse_webhook(element->str, element->len) : NULL;
        if (obj != NULL)
            json_array_append_new(items, obj);
    }
    return items;
}

int webhook_store_ping(webhook_store *store)
{
    const char *argv[] = {"PING"};
    redisReply *reply = run(store, 1, argv);
    if (reply == NULL)
        return -1;
    freeReplyObject(reply);
    return 0;
}

store_status webhook_store_create(webhook_store *store, long long org, const char *url, const char *event_type,
                                  json_t **out)
{
    char secret[SECRET_TEXT_MAX], now[TIME_TEXT_MAX];
    if (secret_generate_webhook_secret(secret, sizeof secret) != 0)
        return STORE_UNAVAILABLE;
    time_format_rfc3339(time_now_ms(), 0, now);

    json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s}", "url", url, "status", "active", "event_type",
                             event_type, "organization_id", (json_int_t)org, "created_at", now, "updated_at", now,
                             "secret", secret);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (text == NULL)
        return STORE_UNAVAILABLE;

    char subs_key[128], org_key[96], limit[16], message[96];
    snprintf(subs_key, sizeof subs_key, "hookd:subs:%lld:%s", org, event_type);
    snprintf(org_key, sizeof org_key, "hookd:org:%lld:webhooks", org);
    snprintf(limit, sizeof limit, "%d", WEBHOOK_LIMIT_PER_TYPE);
    snprintf(message, sizeof message, "%lld:%s", org, event_type);
    const char *argv[] = {"EVAL", CREATE_SCRIPT, "4", subs_key, org_key, "hookd:webhook:seq",
                          WEBHOOK_VERSION_KEY, limit, text + 1 /* without '{' */, message};
    redisReply *reply = run(store, 10, argv);
    free(text);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    store_status status = STORE_UNAVAILABLE;
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == -1) {
        status = STORE_LIMIT;
    } else if (reply->type == REDIS_REPLY_STRING) {
        *out = parse_webhook(reply->str, reply->len);
        status = *out != NULL ? STORE_OK : STORE_UNAVAILABLE;
    }
    freeReplyObject(reply);
    return status;
}

/* True when obj's organization_id is org. */
static int owned_by(json_t *obj, long long org)
{
    json_t *value = json_object_get(obj, "organization_id");
    return json_is_integer(value) && json_integer_value(value) == org;
}

store_status webhook_store_get(webhook_store *store, long long org, long long id, json_t **out)
{
    char key[64];
    snprintf(key, sizeof key, "hookd:webhook:%lld", id);
    const char *argv[] = {"GET", key};
    redisReply *reply = run(store, 2, argv);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    store_status status = STORE_NOT_FOUND;
    if (reply->type == REDIS_REPLY_STRING) {
        json_t *obj = parse_webhook(reply->str, reply->len);
        if (obj != NULL && owned_by(obj, org)) {
            *out = obj;
            status = STORE_OK;
        } else {
            json_decref(obj);
        }
    }
    freeReplyObject(reply);
    return status;
}

store_status webhook_store_delete(webhook_store *store, long long org, long long id, json_t **out)
{
    char key[64], org_key[96], org_text[32], id_text[32];
    snprintf(key, sizeof key, "hookd:webhook:%lld", id);
    snprintf(org_key, sizeof org_key, "hookd:org:%lld:webhooks", org);
    snprintf(org_text, sizeof org_text, "%lld", org);
    snprintf(id_text, sizeof id_text, "%lld", id);
    const char *argv[] = {"EVAL", DELETE_SCRIPT, "3", key, org_key, WEBHOOK_VERSION_KEY, org_text, id_text};
    redisReply *reply = run(store, 8, argv);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    store_status status = STORE_NOT_FOUND;
    if (reply->type == REDIS_REPLY_STRING) {
        status = STORE_OK;
        if (out != NULL)
            *out = parse_webhook(reply->str, reply->len);
    }
    freeReplyObject(reply);
    return status;
}

store_status webhook_store_list(webhook_store *store, long long org, long page, long per_page, json_t **items,
                                long long *total)
{
    char org_key[96], start[32], stop[32];
    snprintf(org_key, sizeof org_key, "hookd:org:%lld:webhooks", org);
    snprintf(start, sizeof start, "%ld", (page - 1) * per_page);
    snprintf(stop, sizeof stop, "%ld", page * per_page - 1);
    const char *argv[] = {"EVAL", LIST_SCRIPT, "1", org_key, start, stop};
    redisReply *reply = run(store, 6, argv);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(reply);
        return STORE_UNAVAILABLE;
    }
    *total = reply->element[0]->integer;
    *items = parse_webhook_array(reply, 1);
    freeReplyObject(reply);
    return STORE_OK;
}

store_status webhook_store_subscribers_many(webhook_store *store, const subscription_key *keys, size_t n,
                                            json_t **items)
{
    if (n == 0)
        return STORE_OK;
    redis_conn_drop_if_closed(store->conn); /* a closed connection would fail the pipeline after sending it */
    if (redis_conn_ensure(store->conn) != 0)
        return STORE_UNAVAILABLE;
    redisContext *ctx = redis_conn_context(store->conn);
    for (size_t i = 0; i < n; i++) {
        char key[128];
        snprintf(key, sizeof key, "hookd:subs:%lld:%s", keys[i].org, event_type_name(keys[i].type));
        const char *argv[] = {"HVALS", key};
        redisAppendCommandArgv(ctx, 2, argv, NULL);
    }
    size_t got = 0;
    for (; got < n; got++) {
        redisReply *reply = NULL;
        if (redisGetReply(ctx, (void **)&reply) != REDIS_OK) {
            redis_conn_reset(store->conn); /* the replies still owed would be read as the next commands' */
            break;
        }
        items[got] = reply->type == REDIS_REPLY_ARRAY ? parse_webhook_array(reply, 0) : NULL;
        freeReplyObject(reply);
        if (items[got] == NULL) { /* an error reply: read the rest, give up the lot */
            for (size_t rest = got + 1; rest < n; rest++) {
                if (redisGetReply(ctx, (void **)&reply) != REDIS_OK) {
                    redis_conn_reset(store->conn);
                    break;
                }
                freeReplyObject(reply);
            }
            break;
        }
    }
    if (got == n)
        return STORE_OK;
    for (size_t i = 0; i < got; i++)
        json_decref(items[i]);
    return STORE_UNAVAILABLE;
}

/* Reads a counter key (0 when it was never set). */
static store_status read_counter(webhook_store *store, const char *key, long long *value)
{
    const char *argv[] = {"GET", key};
    redisReply *reply = run(store, 2, argv);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    *value = reply->type == REDIS_REPLY_STRING ? atoll(reply->str) : 0;
    freeReplyObject(reply);
    return STORE_OK;
}

store_status webhook_store_version(webhook_store *store, long long *version)
{
    return read_counter(store, WEBHOOK_VERSION_KEY, version);
}

/* KEYS: version, change log. ARGV: the version read before (-1: none), the most changes worth listing. Returns
 * {version} when there is nothing to list (no earlier read, no change, a version that went back, or more changes
 * than that), else {version, "<version>:<org>:<event_type>"...} for the changes after the earlier version. */
static const char CHANGES_SCRIPT[] =
    "local v = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local since = tonumber(ARGV[1])\n"
    "if since < 0 or v <= since or v - since > tonumber(ARGV[2]) then return {v} end\n"
    "local out = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], v)\n"
    "table.insert(out, 1, v)\n"
    "return out\n";

void subscription_changes_add(subscription_changes *changes, subscription_key key)
{
    if (changes->count == changes->cap) {
        size_t cap = changes->cap != 0 ? changes->cap * 2 : 16;
        subscription_key *keys = realloc(changes->keys, cap * sizeof *keys);
        if (keys == NULL) {
            changes->complete = 0;
            return;
        }
        changes->keys = keys;
        changes->cap = cap;
    }
    changes->keys[changes->count++] = key;
}

void subscription_changes_free(subscription_changes *changes)
{
    free(changes->keys);
    changes->keys = NULL;
    changes->count = changes->cap = 0;
}

/* Parses a change log entry "<version>:<org>:<event_type>". Returns 0, or -1 when it is not one. */
static int parse_change(const char *text, subscription_key *key)
{
    char *end;
    errno = 0;
    (void)strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != ':')
        return -1;
    const char *org_text = end + 1;
    long long org = strtoll(org_text, &end, 10);
    if (errno != 0 || end == org_text || *end != ':')
        return -1;
    int type = event_type_index(end + 1);
    if (type < 0)
        return -1;
    key->org = org;
    key->type = type;
    return 0;
}

store_status webhook_store_changes_since(webhook_store *store, long long since, size_t max_changes,
                                         subscription_changes *out)
{
    char since_text[32], max_text[32];
    snprintf(since_text, sizeof since_text, "%lld", since < 0 ? -1 : since);
    snprintf(max_text, sizeof max_text, "%zu", max_changes);
    const char *argv[] = {"EVAL", CHANGES_SCRIPT, "2", WEBHOOK_VERSION_KEY, WEBHOOK_CHANGE_LOG_KEY, since_text,
                          max_text};
    redisReply *reply = run(store, 7, argv);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 || reply->element[0]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(reply);
        return STORE_UNAVAILABLE;
    }
    out->count = 0;
    out->since = since < 0 ? -1 : since;
    out->version = reply->element[0]->integer;
    out->complete = since >= 0 && out->version == since; /* no change */
    if (since >= 0 && out->version > since && reply->elements > 1) {
        /* every version in between has its entry unless the log was trimmed past since or a writer without it
         * bumped the version: then fewer entries than versions */
        out->complete = reply->elements - 1 == (size_t)(out->version - since);
        for (size_t i = 1; out->complete && i < reply->elements; i++) {
            subscription_key key;
            const redisReply *e = reply->element[i];
            if (e->type != REDIS_REPLY_STRING || parse_change(e->str, &key) != 0) {
                log_json(LOG_WARN, "unreadable subscription change log entry; every cached subscriber dropped",
                         NULL);
                out->complete = 0;
                break;
            }
            subscription_changes_add(out, key);
        }
        if (!out->complete)
            out->count = 0;
    }
    freeReplyObject(reply);
    return STORE_OK;
}

/* Writes "hookd:token:<sha256 hex>" for token into key (at least 80 bytes). */
static void token_key(const char *token, char *key, size_t keylen)
{
    char digest[SHA256_HEX_LEN + 1];
    secret_sha256_hex(token, strlen(token), digest);
    snprintf(key, keylen, "hookd:token:%s", digest);
}

store_status token_store_create(webhook_store *store, long long org, char *token_out, size_t outlen)
{
    char key[96], org_text[32], now[TIME_TEXT_MAX];
    if (secret_generate_token(token_out, outlen) != 0)
        return STORE_UNAVAILABLE;
    token_key(token_out, key, sizeof key);
    snprintf(org_text, sizeof org_text, "%lld", org);
    time_format_rfc3339(time_now_ms(), 0, now);
    const char *argv[] = {"HSET", key, "kind", org > 0 ? "org" : "service", "org", org_text, "created_at", now};
    redisReply *reply = run(store, 8, argv);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    freeReplyObject(reply);
    return STORE_OK;
}

store_status token_store_lookup(webhook_store *store, const char *token, long long *org, int *is_service)
{
    char key[96];
    token_key(token, key, sizeof key);
    /* The key is the token's SHA-256, so the lookup itself compares digests, never the secret. */
    const char *argv[] = {"HMGET", key, "kind", "org"};
    redisReply *reply = run(store, 4, argv);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    store_status status = STORE_NOT_FOUND;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        *is_service = strcmp(reply->element[0]->str, "service") == 0;
        *org = *is_service ? 0 : atoll(reply->element[1]->str);
        status = (*is_service || *org > 0) ? STORE_OK : STORE_NOT_FOUND;
    }
    freeReplyObject(reply);
    return status;
}

/* Deletes a token and bumps the token version (token caches drop their entries). KEYS: token key, version. */
static const char REVOKE_SCRIPT[] =
    "local n = redis.call('DEL', KEYS[1])\n"
    "redis.call('INCR', KEYS[2])\n"
    "return n\n";

store_status token_store_revoke(webhook_store *store, const char *token)
{
    char key[96];
    token_key(token, key, sizeof key);
    const char *argv[] = {"EVAL", REVOKE_SCRIPT, "2", key, TOKENS_VERSION_KEY};
    redisReply *reply = run(store, 5, argv);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    store_status status = (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) ? STORE_OK : STORE_NOT_FOUND;
    freeReplyObject(reply);
    return status;
}

store_status token_store_version(webhook_store *store, long long *version)
{
    return read_counter(store, TOKENS_VERSION_KEY, version);
}

/* Claims an idempotency key. KEYS: the key. ARGV: pending TTL (s). Returns "new", "pending" or "done". */
static const char CLAIM_SCRIPT[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v then return v end\n"
    "redis.call('SET', KEYS[1], 'pending', 'EX', ARGV[1])\n"
    "return 'new'\n";

store_status event_id_claim(webhook_store *store, long long org, const char *event_id, long long pending_ttl_s)
{
    char key[256], ttl[24];
    snprintf(key, sizeof key, "hookd:event:idem:%lld:%s", org, event_id);
    snprintf(ttl, sizeof ttl, "%lld", pending_ttl_s > 0 ? pending_ttl_s : 1);
    const char *argv[] = {"EVAL", CLAIM_SCRIPT, "1", key, ttl};
    redisReply *reply = run(store, 5, argv);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    store_status status = STORE_UNAVAILABLE;
    if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)
        status = strcmp(reply->str, "new") == 0       ? STORE_OK
                 : strcmp(reply->str, "pending") == 0 ? STORE_PENDING
                                                      : STORE_EXISTS;
    freeReplyObject(reply);
    return status;
}

store_status event_id_confirm(webhook_store *store, long long org, const char *event_id)
{
    char key[256];
    snprintf(key, sizeof key, "hookd:event:idem:%lld:%s", org, event_id);
    const char *argv[] = {"SET", key, "done", "EX", "86400"};
    redisReply *reply = run(store, 5, argv);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    freeReplyObject(reply);
    return STORE_OK;
}

store_status event_id_release(webhook_store *store, long long org, const char *event_id)
{
    char key[256];
    snprintf(key, sizeof key, "hookd:event:idem:%lld:%s", org, event_id);
    const char *argv[] = {"DEL", key};
    redisReply *reply = run(store, 2, argv);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    freeReplyObject(reply);
    return STORE_OK;
}

void webhook_public_view(json_t *obj)
{
    json_object_del(obj, "previous_secret");
    json_object_del(obj, "previous_secret_expires_at");
}

store_status webhook_store_rotate_secret(webhook_store *store, long long org, long long id, long long grace_ms,
                                         json_t **out)
{
    char key[64];
    snprintf(key, sizeof key, "hookd:webhook:%lld", id);
    for (int attempt = 0; attempt < 3; attempt++) {
        const char *get[] = {"GET", key};
        redisReply *reply = run(store, 2, get);
        if (reply == NULL)
            return STORE_UNAVAILABLE;
        if (reply->type != REDIS_REPLY_STRING) {
            freeReplyObject(reply);
            return STORE_NOT_FOUND;
        }
        json_t *obj = parse_webhook(reply->str, reply->len);
        if (obj == NULL || !owned_by(obj, org) || !json_is_string(json_object_get(obj, "event_type"))) {
            json_decref(obj);
            freeReplyObject(reply);
            return STORE_NOT_FOUND;
        }
        char secret[SECRET_TEXT_MAX], now[TIME_TEXT_MAX], expires[TIME_TEXT_MAX];
        if (secret_generate_webhook_secret(secret, sizeof secret) != 0) {
            json_decref(obj);
            freeReplyObject(reply);
            return STORE_UNAVAILABLE;
        }
        int64_t now_ms = time_now_ms();
        time_format_rfc3339(now_ms, 0, now);
        time_format_rfc3339(now_ms + grace_ms, 0, expires);
        json_object_set(obj, "previous_secret", json_object_get(obj, "secret"));
        json_object_set_new(obj, "previous_secret_expires_at", json_string(expires));
        json_object_set_new(obj, "secret", json_string(secret));
        json_object_set_new(obj, "updated_at", json_string(now));
        char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
        char org_text[32], id_text[32];
        snprintf(org_text, sizeof org_text, "%lld", org);
        snprintf(id_text, sizeof id_text, "%lld", id);
        const char *argv[] = {"EVAL", REPLACE_SCRIPT, "2", key, WEBHOOK_VERSION_KEY, reply->str, text != NULL ? text : "",
                              org_text, json_string_value(json_object_get(obj, "event_type")), id_text};
        redisReply *replaced = text != NULL ? run(store, 10, argv) : NULL;
        free(text);
        freeReplyObject(reply);
        if (replaced == NULL) {
            json_decref(obj);
            return STORE_UNAVAILABLE;
        }
        int done = replaced->type == REDIS_REPLY_INTEGER && replaced->integer == 1;
        freeReplyObject(replaced);
        if (done) {
            *out = obj;
            return STORE_OK;
        }
        json_decref(obj); /* changed underneath (another rotation or a delete): read again */
    }
    return STORE_UNAVAILABLE;
}

store_status webhook_store_deliveries(webhook_store *store, long long org, long long id, json_t **items)
{
    json_t *webhook = NULL;
    store_status status = webhook_store_get(store, org, id, &webhook);
    json_decref(webhook);
    if (status != STORE_OK)
        return status;
    char key[64], last[16];
    snprintf(key, sizeof key, "hookd:deliveries:%lld", id);
    snprintf(last, sizeof last, "%d", WEBHOOK_DELIVERY_LOG_MAX - 1);
    const char *argv[] = {"LRANGE", key, "0", last};
    redisReply *reply = run(store, 4, argv);
    if (reply == NULL)
        return STORE_UNAVAILABLE;
    *items = json_array();
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        redisReply *element = reply->element[i];
        json_t *record = element->type == REDIS_REPLY_STRING ? json_loadb(element->str, element->len, 0, NULL) : NULL;
        if (json_is_object(record))
            json_array_append_new(*items, record);
        else
            json_decref(record);
    }
    freeReplyObject(reply);
    return STORE_OK;
}

/* Orders held records by webhook, then arrival. */
static int record_compare(const void *a, const void *b)
{
    const webhook_log_record *x = a, *y = b;
    if (x->webhook_id != y->webhook_id)
        return x->webhook_id < y->webhook_id ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int webhook_store_flush_log(webhook_store *store, webhook_log_buffer *log)
{
    if (log->len == 0)
        return 0;
    redis_conn_drop_if_closed(store->conn); /* a closed connection would fail the pipeline after sending it */
    if (redis_conn_ensure(store->conn) != 0)
        return WEBHOOK_LOG_UNSENT;
    redisContext *ctx = redis_conn_context(store->conn);
    qsort(log->records, log->len, sizeof *log->records, record_compare);
    char last[16], ttl[24];
    snprintf(last, sizeof last, "%d", WEBHOOK_DELIVERY_LOG_MAX - 1);
    snprintf(ttl, sizeof ttl, "%d", WEBHOOK_DELIVERY_LOG_TTL_S);
    const char *argv[2 + WEBHOOK_DELIVERY_LOG_MAX];
    int commands = 0;
    for (size_t begin = 0; begin < log->len;) {
        size_t end = begin;
        while (end < log->len && log->records[end].webhook_id == log->records[begin].webhook_id)
            end++;
        /* only the newest WEBHOOK_DELIVERY_LOG_MAX survive the trim: push just those, oldest first, so the
         * newest ends up at the head of the list */
        size_t first = end - begin > WEBHOOK_DELIVERY_LOG_MAX ? end - WEBHOOK_DELIVERY_LOG_MAX : begin;
        char key[64];
        snprintf(key, sizeof key, "hookd:deliveries:%lld", log->records[begin].webhook_id);
        int argc = 0;
        argv[argc++] = "LPUSH";
        argv[argc++] = key;
        for (size_t i = first; i < end; i++)
            argv[argc++] = webhook_log_buffer_json(log, i);
        const char *trim[] = {"LTRIM", key, "0", last};
        const char *expire[] = {"EXPIRE", key, ttl};
        redisAppendCommandArgv(ctx, argc, argv, NULL);
        redisAppendCommandArgv(ctx, 4, trim, NULL);
        redisAppendCommandArgv(ctx, 3, expire, NULL);
        commands += 3;
        begin = end;
    }
    int refused = 0; /* READONLY replies: the server is a replica now (a failover) */
    for (int i = 0; i < commands; i++) {
        void *reply = NULL;
        if (redisGetReply(ctx, &reply) != REDIS_OK) {
            webhook_log_buffer_clear(log);
            redis_conn_reset(store->conn);
            return WEBHOOK_LOG_LOST;
        }
        refused += redis_reply_is_readonly(reply);
        freeReplyObject(reply);
    }
    if (refused > 0)
        redis_conn_note_readonly(store->conn); /* the next round reconnects, to the new master */
    if (refused == commands)
        return WEBHOOK_LOG_UNSENT; /* none of it was written: the records stay for the next round */
    webhook_log_buffer_clear(log);
    return refused > 0 ? WEBHOOK_LOG_LOST : commands;
}
