/*
 * offset_tracker — the commit point of one Kafka partition when messages finish out of order.
 *
 * Messages of a partition are consumed in offset order but their deliveries finish in any order. The tracker
 * records every consumed offset (offset_tracker_add, strictly increasing) and every finished one
 * (offset_tracker_complete), and answers the offset to store: the lowest offset that is not finished yet, or
 * one past the last consumed when everything is finished (Kafka's "next offset to read" convention). Offsets
 * skipped between two adds (compaction, transaction markers) count as finished.
 *
 * Memory: a ring of the unfinished window only (finished entries at the front are dropped), so it stays as
 * large as the number of in-flight messages of the partition.
 * Ownership: created with offset_tracker_new(), freed with offset_tracker_free().
 * Thread contract: none; one thread at a time (the dispatcher's event loop).
 */
#ifndef HOOKD_OFFSET_TRACKER_H
#define HOOKD_OFFSET_TRACKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct offset_tracker offset_tracker;

/* A new, empty tracker. Returns NULL on allocation failure. */
offset_tracker *offset_tracker_new(void);

/* Frees the tracker. NULL is ignored. */
void offset_tracker_free(offset_tracker *t);

/* Records a consumed offset (>= 0). Returns 0, or -1 when it is not greater than the last one added or on
 * allocation failure (nothing recorded). */
int offset_tracker_add(offset_tracker *t, int64_t offset);

/* Takes back the offset added last (not finished): the message was put back and will be consumed again. The
 * offsets before it keep their state; the next add may be this offset again. Returns 0, or -1 when offset is not
 * the last one added or is already finished (nothing changed). */
int offset_tracker_unadd(offset_tracker *t, int64_t offset);

/* Marks a recorded offset finished. Returns 0, or -1 when it is not pending (unknown or already finished). */
int offset_tracker_complete(offset_tracker *t, int64_t offset);

/* What the tracker knows of an offset: OFFSET_UNSEEN past the last one added (or nothing added yet),
 * OFFSET_PENDING when it was added and is not finished, OFFSET_FINISHED when it was finished, skipped between two
 * adds, or lies before the window (everything there is finished; the tracker cannot tell an offset before its
 * first add from a finished one: the caller knows where it started). */
typedef enum { OFFSET_UNSEEN, OFFSET_PENDING, OFFSET_FINISHED } offset_state;
offset_state offset_tracker_state(const offset_tracker *t, int64_t offset);

/* The offset to store: the lowest unfinished offset, else last added + 1; -1 when nothing was ever added. */
int64_t offset_tracker_committable(const offset_tracker *t);

/* Number of recorded offsets not finished yet. */
size_t offset_tracker_pending(const offset_tracker *t);

#endif
