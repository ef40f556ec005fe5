/*
 * dispatch — turns consumed events (and due retries) into deliveries and finished deliveries into stored offsets.
 *
 *   message -> consumer_track -> envelope_decode (malformed: log, count, complete) -> subscriber_cache_get
 *     (not cached and Redis down: the event waits in a FIFO, looked up again at each tick; the events of cached
 *     organizations go on meanwhile, and waiting events count toward max_in_flight) -> body built once -> one
 *     delivery per active webhook (a retry: to its one webhook; gone: dropped and counted) -> per-webhook isolation
 *     (breaker.h: at the in-flight cap -> waits in the webhook's FIFO and starts when one of its attempts
 *     ends; FIFO full or breaker open -> a failed attempt that is not sent; *backlogged* (a full FIFO of a
 *     receiver that keeps answering, slower than its traffic) -> *parked*, below) -> each attempt ends in
 *     on_attempt_done: one JSON log line, metrics, a delivery-log record, and for a
 *     failure the failure hook (the retry stage, asynchronous) -> when the event's last delivery is done or
 *     durably handed on, consumer_complete(offset).
 *
 * Parking: with a retry stage, and while less than half of max_in_flight is taken, a delivery whose webhook is
 * behind its traffic (breaker_behind: backlogged, its FIFO not empty for a second) is not queued behind its FIFO: it is handed to the failure hook as parked
 * (failed_delivery.parked), which writes it to a retry tier without using its attempt, and the event's other
 * deliveries go out at once. When it falls due and the webhook is still backlogged it is parked again. So a slow
 * receiver takes at most its FIFO of max_in_flight and holds back nothing else, not even the organizations that
 * share its partition. Otherwise (no retry stage; the dispatcher is itself the bottleneck, where parking would
 * only move deliveries to Kafka and back; or a webhook only catching up from a burst, which a parked delivery's
 * tier delay would cost more than a hold of under a second) a fresh event for a backlogged webhook is put back
 * into Kafka and its partition held until the FIFO is half empty (a partition hold).
 *
 * Backpressure: while deliveries in flight plus deliveries queued plus events waiting for Redis are at
 * max_in_flight the consumers take no message (dispatch_has_room, checked per message); the paused gauge reads 1 from the limit until back to half.
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
#include "envelope.h"
#include "retry_record.h"
#include "subscriber_cache.h"
#include "webhook_store.h"

#include <stddef.h>

/* A failed attempt (sent, or refused without sending: breaker open, receiver backlog full), or a parked delivery
 * (not attempted: its webhook is backlogged), as the retry stage receives it. Every pointer is valid only during
 * the hook call; the hook copies what it keeps. */
typedef struct failed_delivery {
    const envelope *env;           /* the event */
    long long webhook_id;
    const char *url;
    int attempt;                   /* the attempt that failed */
    const retry_record *history;   /* the retry record the delivery came from (earlier attempts), or NULL */
    const delivery_result *result; /* how it failed; NULL when parked */
    int quiet;                     /* a refusal summed in a "deliveries refused" line instead of logged on its own:
                                    * the hook logs nothing per delivery either (its return value tells whether
                                    * the summary counts it as dead-lettered) */
    int parked;                    /* not a failure: attempt is the one still to make, wait on the first tier
                                    * (never dead-lettered) */
} failed_delivery;

/* The token of one hand-off; the hook completes it with dispatch_handoff_done() once the delivery is durable
 * (its retry or dead-letter record acknowledged by Kafka). Until then the event's offset does not complete. */
typedef struct dispatch_handoff dispatch_handoff;

/* The failure hook: NULL means a failed attempt is only logged and counted. It may complete the hand-off
 * inside the call or later, exactly once. Returns 1 when the delivery goes to the dead-letter topic (counted in
 * the refusal log for a quiet refusal), 0 otherwise. */
typedef int (*dispatch_failure_fn)(void *ctx, const failed_delivery *failure, dispatch_handoff *handoff);

/* Completes a hand-off (the event's offset may then complete). */
void dispatch_handoff_done(dispatch_handoff *handoff);

typedef struct dispatch dispatch;

typedef struct dispatch_options {
    long max_in_flight;               /* MAX_IN_FLIGHT */
    dispatch_failure_fn on_failure;   /* may be NULL */
    void *failure_ctx;
    int has_retries;                  /* there is a retry tier (else any delivery may be a breaker probe) */
    long per_webhook_in_flight;       /* PER_WEBHOOK_IN_FLIGHT (>= 1) */
    long per_webhook_queue;           /* PER_WEBHOOK_QUEUE: deliveries one webhook may have waiting (>= 0) */
    long breaker_failures;            /* BREAKER_FAILURES (0: no breaker) */
    webhook_log_buffer *delivery_log; /* where attempts are recorded for the delivery log, borrowed (the caller
                                       * hands its records to Redis, redis_worker); NULL: none */
    int log_every_attempt;            /* LOG_ATTEMPTS=all: a "delivery attempt" line for successes and for every
                                       * refusal too (else refusals are summed per webhook: refusal_log.h) */
} dispatch_options;

/* Creates the dispatch. The engine and consumer are attached afterwards (they call back into it). */
dispatch *dispatch_new(const dispatch_options *opts, subscriber_cache *cache, dispatcher_metrics *dm);

/* Borrowed collaborators, set once before the loop runs. retry_consumer (the retry-tier consumer, may be NULL)
 * shares the pause reasons and offset storing of c. */
void dispatch_attach(dispatch *d, consumer *c, consumer *retry_consumer, delivery_engine *eng);

/* consumer_message_fn: one Kafka message. Partitions of slot >= EVENT_TYPE_COUNT are retry tiers: their
 * messages are retry records, delivered when due (a message not due yet holds its partition). */
void dispatch_on_message(void *ctx, partition_state *ps, const rd_kafka_message_t *msg);

/* consumer_room_fn: 1 while deliveries in flight plus queued plus events waiting for Redis are below max_in_flight (the consumers take no
 * message otherwise, so the bound holds within one message's fan-out, not one fetch). */
int dispatch_has_room(void *ctx);

/* delivery_done_fn: one finished attempt. */
void dispatch_on_attempt_done(void *ctx, const delivery_request *req, const delivery_result *res);

/* Periodic work (every tick): retries events waiting for Redis, sheds stalled webhooks' queues, writes the
 * "deliveries refused" lines whose interval has run. */
void dispatch_tick(dispatch *d);

/* Routes the events waiting for their subscribers whose lists can be had now (in order; the others keep waiting).
 * Part of dispatch_tick; also called when the Redis thread has read lists. */
void dispatch_route_waiting(dispatch *d);

/* Writes the refusals counted since their webhooks' last "deliveries refused" line (at shutdown). */
void dispatch_log_refusals(dispatch *d);

/* After each loop iteration: stores finished offsets and reports backpressure (gauge, log). Returns 1 when the
 * backpressure state ended (poll the consumers then). */
int dispatch_after_batch(dispatch *d);

/* Shutdown began: messages still arriving are not taken on (their offsets stay uncommitted). */
void dispatch_stop_intake(dispatch *d);

/* Deliveries in flight or waiting in a per-webhook queue, hand-offs not yet durable, and events waiting for
 * Redis. */
size_t dispatch_in_flight(const dispatch *d);
size_t dispatch_handoffs(const dispatch *d);
size_t dispatch_waiting(const dispatch *d);

/* Frees every event still in progress (without completing them) and the dispatch. NULL is ignored. */
void dispatch_free(dispatch *d);

#endif
