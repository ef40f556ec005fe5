/*
 * http_api — what common/http_server hands to a program's request handlers, and what they hand back.
 *
 * The server owns the connection, buffers the body and calls the program's dispatch function once a request is
 * complete. A handler fills an api_reply (status, a JSON body it owns, optional headers) or, for an asynchronous
 * request (producer-api's events waiting for Kafka acknowledgements), returns API_SUSPENDED after arranging for
 * api_request_resume() to be called; the server then calls the request's resume_handler on its loop thread to
 * build the reply.
 *
 * struct api_context is the program's own context (producer-api: Redis pool, Kafka producer, metrics; the
 * dispatcher: its metrics and health flags). The server never looks inside it: it hands the pointer given to
 * http_server_start() to every request as req->api, and each program defines the struct.
 */
#ifndef HOOKD_HTTP_API_H
#define HOOKD_HTTP_API_H

#include <jansson.h>
#include <stddef.h>

struct api_context;
struct api_request;

typedef struct api_reply {
    int status;                /* HTTP status */
    json_t *body;              /* owned; NULL for an empty body */
    char *json_owned;          /* or the body already as compact JSON text (malloc'd), freed by the server: a hot
                                * path's reply without a jansson tree (producer-api's 202) */
    char retry_after[16];      /* Retry-After header value, empty for none */
    const char *allow;         /* Allow header for 405, static string or NULL */
    const char *text;          /* a text/plain body (static or owned by text_owned) instead of JSON */
    char *text_owned;          /* malloc'd Prometheus text body (text/plain; version=0.0.4), freed by the server */
} api_reply;

#define API_DONE 0
#define API_SUSPENDED 1

typedef int (*api_resume_fn)(struct api_request *req, api_reply *reply);

typedef struct api_request {
    const struct api_context *api; /* the program's context, as given to http_server_start() */
    const char *method;           /* "GET", "POST", ... */
    const char *path;             /* path without query */
    char *body;                   /* request body (NUL-terminated), owned by the server */
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
 * called on the loop thread inside the handler, before any resume can happen. */
void api_request_suspend(api_request *req);

/* Wakes a suspended request; callable from any thread, exactly once per suspend. */
void api_request_resume(api_request *req);

/* Reply helpers (http_api.c). The reply takes ownership of body. */
void api_reply_json(api_reply *reply, int status, json_t *body);
/* {"message": message} with status. */
void api_reply_message(api_reply *reply, int status, const char *message);
/* status with text, compact JSON the caller formatted (malloc'd; the reply takes it, NULL means out of memory:
 * the reply becomes a 500). */
void api_reply_json_text(api_reply *reply, int status, char *text);

#endif
