/*
 * api_metrics — the producer-api's Prometheus series, registered once at start so the request path only
 * touches atomics:
 *   hookd_http_requests_total{route, code}     requests answered, by route and status class
 *   hookd_http_request_seconds{route}          time from the first byte read to the answer queued
 *   hookd_events_accepted_total                events answered 202 (client-id repeats included)
 *   hookd_events_unavailable_total             events answered 503 because Kafka did not acknowledge in time
 *   hookd_token_cache_lookups_total{result}    token_cache answers: hit, or miss (then Redis is asked)
 *   hookd_api_redis_up                         1 when Redis answered the prober's last PING
 *   hookd_kafka_producer_replacements_total    Kafka producers replaced after a fatal error (event_producer.h)
 * Thread contract: api_metrics_record() from any worker thread.
 */
#ifndef HOOKD_API_METRICS_H
#define HOOKD_API_METRICS_H

#include "metrics.h"

#include <stdint.h>

enum api_route { ROUTE_WEBHOOKS, ROUTE_EVENTS, ROUTE_HEALTH, ROUTE_METRICS, ROUTE_OTHER, ROUTE_COUNT };

typedef struct api_metrics {
    metric_series *requests[ROUTE_COUNT][5]; /* [route][status / 100 - 1] */
    metric_series *latency[ROUTE_COUNT];
    metric_series *events_accepted;
    metric_series *events_unavailable;
    metric_series *token_cache_hits;
    metric_series *token_cache_misses;
    metric_series *redis_up;                 /* set by the store pool's prober (store_pool.h) */
    metric_series *producer_replacements;    /* counted by event_producer.c */
} api_metrics;

/* Registers every series in reg. Returns 0, or -1 on allocation failure. */
int api_metrics_init(api_metrics *m, metrics_registry *reg);

/* The route label of a path. */
enum api_route api_metrics_route(const char *path);

/* Counts one answered request. */
void api_metrics_record(api_metrics *m, enum api_route route, int status, int64_t elapsed_us);

#endif
