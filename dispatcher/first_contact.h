/*
 * first_contact — a delivery thread's first connection to a receiver goes alone: the rest of the burst waits
 * until it has brought a TLS session, then resumes it instead of doing a full handshake each.
 *
 * Why: a dispatcher that starts (a deploy, a new replica, a backlog after an outage) or meets a new receiver
 * opens up to PER_WEBHOOK_IN_FLIGHT connections per webhook at once to a receiver it has no TLS session for yet:
 * every one a full handshake, a certificate signature on the receiver and a chain verification here. In the
 * fan-out benchmark the first 160 deliveries took ~150 ms for that alone (nginx signing on one core). With one
 * connection first, the others resume its session (tls_sessions.c keeps it for the thread).
 *
 * How: receivers are told apart by the authority of their URL (delivery_http_authority_key). The first job a
 * thread gets for a receiver it has never met is its scout: it starts at once, and later jobs for that receiver
 * are held here until the thread has kept a TLS session from that receiver (the scout's ticket, which arrives
 * right after its handshake: delivery_http_session_log), or the scout's attempt ended, or FIRST_CONTACT_HOLD_MS
 * passed, whichever comes first (a receiver that does not resume sessions costs its first burst that wait). After that the
 * receiver is known and its jobs start at once, for the life of the thread. The table is bounded
 * (FIRST_CONTACT_SLOTS): once three quarters full, further receivers are not held at all.
 *
 * Cost to a delivery: a held job waits at most FIRST_CONTACT_HOLD_MS, once per receiver per delivery thread.
 *
 * Ownership: the table owns its slots; held jobs stay the engine's (delivery_job.h) and go back to the caller,
 * linked by next, from the release functions. Thread contract: one thread (its delivery worker).
 */
#ifndef HOOKD_FIRST_CONTACT_H
#define HOOKD_FIRST_CONTACT_H

#include "delivery_job.h"

#include <stdint.h>

#define FIRST_CONTACT_SLOTS 1024
#define FIRST_CONTACT_HOLD_MS 250

typedef struct first_contact first_contact;

typedef enum {
    FIRST_CONTACT_GO,    /* start the job: a known receiver (or the table is full) */
    FIRST_CONTACT_SCOUT, /* start the job, and report its end with first_contact_scout_done(*slot) */
    FIRST_CONTACT_HELD,  /* the table keeps the job until a release function returns it */
} first_contact_verdict;

/* Creates an empty table. NULL when out of memory. */
first_contact *first_contact_new(void);

/* Frees the table (NULL is ignored). Jobs still held are the engine's; they are not touched. */
void first_contact_free(first_contact *fc);

/* Decides for job (whose URL has authority key) at now_us (monotonic). *slot is set for a SCOUT. */
first_contact_verdict first_contact_admit(first_contact *fc, uint64_t key, delivery_job *job, int64_t now_us,
                                          int *slot);

/* The scout of slot ended (or never started): its receiver is known from now on. Returns the jobs held for it
 * (FIFO, linked by next; NULL when none). */
delivery_job *first_contact_scout_done(first_contact *fc, int slot);

/* Releases every receiver whose hold has run out at now_us, and every receiver log shows a TLS session kept for
 * since the last call (all of them when the log wrapped meanwhile; log may be NULL). Returns the released jobs
 * (FIFO per receiver; NULL when none). */
delivery_job *first_contact_release_due(first_contact *fc, int64_t now_us, const delivery_http_session_log *log);

/* How many receivers have jobs held or a scout out now, and the earliest hold deadline among them (0 if none). */
unsigned first_contact_holding(const first_contact *fc);
int64_t first_contact_next_deadline(const first_contact *fc);

#endif
