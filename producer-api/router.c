/*
 * router — maps method and path to a handler, authenticates, and owns api.h's producer-api reply helpers.
 *
 * Routes:
 *   GET  /healthz, /readyz, /metrics            no token
 *   POST /api/v1/webhooks, GET /api/v1/webhooks
 *   GET  /api/v1/webhooks/{id}, DELETE /api/v1/webhooks/{id}
 *   GET  /api/v1/webhooks/{id}/deliveries, POST .../{id}/test, POST .../{id}/rotate_secret
 *   POST /api/v1/events
 * Anything else is a JSON 404 (unknown path) or 405 (known path, other method).
 */
#include "api.h"
#include "handlers.h"

#include <stdlib.h>
#include <string.h>

#define WEBHOOKS_PATH "/api/v1/webhooks"
#define EVENTS_PATH "/api/v1/events"

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

/* Parses the {id} segment (up to '/' or the end): a positive decimal integer without sign or leading zeros.
 * Returns -1 otherwise; *rest points after the segment. */
static long long parse_id(const char *text, const char **rest)
{
    size_t len = strcspn(text, "/");
    *rest = text + len;
    if (len == 0 || len > 18 || text[0] < '1' || text[0] > '9')
        return -1;
    for (size_t i = 0; i < len; i++)
        if (text[i] < '0' || text[i] > '9')
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
    if (strcmp(path, "/metrics") == 0)
        return strcmp(method, "GET") == 0 ? metrics_page(req, reply) : method_not_allowed(reply, "GET");

    int is_webhooks = strcmp(path, WEBHOOKS_PATH) == 0 || strcmp(path, WEBHOOKS_PATH "/") == 0;
    int is_webhook = strncmp(path, WEBHOOKS_PATH "/", strlen(WEBHOOKS_PATH) + 1) == 0 && !is_webhooks;
    int is_events = strcmp(path, EVENTS_PATH) == 0;
    if (!is_webhooks && !is_webhook && !is_events) {
        api_reply_message(reply, 404, "not found");
        return API_DONE;
    }

    long long id = 0;
    const char *action = "";
    if (is_webhook) {
        id = parse_id(path + strlen(WEBHOOKS_PATH) + 1, &action);
        if (id <= 0 || (action[0] != '\0' && strcmp(action, "/deliveries") != 0 && strcmp(action, "/test") != 0 &&
                        strcmp(action, "/rotate_secret") != 0)) {
            api_reply_message(reply, 404, "not found");
            return API_DONE;
        }
    }
    int is_deliveries = strcmp(action, "/deliveries") == 0;
    int is_action = action[0] != '\0' && !is_deliveries; /* test, rotate_secret */
    const char *allow = is_webhooks      ? "GET, POST"
                        : is_deliveries  ? "GET"
                        : is_action      ? "POST"
                        : is_webhook     ? "GET, DELETE"
                                         : "POST";
    int known = (is_webhooks && (!strcmp(method, "GET") || !strcmp(method, "POST"))) ||
                (is_deliveries && !strcmp(method, "GET")) || (is_action && !strcmp(method, "POST")) ||
                (is_webhook && action[0] == '\0' && (!strcmp(method, "GET") || !strcmp(method, "DELETE"))) ||
                (is_events && !strcmp(method, "POST"));
    if (!known)
        return method_not_allowed(reply, allow);

    auth_identity who = {0};
    if (auth_authenticate(req, &who, reply) != 0)
        return API_DONE;

    if (is_events)
        return events_post(req, &who, reply);
    if (is_deliveries)
        return webhooks_deliveries(req, &who, id, reply);
    if (strcmp(action, "/rotate_secret") == 0)
        return webhooks_rotate_secret(req, &who, id, reply);
    if (strcmp(action, "/test") == 0)
        return webhooks_test(req, &who, id, reply);
    if (is_webhooks)
        return strcmp(method, "POST") == 0 ? webhooks_create(req, &who, reply) : webhooks_list(req, &who, reply);
    return strcmp(method, "GET") == 0 ? webhooks_get(req, &who, id, reply) : webhooks_delete(req, &who, id, reply);
}
