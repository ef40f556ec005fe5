/*
 * kafka_stats — what the dispatcher reads from librdkafka's statistics JSON (librdkafka STATISTICS.md), emitted
 * once a second per consumer: broker and consumer-group health for /readyz, and each partition's consumer lag.
 *
 * Why not jansson: the document is ~80 KB for 96 partitions and grows with every partition (topics x partitions
 * x ~40 fields), and it is read on the dispatcher's event loop. A jansson tree of it took 2.3 ms, twice a second
 * (two consumers), a stall of the loop that every delivery queued behind it waited out. Read in place with
 * json_scan it takes a fraction of that (docs/BENCHMARKS.md) and allocates nothing.
 *
 * Stateless and thread-safe; nothing is kept from the buffer after kafka_stats_read returns.
 */
#ifndef HOOKD_KAFKA_STATS_H
#define HOOKD_KAFKA_STATS_H

#include <stddef.h>

typedef struct kafka_stats_health {
    int brokers_up;   /* brokers in state "UP" with a node id (bootstrap entries, nodeid -1, do not count) */
    int group_steady; /* 1 when cgrp.state is "up" and cgrp.join_state is "steady" */
} kafka_stats_health;

/* Called for every partition of every topic (partition -1, librdkafka's unassigned queue, included): topic is
 * the topic's name (NUL-terminated, valid during the call only), lag is consumer_lag_stored when present, else
 * consumer_lag, else -1 (0 for a member that is not an integer, as jansson's json_integer_value gave). */
typedef void (*kafka_stats_lag_fn)(void *ctx, const char *topic, int partition, long long lag);

/* Reads json[0, len). Fills health and calls on_lag (may be NULL). Returns 0, or -1 when the text is not a JSON
 * object (health is then zeroed and on_lag not called). */
int kafka_stats_read(const char *json, size_t len, kafka_stats_health *health, kafka_stats_lag_fn on_lag,
                     void *ctx);

#endif
