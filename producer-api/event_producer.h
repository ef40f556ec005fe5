/*
 * event_producer — writes envelopes to Kafka, one topic per event type, and tells each request when its
 * events are durable.
 *
 * Owns an idempotent librdkafka producer (acks=all), an eventfd that becomes readable when delivery reports are
 * waiting, and one poller thread that, until it succeeds, creates the eight topics through the Admin API. Every
 * message sent with event_producer_send() gets exactly one call of the delivered callback: ok = 1 when the
 * broker acknowledged it, 0 when it failed or was not acknowledged within PRODUCE_TIMEOUT. The callback runs on
 * the thread that serves the reports: normally the one watching event_producer_reports_fd() (an HTTP loop, so
 * a report reaches the request it resumes without a thread of its own in between); the poller serves whatever
 * is left every 100 ms, and flush/destroy serve the rest on the caller's thread.
 *
 * A librdkafka producer that met a fatal error (its idempotent producer id refused, e.g. a user with Write on no
 * topic, or a broken sequence) takes no write ever again. The poller then replaces it with a new one of the same
 * configuration (at its next tick, then 1 s, 2 s, 4 s ... up to 60 s apart while the new ones fail too; a write
 * that succeeds starts the waits afresh), logged as "kafka producer failed for good: replaced by a new one". The
 * old one's queued and in-flight messages are purged: their callbacks say ok = 0, at once. Sends that meet the
 * failed producer before that are refused (-1). The old producer is freed once no thread uses it.
 *
 * Thread contract: send/ready/serve_reports may be called from any thread; create/destroy from the main thread.
 */
#ifndef HOOKD_EVENT_PRODUCER_H
#define HOOKD_EVENT_PRODUCER_H

#include "envelope.h"
#include "metrics.h"

#include <stddef.h>

typedef void (*event_delivered_fn)(void *opaque, int ok);

typedef struct event_producer_options {
    const char *topic_prefix;     /* TOPIC_PREFIX */
    long long produce_timeout_ms; /* PRODUCE_TIMEOUT: message.timeout.ms */
    int partitions;               /* TOPIC_PARTITIONS, for topics it creates */
    int replication;              /* TOPIC_REPLICATION, for topics it creates */
    event_delivered_fn delivered; /* called once per message, on the thread serving reports */
    metric_series *replacements;  /* borrowed, NULL for none: counts producers replaced after a fatal error */
} event_producer_options;

typedef struct event_producer event_producer;

/* Builds the producer from the environment (KAFKA_BROKERS, KAFKA_<PROPERTY>) and starts the poller thread.
 * Kafka need not be reachable. Returns NULL with errbuf filled when the configuration is refused. */
event_producer *event_producer_create(const event_producer_options *options, char *errbuf, size_t errlen);

/* The eventfd (owned by the producer, valid until destroy) that becomes readable when delivery reports wait;
 * watch it for input, edge-triggered or not, and call event_producer_serve_reports() when it is. */
int event_producer_reports_fd(const event_producer *producer);

/* Serves the delivery reports waiting (the delivered callbacks run on this thread). Takes the producer as a void
 * pointer so that it can be handed to an event loop as it is. */
void event_producer_serve_reports(void *producer);

/* An upper bound of the bytes env takes in librdkafka's message.max.bytes check (value, key and framing). */
size_t event_producer_message_size(const envelope *env);

/* 1 when env is small enough for the producer's message.max.bytes, else 0 (librdkafka would refuse it, and every
 * retry of it). *size gets its size as counted against the limit (exact near the limit). */
int event_producer_fits(const event_producer *producer, const envelope *env, size_t *size);

/* The producer's message.max.bytes (librdkafka's default 1,000,000; KAFKA_MESSAGE_MAX_BYTES sets it). */
size_t event_producer_max_message_bytes(const event_producer *producer);

/* Queues env (encoded here) for its topic with key = organization id. Returns 0 when queued (the callback
 * will follow), -1 when it could not even be queued (no callback). */
int event_producer_send(event_producer *producer, const envelope *env, void *opaque);

/* Waits up to timeout_ms for every queued message to be acknowledged or to fail. */
void event_producer_flush(event_producer *producer, int timeout_ms);

/* Returns 1 when a broker answered a metadata request within timeout_ms and the topics exist, else 0. */
int event_producer_ready(event_producer *producer, int timeout_ms);

/* Why event_producer_ready said 0, for /readyz: "authentication failed" or "TLS handshake failed" when librdkafka
 * reported that since a broker last answered, else "unreachable" (kafka_unready_reason). A static string. */
const char *event_producer_unready_reason(event_producer *producer);

/* Flushes (bounded by the produce timeout), stops the poller and frees everything. NULL is ignored. */
void event_producer_destroy(event_producer *producer);

#endif
