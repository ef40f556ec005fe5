/*
 * refusal_log — per-webhook counts of refused deliveries, written as one line per webhook per interval
 * (refusal_log.h says why).
 *
 * A plain array searched linearly, the last webhook found checked first: refusals come from the few webhooks
 * whose receivers are down or backlogged, and a webhook's refusals arrive in runs (a due retry tier, an open
 * breaker's queue), so the search is almost always one comparison.
 */
#include "refusal_log.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

typedef struct refusal_entry {
    long long webhook_id;
    char *url;                 /* owned copy */
    int64_t since_ms;          /* start of the current interval (monotonic) */
    long long breaker_open;    /* counted in this interval, not yet written */
    long long backlog_full;
    long long dead_lettered;   /* of those, the ones whose last attempt it was */
    long long parked;          /* parked deliveries counted in this interval, not yet written */
    int refusal_seen, park_seen; /* a refusal / a park of this webhook had its own line since it was added */
} refusal_entry;

struct refusal_log {
    refusal_entry *entries;    /* owned array */
    size_t count, cap;
    size_t last;               /* index of the entry found last */
};

refusal_log *refusal_log_new(void)
{
    return calloc(1, sizeof(refusal_log));
}

static refusal_entry *find(refusal_log *r, long long webhook_id)
{
    if (r->last < r->count && r->entries[r->last].webhook_id == webhook_id)
        return &r->entries[r->last];
    for (size_t i = 0; i < r->count; i++)
        if (r->entries[i].webhook_id == webhook_id) {
            r->last = i;
            return &r->entries[i];
        }
    return NULL;
}

int refusal_log_note(refusal_log *r, long long webhook_id, const char *url, refusal_kind kind, int64_t now_ms)
{
    refusal_entry *e = find(r, webhook_id);
    if (e != NULL) {
        int *seen = kind == PARKED_BACKLOGGED ? &e->park_seen : &e->refusal_seen;
        if (!*seen) { /* the first of its kind (refusal or park) for this webhook: its own line too */
            *seen = 1;
            return 1;
        }
        if (kind == REFUSED_BREAKER_OPEN)
            e->breaker_open++;
        else if (kind == REFUSED_BACKLOG_FULL)
            e->backlog_full++;
        else
            e->parked++;
        return 0;
    }
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        refusal_entry *grown = realloc(r->entries, cap * sizeof *grown);
        if (grown == NULL)
            return 1;
        r->entries = grown;
        r->cap = cap;
    }
    char *copy = strdup(url != NULL ? url : "");
    if (copy == NULL)
        return 1;
    r->entries[r->count] = (refusal_entry){webhook_id, copy, now_ms, 0, 0, 0, 0, kind != PARKED_BACKLOGGED,
                                           kind == PARKED_BACKLOGGED};
    r->last = r->count++;
    return 1; /* the first of its interval: logged on its own */
}

void refusal_log_note_dead(refusal_log *r, long long webhook_id)
{
    refusal_entry *e = find(r, webhook_id);
    if (e != NULL)
        e->dead_lettered++;
}

/* One summary line of webhook e: its id and URL, the n named counts, and how long the interval ran. */
static void write_counts(const refusal_entry *e, log_level level, const char *msg, const char *const *names,
                         const long long *counts, size_t n, int64_t now_ms)
{
    log_line l;
    if (!log_line_begin(&l, level, msg))
        return;
    json_buf *b = &l.fields;
    json_buf_key(b, "webhook_id");
    json_buf_int(b, e->webhook_id);
    json_buf_key(b, "url");
    json_buf_string(b, e->url);
    for (size_t i = 0; i < n; i++) {
        json_buf_key(b, names[i]);
        json_buf_int(b, counts[i]);
    }
    json_buf_key(b, "seconds");
    json_buf_fixed1(b, (double)(now_ms - e->since_ms) / 1000.0);
    log_line_end(&l);
}

/* The interval's lines of webhook e: "deliveries parked" (info) and "deliveries refused" (warn), each when it
 * counted any. */
static void write_summary(const refusal_entry *e, int64_t now_ms)
{
    if (e->parked > 0) {
        static const char *const names[] = {"parked"};
        write_counts(e, LOG_INFO, "deliveries parked", names, &e->parked, 1, now_ms);
    }
    if (e->breaker_open + e->backlog_full > 0) {
        static const char *const names[] = {"refused", "breaker_open", "backlog_full", "dead_lettered"};
        const long long counts[] = {e->breaker_open + e->backlog_full, e->breaker_open, e->backlog_full,
                                    e->dead_lettered};
        write_counts(e, LOG_WARN, "deliveries refused", names, counts, 4, now_ms);
    }
}

void refusal_log_flush(refusal_log *r, int64_t now_ms, int all)
{
    for (size_t i = 0; i < r->count;) {
        refusal_entry *e = &r->entries[i];
        if (!all && now_ms - e->since_ms < REFUSAL_LOG_INTERVAL_MS) {
            i++;
            continue;
        }
        if (e->breaker_open + e->backlog_full + e->parked > 0) {
            write_summary(e, now_ms);
            if (!all) { /* still refusing (or parking): the next interval is summed too */
                e->breaker_open = e->backlog_full = e->dead_lettered = e->parked = 0;
                e->since_ms = now_ms;
                i++;
                continue;
            }
        }
        /* a whole interval without a refusal or park (or shutdown): the next one is logged on its own again */
        free(e->url);
        r->entries[i] = r->entries[--r->count];
    }
    r->last = 0;
}

long long refusal_log_pending(const refusal_log *r)
{
    long long n = 0;
    for (size_t i = 0; i < r->count; i++)
        n += r->entries[i].breaker_open + r->entries[i].backlog_full;
    return n;
}

void refusal_log_free(refusal_log *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->count; i++)
        free(r->entries[i].url);
    free(r->entries);
    free(r);
}
