/*
 * dispatch — turns consumed events into deliveries and finished deliveries into stored offsets.
 *
 *   message -> consumer_track -> envelope_decode (malformed: log, count, complete) -> subscriber_cache_get
 *     (Redis down: the event waits in a FIFO, consumption pauses) -> body built once -> one delivery per
 *     active webhook -> each attempt ends in on_attempt_done: one JSON log line, metrics, and for a failure
 *     the failure hook (the retry stage plugs in here) -> when the event's last delivery is done,
 *     consumer_complete(offset).
 *
 * Backpressure: when deliveries in flight reach max_in_flight the consumer is paused; it resumes at half.
 *
 * Ownership: the dispatch owns every event in progress (its envelope, body, subscriber list reference and
 * partition reference) and nothing else; consumer, cache and engine are borrowed.
 * Thread contract: the event-loop thread only.
 */
#ifndef HOOKD_DISPATCH_H
#define HOOKD_DISPATCH_H

#include "consumer.h"
#include "delivery.h"
#include "dispatcher_metrics.h"
#include "subscriber_cache.h"

#include <stddef.h>

/* A failed attempt, as the retry stage will receive it. Every pointer is valid only during the hook call; the
 * hook copies what it keeps. The event's offset completes after the hook returns, so a retry stage must have
 * made the delivery durable (e.g. produced it to a retry topic) before returning. */
typedef struct failed_delivery {
    const char *event_id;
    int event_type;            /* event_types.h index */
    long long organization_id;
    long long webhook_id;
    const char *url;
    const char *secret;
    const char *body;          /* the exact body that was sent */
    size_t body_len;
    const delivery_result *result;
} failed_delivery;

/* The failure hook: NULL means a failed attempt is only logged and counted. */
typedef void (*dispatch_failure_fn)(void *ctx, const failed_delivery *failure);

typedef struct dispatch dispatch;

typedef struct dispatch_options {
    long max_in_flight;               /* MAX_IN_FLIGHT */
    dispatch_failure_fn on_failure;   /* may be NULL */
    void *failure_ctx;
} dispatch_options;

/* Creates the dispatch. The engine and consumer are attached afterwards (they call back into it). */
dispatch *dispatch_new(const dispatch_options *opts, subscriber_cache *cache, dispatcher_metrics *dm);

/* Borrowed collaborators, set once before the loop runs. */
void dispatch_attach(dispatch *d, consumer *c, delivery_engine *eng);

/* consumer_message_fn: one Kafka message. */
void dispatch_on_message(void *ctx, partition_state *ps, const rd_kafka_message_t *msg);

/* delivery_done_fn: one finished attempt. */
void dispatch_on_attempt_done(void *ctx, const delivery_request *req, const delivery_result *res);

/* Periodic work (every tick): retries events waiting for Redis. */
void dispatch_tick(dispatch *d);

/* After each loop iteration: stores finished offsets and applies backpressure. */
void dispatch_after_batch(dispatch *d);

/* Shutdown began: messages still arriving are not taken on (their offsets stay uncommitted). */
void dispatch_stop_intake(dispatch *d);

/* Deliveries in flight and events waiting for Redis. */
size_t dispatch_in_flight(const dispatch *d);
size_t dispatch_waiting(const dispatch *d);

/* Frees every event still in progress (without completing them) and the dispatch. NULL is ignored. */
void dispatch_free(dispatch *d);

#endif
