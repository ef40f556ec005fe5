/*
 * fuzz_duration — duration_parse_ms() (RETRY_SCHEDULE items, *_TIMEOUT and other duration variables).
 * Invariants: on success 0 <= ms <= 9e15 (the documented cap that keeps the double->long long cast defined);
 * appending garbage to an accepted text never makes it parse to something else silently (it is either refused
 * or, for a unit suffix, consistent); NULL is refused.
 */
#include "config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *text = fuzz_strdup(data, size);
    long long ms = -12345;
    int rc = duration_parse_ms(text, &ms);
    FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
    if (rc == 0) {
        FUZZ_CHECK(ms >= 0 && ms <= 9000000000000000LL, "\"%s\" -> %lld ms", text, ms);
    } else {
        FUZZ_CHECK(ms == -12345, "out written on failure");
    }
    /* the same text with a trailing "x" is never a duration */
    size_t n = strlen(text);
    char *bad = malloc(n + 2);
    memcpy(bad, text, n);
    bad[n] = 'x';
    bad[n + 1] = '\0';
    long long ms2 = 0;
    FUZZ_CHECK(duration_parse_ms(bad, &ms2) == -1, "\"%s\" accepted", bad);
    free(bad);
    FUZZ_CHECK(duration_parse_ms(NULL, &ms2) == -1, "NULL accepted");
    free(text);
    return 0;
}
