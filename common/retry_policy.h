/*
 * retry_policy — when a failed delivery is tried again, and where the retry waits.
 *
 * RETRY_SCHEDULE is a comma-separated list of delays ("5s,30s,2m,10m,30m,1h,2h,4h,8h,12h" by default): after
 * attempt k fails (k = 1 is the first delivery), attempt k + 1 is due schedule[k - 1] later, with ±20 %
 * jitter; after the last scheduled retry fails, the delivery is dead-lettered. So a schedule of n delays makes
 * n + 1 attempts. A Retry-After header on a 429 or 503 makes the wait at least that long, capped at 1 h.
 * A 410 Gone ends the delivery at once.
 *
 * Each distinct delay is one Kafka topic, a "tier": ${TOPIC_PREFIX}retry.<delay> (e.g. webhooks.retry.30s).
 *
 * Thread contract: a parsed retry_policy is read-only; functions are thread-safe.
 */
#ifndef HOOKD_RETRY_POLICY_H
#define HOOKD_RETRY_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define RETRY_DEFAULT_SCHEDULE "5s,30s,2m,10m,30m,1h,2h,4h,8h,12h"
#define RETRY_MAX_STEPS 32
#define RETRY_AFTER_CAP_MS (3600LL * 1000)
#define RETRY_TIER_NAME_MAX 24

typedef struct retry_policy {
    int steps;                                      /* number of retries (delays in the schedule) */
    long long delay_ms[RETRY_MAX_STEPS];            /* delay before retry i + 1 */
    int tier_of_step[RETRY_MAX_STEPS];              /* tier index of each step */
    int tiers;                                      /* distinct delays */
    long long tier_delay_ms[RETRY_MAX_STEPS];       /* the delay of each tier, ascending */
    char tier_name[RETRY_MAX_STEPS][RETRY_TIER_NAME_MAX]; /* "5s", "2m", "1h", "250ms" */
} retry_policy;

/* Parses a schedule. Returns 0, or -1 with a reason in errbuf (empty, a bad duration, a zero delay, more
 * than RETRY_MAX_STEPS). An empty schedule ("") is allowed only as "none" meaning no retries. */
int retry_policy_parse(const char *schedule, retry_policy *out, char *errbuf, size_t errlen);

/* The canonical tier name of a delay: the largest unit (d, h, m, s, ms) that divides it evenly. */
void retry_tier_name(long long delay_ms, char out[RETRY_TIER_NAME_MAX]);

/* The delay in ms before attempt (failed_attempt + 1), jittered by ±20 % with random value r in [0, 1),
 * and at least retry_after_ms (capped at RETRY_AFTER_CAP_MS; 0 for none). Returns -1 when failed_attempt
 * was the last one (dead-letter). */
long long retry_next_delay_ms(const retry_policy *policy, int failed_attempt, double r, long long retry_after_ms);

/* The tier index for the retry after failed_attempt, or -1 when none is left. */
int retry_tier_for_attempt(const retry_policy *policy, int failed_attempt);

/* Parses a Retry-After value: delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT")
 * relative to now_ms. Returns the wait in ms (0 for a date in the past), capped at RETRY_AFTER_CAP_MS, or -1
 * when the value is not valid. */
long long retry_after_parse_ms(const char *value, int64_t now_ms);

#endif
