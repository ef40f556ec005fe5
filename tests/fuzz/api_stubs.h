/*
 * api_stubs — stand-ins for what the producer-api request path needs besides router.c, webhooks_api.c, auth.c
 * and events_api.c (which the API harnesses link for real): the HTTP layer's header/query access and request
 * suspension (http_server.c), the Redis store pool and store calls (store_pool.c, webhook_store.c), the Kafka
 * producer (event_producer.c), and the handlers of other files (health, metrics). The store stubs check that only validated input reaches storage.
 */
#ifndef HOOKD_FUZZ_API_STUBS_H
#define HOOKD_FUZZ_API_STUBS_H

#include "api.h"

/* What api_header() / api_query() answer: NULL = absent. */
extern const char *stub_header_auth;          /* "auth" header */
extern const char *stub_header_authorization; /* "Authorization" header */
extern const char *stub_query_auth, *stub_query_page, *stub_query_per_page;
/* The status every store stub returns (STORE_OK, STORE_NOT_FOUND, STORE_LIMIT or STORE_UNAVAILABLE). */
extern int stub_store_status;
/* allow_private of the context the harness passes; the create stub re-checks the URL with it. */
extern int stub_allow_private;

/* POST /api/v1/events: stub_kafka_fails makes every delivery report a failure; the suspend/resume stubs record
 * what the handler did (the harness clears both before each request). */
extern int stub_kafka_fails, stub_suspended, stub_resumed;

/* Checks a finished reply: a known status, a JSON body, Allow on 405, Retry-After on 503. */
void stub_check_reply(const api_reply *reply);

#endif
