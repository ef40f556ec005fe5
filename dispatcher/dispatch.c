/* dispatch — see dispatch.h. */
#include "dispatch.h"

#include "envelope.h"
#include "event_types.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

struct event_ctx;

/* One delivery of an event to one webhook; user pointer of its delivery_request. */
typedef struct delivery_slot {
    struct event_ctx *ev;        /* back pointer */
    size_t index;                /* into ev->subs->items */
} delivery_slot;

/* One consumed event in progress. Owned by the dispatch (listed in d->events). */
typedef struct event_ctx {
    partition_state *ps;         /* reference */
    int64_t offset;
    envelope env;                /* owned (data) */
    char *body;                  /* owned; shared by every delivery */
    size_t body_len;
    subscriber_list *subs;       /* reference, NULL while waiting for Redis */
    size_t remaining;            /* deliveries not finished */
    delivery_slot *slots;        /* owned, subs->count entries */
    struct event_ctx *prev, *next;        /* all events in progress */
    struct event_ctx *wait_next;          /* FIFO of events waiting for Redis */
} event_ctx;

struct dispatch {
    dispatch_options opts;
    subscriber_cache *cache;     /* borrowed */
    dispatcher_metrics *dm;      /* borrowed */
    consumer *consumer;          /* borrowed */
    delivery_engine *engine;     /* borrowed */
    event_ctx *events;           /* every event in progress */
    event_ctx *wait_head, *wait_tail;     /* waiting for Redis, in consumption order */
    size_t waiting;
    size_t in_flight;            /* deliveries started and not finished */
    int intake_stopped;
};

dispatch *dispatch_new(const dispatch_options *opts, subscriber_cache *cache, dispatcher_metrics *dm)
{
    dispatch *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->opts = *opts;
    d->cache = cache;
    d->dm = dm;
    return d;
}

void dispatch_attach(dispatch *d, consumer *c, delivery_engine *eng)
{
    d->consumer = c;
    d->engine = eng;
}

size_t dispatch_in_flight(const dispatch *d)
{
    return d->in_flight;
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

/* Logs and counts one attempt; hands a failure to the hook. */
static void record_attempt(dispatch *d, event_ctx *ev, const subscriber *sub, const delivery_result *res)
{
    dm_count_attempt(d->dm, res->outcome, res->status, res->latency_ms / 1000.0);
    log_json(res->ok ? LOG_INFO : LOG_WARN, "delivery attempt", "{s:s, s:s, s:I, s:I, s:s, s:s, s:i, s:I, s:s?}",
             "event_id", ev->env.id, "event_type", event_type_name(ev->env.type), "organization_id",
             (json_int_t)ev->env.organization_id, "webhook_id", (json_int_t)sub->id, "url", sub->url, "outcome",
             dm_outcome_name(res->outcome), "status", (int)res->status, "latency_ms", (json_int_t)(res->latency_ms + 0.5), "error",
             res->error);
    if (!res->ok && d->opts.on_failure != NULL) {
        failed_delivery f = {ev->env.id, ev->env.type, ev->env.organization_id, sub->id, sub->url, sub->secret,
                             ev->body, ev->body_len, res};
        d->opts.on_failure(d->opts.failure_ctx, &f);
    }
}

/* A delivery finished (or could not start): account it against its event. */
static void slot_done(dispatch *d, event_ctx *ev)
{
    if (--ev->remaining == 0)
        event_complete(d, ev);
}

void dispatch_on_attempt_done(void *ctx, const delivery_request *req, const delivery_result *res)
{
    dispatch *d = ctx;
    delivery_slot *slot = req->user;
    event_ctx *ev = slot->ev;
    d->in_flight--;
    metric_gauge_add(d->dm->in_flight, -1);
    record_attempt(d, ev, &ev->subs->items[slot->index], res);
    slot_done(d, ev);
}

/* Fans an event with known subscribers out. The event may be freed on return. */
static void fan_out(dispatch *d, event_ctx *ev)
{
    size_t n = ev->subs->count;
    if (n == 0) {
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
    ev->remaining = n + 1; /* +1 holds the event while starting */
    for (size_t i = 0; i < n; i++) {
        const subscriber *sub = &ev->subs->items[i];
        ev->slots[i].ev = ev;
        ev->slots[i].index = i;
        delivery_request req = {sub->url, sub->secret, sub->id, ev->env.id, ev->body, ev->body_len, &ev->slots[i]};
        if (delivery_start(d->engine, &req) == 0) {
            d->in_flight++;
            metric_gauge_add(d->dm->in_flight, 1);
        } else {
            delivery_result res = {0, DM_NETWORK_ERROR, 0, 0.0, "delivery could not be started", 0};
            record_attempt(d, ev, sub, &res);
            ev->remaining--;
        }
    }
    slot_done(d, ev);
}

/* Looks the subscribers up and fans out; returns -1 (event untouched) when Redis did not answer. */
static int try_route(dispatch *d, event_ctx *ev)
{
    if (subscriber_cache_get(d->cache, ev->env.organization_id, ev->env.type, &ev->subs) != 0)
        return -1;
    fan_out(d, ev);
    return 0;
}

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
    consumer_set_paused(d->consumer, CONSUMER_PAUSE_REDIS, 1);
}

void dispatch_on_message(void *ctx, partition_state *ps, const rd_kafka_message_t *msg)
{
    dispatch *d = ctx;
    if (d->intake_stopped)
        return; /* not tracked: the committed offset stays at or below it */
    if (consumer_track(ps, msg->offset) != 0)
        return; /* seen before (re-fetch after a resume) */
    metric_counter_add(d->dm->events_consumed, 1);
    event_ctx *ev = calloc(1, sizeof *ev);
    if (ev == NULL) {
        log_json(LOG_ERROR, "out of memory taking on an event", NULL);
        return; /* tracked but never completed: the offset is not committed past it */
    }
    ev->ps = consumer_partition_ref(ps);
    ev->offset = msg->offset;
    ev->next = d->events;
    if (d->events != NULL)
        d->events->prev = ev;
    d->events = ev;
    char err[256];
    if (envelope_decode(msg->payload, msg->len, &ev->env, err, sizeof err) != 0) {
        metric_counter_add(d->dm->events_malformed, 1);
        log_json(LOG_WARN, "malformed envelope skipped", "{s:s, s:i, s:I, s:s}", "topic",
                 consumer_partition_topic(ps), "partition", consumer_partition_number(ps), "offset",
                 (json_int_t)msg->offset, "error", err);
        event_complete(d, ev);
        return;
    }
    if (d->wait_head != NULL || try_route(d, ev) != 0)
        wait_push(d, ev); /* keep consumption order behind events already waiting */
}

void dispatch_tick(dispatch *d)
{
    while (d->wait_head != NULL && !d->intake_stopped) { /* no new deliveries once shutdown began */
        event_ctx *ev = d->wait_head;
        if (subscriber_cache_get(d->cache, ev->env.organization_id, ev->env.type, &ev->subs) != 0)
            break;
        d->wait_head = ev->wait_next;
        if (d->wait_head == NULL)
            d->wait_tail = NULL;
        d->waiting--;
        fan_out(d, ev);
    }
    metric_gauge_set(d->dm->pending_events, (int64_t)d->waiting);
    if (d->wait_head == NULL)
        consumer_set_paused(d->consumer, CONSUMER_PAUSE_REDIS, 0);
}

void dispatch_after_batch(dispatch *d)
{
    consumer_store_offsets(d->consumer);
    unsigned paused = consumer_paused(d->consumer);
    if (!(paused & CONSUMER_PAUSE_BACKPRESSURE) && d->in_flight >= (size_t)d->opts.max_in_flight) {
        log_json(LOG_INFO, "in-flight limit reached", "{s:I}", "in_flight", (json_int_t)d->in_flight);
        consumer_set_paused(d->consumer, CONSUMER_PAUSE_BACKPRESSURE, 1);
    } else if ((paused & CONSUMER_PAUSE_BACKPRESSURE) && d->in_flight <= (size_t)d->opts.max_in_flight / 2) {
        consumer_set_paused(d->consumer, CONSUMER_PAUSE_BACKPRESSURE, 0);
    }
}

void dispatch_free(dispatch *d)
{
    if (d == NULL)
        return;
    while (d->events != NULL)
        event_free(d, d->events);
    free(d);
}
