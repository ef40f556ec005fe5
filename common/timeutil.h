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

/* The range time_parse_rfc3339 accepts and time_format_rfc3339 writes back: 0000-01-01T00:00:00.000Z to
 * 9999-12-31T23:59:59.999Z, in epoch milliseconds. */
#define TIME_MIN_MS (-62167219200000LL)
#define TIME_MAX_MS 253402300799999LL

/* Parses an RFC 3339 timestamp ("2026-11-29T01:02:03Z", fractional seconds and +hh:mm offsets allowed).
 * Returns 0 and sets *epoch_ms, or -1 (also when the instant, after the offset, is outside
 * [TIME_MIN_MS, TIME_MAX_MS]). */
int time_parse_rfc3339(const char *text, int64_t *epoch_ms);

#endif
