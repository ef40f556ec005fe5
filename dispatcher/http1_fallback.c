/* http1_fallback — see http1_fallback.h. */
#include "http1_fallback.h"

#include <stdlib.h>

#define PROBE_WINDOW 8 /* slots examined from the home slot */

typedef struct fallback_slot {
    long long webhook_id; /* 0: empty (webhook ids start at 1) */
    int64_t until_ms;
} fallback_slot;

struct http1_fallback {
    fallback_slot slots[HTTP1_FALLBACK_SLOTS];
};

/* Home slot of an id (Fibonacci hashing spreads sequential ids). */
static size_t home_slot(long long id)
{
    return (size_t)(((uint64_t)id * 11400714819323198485ull) >> 52) % HTTP1_FALLBACK_SLOTS;
}

http1_fallback *http1_fallback_new(void)
{
    return calloc(1, sizeof(http1_fallback));
}

void http1_fallback_free(http1_fallback *t)
{
    free(t);
}

int http1_fallback_mark(http1_fallback *t, long long webhook_id, int64_t now_ms)
{
    size_t home = home_slot(webhook_id);
    fallback_slot *victim = NULL;
    for (size_t i = 0; i < PROBE_WINDOW; i++) {
        fallback_slot *s = &t->slots[(home + i) % HTTP1_FALLBACK_SLOTS];
        if (s->webhook_id == webhook_id) {
            int was_active = s->until_ms > now_ms;
            s->until_ms = now_ms + HTTP1_FALLBACK_MS;
            return !was_active;
        }
        /* the first empty slot, else the one expiring first */
        if (s->webhook_id == 0) {
            if (victim == NULL || victim->webhook_id != 0)
                victim = s;
        } else if (victim == NULL || (victim->webhook_id != 0 && s->until_ms < victim->until_ms)) {
            victim = s;
        }
    }
    victim->webhook_id = webhook_id;
    victim->until_ms = now_ms + HTTP1_FALLBACK_MS;
    return 1;
}

int http1_fallback_active(const http1_fallback *t, long long webhook_id, int64_t now_ms)
{
    size_t home = home_slot(webhook_id);
    for (size_t i = 0; i < PROBE_WINDOW; i++) {
        const fallback_slot *s = &t->slots[(home + i) % HTTP1_FALLBACK_SLOTS];
        if (s->webhook_id == webhook_id)
            return s->until_ms > now_ms;
    }
    return 0;
}
