/*
 * fuzz_retry_policy — retry_policy_parse() (RETRY_SCHEDULE) and the functions that read a parsed policy.
 * Invariants: on success 0 <= steps <= RETRY_MAX_STEPS, every delay in [1 ms, 7 d]; tiers are the distinct
 * delays, strictly ascending, each named by retry_tier_name (NUL-terminated, fits); tier_of_step maps each step
 * to the tier with its delay; retry_next_delay_ms stays within ±20 % of the delay (or the Retry-After floor)
 * and is -1 after the last step.
 */
#include "fuzz_util.h"
#include "config.h"
#include "retry_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2048)
        return 0;
    char *schedule = fuzz_strdup(data, size);
    retry_policy p;
    char err[200];
    memset(err, 'x', sizeof err);
    if (retry_policy_parse(schedule, &p, err, sizeof err) != 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL, "errbuf not terminated");
        free(schedule);
        return 0;
    }
    FUZZ_CHECK(p.steps >= 0 && p.steps <= RETRY_MAX_STEPS, "steps %d", p.steps);
    FUZZ_CHECK(p.tiers >= (p.steps > 0) && p.tiers <= p.steps, "tiers %d for %d steps", p.tiers, p.steps);
    for (int t = 0; t < p.tiers; t++) {
        FUZZ_CHECK(t == 0 || p.tier_delay_ms[t - 1] < p.tier_delay_ms[t], "tiers not ascending");
        FUZZ_CHECK(memchr(p.tier_name[t], '\0', RETRY_TIER_NAME_MAX) != NULL && p.tier_name[t][0] != '\0',
                   "tier name");
        char name[RETRY_TIER_NAME_MAX];
        retry_tier_name(p.tier_delay_ms[t], name);
        FUZZ_CHECK(strcmp(name, p.tier_name[t]) == 0, "tier name %s vs %s", name, p.tier_name[t]);
        long long back = -1;
        FUZZ_CHECK(duration_parse_ms(name, &back) == 0 && back == p.tier_delay_ms[t],
                   "tier name %s does not parse back to %lld", name, p.tier_delay_ms[t]);
    }
    for (int i = 0; i < p.steps; i++) {
        long long d = p.delay_ms[i];
        FUZZ_CHECK(d >= 1 && d <= 7LL * 86400000, "delay %lld", d);
        int t = retry_tier_for_attempt(&p, i + 1);
        FUZZ_CHECK(t >= 0 && t < p.tiers && p.tier_delay_ms[t] == d, "tier of step %d", i);
        long long lo = retry_next_delay_ms(&p, i + 1, 0.0, 0);
        long long hi = retry_next_delay_ms(&p, i + 1, 0.999999, 0);
        FUZZ_CHECK(lo >= (long long)(d * 0.8) - 1 && hi <= (long long)(d * 1.2) + 1 && lo <= hi, "jitter %lld..%lld of %lld",
                   lo, hi, d);
        FUZZ_CHECK(retry_next_delay_ms(&p, i + 1, 0.0, 10LL * RETRY_AFTER_CAP_MS) >= RETRY_AFTER_CAP_MS ||
                       d * 0.8 > RETRY_AFTER_CAP_MS,
                   "retry-after floor");
    }
    FUZZ_CHECK(retry_next_delay_ms(&p, p.steps + 1, 0.5, 0) == -1, "after the last step");
    FUZZ_CHECK(retry_tier_for_attempt(&p, p.steps + 1) == -1 && retry_tier_for_attempt(&p, 0) == -1, "tier -1");
    free(schedule);
    return 0;
}
