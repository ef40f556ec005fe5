/*
 * events_api — POST /api/v1/events: domain events into Kafka.
 *
 * Body: one event {"type", "organization_id"?, "data", "id"?, "occurred_at"?} or an array of 1..500. Every
 * event is validated first (a batch is refused whole, errors naming index and field). Client-given ids are
 * claimed in Redis ("pending" while the write is in flight, "done" for 24 h once acknowledged): a repeat of
 * an accepted id answers with the same id and writes nothing; a repeat while the first is still in flight gets
 * 409 with Retry-After (never a 202 for a write that may yet fail). The rest are produced and the request
 * suspends — no thread is held — until every delivery report is in: 202 when all were acknowledged
 * (acks=all), else 503 with Retry-After (the claims are released so the client may retry).
 */
#include "api_metrics.h"
#include "event_producer.h"
#include "events_api.h"
#include "handlers.h"
#include "json_scan.h"
#include "json_text.h"
#include "log.h"
#include "uuid.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_BATCH_MAX 500

/* A request's events while their writes are in flight. Owned by the request (async_state). */
typedef struct events_batch {
    api_request *req;    /* the suspended request */
    int is_array;        /* answer {"data": [...]} rather than {"id"} */
    int count;           /* events in the request */
    envelope *events;    /* count envelopes */
    char *claimed;       /* count flags: client id claimed by this request (release on failure) */
    atomic_int pending;  /* delivery reports still expected */
    atomic_int failed;   /* writes that failed */
} events_batch;

static void batch_free(void *state)
{
    events_batch *batch = state;
    if (batch == NULL)
        return;
    for (int i = 0; i < batch->count; i++)
        envelope_clear(&batch->events[i]);
    free(batch->events);
    free(batch->claimed);
    free(batch);
}

void events_delivered(void *opaque, int ok)
{
    events_batch *batch = opaque;
    if (!ok)
        atomic_fetch_add(&batch->failed, 1);
    if (atomic_fetch_sub(&batch->pending, 1) == 1)
        api_request_resume(batch->req);
}

/* The 202 body, {"id": ...} or {"data": [{"id": ...}, ...]}, formatted without a jansson tree (a request's
 * only reply allocation). Ids are printable ASCII: escaping at most doubles one. Returns malloc'd text or NULL. */
static char *accepted_text(const events_batch *batch)
{
    size_t cap = 16;
    for (int i = 0; i < batch->count; i++)
        cap += 2 * strlen(batch->events[i].id) + 12;
    char *text = malloc(cap);
    if (text == NULL)
        return NULL;
    json_buf b;
    json_buf_init(&b, text, cap);
    if (!batch->is_array) {
        json_buf_raw(&b, "{", 1);
        json_buf_key(&b, "id");
        json_buf_string(&b, batch->events[0].id);
        json_buf_raw(&b, "}", 1);
    } else {
        json_buf_raw(&b, "{\"data\":[", 9);
        for (int i = 0; i < batch->count; i++) {
            json_buf_raw(&b, i == 0 ? "{" : ",{", i == 0 ? 1 : 2);
            json_buf_key(&b, "id");
            json_buf_string(&b, batch->events[i].id);
            json_buf_raw(&b, "}", 1);
        }
        json_buf_raw(&b, "]}", 2);
    }
    if (b.overflow) { /* cannot happen with the capacity above; refuse rather than send a truncated body */
        free(text);
        return NULL;
    }
    return text;
}

/* Settles this request's claims: confirmed (accepted: repeats answer the same id for 24 h) or released (not
 * accepted: the client may retry). A confirm that fails leaves the pending claim to lapse on its own. */
static void settle_claims(events_batch *batch, int accepted)
{
    if (memchr(batch->claimed, 1, (size_t)batch->count) == NULL)
        return; /* no client ids: no Redis connection to take from the pool */
    webhook_store *store = store_pool_acquire(batch->req->api->stores);
    for (int i = 0; i < batch->count; i++) {
        if (!batch->claimed[i])
            continue;
        if (accepted)
            event_id_confirm(store, batch->events[i].organization_id, batch->events[i].id);
        else
            event_id_release(store, batch->events[i].organization_id, batch->events[i].id);
    }
    store_pool_release(batch->req->api->stores, store);
}

static void reply_unavailable(api_reply *reply, const char *message)
{
    api_reply_message(reply, 503, message);
    snprintf(reply->retry_after, sizeof reply->retry_after, "1");
}

/* True when event i carries the client id of an earlier event of the same organization in the batch. */
static int repeats_earlier_event(const events_batch *batch, int i)
{
    for (int j = 0; j < i; j++)
        if (batch->events[j].organization_id == batch->events[i].organization_id &&
            strcmp(batch->events[j].id, batch->events[i].id) == 0)
            return 1;
    return 0;
}

/* Runs on the worker thread once every delivery report is in. */
static int events_finish(api_request *req, api_reply *reply)
{
    events_batch *batch = req->async_state;
    int failed = atomic_load(&batch->failed);
    if (failed > 0) {
        metric_counter_add(req->api->series->events_unavailable, (uint64_t)batch->count);
        settle_claims(batch, 0);
        reply_unavailable(reply, "event stream unavailable, retry later");
        return API_DONE;
    }
    settle_claims(batch, 1);
    metric_counter_add(req->api->series->events_accepted, (uint64_t)batch->count);
    api_reply_json_text(reply, 202, accepted_text(batch));
    return API_DONE;
}

/* The events of a request body: the body itself (one event) or the elements of its top-level array. Lives on
 * the handler's stack; only an array allocates room for its spans, so a single event, the common request, makes
 * no 12 KB allocation (callgrind: ~1,000 instructions fewer per request). */
typedef struct body_items {
    int is_array;
    int out_of_memory;     /* the spans of an array could not be allocated */
    size_t count;          /* elements seen (may exceed EVENTS_BATCH_MAX) */
    json_scan_span *item;  /* the first EVENTS_BATCH_MAX of them: &one, or malloc'd for an array */
    json_scan_span one;    /* a single event's span */
} body_items;

static int on_body_item(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    body_items *items = ctx;
    if (key != NULL)
        return 0; /* a member of a single event: envelope_from_request() reads those */
    if (items->item == NULL && !items->out_of_memory) {
        items->item = malloc(EVENTS_BATCH_MAX * sizeof *items->item);
        items->out_of_memory = items->item == NULL;
    }
    if (items->item != NULL && items->count < EVENTS_BATCH_MAX)
        items->item[items->count] = *value;
    items->count++;
    return 0;
}

static void body_items_clear(body_items *items)
{
    if (items->item != &items->one)
        free(items->item);
    items->item = NULL;
}

/* Error path: 1 when body is valid JSON but neither an object nor an array (a bare number, string, ...). */
static int is_json_scalar(const char *body, size_t len)
{
    char *wrapped = len > 0 ? malloc(len + 2) : NULL; /* an empty body has no buffer at all */
    if (wrapped == NULL)
        return 0;
    wrapped[0] = '[';
    memcpy(wrapped + 1, body, len);
    wrapped[len + 1] = ']';
    int valid = json_scan_document(wrapped, len + 2, NULL, NULL, NULL, 0) == 0;
    free(wrapped);
    return valid;
}

int events_post(api_request *req, const auth_identity *who, api_reply *reply)
{
    json_t *errors = json_array();
    body_items items_storage = {0}, *items = &items_storage;
    /* One validating pass over the body with jansson's rules but no tree (json_scan.h): events are spans of it. */
    if (json_scan_document(req->body, req->body_len, on_body_item, items, NULL, 0) != 0) {
        api_error_add(errors, "body", is_json_scalar(req->body, req->body_len) ? "must be an event or an array"
                                                                               : "must be valid JSON (UTF-8)");
        body_items_clear(items);
        api_reply_bad_data(reply, errors);
        return API_DONE;
    }
    if (items->out_of_memory) {
        body_items_clear(items);
        json_decref(errors);
        api_reply_message(reply, 500, "out of memory");
        return API_DONE;
    }
    size_t first = 0; /* the body's first byte past whitespace: '[' or '{' (the scan accepted it) */
    while (first < req->body_len && strchr(" \t\n\r", req->body[first]) != NULL)
        first++;
    items->is_array = first < req->body_len && req->body[first] == '[';
    if (!items->is_array) { /* an object: the whole body is the event */
        items->item = &items->one;
        items->item[0].start = req->body;
        items->item[0].len = req->body_len;
        items->count = 1;
    }
    size_t count = items->count;
    if (count < 1 || count > EVENTS_BATCH_MAX) {
        api_error_add(errors, "body", "a batch holds 1 to 500 events");
        body_items_clear(items);
        api_reply_bad_data(reply, errors);
        return API_DONE;
    }

    events_batch *batch = calloc(1, sizeof *batch);
    if (batch != NULL) {
        batch->events = calloc(count, sizeof *batch->events);
        batch->claimed = calloc(count, 1);
    }
    if (batch == NULL || batch->events == NULL || batch->claimed == NULL) {
        batch_free(batch);
        body_items_clear(items);
        json_decref(errors);
        api_reply_message(reply, 500, "out of memory");
        return API_DONE;
    }
    batch->req = req;
    batch->is_array = items->is_array;
    batch->count = (int)count;
    long long token_org = who->is_service ? 0 : who->org;
    for (size_t i = 0; i < count; i++)
        envelope_from_request(items->item[i].start, items->item[i].len, token_org, items->is_array ? (int)i : -1,
                              &batch->events[i], errors);
    body_items_clear(items);
    /* librdkafka refuses a message past its message.max.bytes, and would refuse every retry of it: bad data, not
     * a 503 (a 1 MiB body could hold a 1,040,000-byte event, answered "event stream unavailable, retry later") */
    int well_formed = json_array_size(errors) == 0;
    for (int i = 0; well_formed && i < batch->count; i++) {
        size_t size = 0;
        if (event_producer_fits(req->api->producer, &batch->events[i], &size))
            continue;
        char message[160];
        snprintf(message, sizeof message, "too large: the event takes %zu bytes in Kafka, at most %zu "
                 "(KAFKA_MESSAGE_MAX_BYTES)", size, event_producer_max_message_bytes(req->api->producer));
        json_t *error = json_pack("{s:s, s:s}", "field", "data", "message", message);
        if (error != NULL && batch->is_array)
            json_object_set_new(error, "index", json_integer(i));
        json_array_append_new(errors, error);
    }
    if (json_array_size(errors) > 0) {
        batch_free(batch);
        api_reply_bad_data(reply, errors);
        return API_DONE;
    }
    json_decref(errors);

    /* Assign ids; claim client ids so a repeat within 24 h writes nothing. */
    char *send = calloc(count, 1);
    int to_send = 0;
    webhook_store *store = NULL; /* taken from the pool at the first client id: most events carry none */
    for (int i = 0; send != NULL && i < batch->count; i++) {
        envelope *env = &batch->events[i];
        if (env->id[0] == '\0') {
            uuid_v7_generate(env->id);
            send[i] = 1;
            to_send++;
            continue;
        }
        if (repeats_earlier_event(batch, i))
            continue; /* the same client id earlier in this batch: written once, answered twice */
        if (store == NULL)
            store = store_pool_acquire(req->api->stores);
        store_status status = event_id_claim(store, env->organization_id, env->id, req->api->claim_ttl_s);
        if (status == STORE_UNAVAILABLE || status == STORE_PENDING) {
            store_pool_release(req->api->stores, store);
            settle_claims(batch, 0);
            batch_free(batch);
            free(send);
            if (status == STORE_PENDING) {
                /* another request with this id is still waiting for Kafka: its outcome decides */
                api_reply_message(reply, 409, "an event with this id is still being written, retry shortly");
                snprintf(reply->retry_after, sizeof reply->retry_after, "1");
            } else {
                reply_unavailable(reply, "storage unavailable, retry later");
            }
            return API_DONE;
        }
        if (status == STORE_OK) {
            batch->claimed[i] = 1;
            send[i] = 1;
            to_send++;
        }
    }
    if (store != NULL)
        store_pool_release(req->api->stores, store);
    if (send == NULL) {
        batch_free(batch);
        api_reply_message(reply, 500, "out of memory");
        return API_DONE;
    }

    req->async_state = batch;
    req->async_free = batch_free;
    req->resume_handler = events_finish;
    if (to_send == 0) {
        free(send);
        metric_counter_add(req->api->series->events_accepted, (uint64_t)batch->count);
        api_reply_json_text(reply, 202, accepted_text(batch));
        return API_DONE;
    }

    /* Suspend before the first write so that no delivery report can resume a request not yet suspended. One
     * extra count is held while queuing so the resume cannot happen before the loop ends. */
    atomic_init(&batch->pending, to_send + 1);
    atomic_init(&batch->failed, 0);
    api_request_suspend(req);
    for (int i = 0; i < batch->count; i++) {
        if (!send[i])
            continue;
        if (event_producer_send(req->api->producer, &batch->events[i], batch) != 0)
            events_delivered(batch, 0); /* not queued: no report will come */
    }
    free(send);
    events_delivered(batch, 1); /* drop the extra count */
    return API_SUSPENDED;
}
