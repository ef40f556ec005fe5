/*
 * webhooks_api — the Resource Management compatible webhooks endpoints:
 *   POST /api/v1/webhooks {"url", "event_type"} → 200 webhook | 403 bad data
 *   GET  /api/v1/webhooks?page=&per_page=       → 200 {"data": [...], "paging": {...}}, newest first
 *   GET  /api/v1/webhooks/{id}                  → 200 webhook | 404
 *   DELETE /api/v1/webhooks/{id}                → 200 the deleted webhook | 404
 * Webhooks belong to the token's organization; another organization's webhook is "not found".
 */
#include "event_types.h"
#include "handlers.h"
#include "url_guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PER_PAGE_DEFAULT 20
#define PER_PAGE_MAX 100

/* The webhooks API manages one organization's webhooks: a service token has none. Returns -1 (reply filled). */
static int require_organization(const auth_identity *who, api_reply *reply)
{
    if (who->org > 0)
        return 0;
    json_t *errors = json_array();
    api_error_add(errors, "auth", "the webhooks API needs an organization token");
    api_reply_bad_data(reply, errors);
    return -1;
}

static void reply_unavailable(api_reply *reply)
{
    api_reply_message(reply, 503, "storage unavailable, retry later");
    snprintf(reply->retry_after, sizeof reply->retry_after, "1");
}

int webhooks_create(api_request *req, const auth_identity *who, api_reply *reply)
{
    if (require_organization(who, reply) != 0)
        return API_DONE;

    json_t *errors = json_array();
    json_error_t error;
    json_t *body = req->body_len > 0 ? json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &error) : NULL;
    if (!json_is_object(body)) {
        api_error_add(errors, "body", body == NULL ? "must be valid JSON (UTF-8)" : "must be a JSON object");
        json_decref(body);
        api_reply_bad_data(reply, errors);
        return API_DONE;
    }

    json_t *url = json_object_get(body, "url");
    char reason[160];
    if (url == NULL || json_is_null(url))
        api_error_add(errors, "url", "is required");
    else if (!json_is_string(url))
        api_error_add(errors, "url", "must be a string");
    else if (url_guard_check_url(json_string_value(url), req->api->allow_private, reason, sizeof reason) != 0)
        api_error_add(errors, "url", reason);

    json_t *type = json_object_get(body, "event_type");
    if (type == NULL || json_is_null(type))
        api_error_add(errors, "event_type", "is required");
    else if (!json_is_string(type) || event_type_index(json_string_value(type)) < 0)
        api_error_add(errors, "event_type",
                      "must be one of project.created, project.updated, time.entry.created, time.entry.updated, "
                      "user.created, user.updated, assignment.created, assignment.updated");

    if (json_array_size(errors) > 0) {
        json_decref(body);
        api_reply_bad_data(reply, errors);
        return API_DONE;
    }

    webhook_store *store = store_pool_acquire(req->api->stores);
    json_t *created = NULL;
    store_status status =
        webhook_store_create(store, who->org, json_string_value(url), json_string_value(type), &created);
    store_pool_release(req->api->stores, store);

    if (status == STORE_OK) {
        webhook_public_view(created);
        api_reply_json(reply, 200, created);
        json_decref(errors);
    } else if (status == STORE_LIMIT) {
        char message[96];
        snprintf(message, sizeof message, "at most %d webhooks per event type", WEBHOOK_LIMIT_PER_TYPE);
        api_error_add(errors, "event_type", message);
        api_reply_bad_data(reply, errors);
    } else {
        json_decref(errors);
        reply_unavailable(reply);
    }
    json_decref(body);
    return API_DONE;
}

/* Reads a paging argument: absent → def; otherwise an integer in [1, max]. Returns -1 when invalid. */
static long paging_argument(api_request *req, const char *name, long def, long max)
{
    const char *text = api_query(req, name);
    if (text == NULL || text[0] == '\0')
        return def;
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (*end != '\0' || value < 1 || value > max)
        return -1;
    return value;
}

static json_t *page_link(long page, long per_page)
{
    char link[96];
    snprintf(link, sizeof link, "/api/v1/webhooks?page=%ld&per_page=%ld", page, per_page);
    return json_string(link);
}

int webhooks_list(api_request *req, const auth_identity *who, api_reply *reply)
{
    if (require_organization(who, reply) != 0)
        return API_DONE;
    long page = paging_argument(req, "page", 1, 1000000);
    long per_page = paging_argument(req, "per_page", PER_PAGE_DEFAULT, PER_PAGE_MAX);
    if (page < 0 || per_page < 0) {
        json_t *errors = json_array();
        if (page < 0)
            api_error_add(errors, "page", "must be an integer from 1");
        if (per_page < 0)
            api_error_add(errors, "per_page", "must be an integer from 1 to 100");
        api_reply_bad_data(reply, errors);
        return API_DONE;
    }

    webhook_store *store = store_pool_acquire(req->api->stores);
    json_t *items = NULL;
    long long total = 0;
    store_status status = webhook_store_list(store, who->org, page, per_page, &items, &total);
    store_pool_release(req->api->stores, store);
    if (status != STORE_OK) {
        reply_unavailable(reply);
        return API_DONE;
    }
    size_t index;
    json_t *item;
    json_array_foreach(items, index, item)
        webhook_public_view(item);
    long long last_page = total == 0 ? 1 : (total + per_page - 1) / per_page;
    json_t *paging = json_pack("{s:i, s:i, s:I, s:o, s:o, s:o}", "page", (int)page, "per_page", (int)per_page,
                               "total", (json_int_t)total, "self", page_link(page, per_page), "previous",
                               page > 1 ? page_link(page - 1, per_page) : json_null(), "next",
                               page < last_page ? page_link(page + 1, per_page) : json_null());
    api_reply_json(reply, 200, json_pack("{s:o, s:o}", "data", items, "paging", paging));
    return API_DONE;
}

/* The operations on one webhook of the caller's organization. */
typedef enum webhook_op { WEBHOOK_GET, WEBHOOK_DELETE, WEBHOOK_ROTATE_SECRET, WEBHOOK_DELIVERIES } webhook_op;

/* Runs op on webhook id and turns the outcome into the reply: 200 with the public webhook object (or the
 * delivery log page), 404 when the organization has no such webhook, 503 when Redis does not answer. */
static int webhook_operation(api_request *req, const auth_identity *who, long long id, webhook_op op,
                             api_reply *reply)
{
    if (require_organization(who, reply) != 0)
        return API_DONE;
    webhook_store *store = store_pool_acquire(req->api->stores);
    json_t *result = NULL;
    store_status status = STORE_UNAVAILABLE;
    switch (op) {
    case WEBHOOK_GET:
        status = webhook_store_get(store, who->org, id, &result);
        break;
    case WEBHOOK_DELETE:
        status = webhook_store_delete(store, who->org, id, &result);
        break;
    case WEBHOOK_ROTATE_SECRET:
        status = webhook_store_rotate_secret(store, who->org, id, SECRET_ROTATION_GRACE_MS, &result);
        break;
    case WEBHOOK_DELIVERIES:
        status = webhook_store_deliveries(store, who->org, id, &result);
        break;
    }
    store_pool_release(req->api->stores, store);
    if (status == STORE_OK && result != NULL) {
        if (op == WEBHOOK_DELIVERIES)
            result = json_pack("{s:o}", "data", result);
        else
            webhook_public_view(result);
        api_reply_json(reply, 200, result);
    } else if (status == STORE_OK || status == STORE_NOT_FOUND) {
        api_reply_message(reply, 404, "not found");
    } else {
        reply_unavailable(reply);
    }
    return API_DONE;
}

int webhooks_get(api_request *req, const auth_identity *who, long long id, api_reply *reply)
{
    return webhook_operation(req, who, id, WEBHOOK_GET, reply);
}

int webhooks_delete(api_request *req, const auth_identity *who, long long id, api_reply *reply)
{
    return webhook_operation(req, who, id, WEBHOOK_DELETE, reply);
}

int webhooks_rotate_secret(api_request *req, const auth_identity *who, long long id, api_reply *reply)
{
    return webhook_operation(req, who, id, WEBHOOK_ROTATE_SECRET, reply);
}

int webhooks_deliveries(api_request *req, const auth_identity *who, long long id, api_reply *reply)
{
    return webhook_operation(req, who, id, WEBHOOK_DELIVERIES, reply);
}
