/*
 * dispatcher_metrics — the dispatcher's Prometheus series and health flags, registered once at start.
 *
 * Owns the metrics_registry (common/metrics.h) and the series pointers below; the event loop updates them,
 * the metrics server thread renders the registry and reads the health atomics.
 * Thread contract: dm_new/dm_free on the main thread while no other thread runs; everything else any thread.
 */
#ifndef HOOKD_DISPATCHER_METRICS_H
#define HOOKD_DISPATCHER_METRICS_H

#include "metrics.h"

#include <stdatomic.h>

/* Why a delivery attempt ended the way it did (the "outcome" label). */
typedef enum dm_outcome {
    DM_SUCCESS = 0,     /* 2xx */
    DM_HTTP_ERROR,      /* any other status, 3xx included (no redirects are followed) */
    DM_TIMEOUT,         /* DELIVERY_TIMEOUT hit */
    DM_FORBIDDEN,       /* the SSRF guard refused the resolved address */
    DM_NETWORK_ERROR,   /* DNS, connect, TLS or protocol failure */
    DM_BREAKER_OPEN,    /* not sent: the webhook's circuit breaker is open (uses the attempt) */
    DM_BACKLOG_FULL,    /* not sent: the webhook's in-memory queue (PER_WEBHOOK_QUEUE) is full (uses the attempt) */
    DM_OUTCOME_COUNT
} dm_outcome;

/* Status class label: 0 = "none" (no response), 1..5 = "1xx".."5xx". */
#define DM_STATUS_CLASSES 6

typedef struct dispatcher_metrics {
    metrics_registry *reg;                                  /* owned */
    metric_series *events_consumed;                         /* messages taken from Kafka */
    metric_series *fetch_kicks;                             /* stopped Kafka fetchers woken (consumer.c) */
    metric_series *backlog_holds;                           /* partitions held for a backlogged webhook */
    metric_series *deliveries_parked;                       /* deliveries parked for a backlogged webhook */
    metric_series *finished_before_loss;                    /* consumed again after a lost partition came back,
                                                             * already delivered: skipped (consumer.c) */
    metric_series *events_malformed;                        /* envelopes that failed to decode (skipped) */
    metric_series *events_no_subscribers;                   /* events with no active webhook */
    metric_series *deliveries[DM_OUTCOME_COUNT][DM_STATUS_CLASSES]; /* attempts by outcome x status class */
    metric_series *latency;                                 /* attempt latency histogram, seconds */
    metric_series *tls_handshakes[2];                       /* new connections' TLS handshakes: [0] full,
                                                             * [1] resumed a session */
    metric_series *in_flight;                               /* deliveries started and not finished */
    metric_series *queued;                                  /* deliveries waiting in a per-webhook queue */
    metric_series *pending_events;                          /* events waiting for Redis */
    metric_series *paused;                                  /* 1 while consumption is paused */
    metric_series *partitions;                              /* assigned event-topic partitions */
    metric_series *awaiting_handover;                       /* of them, paused until their groups' offsets are read */
    metric_series *retry_partitions;                        /* assigned retry-tier partitions */
    metric_series *cache_hits, *cache_stale_hits, *cache_misses, *cache_flushes, *subscription_changes, *cache_refreshes;
    metric_series *cache_evictions;
    metric_series *redis_up, *kafka_up;
    metric_series *delivery_log_dropped;                    /* delivery-log records not written (redis_worker) */
    metric_series *breakers_open;                           /* webhooks whose circuit breaker is open */
    metric_series *dead_gone, *dead_exhausted;              /* dead-lettered{reason="gone"|"exhausted"} */
    metric_series *retry_too_large;                         /* retry records Kafka can never take */
    metric_series *retry_write_failures;                    /* failed writes of retry records (tried again) */
    metric_series *retry_producer_replacements;             /* retry producers replaced after a fatal error */
    metric_series *retries_dropped;                         /* due retries whose webhook no longer exists */
    metric_series *retry_messages_malformed;                /* retry-tier messages that failed to decode */
    atomic_int redis_ok;                                    /* last Redis call succeeded */
    _Atomic(const char *) redis_failure;                    /* static: why the last Redis call failed, for /readyz
                                                             * while not redis_ok (dm_set_redis_failure) */
    atomic_int kafka_ok;                                    /* a broker is up and the group is joined */
    atomic_int kafka_failure;                               /* while not kafka_ok: a member's last authentication
                                                             * or TLS error, 0 none (kafka_unready_reason) */
    atomic_int stopping;                                    /* shutdown began */
} dispatcher_metrics;

/* Creates the registry and every fixed series. Returns NULL on allocation failure. */
dispatcher_metrics *dm_new(void);

/* Frees the registry. NULL is ignored. */
void dm_free(dispatcher_metrics *dm);

/* The lag gauge for one partition (created on assignment, removed on revoke). */
metric_series *dm_lag_series(dispatcher_metrics *dm, const char *topic, int partition);

/* The hookd_dispatcher_retries_scheduled_total{tier} counter of one tier. */
metric_series *dm_tier_series(dispatcher_metrics *dm, const char *tier_name);

/* Counts one attempt. status is the HTTP status or 0 when there was no response. Attempts that were not sent
 * (DM_BREAKER_OPEN, DM_BACKLOG_FULL) are counted but not observed in the latency histogram. */
void dm_count_attempt(dispatcher_metrics *dm, dm_outcome outcome, long status, double latency_seconds);

/* Counts the TLS handshake of a new connection an attempt opened (resumed: 1 when it resumed a session). */
void dm_count_tls_handshake(dispatcher_metrics *dm, int resumed);

/* Notes why Redis last failed (failure: a static string, redis_conn_failure's; NULL reads as "unreachable"), for
 * /readyz while redis_ok is 0. */
void dm_set_redis_failure(dispatcher_metrics *dm, const char *failure);

/* Why Redis last failed (dm_set_redis_failure): "not checked yet" until the first read's result reaches the loop,
 * "unreachable" when a failure came without a reason. A static string. */
const char *dm_redis_failure(const dispatcher_metrics *dm);

/* The outcome label text. */
const char *dm_outcome_name(dm_outcome outcome);

#endif
