/*
 * webhook_test_api — POST /api/v1/webhooks/{id}/test: one signed synthetic event, delivered at once to that
 * webhook, answered with the attempt's outcome:
 *
 *   200 {"delivered": true|false, "status": 204|null, "latency_ms": 12.3, "error": null|"...", "event_id": "test_..."}
 *
 * The body is {"data": {"id": 0, "test": true}, "type": "<the webhook's event type>"}, signed exactly like a
 * real delivery (both signatures during a secret rotation), with the same SSRF guard, TLS rules and
 * DELIVERY_TIMEOUT. The attempt runs on a short-lived thread while the request is suspended, so a slow
 * receiver holds no HTTP worker. At most TEST_LIMIT_PER_ORG run at once for an organization and TEST_LIMIT_TOTAL
 * in the process (test_limit.h); past that the answer is 429 with Retry-After: 1.
 */
#include "delivery_http.h"
#include "handlers.h"
#include "json_text.h"
#include "log.h"
#include "test_limit.h"
#include "timeutil.h"
#include "uuid.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* One test attempt in flight. Owned by the request (async_state) once the request is suspended. */
typedef struct webhook_test {
    api_request *req;                /* suspended request */
    long long org;                   /* the organization asking */
    test_limit *slot_of;             /* the limiter it holds a slot of (given back when freed), NULL for none */
    json_t *webhook;                 /* the stored webhook (secret included) */
    char event_id[8 + UUID_TEXT_LEN + 1];
    char *body;                      /* synthetic delivery body */
    size_t body_len;
    delivery_http_result result;     /* filled by the thread */
} webhook_test;

static void webhook_test_free(void *state)
{
    webhook_test *test = state;
    if (test == NULL)
        return;
    /* on the request's loop once it was resumed, so never after shutdown freed the limiter (a request still
     * suspended then is abandoned with its server, http_server_stop) */
    if (test->slot_of != NULL)
        test_limit_give(test->slot_of, test->org);
    json_decref(test->webhook);
    free(test->body);
    free(test);
}

/* The webhook's previous secret while it still signs (rotation grace), else NULL. */
static const char *valid_previous_secret(json_t *webhook)
{
    const char *previous = json_string_value(json_object_get(webhook, "previous_secret"));
    const char *expires = json_string_value(json_object_get(webhook, "previous_secret_expires_at"));
    int64_t expires_ms = 0;
    if (previous == NULL || expires == NULL || time_parse_rfc3339(expires, &expires_ms) != 0)
        return NULL;
    return expires_ms > time_now_ms() ? previous : NULL;
}

static void *attempt_thread(void *arg)
{
    webhook_test *test = arg;
    const api_context *api = test->req->api;
    delivery_http_config config = {
        .timeout_ms = api->delivery_timeout_ms,
        .allow_private = api->allow_private,
        .ca_bundle = api->ca.path[0] != '\0' ? api->ca.path : NULL,
        .user_agent = NULL,
    };
    delivery_http_perform_once(&config, json_string_value(json_object_get(test->webhook, "url")),
                               json_string_value(json_object_get(test->webhook, "secret")),
                               valid_previous_secret(test->webhook), test->event_id, test->body, test->body_len,
                               &test->result);
    api_request_resume(test->req);
    return NULL;
}

static int webhook_test_finish(api_request *req, api_reply *reply)
{
    webhook_test *test = req->async_state;
    const delivery_http_result *r = &test->result;
    log_json(LOG_INFO, "test delivery", "{s:s, s:I, s:b, s:i, s:f, s:s}", "event_id", test->event_id,
             "webhook_id", json_integer_value(json_object_get(test->webhook, "id")), "delivered", r->ok,
             "status", (int)r->status, "latency_ms", r->latency_ms, "error", r->error);
    api_reply_json(reply, 200,
                   json_pack("{s:b, s:o, s:f, s:o, s:s}", "delivered", r->ok, "status",
                             r->status > 0 ? json_integer(r->status) : json_null(), "latency_ms", r->latency_ms,
                             "error", r->ok ? json_null() : json_string(r->error), "event_id", test->event_id));
    return API_DONE;
}

int webhooks_test(api_request *req, const auth_identity *who, long long id, api_reply *reply)
{
    if (who->org <= 0) {
        json_t *errors = json_array();
        api_error_add(errors, "auth", "the webhooks API needs an organization token");
        api_reply_bad_data(reply, errors);
        return API_DONE;
    }
    webhook_test *test = calloc(1, sizeof *test);
    if (test == NULL) {
        api_reply_message(reply, 500, "out of memory");
        return API_DONE;
    }
    test->org = who->org;
    /* the limit first: a refused test costs no Redis read (webhook_test_free gives the slot back on every path) */
    if (test_limit_take(req->api->test_limit, who->org) != 0) {
        webhook_test_free(test);
        api_reply_message(reply, 429, "too many test deliveries in progress, retry later");
        snprintf(reply->retry_after, sizeof reply->retry_after, "1");
        return API_DONE;
    }
    test->slot_of = req->api->test_limit;
    webhook_store *store = store_pool_acquire(req->api->stores);
    store_status status = webhook_store_get(store, who->org, id, &test->webhook);
    store_pool_release(req->api->stores, store);
    if (status != STORE_OK) {
        webhook_test_free(test);
        if (status == STORE_NOT_FOUND) {
            api_reply_message(reply, 404, "not found");
        } else {
            api_reply_message(reply, 503, "storage unavailable, retry later");
            snprintf(reply->retry_after, sizeof reply->retry_after, "1");
        }
        return API_DONE;
    }
    char uuid[UUID_TEXT_LEN + 1];
    uuid_v7_generate(uuid);
    snprintf(test->event_id, sizeof test->event_id, "test_%s", uuid);
    test->body = json_text_take(json_pack("{s:{s:i, s:b}, s:O}", "data", "id", 0, "test", 1, "type",
                                          json_object_get(test->webhook, "event_type")),
                                &test->body_len);
    test->req = req;
    if (test->body == NULL) {
        webhook_test_free(test);
        api_reply_message(reply, 500, "out of memory");
        return API_DONE;
    }

    req->async_state = test;
    req->async_free = webhook_test_free;
    req->resume_handler = webhook_test_finish;
    api_request_suspend(req);
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, attempt_thread, test);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        snprintf(test->result.error, sizeof test->result.error, "delivery could not be started: no thread");
        api_request_resume(req);
    }
    return API_SUSPENDED;
}
