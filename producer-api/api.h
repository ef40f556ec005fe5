/*
 * api — producer-api's handler context and its route functions. The request and reply types, and the helpers
 * every program's handlers share, are common/http_api.h; common/http_server.c runs the connections and calls
 * router_dispatch() once a request is complete.
 */
#ifndef HOOKD_API_H
#define HOOKD_API_H

#include "delivery_http.h"
#include "http_api.h"
#include "metrics.h"
#include "store_pool.h"

#include <stddef.h>

struct event_producer;
struct test_limit;
struct token_cache;

/* Everything the handlers share. Built by main() before the server starts; read-only afterwards. */
typedef struct api_context { /* completes http_api.h's struct api_context */
    store_pool *stores;               /* Redis connections */
    struct token_cache *tokens;       /* tokens already looked up (auth.c) */
    struct event_producer *producer;  /* Kafka producer (events API) */
    int allow_private;                /* ALLOW_PRIVATE_TARGETS */
    long long delivery_timeout_ms;    /* DELIVERY_TIMEOUT, for test deliveries */
    struct test_limit *test_limit;    /* test deliveries running at once (test_limit.h) */
    long long claim_ttl_s;            /* how long a client event id stays "pending" (2 x PRODUCE_TIMEOUT + 5 s) */
    delivery_http_ca_bundle ca;       /* system CAs + RECEIVER_CA_FILE (delivery_http.h), path "" for the default */
    metrics_registry *metrics;        /* Prometheus registry served on /metrics */
    struct api_metrics *series;       /* pre-registered series (api_metrics.h) */
} api_context;

/* 403 {"message": "bad data", "errors": errors} — takes ownership of errors. */
void api_reply_bad_data(api_reply *reply, json_t *errors);
/* Appends {"field", "message"} to errors. */
void api_error_add(json_t *errors, const char *field, const char *message);

/* Routes a complete request. Returns API_DONE with *reply filled, or API_SUSPENDED. */
int router_dispatch(api_request *req, api_reply *reply);

/* Body size limits, by route. */
#define API_BODY_LIMIT (64 * 1024)
#define API_EVENTS_BODY_LIMIT (1024 * 1024)
size_t router_body_limit(const char *method, const char *path);

#endif
