/* api_metrics — see api_metrics.h. */
#include "api_metrics.h"

#include <stdio.h>
#include <string.h>

static const char *const route_names[ROUTE_COUNT] = {"webhooks", "events", "health", "metrics", "other"};

/* Latency buckets in seconds: 0.5 ms to 10 s. */
static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};

int api_metrics_init(api_metrics *m, metrics_registry *reg)
{
    char labels[96];
    memset(m, 0, sizeof *m);
    for (int r = 0; r < ROUTE_COUNT; r++) {
        for (int c = 0; c < 5; c++) {
            snprintf(labels, sizeof labels, "route=\"%s\",code=\"%dxx\"", route_names[r], c + 1);
            m->requests[r][c] = metrics_counter(reg, "hookd_http_requests_total", "HTTP requests answered", labels);
            if (m->requests[r][c] == NULL)
                return -1;
        }
        snprintf(labels, sizeof labels, "route=\"%s\"", route_names[r]);
        m->latency[r] = metrics_histogram(reg, "hookd_http_request_seconds", "HTTP request latency", labels,
                                          latency_bounds, sizeof latency_bounds / sizeof latency_bounds[0]);
        if (m->latency[r] == NULL)
            return -1;
    }
    m->events_accepted = metrics_counter(reg, "hookd_events_accepted_total", "events answered 202", NULL);
    m->events_unavailable = metrics_counter(reg, "hookd_events_unavailable_total",
                                            "events answered 503: Kafka did not acknowledge in time", NULL);
    m->token_cache_hits = metrics_counter(reg, "hookd_token_cache_lookups_total",
                                          "API token lookups answered by the token cache (hit) or Redis (miss)",
                                          "result=\"hit\"");
    m->token_cache_misses = metrics_counter(reg, "hookd_token_cache_lookups_total",
                                            "API token lookups answered by the token cache (hit) or Redis (miss)",
                                            "result=\"miss\"");
    m->redis_up = metrics_gauge(reg, "hookd_api_redis_up",
                                "1 when Redis answered the last PING (every 100 ms), 0 when it refused or did not "
                                "answer (then requests that need it get 503; at once while it hangs)", NULL);
    if (m->redis_up != NULL)
        metric_gauge_set(m->redis_up, 1);
    m->producer_replacements =
        metrics_counter(reg, "hookd_kafka_producer_replacements_total",
                        "Kafka producers replaced after a fatal error (e.g. a producer id refused for want of Write); "
                        "each replacement answered its outstanding events 503",
                        NULL);
    return m->events_accepted != NULL && m->events_unavailable != NULL && m->token_cache_hits != NULL &&
                   m->token_cache_misses != NULL && m->redis_up != NULL && m->producer_replacements != NULL
               ? 0
               : -1;
}

enum api_route api_metrics_route(const char *path)
{
    if (strncmp(path, "/api/v1/webhooks", 16) == 0)
        return ROUTE_WEBHOOKS;
    if (strcmp(path, "/api/v1/events") == 0)
        return ROUTE_EVENTS;
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0)
        return ROUTE_HEALTH;
    if (strcmp(path, "/metrics") == 0)
        return ROUTE_METRICS;
    return ROUTE_OTHER;
}

void api_metrics_record(api_metrics *m, enum api_route route, int status, int64_t elapsed_us)
{
    if (m == NULL)
        return;
    int class_index = status / 100 - 1;
    if (class_index < 0 || class_index > 4)
        class_index = 4;
    metric_counter_add(m->requests[route][class_index], 1);
    metric_histogram_observe(m->latency[route], (double)elapsed_us / 1e6);
}
