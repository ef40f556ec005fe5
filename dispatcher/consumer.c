/* consumer — see consumer.h. */
#include "consumer.h"

#include "event_types.h"
#include "group_handover.h"
#include "kafka_config.h"
#include "kafka_stats.h"
#include "log.h"
#include "offset_tracker.h"
#include "timeutil.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define TOPIC_MAX 256
#define GROUP_MAX 256
/* Partitions whose committed offsets could not be read at their assignment (awaiting the handover, handover()) are
 * read again after HANDOVER_RETRY_MS, the wait doubling after each failed read up to HANDOVER_RETRY_MAX_MS; each
 * read waits at least HANDOVER_RETRY_TIMEOUT_MS for its answer (HANDOVER_TIMEOUT if longer) */
#define HANDOVER_RETRY_MS 1000
#define HANDOVER_RETRY_MAX_MS 30000
#define HANDOVER_RETRY_TIMEOUT_MS 3000
/* the local queue's limits (librdkafka properties; why these: consumer_new) */
#define QUEUE_MAX_KBYTES "8192"
#define QUEUE_MAX_MESSAGES "10000"
/* the retry-tier consumer's fetches wait for this much (or fetch.wait.max.ms) at the broker (member_conf) */
#define RETRY_FETCH_MIN_BYTES "1048576"
/* the same for each member when the event topics have one each (member_conf) */
#define MEMBER_QUEUE_MAX_KBYTES "2048"
#define MEMBER_QUEUE_MAX_MESSAGES "2500"
/* The most one fetch response may carry (fetch.max.bytes), shared by the members: with a member per event topic
 * each fetches an eighth of it, 256 KiB (member_conf) */
#define FETCH_MAX_BYTES 2097152L
/* A member whose queue ran dry without a kick is looked at again after this long, and if it is still dry while its
 * partitions have messages on the broker, kicked then; each such kick doubles the wait, up to the maximum, until a
 * message arrives (kick_fetcher(), recheck_dry()) */
#define DRY_RECHECK_MS 20
#define DRY_RECHECK_MAX_MS 1000
/* How long the state of a lost partition is kept for the case it is assigned back (departed_remember) */
#define LOST_MEMORY_MS 120000
/* A message whose delivery that state still has in flight holds its partition this long, then is looked at again */
#define LOST_IN_FLIGHT_RECHECK_MS 100
/* A member whose fetches of a topic were refused (TOPIC_AUTHORIZATION_FAILED) is not ready for this long after the
 * last refusal; the refusal is logged at most once per topic in this long too. librdkafka repeats a refused fetch
 * every fetch.error.backoff.ms (500 ms), so an ACL granted again makes the member ready within this long. */
#define TOPIC_REFUSED_MS 10000

/* See consumer.h. Owned by the consumer's table (one ref) and by each message in progress (one ref each). */
struct partition_state {
    int refs;
    struct consumer *c;        /* borrowed; valid while assigned */
    struct consumer_member *member; /* borrowed; the client it is assigned to, valid while assigned */
    char topic[TOPIC_MAX];
    int type;                  /* event type index of the topic */
    int partition;
    offset_tracker *tracker;   /* owned */
    int64_t stored;            /* last offset handed to rd_kafka_offsets_store, -1 none */
    int assigned;              /* 0 once revoked (detached from the table) */
    metric_series *lag;        /* consumer lag gauge (removed on revoke) */
    int held;                  /* waiting for its head message (paused, seeked back to hold_offset) */
    int64_t hold_offset;       /* the head message it waits for */
    int64_t hold_until_ms;     /* monotonic: resumed then at the latest */
    int awaiting_handover;     /* held since its assignment because the groups' committed offsets could not be read:
                                * resumed once a read succeeds (retry_handover), not by the hold timer */
    int64_t dropped_from;      /* awaiting: the first offset served and dropped meanwhile, -1 none */
    int64_t first_taken;       /* first offset tracked, -1 none yet */
    int64_t next_offset;       /* after the last message served (or the head a hold waits for), -1 none yet */
    partition_state *previous; /* owned reference or NULL: this partition's state when this consumer lost it last
                                * (within LOST_MEMORY_MS); what that state finished is not delivered again */
};

/* A partition this consumer lost (coordinator gone, session expired: nothing could be committed), remembered for
 * LOST_MEMORY_MS in case it is assigned back. */
typedef struct departed_partition {
    partition_state *ps;       /* owned reference */
    int64_t until_ms;          /* monotonic: forgotten then */
} departed_partition;

/* Per event type: partition states indexed by partition number. */
typedef struct partition_row {
    partition_state **parts;   /* owned array of table references */
    int cap;
} partition_row;

/* One librdkafka client of the consumer, a member of the group, subscribed to the topic slots [slot_lo, slot_hi).
 * Why several (consumer.h, "Members"): a fetch names every partition its client holds on the broker, and each
 * produced event completes the fetch that names its partition. */
typedef struct consumer_member {
    struct consumer *c;        /* borrowed: the consumer this member belongs to */
    rd_kafka_t *rk;            /* owned */
    rd_kafka_queue_t *queue;   /* owned: the consumer queue (main queue forwarded to it) */
    int slot_lo, slot_hi;      /* its topics */
    char group[GROUP_MAX];     /* its consumer group: KAFKA_GROUP, or KAFKA_GROUP.<type> for a topic of its own */
    int healthy;               /* its last statistics: a broker up and its group steady */
    int last_failure;          /* its last authentication or TLS error since a broker was up, or its group's
                                * refusal, 0 none (/readyz) */
    int group_refused;         /* the broker refused it its group (GROUP_AUTHORIZATION_FAILED) since it was steady */
    int64_t topic_refused_ms;  /* when the broker last refused it a fetch (TOPIC_AUTHORIZATION_FAILED), 0 never */
    long long dry_bytes, dry_msgs; /* consumed since its queue last ran dry or its fetcher was last kicked */
    int64_t recheck_at_ms;     /* when its dry queue is looked at again (recheck_dry); 0: not armed */
    int recheck_wait_ms;       /* the wait before the next recheck: DRY_RECHECK_MS, doubled by each recheck kick */
    int64_t handover_at_ms;    /* when its partitions awaiting the handover are read again; 0: none await */
    int handover_wait_ms;      /* the wait after the next read if it fails too (HANDOVER_RETRY_MS, doubled each time) */
    int handover_failures;     /* reads failed since its partitions began awaiting */
} consumer_member;

struct consumer {
    consumer_member members[CONSUMER_MAX_MEMBERS];
    int member_count;
    int next_member;           /* where consumer_drain goes on (round robin over the members) */
    unsigned empty_members;    /* bit i: member i's queue was found empty and the eventfd has not fired since */
    int event_fd;              /* owned: signalled by librdkafka when a member's queue becomes non-empty */
    event_loop *loop;          /* borrowed */
    dispatcher_metrics *dm;    /* borrowed */
    consumer_message_fn on_message;
    void *ctx;
    consumer_room_fn room;       /* may be NULL */
    char topics[CONSUMER_SLOTS][TOPIC_MAX];
    char group[GROUP_MAX];     /* KAFKA_GROUP (the retry-tier consumer: its own group) */
    int topic_count;           /* EVENT_TYPE_COUNT + extra topics */
    partition_row rows[CONSUMER_SLOTS];
    int hold_fd;               /* owned timerfd (LOOP_TAG_HOLD) */
    int retry_only;            /* the retry-tier consumer */
    int handover_timeout_ms;   /* HANDOVER_TIMEOUT: how long an assignment waits for the committed offsets */
    int awaiting_count;        /* event partitions awaiting the handover (gauge) */
    int assigned_count;        /* event-topic partitions */
    int retry_assigned_count;  /* retry-tier partitions */
    int dirty;                 /* some completion may have advanced a commit point */
    unsigned pause_reasons;
    int unknown_topic_logged[CONSUMER_SLOTS];
    int64_t topic_refused_logged_ms[CONSUMER_SLOTS]; /* when a topic's refused fetch was last logged, 0 never */
    long long queue_max_bytes;  /* queued.max.messages.kbytes, in bytes (the fetch stops at it) */
    long long queue_max_msgs;   /* queued.min.messages (the fetch stops at it too) */
    int fetch_waits;            /* fetch.min.bytes > 1: a fetch waits at the broker while messages are there */
    departed_partition *departed;  /* owned array: partitions lost lately */
    int departed_count, departed_cap;
};

/* ---- partition table ------------------------------------------------------------------------------------ */

partition_state *consumer_partition_ref(partition_state *ps)
{
    ps->refs++;
    return ps;
}

void consumer_partition_unref(partition_state *ps)
{
    if (ps == NULL || --ps->refs > 0)
        return;
    consumer_partition_unref(ps->previous); /* one level deep: a remembered state has no previous of its own */
    offset_tracker_free(ps->tracker);
    free(ps);
}

const char *consumer_partition_topic(const partition_state *ps)
{
    return ps->topic;
}

int consumer_partition_number(const partition_state *ps)
{
    return ps->partition;
}

static int topic_type(const consumer *c, const char *topic)
{
    for (int i = 0; i < c->topic_count; i++)
        if (strcmp(c->topics[i], topic) == 0)
            return i;
    return -1;
}

static partition_state *table_find(consumer *c, int type, int partition)
{
    if (type < 0 || partition < 0 || partition >= c->rows[type].cap)
        return NULL;
    return c->rows[type].parts[partition];
}

/* ---- lost partitions ----------------------------------------------------------------------------------- */
/* When this consumer loses a partition (the group coordinator went away or the session expired), nothing it
 * finished since the last commit could be committed, and the partition restarts at that commit wherever it goes
 * next. Kafka outages then repeated every delivery finished during the outage (658 duplicated pairs of 4,000 in
 * the 10 s broker-stop fault scenario). The lost partition's state (its offset tracker, which keeps counting
 * the deliveries still in flight) is remembered for LOST_MEMORY_MS; when the partition comes back to this
 * consumer, messages that state finished are taken and completed without being delivered again, and a message
 * whose delivery it still has in flight holds the partition until that delivery is finished (lost_state_of):
 * before, a delivery slower than the loss and the reassignment was made twice (a first test under valgrind in CI,
 * 2026-12-05: 12 of 15 pairs twice). Only this process's own work is skipped, so at-least-once holds whatever
 * another member did with the partition meanwhile. A revoked partition is remembered the same way when it has
 * deliveries in flight (what it finished was committed on revoke): a member that joins and leaves again gives it
 * back while they are still running. */

/* Forgets departed partitions whose time is up. */
static void departed_prune(consumer *c, int64_t now)
{
    int kept = 0;
    for (int i = 0; i < c->departed_count; i++) {
        if (c->departed[i].until_ms <= now)
            consumer_partition_unref(c->departed[i].ps);
        else
            c->departed[kept++] = c->departed[i];
    }
    c->departed_count = kept;
}

/* Takes the remembered state of (type, partition) out of the list: the caller owns the reference. NULL if none. */
static partition_state *departed_take(consumer *c, int type, int partition)
{
    departed_prune(c, time_monotonic_ms());
    for (int i = 0; i < c->departed_count; i++) {
        partition_state *ps = c->departed[i].ps;
        if (ps->type == type && ps->partition == partition) {
            c->departed[i] = c->departed[--c->departed_count];
            return ps;
        }
    }
    return NULL;
}

/* Remembers a partition being lost (takes a reference). Its own remembered predecessor is dropped. */
static void departed_remember(consumer *c, partition_state *ps)
{
    consumer_partition_unref(departed_take(c, ps->type, ps->partition));
    consumer_partition_unref(ps->previous);
    ps->previous = NULL;
    if (c->departed_count == c->departed_cap) {
        int cap = c->departed_cap ? c->departed_cap * 2 : 16;
        departed_partition *grown = realloc(c->departed, (size_t)cap * sizeof *grown);
        if (grown == NULL)
            return; /* not remembered: its finished work is delivered again, as without this */
        c->departed = grown;
        c->departed_cap = cap;
    }
    c->departed[c->departed_count++] = (departed_partition){consumer_partition_ref(ps),
                                                            time_monotonic_ms() + LOST_MEMORY_MS};
}

/* What ps's state from before it was lost (ps->previous != NULL) did with offset: OFFSET_FINISHED (delivered,
 * retried or dead-lettered: not delivered again), OFFSET_PENDING (its delivery is still in flight: waited for,
 * not repeated), OFFSET_UNSEEN (not taken then: delivered as usual). The state keeps finishing its deliveries
 * after the loss, so the answer for an offset can go from pending to finished. The state is forgotten once the
 * partition is consumed past everything it took, or from before its first offset (commits only advance, so the
 * partition started over: a re-created topic). */
static offset_state lost_state_of(partition_state *ps, int64_t offset)
{
    partition_state *prev = ps->previous;
    offset_state st = prev->first_taken < 0 || offset < prev->first_taken
                          ? OFFSET_UNSEEN
                          : offset_tracker_state(prev->tracker, offset);
    if (st == OFFSET_UNSEEN) {
        consumer_partition_unref(prev);
        ps->previous = NULL;
    }
    return st;
}

/* Adds a partition assigned to member m to the table. Returns 0 or -1. */
static int table_attach(consumer_member *m, const char *topic, int partition)
{
    consumer *c = m->c;
    int type = topic_type(c, topic);
    if (type < 0 || partition < 0) {
        log_json(LOG_WARN, "assigned a partition of an unexpected topic", "{s:s, s:i}", "topic", topic,
                 "partition", partition);
        return -1;
    }
    if (table_find(c, type, partition) != NULL)
        return 0;
    partition_row *row = &c->rows[type];
    if (partition >= row->cap) {
        int cap = partition + 16;
        partition_state **parts = realloc(row->parts, (size_t)cap * sizeof *parts);
        if (parts == NULL)
            return -1;
        memset(parts + row->cap, 0, (size_t)(cap - row->cap) * sizeof *parts);
        row->parts = parts;
        row->cap = cap;
    }
    partition_state *ps = calloc(1, sizeof *ps);
    if (ps == NULL || (ps->tracker = offset_tracker_new()) == NULL) {
        free(ps);
        return -1;
    }
    ps->refs = 1;
    ps->c = c;
    ps->member = m;
    snprintf(ps->topic, sizeof ps->topic, "%s", topic);
    ps->type = type;
    ps->partition = partition;
    ps->stored = -1;
    ps->first_taken = -1;
    ps->next_offset = -1;
    ps->dropped_from = -1;
    ps->assigned = 1;
    ps->previous = departed_take(c, type, partition);
    ps->lag = c->retry_only ? NULL : dm_lag_series(c->dm, topic, partition); /* event topics only */
    row->parts[partition] = ps;
    if (type < EVENT_TYPE_COUNT)
        c->assigned_count++;
    else
        c->retry_assigned_count++;
    return 0;
}

/* Removes a partition from the table; its state lives on while messages hold it. */
static void table_detach(consumer *c, const char *topic, int partition)
{
    int type = topic_type(c, topic);
    partition_state *ps = table_find(c, type, partition);
    if (ps == NULL)
        return;
    c->rows[type].parts[partition] = NULL;
    if (ps->awaiting_handover)
        c->awaiting_count--;
    if (type < EVENT_TYPE_COUNT)
        c->assigned_count--;
    else
        c->retry_assigned_count--;
    ps->assigned = 0;
    ps->c = NULL;
    ps->member = NULL;
    metrics_remove(c->dm->reg, ps->lag);
    ps->lag = NULL;
    consumer_partition_unref(ps);
}

/* ---- offsets -------------------------------------------------------------------------------------------- */

int consumer_track(partition_state *ps, int64_t offset)
{
    int rc = offset_tracker_add(ps->tracker, offset);
    if (rc == 0 && ps->first_taken < 0)
        ps->first_taken = offset;
    return rc;
}

int consumer_untrack(partition_state *ps, int64_t offset)
{
    return offset_tracker_unadd(ps->tracker, offset);
}

void consumer_complete(partition_state *ps, int64_t offset)
{
    if (offset_tracker_complete(ps->tracker, offset) != 0)
        log_json(LOG_ERROR, "completed an offset that was not pending", "{s:s, s:i, s:I}", "topic", ps->topic,
                 "partition", ps->partition, "offset", (json_int_t)offset);
    if (ps->assigned)
        ps->c->dirty = 1;
}

/* Appends ps's commit point to list when it advanced past what was stored. */
static void collect(partition_state *ps, rd_kafka_topic_partition_list_t *list)
{
    int64_t next = offset_tracker_committable(ps->tracker);
    if (next < 0 || next <= ps->stored)
        return;
    rd_kafka_topic_partition_list_add(list, ps->topic, ps->partition)->offset = next;
}

/* Stores list (offsets already filled; partitions of member m) and records what was stored. */
static void store_list(consumer_member *m, rd_kafka_topic_partition_list_t *list)
{
    consumer *c = m->c;
    if (list->cnt == 0)
        return;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(m->rk, list);
    for (int i = 0; i < list->cnt; i++) {
        rd_kafka_topic_partition_t *p = &list->elems[i];
        partition_state *ps = table_find(c, topic_type(c, p->topic), p->partition);
        if (p->err == RD_KAFKA_RESP_ERR_NO_ERROR && ps != NULL)
            ps->stored = p->offset;
        else if (p->err != RD_KAFKA_RESP_ERR_NO_ERROR)
            log_json(LOG_DEBUG, "offset not stored", "{s:s, s:i, s:I, s:s}", "topic", p->topic, "partition",
                     p->partition, "offset", (json_int_t)p->offset, "error", rd_kafka_err2str(p->err));
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__INVALID_ARG)
        log_json(LOG_DEBUG, "rd_kafka_offsets_store", "{s:s}", "error", rd_kafka_err2str(err));
}

void consumer_store_offsets(consumer *c)
{
    if (!c->dirty)
        return;
    c->dirty = 0;
    for (int i = 0; i < c->member_count; i++) {
        consumer_member *m = &c->members[i];
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(16);
        for (int t = m->slot_lo; t < m->slot_hi; t++)
            for (int p = 0; p < c->rows[t].cap; p++)
                if (c->rows[t].parts[p] != NULL)
                    collect(c->rows[t].parts[p], list);
        store_list(m, list);
        rd_kafka_topic_partition_list_destroy(list);
    }
}

/* ---- pause / resume ------------------------------------------------------------------------------------- */

/* Pauses or resumes parts (partitions of the client rk). */
static void apply_pause(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts, int pause)
{
    if (parts == NULL || parts->cnt == 0)
        return;
    rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(rk, parts) : rd_kafka_resume_partitions(rk, parts);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_json(LOG_WARN, pause ? "pause failed" : "resume failed", "{s:s}", "error", rd_kafka_err2str(err));
}

/* Seeks every partition of list (not empty; partitions of the client rk) to its offset, asynchronously (the
 * fetcher wakes at once). why names the caller in the log line (with the first partition) when librdkafka refuses.
 * Returns 0, or -1 when it did. */
static int seek_to(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list, const char *why)
{
    rd_kafka_error_t *error = rd_kafka_seek_partitions(rk, list, 0 /* asynchronous */);
    if (error == NULL)
        return 0;
    log_json(LOG_WARN, "seek failed", "{s:s, s:s, s:i, s:i, s:s}", "for", why, "topic", list->elems[0].topic,
             "partition", (int)list->elems[0].partition, "partitions", list->cnt, "error", rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    return -1;
}

static int kick_one(consumer_member *m, int with_lag_only);

/* Sets or clears one pause reason; the partitions pause with the first reason and resume with the last one gone.
 * On resume each member's fetcher is kicked (kick_one): librdkafka 2.0.2's resume does not wake its broker thread,
 * so events produced during a Redis outage waited 340-390 ms more after it ended (measured: paused at Redis's stall,
 * produced meanwhile, delivered after the resume) against ~5 ms for an event produced after it. */
void consumer_set_paused(consumer *c, unsigned reason, int on)
{
    unsigned before = c->pause_reasons;
    c->pause_reasons = on ? (before | reason) : (before & ~reason);
    if ((before != 0) == (c->pause_reasons != 0))
        return;
    for (int m = 0; m < c->member_count; m++) {
        rd_kafka_t *rk = c->members[m].rk;
        rd_kafka_topic_partition_list_t *parts = NULL;
        if (rd_kafka_assignment(rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        if (c->pause_reasons == 0) { /* held partitions stay paused until they are due */
            rd_kafka_topic_partition_list_t *keep = rd_kafka_topic_partition_list_new(parts->cnt);
            for (int i = 0; i < parts->cnt; i++) {
                partition_state *ps = table_find(c, topic_type(c, parts->elems[i].topic), parts->elems[i].partition);
                if (ps == NULL || !ps->held)
                    rd_kafka_topic_partition_list_add(keep, parts->elems[i].topic, parts->elems[i].partition);
            }
            apply_pause(rk, keep, 0);
            rd_kafka_topic_partition_list_destroy(keep);
            kick_one(&c->members[m], 0); /* after the resume: a seek of a paused partition would not fetch */
        } else {
            apply_pause(rk, parts, 1);
        }
        rd_kafka_topic_partition_list_destroy(parts);
    }
    metric_gauge_set(c->dm->paused, c->pause_reasons != 0);
    log_json(LOG_INFO, c->pause_reasons ? "consumption paused" : "consumption resumed", "{s:i}", "reasons",
             (int)c->pause_reasons);
}

unsigned consumer_paused(const consumer *c)
{
    return c->pause_reasons;
}

int consumer_partition_slot(const partition_state *ps)
{
    return ps->type;
}

/* Arms the hold timer for the earliest held partition, dry-queue recheck or handover read (disarms when none). */
static void hold_rearm(consumer *c)
{
    int64_t earliest = -1;
    for (int t = 0; t < c->topic_count; t++)
        for (int p = 0; p < c->rows[t].cap; p++) {
            partition_state *ps = c->rows[t].parts[p];
            if (ps != NULL && ps->held && !ps->awaiting_handover && (earliest < 0 || ps->hold_until_ms < earliest))
                earliest = ps->hold_until_ms;
        }
    for (int i = 0; i < c->member_count; i++) {
        int64_t at = c->members[i].recheck_at_ms;
        if (at > 0 && (earliest < 0 || at < earliest))
            earliest = at;
        at = c->members[i].handover_at_ms;
        if (at > 0 && (earliest < 0 || at < earliest))
            earliest = at;
    }
    if (earliest < 0) {
        loop_timerfd_arm(c->hold_fd, -1, 0);
        return;
    }
    int64_t wait = earliest - time_monotonic_ms();
    loop_timerfd_arm(c->hold_fd, wait > 0 ? wait : 0, 0);
}

void consumer_hold(partition_state *ps, int64_t offset, long long delay_ms)
{
    consumer *c = ps->c;
    if (!ps->assigned || c == NULL)
        return;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, ps->topic, ps->partition)->offset = offset;
    if (!ps->held)
        apply_pause(ps->member->rk, list, 1);
    seek_to(ps->member->rk, list, "hold");
    rd_kafka_topic_partition_list_destroy(list);
    ps->held = 1;
    ps->hold_offset = offset;
    ps->next_offset = offset;
    ps->hold_until_ms = time_monotonic_ms() + (delay_ms > 0 ? delay_ms : 0);
    log_json(LOG_DEBUG, "partition waits for its head", "{s:s, s:i, s:I, s:I}", "topic", ps->topic,
             "partition", ps->partition, "offset", (json_int_t)offset, "wait_ms", (json_int_t)delay_ms);
    hold_rearm(c);
}

/* Resumes the held partitions of list (partitions of member m) when no global pause reason is set, and seeks each
 * to its head message again: a resume alone does not wake librdkafka 2.0's fetcher (it fetched up to a second
 * later, kick_fetcher()), a seek to a concrete offset does. The partition was paused at that offset, so the seek
 * skips nothing. */
static void resume_held(consumer_member *m, rd_kafka_topic_partition_list_t *list)
{
    if (m->c->pause_reasons != 0 || list->cnt == 0)
        return; /* they resume with the global pause's end (consumer_set_paused) */
    apply_pause(m->rk, list, 0);
    seek_to(m->rk, list, "resume");
}

void consumer_release(partition_state *ps)
{
    consumer *c = ps->c;
    if (!ps->held || ps->awaiting_handover || !ps->assigned || c == NULL)
        return;
    ps->held = 0;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, ps->topic, ps->partition)->offset = ps->hold_offset;
    resume_held(ps->member, list);
    rd_kafka_topic_partition_list_destroy(list);
    hold_rearm(c);
}

static void recheck_dry(consumer_member *m, int64_t now);
static void retry_handover(consumer_member *m, int64_t now);

void consumer_on_hold_timer(consumer *c)
{
    loop_fd_drain(c->hold_fd);
    int64_t now = time_monotonic_ms();
    for (int i = 0; i < c->member_count; i++) {
        consumer_member *m = &c->members[i];
        recheck_dry(m, now);
        retry_handover(m, now);
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
        for (int t = m->slot_lo; t < m->slot_hi; t++)
            for (int p = 0; p < c->rows[t].cap; p++) {
                partition_state *ps = c->rows[t].parts[p];
                if (ps != NULL && ps->held && !ps->awaiting_handover && ps->hold_until_ms <= now) {
                    ps->held = 0;
                    rd_kafka_topic_partition_list_add(list, ps->topic, ps->partition)->offset = ps->hold_offset;
                }
            }
        resume_held(m, list);
        rd_kafka_topic_partition_list_destroy(list);
    }
    hold_rearm(c);
}

/* ---- librdkafka callbacks ------------------------------------------------------------------------------- */

/* Whether one of the first `before` partitions of parts, of topic, was given a start by the handover (from). */
static int carried_before(const rd_kafka_topic_partition_list_t *parts, const char *const *from, int before,
                          const char *topic)
{
    for (int j = 0; j < before; j++)
        if (from[j] != NULL && strcmp(parts->elems[j].topic, topic) == 0)
            return 1;
    return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* Writes member m's client.id into out: hookd-dispatcher-<host>-<pid>, then -<event type> when it has a topic of its
 * own, then -<role> when role is not NULL (a client working for it). */
static void client_id_of(const consumer_member *m, const char *role, char *out, size_t outlen)
{
    char hostname[128] = "host";
    gethostname(hostname, sizeof hostname - 1);
    snprintf(out, outlen, "hookd-dispatcher-%s-%d%s%s%s%s", hostname, (int)getpid(), m->c->member_count > 1 ? "-" : "",
             m->c->member_count > 1 ? event_type_name(m->slot_lo) : "", role != NULL ? "-" : "",
             role != NULL ? role : "");
}

/* The configuration the handover's readers of other groups' offsets are made from (group_handover.h): the brokers
 * and security of KAFKA_* like the members', a client.id of their own. NULL with errbuf. */
static rd_kafka_conf_t *reader_conf(consumer_member *m, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char client_id[256];
    client_id_of(m, "handover", client_id, sizeof client_id);
    if (kafka_config_set(conf, "client.id", client_id, errbuf, errlen) != 0 ||
        kafka_config_set(conf, "socket.nagle.disable", "true", errbuf, errlen) != 0 ||
        kafka_config_from_env(conf, errbuf, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    return conf;
}

/* Partitions just assigned to event member m start where the other consumer layout's group left them, when that
 * is further than m's own group got (group_handover.h): a member of its topic's group reads KAFKA_GROUP's offsets,
 * the one consumer of all eight topics those of the eight topic groups. Sets the offsets of parts (offsets
 * RD_KAFKA_OFFSET_INVALID) that start elsewhere than at the own group's offset. Blocks the event loop for the read,
 * a round trip to the group coordinators (at most timeout_ms), once per assignment. Returns 0, or -1 when the
 * offsets could not be read (logged): parts is then unchanged. */
static int handover(consumer_member *m, rd_kafka_topic_partition_list_t *parts, int timeout_ms)
{
    consumer *c = m->c;
    if (c->retry_only || parts->cnt == 0)
        return 0;
    char groups[EVENT_TYPE_COUNT][GROUP_MAX];
    const char *others[EVENT_TYPE_COUNT];
    int count = 0;
    if (c->member_count > 1) {
        others[count++] = c->group;
    } else {
        for (int t = 0; t < EVENT_TYPE_COUNT; t++)
            if (group_handover_topic_group(c->group, event_type_name(t), groups[t], sizeof groups[t]) == 0)
                others[count++] = groups[t];
    }
    const char **from = calloc((size_t)parts->cnt, sizeof *from);
    const char *refused = NULL;
    char err[512] = "out of memory";
    int64_t started = time_monotonic_us();
    rd_kafka_conf_t *readers = from == NULL ? NULL : reader_conf(m, err, sizeof err);
    int carried = readers == NULL ? -1
                                  : group_handover_offsets(m->rk, readers, m->group, others, count, parts, timeout_ms,
                                                           from, &refused, err, sizeof err);
    if (readers != NULL)
        rd_kafka_conf_destroy(readers);
    log_json(LOG_DEBUG, "committed offsets of both layouts compared", "{s:s, s:i, s:i, s:f}", "group", m->group,
             "partitions", parts->cnt, "carried", carried, "ms", (double)(time_monotonic_us() - started) / 1000.0);
    if (carried < 0) {
        log_json(LOG_WARN, "committed offsets of the consumer groups not read: the partitions wait", "{s:s, s:s, s:i, s:s}",
                 "group", m->group, "topic", parts->elems[0].topic, "partitions", parts->cnt, "error", err);
        free(from);
        return -1;
    }
    if (refused != NULL)
        log_json(LOG_WARN, "committed offsets of the other consumer layout's group not authorized: not compared",
                 "{s:s, s:s, s:s, s:s}", "group", m->group, "other", refused, "topic", parts->elems[0].topic, "risk",
                 "if CONSUMER_PER_TOPIC was just changed, the offsets of the other group are not carried over: "
                 "its partitions start from this group's (the topic's earliest when none): grant Read on the other "
                 "group for that upgrade");
    /* a line per topic (the one consumer of the eight topics takes them from eight groups) */
    for (int i = 0; carried > 0 && i < parts->cnt; i++) {
        if (from[i] == NULL || carried_before(parts, from, i, parts->elems[i].topic))
            continue;
        int here = 0;
        for (int j = i; j < parts->cnt; j++)
            here += from[j] != NULL && strcmp(parts->elems[j].topic, parts->elems[i].topic) == 0;
        log_json(LOG_INFO, "partitions start where another consumer group left them", "{s:s, s:s, s:s, s:i}",
                 "group", m->group, "from", from[i], "topic", parts->elems[i].topic, "partitions", here);
    }
    free(from);
    return 0;
}

/* Awaiting the handover: parts were just assigned to m and their committed offsets could not be read. Started at
 * their own group's offset, which on the first start after a change of consumer layout is none (the topic's
 * earliest), they could deliver the topic's whole retention again. So they stay paused (held, skipping what a fetch
 * already brought) until retry_handover reads the offsets: after HANDOVER_RETRY_MS, then at doubling waits. */
static void await_handover(consumer_member *m, rd_kafka_topic_partition_list_t *parts)
{
    consumer *c = m->c;
    apply_pause(m->rk, parts, 1);
    for (int i = 0; i < parts->cnt; i++) {
        partition_state *ps = table_find(c, topic_type(c, parts->elems[i].topic), parts->elems[i].partition);
        if (ps == NULL || ps->awaiting_handover)
            continue;
        ps->held = 1;
        ps->awaiting_handover = 1;
        ps->dropped_from = -1;
        ps->hold_until_ms = INT64_MAX; /* not the hold timer's: retry_handover resumes it */
        c->awaiting_count++;
    }
    if (m->handover_at_ms == 0) {
        m->handover_failures = 1;
        m->handover_wait_ms = HANDOVER_RETRY_MS;
        m->handover_at_ms = time_monotonic_ms() + HANDOVER_RETRY_MS;
    }
    metric_gauge_set(c->dm->awaiting_handover, c->awaiting_count);
    hold_rearm(c);
}

/* Reads the committed offsets of m's partitions awaiting the handover again when due (from the hold timer). Once
 * read, each resumes where the handover says, else where it was dropped, else (nothing fetched yet) where its own
 * group left it; otherwise the next read is due after twice the last wait (at most HANDOVER_RETRY_MAX_MS). While
 * consumption as a whole is paused the read waits for its end. */
static void retry_handover(consumer_member *m, int64_t now)
{
    consumer *c = m->c;
    if (m->handover_at_ms == 0 || m->handover_at_ms > now)
        return;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
    for (int t = m->slot_lo; t < m->slot_hi; t++)
        for (int p = 0; p < c->rows[t].cap; p++) {
            partition_state *ps = c->rows[t].parts[p];
            if (ps != NULL && ps->awaiting_handover)
                rd_kafka_topic_partition_list_add(list, ps->topic, ps->partition); /* offset RD_KAFKA_OFFSET_INVALID */
        }
    if (list->cnt == 0) { /* revoked meanwhile */
        m->handover_at_ms = 0;
    } else if (c->pause_reasons != 0) {
        m->handover_at_ms = now + HANDOVER_RETRY_MS;
    } else if (handover(m, list, c->handover_timeout_ms > HANDOVER_RETRY_TIMEOUT_MS ? c->handover_timeout_ms
                                                                                     : HANDOVER_RETRY_TIMEOUT_MS) != 0) {
        m->handover_failures++;
        m->handover_at_ms = time_monotonic_ms() + m->handover_wait_ms;
        m->handover_wait_ms = m->handover_wait_ms * 2 < HANDOVER_RETRY_MAX_MS ? m->handover_wait_ms * 2
                                                                              : HANDOVER_RETRY_MAX_MS;
    } else {
        m->handover_at_ms = 0;
        rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(list->cnt);
        int unfetched = 0;
        for (int i = 0; i < list->cnt; i++) {
            partition_state *ps = table_find(c, topic_type(c, list->elems[i].topic), list->elems[i].partition);
            ps->awaiting_handover = 0;
            ps->held = 0;
            c->awaiting_count--;
            int64_t start = list->elems[i].offset >= 0 ? list->elems[i].offset : ps->dropped_from;
            if (start >= 0)
                rd_kafka_topic_partition_list_add(seek, ps->topic, ps->partition)->offset = start;
            else
                unfetched = 1;
        }
        apply_pause(m->rk, list, 0);
        if (seek->cnt > 0)
            seek_to(m->rk, seek, "handover"); /* after the resume: a seek also wakes the fetcher */
        if (unfetched)
            kick_one(m, 0);
        log_json(LOG_INFO, "partitions awaiting the handover resumed", "{s:s, s:s, s:i, s:i}", "group", m->group,
                 "topic", list->elems[0].topic, "partitions", list->cnt, "failed_reads", m->handover_failures);
        m->handover_failures = 0;
        rd_kafka_topic_partition_list_destroy(seek);
        metric_gauge_set(c->dm->awaiting_handover, c->awaiting_count);
    }
    rd_kafka_topic_partition_list_destroy(list);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    consumer_member *m = opaque;
    consumer *c = m->c;
    const char *protocol = rd_kafka_rebalance_protocol(rk); /* NULL when no group protocol is in force (close) */
    int cooperative = protocol != NULL && strcmp(protocol, "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        int awaiting = handover(m, parts, c->handover_timeout_ms) != 0;
        for (int i = 0; i < parts->cnt; i++)
            table_attach(m, parts->elems[i].topic, parts->elems[i].partition);
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            rerr = rd_kafka_assign(rk, parts);
        if (awaiting)
            await_handover(m, parts);
        else if (c->pause_reasons != 0)
            apply_pause(rk, parts, 1);
        log_json(LOG_INFO, "partitions assigned", "{s:i, s:i, s:s, s:s}", "count", parts->cnt, "total",
                 c->assigned_count, "protocol", protocol != NULL ? protocol : "NONE", "topic",
                 parts->cnt > 0 ? parts->elems[0].topic : "");
    } else {
        int lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk);
        if (!lost) {
            /* store what is finished and commit it before the partitions go to another member */
            rd_kafka_topic_partition_list_t *done = rd_kafka_topic_partition_list_new(parts->cnt);
            for (int i = 0; i < parts->cnt; i++) {
                partition_state *ps = table_find(c, topic_type(c, parts->elems[i].topic), parts->elems[i].partition);
                if (ps != NULL)
                    collect(ps, done);
            }
            store_list(m, done);
            if (done->cnt > 0) {
                rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, done, 0);
                if (cerr != RD_KAFKA_RESP_ERR_NO_ERROR && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
                    log_json(LOG_WARN, "commit on revoke failed", "{s:s}", "error", rd_kafka_err2str(cerr));
            }
            rd_kafka_topic_partition_list_destroy(done);
        }
        /* librdkafka keeps a partition's pause across revocation, and a partition assigned back later came back
         * paused with nothing left to resume it: one held for a slow webhook (a member joined and left), or every
         * one revoked while consumption as a whole was paused (Redis down) and assigned back after it resumed.
         * Every revoked partition leaves unpaused; one assigned while a global pause is on is paused again then. */
        apply_pause(rk, parts, 0);
        for (int i = 0; i < parts->cnt; i++) {
            partition_state *ps = table_find(c, topic_type(c, parts->elems[i].topic), parts->elems[i].partition);
            if (ps != NULL && (lost || offset_tracker_pending(ps->tracker) > 0))
                departed_remember(c, ps);
            table_detach(c, parts->elems[i].topic, parts->elems[i].partition);
        }
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            rerr = rd_kafka_assign(rk, NULL);
        log_json(lost ? LOG_WARN : LOG_INFO, lost ? "partitions lost" : "partitions revoked", "{s:i, s:i, s:s, s:s}",
                 "count", parts->cnt, "total", c->assigned_count, "reason", rd_kafka_err2str(err), "topic",
                 parts->cnt > 0 ? parts->elems[0].topic : "");
    }
    if (error != NULL) {
        log_json(LOG_ERROR, "incremental rebalance failed", "{s:s}", "error", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_json(LOG_ERROR, "assign failed", "{s:s}", "error", rd_kafka_err2str(rerr));
    }
    if (c->retry_only) {
        metric_gauge_set(c->dm->retry_partitions, c->retry_assigned_count);
    } else {
        metric_gauge_set(c->dm->partitions, c->assigned_count);
        metric_gauge_set(c->dm->awaiting_handover, c->awaiting_count); /* revoked ones no longer await */
    }
}

/* Kafka is healthy for /readyz while every member's last word says so and no fetch of its topics was refused in the
 * last TOPIC_REFUSED_MS (an event consumer only). */
static void publish_health(consumer *c)
{
    if (c->retry_only)
        return;
    int ok = 1, failure = 0;
    int64_t now = time_monotonic_ms();
    for (int i = 0; i < c->member_count; i++) {
        const consumer_member *m = &c->members[i];
        int refused = m->topic_refused_ms != 0 && now - m->topic_refused_ms < TOPIC_REFUSED_MS;
        ok = ok && m->healthy && !refused;
        if (failure == 0 && !m->healthy)
            failure = m->last_failure;
        if (failure == 0 && refused)
            failure = RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
    }
    atomic_store(&c->dm->kafka_failure, failure);
    atomic_store(&c->dm->kafka_ok, ok);
    metric_gauge_set(c->dm->kafka_up, ok);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    consumer_member *m = opaque;
    (void)rk;
    /* /readyz says why it is not ready: "authentication failed", "TLS handshake failed". Only the reason: one
     * broker of several refusing a connection does not make the member unhealthy (its statistics say). */
    int refused = kafka_error_is_connection_failure(err);
    if (refused)
        m->last_failure = err;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        m->healthy = 0;
    if (refused || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        publish_health(m->c);
    /* connection failures are already logged by librdkafka's own log lines: keep them at debug here */
    log_level level = err == RD_KAFKA_RESP_ERR__FATAL                                              ? LOG_ERROR
                      : err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? LOG_DEBUG
                                                                                                      : LOG_WARN;
    log_json(level, "kafka error", "{s:s, s:s}", "error",
             rd_kafka_err2name((rd_kafka_resp_err_t)err), "reason", reason);
}

/* librdkafka threads: only log. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    log_level lvl = level <= 3 ? LOG_WARN : level <= 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG;
    log_json(lvl, "librdkafka", "{s:s, s:s}", "facility", fac, "message", buf);
}

/* kafka_stats_read's per-partition callback: the lag gauge of a partition of ours. */
static void on_partition_lag(void *ctx, const char *topic, int partition, long long lag)
{
    consumer *c = ctx;
    int type = topic_type(c, topic);
    if (type < 0)
        return;
    partition_state *ps = table_find(c, type, partition);
    if (ps != NULL && ps->lag != NULL)
        metric_gauge_set(ps->lag, lag >= 0 ? lag : 0);
}

/* Statistics (every statistics.interval.ms): broker and group health for /readyz, per-partition lag. Read in
 * place (kafka_stats.c): a jansson tree of the ~80 KB document stalled this loop 2.3 ms each time. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
    consumer_member *m = opaque;
    (void)rk;
    kafka_stats_health health;
    if (kafka_stats_read(json, json_len, &health, on_partition_lag, m->c) != 0)
        return 0;
    m->healthy = health.brokers_up > 0 && health.group_steady;
    if (health.group_steady)
        m->group_refused = 0;
    if (health.brokers_up > 0)
        m->last_failure = m->group_refused ? RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED : 0;
    publish_health(m->c);
    return 0; /* librdkafka frees json */
}

/* ---- lifecycle ------------------------------------------------------------------------------------------ */

/* librdkafka refuses a consumer whose fetch.max.bytes is below its message.max.bytes, although a consumer sends no
 * message and Kafka returns a record batch larger than fetch.max.bytes when it is the first of a fetch (KIP-74):
 * KAFKA_MESSAGE_MAX_BYTES, set for the producers' sake, would otherwise stop the dispatcher from starting. The
 * consumer's own message.max.bytes is lowered to its fetch.max.bytes. Returns 0, or -1 with errbuf. */
static int consumer_message_max_fits(rd_kafka_conf_t *conf, char *errbuf, size_t errlen)
{
    size_t fetch_max = 0, message_max = 0;
    if (kafka_config_get_size(conf, "fetch.max.bytes", &fetch_max) != 0 ||
        kafka_config_get_size(conf, "message.max.bytes", &message_max) != 0 || message_max <= fetch_max)
        return 0;
    char text[32];
    snprintf(text, sizeof text, "%zu", fetch_max);
    return kafka_config_set(conf, "message.max.bytes", text, errbuf, errlen);
}

/* The librdkafka configuration of member m (client.id suffix: its topic's event type when it has one topic of
 * its own; group.id: its group). NULL with errbuf on failure. */
static rd_kafka_conf_t *member_conf(consumer_member *m, char *errbuf, size_t errlen)
{
    consumer *c = m->c;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char client_id[256];
    client_id_of(m, NULL, client_id, sizeof client_id);
    /* With a member per event topic, each one's prefetch is a quarter of the single consumer's: eight busy topics
     * hold at most twice what one consumer held, one busy topic a quarter of it (docs/BENCHMARKS.md,
     * 2026-12-05 06:12). */
    const char *queue_kbytes = c->member_count > 1 ? MEMBER_QUEUE_MAX_KBYTES : QUEUE_MAX_KBYTES;
    const char *queue_messages = c->member_count > 1 ? MEMBER_QUEUE_MAX_MESSAGES : QUEUE_MAX_MESSAGES;
    /* The members' fetches together carry what one consumer's would. A fetch response is parsed whole into the
     * local queue, past its limits: each small event costs librdkafka ~500 bytes besides its own, so a 4 MiB
     * response of lz4-compressed 150-byte events took ~30 MiB, and eight backlogged topics with 4 MiB each held
     * 276 MiB (512 KiB each: ~110 MiB; 256 KiB: ~80 MiB, with the dispatch benchmark as fast; 128 KiB: ~66 MiB,
     * but 7-10 % slower; docs/BENCHMARKS.md, 2026-12-07 06:23 and 09:00). */
    char fetch_bytes[32];
    snprintf(fetch_bytes, sizeof fetch_bytes, "%ld", FETCH_MAX_BYTES / c->member_count);
    /* hookd's settings first; KAFKA_<PROPERTY> passthrough (applied by kafka_config_from_env) may override */
    if (kafka_config_set(conf, "group.id", m->group, errbuf, errlen) != 0 ||
        kafka_config_set(conf, "client.id", client_id, errbuf, errlen) != 0 ||
        /* the retry-tier consumer uses eager round-robin: librdkafka 2.0's sticky assignor asserts when a member
         * that joined with nothing to assign (tier topics not created yet) is destroyed */
        kafka_config_set(conf, "partition.assignment.strategy", c->retry_only ? "roundrobin" : "cooperative-sticky",
                         errbuf, errlen) != 0 ||
        kafka_config_set(conf, "enable.auto.commit", "true", errbuf, errlen) != 0 ||
        /* A crash (kill -9, OOM) repeats every delivery finished since the last commit: librdkafka's default 5 s
         * of them is tens of thousands of duplicate webhooks at full speed. Four commit requests a second (none
         * when nothing moved) cost nothing measurable in the dispatch benchmark and cut the duplicates of the
         * five-kill fault scenario from 3,000-3,800 (1 s) to 860-1,500 (docs/RELIABILITY.md, scenario 1) */
        kafka_config_set(conf, "auto.commit.interval.ms", "250", errbuf, errlen) != 0 ||
        /* an offset commit or heartbeat written behind a fetch request must not wait for a TCP ACK */
        kafka_config_set(conf, "socket.nagle.disable", "true", errbuf, errlen) != 0 ||
        /* librdkafka's default backoff grows to 10 s while a broker is unreachable: consumption resumed up to 10 s
         * after the broker was back (tests/e2e/test_resilience.py, Kafka outage tests). One attempt a second per
         * broker costs nothing while it is down. */
        kafka_config_set(conf, "reconnect.backoff.max.ms", "1000", errbuf, errlen) != 0 ||
        kafka_config_set(conf, "enable.auto.offset.store", "false", errbuf, errlen) != 0 ||
        kafka_config_set(conf, "auto.offset.reset", "earliest", errbuf, errlen) != 0 ||
        kafka_config_set(conf, "topic.metadata.refresh.interval.ms", "2000", errbuf, errlen) != 0 ||
        kafka_config_set(conf, "statistics.interval.ms", "1000", errbuf, errlen) != 0 ||
        /* Bounded prefetch: librdkafka's defaults (65,536 KiB, 100,000 messages) hold a backlog in memory. Once
         * the queue reaches a limit, librdkafka 2.0 looks at it again only when its broker thread next wakes up
         * (up to 1 s later), so before kick_fetcher() the queue had to hold a second of deliveries (16,384 KiB:
         * ~20,000 events/s at ~60 MiB RSS). With the kick, 8,192 KiB carries the same (~35,000/s) at ~51 MiB;
         * 4,096 KiB gave ~32,000/s. The count limit bounds small events, whose per-message overhead (~400 B) the
         * byte limit does not see: the 1 M-event backlog of 150 B events peaks at ~56 MiB RSS with 10,000.
         * docs/BENCHMARKS.md, 2026-11-29 14:40. */
        kafka_config_set(conf, "queued.max.messages.kbytes", queue_kbytes, errbuf, errlen) != 0 ||
        kafka_config_set(conf, "queued.min.messages", queue_messages, errbuf, errlen) != 0 ||
        /* and bounded fetch responses (defaults 50 MiB per fetch, 1 MiB per partition): halves the RSS with a
         * backlog (memory row 168 -> 82 MiB) for about 9 % of the dispatch row's throughput; a member's share of
         * fetch.max.bytes above */
        kafka_config_set(conf, "fetch.max.bytes", fetch_bytes, errbuf, errlen) != 0 ||
        kafka_config_set(conf, "max.partition.fetch.bytes", KAFKA_RECORD_BATCH_MAX_BYTES, errbuf, errlen) != 0 ||
        /* The tier consumer names every tier's partitions (120 by default) in each fetch, and each retry record
         * produced would complete its fetch at once: a hanging receiver's refusals (1,000 records/s in the
         * isolation benchmark) made the broker answer that many 120-partition fetches, whose garbage is the
         * latency tail of everyone else (consumer.h, "Members"). Its records are due seconds later, so the broker
         * may collect them for up to fetch.wait.max.ms (500 ms) first. */
        (c->retry_only && kafka_config_set(conf, "fetch.min.bytes", RETRY_FETCH_MIN_BYTES, errbuf, errlen) != 0) ||
        kafka_config_from_env(conf, errbuf, errlen) != 0 || consumer_message_max_fits(conf, errbuf, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, m);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    /* the limits in force (KAFKA_<PROPERTY> may have overridden hookd's); the same for every member. Each was set
     * above, so librdkafka holds a value; hookd's own stays if one could not be read. */
    size_t kbytes = strtoull(queue_kbytes, NULL, 10), messages = strtoull(queue_messages, NULL, 10), min_bytes = 1;
    (void)kafka_config_get_size(conf, "queued.max.messages.kbytes", &kbytes);
    (void)kafka_config_get_size(conf, "queued.min.messages", &messages);
    (void)kafka_config_get_size(conf, "fetch.min.bytes", &min_bytes);
    c->queue_max_bytes = (long long)kbytes * 1024;
    c->queue_max_msgs = (long long)messages;
    c->fetch_waits = min_bytes > 1;
    return conf;
}

/* Creates member m's client, wires its queue to the consumer's eventfd and subscribes it to its topics. Returns 0,
 * or -1 with errbuf (m->rk is then NULL or still to be destroyed by the caller). */
static int member_start(consumer_member *m, char *errbuf, size_t errlen)
{
    consumer *c = m->c;
    rd_kafka_conf_t *conf = member_conf(m, errbuf, errlen);
    if (conf == NULL)
        return -1;
    char kerr[512];
    if ((m->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof kerr)) == NULL) {
        snprintf(errbuf, errlen, "kafka consumer: %s", kerr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_poll_set_consumer(m->rk); /* main queue (errors, stats) forwarded to the consumer queue */
    if ((m->queue = rd_kafka_queue_get_consumer(m->rk)) == NULL) {
        snprintf(errbuf, errlen, "kafka queue: not available");
        return -1;
    }
    static const uint64_t one = 1;
    rd_kafka_queue_io_event_enable(m->queue, c->event_fd, &one, sizeof one);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(m->slot_hi - m->slot_lo);
    for (int i = m->slot_lo; i < m->slot_hi; i++)
        rd_kafka_topic_partition_list_add(subs, c->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(m->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errbuf, errlen, "kafka subscribe: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

/* Frees what consumer_new built when it failed part way (members are destroyed without a group close). */
static void consumer_discard(consumer *c)
{
    for (int i = 0; i < c->member_count; i++) {
        consumer_member *m = &c->members[i];
        if (m->queue != NULL) {
            rd_kafka_queue_io_event_enable(m->queue, -1, NULL, 0);
            rd_kafka_queue_destroy(m->queue);
        }
        if (m->rk != NULL)
            rd_kafka_destroy(m->rk);
    }
    if (c->event_fd >= 0) {
        event_loop_del(c->loop, c->event_fd);
        close(c->event_fd);
    }
    if (c->hold_fd >= 0) {
        event_loop_del(c->loop, c->hold_fd);
        close(c->hold_fd);
    }
    free(c);
}

/* Registers *fd, just created (-1 when that failed), on loop with tag. Returns 0, or -1 with errbuf ("what: errno")
 * after closing it and setting *fd to -1. */
static int watch_new_fd(event_loop *loop, int *fd, loop_tag tag, const char *what, char *errbuf, size_t errlen)
{
    if (*fd >= 0 && event_loop_add(loop, *fd, EPOLLIN, tag) == 0)
        return 0;
    snprintf(errbuf, errlen, "%s: %s", what, strerror(errno));
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
    return -1;
}

consumer *consumer_new(const consumer_options *opts, event_loop *loop, dispatcher_metrics *dm,
                       consumer_message_fn on_message, void *ctx, char *errbuf, size_t errlen)
{
    consumer *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    c->event_fd = -1;
    c->loop = loop;
    c->dm = dm;
    c->on_message = on_message;
    c->ctx = ctx;
    c->hold_fd = -1;
    c->retry_only = opts->retry_only;
    c->handover_timeout_ms = opts->handover_timeout_ms;
    for (int i = 0; i < EVENT_TYPE_COUNT; i++) {
        if (event_type_topic(opts->topic_prefix, i, c->topics[i], sizeof c->topics[i]) != 0) {
            snprintf(errbuf, errlen, "TOPIC_PREFIX is too long");
            consumer_discard(c);
            return NULL;
        }
    }
    c->topic_count = EVENT_TYPE_COUNT;
    for (int i = 0; i < opts->extra_count && i < CONSUMER_MAX_EXTRA; i++) {
        if (snprintf(c->topics[c->topic_count], TOPIC_MAX, "%s", opts->extra_topics[i]) >= TOPIC_MAX) {
            snprintf(errbuf, errlen, "TOPIC_PREFIX is too long");
            consumer_discard(c);
            return NULL;
        }
        c->topic_count++;
    }
    c->hold_fd = loop_timerfd_new();
    if (watch_new_fd(loop, &c->hold_fd, LOOP_TAG_HOLD, "hold timer", errbuf, errlen) != 0) {
        consumer_discard(c);
        return NULL;
    }
    c->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (watch_new_fd(loop, &c->event_fd, c->retry_only ? LOOP_TAG_KAFKA_RETRY : LOOP_TAG_KAFKA, "kafka queue", errbuf,
                     errlen) != 0) {
        consumer_discard(c);
        return NULL;
    }
    /* the members: the tier topics together; the event topics one each, or together */
    if (c->retry_only) {
        c->members[0] = (consumer_member){.slot_lo = EVENT_TYPE_COUNT, .slot_hi = c->topic_count};
        c->member_count = 1;
    } else if (opts->member_per_topic) {
        for (int i = 0; i < EVENT_TYPE_COUNT; i++)
            c->members[i] = (consumer_member){.slot_lo = i, .slot_hi = i + 1};
        c->member_count = EVENT_TYPE_COUNT;
    } else {
        c->members[0] = (consumer_member){.slot_lo = 0, .slot_hi = EVENT_TYPE_COUNT};
        c->member_count = 1;
    }
    /* each event topic's members form a group of their own: librdkafka 2.0's cooperative-sticky assignor can loop
     * for ever in a group whose members subscribe to different topics (group_handover.h) */
    int named = snprintf(c->group, sizeof c->group, "%s", opts->group) < (int)sizeof c->group;
    for (int i = 0; i < c->member_count; i++) {
        consumer_member *m = &c->members[i];
        m->c = c;
        m->recheck_wait_ms = DRY_RECHECK_MS;
        if (c->member_count > 1)
            named = named && group_handover_topic_group(opts->group, event_type_name(m->slot_lo), m->group,
                                                        sizeof m->group) == 0;
        else
            snprintf(m->group, sizeof m->group, "%s", c->group);
    }
    if (!named) {
        snprintf(errbuf, errlen, "KAFKA_GROUP is too long");
        consumer_discard(c);
        return NULL;
    }
    for (int i = 0; i < c->member_count; i++) {
        if (member_start(&c->members[i], errbuf, errlen) != 0) {
            consumer_discard(c);
            return NULL;
        }
    }
    return c;
}

/* A consumer error delivered as a message to member mb. The broker's refusals (its ACLs) are named in the log and
 * in /readyz (publish_health): without Read on its group a member never joins it; without Read on a topic (Describe
 * alone lets it join and be assigned the topic's partitions) every fetch of it is refused. */
static void message_error(consumer *c, consumer_member *mb, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    const char *topic = m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : "";
    if (m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
        if (!mb->group_refused) /* librdkafka reports it once, and again after a success */
            log_json(LOG_ERROR, "consumer group not authorized: the broker's ACLs must allow Read on it", "{s:s, s:s}",
                     "group", mb->group, "reason", rd_kafka_message_errstr(m));
        mb->group_refused = 1;
        mb->last_failure = m->err;
        publish_health(c);
        return;
    }
    if (m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        int type = topic_type(c, topic);
        int64_t now = time_monotonic_ms();
        /* a refusal that names no topic of ours: logged again only after TOPIC_REFUSED_MS without one */
        int64_t logged = type >= 0 ? c->topic_refused_logged_ms[type] : mb->topic_refused_ms;
        if (logged == 0 || now - logged >= TOPIC_REFUSED_MS) {
            log_json(LOG_ERROR, "topic not authorized: the broker's ACLs must allow Describe and Read on it",
                     "{s:s, s:s, s:s}", "topic", topic, "group", mb->group, "reason", rd_kafka_message_errstr(m));
            if (type >= 0)
                c->topic_refused_logged_ms[type] = now;
        }
        mb->topic_refused_ms = now;
        publish_health(c);
        return;
    }
    if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        int type = topic_type(c, topic);
        /* topics appear when producer-api creates them: say so once per topic, at debug level */
        if (type < 0 || !c->unknown_topic_logged[type])
            log_json(LOG_DEBUG, "subscribed topic not available yet", "{s:s, s:s}", "topic", topic, "error",
                     rd_kafka_message_errstr(m));
        if (type >= 0)
            c->unknown_topic_logged[type] = 1;
        return;
    }
    log_json(LOG_WARN, "kafka consumer error", "{s:s, s:s, s:s}", "topic", topic, "error",
             rd_kafka_err2name(m->err), "reason", rd_kafka_message_errstr(m));
}

void consumer_set_room(consumer *c, consumer_room_fn room)
{
    c->room = room;
}

/* Seeks one assigned partition of member m (not held, served from before) to the offset after the last message
 * served, which wakes librdkafka's broker thread (kick_fetcher). One partition, not all: a seek is applied partition
 * by partition, and a fetch the woken broker thread sent between two of them carried the rest at their old version;
 * their messages filled the queue to its limits and were then dropped unseen, so the fetcher stopped again while
 * the queue did not look full when it ran dry (230-900 ms without a delivery in about one fan-out benchmark run in
 * twenty; docs/BENCHMARKS.md, 2026-12-06 13:28). A partition with messages on the broker past that offset (the high
 * watermark of its last fetch response) is preferred; with_lag_only: only such a partition will do. Nothing is
 * skipped or repeated: the member's queue is empty, and a response in flight for the partition is discarded by
 * librdkafka and fetched again. Returns 1 when it seeked. */
static int kick_one(consumer_member *m, int with_lag_only)
{
    consumer *c = m->c;
    partition_state *chosen = NULL, *fallback = NULL;
    for (int t = m->slot_lo; t < m->slot_hi && chosen == NULL; t++)
        for (int p = 0; p < c->rows[t].cap && chosen == NULL; p++) {
            partition_state *ps = c->rows[t].parts[p];
            if (ps == NULL || ps->held || ps->next_offset < 0) /* the table holds assigned partitions only */
                continue;
            int64_t low = 0, high = -1;
            if (rd_kafka_get_watermark_offsets(m->rk, ps->topic, ps->partition, &low, &high) ==
                    RD_KAFKA_RESP_ERR_NO_ERROR &&
                high > ps->next_offset)
                chosen = ps;
            else if (fallback == NULL)
                fallback = ps;
        }
    if (chosen == NULL && !with_lag_only)
        chosen = fallback;
    if (chosen == NULL)
        return 0;
    rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(seek, chosen->topic, chosen->partition)->offset = chosen->next_offset;
    int kicked = seek_to(m->rk, seek, "fetch kick") == 0;
    rd_kafka_topic_partition_list_destroy(seek);
    if (kicked)
        metric_counter_add(c->dm->fetch_kicks, 1);
    return kicked;
}

/* librdkafka 2.0 stops fetching once the local queue holds queued.min.messages or queued.max.messages.kbytes,
 * and looks at the queue again only when its broker thread next wakes up: after up to a second (librdkafka
 * issue #2879; 2.2 added fetch.queue.backoff.ms for it). A dispatcher that empties a full queue faster than that
 * idles: the dispatch benchmark consumed one full queue (then 16 MiB) per second and no more. So when member m's
 * queue runs dry after about a full queue's worth was consumed, the fetcher most likely stopped at a limit, and
 * kick_one() wakes it at once (a pause and resume does not wake it). Otherwise, when m had consumed something since
 * it last ran dry, recheck_dry() looks again DRY_RECHECK_MS later: still dry with messages waiting on the broker
 * means the fetcher is asleep all the same, and it is kicked then (unless fetches wait at the broker by design:
 * fetch.min.bytes above 1, as the tier consumer's). A paused consumer is left alone. */
static void kick_fetcher(consumer_member *m)
{
    consumer *c = m->c;
    int full = m->dry_msgs * 4 >= c->queue_max_msgs * 3 || m->dry_bytes * 4 >= c->queue_max_bytes * 3;
    int consumed = m->dry_msgs > 0;
    m->dry_msgs = m->dry_bytes = 0;
    if (c->pause_reasons != 0)
        return;
    if (full)
        kick_one(m, 0);
    /* not where fetches wait at the broker for fetch.min.bytes (the tier consumer): a dry queue with messages on
     * the broker is how such a fetch waits, and a kick would only restart the wait */
    if ((full || consumed) && !c->fetch_waits && m->recheck_at_ms == 0) {
        m->recheck_at_ms = time_monotonic_ms() + m->recheck_wait_ms;
        hold_rearm(c);
    }
}

/* The hold timer's look at member m's dry queue (kick_fetcher): when its recheck is due and nothing arrived since,
 * a partition with messages on the broker is kicked, and the recheck comes again after twice the wait (up to
 * DRY_RECHECK_MAX_MS: a fetch slower than the wait is discarded by each kick, so the waits grow until one gets
 * through). A message consumed resets the wait (consumer_drain). */
static void recheck_dry(consumer_member *m, int64_t now)
{
    if (m->recheck_at_ms == 0 || m->recheck_at_ms > now)
        return;
    m->recheck_at_ms = 0;
    /* a message consumed since would have disarmed it (consumer_drain) */
    if (m->c->pause_reasons != 0 || rd_kafka_queue_length(m->queue) != 0)
        return; /* messages wait for room, or paused */
    if (!kick_one(m, 1))
        return; /* nothing waits on the broker: an idle topic's fetch waits there for new messages */
    m->recheck_wait_ms = m->recheck_wait_ms * 2 < DRY_RECHECK_MAX_MS ? m->recheck_wait_ms * 2 : DRY_RECHECK_MAX_MS;
    m->recheck_at_ms = now + m->recheck_wait_ms;
}

/* Hands one message (or consumer error) of member m to the dispatcher. */
static void serve_message(consumer *c, consumer_member *m, rd_kafka_message_t *msg)
{
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        message_error(c, m, msg);
        return;
    }
    partition_state *ps = table_find(c, topic_type(c, rd_kafka_topic_name(msg->rkt)), (int)msg->partition);
    offset_state seen;
    if (ps != NULL && !ps->held)
        ps->next_offset = msg->offset + 1;
    if (ps == NULL || ps->held) {
        /* a held partition was seeked back: this one comes again; one awaiting the handover, from where its read
         * says (retry_handover), at the latest from the first one dropped */
        if (ps != NULL && ps->awaiting_handover && ps->dropped_from < 0)
            ps->dropped_from = msg->offset;
    } else if (ps->previous != NULL && (seen = lost_state_of(ps, msg->offset)) != OFFSET_UNSEEN) {
        if (seen == OFFSET_FINISHED) {
            if (consumer_track(ps, msg->offset) == 0)
                consumer_complete(ps, msg->offset);
            metric_counter_add(c->dm->finished_before_loss, 1);
        } else {
            consumer_hold(ps, msg->offset, LOST_IN_FLIGHT_RECHECK_MS); /* asked again then */
        }
    } else {
        c->on_message(c->ctx, ps, msg);
    }
}

/* The members are polled in turn, one message each, so a backlog on one event topic does not keep the others'
 * fresh events waiting behind a whole batch. A member found empty is skipped until the eventfd fires again:
 * librdkafka writes it when a queue that was served (polled) gets something, so a member's new messages, rebalance
 * or statistics always fire it, and the seven idle members of a busy dispatcher are not polled on every pass. */
int consumer_drain(consumer *c, int max, int64_t budget_us)
{
    if (loop_fd_drain(c->event_fd))
        c->empty_members = 0;
    int64_t stop_at = time_monotonic_us() + budget_us;
    unsigned all = (1u << c->member_count) - 1;
    unsigned empty = c->empty_members;
    if (empty == all)
        return 0;
    int next = c->next_member;
    for (int n = 0; n < max;) {
        if (c->room != NULL && !c->room(c->ctx))
            return 1; /* the rest stays in librdkafka's (bounded) queues until there is room */
        if (n > 0 && time_monotonic_us() >= stop_at)
            return 1; /* the loop's other work gets a turn; the rest is served on the next pass */
        consumer_member *m = &c->members[next];
        unsigned bit = 1u << next;
        next = (next + 1) % c->member_count;
        c->next_member = next;
        if (empty & bit)
            continue;
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->rk, 0);
        if (msg == NULL) {
            kick_fetcher(m);
            c->empty_members = (empty |= bit);
            if (empty == all)
                return 0;
            continue;
        }
        n++;
        m->recheck_at_ms = 0; /* not dry: a recheck due now finds nothing to do (the timer is not re-armed here) */
        m->recheck_wait_ms = DRY_RECHECK_MS;
        m->dry_msgs++;
        m->dry_bytes += (long long)msg->len;
        serve_message(c, m, msg);
        rd_kafka_message_destroy(msg);
    }
    return 1;
}

int consumer_close(consumer *c)
{
    if (c == NULL)
        return 0;
    int rc = 0;
    c->dirty = 1;
    consumer_store_offsets(c);
    for (int i = 0; i < c->member_count; i++) {
        rd_kafka_resp_err_t err = rd_kafka_commit(c->members[i].rk, NULL, 0);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            log_json(LOG_ERROR, "final commit failed", "{s:s, s:s}", "topic", c->topics[c->members[i].slot_lo],
                     "error", rd_kafka_err2str(err));
            rc = -1;
        }
    }
    if (rc == 0)
        log_json(LOG_INFO, "offsets committed", NULL);
    for (int i = 0; i < c->member_count; i++) {
        consumer_member *m = &c->members[i];
        rd_kafka_queue_io_event_enable(m->queue, -1, NULL, 0);
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(m->rk); /* serves the final revoke through rebalance_cb */
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
            log_json(LOG_WARN, "consumer close", "{s:s}", "error", rd_kafka_err2str(err));
    }
    for (int i = 0; i < c->member_count; i++) {
        rd_kafka_queue_destroy(c->members[i].queue);
        rd_kafka_destroy(c->members[i].rk);
    }
    for (int t = 0; t < c->topic_count; t++) {
        for (int p = 0; p < c->rows[t].cap; p++) {
            partition_state *ps = c->rows[t].parts[p];
            if (ps != NULL) {
                ps->assigned = 0;
                ps->c = NULL;
                ps->member = NULL;
                consumer_partition_unref(ps);
            }
        }
        free(c->rows[t].parts);
    }
    for (int i = 0; i < c->departed_count; i++)
        consumer_partition_unref(c->departed[i].ps);
    free(c->departed);
    event_loop_del(c->loop, c->event_fd);
    close(c->event_fd);
    event_loop_del(c->loop, c->hold_fd);
    close(c->hold_fd);
    free(c);
    return rc;
}
