/*
 * retry — the durable retry stage: failed attempts (sent, or refused: breaker open, backlog full) become retry records on the tier topics
 * ${TOPIC_PREFIX}retry.<tier> or, when nothing is left to try, dead letters on ${TOPIC_PREFIX}dead
 * (common/retry_record.h is the codec, common/retry_policy.h the schedule).
 *
 * It owns one idempotent producer (enable.idempotence, acks=all, no local message timeout) served on the event
 * loop: its main queue signals an eventfd (LOOP_TAG_PRODUCER) and retry_stage_serve() polls it. A hand-off
 * (dispatch_failure_fn) completes — dispatch_handoff_done() — only when Kafka acknowledged the record, so the
 * source message's offset is committed only after the retry (or dead letter) is durable. A write that fails
 * is produced again (every tick) until it is acknowledged or the process stops (then the source message is
 * consumed again by whoever owns its partition next: at least once).
 *
 *   failed attempt k  -> 410 Gone: dead letter (reason "410 Gone") at once
 *                     -> k was the last attempt: dead letter ("gave up after k attempts")
 *                     -> else tier retry_tier_for_attempt(k), attempt k + 1, due now + retry_next_delay_ms
 *                        (jitter; Retry-After of a 429/503 honoured, capped at 1 h)
 *   parked delivery    -> (its webhook backlogged: dispatch.h) the same attempt k, parked n times now, on the
 *                        n-th tier but none over 60 s beyond the first (park_tier), due now + that tier's
 *                        delay; never dead-lettered, not counted per tier (hookd_dispatcher_deliveries_parked_total)
 *
 * At start it creates the tier topics and the dead topic (Admin API, TOPIC_PARTITIONS x TOPIC_REPLICATION;
 * "already exists" is fine), retried every 5 s until the broker answers.
 *
 * Ownership: the stage owns its producer, queues, eventfd and every record not yet acknowledged.
 * Thread contract: the event-loop thread only (librdkafka's log callback excepted: it only logs).
 */
#ifndef HOOKD_RETRY_H
#define HOOKD_RETRY_H

#include "dispatch.h"
#include "dispatcher_metrics.h"
#include "event_loop.h"
#include "retry_policy.h"
#include "retry_record.h"

#include <stddef.h>

typedef struct retry_stage retry_stage;

typedef struct retry_options {
    const char *topic_prefix;   /* TOPIC_PREFIX */
    const retry_policy *policy; /* RETRY_SCHEDULE (copied) */
    int partitions;             /* TOPIC_PARTITIONS */
    int replication;            /* TOPIC_REPLICATION */
} retry_options;

/* Builds the producer (kafka_config_from_env for brokers and passthrough), registers its eventfd on loop when
 * loop is not NULL, and starts creating the topics. Returns NULL with errbuf on failure. */
retry_stage *retry_stage_new(const retry_options *opts, event_loop *loop, dispatcher_metrics *dm, char *errbuf,
                             size_t errlen);

/* Destroys the producer without completing any hand-off still pending. NULL is ignored. */
void retry_stage_free(retry_stage *rs);

/* Tier topic names (count = policy tiers), for the consumer's subscription. */
int retry_stage_tier_count(const retry_stage *rs);
const char *const *retry_stage_tier_topics(const retry_stage *rs);

/* dispatch_failure_fn (ctx = the stage). */
int retry_stage_on_failure(void *ctx, const failed_delivery *failure, dispatch_handoff *handoff);

/* LOOP_TAG_PRODUCER: serves delivery reports. */
void retry_stage_serve(retry_stage *rs);

/* Housekeeping: re-produces failed writes, serves topic creation. */
void retry_stage_tick(retry_stage *rs);

/* Records written and not yet acknowledged. */
size_t retry_stage_pending(const retry_stage *rs);

/* Writes rec to the first tier, due now, with attempt 1 and its history kept (replay). Completion: when
 * retry_stage_pending() drops. Returns 0 or -1. */
int retry_stage_replay(retry_stage *rs, const retry_record *rec);

/* Waits up to timeout_ms for the topics to exist (replay). Returns 0 or -1. */
int retry_stage_wait_topics(retry_stage *rs, int timeout_ms);

/* The dead-letter topic name. */
const char *retry_stage_dead_topic(const retry_stage *rs);

/* Replay command: `dispatcher replay --webhook ID [--since RFC3339] [--until RFC3339]`. Returns the exit code. */
int retry_replay_main(int argc, char **argv);

#endif
