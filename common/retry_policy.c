/* retry_policy — see retry_policy.h. */
#include "retry_policy.h"

#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void retry_tier_name(long long delay_ms, char out[RETRY_TIER_NAME_MAX])
{
    static const struct {
        long long ms;
        const char *suffix;
    } units[] = {{86400000LL, "d"}, {3600000LL, "h"}, {60000LL, "m"}, {1000LL, "s"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (delay_ms >= units[i].ms && delay_ms % units[i].ms == 0) {
            snprintf(out, RETRY_TIER_NAME_MAX, "%lld%s", delay_ms / units[i].ms, units[i].suffix);
            return;
        }
    }
    snprintf(out, RETRY_TIER_NAME_MAX, "%lldms", delay_ms);
}

int retry_policy_parse(const char *schedule, retry_policy *out, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (schedule == NULL || strcasecmp(schedule, "none") == 0)
        return 0;
    char copy[1024];
    if (strlen(schedule) >= sizeof copy) {
        snprintf(errbuf, errlen, "RETRY_SCHEDULE is too long");
        return -1;
    }
    strcpy(copy, schedule);
    char *next = copy;
    while (next != NULL) {
        char *item = next;
        char *comma = strchr(item, ',');
        next = comma != NULL ? comma + 1 : NULL;
        if (comma != NULL)
            *comma = '\0';
        while (isspace((unsigned char)*item))
            item++;
        size_t len = strlen(item);
        while (len > 0 && isspace((unsigned char)item[len - 1]))
            item[--len] = '\0';
        long long ms = 0;
        if (duration_parse_ms(item, &ms) != 0 || ms < 1 || ms > 7LL * 86400000) {
            snprintf(errbuf, errlen, "RETRY_SCHEDULE: \"%s\" is not a duration from 1ms to 7d", item);
            return -1;
        }
        if (out->steps == RETRY_MAX_STEPS) {
            snprintf(errbuf, errlen, "RETRY_SCHEDULE: at most %d retries", RETRY_MAX_STEPS);
            return -1;
        }
        out->delay_ms[out->steps++] = ms;
    }
    if (out->steps == 0) {
        snprintf(errbuf, errlen, "RETRY_SCHEDULE is empty (use \"none\" for no retries)");
        return -1;
    }
    /* distinct delays, ascending, become the tiers */
    for (int i = 0; i < out->steps; i++) {
        int known = 0;
        for (int t = 0; t < out->tiers; t++)
            known |= out->tier_delay_ms[t] == out->delay_ms[i];
        if (!known)
            out->tier_delay_ms[out->tiers++] = out->delay_ms[i];
    }
    for (int a = 1; a < out->tiers; a++) {
        long long v = out->tier_delay_ms[a];
        int b = a - 1;
        while (b >= 0 && out->tier_delay_ms[b] > v) {
            out->tier_delay_ms[b + 1] = out->tier_delay_ms[b];
            b--;
        }
        out->tier_delay_ms[b + 1] = v;
    }
    for (int t = 0; t < out->tiers; t++)
        retry_tier_name(out->tier_delay_ms[t], out->tier_name[t]);
    for (int i = 0; i < out->steps; i++)
        for (int t = 0; t < out->tiers; t++)
            if (out->tier_delay_ms[t] == out->delay_ms[i])
                out->tier_of_step[i] = t;
    return 0;
}

int retry_tier_for_attempt(const retry_policy *policy, int failed_attempt)
{
    if (failed_attempt < 1 || failed_attempt > policy->steps)
        return -1;
    return policy->tier_of_step[failed_attempt - 1];
}

long long retry_next_delay_ms(const retry_policy *policy, int failed_attempt, double r, long long retry_after_ms)
{
    if (failed_attempt < 1 || failed_attempt > policy->steps)
        return -1;
    double base = (double)policy->delay_ms[failed_attempt - 1];
    long long delay = (long long)(base * (0.8 + 0.4 * r));
    if (retry_after_ms > RETRY_AFTER_CAP_MS)
        retry_after_ms = RETRY_AFTER_CAP_MS;
    if (delay < retry_after_ms)
        delay = retry_after_ms;
    return delay;
}

long long retry_after_parse_ms(const char *value, int64_t now_ms)
{
    if (value == NULL)
        return -1;
    while (isspace((unsigned char)*value))
        value++;
    if (isdigit((unsigned char)*value)) {
        long long seconds = 0;
        const char *p = value;
        while (isdigit((unsigned char)*p)) {
            if (seconds < RETRY_AFTER_CAP_MS)
                seconds = seconds * 10 + (*p - '0');
            p++;
        }
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '\0')
            return -1;
        long long ms = seconds * 1000;
        return ms > RETRY_AFTER_CAP_MS ? RETRY_AFTER_CAP_MS : ms;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL) {
        memset(&tm, 0, sizeof tm);
        end = strptime(value, "%A, %d-%b-%y %H:%M:%S GMT", &tm); /* RFC 850, still allowed by RFC 9110 */
    }
    if (end == NULL) {
        memset(&tm, 0, sizeof tm);
        end = strptime(value, "%a %b %e %H:%M:%S %Y", &tm); /* asctime */
    }
    if (end == NULL)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end != '\0')
        return -1;
    long long when_ms = (long long)timegm(&tm) * 1000;
    long long wait = when_ms - now_ms;
    if (wait < 0)
        return 0;
    return wait > RETRY_AFTER_CAP_MS ? RETRY_AFTER_CAP_MS : wait;
}
