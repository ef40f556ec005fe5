/*
 * breaker — per-webhook isolation state: attempts in flight (PER_WEBHOOK_IN_FLIGHT cap), the webhook's FIFO of
 * deliveries waiting for a slot (bounded by PER_WEBHOOK_QUEUE) and a circuit breaker (open after
 * BREAKER_FAILURES consecutive failed attempts, closed by a successful probe).
 *
 *   closed     a delivery is attempted while the webhook has fewer than the cap in flight; otherwise it waits in
 *              the webhook's FIFO (breaker_dequeue() hands waiters out as attempts finish). The FIFO holds
 *              PER_WEBHOOK_QUEUE deliveries, more only while the receiver keeps up: a webhook is *stalled* when
 *              it has attempts in flight and none succeeded for BREAKER_STALL_MS (a timeout or an error is not
 *              progress, so a hanging receiver stays stalled as its attempts time out); a stalled webhook's full FIFO
 *              refuses new deliveries (BREAKER_REJECT_FULL: the dispatch fails them as attempts, "receiver
 *              backlog full") and breaker_shed() hands out what it holds past PER_WEBHOOK_QUEUE to be refused
 *              the same way. A healthy webhook with a full FIFO whose oldest waiter has waited
 *              BREAKER_BACKLOG_MS is *backlogged* (breaker_backlogged): the dispatch leaves its next events in
 *              Kafka until the FIFO is half empty. So a healthy receiver absorbs a burst without failed attempts
 *              (a fast one within MAX_IN_FLIGHT, a slow one within PER_WEBHOOK_QUEUE, leaving the rest of the
 *              budget to other webhooks), and a hanging one keeps at most PER_WEBHOOK_QUEUE of the budget once
 *              it is seen to hang
 *   open       deliveries are not attempted (BREAKER_REJECT_OPEN: the dispatch fails them as attempts, "circuit
 *              breaker open", so they follow the retry schedule to the dead-letter topic); waiters still queued
 *              when it opens are handed out by breaker_dequeue() with BREAKER_REJECT_OPEN; a delivery that may
 *              probe (a due retry) is attempted as the probe (half-open: one at a time); a probe that succeeds
 *              closes the breaker, one that fails leaves it open (and takes its retry path like any failed attempt)
 *
 * Entries exist only for webhooks with something to remember (in flight, queued, failures, open) and are removed
 * when they become idle, so memory follows the number of troubled or busy webhooks. Waiters are intrusive nodes
 * owned by the caller; the table only links them.
 * Ownership: the table owns its entries. Thread contract: the event-loop thread only.
 */
#ifndef HOOKD_BREAKER_H
#define HOOKD_BREAKER_H

#include "dispatcher_metrics.h"

#include <stddef.h>
#include <stdint.h>

typedef struct breaker_table breaker_table;

/* No attempt of a webhook with attempts in flight succeeded for this long: its receiver is not keeping up (it
 * hangs, or answers slower than any healthy receiver should). It must cover a first answer, which includes
 * connecting and the TLS handshake: at 0.5 s, healthy 50 ms receivers behind a loaded machine's first handshakes
 * were taken for hanging ones and thousands of their deliveries refused ("receiver backlog full"). The price of
 * the longer wait is paid only when a receiver really hangs: for up to this long its partition is held (and its
 * first intake may fill MAX_IN_FLIGHT) before its deliveries are refused instead. */
#define BREAKER_STALL_MS 2000

/* A full FIFO whose oldest delivery has waited this long belongs to a receiver slower than its burst
 * (breaker_backlogged). A fast receiver empties even a long FIFO sooner and never counts as backlogged. */
#define BREAKER_BACKLOG_MS 100

/* A backlogged webhook whose FIFO has not been empty for this long is *behind* its traffic (breaker_behind), not
 * catching up from a burst: a burst drains (the FIFO empties) within it. */
#define BREAKER_BEHIND_MS 1000

/* A delivery waiting in its webhook's FIFO (embedded in the caller's delivery state). */
typedef struct breaker_waiter {
    struct breaker_waiter *next;
    int64_t queued_ms;         /* when it joined the FIFO */
} breaker_waiter;

/* What to do with a delivery that is about to start. */
typedef enum breaker_verdict {
    BREAKER_GO = 0,        /* attempt it (counted in flight: breaker_finish() must follow) */
    BREAKER_PROBE,         /* attempt it as the half-open probe (likewise) */
    BREAKER_QUEUED,        /* the webhook is at its cap: the waiter was appended to its FIFO */
    BREAKER_REJECT_OPEN,   /* breaker open: do not attempt; fail it as an attempt */
    BREAKER_REJECT_FULL    /* at the cap and the FIFO is full: fail it as an attempt */
} breaker_verdict;

/* max_in_flight: PER_WEBHOOK_IN_FLIGHT; max_queue: PER_WEBHOOK_QUEUE; failures: BREAKER_FAILURES (0: no
 * breaker). NULL on allocation failure. */
breaker_table *breaker_new(long max_in_flight, long max_queue, long failures, dispatcher_metrics *dm);
void breaker_free(breaker_table *t);

/* now_ms below: a monotonic clock in milliseconds. */

/* Decides for one delivery of webhook id (may_probe: it may be the half-open probe, i.e. a due retry). w is
 * linked into the FIFO on BREAKER_QUEUED and untouched otherwise. */
breaker_verdict breaker_admit(breaker_table *t, long long id, int may_probe, breaker_waiter *w, int64_t now_ms);

/* An admitted attempt ended (ok: 2xx; probe: it was admitted as PROBE). Call breaker_dequeue() afterwards. */
void breaker_finish(breaker_table *t, long long id, int ok, int probe, int64_t now_ms);

/* The next waiter of webhook id that can be decided now, or NULL: with the breaker open, the FIFO's head with
 * *verdict = BREAKER_REJECT_OPEN; below the cap, the head with BREAKER_GO (counted in flight). Call it until it
 * returns NULL after every breaker_finish(). */
breaker_waiter *breaker_dequeue(breaker_table *t, long long id, breaker_verdict *verdict);

/* Takes up to cap waiters that stalled webhooks hold past PER_WEBHOOK_QUEUE out of their FIFOs (oldest first)
 * into out; the caller fails each as BREAKER_REJECT_FULL. Returns how many; call again while it returns cap.
 * Scans the whole table: call it from a periodic tick, not per delivery. */
size_t breaker_shed(breaker_table *t, int64_t now_ms, breaker_waiter **out, size_t cap);

/* 1 when webhook id is busy, healthy and slower than its backlog: breaker closed, not stalled, its FIFO holds
 * PER_WEBHOOK_QUEUE deliveries or more and the oldest has waited BREAKER_BACKLOG_MS. The dispatch then leaves the
 * next event for it in Kafka (its partition waits) instead of queueing more, so one webhook's burst cannot take
 * the whole MAX_IN_FLIGHT budget. A stalled webhook's deliveries are refused instead (breaker_admit), an open
 * breaker's too. */
int breaker_backlogged(breaker_table *t, long long id, int64_t now_ms);

/* 1 when webhook id is backlogged (above) and its FIFO has not been empty for BREAKER_BEHIND_MS: a receiver that
 * stays slower than its traffic rather than one catching up from a burst. The dispatch parks such a webhook's
 * deliveries on a retry tier (dispatch.h) instead of holding its partition. */
int breaker_behind(breaker_table *t, long long id, int64_t now_ms);

/* 1 when webhook id is stalled or its breaker is open: its deliveries are refused past its FIFO's bound (or all
 * of them), not waited for, so a partition held for it (breaker_backlogged) has nothing left to wait for. */
int breaker_stalled(breaker_table *t, long long id, int64_t now_ms);

/* Deliveries waiting in webhook id's FIFO (0 for an unknown webhook). */
long breaker_queued(breaker_table *t, long long id);

/* PER_WEBHOOK_QUEUE as configured. */
long breaker_max_queue(const breaker_table *t);

/* Open breakers (the hookd_dispatcher_breakers_open gauge). */
long breaker_open_count(const breaker_table *t);

#endif
