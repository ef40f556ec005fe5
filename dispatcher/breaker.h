/*
 * breaker — per-webhook isolation state: deliveries in flight (PER_WEBHOOK_IN_FLIGHT cap) and a circuit
 * breaker (open after BREAKER_FAILURES consecutive failed attempts, closed by a successful probe).
 *
 *   closed     every delivery is attempted while the webhook has fewer than the cap in flight
 *   open       new deliveries are not attempted (the dispatch sends them to the first retry tier without using
 *              an attempt); the next due retry of the webhook is the probe (half-open: one at a time, other
 *              due retries wait another first-tier delay); a probe that succeeds closes the breaker, one that
 *              fails leaves it open (and takes its retry path like any failed attempt)
 *
 * Entries exist only for webhooks with something to remember (in flight, failures, open) and are removed
 * when they become idle, so memory follows the number of troubled or busy webhooks.
 * Ownership: the table owns its entries. Thread contract: the event-loop thread only.
 */
#ifndef HOOKD_BREAKER_H
#define HOOKD_BREAKER_H

#include "dispatcher_metrics.h"

typedef struct breaker_table breaker_table;

/* What to do with a delivery that is about to start. */
typedef enum breaker_verdict {
    BREAKER_GO = 0,        /* attempt it */
    BREAKER_PROBE,         /* attempt it as the half-open probe */
    BREAKER_DEFER_OPEN,    /* breaker open: do not attempt; defer without using an attempt */
    BREAKER_DEFER_BUSY     /* the webhook has PER_WEBHOOK_IN_FLIGHT attempts running: defer likewise */
} breaker_verdict;

/* max_in_flight: PER_WEBHOOK_IN_FLIGHT; failures: BREAKER_FAILURES. NULL on allocation failure. */
breaker_table *breaker_new(long max_in_flight, long failures, dispatcher_metrics *dm);
void breaker_free(breaker_table *t);

/* Decides for one delivery of webhook id (is_retry: it comes from a retry tier and may be the probe). On GO /
 * PROBE the attempt is counted in flight: breaker_finish() must follow. */
breaker_verdict breaker_admit(breaker_table *t, long long id, int is_retry);

/* An admitted attempt ended (ok: 2xx; probe: it was admitted as PROBE). */
void breaker_finish(breaker_table *t, long long id, int ok, int probe);

/* Open breakers (the hookd_dispatcher_breakers_open gauge). */
long breaker_open_count(const breaker_table *t);

#endif
