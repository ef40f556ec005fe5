/*
 * router — maps method and path to a handler, authenticates, and owns the reply helpers of api.h.
 *
 * Routes:
 *   GET  /healthz, /readyz                      no token
 *   POST /api/v1/webhooks, GET /api/v1/webhooks
 *   GET  /api/v1/webhooks/{id}, DELETE /api/v1/webhooks/{id}
 *   POST /api/v1/events
 * Anything else is a JSON 404 (unknown path) or 405 (known path, other method).
 */
#include "api.h"
#include "handlers.h"

#include <stdlib.h>
#include <string.h>

#define WEBHOOKS_PATH "/api/v1/webhooks"
#define EVENTS_PATH "/api/v1/events"

void api_reply_json(api_reply *reply, int status, json_t *body)
{
    reply->status = status;
    json_decref(reply->body);
    reply->body = body;
}

void api_reply_message(api_reply *reply, int status, const char *message)
{
    api_reply_json(reply, status, json_pack("{s:s}", "message", message));
}

void api_reply_bad_data(api_reply *reply, json_t *errors)
{
    api_reply_json(reply, 403, json_pack("{s:s, s:o}", "message", "bad data", "errors", errors));
}

void api_error_add(json_t *errors, const char *field, const char *message)
{
    json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field, "message", message));
}

size_t router_body_limit(const char *method, const char *path)
{
    if (strcmp(method, "POST") == 0 && strcmp(path, EVENTS_PATH) == 0)
        return API_EVENTS_BODY_LIMIT;
    return API_BODY_LIMIT;
}

/* Parses the {id} segment: a positive decimal integer without sign or leading zeros. Returns -1 otherwise. */
static long long parse_id(const char *text)
{
    if (text[0] < '1' || text[0] > '9' || strlen(text) > 18)
        return -1;
    for (const char *p = text; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    return strtoll(text, NULL, 10);
}

static int method_not_allowed(api_reply *reply, const char *allow)
{
    api_reply_message(reply, 405, "method not allowed");
    reply->allow = allow;
    return API_DONE;
}

int router_dispatch(api_request *req, api_reply *reply)
{
    const char *method = req->method;
    const char *path = req->path;

    if (strcmp(path, "/healthz") == 0)
        return strcmp(method, "GET") == 0 ? health_live(req, reply) : method_not_allowed(reply, "GET");
    if (strcmp(path, "/readyz") == 0)
        return strcmp(method, "GET") == 0 ? health_ready(req, reply) : method_not_allowed(reply, "GET");

    int is_webhooks = strcmp(path, WEBHOOKS_PATH) == 0 || strcmp(path, WEBHOOKS_PATH "/") == 0;
    int is_webhook = strncmp(path, WEBHOOKS_PATH "/", strlen(WEBHOOKS_PATH) + 1) == 0 && !is_webhooks;
    int is_events = strcmp(path, EVENTS_PATH) == 0;
    if (!is_webhooks && !is_webhook && !is_events) {
        api_reply_message(reply, 404, "not found");
        return API_DONE;
    }

    long long id = 0;
    if (is_webhook) {
        id = parse_id(path + strlen(WEBHOOKS_PATH) + 1);
        if (id <= 0) {
            api_reply_message(reply, 404, "not found");
            return API_DONE;
        }
    }
    const char *allow = is_webhooks ? "GET, POST" : is_webhook ? "GET, DELETE" : "POST";
    int known = (is_webhooks && (!strcmp(method, "GET") || !strcmp(method, "POST"))) ||
                (is_webhook && (!strcmp(method, "GET") || !strcmp(method, "DELETE"))) ||
                (is_events && !strcmp(method, "POST"));
    if (!known)
        return method_not_allowed(reply, allow);

    auth_identity who = {0};
    if (auth_authenticate(req, &who, reply) != 0)
        return API_DONE;

    if (is_events)
        return events_post(req, &who, reply);
    if (is_webhooks)
        return strcmp(method, "POST") == 0 ? webhooks_create(req, &who, reply) : webhooks_list(req, &who, reply);
    return strcmp(method, "GET") == 0 ? webhooks_get(req, &who, id, reply) : webhooks_delete(req, &who, id, reply);
}
