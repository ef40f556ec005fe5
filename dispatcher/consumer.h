/*
 * consumer — the Kafka side: librdkafka consumers of the eight event topics in consumer groups named after
 * KAFKA_GROUP ("Groups" below), with cooperative-sticky assignment, auto commit of offsets that this module stores
 * itself, and the consumer queues wired to the event loop through one eventfd (rd_kafka_queue_io_event_enable).
 *
 * Members: by default (CONSUMER_PER_TOPIC=1) each event topic has a librdkafka client of its own, eight members of
 * the group per process, drained in turn. librdkafka 2.0 names every partition a client holds on a broker in each
 * fetch request, and every produced event completes the fetch waiting on its partition: with one client for the
 * eight topics (96 partitions by default) each event cost the broker a 96-partition fetch, whose garbage was the
 * latency row's tail (docs/BENCHMARKS.md, 2026-12-04 23:51 and 2026-12-05 06:12). One client per topic makes it a
 * 12-partition fetch, and the partitions still spread over as many replicas as before. The price: eight group
 * members and broker connections per process. CONSUMER_PER_TOPIC=0 keeps one client. The retry-tier consumer is
 * always one client, in group KAFKA_GROUP.retry.
 *
 * Groups: each event topic's clients are a group of their own, KAFKA_GROUP.<type>; the one client of
 * CONSUMER_PER_TOPIC=0 is in KAFKA_GROUP. Not one group for the eight topics' clients: librdkafka 2.0's
 * cooperative-sticky assignor loops for ever when a group's members subscribe to different topics. Partitions
 * assigned start at the highest offset their own group or the other layout's committed (group_handover.h).
 *
 * Offsets: every assigned partition has a partition_state with an offset_tracker. The dispatcher tracks each
 * message it takes on (consumer_track) and completes it when all its deliveries finished (consumer_complete);
 * consumer_store_offsets() stores, per partition, the offset below which everything is finished, and the
 * auto-commit timer commits it. On revoke, what is finished is stored and committed before the partitions go.
 * A lost partition (nothing could be committed) keeps its state for a while: if it comes back to this consumer,
 * messages that state finished are completed without being handed to on_message again.
 *
 * Pausing: consumer_set_paused(reason) pauses every assigned partition while any reason is set (backpressure,
 * Redis outage, shutdown); partitions assigned while paused are paused at once. The queue keeps being polled.
 * When the last reason clears, the partitions resume (held ones stay paused) and each member's fetcher is kicked.
 *
 * Ownership: the consumer owns its members' rd_kafka_t and queues, the eventfd, and the partition table. A
 * partition_state is reference counted: the table holds one reference while the partition is assigned, every
 * message in progress holds one (consumer_partition_ref / _unref); a revoked partition's state lives on,
 * detached, until its last message finishes (its completions are then ignored for storing).
 * Thread contract: the event-loop thread only; librdkafka's callbacks run on it (served by consumer_drain),
 * except the log callback, which runs on librdkafka threads and only logs.
 */
#ifndef HOOKD_CONSUMER_H
#define HOOKD_CONSUMER_H

#include "dispatcher_metrics.h"
#include "event_loop.h"
#include "event_types.h"

#include <librdkafka/rdkafka.h>
#include <stdint.h>

/* Pause reasons (bit mask). */
#define CONSUMER_PAUSE_BACKPRESSURE 1u
#define CONSUMER_PAUSE_SHUTDOWN 4u

typedef struct consumer consumer;

/* One assigned (or recently revoked) partition. */
typedef struct partition_state partition_state;

/* Called for each message (err == 0) of an assigned partition. The message is destroyed after the call. */
typedef void (*consumer_message_fn)(void *ctx, partition_state *ps, const rd_kafka_message_t *msg);

typedef struct consumer_options {
    const char *group;         /* KAFKA_GROUP */
    const char *topic_prefix;  /* TOPIC_PREFIX */
    const char *const *extra_topics; /* the retry tier topics (may be NULL) */
    int extra_count;           /* at most CONSUMER_MAX_EXTRA */
    int retry_only;            /* subscribe to extra_topics only (the retry-tier consumer, tag LOOP_TAG_KAFKA_RETRY);
                                * it leaves the readiness flag and the event-partition gauge alone */
    int member_per_topic;      /* CONSUMER_PER_TOPIC: a librdkafka client per event topic (ignored with retry_only) */
    int handover_timeout_ms;   /* HANDOVER_TIMEOUT: how long an assignment waits for the committed offsets of the
                                * groups (group_handover.h); not read in time, its partitions wait paused and the read
                                * is tried again (ignored with retry_only) */
} consumer_options;

#define CONSUMER_MAX_MEMBERS EVENT_TYPE_COUNT
#define CONSUMER_MAX_EXTRA 32
#define CONSUMER_SLOTS (EVENT_TYPE_COUNT + CONSUMER_MAX_EXTRA)

/* Builds the consumer (kafka_config_from_env for brokers and passthrough), subscribes, and registers the
 * queue's eventfd on loop with tag LOOP_TAG_KAFKA. Returns NULL with errbuf on failure. */
consumer *consumer_new(const consumer_options *opts, event_loop *loop, dispatcher_metrics *dm,
                       consumer_message_fn on_message, void *ctx, char *errbuf, size_t errlen);

/* Whether the dispatcher can take on another message now (called with the on_message ctx before each one). */
typedef int (*consumer_room_fn)(void *ctx);

/* Sets the room check of consumer_drain (NULL: always room). */
void consumer_set_room(consumer *c, consumer_room_fn room);

/* Serves the consumer queue: messages, rebalances, errors, statistics. Handles at most max messages, stops
 * once budget_us microseconds of work are spent (so one burst, e.g. a retry tier falling due all at once, cannot
 * hold the event loop and the fresh events behind it), and takes none while the room check says no (they stay in
 * librdkafka's bounded local queue); returns 1 when the queue may hold more (call again without waiting once
 * there is room), 0 when it is empty. */
int consumer_drain(consumer *c, int max, int64_t budget_us);

/* Records that the dispatcher took on msg's offset. Returns 0, or -1 when the offset was already seen (a
 * re-delivery after resume: skip the message). */
int consumer_track(partition_state *ps, int64_t offset);

/* Takes back the offset tracked last (consumer_track) when its message is put back (consumer_hold at it): it is
 * consumed again after the hold, and the commit point stays at it meanwhile. Returns 0, or -1 when it was not the
 * last one tracked. */
int consumer_untrack(partition_state *ps, int64_t offset);

/* Marks a tracked offset finished (all its deliveries done or handed on). */
void consumer_complete(partition_state *ps, int64_t offset);

partition_state *consumer_partition_ref(partition_state *ps);
void consumer_partition_unref(partition_state *ps);

/* The topic's slot: the event type index (0 .. EVENT_TYPE_COUNT-1) for an event topic, EVENT_TYPE_COUNT + i for
 * extra_topics[i]. */
int consumer_partition_slot(const partition_state *ps);

/* Holds a partition whose next message (offset) is not due yet: pauses the partition, seeks it back to offset
 * (librdkafka drops what it had prefetched) and resumes it after delay_ms (unless a global pause reason is
 * set then). Messages of a held partition that still arrive are dropped (they are fetched again). Only that
 * partition waits. Ignored for a revoked partition. */
void consumer_hold(partition_state *ps, int64_t offset, long long delay_ms);

/* Resumes a held partition now, before its delay is up (unless a global pause reason is set: then with the
 * pause's end). Ignored when it is not held or was revoked. */
void consumer_release(partition_state *ps);

/* The LOOP_TAG_HOLD timer fired: resumes held partitions that are due. */
void consumer_on_hold_timer(consumer *c);

/* The partition's topic name and number (for logs). */
const char *consumer_partition_topic(const partition_state *ps);
int consumer_partition_number(const partition_state *ps);

/* Stores the finished offsets of every assigned partition that advanced (rd_kafka_offsets_store). */
void consumer_store_offsets(consumer *c);

/* Sets or clears one pause reason (see "Pausing" above). */
void consumer_set_paused(consumer *c, unsigned reason, int on);
unsigned consumer_paused(const consumer *c);

/* Shutdown: stores finished offsets, commits synchronously, closes the consumer (leaving the group) and
 * frees everything. Returns 0, or -1 when the final commit failed (logged). NULL is ignored. */
int consumer_close(consumer *c);

#endif
