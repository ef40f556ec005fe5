/*
 * producer-api — the HTTP ingress of hookd: the webhooks API on Redis and the events API into Kafka.
 *
 * main() reads the configuration, starts the Kafka producer and the HTTP server, and waits for SIGTERM or
 * SIGINT; then it stops accepting, lets requests in flight finish (flushing Kafka so suspended event requests
 * get their answer), and exits 0. `producer-api token ...` manages API tokens instead.
 */
#include "api_metrics.h"
#include "config.h"
#include "redis_conn.h"
#include "delivery_http.h"
#include "event_producer.h"
#include "events_api.h"
#include "api.h"
#include "http_server.h"
#include "log.h"
#include "store_pool.h"
#include "test_limit.h"
#include "token_cache.h"
#include "token_cli.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <curl/curl.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_REDIS_URL "redis://127.0.0.1:6379/0"

static const config_var producer_api_vars[] = {
    {"LISTEN_ADDR", "0.0.0.0:8080", "address the HTTP API listens on"},
    {"REDIS_URL", DEFAULT_REDIS_URL,
     "Redis holding webhooks and tokens (redis://[[user]:password@]host[:port][/db]; rediss:// for TLS)"},
    REDIS_CONN_CONFIG_VARS
    {"KAFKA_BROKERS", "127.0.0.1:9092", "Kafka bootstrap servers"},
    {"TOPIC_PREFIX", "webhooks.", "prefix of the per-event-type topics"},
    {"TOPIC_PARTITIONS", "12", "partitions of the topics producer-api creates"},
    {"TOPIC_REPLICATION", "1", "replication factor of the topics producer-api creates"},
    {"PRODUCE_TIMEOUT", "5s", "how long an event may wait for the Kafka acknowledgement before 503"},
    {"ALLOW_PRIVATE_TARGETS", "0", "1 allows webhook URLs on private/loopback addresses (tests, local runs only)"},
    {"DELIVERY_TIMEOUT", "10s", "time limit of a test delivery (POST /api/v1/webhooks/{id}/test)"},
    {"RECEIVER_CA_FILE", "", "PEM file of extra CAs trusted for receivers of test deliveries"},
    {"TOKEN_CACHE_REFRESH", "100ms",
     "how often cached API tokens are re-validated; a revoked token stops working within this (0: no cache)"},
    {"HTTP_THREADS", "4", "HTTP event-loop threads (each has its own Redis connection)"},
    {"HTTP_REQUEST_TIMEOUT", "30s",
     "a request (head and body) must arrive within this of its first byte, else 408 and the connection closes"},
    {"SHUTDOWN_GRACE", "20s", "how long SIGTERM waits for requests in flight"},
    {"LOG_LEVEL", "info", "debug, info, warn or error"},
};

static const char usage[] = "usage: producer-api [--help] [--version]\n"
                            "       producer-api token create --org ID | token create --service | token revoke TOKEN";

static void flush_producer(void *arg)
{
    event_producer_flush(arg, 10000);
}

/* http_server's observe hook: a finished request in the HTTP metrics, by route and status. */
static void observe_request(const api_context *api, const char *path, int status, int64_t elapsed_us)
{
    api_metrics_record(api->series, api_metrics_route(path), status, elapsed_us);
}

int main(int argc, char **argv)
{
    /* A peer that closed its end (a Redis over TLS refusing the client's certificate after the handshake) must
     * make a write fail with EPIPE, not kill the process: the token commands too, which run before the server's
     * set-up below (test_redis_tls.py saw `token create` die of SIGPIPE instead of saying why). */
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        config_print_help(stdout, usage, producer_api_vars, sizeof producer_api_vars / sizeof producer_api_vars[0],
                          1);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("producer-api %s\n", HOOKD_VERSION);
        return 0;
    }
    if (log_init("producer-api", config_string("LOG_LEVEL", "info")) != 0)
        fprintf(stderr, "LOG_LEVEL must be debug, info, warn or error; using info\n");
    const char *redis_url = config_string("REDIS_URL", DEFAULT_REDIS_URL);
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return token_cli_main(argc - 1, argv + 1, redis_url);
    if (argc > 1) {
        fprintf(stderr, "%s\n", usage);
        return 2;
    }

    char errbuf[512];
    long partitions = 0, replication = 0, threads = 0;
    long long produce_timeout_ms = 0, grace_ms = 0, delivery_timeout_ms = 0, token_refresh_ms = 0;
    long long request_timeout_ms = 0;
    int allow_private = 0;
    if (config_long("TOPIC_PARTITIONS", 12, 1, 10000, &partitions, errbuf, sizeof errbuf) != 0 ||
        config_long("TOPIC_REPLICATION", 1, 1, 100, &replication, errbuf, sizeof errbuf) != 0 ||
        config_long("HTTP_THREADS", 4, 1, 256, &threads, errbuf, sizeof errbuf) != 0 ||
        config_duration_ms("HTTP_REQUEST_TIMEOUT", "30s", 1000, 3600000, &request_timeout_ms, errbuf,
                           sizeof errbuf) != 0 ||
        config_duration_ms("PRODUCE_TIMEOUT", "5s", 100, 300000, &produce_timeout_ms, errbuf, sizeof errbuf) != 0 ||
        config_duration_ms("TOKEN_CACHE_REFRESH", "100ms", 0, 60000, &token_refresh_ms, errbuf, sizeof errbuf) != 0 ||
        config_duration_ms("SHUTDOWN_GRACE", "20s", 0, 3600000, &grace_ms, errbuf, sizeof errbuf) != 0 ||
        config_duration_ms("DELIVERY_TIMEOUT", "10s", 100, 300000, &delivery_timeout_ms, errbuf, sizeof errbuf) != 0 ||
        config_bool("ALLOW_PRIVATE_TARGETS", 0, &allow_private, errbuf, sizeof errbuf) != 0) {
        log_json(LOG_ERROR, "invalid configuration", "{s:s}", "error", errbuf);
        return 2;
    }

    /* Signals are taken by sigwait() below: block them before any thread starts so every thread inherits it. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);

    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread: test deliveries use libcurl */
    int code = 1;
    api_context api = {0};
    api_metrics series;
    http_server *server = NULL;
    api.metrics = metrics_registry_new();
    if (api.metrics == NULL || api_metrics_init(&series, api.metrics) != 0) {
        log_json(LOG_ERROR, "out of memory", NULL);
        goto done;
    }
    api.series = &series;
    api.allow_private = allow_private;
    api.delivery_timeout_ms = delivery_timeout_ms;
    api.claim_ttl_s = 2 * produce_timeout_ms / 1000 + 5;
    const char *ca_file = config_string("RECEIVER_CA_FILE", NULL);
    if (ca_file != NULL &&
        delivery_http_ca_bundle_open(&api.ca, ca_file, errbuf, sizeof errbuf) != 0) {
        log_json(LOG_ERROR, "invalid configuration", "{s:s}", "error", errbuf);
        goto done;
    }
    if ((api.test_limit = test_limit_new()) == NULL) {
        log_json(LOG_ERROR, "out of memory", NULL);
        goto done;
    }
    api.stores = store_pool_create(redis_url, (int)threads + 1, series.redis_up, errbuf, sizeof errbuf);
    if (api.stores == NULL) {
        log_json(LOG_ERROR, "invalid configuration", "{s:s}", "error", errbuf);
        code = 2; /* REDIS_URL, or the Redis TLS or sentinel settings beside it, as the dispatcher does */
        goto done;
    }
    api.tokens = token_cache_create(redis_url, token_refresh_ms, series.token_cache_hits, series.token_cache_misses,
                                    errbuf, sizeof errbuf);
    if (api.tokens == NULL) {
        log_json(LOG_ERROR, "cannot start the token cache", "{s:s}", "error", errbuf);
        goto done;
    }
    event_producer_options options = {
        .topic_prefix = config_string("TOPIC_PREFIX", "webhooks."),
        .produce_timeout_ms = produce_timeout_ms,
        .partitions = (int)partitions,
        .replication = (int)replication,
        .delivered = events_delivered,
        .replacements = series.producer_replacements,
    };
    api.producer = event_producer_create(&options, errbuf, sizeof errbuf);
    if (api.producer == NULL) {
        log_json(LOG_ERROR, "invalid kafka configuration", "{s:s}", "error", errbuf);
        goto done;
    }
    const char *listen_addr = config_string("LISTEN_ADDR", "0.0.0.0:8080");
    http_server_config http = {
        .listen_addr = listen_addr,
        .addr_setting = "LISTEN_ADDR",
        .threads = (int)threads,
        .request_timeout_ms = request_timeout_ms,
        .api = &api,
        .dispatch = router_dispatch,
        .body_limit = router_body_limit,
        .observe = observe_request,
        /* delivery reports are served on the first loop: no thread of their own between Kafka and the reply */
        .notify_fd = event_producer_reports_fd(api.producer),
        .on_notify = event_producer_serve_reports,
        .notify_arg = api.producer,
    };
    server = http_server_start(&http, errbuf, sizeof errbuf);
    if (server == NULL) {
        log_json(LOG_ERROR, "cannot start the HTTP server", "{s:s}", "error", errbuf);
        goto done;
    }
    log_json(LOG_INFO, "listening", "{s:s, s:i, s:s, s:b}", "addr", listen_addr, "threads", (int)threads, "version",
             HOOKD_VERSION, "allow_private_targets", allow_private);

    int received = 0;
    sigwait(&signals, &received);
    log_json(LOG_INFO, "shutting down", "{s:s, s:I}", "signal", received == SIGTERM ? "SIGTERM" : "SIGINT",
             "grace_ms", (json_int_t)grace_ms);
    http_server_stop(server, grace_ms, flush_producer, api.producer);
    server = NULL;
    code = 0;
done:
    http_server_stop(server, 0, NULL, NULL);
    event_producer_destroy(api.producer);
    token_cache_destroy(api.tokens);
    store_pool_destroy(api.stores);
    test_limit_free(api.test_limit);
    metrics_registry_free(api.metrics);
    delivery_http_ca_bundle_close(&api.ca);
    log_json(LOG_INFO, "stopped", "{s:i}", "exit_code", code);
    return code;
}
