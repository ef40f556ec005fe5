/* breaker — see breaker.h. */
#include "breaker.h"

#include "log.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#define BUCKETS 4096

typedef struct hook_state {
    long long id;
    long in_flight;           /* admitted attempts not finished */
    long queued;              /* waiters in the FIFO */
    breaker_waiter *head, *tail; /* FIFO of deliveries waiting for a slot */
    long failures;            /* consecutive failed attempts */
    int64_t progress_ms;      /* last time an attempt succeeded, or one started with none in flight */
    int64_t busy_since_ms;    /* when the FIFO last went from empty to non-empty (meaningful while queued > 0) */
    int open;                 /* breaker open */
    int probing;              /* a probe is in flight */
    struct hook_state *next;
} hook_state;

struct breaker_table {
    long max_in_flight, max_queue, threshold;
    dispatcher_metrics *dm;   /* borrowed */
    long open_count;
    hook_state *buckets[BUCKETS];
};

breaker_table *breaker_new(long max_in_flight, long max_queue, long failures, dispatcher_metrics *dm)
{
    breaker_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->max_in_flight = max_in_flight;
    t->max_queue = max_queue;
    t->threshold = failures;
    t->dm = dm;
    return t;
}

void breaker_free(breaker_table *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < BUCKETS; i++)
        while (t->buckets[i] != NULL) {
            hook_state *s = t->buckets[i];
            t->buckets[i] = s->next;
            free(s);
        }
    free(t);
}

static hook_state **slot_of(breaker_table *t, long long id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    hook_state **pp = &t->buckets[(h >> 40) % BUCKETS];
    while (*pp != NULL && (*pp)->id != id)
        pp = &(*pp)->next;
    return pp;
}

/* The entry of id, created when create is set; NULL when absent (or out of memory). */
static hook_state *get(breaker_table *t, long long id, int create)
{
    hook_state **pp = slot_of(t, id);
    if (*pp != NULL || !create)
        return *pp;
    hook_state *s = calloc(1, sizeof *s);
    if (s != NULL) {
        s->id = id;
        *pp = s;
    }
    return s;
}

/* Drops an entry with nothing left to remember. */
static void maybe_drop(breaker_table *t, hook_state *s)
{
    if (s->in_flight > 0 || s->queued > 0 || s->failures > 0 || s->open || s->probing)
        return;
    hook_state **pp = slot_of(t, s->id);
    *pp = s->next;
    free(s);
}

/* Takes the oldest waiter out of s's FIFO (which is not empty). */
static breaker_waiter *fifo_pop(hook_state *s)
{
    breaker_waiter *w = s->head;
    s->head = w->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->queued--;
    w->next = NULL;
    return w;
}

/* s has attempts in flight and none succeeded for BREAKER_STALL_MS. */
static int stalled(const hook_state *s, int64_t now_ms)
{
    return s->in_flight > 0 && now_ms - s->progress_ms >= BREAKER_STALL_MS;
}

/* Counts one more attempt in flight; an idle webhook starting an attempt counts as progress. */
static void start_attempt(hook_state *s, int64_t now_ms)
{
    if (s->in_flight == 0)
        s->progress_ms = now_ms;
    s->in_flight++;
}

breaker_verdict breaker_admit(breaker_table *t, long long id, int may_probe, breaker_waiter *w, int64_t now_ms)
{
    hook_state *s = get(t, id, 1);
    if (s == NULL)
        return BREAKER_GO; /* out of memory: no isolation rather than no delivery */
    breaker_verdict v = BREAKER_GO;
    if (s->open) {
        if (!may_probe || s->probing)
            return BREAKER_REJECT_OPEN;
        v = BREAKER_PROBE;
    } else if (t->max_in_flight > 0 && (s->in_flight >= t->max_in_flight || s->queued > 0)) {
        /* at the cap (or others already waiting: keep the FIFO order); past max_queue only while the receiver
         * keeps finishing attempts (a healthy one absorbing a burst, bounded by MAX_IN_FLIGHT) */
        if (s->queued >= t->max_queue && stalled(s, now_ms))
            return BREAKER_REJECT_FULL;
        if (s->queued == 0)
            s->busy_since_ms = now_ms;
        w->next = NULL;
        w->queued_ms = now_ms;
        if (s->tail != NULL)
            s->tail->next = w;
        else
            s->head = w;
        s->tail = w;
        s->queued++;
        return BREAKER_QUEUED;
    }
    if (v == BREAKER_PROBE) {
        s->probing = 1;
        log_json(LOG_INFO, "circuit breaker half-open: probing", "{s:I}", "webhook_id", (json_int_t)id);
    }
    start_attempt(s, now_ms);
    return v;
}

breaker_waiter *breaker_dequeue(breaker_table *t, long long id, breaker_verdict *verdict)
{
    hook_state *s = get(t, id, 0);
    if (s == NULL || s->head == NULL)
        return NULL;
    if (s->open)
        *verdict = BREAKER_REJECT_OPEN;
    else if (t->max_in_flight <= 0 || s->in_flight < t->max_in_flight)
        *verdict = BREAKER_GO;
    else
        return NULL;
    breaker_waiter *w = fifo_pop(s);
    if (*verdict == BREAKER_GO)
        s->in_flight++; /* no progress: the webhook was busy all along */
    else
        maybe_drop(t, s);
    return w;
}

void breaker_finish(breaker_table *t, long long id, int ok, int probe, int64_t now_ms)
{
    hook_state *s = get(t, id, 0);
    if (s == NULL)
        return;
    if (s->in_flight > 0)
        s->in_flight--;
    if (ok)
        s->progress_ms = now_ms;
    if (probe)
        s->probing = 0;
    if (ok) {
        s->failures = 0;
        if (s->open) {
            s->open = 0;
            t->open_count--;
            metric_gauge_set(t->dm->breakers_open, t->open_count);
            log_json(LOG_INFO, "circuit breaker closed", "{s:I}", "webhook_id", (json_int_t)id);
        }
    } else {
        s->failures++;
        if (!s->open && t->threshold > 0 && s->failures >= t->threshold) {
            s->open = 1;
            t->open_count++;
            metric_gauge_set(t->dm->breakers_open, t->open_count);
            log_json(LOG_WARN, "circuit breaker opened", "{s:I, s:I}", "webhook_id", (json_int_t)id,
                     "consecutive_failures", (json_int_t)s->failures);
        }
    }
    maybe_drop(t, s);
}

size_t breaker_shed(breaker_table *t, int64_t now_ms, breaker_waiter **out, size_t cap)
{
    size_t n = 0;
    for (int b = 0; b < BUCKETS && n < cap; b++)
        for (hook_state *s = t->buckets[b]; s != NULL && n < cap; s = s->next) {
            if (s->queued <= t->max_queue || !stalled(s, now_ms))
                continue;
            while (s->queued > t->max_queue && n < cap) /* the oldest first: they have waited longest */
                out[n++] = fifo_pop(s);
        }
    return n;
}

int breaker_backlogged(breaker_table *t, long long id, int64_t now_ms)
{
    const hook_state *s = get(t, id, 0);
    return s != NULL && !s->open && s->queued > 0 && s->queued >= t->max_queue &&
           now_ms - s->head->queued_ms >= BREAKER_BACKLOG_MS && !stalled(s, now_ms);
}

int breaker_behind(breaker_table *t, long long id, int64_t now_ms)
{
    const hook_state *s = get(t, id, 0);
    return breaker_backlogged(t, id, now_ms) && now_ms - s->busy_since_ms >= BREAKER_BEHIND_MS;
}

int breaker_stalled(breaker_table *t, long long id, int64_t now_ms)
{
    const hook_state *s = get(t, id, 0);
    return s != NULL && (s->open || stalled(s, now_ms));
}

long breaker_queued(breaker_table *t, long long id)
{
    const hook_state *s = get(t, id, 0);
    return s != NULL ? s->queued : 0;
}

long breaker_max_queue(const breaker_table *t)
{
    return t->max_queue;
}

long breaker_open_count(const breaker_table *t)
{
    return t->open_count;
}
