/*
 * fuzz_router — the real router_dispatch() (producer-api/router.c) with the real auth.c, webhooks_api.c and
 * events_api.c (a suspended events request is resumed and answered as http_server.c would),
 * on arbitrary method, path, credentials, paging arguments and body; Redis, the HTTP layer and the other
 * handlers are api_stubs.c.
 * Input: byte 0 = flags (bit 0 allow_private, bits 1-2 store status, bit 3 use the "auth" header instead of
 * Authorization, bit 7 Kafka refuses every write), then NUL-separated method, path, credential, page, per_page;
 * the rest is the body.
 * Invariants: see api_stubs.c (validated ids / paging / URLs reach the store; every reply well-formed), plus:
 * router_body_limit() is one of the two limits; a path outside the known routes is 404 (or 405) before any
 * authentication.
 */
#include "api_metrics.h"
#include "api_stubs.h"
#include "fuzz_util.h"
#include "handlers.h"
#include "webhook_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    uint8_t flags = fuzz_byte(&data, &size);
    static const int statuses[] = {STORE_OK, STORE_NOT_FOUND, STORE_UNAVAILABLE, STORE_LIMIT};
    stub_allow_private = flags & 1;
    stub_store_status = statuses[(flags >> 1) & 3];
    char *method = fuzz_take_string(&data, &size);
    char *path = fuzz_take_string(&data, &size);
    char *cred = fuzz_take_string(&data, &size);
    char *page = fuzz_take_string(&data, &size);
    char *per_page = fuzz_take_string(&data, &size);
    stub_header_auth = (flags & 8) ? cred : NULL;
    stub_header_authorization = (flags & 8) ? NULL : cred;
    stub_query_auth = (flags & 16) ? cred : NULL;
    stub_query_page = (flags & 32) ? page : NULL;
    stub_query_per_page = (flags & 64) ? per_page : NULL;

    size_t limit = router_body_limit(method, path);
    FUZZ_CHECK(limit == API_BODY_LIMIT || limit == API_EVENTS_BODY_LIMIT, "limit %zu", limit);

    api_context ctx = {0};
    ctx.allow_private = stub_allow_private;
    ctx.claim_ttl_s = 300;
    api_request req = {0};
    req.api = &ctx;
    req.method = method;
    req.path = path;
    req.body = fuzz_strdup(data, size);
    req.body_len = size;
    api_reply reply = {0};
    api_metrics series = {0}; /* no series registered: the counters are no-ops */
    ctx.series = &series;
    stub_kafka_fails = (flags & 128) != 0;
    stub_suspended = stub_resumed = 0;
    int rc = router_dispatch(&req, &reply);
    if (rc == API_SUSPENDED) { /* events waiting for Kafka: the stub producer reported every write at once */
        FUZZ_CHECK(stub_suspended && stub_resumed && req.resume_handler != NULL, "suspended, never resumed");
        rc = req.resume_handler(&req, &reply);
        FUZZ_CHECK(reply.status == (stub_kafka_fails ? 503 : 202), "events answered %d", reply.status);
    }
    FUZZ_CHECK(rc == API_DONE, "rc %d", rc);
    FUZZ_CHECK(!stub_suspended || stub_resumed, "suspended but answered");
    if (req.async_free != NULL)
        req.async_free(req.async_state);
    stub_check_reply(&reply);
    if (strncmp(path, "/api/v1/", 8) != 0 && strcmp(path, "/healthz") != 0 && strcmp(path, "/readyz") != 0 &&
        strcmp(path, "/metrics") != 0)
        FUZZ_CHECK(reply.status == 404, "%s %s -> %d", method, path, reply.status);

    json_decref(reply.body);
    free(reply.json_owned);
    free(req.body);
    free(per_page);
    free(page);
    free(cred);
    free(path);
    free(method);
    return 0;
}
