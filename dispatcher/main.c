/*
 * bin/dispatcher — consumes the event topics and delivers every event to the webhooks subscribed to it.
 *
 * main() owns every module and the main event loop; see docs/DESIGN.md ("Delivery") and the module headers:
 * event_loop (epoll), consumer (Kafka), subscriber_cache (Redis), delivery (hands attempts to the
 * delivery_worker threads, each with its own libcurl multi), dispatch (the glue and the offset bookkeeping),
 * metrics_server (HTTP on its own thread).
 */
#include "config.h"
#include "redis_conn.h"
#include "consumer.h"
#include "delivery.h"
#include "dispatch.h"
#include "dispatcher_metrics.h"
#include "event_loop.h"
#include "kafka_config.h"
#include "log.h"
#include "metrics_server.h"
#include "retry.h"
#include "redis_worker.h"
#include "retry_policy.h"
#include "subscriber_cache.h"
#include "timeutil.h"
#include "webhook_store.h"

#include <curl/curl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define TICK_MS 200          /* housekeeping: subscriber version poll, Redis retries */
#define DRAIN_BATCH 5000     /* messages served per consumer per loop pass, at most */
/* Work per consumer per loop pass, at most. A retry tier falling due in one burst (2,000+ records refused by an
 * open breaker at ~70 us each) held the loop for 130-180 ms without it, and with it every fresh event consumed
 * behind the burst (docs/BENCHMARKS.md, isolation row, 2026-11-30). */
#define DRAIN_BUDGET_US 2000
/* The retry tiers' share of a pass is smaller: their records are due seconds after they were written, a fresh
 * event consumed meanwhile waits for the rest of their share. */
#define RETRY_DRAIN_BUDGET_US 500

static const config_var vars[] = {
    {"KAFKA_BROKERS", KAFKA_DEFAULT_BROKERS, "Kafka bootstrap servers"},
    {"KAFKA_GROUP", "hookd-dispatcher",
     "consumer group id; with CONSUMER_PER_TOPIC=1 each event topic's consumers are group <KAFKA_GROUP>.<event_type>, "
     "the retry tiers' <KAFKA_GROUP>.retry"},
    {"TOPIC_PREFIX", "webhooks.", "topic name prefix; topics are <prefix><event_type>"},
    {"CONSUMER_PER_TOPIC", "1",
     "1: a Kafka consumer (group member) per event topic, so a fetch names one topic's partitions; 0: one for all"},
    {"HANDOVER_TIMEOUT", "3s",
     "how long a partition assignment waits for the committed offsets of both consumer layouts' groups; not read by "
     "then, the partitions stay paused and the read is tried again after 1 s, 2 s, 4 s ... (at most 30 s)"},
    {"REDIS_URL", "redis://127.0.0.1:6379/0",
     "Redis holding the webhook registrations (redis://[[user]:password@]host[:port][/db]; rediss:// for TLS)"},
    REDIS_CONN_CONFIG_VARS
    {"RECEIVER_CA_FILE", "", "PEM file of extra CAs trusted for receivers, added to the system bundle"},
    {"DELIVERY_TIMEOUT", "10s", "time limit of one delivery attempt (e.g. 500ms, 10s)"},
    {"DELIVERY_THREADS", "2", "threads running the HTTP deliveries (1-64; Kafka and dispatch stay on the main thread)"},
    {"MAX_IN_FLIGHT", "1000",
     "deliveries in flight or queued, plus events waiting for Redis, before consumption pauses (resumes at half)"},
    {"SUBSCRIBER_CACHE_MAX_AGE", SUBSCRIBER_CACHE_DEFAULT_MAX_AGE,
     "age after which a cached subscriber list is read from Redis again (on the Redis thread; the list in hand is used "
     "meanwhile), though no change was seen; while Redis cannot answer, the list read last is used still"},
    {"SUBSCRIBER_CACHE_MAX_ENTRIES", "200000",
     "(organization, event type) subscriber lists kept in memory (~120 bytes each); past it the least recently used "
     "one goes"},
    {"SHUTDOWN_GRACE", "20s", "on SIGTERM, time allowed for in-flight deliveries to finish"},
    {"ALLOW_PRIVATE_TARGETS", "0", "1 allows private/loopback receiver addresses (tests, local runs only)"},
    {"RETRY_SCHEDULE", RETRY_DEFAULT_SCHEDULE,
     "delays before each retry (comma-separated durations; \"none\": no retries); each distinct delay is a tier topic"},
    {"TOPIC_PARTITIONS", "12", "partitions of the retry tier and dead-letter topics the dispatcher creates"},
    {"TOPIC_REPLICATION", "1", "replication factor of the retry tier and dead-letter topics"},
    {"PER_WEBHOOK_IN_FLIGHT", "16", "attempts one webhook may have running; more wait in its in-memory queue"},
    {"PER_WEBHOOK_QUEUE", "200",
     "deliveries a stalled webhook (no attempt succeeded for 2 s) may keep waiting; beyond it they fail their "
     "attempt; a slow one's further deliveries are parked on a retry tier without using an attempt"},
    {"BREAKER_FAILURES", "10", "consecutive failed attempts that open a webhook's circuit breaker (0: never)"},
    {"METRICS_ADDR", "0.0.0.0:9090", "listen address of /healthz, /readyz and /metrics"},
    {"LOG_LEVEL", "info", "debug, info, warn or error"},
    {"LOG_ATTEMPTS", "failures",
     "which delivery attempts get a \"delivery attempt\" log line: failures (failed; refused ones summed per webhook "
     "every 10 s) or all (successes and every refusal too)"},
};

/* Settings read from the environment. */
typedef struct settings {
    const char *group, *topic_prefix, *redis_url, *ca_file, *metrics_addr;
    long long timeout_ms, grace_ms, cache_max_age_ms, handover_timeout_ms;
    long max_in_flight, cache_max_entries, delivery_threads, partitions, replication, per_webhook_in_flight, per_webhook_queue,
        breaker_failures;
    int allow_private;
    int consumer_per_topic;
    int log_every_attempt; /* LOG_ATTEMPTS=all */
    retry_policy policy;
} settings;

static int read_settings(settings *s, char *err, size_t errlen)
{
    s->group = config_string("KAFKA_GROUP", "hookd-dispatcher");
    s->topic_prefix = config_string("TOPIC_PREFIX", "webhooks.");
    s->redis_url = config_string("REDIS_URL", "redis://127.0.0.1:6379/0");
    s->ca_file = config_string("RECEIVER_CA_FILE", NULL);
    s->metrics_addr = config_string("METRICS_ADDR", "0.0.0.0:9090");
    if (config_duration_ms("DELIVERY_TIMEOUT", "10s", 1, 3600000, &s->timeout_ms, err, errlen) != 0 ||
        config_duration_ms("SHUTDOWN_GRACE", "20s", 0, 3600000, &s->grace_ms, err, errlen) != 0 ||
        config_duration_ms("HANDOVER_TIMEOUT", "3s", 0, 600000, &s->handover_timeout_ms, err, errlen) != 0 ||
        config_duration_ms("SUBSCRIBER_CACHE_MAX_AGE", SUBSCRIBER_CACHE_DEFAULT_MAX_AGE, 100, 86400000,
                           &s->cache_max_age_ms, err, errlen) != 0 ||
        config_long("MAX_IN_FLIGHT", 1000, 1, 10000000, &s->max_in_flight, err, errlen) != 0 ||
        config_long("SUBSCRIBER_CACHE_MAX_ENTRIES", SUBSCRIBER_CACHE_DEFAULT_MAX_ENTRIES, 1, 100000000,
                    &s->cache_max_entries, err, errlen) != 0 ||
        config_long("DELIVERY_THREADS", 2, 1, DELIVERY_THREADS_MAX, &s->delivery_threads, err, errlen) != 0 ||
        config_bool("ALLOW_PRIVATE_TARGETS", 0, &s->allow_private, err, errlen) != 0 ||
        config_bool("CONSUMER_PER_TOPIC", 1, &s->consumer_per_topic, err, errlen) != 0 ||
        config_long("TOPIC_PARTITIONS", 12, 1, 10000, &s->partitions, err, errlen) != 0 ||
        config_long("TOPIC_REPLICATION", 1, 1, 100, &s->replication, err, errlen) != 0 ||
        config_long("PER_WEBHOOK_IN_FLIGHT", 16, 1, 1000000, &s->per_webhook_in_flight, err, errlen) != 0 ||
        config_long("PER_WEBHOOK_QUEUE", 200, 0, 10000000, &s->per_webhook_queue, err, errlen) != 0 ||
        config_long("BREAKER_FAILURES", 10, 0, 1000000, &s->breaker_failures, err, errlen) != 0 ||
        retry_policy_parse(config_string("RETRY_SCHEDULE", RETRY_DEFAULT_SCHEDULE), &s->policy, err, errlen) != 0)
        return -1;
    const char *log_attempts = config_string("LOG_ATTEMPTS", "failures");
    if (strcmp(log_attempts, "failures") != 0 && strcmp(log_attempts, "all") != 0) {
        snprintf(err, errlen, "LOG_ATTEMPTS: must be failures or all");
        return -1;
    }
    s->log_every_attempt = strcmp(log_attempts, "all") == 0;
    if (s->policy.tiers > CONSUMER_MAX_EXTRA) {
        snprintf(err, errlen, "RETRY_SCHEDULE: at most %d distinct delays", CONSUMER_MAX_EXTRA);
        return -1;
    }
    return 0;
}

/* Everything main() owns, torn down in reverse order. */
typedef struct app {
    settings cfg;
    dispatcher_metrics *dm;
    event_loop *loop;
    webhook_store *store;          /* the loop's connection: the version read at start-up (subscriber_cache_poll) */
    redis_worker *redis;           /* the version reads and delivery-log writes, on a thread of their own */
    subscriber_refresh *refreshed; /* REDIS_WORKER_REFRESH_QUEUE entries: where the lists read by redis are taken */
    webhook_log_buffer delivery_log; /* attempts recorded since the last tick, handed to redis at each tick */
    uint64_t log_dropped_seen;     /* redis_worker_log_dropped() as last added to the metric */
    subscriber_cache *cache;
    dispatch *dispatch;
    delivery_engine *engine;
    retry_stage *retry;
    consumer *consumer;
    consumer *retry_consumer;  /* group KAFKA_GROUP.retry, the tier topics; NULL without tiers */
    char retry_group[256];
    metrics_server *http;
    int signal_fd, tick_fd;
} app;

static void app_free(app *a)
{
    metrics_server_stop(a->http);
    retry_stage_free(a->retry); /* before the dispatch: pending hand-offs are dropped, not completed */
    delivery_engine_free(a->engine);
    dispatch_free(a->dispatch);
    subscriber_cache_free(a->cache);
    redis_worker_stop(a->redis); /* writes what was handed over last */
    free(a->refreshed);
    webhook_log_buffer_free(&a->delivery_log);
    webhook_store_close(a->store);
    if (a->tick_fd >= 0)
        close(a->tick_fd);
    if (a->signal_fd >= 0)
        close(a->signal_fd);
    event_loop_free(a->loop);
    dm_free(a->dm);
}

/* Applies what the Redis thread read since the last call (changes, then the subscriber lists read with them), or
 * marks Redis down while a call of it is stalled. */
static void redis_take_results(app *a)
{
    int ok = 0;
    const char *failure = NULL;
    subscription_changes changes = {0};
    size_t refreshed_count = 0;
    int64_t done_ms = 0, now = time_monotonic_ms();
    if (redis_worker_poll_result(a->redis, &ok, &failure, &changes, &done_ms, a->refreshed, &refreshed_count)) {
        if (!ok)
            dm_set_redis_failure(a->dm, failure);
        subscriber_cache_apply_changes(a->cache, ok, &changes, done_ms);
        subscription_changes_free(&changes);
        subscriber_cache_apply_refreshes(a->cache, a->refreshed, refreshed_count); /* after the changes read with them */
    } else if (redis_worker_stalled(a->redis, now)) {
        dm_set_redis_failure(a->dm, "not answering");
        subscriber_cache_note_stall(a->cache);
    }
}

/* The tick's Redis part, none of which waits for Redis: takes the Redis thread's results and hands it the
 * delivery-log records of the last tick. */
static void redis_tick(app *a)
{
    redis_take_results(a);
    redis_worker_hand_log(a->redis, &a->delivery_log);
    uint64_t dropped = redis_worker_log_dropped(a->redis);
    if (dropped > a->log_dropped_seen) {
        metric_counter_add(a->dm->delivery_log_dropped, dropped - a->log_dropped_seen);
        a->log_dropped_seen = dropped;
    }
}

/* Runs the loop until shutdown completes. Returns the exit code. */
static int run(app *a)
{
    loop_event evs[256];
    int kafka_more = 0, retry_more = 0, stopping = 0;
    int64_t deadline = 0;
    for (;;) {
        /* with no room (MAX_IN_FLIGHT reached) fetched messages wait: sleep until a delivery ends */
        int room = dispatch_has_room(a->dispatch);
        int n = event_loop_wait(a->loop, evs, 256, (kafka_more || retry_more) && room ? 0 : 1000);
        if (n < 0) {
            log_json(LOG_ERROR, "epoll_wait failed", NULL);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            switch (evs[i].tag) {
            case LOOP_TAG_DELIVERY_DONE:
                delivery_on_done(a->engine);
                break;
            case LOOP_TAG_CURL_SOCKET:
            case LOOP_TAG_CURL_TIMER:
            case LOOP_TAG_DELIVERY_INBOX:
                break; /* registered on the delivery workers' loops only */
            case LOOP_TAG_KAFKA:
                kafka_more = 1;
                break;
            case LOOP_TAG_KAFKA_RETRY:
                retry_more = 1;
                break;
            case LOOP_TAG_REDIS_READY: /* subscriber lists read: events may be waiting for them */
                loop_fd_drain(redis_worker_ready_fd(a->redis));
                redis_take_results(a);
                dispatch_route_waiting(a->dispatch);
                break;
            case LOOP_TAG_TICK:
                loop_fd_drain(a->tick_fd);
                redis_tick(a);
                dispatch_tick(a->dispatch);
                retry_stage_tick(a->retry);
                break;
            case LOOP_TAG_HOLD:
                consumer_on_hold_timer(a->consumer);
                if (a->retry_consumer != NULL)
                    consumer_on_hold_timer(a->retry_consumer);
                break;
            case LOOP_TAG_PRODUCER:
                retry_stage_serve(a->retry);
                break;
            case LOOP_TAG_SIGNAL: {
                int sig;
                while ((sig = loop_signalfd_read(a->signal_fd)) != 0) {
                    if (stopping) {
                        log_json(LOG_WARN, "second signal: stopping now", "{s:i}", "signal", sig);
                        deadline = 0;
                        continue;
                    }
                    stopping = 1;
                    deadline = time_monotonic_ms() + a->cfg.grace_ms;
                    atomic_store(&a->dm->stopping, 1);
                    dispatch_stop_intake(a->dispatch);
                    consumer_set_paused(a->consumer, CONSUMER_PAUSE_SHUTDOWN, 1);
                    if (a->retry_consumer != NULL)
                        consumer_set_paused(a->retry_consumer, CONSUMER_PAUSE_SHUTDOWN, 1);
                    log_json(LOG_INFO, "shutting down", "{s:i, s:I, s:I}", "signal", sig, "in_flight",
                             (json_int_t)dispatch_in_flight(a->dispatch), "grace_ms", (json_int_t)a->cfg.grace_ms);
                }
                break;
            }
            }
        }
        if (kafka_more) {
            kafka_more = consumer_drain(a->consumer, DRAIN_BATCH, DRAIN_BUDGET_US);
            /* fresh events' deliveries leave now, not after this pass's retry records (up to DRAIN_BUDGET_US more:
             * the retry tiers of a receiver that is down bring back about as many records as the event topics) */
            delivery_flush(a->engine);
        }
        if (retry_more)
            retry_more =
                a->retry_consumer != NULL && consumer_drain(a->retry_consumer, DRAIN_BATCH, RETRY_DRAIN_BUDGET_US);
        if (dispatch_after_batch(a->dispatch))
            kafka_more = retry_more = 1;
        delivery_flush(a->engine); /* attempts started in this pass go to the delivery threads */
        log_flush();               /* this pass's log lines, in one write */
        if (stopping) {
            size_t left = dispatch_in_flight(a->dispatch) + dispatch_handoffs(a->dispatch);
            if (left == 0)
                break;
            if (time_monotonic_ms() >= deadline) {
                log_json(LOG_WARN, "shutdown grace expired; abandoning deliveries (they will be redelivered)",
                         "{s:I}", "in_flight", (json_int_t)left);
                break;
            }
        }
    }
    if (dispatch_waiting(a->dispatch) > 0)
        log_json(LOG_WARN, "events still waiting for Redis at shutdown (they will be redelivered)", "{s:I}",
                 "events", (json_int_t)dispatch_waiting(a->dispatch));
    dispatch_after_batch(a->dispatch);
    dispatch_log_refusals(a->dispatch); /* the refusals counted since their last "deliveries refused" line */
    redis_worker_hand_log(a->redis, &a->delivery_log); /* written as the Redis thread stops (app_free) */
    return 0;
}

/* glibc gives each thread that allocates an arena of its own, up to eight per core, and an arena keeps the high
 * mark of what its threads held. The dispatcher's allocating threads are the delivery threads and the broker
 * thread of each of its nine librdkafka clients, which parses every fetch response: with a backlog on every event
 * topic the arenas held 130 MiB, 104 MiB with as many arenas as delivery threads (at least two), and the dispatch
 * rows were not slower (docs/BENCHMARKS.md, 2026-12-07 06:23). MALLOC_ARENA_MAX, when set, is left to glibc. */
static void limit_malloc_arenas(long delivery_threads)
{
    if (getenv("MALLOC_ARENA_MAX") == NULL)
        mallopt(M_ARENA_MAX, delivery_threads > 2 ? (int)delivery_threads : 2);
}

int main(int argc, char **argv)
{
    /* a peer that closed its end makes a write fail with EPIPE, not kill the process (the replay command too,
     * which writes to Redis and Kafka without the event loop that also sets this) */
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "replay") == 0) {
        if (log_init("dispatcher", config_string("LOG_LEVEL", "info")) != 0)
            log_json(LOG_WARN, "LOG_LEVEL not recognised; using info", NULL);
        return retry_replay_main(argc - 2, argv + 2);
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            config_print_help(stdout,
                              "usage: dispatcher [--help] [--version]\n"
                              "       dispatcher replay --webhook ID [--since RFC3339] [--until RFC3339]\n\n"
                              "Consumes the hookd event topics and delivers each event to its webhooks; failed\n"
                              "deliveries are retried through the retry tier topics, then dead-lettered.\n"
                              "replay re-sends a webhook's dead letters (optionally dead-lettered in a window).",
                              vars, sizeof vars / sizeof vars[0], 1);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("dispatcher (hookd) %s\n", HOOKD_VERSION);
            return 0;
        }
        fprintf(stderr, "dispatcher: unknown argument %s (try --help)\n", argv[i]);
        return 2;
    }
    if (log_init("dispatcher", config_string("LOG_LEVEL", "info")) != 0)
        log_json(LOG_WARN, "LOG_LEVEL not recognised; using info", NULL);

    app a;
    memset(&a, 0, sizeof a);
    a.signal_fd = a.tick_fd = -1;
    char err[512];
    if (read_settings(&a.cfg, err, sizeof err) != 0) {
        log_json(LOG_ERROR, "invalid configuration", "{s:s}", "error", err);
        return 2;
    }
    limit_malloc_arenas(a.cfg.delivery_threads); /* before any thread */
    a.signal_fd = loop_signalfd_new(); /* before any thread: every thread inherits the blocked mask */
    if (a.signal_fd < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_json(LOG_ERROR, "start-up failed (signalfd / curl_global_init)", NULL);
        return 1;
    }
    int rc = 1;
    a.dm = dm_new();
    a.loop = event_loop_new();
    a.tick_fd = loop_timerfd_new();
    if (a.dm == NULL || a.loop == NULL || a.tick_fd < 0 ||
        event_loop_add(a.loop, a.signal_fd, EPOLLIN, LOOP_TAG_SIGNAL) != 0 ||
        event_loop_add(a.loop, a.tick_fd, EPOLLIN, LOOP_TAG_TICK) != 0 ||
        loop_timerfd_arm(a.tick_fd, TICK_MS, TICK_MS) != 0) {
        log_json(LOG_ERROR, "start-up failed (event loop)", NULL);
        goto out;
    }
    if ((a.store = webhook_store_open(a.cfg.redis_url, err, sizeof err)) == NULL) {
        log_json(LOG_ERROR, "invalid REDIS_URL", "{s:s}", "error", err);
        rc = 2;
        goto out;
    }
    if ((a.redis = redis_worker_start(a.cfg.redis_url, err, sizeof err)) == NULL) {
        log_json(LOG_ERROR, "redis thread", "{s:s}", "error", err);
        goto out;
    }
    a.refreshed = calloc(REDIS_WORKER_REFRESH_QUEUE, sizeof *a.refreshed);
    if (a.refreshed == NULL ||
        event_loop_add(a.loop, redis_worker_ready_fd(a.redis), EPOLLIN, LOOP_TAG_REDIS_READY) != 0) {
        log_json(LOG_ERROR, "start-up failed (redis thread's eventfd)", NULL);
        goto out;
    }
    a.cache = subscriber_cache_new(a.store, a.dm, a.cfg.cache_max_age_ms, (size_t)a.cfg.cache_max_entries,
                                   redis_worker_refresh, a.redis);
    retry_options ropts = {a.cfg.topic_prefix, &a.cfg.policy, (int)a.cfg.partitions, (int)a.cfg.replication};
    if ((a.retry = retry_stage_new(&ropts, a.loop, a.dm, err, sizeof err)) == NULL) {
        log_json(LOG_ERROR, "retry producer", "{s:s}", "error", err);
        rc = 2;
        goto out;
    }
    dispatch_options dopts = {a.cfg.max_in_flight, retry_stage_on_failure, a.retry, a.cfg.policy.tiers > 0,
                              a.cfg.per_webhook_in_flight, a.cfg.per_webhook_queue, a.cfg.breaker_failures,
                              &a.delivery_log, a.cfg.log_every_attempt};
    a.dispatch = dispatch_new(&dopts, a.cache, a.dm);
    if (a.cache == NULL || a.dispatch == NULL)
        goto out;
    delivery_options eopts = {a.cfg.timeout_ms, a.cfg.allow_private, a.cfg.ca_file, (unsigned)a.cfg.delivery_threads};
    if ((a.engine = delivery_engine_new(a.loop, &eopts, dispatch_on_attempt_done, a.dispatch, err, sizeof err)) ==
        NULL) {
        log_json(LOG_ERROR, "delivery engine", "{s:s}", "error", err);
        rc = 2;
        goto out;
    }
    if ((a.http = metrics_server_start(a.cfg.metrics_addr, a.dm, err, sizeof err)) == NULL) {
        log_json(LOG_ERROR, "metrics server", "{s:s}", "error", err);
        goto out;
    }
    consumer_options copts = {a.cfg.group, a.cfg.topic_prefix, NULL, 0, 0, a.cfg.consumer_per_topic,
                              (int)a.cfg.handover_timeout_ms};
    if ((a.consumer = consumer_new(&copts, a.loop, a.dm, dispatch_on_message, a.dispatch, err, sizeof err)) ==
        NULL) {
        log_json(LOG_ERROR, "kafka consumer", "{s:s}", "error", err);
        rc = 2;
        goto out;
    }
    /* The tiers get their own group: in one group with the event topics, the sticky assignor balances only the
     * total partition count, and a second replica could end up with retry partitions only. */
    if (retry_stage_tier_count(a.retry) > 0) {
        snprintf(a.retry_group, sizeof a.retry_group, "%s.retry", a.cfg.group);
        consumer_options ropts2 = {a.retry_group, a.cfg.topic_prefix, retry_stage_tier_topics(a.retry),
                                   retry_stage_tier_count(a.retry), 1, 0, 0};
        if ((a.retry_consumer = consumer_new(&ropts2, a.loop, a.dm, dispatch_on_message, a.dispatch, err,
                                             sizeof err)) == NULL) {
            log_json(LOG_ERROR, "kafka retry consumer", "{s:s}", "error", err);
            rc = 2;
            goto out;
        }
    }
    dispatch_attach(a.dispatch, a.consumer, a.retry_consumer, a.engine);
    consumer_set_room(a.consumer, dispatch_has_room);
    if (a.retry_consumer != NULL)
        consumer_set_room(a.retry_consumer, dispatch_has_room);
    if (subscriber_cache_poll(a.cache) != 0)
        dm_set_redis_failure(a.dm, redis_conn_failure(webhook_store_conn(a.store)));
    log_json(LOG_INFO, "dispatcher started", "{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:i, s:I, s:I, s:I, s:s}",
             "version",
             HOOKD_VERSION, "group", a.cfg.group, "topic_prefix", a.cfg.topic_prefix, "metrics_addr",
             a.cfg.metrics_addr, "max_in_flight", (json_int_t)a.cfg.max_in_flight, "delivery_threads",
             (json_int_t)a.cfg.delivery_threads, "delivery_timeout_ms",
             (json_int_t)a.cfg.timeout_ms, "allow_private_targets", a.cfg.allow_private, "retry_tiers",
             a.cfg.policy.tiers, "per_webhook_in_flight", (json_int_t)a.cfg.per_webhook_in_flight,
             "per_webhook_queue", (json_int_t)a.cfg.per_webhook_queue,
             "breaker_failures", (json_int_t)a.cfg.breaker_failures, "log_attempts",
             a.cfg.log_every_attempt ? "all" : "failures");
    if (a.cfg.allow_private)
        log_json(LOG_WARN, "ALLOW_PRIVATE_TARGETS is on: the SSRF guard is off", NULL);

    log_batch_begin(); /* the loop may log a line per delivery attempt: one write per loop pass */
    rc = run(&a);
    log_batch_end();
    if (consumer_close(a.consumer) != 0 && rc == 0)
        log_json(LOG_WARN, "exiting after a failed final commit (uncommitted events will be redelivered)", NULL);
    a.consumer = NULL;
    if (consumer_close(a.retry_consumer) != 0 && rc == 0)
        log_json(LOG_WARN, "exiting after a failed final commit of the retry tiers (they will be retried again)", NULL);
    a.retry_consumer = NULL;
    log_json(LOG_INFO, "dispatcher stopped", NULL);
out:
    if (a.consumer != NULL)
        consumer_close(a.consumer);
    if (a.retry_consumer != NULL)
        consumer_close(a.retry_consumer);
    app_free(&a);
    curl_global_cleanup();
    return rc;
}
