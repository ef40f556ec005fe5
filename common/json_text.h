/*
 * json_text — jansson values to compact text, the one way hookd serialises JSON on the wire.
 */
#ifndef HOOKD_JSON_TEXT_H
#define HOOKD_JSON_TEXT_H

#include <jansson.h>
#include <stddef.h>

/* Serialises obj compactly, keys in insertion order, and releases obj (a NULL obj gives NULL). Returns a
 * malloc'd string the caller frees, or NULL on allocation failure; *len (may be NULL) gets its length. */
char *json_text_take(json_t *obj, size_t *len);

#endif
