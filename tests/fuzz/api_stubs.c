/* api_stubs — see api_stubs.h. */
#include "api_stubs.h"

#include "envelope.h"
#include "event_producer.h"
#include "event_types.h"
#include "events_api.h"
#include "fuzz_util.h"
#include "handlers.h"
#include "token_cache.h"
#include "url_guard.h"

#include <strings.h>

const char *stub_header_auth, *stub_header_authorization;
const char *stub_query_auth, *stub_query_page, *stub_query_per_page;
int stub_store_status;
int stub_allow_private;

static int store_token; /* the pool hands out &store_token as the "connection" */

const char *api_header(api_request *req, const char *name)
{
    (void)req;
    if (strcasecmp(name, "auth") == 0)
        return stub_header_auth;
    if (strcasecmp(name, "Authorization") == 0)
        return stub_header_authorization;
    return NULL;
}

const char *api_query(api_request *req, const char *name)
{
    (void)req;
    if (strcmp(name, "auth") == 0)
        return stub_query_auth;
    if (strcmp(name, "page") == 0)
        return stub_query_page;
    if (strcmp(name, "per_page") == 0)
        return stub_query_per_page;
    return NULL;
}

webhook_store *store_pool_acquire(store_pool *pool)
{
    (void)pool;
    return (webhook_store *)&store_token;
}

void store_pool_release(store_pool *pool, webhook_store *store)
{
    (void)pool;
    FUZZ_CHECK(store == (webhook_store *)&store_token, "released a store that was not acquired");
}

/* The harnesses run without a token cache: every token goes to the stub store below. */
int token_cache_get(token_cache *cache, const char digest[SHA256_HEX_LEN + 1], token_grant *grant,
                    uint64_t *generation)
{
    (void)cache;
    (void)grant;
    FUZZ_CHECK(strlen(digest) == SHA256_HEX_LEN, "token digest is not 64 hex digits");
    *generation = 0;
    return 0;
}

void token_cache_put(token_cache *cache, const char digest[SHA256_HEX_LEN + 1], const token_grant *grant,
                     uint64_t generation)
{
    (void)cache;
    (void)digest;
    (void)generation;
    FUZZ_CHECK(grant->is_service || grant->org > 0, "cached a token that grants nothing");
}

store_status token_store_lookup(webhook_store *store, const char *token, long long *org, int *is_service)
{
    (void)store;
    FUZZ_CHECK(token != NULL && token[0] != '\0' && strlen(token) <= 256, "token reached the store");
    if (stub_store_status == STORE_UNAVAILABLE)
        return STORE_UNAVAILABLE;
    if (strcmp(token, "hkd_service") == 0) {
        *org = 0;
        *is_service = 1;
        return STORE_OK;
    }
    if (strncmp(token, "hkd_", 4) == 0) {
        *org = 7;
        *is_service = 0;
        return STORE_OK;
    }
    return STORE_NOT_FOUND;
}

static json_t *fake_webhook(long long org, long long id, const char *url, const char *type)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "id", (json_int_t)id, "url", url,
                     "status", "active", "event_type", type, "organization_id", (json_int_t)org, "created_at",
                     "2026-11-29T01:02:03Z", "updated_at", "2026-11-29T01:02:03Z", "secret", "whsec_AAAA",
                     "previous_secret", "whsec_BBBB", "previous_secret_expires_at", "2026-11-30T01:02:03Z");
}

static store_status stub_status(void)
{
    return (store_status)stub_store_status;
}

store_status webhook_store_create(webhook_store *store, long long org, const char *url, const char *event_type,
                                  json_t **out)
{
    (void)store;
    char why[160];
    FUZZ_CHECK(org > 0, "create for org %lld", org);
    FUZZ_CHECK(url != NULL && url_guard_check_url(url, stub_allow_private, why, sizeof why) == 0,
               "unvalidated URL reached the store: %s", url != NULL ? url : "(null)");
    FUZZ_CHECK(event_type_index(event_type) >= 0, "unknown event type reached the store");
    if (stub_status() != STORE_OK)
        return stub_status();
    *out = fake_webhook(org, 1, url, event_type);
    return STORE_OK;
}

store_status webhook_store_get(webhook_store *store, long long org, long long id, json_t **out)
{
    (void)store;
    FUZZ_CHECK(org > 0 && id > 0, "get org %lld id %lld", org, id);
    if (stub_status() != STORE_OK)
        return stub_status() == STORE_LIMIT ? STORE_NOT_FOUND : stub_status();
    *out = fake_webhook(org, id, "https://example.com/", "project.created");
    return STORE_OK;
}

store_status webhook_store_delete(webhook_store *store, long long org, long long id, json_t **out)
{
    (void)store;
    FUZZ_CHECK(org > 0 && id > 0, "delete org %lld id %lld", org, id);
    if (stub_status() != STORE_OK)
        return stub_status() == STORE_LIMIT ? STORE_NOT_FOUND : stub_status();
    if (out != NULL)
        *out = fake_webhook(org, id, "https://example.com/", "project.created");
    return STORE_OK;
}

store_status webhook_store_list(webhook_store *store, long long org, long page, long per_page, json_t **items,
                                long long *total)
{
    (void)store;
    FUZZ_CHECK(org > 0 && page >= 1 && page <= 1000000 && per_page >= 1 && per_page <= 100,
               "list org %lld page %ld per_page %ld", org, page, per_page);
    if (stub_status() == STORE_UNAVAILABLE)
        return STORE_UNAVAILABLE;
    *items = json_array();
    json_array_append_new(*items, fake_webhook(org, 2, "https://example.com/", "user.created"));
    *total = 1234;
    return STORE_OK;
}

store_status webhook_store_rotate_secret(webhook_store *store, long long org, long long id, long long grace_ms,
                                         json_t **out)
{
    (void)store;
    FUZZ_CHECK(org > 0 && id > 0 && grace_ms > 0, "rotate org %lld id %lld", org, id);
    if (stub_status() != STORE_OK)
        return stub_status() == STORE_LIMIT ? STORE_NOT_FOUND : stub_status();
    *out = fake_webhook(org, id, "https://example.com/", "project.created");
    return STORE_OK;
}

store_status webhook_store_deliveries(webhook_store *store, long long org, long long id, json_t **items)
{
    (void)store;
    FUZZ_CHECK(org > 0 && id > 0, "deliveries org %lld id %lld", org, id);
    if (stub_status() != STORE_OK)
        return stub_status() == STORE_LIMIT ? STORE_NOT_FOUND : stub_status();
    *items = json_array();
    return STORE_OK;
}

/* Same as common/webhook_store.c (which needs hiredis and a live Redis to link usefully). */
void webhook_public_view(json_t *obj)
{
    json_object_del(obj, "previous_secret");
    json_object_del(obj, "previous_secret_expires_at");
}

/* POST /api/v1/events is the real events_api.c: these stand in for the claim store and the Kafka producer. */
int stub_kafka_fails;
int stub_suspended, stub_resumed;

store_status event_id_claim(webhook_store *store, long long org, const char *event_id, long long pending_ttl_s)
{
    (void)store;
    FUZZ_CHECK(org > 0 && envelope_id_valid(event_id) && pending_ttl_s > 0, "claim org %lld", org);
    return stub_status() == STORE_LIMIT ? STORE_PENDING : stub_status() == STORE_NOT_FOUND ? STORE_OK : stub_status();
}

store_status event_id_confirm(webhook_store *store, long long org, const char *event_id)
{
    (void)store;
    FUZZ_CHECK(org > 0 && envelope_id_valid(event_id), "confirm org %lld", org);
    return STORE_OK;
}

store_status event_id_release(webhook_store *store, long long org, const char *event_id)
{
    (void)store;
    FUZZ_CHECK(org > 0 && envelope_id_valid(event_id), "release org %lld", org);
    return STORE_OK;
}

/* The size check against librdkafka's default message.max.bytes, on the data alone (event_producer.c links
 * librdkafka and is not built here): a fuzzed body of 1 MiB can reach it. */
size_t event_producer_max_message_bytes(const event_producer *producer)
{
    (void)producer;
    return 1000000;
}

int event_producer_fits(const event_producer *producer, const envelope *env, size_t *size)
{
    *size = env->data_len;
    return *size <= event_producer_max_message_bytes(producer);
}

/* What producer-api writes, the dispatcher must read back with the same fields and data bytes; the delivery
 * report comes at once (refused when stub_kafka_fails). */
int event_producer_send(event_producer *producer, const envelope *env, void *opaque)
{
    (void)producer;
    FUZZ_CHECK(stub_suspended && !stub_resumed, "write outside a suspended request");
    size_t len = 0;
    char *text = envelope_encode(env, &len);
    FUZZ_CHECK(text != NULL, "encode failed");
    envelope back;
    char err[128];
    FUZZ_CHECK(envelope_decode(text, len, &back, err, sizeof err) == 0, "accepted event does not decode: %s: %s",
               text, err);
    FUZZ_CHECK(strcmp(back.id, env->id) == 0 && back.type == env->type &&
                   back.organization_id == env->organization_id && back.data_len == env->data_len &&
                   memcmp(back.data, env->data, env->data_len) == 0,
               "round trip differs: %s", text);
    envelope_clear(&back);
    free(text);
    events_delivered(opaque, !stub_kafka_fails);
    return 0;
}

void api_request_suspend(api_request *req)
{
    (void)req;
    FUZZ_CHECK(!stub_suspended, "suspended twice");
    stub_suspended = 1;
}

void api_request_resume(api_request *req)
{
    (void)req;
    FUZZ_CHECK(stub_suspended && !stub_resumed, "resumed twice or before suspending");
    stub_resumed = 1;
}

/* POST /api/v1/webhooks/{id}/test (producer-api/webhook_test_api.c) makes a real HTTP delivery on a thread and
 * suspends the request: not linked here. Weak, so linking the real file later overrides it. */
__attribute__((weak)) int webhooks_test(api_request *req, const auth_identity *who, long long id, api_reply *reply)
{
    (void)req;
    FUZZ_CHECK(id > 0, "test id %lld", id);
    if (who->org <= 0) { /* like every per-webhook operation: a service token has no webhooks */
        json_t *errors = json_array();
        api_error_add(errors, "auth", "the webhooks API needs an organization token");
        api_reply_bad_data(reply, errors);
        return API_DONE;
    }
    api_reply_message(reply, 200, "stub test delivery");
    return API_DONE;
}

int health_live(api_request *req, api_reply *reply)
{
    (void)req;
    api_reply_message(reply, 200, "ok");
    return API_DONE;
}

int health_ready(api_request *req, api_reply *reply)
{
    (void)req;
    api_reply_message(reply, 200, "ok");
    return API_DONE;
}

int metrics_page(api_request *req, api_reply *reply)
{
    (void)req;
    reply->status = 200;
    reply->text = "# stub\n";
    return API_DONE;
}

void stub_check_reply(const api_reply *reply)
{
    static const int known[] = {200, 202, 401, 403, 404, 405, 409, 503};
    int ok = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        ok |= reply->status == known[i];
    FUZZ_CHECK(ok, "status %d", reply->status);
    FUZZ_CHECK(reply->body != NULL || reply->text != NULL || reply->json_owned != NULL, "status %d without a body",
               reply->status);
    FUZZ_CHECK(reply->body == NULL || reply->json_owned == NULL, "two bodies");
    if (reply->json_owned != NULL) { /* formatted by hand (the 202 of events): must be one compact JSON object */
        json_error_t error;
        json_t *parsed = json_loads(reply->json_owned, JSON_REJECT_DUPLICATES, &error);
        FUZZ_CHECK(json_is_object(parsed), "hand-formatted body is not a JSON object: %s (%s)", reply->json_owned,
                   error.text);
        char *compact = json_dumps(parsed, JSON_COMPACT | JSON_PRESERVE_ORDER);
        FUZZ_CHECK(compact != NULL && strcmp(compact, reply->json_owned) == 0, "hand-formatted body not compact");
        free(compact);
        json_decref(parsed);
    }
    if (reply->body != NULL) {
        FUZZ_CHECK(json_is_object(reply->body), "body is not an object");
        char *text = json_dumps(reply->body, JSON_COMPACT);
        FUZZ_CHECK(text != NULL, "body does not serialise");
        free(text);
        FUZZ_CHECK(json_object_get(reply->body, "previous_secret") == NULL, "previous_secret leaked");
    }
    if (reply->status >= 400)
        FUZZ_CHECK(json_is_string(json_object_get(reply->body, "message")), "error without message");
    if (reply->status == 403)
        FUZZ_CHECK(json_array_size(json_object_get(reply->body, "errors")) > 0, "403 without errors");
    if (reply->status == 405)
        FUZZ_CHECK(reply->allow != NULL, "405 without Allow");
    if (reply->status == 503 || reply->status == 409)
        FUZZ_CHECK(reply->retry_after[0] != '\0', "%d without Retry-After", reply->status);
    FUZZ_CHECK(memchr(reply->retry_after, '\0', sizeof reply->retry_after) != NULL, "retry_after");
}
