/* first_contact — see first_contact.h. */
#include "first_contact.h"

#include <stdlib.h>

enum { SLOT_EMPTY = 0, SLOT_HOLDING, SLOT_KNOWN };

/* One receiver the thread has met (or is meeting). */
typedef struct contact_slot {
    uint64_t key;                      /* authority key; meaningful unless EMPTY */
    int state;
    int64_t deadline_us;               /* HOLDING: when the held jobs go even without a session */
    delivery_job *held_head, *held_tail;
    int prev_holding, next_holding;    /* HOLDING: links of the holding list (-1 ends it) */
} contact_slot;

struct first_contact {
    contact_slot slots[FIRST_CONTACT_SLOTS]; /* open addressing, linear probing; never shrinks */
    unsigned used;
    int holding_head;                  /* first HOLDING slot, -1 when none */
    unsigned holding;
    unsigned long sessions_seen;       /* the session log's count at the last release_due */
};

first_contact *first_contact_new(void)
{
    first_contact *fc = calloc(1, sizeof *fc);
    if (fc != NULL)
        fc->holding_head = -1;
    return fc;
}

void first_contact_free(first_contact *fc)
{
    free(fc);
}

/* The slot of key, or the empty slot where it would go; -1 when the table is too full to add it. */
static int find(first_contact *fc, uint64_t key, int *found)
{
    unsigned i = (unsigned)(key ^ (key >> 32)) & (FIRST_CONTACT_SLOTS - 1);
    for (unsigned n = 0; n < FIRST_CONTACT_SLOTS; n++, i = (i + 1) & (FIRST_CONTACT_SLOTS - 1)) {
        if (fc->slots[i].state == SLOT_EMPTY) {
            *found = 0;
            return fc->used < FIRST_CONTACT_SLOTS / 4 * 3 ? (int)i : -1;
        }
        if (fc->slots[i].key == key) {
            *found = 1;
            return (int)i;
        }
    }
    *found = 0;
    return -1;
}

first_contact_verdict first_contact_admit(first_contact *fc, uint64_t key, delivery_job *job, int64_t now_us,
                                          int *slot)
{
    int found = 0;
    int i = find(fc, key, &found);
    if (i < 0)
        return FIRST_CONTACT_GO;
    contact_slot *s = &fc->slots[i];
    if (found && s->state == SLOT_KNOWN)
        return FIRST_CONTACT_GO;
    if (found) { /* HOLDING: the scout is out */
        job_chain_append(&s->held_head, &s->held_tail, job);
        return FIRST_CONTACT_HELD;
    }
    s->key = key;
    s->state = SLOT_HOLDING;
    s->deadline_us = now_us + (int64_t)FIRST_CONTACT_HOLD_MS * 1000;
    s->held_head = s->held_tail = NULL;
    s->prev_holding = -1;
    s->next_holding = fc->holding_head;
    if (fc->holding_head >= 0)
        fc->slots[fc->holding_head].prev_holding = i;
    fc->holding_head = i;
    fc->holding++;
    fc->used++;
    *slot = i;
    return FIRST_CONTACT_SCOUT;
}

/* Marks slot i known and returns its held jobs. */
static delivery_job *release(first_contact *fc, int i)
{
    contact_slot *s = &fc->slots[i];
    if (s->state != SLOT_HOLDING)
        return NULL;
    if (s->prev_holding >= 0)
        fc->slots[s->prev_holding].next_holding = s->next_holding;
    else
        fc->holding_head = s->next_holding;
    if (s->next_holding >= 0)
        fc->slots[s->next_holding].prev_holding = s->prev_holding;
    fc->holding--;
    s->state = SLOT_KNOWN;
    delivery_job *held = s->held_head;
    s->held_head = s->held_tail = NULL;
    return held;
}

delivery_job *first_contact_scout_done(first_contact *fc, int slot)
{
    if (slot < 0 || slot >= FIRST_CONTACT_SLOTS)
        return NULL;
    return release(fc, slot);
}

/* Whether log recorded a session for key among its fresh newest entries. */
static int logged(const delivery_http_session_log *log, unsigned long fresh, uint64_t key)
{
    for (unsigned long n = 1; n <= fresh; n++)
        if (log->keys[(log->stored - n) % DELIVERY_HTTP_SESSION_LOG] == key)
            return 1;
    return 0;
}

delivery_job *first_contact_release_due(first_contact *fc, int64_t now_us, const delivery_http_session_log *log)
{
    unsigned long fresh = log != NULL ? log->stored - fc->sessions_seen : 0;
    if (log != NULL)
        fc->sessions_seen = log->stored;
    int all = fresh > DELIVERY_HTTP_SESSION_LOG; /* the log wrapped: which receivers is unknown */
    delivery_job *head = NULL, *tail = NULL;
    int i = fc->holding_head;
    while (i >= 0) {
        int next = fc->slots[i].next_holding;
        if (all || fc->slots[i].deadline_us <= now_us || (fresh > 0 && logged(log, fresh, fc->slots[i].key))) {
            delivery_job *held = release(fc, i);
            if (held != NULL) {
                if (tail != NULL)
                    tail->next = held;
                else
                    head = held;
                for (tail = held; tail->next != NULL; tail = tail->next)
                    ;
            }
        }
        i = next;
    }
    return head;
}

unsigned first_contact_holding(const first_contact *fc)
{
    return fc->holding;
}

int64_t first_contact_next_deadline(const first_contact *fc)
{
    int64_t earliest = 0;
    for (int i = fc->holding_head; i >= 0; i = fc->slots[i].next_holding)
        if (earliest == 0 || fc->slots[i].deadline_us < earliest)
            earliest = fc->slots[i].deadline_us;
    return earliest;
}
