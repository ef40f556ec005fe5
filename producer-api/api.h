/*
 * api — what the HTTP layer hands to the endpoint handlers, and what they hand back.
 *
 * http_server.c owns the connection, buffers the body and calls router_dispatch() once the request is complete.
 * A handler fills an api_reply (status, JSON body it owns, optional headers) or, for an asynchronous request
 * (events waiting for Kafka acknowledgements), returns API_SUSPENDED after arranging for api_request_resume()
 * to be called; the layer then calls the request's resume_handler on the worker thread to build the reply.
 */
#ifndef HOOKD_API_H
#define HOOKD_API_H

#include "metrics.h"
#include "store_pool.h"

#include <jansson.h>
#include <stddef.h>

struct event_producer;
struct token_cache;
struct api_request;

/* Everything the handlers share. Built by main() before the server starts; read-only afterwards. */
typedef struct api_context {
    store_pool *stores;               /* Redis connections */
    struct token_cache *tokens;       /* tokens already looked up (auth.c) */
    struct event_producer *producer;  /* Kafka producer (events API) */
    int allow_private;                /* ALLOW_PRIVATE_TARGETS */
    long long delivery_timeout_ms;    /* DELIVERY_TIMEOUT, for test deliveries */
    long long claim_ttl_s;            /* how long a client event id stays "pending" (2 x PRODUCE_TIMEOUT + 5 s) */
    char ca_bundle[256];              /* system CAs + RECEIVER_CA_FILE (temp file), empty for the default */
    metrics_registry *metrics;        /* Prometheus registry served on /metrics */
    struct api_metrics *series;       /* pre-registered series (api_metrics.h) */
} api_context;

typedef struct api_reply {
    int status;                /* HTTP status */
    json_t *body;              /* owned; NULL for an empty body */
    char retry_after[16];      /* Retry-After header value, empty for none */
    const char *allow;         /* Allow header for 405, static string or NULL */
    const char *text;          /* a text/plain body (static or owned by text_owned) instead of JSON */
    char *text_owned;          /* malloc'd text body freed by the layer */
} api_reply;

#define API_DONE 0
#define API_SUSPENDED 1

typedef int (*api_resume_fn)(struct api_request *req, api_reply *reply);

typedef struct api_request {
    const api_context *api;       /* shared context */
    const char *method;           /* "GET", "POST", ... */
    const char *path;             /* path without query */
    char *body;                   /* request body (NUL-terminated), owned by the layer */
    size_t body_len;              /* bytes in body */
    void *async_state;            /* owned by the handler that suspended; freed through async_free */
    void (*async_free)(void *state);
    api_resume_fn resume_handler; /* called after api_request_resume() */
} api_request;

/* Header value (case-insensitive name) or NULL. */
const char *api_header(api_request *req, const char *name);

/* Query argument value or NULL. */
const char *api_query(api_request *req, const char *name);

/* Suspends the request: the handler returns API_SUSPENDED and arranges a later api_request_resume(). Must be
 * called on the worker thread inside the handler, before any resume can happen. */
void api_request_suspend(api_request *req);

/* Wakes a suspended request; callable from any thread, exactly once per suspend. */
void api_request_resume(api_request *req);

/* Reply helpers. The reply takes ownership of body. */
void api_reply_json(api_reply *reply, int status, json_t *body);
void api_reply_message(api_reply *reply, int status, const char *message);
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
