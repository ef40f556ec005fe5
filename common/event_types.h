/*
 * event_types — the eight event types of the Resource Management webhooks API, and their Kafka topics.
 * Read-only tables; thread-safe.
 */
#ifndef HOOKD_EVENT_TYPES_H
#define HOOKD_EVENT_TYPES_H

#include <stddef.h>

#define EVENT_TYPE_COUNT 8
#define EVENT_TYPE_NAME_MAX 32 /* longest name plus NUL fits */

/* The name of type index i (0 <= i < EVENT_TYPE_COUNT), e.g. "time.entry.created". */
const char *event_type_name(int index);

/* The index of name, or -1 when it is not one of the eight (exact, case-sensitive match). */
int event_type_index(const char *name);

/* Writes prefix + name (e.g. "webhooks.project.created") into out. Returns 0, or -1 when it does not fit. */
int event_type_topic(const char *prefix, int index, char *out, size_t outlen);

#endif
