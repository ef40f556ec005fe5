/*
 * refusal_log — the log lines of deliveries that were refused rather than attempted (circuit breaker open,
 * receiver backlog full), summed per webhook.
 *
 * A refused delivery uses its attempt and takes the retry schedule like a failed one, so while a receiver is down
 * every event for it, and every retry of those events that falls due, is refused: thousands a second for a busy
 * webhook (the benchmark's isolation row: ~2,400 a second at 1,000 events a second, two log lines each). With
 * LOG_ATTEMPTS=failures the first refusal of a webhook is logged on its own ("delivery attempt", as any failed
 * attempt) and the ones after it are counted; every REFUSAL_LOG_INTERVAL_MS the counts of each webhook are written
 * as one "deliveries refused" line, until an interval passes without a refusal. A counted refusal that was its
 * delivery's last attempt is counted as dead-lettered in that line instead of a "delivery dead-lettered" line of
 * its own (a receiver down for the whole schedule dead-letters every event). Every refusal is still counted in
 * hookd_dispatcher_deliveries_total, written to the webhook's delivery log and kept in its retry or dead-letter
 * record.
 *
 * Parked deliveries (dispatch.h: a backlogged webhook's deliveries wait on a retry tier without using an attempt)
 * are summed the same way, in an info line "deliveries parked" per webhook and interval: they say which webhook
 * is behind, and how far. Refusals and parks each have a first line of their own (a webhook is often parked
 * while it is slow and then refused once it is seen to hang).
 *
 * Ownership: the table owns its entries (and a copy of each webhook's URL). Thread contract: the event-loop
 * thread only.
 */
#ifndef HOOKD_REFUSAL_LOG_H
#define HOOKD_REFUSAL_LOG_H

#include <stdint.h>

#define REFUSAL_LOG_INTERVAL_MS 10000

typedef struct refusal_log refusal_log;

typedef enum refusal_kind {
    REFUSED_BREAKER_OPEN,
    REFUSED_BACKLOG_FULL,
    PARKED_BACKLOGGED,           /* not a refusal: a delivery parked for a backlogged webhook (dispatch.h) */
} refusal_kind;

/* An empty table, or NULL when out of memory. */
refusal_log *refusal_log_new(void);

/* Notes one refusal of webhook id at now_ms (monotonic). Returns 1 when this refusal should get its own line (the
 * first of the webhook's interval, or when the table is out of memory), 0 when it was counted for the summary. */
int refusal_log_note(refusal_log *r, long long webhook_id, const char *url, refusal_kind kind, int64_t now_ms);

/* Notes that a refusal counted for webhook id went to the dead-letter topic (its last attempt). */
void refusal_log_note_dead(refusal_log *r, long long webhook_id);

/* Writes a "deliveries refused" (and a "deliveries parked") line for every webhook whose interval has run (all: every webhook with counted
 * refusals, at shutdown) and forgets the webhooks that had none in it. */
void refusal_log_flush(refusal_log *r, int64_t now_ms, int all);

/* Refusals counted and not yet written, all webhooks (for tests). */
long long refusal_log_pending(const refusal_log *r);

void refusal_log_free(refusal_log *r);

#endif
