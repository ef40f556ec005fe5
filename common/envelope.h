/*
 * envelope — the event envelope: the Kafka message value that links producer-api and the dispatcher, and a
 * public contract (schemas/envelope.json) for backends that write to the topics directly:
 *
 *     {"id": "<event id>", "type": "<event_type>", "organization_id": 7,
 *      "occurred_at": "2026-11-29T01:02:03.456Z", "data": {"id": 123, ...}}
 *
 * It also renders the body receivers get: {"data": {...}, "type": "<event_type>"}.
 *
 * `data` is kept as JSON text, never as a tree: producer-api copies it out of the request body (compacted), and
 * the dispatcher validates a message in one pass (json_scan.h) and passes the `data` bytes through to receivers
 * as written.
 * Stateless and thread-safe; an envelope value is owned by one thread at a time.
 */
#ifndef HOOKD_ENVELOPE_H
#define HOOKD_ENVELOPE_H

#include "timeutil.h"

#include <jansson.h>
#include <stddef.h>

#define ENVELOPE_ID_MAX 128

typedef struct envelope {
    char id[ENVELOPE_ID_MAX + 1];      /* event id: UUIDv7 or the client's id (1-128 printable ASCII) */
    int type;                          /* event type index (event_types.h) */
    long long organization_id;         /* > 0 */
    char occurred_at[TIME_TEXT_MAX];   /* RFC 3339 UTC, normalised */
    char *data;                        /* owned, malloc'd, NUL-terminated: a JSON object with an integer "id" */
    size_t data_len;                   /* strlen(data) */
} envelope;

/* Releases what the envelope owns (data) and zeroes it. Safe on a zeroed envelope. */
void envelope_clear(envelope *env);

/* Makes dst a copy of src (dst's own data is not released first); src->data need not be NUL-terminated (a
 * view, below). Returns 0, or -1 when out of memory (dst is then zeroed). */
int envelope_copy(envelope *dst, const envelope *src);

/* A view of env whose data points into body, a delivery body envelope_delivery_body() rendered from env: lets
 * the dispatcher free env's own copy of data once the body exists (one copy of each event in memory, not two).
 * The view's data is borrowed from body and not NUL-terminated: never clear the view; envelope_copy() it to
 * keep it. Returns 0, or -1 when body is not such a body. */
int envelope_view_in_body(const envelope *env, const char *body, size_t body_len, envelope *view);

/* Validates one event as a client posts it to /api/v1/events and fills out (which the caller clears).
 *   text, len: the event's JSON text (borrowed; typically one element of a body json_scan_document() accepted;
 *     any bytes are safe: what is not one valid JSON object is refused as "event": "must be a JSON object").
 *     out->data gets the event's `data` text without the whitespace between tokens, otherwise as written.
 *   token_org: the organization of an organization token, or 0 for a service token.
 *   index: the event's position in a batch, or -1 for a single event (then errors carry no "index").
 * Every problem is appended to errors as {"field", "message"[, "index"]}. Returns 0 when valid, -1 when not.
 * When the client gave no id, out->id is left empty: the caller assigns one. */
int envelope_from_request(const char *text, size_t len, long long token_org, int index, envelope *out,
                          json_t *errors);

/* The envelope as a new JSON object (keys in contract order), or NULL on allocation failure. Parses data: for
 * the retry and dead-letter records, not for the hot path. */
json_t *envelope_to_json(const envelope *env);

/* Serialises the envelope (compact JSON, keys in contract order). Returns a malloc'd string the caller frees,
 * or NULL on allocation failure; *len gets its length. */
char *envelope_encode(const envelope *env, size_t *len);

/* Parses and validates a Kafka message value (what jansson accepts with JSON_REJECT_DUPLICATES, json_scan.h),
 * without building a tree: out->data is a copy of the message's own `data` bytes. Returns 0 and fills out
 * (caller clears), or -1 with a reason in errbuf. */
int envelope_decode(const char *buf, size_t len, envelope *out, char *errbuf, size_t errlen);

/* Renders the receiver body {"data":<data as it is>,"type":"<type>"}. Returns a malloc'd string (caller frees)
 * or NULL. */
char *envelope_delivery_body(const envelope *env, size_t *len);

/* Returns 1 when id is 1-128 printable ASCII characters (0x21-0x7e), else 0. */
int envelope_id_valid(const char *id);

#endif
