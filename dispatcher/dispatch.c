/* dispatch — see dispatch.h. */
#include "dispatch.h"

#include "breaker.h"
#include "envelope.h"
#include "event_types.h"
#include "log.h"
#include "refusal_log.h"
#include "timeutil.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct event_ctx;

/* One delivery of an event to one webhook; user pointer of its delivery_request and the hand-off token. */
struct dispatch_handoff {
    struct event_ctx *ev;        /* back pointer */
    size_t index;                /* into ev->subs->items */
    int attempt;                 /* 1 = first delivery */
    int admitted;                /* counted in flight by the breaker table */
    int probe;                   /* admitted as the breaker's half-open probe */
    breaker_waiter wait;         /* link in the webhook's FIFO while it waits for a slot */
};
typedef struct dispatch_handoff delivery_slot;

/* One consumed event (or due retry) in progress. Owned by the dispatch (listed in d->events). */
typedef struct event_ctx {
    struct dispatch *d;
    partition_state *ps;         /* reference */
    int64_t offset;
    envelope env;                /* owned (data) */
    retry_record *rec;           /* owned: the retry record of a retry-tier message (its env moved to env), or NULL */
    char *body;                  /* owned; shared by every delivery */
    size_t body_len;
    subscriber_list *subs;       /* reference, NULL while waiting for Redis */
    size_t remaining;            /* deliveries not finished */
    delivery_slot *slots;        /* owned, subs->count entries */
    struct event_ctx *prev, *next;        /* all events in progress */
    struct event_ctx *wait_next;          /* FIFO of events waiting for Redis */
} event_ctx;

/* A partition held at an event for a backlogged webhook (breaker_backlogged), released once the webhook's FIFO is
 * half empty. One entry per partition (a reference to it), the webhook of its latest hold. */
typedef struct backlog_hold {
    long long webhook_id;
    partition_state *ps;         /* reference owned by the entry */
} backlog_hold;

/* The longest a partition waits for a backlogged webhook before its head event is looked at again (the release
 * normally comes first, when the webhook's FIFO is half empty). */
#define BACKLOG_HOLD_MAX_MS 1000

struct dispatch {
    dispatch_options opts;
    subscriber_cache *cache;     /* borrowed */
    dispatcher_metrics *dm;      /* borrowed */
    consumer *consumer;          /* borrowed */
    consumer *retry_consumer;    /* borrowed, may be NULL */
    delivery_engine *engine;     /* borrowed */
    breaker_table *breaker;      /* owned */
    event_ctx *events;           /* every event in progress */
    event_ctx *wait_head, *wait_tail;     /* waiting for Redis, in consumption order */
    size_t waiting;
    size_t in_flight;            /* deliveries started and not finished */
    size_t queued;               /* deliveries waiting in a per-webhook FIFO (count toward max_in_flight) */
    size_t handoffs;             /* hand-offs to the failure hook not yet durable */
    int intake_stopped;
    int backpressure;            /* MAX_IN_FLIGHT reached, not yet back to half */
    backlog_hold *holds;         /* owned array: partitions waiting for backlogged webhooks */
    size_t hold_count, hold_cap;
    refusal_log *refusals;       /* owned: refused deliveries summed per webhook for the log */
};

dispatch *dispatch_new(const dispatch_options *opts, subscriber_cache *cache, dispatcher_metrics *dm)
{
    dispatch *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->opts = *opts;
    d->cache = cache;
    d->dm = dm;
    d->breaker = breaker_new(opts->per_webhook_in_flight, opts->per_webhook_queue, opts->breaker_failures, dm);
    d->refusals = refusal_log_new();
    if (d->breaker == NULL || d->refusals == NULL) {
        breaker_free(d->breaker);
        refusal_log_free(d->refusals);
        free(d);
        return NULL;
    }
    return d;
}

void dispatch_attach(dispatch *d, consumer *c, consumer *retry_consumer, delivery_engine *eng)
{
    d->consumer = c;
    d->retry_consumer = retry_consumer;
    d->engine = eng;
}

size_t dispatch_in_flight(const dispatch *d)
{
    return d->in_flight + d->queued;
}

int dispatch_has_room(void *ctx)
{
    const dispatch *d = ctx;
    return d->in_flight + d->queued + d->waiting < (size_t)d->opts.max_in_flight;
}

size_t dispatch_handoffs(const dispatch *d)
{
    return d->handoffs;
}

size_t dispatch_waiting(const dispatch *d)
{
    return d->waiting;
}

void dispatch_stop_intake(dispatch *d)
{
    d->intake_stopped = 1;
}

static void event_free(dispatch *d, event_ctx *ev)
{
    if (ev->prev != NULL)
        ev->prev->next = ev->next;
    else
        d->events = ev->next;
    if (ev->next != NULL)
        ev->next->prev = ev->prev;
    envelope_clear(&ev->env);
    if (ev->rec != NULL) {
        retry_record_clear(ev->rec);
        free(ev->rec);
    }
    free(ev->body);
    free(ev->slots);
    subscriber_list_release(ev->subs);
    consumer_partition_unref(ev->ps);
    free(ev);
}

/* The event is fully handled: its offset may be committed. */
static void event_complete(dispatch *d, event_ctx *ev)
{
    consumer_complete(ev->ps, ev->offset);
    event_free(d, ev);
}

/* Holds one delivery-log record for the next flush (built without jansson: this runs per attempt). */
static void log_delivery(dispatch *d, long long webhook_id, const char *event_id, int attempt,
                         const delivery_result *res)
{
    if (d->opts.delivery_log == NULL)
        return;
    char at[TIME_TEXT_MAX], text[1024];
    time_format_rfc3339(res->started_at_ms > 0 ? res->started_at_ms : time_now_ms(), 1, at);
    json_buf b;
    json_buf_init(&b, text, sizeof text);
    json_buf_raw(&b, "{", 1);
    json_buf_key(&b, "attempted_at");
    json_buf_string(&b, at);
    json_buf_key(&b, "event_id");
    json_buf_string(&b, event_id);
    json_buf_key(&b, "attempt");
    json_buf_int(&b, attempt);
    json_buf_key(&b, "status");
    if (res->status > 0)
        json_buf_int(&b, res->status);
    else
        json_buf_raw(&b, "null", 4);
    json_buf_key(&b, "latency_ms");
    json_buf_fixed1(&b, res->latency_ms);
    json_buf_key(&b, "error");
    json_buf_string(&b, res->error);
    json_buf_raw(&b, "}", 1);
    if (!b.overflow) /* cannot happen with these fields (event ids and errors are bounded); dropped if it does */
        webhook_log_buffer_add(d->opts.delivery_log, webhook_id, text);
}

/* The "delivery attempt" log line: warn for a failed or refused attempt; info for a success, and only with
 * LOG_ATTEMPTS=all (the delivery log and the deliveries counter keep every success; a line per success is
 * megabytes of logs a second at full speed). */
static void log_attempt(const dispatch *d, const event_ctx *ev, const delivery_slot *slot, const subscriber *sub,
                        const delivery_result *res)
{
    if (res->ok && !d->opts.log_every_attempt)
        return;
    log_line l;
    if (!log_line_begin(&l, res->ok ? LOG_INFO : LOG_WARN, "delivery attempt"))
        return;
    json_buf *b = &l.fields;
    json_buf_key(b, "event_id");
    json_buf_string(b, ev->env.id);
    json_buf_key(b, "event_type");
    json_buf_string(b, event_type_name(ev->env.type));
    json_buf_key(b, "organization_id");
    json_buf_int(b, ev->env.organization_id);
    json_buf_key(b, "webhook_id");
    json_buf_int(b, sub->id);
    json_buf_key(b, "url");
    json_buf_string(b, sub->url);
    json_buf_key(b, "attempt");
    json_buf_int(b, slot->attempt);
    json_buf_key(b, "outcome");
    json_buf_string(b, dm_outcome_name(res->outcome));
    json_buf_key(b, "status");
    json_buf_int(b, res->status);
    json_buf_key(b, "latency_ms");
    json_buf_int(b, (long long)(res->latency_ms + 0.5));
    json_buf_key(b, "error");
    json_buf_string(b, res->error); /* null on success */
    log_line_end(&l);
}

/* Hands one delivery of ev to the failure hook (a failed attempt, or parked: res NULL) and counts the hand-off
 * until the hook completes it. Returns what the hook returned (1: dead-lettered). */
static int call_hook(dispatch *d, event_ctx *ev, delivery_slot *slot, const subscriber *sub,
                     const delivery_result *res, int quiet, int parked)
{
    envelope view; /* the event's data lives in its delivery body only (fan_out) */
    if (envelope_view_in_body(&ev->env, ev->body, ev->body_len, &view) != 0)
        view = ev->env;
    failed_delivery f = {&view, sub->id, sub->url, slot->attempt, ev->rec, res, quiet, parked};
    d->handoffs++;
    return d->opts.on_failure(d->opts.failure_ctx, &f, slot);
}

/* Hands a failed attempt to the hook. Returns 1 when the hook owns the slot's completion now, 0 when
 * there is no hook (the slot is finished by the caller). */
static int hand_off(dispatch *d, event_ctx *ev, delivery_slot *slot, const subscriber *sub,
                    const delivery_result *res, int quiet)
{
    if (d->opts.on_failure == NULL)
        return 0;
    if (call_hook(d, ev, slot, sub, res, quiet, 0) && quiet)
        refusal_log_note_dead(d->refusals, sub->id);
    return 1;
}

/* Logs (unless quiet: a refusal summed by the refusal log) and counts one attempt; hands a failure to the hook.
 * Returns 1 when the hook took it (completes later). */
static int record_attempt(dispatch *d, event_ctx *ev, delivery_slot *slot, const subscriber *sub,
                          const delivery_result *res, int quiet)
{
    dm_count_attempt(d->dm, res->outcome, res->status, res->latency_ms / 1000.0);
    if (res->tls_handshake != DELIVERY_HTTP_TLS_NONE)
        dm_count_tls_handshake(d->dm, res->tls_handshake == DELIVERY_HTTP_TLS_RESUMED);
    if (!quiet)
        log_attempt(d, ev, slot, sub, res);
    log_delivery(d, sub->id, ev->env.id, slot->attempt, res);
    if (slot->admitted) {
        slot->admitted = 0;
        breaker_finish(d->breaker, sub->id, res->ok, slot->probe, time_monotonic_us() / 1000);
    }
    if (res->ok)
        return 0;
    return hand_off(d, ev, slot, sub, res, quiet);
}

/* A delivery finished (or could not start): account it against its event. */
static void slot_done(dispatch *d, event_ctx *ev)
{
    if (--ev->remaining == 0)
        event_complete(d, ev);
}

void dispatch_handoff_done(dispatch_handoff *h)
{
    event_ctx *ev = h->ev;
    dispatch *d = ev->d;
    d->handoffs--;
    slot_done(d, ev);
}

/* A delivery that is not sent (breaker open, receiver backlog full) still uses its attempt: logged, counted and
 * handed to the retry stage like any failed attempt (status null). Returns 1 when the hook took it. */
static int refuse(dispatch *d, event_ctx *ev, delivery_slot *slot, const subscriber *sub, breaker_verdict v)
{
    int64_t now = time_now_ms();
    int open = v == BREAKER_REJECT_OPEN;
    delivery_result res = {0, open ? DM_BREAKER_OPEN : DM_BACKLOG_FULL, 0, 0.0,
                           open ? "circuit breaker open" : "receiver backlog full", now / 1000, -1, now};
    slot->admitted = 0;
    /* thousands a second while a receiver is down: the first of each webhook's interval gets its lines, the rest
     * are summed (refusal_log.h), unless LOG_ATTEMPTS=all */
    int quiet = !d->opts.log_every_attempt &&
                !refusal_log_note(d->refusals, sub->id, sub->url, open ? REFUSED_BREAKER_OPEN : REFUSED_BACKLOG_FULL,
                                  time_monotonic_ms());
    return record_attempt(d, ev, slot, sub, &res, quiet);
}

/* Hands an admitted delivery to libcurl (its DELIVERY_TIMEOUT starts now). Returns 1 when the slot completes
 * later (in flight, or a failure the hook took), 0 when it is already finished. */
static int launch(dispatch *d, event_ctx *ev, delivery_slot *slot)
{
    const subscriber *sub = &ev->subs->items[slot->index];
    int64_t now = time_now_ms();
    delivery_request req = {sub->url, sub->secret, subscriber_previous_secret(sub, now), sub->id, ev->env.id,
                            ev->body, ev->body_len, slot};
    if (delivery_start(d->engine, &req) == 0) {
        d->in_flight++;
        metric_gauge_add(d->dm->in_flight, 1);
        return 1;
    }
    delivery_result res = {0, DM_NETWORK_ERROR, 0, 0.0, "delivery could not be started", now / 1000, -1, now};
    return record_attempt(d, ev, slot, sub, &res, 0);
}

/* A waiter left its webhook's FIFO: its slot, no longer counted as queued. */
static delivery_slot *leave_queue(dispatch *d, breaker_waiter *w)
{
    d->queued--;
    metric_gauge_add(d->dm->queued, -1);
    return (delivery_slot *)((char *)w - offsetof(delivery_slot, wait));
}

/* Releases the partition of hold i and forgets the hold (the last one takes its place). */
static void release_hold_at(dispatch *d, size_t i)
{
    consumer_release(d->holds[i].ps); /* a no-op when its delay already ran out or it was revoked */
    consumer_partition_unref(d->holds[i].ps);
    d->holds[i] = d->holds[--d->hold_count];
}

/* Releases the partitions held for webhook id once its FIFO is down to half of PER_WEBHOOK_QUEUE (the other
 * half covers the re-fetch), and forgets them. Holds are taken only while deliveries are not parked (may_park). */
static void release_backlog_holds(dispatch *d, long long id)
{
    if (breaker_queued(d->breaker, id) > breaker_max_queue(d->breaker) / 2)
        return;
    for (size_t i = 0; i < d->hold_count;) {
        if (d->holds[i].webhook_id != id) {
            i++;
            continue;
        }
        release_hold_at(d, i);
    }
}

/* Starts what webhook id's FIFO can start now (a slot came free), or fails it all when its breaker opened. */
static void drain(dispatch *d, long long id)
{
    breaker_verdict v;
    breaker_waiter *w;
    while ((w = breaker_dequeue(d->breaker, id, &v)) != NULL) {
        delivery_slot *slot = leave_queue(d, w);
        event_ctx *ev = slot->ev;
        int later;
        if (v == BREAKER_GO) {
            slot->admitted = 1;
            slot->probe = 0;
            later = launch(d, ev, slot);
        } else {
            later = refuse(d, ev, slot, &ev->subs->items[slot->index], v);
        }
        if (!later)
            slot_done(d, ev);
    }
    if (d->hold_count > 0)
        release_backlog_holds(d, id);
}

void dispatch_on_attempt_done(void *ctx, const delivery_request *req, const delivery_result *res)
{
    dispatch *d = ctx;
    delivery_slot *slot = req->user;
    event_ctx *ev = slot->ev;
    long long id = req->webhook_id;
    d->in_flight--;
    metric_gauge_add(d->dm->in_flight, -1);
    if (record_attempt(d, ev, slot, &ev->subs->items[slot->index], res, 0) == 0)
        slot_done(d, ev);
    drain(d, id); /* a slot came free (or the breaker opened) */
}

/* Whether a webhook that is behind (breaker_behind) gets its deliveries parked now (else: queued, or for a fresh
 * event its partition held). Parking needs a retry stage, and it pays only while the dispatcher has capacity to
 * spare for the neighbours it frees: below half of MAX_IN_FLIGHT taken. Past that the dispatcher itself is the bottleneck (every webhook is
 * behind, not one slow receiver) and parking only moves deliveries to Kafka and back: in the dispatch benchmark
 * (100,000 events, 8 webhooks, one fast receiver) 38,000-68,000 deliveries were parked per run, RSS went past
 * 64 MiB and deliveries came back late; holds cost that row 29-58 partition pauses. */
static int may_park(const dispatch *d)
{
    return d->opts.has_retries && d->in_flight + d->queued < (size_t)d->opts.max_in_flight / 2;
}

/* Parks one delivery of a backlogged webhook (dispatch.h, "Parking"): the failure hook writes it to a retry tier
 * (retry.h) without using its attempt; nothing is logged per delivery (the first of each webhook's interval
 * gets a line, the rest are summed: refusal_log.h) and nothing goes to the delivery log, which lists attempts.
 * Returns 1: the hook completes the slot once the record is durable. */
static int park(dispatch *d, event_ctx *ev, delivery_slot *slot, const subscriber *sub)
{
    metric_counter_add(d->dm->deliveries_parked, 1);
    if (refusal_log_note(d->refusals, sub->id, sub->url, PARKED_BACKLOGGED, time_monotonic_ms()) ||
        d->opts.log_every_attempt)
        log_json(LOG_INFO, "delivery parked: its webhook is backlogged", "{s:s, s:I, s:s, s:i, s:i}", "event_id",
                 ev->env.id, "webhook_id", (json_int_t)sub->id, "url", sub->url, "attempt", slot->attempt,
                 "times_parked", (ev->rec != NULL ? ev->rec->parked : 0) + 1);
    call_hook(d, ev, slot, sub, NULL, 1, 1);
    return 1;
}

/* Starts, queues, parks or refuses one delivery. Returns 1 when the slot completes later (in flight, queued or
 * handed off), 0 when it is already finished. */
static int start_one(dispatch *d, event_ctx *ev, size_t index, int attempt)
{
    const subscriber *sub = &ev->subs->items[index];
    delivery_slot *slot = &ev->slots[index];
    slot->ev = ev;
    slot->index = index;
    slot->attempt = attempt;
    if (may_park(d) && breaker_behind(d->breaker, sub->id, time_monotonic_us() / 1000))
        return park(d, ev, slot, sub);
    /* a due retry may be the half-open probe; without retry tiers any delivery may (else nothing ever would) */
    breaker_verdict v = breaker_admit(d->breaker, sub->id, ev->rec != NULL || !d->opts.has_retries, &slot->wait,
                                      time_monotonic_us() / 1000);
    switch (v) {
    case BREAKER_QUEUED:
        d->queued++;
        metric_gauge_add(d->dm->queued, 1);
        return 1;
    case BREAKER_REJECT_OPEN:
    case BREAKER_REJECT_FULL:
        return refuse(d, ev, slot, sub, v);
    case BREAKER_GO:
    case BREAKER_PROBE:
        break;
    }
    slot->admitted = 1;
    slot->probe = v == BREAKER_PROBE;
    /* the FIFO was empty (else this one would have queued), so a synchronous failure leaves nothing to drain */
    return launch(d, ev, slot);
}

/* Fans an event with known subscribers out. The event may be freed on return. */
static void fan_out(dispatch *d, event_ctx *ev)
{
    size_t n = ev->subs->count;
    size_t only = n; /* a retry goes to its one webhook */
    if (ev->rec != NULL) {
        const subscriber *sub = subscriber_list_find(ev->subs, ev->rec->webhook_id);
        if (sub == NULL) {
            metric_counter_add(d->dm->retries_dropped, 1);
            log_json(LOG_WARN, "retry dropped: the webhook no longer exists", "{s:s, s:I, s:i}", "event_id",
                     ev->env.id, "webhook_id", (json_int_t)ev->rec->webhook_id, "attempt", ev->rec->attempt);
            event_complete(d, ev);
            return;
        }
        only = (size_t)(sub - ev->subs->items);
    } else if (n == 0) {
        metric_counter_add(d->dm->events_no_subscribers, 1);
        event_complete(d, ev);
        return;
    }
    ev->body = envelope_delivery_body(&ev->env, &ev->body_len);
    ev->slots = calloc(n, sizeof *ev->slots);
    if (ev->body == NULL || ev->slots == NULL) {
        /* out of memory: leave the event unfinished so its offset is never committed past it */
        log_json(LOG_ERROR, "out of memory building deliveries", "{s:s}", "event_id", ev->env.id);
        return;
    }
    free(ev->env.data); /* the body holds the same bytes; failures take a view of it (hand_off) */
    ev->env.data = NULL;
    ev->remaining = 1; /* holds the event while starting */
    for (size_t i = 0; i < n; i++) {
        if (only != n && i != only)
            continue;
        ev->remaining++;
        if (start_one(d, ev, i, ev->rec != NULL ? ev->rec->attempt : 1) == 0)
            ev->remaining--;
    }
    slot_done(d, ev);
}

/* Records that ps is held for webhook id (one entry per partition). Returns 0, or -1 out of memory. */
static int remember_hold(dispatch *d, long long id, partition_state *ps)
{
    for (size_t i = 0; i < d->hold_count; i++)
        if (d->holds[i].ps == ps) {
            d->holds[i].webhook_id = id;
            return 0;
        }
    if (d->hold_count == d->hold_cap) {
        size_t cap = d->hold_cap ? d->hold_cap * 2 : 16;
        backlog_hold *grown = realloc(d->holds, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        d->holds = grown;
        d->hold_cap = cap;
    }
    d->holds[d->hold_count++] = (backlog_hold){id, consumer_partition_ref(ps)};
    return 0;
}

/* When its deliveries are not parked (may_park: no retry stage, or the dispatcher past half of MAX_IN_FLIGHT; or
 * the webhook is only catching up from a burst, not behind: breaker_behind), a fresh event with a backlogged
 * subscriber (a full FIFO whose receiver is slower than its burst:
 * breaker_backlogged) is put back into Kafka instead of queueing behind it: the event's offset is untracked (the
 * commit point stays at it) and its partition is held there (paused and seeked back; librdkafka drops what it
 * prefetched of it) until that webhook's FIFO is half empty, BACKLOG_HOLD_MAX_MS at most. Without this, a
 * healthy but slow receiver with a burst filled all of MAX_IN_FLIGHT with its queue, the consumer stopped taking
 * messages, and every other partition's events waited behind the burst's in librdkafka's local queue. Only the
 * held partition waits now (and every other webhook of it: parking, dispatch.h, spares them that); the rest of
 * the budget stays for other webhooks. Retries are not put back (one
 * webhook each, already paced by their tier). Returns 1 when the event was put back (and freed), else 0. */
static int put_back_if_backlogged(dispatch *d, event_ctx *ev)
{
    if (ev->rec != NULL)
        return 0;
    int64_t now_ms = time_monotonic_us() / 1000;
    int parking = may_park(d);
    const subscriber *busy = NULL; /* a backlogged subscriber that fan_out would not park */
    for (size_t i = 0; i < ev->subs->count && busy == NULL; i++) {
        long long id = ev->subs->items[i].id;
        if (breaker_backlogged(d->breaker, id, now_ms) && !(parking && breaker_behind(d->breaker, id, now_ms)))
            busy = &ev->subs->items[i];
    }
    if (busy == NULL || remember_hold(d, busy->id, ev->ps) != 0)
        return 0;
    if (consumer_untrack(ev->ps, ev->offset) != 0)
        return 0; /* not the partition's last tracked offset (cannot happen for a fresh event): queue it */
    consumer_hold(ev->ps, ev->offset, BACKLOG_HOLD_MAX_MS);
    metric_counter_add(d->dm->backlog_holds, 1);
    event_free(d, ev);
    return 1;
}

/* Looks the subscribers up (the cache never calls Redis: a list it does not have is asked of the Redis thread and
 * the event waits) and fans out (or puts a fresh event back, put_back_if_backlogged). An (organization, event type)
 * with events waiting has no list yet, so a later event of it waits behind them: they keep their order. Returns -1
 * (event untouched) when the subscribers could not be had, 1 when the event was put back (freed), else 0. */
static int try_route(dispatch *d, event_ctx *ev)
{
    if (subscriber_cache_get(d->cache, ev->env.organization_id, ev->env.type, &ev->subs) != 0)
        return -1;
    if (put_back_if_backlogged(d, ev))
        return 1;
    fan_out(d, ev);
    return 0;
}

/* Queues an event whose subscribers could not be had; dispatch_route_waiting (when the Redis thread has read lists,
 * and at each tick) looks them up again. Consumption goes on (the
 * events of cached organizations are delivered meanwhile); waiting events count toward MAX_IN_FLIGHT. */
static void wait_push(dispatch *d, event_ctx *ev)
{
    ev->wait_next = NULL;
    if (d->wait_tail != NULL)
        d->wait_tail->wait_next = ev;
    else
        d->wait_head = ev;
    d->wait_tail = ev;
    d->waiting++;
    metric_gauge_set(d->dm->pending_events, (int64_t)d->waiting);
}

/* Links a new event into d->events. */
static event_ctx *event_new(dispatch *d, partition_state *ps, int64_t offset)
{
    event_ctx *ev = calloc(1, sizeof *ev);
    if (ev == NULL) {
        log_json(LOG_ERROR, "out of memory taking on an event", NULL);
        return NULL; /* tracked but never completed: the offset is not committed past it */
    }
    ev->d = d;
    ev->ps = consumer_partition_ref(ps);
    ev->offset = offset;
    ev->next = d->events;
    if (d->events != NULL)
        d->events->prev = ev;
    d->events = ev;
    return ev;
}

/* A message of a retry tier: hold the partition when it is not due, else deliver it to its webhook. */
static void on_retry_message(dispatch *d, partition_state *ps, const rd_kafka_message_t *msg)
{
    char err[256];
    retry_record *rec = calloc(1, sizeof *rec);
    if (rec == NULL) {
        log_json(LOG_ERROR, "out of memory taking on a retry", NULL);
        consumer_hold(ps, msg->offset, 1000);
        return;
    }
    if (retry_record_decode(msg->payload, msg->len, rec, err, sizeof err) != 0) {
        free(rec);
        if (consumer_track(ps, msg->offset) != 0)
            return;
        metric_counter_add(d->dm->retry_messages_malformed, 1);
        log_json(LOG_WARN, "malformed retry record skipped", "{s:s, s:i, s:I, s:s}", "topic",
                 consumer_partition_topic(ps), "partition", consumer_partition_number(ps), "offset",
                 (json_int_t)msg->offset, "error", err);
        consumer_complete(ps, msg->offset);
        return;
    }
    int64_t wait = rec->due_ms - time_now_ms();
    if (wait > 0) { /* not due: only this partition waits for its head */
        retry_record_clear(rec);
        free(rec);
        consumer_hold(ps, msg->offset, wait);
        return;
    }
    if (consumer_track(ps, msg->offset) != 0) {
        retry_record_clear(rec);
        free(rec);
        return;
    }
    event_ctx *ev = event_new(d, ps, msg->offset);
    if (ev == NULL) {
        retry_record_clear(rec);
        free(rec);
        return;
    }
    ev->env = rec->env; /* moved */
    memset(&rec->env, 0, sizeof rec->env);
    ev->rec = rec;
    if (try_route(d, ev) < 0)
        wait_push(d, ev);
}

void dispatch_on_message(void *ctx, partition_state *ps, const rd_kafka_message_t *msg)
{
    dispatch *d = ctx;
    if (d->intake_stopped)
        return; /* not tracked: the committed offset stays at or below it */
    if (consumer_partition_slot(ps) >= EVENT_TYPE_COUNT) {
        on_retry_message(d, ps, msg);
        return;
    }
    if (consumer_track(ps, msg->offset) != 0)
        return; /* seen before (re-fetch after a resume) */
    event_ctx *ev = event_new(d, ps, msg->offset);
    if (ev == NULL)
        return;
    char err[256];
    if (envelope_decode(msg->payload, msg->len, &ev->env, err, sizeof err) != 0) {
        metric_counter_add(d->dm->events_consumed, 1);
        metric_counter_add(d->dm->events_malformed, 1);
        log_json(LOG_WARN, "malformed envelope skipped", "{s:s, s:i, s:I, s:s}", "topic",
                 consumer_partition_topic(ps), "partition", consumer_partition_number(ps), "offset",
                 (json_int_t)msg->offset, "error", err);
        event_complete(d, ev);
        return;
    }
    int routed = try_route(d, ev);
    if (routed == 1)
        return; /* put back: consumed (and counted) when its partition is released */
    metric_counter_add(d->dm->events_consumed, 1);
    if (routed < 0)
        wait_push(d, ev);
}

/* Fails what stalled webhooks hold past PER_WEBHOOK_QUEUE ("receiver backlog full"), freeing the budget. */
static void shed_stalled(dispatch *d)
{
    enum { BATCH = 64 };
    breaker_waiter *waiters[BATCH];
    size_t n;
    do {
        n = breaker_shed(d->breaker, time_monotonic_us() / 1000, waiters, BATCH);
        for (size_t i = 0; i < n; i++) {
            delivery_slot *slot = leave_queue(d, waiters[i]);
            event_ctx *ev = slot->ev;
            if (!refuse(d, ev, slot, &ev->subs->items[slot->index], BREAKER_REJECT_FULL))
                slot_done(d, ev);
        }
    } while (n == BATCH);
}

/* Releases the partitions held for webhooks that turned out to hang (stalled, or breaker open): their events are
 * refused now, not waited for, and the other webhooks of those partitions should not wait out the hold's
 * BACKLOG_HOLD_MAX_MS for nothing. */
static void release_holds_of_stalled(dispatch *d)
{
    int64_t now_ms = time_monotonic_us() / 1000;
    for (size_t i = 0; i < d->hold_count;) {
        if (!breaker_stalled(d->breaker, d->holds[i].webhook_id, now_ms)) {
            i++;
            continue;
        }
        release_hold_at(d, i);
    }
}

void dispatch_tick(dispatch *d)
{
    shed_stalled(d);
    release_holds_of_stalled(d);
    refusal_log_flush(d->refusals, time_monotonic_ms(), 0);
    dispatch_route_waiting(d);
}

void dispatch_route_waiting(dispatch *d)
{
    /* the waiting events in order; those whose subscribers can be had now go out (no new deliveries once shutdown
     * began). While Redis is known to be down the lookups fail at once (subscriber_cache_get backs off). */
    event_ctx *prev = NULL;
    for (event_ctx *ev = d->wait_head; ev != NULL && !d->intake_stopped;) {
        event_ctx *next = ev->wait_next;
        if (subscriber_cache_get(d->cache, ev->env.organization_id, ev->env.type, &ev->subs) != 0) {
            prev = ev;
            ev = next;
            continue;
        }
        if (prev != NULL)
            prev->wait_next = next;
        else
            d->wait_head = next;
        if (d->wait_tail == ev)
            d->wait_tail = prev;
        d->waiting--;
        fan_out(d, ev);
        ev = next;
    }
    metric_gauge_set(d->dm->pending_events, (int64_t)d->waiting);
}

int dispatch_after_batch(dispatch *d)
{
    consumer_store_offsets(d->consumer);
    if (d->retry_consumer != NULL)
        consumer_store_offsets(d->retry_consumer);
    /* Backpressure is the room check (dispatch_has_room): the consumers stop polling, so librdkafka stops fetching
     * once its bounded local queue (queued.max.messages.kbytes) is full. The partitions are not paused: a pause
     * drops the fetched messages and the refetch after the resume was only noticed on the next statistics
     * event (a 1 s stall per MAX_IN_FLIGHT deliveries, measured). The state is still reported (gauge, log). */
    size_t taken = d->in_flight + d->queued + d->waiting; /* queued deliveries and waiting events hold memory too */
    if (!d->backpressure && taken >= (size_t)d->opts.max_in_flight) {
        d->backpressure = 1;
        log_json(LOG_INFO, "in-flight limit reached", "{s:I, s:I, s:I}", "in_flight", (json_int_t)d->in_flight,
                 "queued", (json_int_t)d->queued, "waiting_for_redis", (json_int_t)d->waiting);
    } else if (d->backpressure && taken <= (size_t)d->opts.max_in_flight / 2) {
        d->backpressure = 0;
    } else {
        return 0;
    }
    metric_gauge_set(d->dm->paused, d->backpressure || consumer_paused(d->consumer) != 0);
    return !d->backpressure;
}

void dispatch_free(dispatch *d)
{
    if (d == NULL)
        return;
    while (d->events != NULL)
        event_free(d, d->events);
    for (size_t i = 0; i < d->hold_count; i++)
        consumer_partition_unref(d->holds[i].ps);
    free(d->holds);
    breaker_free(d->breaker);
    refusal_log_free(d->refusals);
    free(d);
}

void dispatch_log_refusals(dispatch *d)
{
    refusal_log_flush(d->refusals, time_monotonic_ms(), 1);
}
