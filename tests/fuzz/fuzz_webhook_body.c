/*
 * fuzz_webhook_body — the real webhooks_create() (producer-api/webhooks_api.c: json_loadb, the url checks via
 * url_guard_check_url and the event_type check via event_type_index) on an arbitrary request body, with the
 * Redis store replaced by api_stubs.c.
 * Input: byte 0 = flags (bit 0 allow_private, bits 1-2 store status: OK / LIMIT / UNAVAILABLE / OK), rest = body.
 * Invariants: only a URL that url_guard accepts and a known event type reach webhook_store_create (checked in
 * the stub); the reply is 200 (a webhook), 403 with a non-empty errors array, or 503 with Retry-After; a reply
 * body always serialises and never carries previous_secret.
 */
#include "api_stubs.h"
#include "fuzz_util.h"
#include "handlers.h"
#include "webhook_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > API_BODY_LIMIT + 1)
        return 0;
    uint8_t flags = fuzz_byte(&data, &size);
    static const int statuses[] = {STORE_OK, STORE_LIMIT, STORE_UNAVAILABLE, STORE_OK};
    stub_allow_private = flags & 1;
    stub_store_status = statuses[(flags >> 1) & 3];

    api_context ctx = {0};
    ctx.allow_private = stub_allow_private;
    api_request req = {0};
    req.api = &ctx;
    req.method = "POST";
    req.path = "/api/v1/webhooks";
    req.body = fuzz_strdup(data, size); /* http_server.c NUL-terminates the body too */
    req.body_len = size;
    auth_identity who = {.org = 7, .is_service = 0};
    api_reply reply = {0};

    FUZZ_CHECK(webhooks_create(&req, &who, &reply) == API_DONE, "suspended");
    stub_check_reply(&reply);
    FUZZ_CHECK(reply.status == 200 || reply.status == 403 || reply.status == 503, "status %d", reply.status);
    if (reply.status == 200)
        FUZZ_CHECK(json_is_string(json_object_get(reply.body, "url")), "200 without url");
    json_decref(reply.body);
    free(req.body);
    return 0;
}
