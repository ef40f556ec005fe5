/*
 * fuzz_rfc3339 — time_parse_rfc3339() (envelope occurred_at from clients and Kafka, retry record due_at and
 * attempt times).
 * Invariants:
 *   - on success the instant is within [TIME_MIN_MS, TIME_MAX_MS] (years 0000-9999 after the offset);
 *   - formatting the result with time_format_rfc3339 (with millis) and parsing it again gives the same
 *     milliseconds — for every accepted value, so in particular for 1970-9999; without millis, the same
 *     whole second; the text always fits TIME_TEXT_MAX;
 *   - a UTC ("Z") timestamp with seconds 00-59 formats back to the same date and time fields: the parser
 *     accepts no date that does not exist (e.g. February 29 of a common year would come back as March 1).
 */
#include "fuzz_util.h"
#include "timeutil.h"

#include <ctype.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256)
        return 0;
    char *text = fuzz_strdup(data, size);
    int64_t ms = 0;
    if (time_parse_rfc3339(text, &ms) == 0) {
        FUZZ_CHECK(ms >= TIME_MIN_MS && ms <= TIME_MAX_MS, "\"%s\" -> %lld out of range", text, (long long)ms);
        char out[TIME_TEXT_MAX + 8];
        memset(out, 'x', sizeof out);
        time_format_rfc3339(ms, 1, out);
        FUZZ_CHECK(memchr(out, '\0', TIME_TEXT_MAX) != NULL, "format overflow");
        int64_t again = -1;
        FUZZ_CHECK(time_parse_rfc3339(out, &again) == 0, "\"%s\" -> %lld -> \"%s\" does not parse", text,
                   (long long)ms, out);
        FUZZ_CHECK(again == ms, "\"%s\" -> %lld -> \"%s\" -> %lld", text, (long long)ms, out, (long long)again);
        size_t n = strlen(text);
        int utc = n >= 20 && toupper((unsigned char)text[n - 1]) == 'Z' && text[17] <= '5';
        if (utc)
            for (int i = 0; i < 19; i++)
                FUZZ_CHECK(toupper((unsigned char)text[i]) == out[i] || (i == 10 && text[i] == ' '),
                           "\"%s\" comes back as \"%s\"", text, out);
        time_format_rfc3339(ms, 0, out);
        int64_t floor_ms = ms - ((ms % 1000) + 1000) % 1000;
        FUZZ_CHECK(time_parse_rfc3339(out, &again) == 0 && again == floor_ms, "no-millis \"%s\"", out);
    }
    free(text);
    return 0;
}
