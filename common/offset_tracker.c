/* offset_tracker — see offset_tracker.h. */
#include "offset_tracker.h"

#include <stdlib.h>

/* One recorded offset in the window. */
typedef struct entry {
    int64_t offset;
    int done;
} entry;

/* A ring buffer of entries in offset order: [head, head + count) modulo cap. */
struct offset_tracker {
    entry *ring;          /* owned */
    size_t cap;           /* power of two, or 0 before the first add */
    size_t head;          /* index of the oldest entry */
    size_t count;         /* entries in the window (finished ones behind the first unfinished are dropped) */
    size_t pending;       /* entries not finished */
    int64_t last_added;   /* -1 before the first add */
};

offset_tracker *offset_tracker_new(void)
{
    offset_tracker *t = calloc(1, sizeof *t);
    if (t != NULL)
        t->last_added = -1;
    return t;
}

void offset_tracker_free(offset_tracker *t)
{
    if (t == NULL)
        return;
    free(t->ring);
    free(t);
}

static entry *at(const offset_tracker *t, size_t i)
{
    return &t->ring[(t->head + i) & (t->cap - 1)];
}

/* Doubles the ring, unrolling it so head becomes 0. */
static int grow(offset_tracker *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    entry *ring = malloc(cap * sizeof *ring);
    if (ring == NULL)
        return -1;
    for (size_t i = 0; i < t->count; i++)
        ring[i] = *at(t, i);
    free(t->ring);
    t->ring = ring;
    t->cap = cap;
    t->head = 0;
    return 0;
}

int offset_tracker_add(offset_tracker *t, int64_t offset)
{
    if (offset < 0 || offset <= t->last_added)
        return -1;
    if (t->count == t->cap && grow(t) != 0)
        return -1;
    entry *e = at(t, t->count);
    e->offset = offset;
    e->done = 0;
    t->count++;
    t->pending++;
    t->last_added = offset;
    return 0;
}

int offset_tracker_unadd(offset_tracker *t, int64_t offset)
{
    if (t->count == 0 || offset != t->last_added || at(t, t->count - 1)->offset != offset ||
        at(t, t->count - 1)->done)
        return -1;
    t->count--;
    t->pending--;
    /* offsets between the previous add and this one were skipped, i.e. finished: committable() stays right */
    t->last_added = offset - 1;
    return 0;
}

/* The index of offset in the window, or -1 when no entry holds it. */
static long find(const offset_tracker *t, int64_t offset)
{
    if (t->count == 0 || offset < at(t, 0)->offset || offset > t->last_added)
        return -1;
    /* binary search: offsets in the window are strictly increasing */
    size_t lo = 0, hi = t->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (at(t, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->count && at(t, lo)->offset == offset ? (long)lo : -1;
}

offset_state offset_tracker_state(const offset_tracker *t, int64_t offset)
{
    if (t->last_added < 0 || offset > t->last_added)
        return OFFSET_UNSEEN;
    long i = find(t, offset);
    return i >= 0 && !at(t, (size_t)i)->done ? OFFSET_PENDING : OFFSET_FINISHED;
}

int offset_tracker_complete(offset_tracker *t, int64_t offset)
{
    long i = find(t, offset);
    if (i < 0 || at(t, (size_t)i)->done)
        return -1;
    size_t lo = (size_t)i;
    at(t, lo)->done = 1;
    t->pending--;
    while (t->count > 0 && at(t, 0)->done) {
        t->head = (t->head + 1) & (t->cap - 1);
        t->count--;
    }
    return 0;
}

int64_t offset_tracker_committable(const offset_tracker *t)
{
    if (t->last_added < 0)
        return -1;
    return t->count > 0 ? at(t, 0)->offset : t->last_added + 1;
}

size_t offset_tracker_pending(const offset_tracker *t)
{
    return t->pending;
}
