/*
 * fuzz_retry_after — retry_after_parse_ms() on arbitrary Retry-After header values from receivers (any
 * webhook target controls them: hostile input reaching the dispatcher).
 * Input: 6 bytes "now" (epoch ms, < 2^48, i.e. before year 10889), then the header value.
 * Invariants: the result is -1 or within [0, RETRY_AFTER_CAP_MS]; a delta-seconds value N (plain digits) gives
 * min(N s, cap) independent of now.
 */
#include "fuzz_util.h"
#include "retry_policy.h"

#include <ctype.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1024)
        return 0;
    int64_t now = 0;
    for (int i = 0; i < 6; i++)
        now = (now << 8) | fuzz_byte(&data, &size);
    char *value = fuzz_strdup(data, size);
    long long ms = retry_after_parse_ms(value, now);
    FUZZ_CHECK(ms == -1 || (ms >= 0 && ms <= RETRY_AFTER_CAP_MS), "\"%s\" -> %lld", value, ms);
    int digits = value[0] != '\0';
    for (const char *p = value; *p; p++)
        digits &= isdigit((unsigned char)*p) != 0;
    if (digits) {
        long long want = 0;
        for (const char *p = value; *p && want < RETRY_AFTER_CAP_MS; p++)
            want = want * 10 + (*p - '0') * 1000;
        if (want > RETRY_AFTER_CAP_MS)
            want = RETRY_AFTER_CAP_MS;
        FUZZ_CHECK(ms == want, "\"%s\" -> %lld, want %lld", value, ms, want);
        FUZZ_CHECK(retry_after_parse_ms(value, 0) == ms, "depends on now");
    }
    FUZZ_CHECK(retry_after_parse_ms(NULL, now) == -1, "NULL accepted");
    free(value);
    return 0;
}
