/*
 * timeutil — clocks and RFC 3339 text.
 * Thread-safe, stateless.
 */
#ifndef HOOKD_TIMEUTIL_H
#define HOOKD_TIMEUTIL_H

#include <stdint.h>

#define TIME_TEXT_MAX 80 /* generous: gcc checks the worst case of every field */

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t time_now_ms(void);

/* Monotonic milliseconds, for timeouts and latencies. */
int64_t time_monotonic_ms(void);

/* Monotonic microseconds. */
int64_t time_monotonic_us(void);

/* Writes epoch milliseconds as "2026-11-29T01:02:03Z" (with_millis = 0) or "...03.456Z" into out
 * (TIME_TEXT_MAX bytes). */
void time_format_rfc3339(int64_t epoch_ms, int with_millis, char *out);

/* Parses an RFC 3339 timestamp ("2026-11-29T01:02:03Z", fractional seconds and +hh:mm offsets allowed).
 * Returns 0 and sets *epoch_ms, or -1. */
int time_parse_rfc3339(const char *text, int64_t *epoch_ms);

#endif
