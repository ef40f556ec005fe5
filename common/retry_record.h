/*
 * retry_record — the value of a message on a retry tier (${TOPIC_PREFIX}retry.<delay>) or on the dead-letter
 * topic (${TOPIC_PREFIX}dead): one (event, webhook) delivery with its history.
 *
 *   {"envelope": {...the event envelope...}, "webhook_id": 17, "attempt": 3, "due_at": "<RFC 3339 ms>",
 *    "attempts": [{"attempt": 1, "at": "<RFC 3339 ms>", "status": 500, "latency_ms": 12.5, "error": "..."}],
 *    "webhook_url": "https://...",                       (dead letters: where it was going)
 *    "reason": "gave up after 4 attempts",               (dead letters)
 *    "dead_lettered_at": "<RFC 3339 ms>",                (dead letters)
 *    "parked": 2}                                        (parked deliveries: how many times)
 *
 * "attempt" is the number of the attempt the message is waiting to make. A *parked* delivery (its webhook was
 * backlogged when it came up: dispatch.h) waits on the first tier without having used that attempt; "parked"
 * counts how many times that happened to it and is absent for 0. The message key is the webhook id.
 * Ownership: a retry_record owns its envelope's data; clear it with retry_record_clear().
 */
#ifndef HOOKD_RETRY_RECORD_H
#define HOOKD_RETRY_RECORD_H

#include "envelope.h"
#include "retry_policy.h"

#include <stdint.h>

#define RETRY_RECORD_MAX_ATTEMPTS (RETRY_MAX_STEPS + 2)
#define RETRY_ERROR_MAX 160

typedef struct attempt_record {
    int attempt;                 /* 1 = the first delivery */
    int64_t at_ms;               /* epoch ms when it started */
    long status;                 /* HTTP status, 0 when there was no response */
    double latency_ms;           /* how long it took */
    char error[RETRY_ERROR_MAX]; /* empty on success */
} attempt_record;

typedef struct retry_record {
    envelope env;                 /* the event; owns env.data */
    long long webhook_id;         /* which webhook */
    int attempt;                  /* the attempt this message waits to make */
    int64_t due_ms;               /* epoch ms when it is due */
    int attempt_count;            /* entries in attempts */
    attempt_record attempts[RETRY_RECORD_MAX_ATTEMPTS]; /* history, oldest first (oldest dropped when full) */
    char webhook_url[2049];       /* dead letters: the target */
    char reason[RETRY_ERROR_MAX]; /* dead letters: why it stopped */
    int64_t dead_ms;              /* dead letters: when; 0 otherwise */
    int parked;                   /* times parked while its webhook was backlogged (0: a plain retry) */
} retry_record;

/* Appends an attempt to the history (dropping the oldest when full). */
void retry_record_add_attempt(retry_record *rec, const attempt_record *attempt);

/* Serialises rec. Returns a malloc'd string (caller frees) or NULL; *len gets its length. */
char *retry_record_encode(const retry_record *rec, size_t *len);

/* Parses a message value. Returns 0 and fills out (caller clears), or -1 with a reason in errbuf. */
int retry_record_decode(const char *buf, size_t len, retry_record *out, char *errbuf, size_t errlen);

/* Releases the envelope's data and zeroes rec. */
void retry_record_clear(retry_record *rec);

#endif
