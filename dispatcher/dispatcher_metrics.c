/* dispatcher_metrics — see dispatcher_metrics.h. */
#include "dispatcher_metrics.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const outcome_names[DM_OUTCOME_COUNT] = {"success", "http_error", "timeout", "forbidden",
                                                            "network_error", "breaker_open", "backlog_full"};
static const char *const class_names[DM_STATUS_CLASSES] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

const char *dm_outcome_name(dm_outcome outcome)
{
    return outcome >= 0 && outcome < DM_OUTCOME_COUNT ? outcome_names[outcome] : "unknown";
}

dispatcher_metrics *dm_new(void)
{
    dispatcher_metrics *dm = calloc(1, sizeof *dm);
    if (dm == NULL || (dm->reg = metrics_registry_new()) == NULL) {
        free(dm);
        return NULL;
    }
    metrics_registry *r = dm->reg;
    atomic_init(&dm->redis_failure, "not checked yet"); /* until the first read's result reaches the loop */
    dm->events_consumed = metrics_counter(r, "hookd_dispatcher_events_consumed_total",
                                          "Events (Kafka messages) consumed.", NULL);
    dm->fetch_kicks = metrics_counter(r, "hookd_dispatcher_fetch_kicks_total",
                                      "Times the Kafka fetcher was woken with a seek (its local queue ran dry, or "
                                      "consumption resumed).", NULL);
    dm->backlog_holds = metrics_counter(r, "hookd_dispatcher_backlog_holds_total",
                                        "Times a partition was held at an event for a webhook whose queue was full "
                                        "(PER_WEBHOOK_QUEUE) while its receiver kept answering (without a retry "
                                        "stage only; else the delivery is parked).", NULL);
    dm->deliveries_parked = metrics_counter(r, "hookd_dispatcher_deliveries_parked_total",
                                            "Deliveries parked on a retry tier, without using an attempt, because "
                                            "their webhook's queue was full (PER_WEBHOOK_QUEUE) while its receiver "
                                            "kept answering; a delivery parked again counts again.", NULL);
    dm->finished_before_loss = metrics_counter(r, "hookd_dispatcher_events_finished_before_loss_total",
                                               "Events consumed again after a lost partition was assigned back to "
                                               "this process, which had already finished them: not delivered again.",
                                               NULL);
    dm->events_malformed = metrics_counter(r, "hookd_dispatcher_events_malformed_total",
                                           "Messages whose envelope failed to decode; skipped.", NULL);
    dm->events_no_subscribers = metrics_counter(r, "hookd_dispatcher_events_without_subscribers_total",
                                                "Events no active webhook subscribed to.", NULL);
    for (int o = 0; o < DM_OUTCOME_COUNT; o++) {
        for (int c = 0; c < DM_STATUS_CLASSES; c++) {
            /* only combinations that can happen */
            int has_status = c != 0;
            if ((o == DM_SUCCESS && c != 2) || (o == DM_HTTP_ERROR && (!has_status || c == 2)) ||
                (o > DM_HTTP_ERROR && has_status))
                continue;
            char labels[96];
            snprintf(labels, sizeof labels, "outcome=\"%s\",status_class=\"%s\"", outcome_names[o], class_names[c]);
            dm->deliveries[o][c] = metrics_counter(r, "hookd_dispatcher_deliveries_total",
                                                   "Delivery attempts by outcome and HTTP status class.", labels);
        }
    }
    static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    for (int resumed = 0; resumed < 2; resumed++)
        dm->tls_handshakes[resumed] = metrics_counter(
            r, "hookd_dispatcher_tls_handshakes_total",
            "TLS handshakes of the connections deliveries opened (a kept-alive connection or HTTP/2 stream opens "
            "none): resumed=\"true\" when the receiver resumed an earlier connection's session, \"false\" for a "
            "full handshake (its certificate signed and checked).",
            resumed ? "resumed=\"true\"" : "resumed=\"false\"");
    dm->latency = metrics_histogram(r, "hookd_dispatcher_attempt_duration_seconds",
                                    "Delivery attempt latency, request start to response or failure.", NULL, bounds,
                                    sizeof bounds / sizeof bounds[0]);
    dm->in_flight = metrics_gauge(r, "hookd_dispatcher_deliveries_in_flight", "Deliveries started, not finished.",
                                  NULL);
    dm->queued = metrics_gauge(r, "hookd_dispatcher_deliveries_queued",
                               "Deliveries waiting in a webhook's in-memory queue (PER_WEBHOOK_IN_FLIGHT reached).",
                               NULL);
    dm->pending_events = metrics_gauge(r, "hookd_dispatcher_events_waiting_for_redis",
                                       "Consumed events whose subscribers could not be read yet.", NULL);
    dm->paused = metrics_gauge(r, "hookd_dispatcher_consumption_paused",
                               "1 while partitions are paused (backpressure, Redis outage or shutdown).", NULL);
    dm->partitions = metrics_gauge(r, "hookd_dispatcher_assigned_partitions", "Event-topic partitions assigned to this member.",
                                   NULL);
    dm->awaiting_handover = metrics_gauge(r, "hookd_dispatcher_partitions_awaiting_handover",
                                          "Assigned event-topic partitions paused because the committed offsets of "
                                          "the consumer groups could not be read yet (HANDOVER_TIMEOUT).", NULL);
    dm->retry_partitions = metrics_gauge(r, "hookd_dispatcher_assigned_retry_partitions",
                                         "Retry-tier partitions assigned to this member.", NULL);
    dm->cache_hits = metrics_counter(r, "hookd_dispatcher_subscriber_cache_hits_total", "Subscriber cache hits.",
                                     NULL);
    dm->cache_stale_hits = metrics_counter(r, "hookd_dispatcher_subscriber_cache_stale_hits_total",
                                           "Cached subscriber lists used past SUBSCRIBER_CACHE_MAX_AGE because Redis "
                                           "could not be asked (the list read last, rather than no delivery).", NULL);
    dm->cache_refreshes = metrics_counter(r, "hookd_dispatcher_subscriber_cache_refreshes_total",
                                          "Cached subscriber lists past SUBSCRIBER_CACHE_MAX_AGE read again on the "
                                          "Redis thread (the list in hand is used meanwhile).", NULL);
    dm->cache_misses = metrics_counter(r, "hookd_dispatcher_subscriber_cache_misses_total",
                                       "Subscriber cache misses (one HVALS each).", NULL);
    dm->cache_evictions = metrics_counter(r, "hookd_dispatcher_subscriber_cache_evictions_total",
                                          "Cached subscriber lists dropped to make room (SUBSCRIBER_CACHE_MAX_ENTRIES), "
                                          "the least recently used first.", NULL);
    dm->cache_flushes = metrics_counter(r, "hookd_dispatcher_subscriber_cache_flushes_total",
                                        "Times the whole subscriber cache was dropped (changes that could "
                                        "not be listed, or Redis back after an outage).", NULL);
    dm->subscription_changes = metrics_counter(r, "hookd_dispatcher_subscription_changes_total",
                                               "(organization, event type) subscriber lists dropped from the cache "
                                               "one by one because their webhooks changed.", NULL);
    dm->redis_up = metrics_gauge(r, "hookd_dispatcher_redis_up",
                                 "1 when the last Redis call succeeded (0 too while a call has waited over 250 ms).",
                                 NULL);
    dm->delivery_log_dropped = metrics_counter(r, "hookd_dispatcher_delivery_log_dropped_total",
                                               "Delivery-log records dropped unwritten: more than 50,000 waited "
                                               "for Redis (the oldest go first), or the connection failed during "
                                               "their write.", NULL);
    dm->kafka_up = metrics_gauge(r, "hookd_dispatcher_kafka_up", "1 when a broker is up and the group is joined.",
                                 NULL);
    dm->breakers_open = metrics_gauge(r, "hookd_dispatcher_breakers_open",
                                      "Webhooks whose circuit breaker is open.", NULL);
    dm->dead_gone = metrics_counter(r, "hookd_dispatcher_dead_lettered_total",
                                    "Deliveries written to the dead-letter topic, by reason.", "reason=\"gone\"");
    dm->dead_exhausted = metrics_counter(r, "hookd_dispatcher_dead_lettered_total", NULL, "reason=\"exhausted\"");
    dm->retry_write_failures = metrics_counter(r, "hookd_dispatcher_retry_write_failures_total",
                                               "Writes of retry and dead-letter records that failed (Kafka down, a "
                                               "missing Write ACL): each is tried again, its event held meanwhile.",
                                               NULL);
    dm->retry_producer_replacements =
        metrics_counter(r, "hookd_dispatcher_retry_producer_replacements_total",
                        "Retry producers replaced after a fatal error (e.g. a producer id refused for want of "
                        "Write); the records it held are written again by the new one.", NULL);
    dm->retry_too_large = metrics_counter(r, "hookd_dispatcher_retry_records_too_large_total",
                                          "Retry and dead-letter records larger than the retry producer's "
                                          "message.max.bytes: given up, logged with their webhook (an event "
                                          "written to Kafka past producer-api's limit).", NULL);
    dm->retries_dropped = metrics_counter(r, "hookd_dispatcher_retries_dropped_total",
                                          "Due retries dropped because their webhook no longer exists.", NULL);
    dm->retry_messages_malformed = metrics_counter(r, "hookd_dispatcher_retry_messages_malformed_total",
                                                   "Retry-tier messages that failed to decode; skipped.", NULL);
    metrics_gauge(r, "hookd_dispatcher_consumer_lag", "Messages behind the high watermark, per partition.", NULL);
    metrics_remove(r, metrics_gauge(r, "hookd_dispatcher_consumer_lag", NULL, NULL)); /* family first, no series */
    return dm;
}

void dm_free(dispatcher_metrics *dm)
{
    if (dm == NULL)
        return;
    metrics_registry_free(dm->reg);
    free(dm);
}

metric_series *dm_lag_series(dispatcher_metrics *dm, const char *topic, int partition)
{
    char escaped[256], labels[320];
    if (metrics_escape_label(topic, escaped, sizeof escaped) != 0)
        return NULL;
    snprintf(labels, sizeof labels, "topic=\"%s\",partition=\"%d\"", escaped, partition);
    return metrics_gauge(dm->reg, "hookd_dispatcher_consumer_lag", NULL, labels);
}

metric_series *dm_tier_series(dispatcher_metrics *dm, const char *tier_name)
{
    char escaped[64], labels[96];
    if (metrics_escape_label(tier_name, escaped, sizeof escaped) != 0)
        return NULL;
    snprintf(labels, sizeof labels, "tier=\"%s\"", escaped);
    return metrics_counter(dm->reg, "hookd_dispatcher_retries_scheduled_total",
                           "Retries written to a retry tier, by tier.", labels);
}

void dm_count_tls_handshake(dispatcher_metrics *dm, int resumed)
{
    metric_counter_add(dm->tls_handshakes[resumed ? 1 : 0], 1);
}

void dm_count_attempt(dispatcher_metrics *dm, dm_outcome outcome, long status, double latency_seconds)
{
    int c = status >= 100 && status < 600 ? (int)(status / 100) : 0;
    if (outcome >= 0 && outcome < DM_OUTCOME_COUNT)
        metric_counter_add(dm->deliveries[outcome][c], 1);
    if (outcome != DM_BREAKER_OPEN && outcome != DM_BACKLOG_FULL)
        metric_histogram_observe(dm->latency, latency_seconds);
}

void dm_set_redis_failure(dispatcher_metrics *dm, const char *failure)
{
    atomic_store(&dm->redis_failure, failure);
}

const char *dm_redis_failure(const dispatcher_metrics *dm)
{
    const char *failure = atomic_load(&dm->redis_failure);
    return failure != NULL ? failure : "unreachable";
}
