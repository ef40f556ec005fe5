/* retry_record — see retry_record.h. */
#include "retry_record.h"

#include "json_scan.h"
#include "json_text.h"
#include "timeutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void retry_record_clear(retry_record *rec)
{
    if (rec == NULL)
        return;
    envelope_clear(&rec->env);
    memset(rec, 0, sizeof *rec);
}

void retry_record_add_attempt(retry_record *rec, const attempt_record *attempt)
{
    if (rec->attempt_count == RETRY_RECORD_MAX_ATTEMPTS) {
        memmove(&rec->attempts[0], &rec->attempts[1], sizeof rec->attempts[0] * (RETRY_RECORD_MAX_ATTEMPTS - 1));
        rec->attempt_count--;
    }
    rec->attempts[rec->attempt_count++] = *attempt;
}

static void buf_time(json_buf *b, int64_t ms)
{
    char text[TIME_TEXT_MAX];
    time_format_rfc3339(ms, 1, text);
    json_buf_string(b, text);
}

/* Room for s as a JSON string at worst (every byte escaped as \u00XX, or replaced by \ufffd). */
static size_t escaped_room(const char *s)
{
    return 6 * strlen(s) + 2;
}

char *retry_record_encode(const retry_record *rec, size_t *len)
{
    /* Written with json_buf, not a jansson tree: a record is encoded for every failed or refused attempt, and
     * the envelope's data goes in as the bytes it already is (docs/BENCHMARKS.md, 2026-11-30). */
    size_t env_len = 0;
    char *env = envelope_encode(&rec->env, &env_len);
    if (env == NULL)
        return NULL;
    size_t cap = env_len + 288 + escaped_room(rec->webhook_url) + escaped_room(rec->reason);
    for (int i = 0; i < rec->attempt_count; i++)
        cap += 128 + escaped_room(rec->attempts[i].error);
    char *text = malloc(cap);
    if (text == NULL) {
        free(env);
        return NULL;
    }
    json_buf b;
    json_buf_init(&b, text, cap);
    json_buf_raw(&b, "{", 1);
    json_buf_key(&b, "envelope");
    json_buf_raw(&b, env, env_len);
    free(env);
    json_buf_key(&b, "webhook_id");
    json_buf_int(&b, rec->webhook_id);
    json_buf_key(&b, "attempt");
    json_buf_int(&b, rec->attempt);
    json_buf_key(&b, "due_at");
    buf_time(&b, rec->due_ms);
    json_buf_key(&b, "attempts");
    json_buf_raw(&b, "[", 1);
    for (int i = 0; i < rec->attempt_count; i++) {
        const attempt_record *a = &rec->attempts[i];
        json_buf_raw(&b, i == 0 ? "{" : ",{", i == 0 ? 1 : 2);
        json_buf_key(&b, "attempt");
        json_buf_int(&b, a->attempt);
        json_buf_key(&b, "at");
        buf_time(&b, a->at_ms);
        json_buf_key(&b, "status");
        if (a->status > 0)
            json_buf_int(&b, a->status);
        else
            json_buf_raw(&b, "null", 4);
        json_buf_key(&b, "latency_ms");
        json_buf_fixed1(&b, a->latency_ms);
        json_buf_key(&b, "error");
        json_buf_string(&b, a->error[0] ? a->error : NULL);
        json_buf_raw(&b, "}", 1);
    }
    json_buf_raw(&b, "]", 1);
    if (rec->webhook_url[0]) {
        json_buf_key(&b, "webhook_url");
        json_buf_string(&b, rec->webhook_url);
    }
    if (rec->reason[0]) {
        json_buf_key(&b, "reason");
        json_buf_string(&b, rec->reason);
    }
    if (rec->dead_ms > 0) {
        json_buf_key(&b, "dead_lettered_at");
        buf_time(&b, rec->dead_ms);
    }
    if (rec->parked > 0) {
        json_buf_key(&b, "parked");
        json_buf_int(&b, rec->parked);
    }
    json_buf_raw(&b, "}", 1);
    if (b.overflow) { /* cannot happen: cap covers every field at its worst */
        free(text);
        return NULL;
    }
    if (len != NULL)
        *len = b.len;
    return text;
}

/* ---- decoding: one pass of json_scan over the message, no tree --------------------------------------------- */

/* The record's own members. */
enum { RR_ENVELOPE, RR_WEBHOOK_ID, RR_ATTEMPT, RR_DUE_AT, RR_ATTEMPTS, RR_URL, RR_REASON, RR_DEAD_AT, RR_PARKED,
       RR_COUNT };
static const char *const record_names[RR_COUNT] = {"envelope", "webhook_id", "attempt", "due_at", "attempts",
                                                   "webhook_url", "reason", "dead_lettered_at", "parked"};
/* The members of one element of "attempts". */
enum { AT_ATTEMPT, AT_AT, AT_STATUS, AT_LATENCY, AT_ERROR, AT_COUNT };
static const char *const attempt_names[AT_COUNT] = {"attempt", "at", "status", "latency_ms", "error"};

/* A string member decoded into out (truncated to fit, at a character boundary) when it is present and a
 * string; out is left untouched otherwise (what the jansson decoder did: wrong types are ignored). */
static void take_string(const json_scan_pick *m, int member, char *out, size_t cap)
{
    if (!json_scan_picked(m, member) || m->span[member].kind != JSON_SCAN_STRING)
        return;
    if (json_scan_string_decode(&m->span[member], out, cap) >= 0)
        return;
    /* longer than cap: decode in full, then cut before the last character that does not fit whole */
    size_t full_cap = m->span[member].len + 1;
    char *full = malloc(full_cap);
    if (full == NULL || json_scan_string_decode(&m->span[member], full, full_cap) < 0) {
        free(full);
        return;
    }
    size_t n = cap - 1;
    while (n > 0 && ((unsigned char)full[n] & 0xC0) == 0x80)
        n--; /* full[n] continues a character that started before n: cut before that character */
    memcpy(out, full, n);
    out[n] = '\0';
    free(full);
}

/* A date-time string member as epoch ms into *out (left alone otherwise). Returns 0 when it is present, a string
 * and RFC 3339, else -1. */
static int take_time(const json_scan_pick *m, int member, int64_t *out)
{
    char text[64];
    if (!json_scan_picked(m, member) || m->span[member].kind != JSON_SCAN_STRING ||
        json_scan_string_decode(&m->span[member], text, sizeof text) < 0)
        return -1;
    return time_parse_rfc3339(text, out);
}

/* A number member into *out (left alone when absent or not a number). */
static void take_number(const json_scan_pick *m, int member, double *out)
{
    char text[64];
    const json_scan_span *s = &m->span[member];
    if (!json_scan_picked(m, member) || (s->kind != JSON_SCAN_REAL && s->kind != JSON_SCAN_INTEGER) ||
        s->len >= sizeof text)
        return;
    memcpy(text, s->start, s->len);
    text[s->len] = '\0';
    *out = strtod(text, NULL);
}

/* An integer member within [min, max] into *out (left alone otherwise). */
static void take_integer(const json_scan_pick *m, int member, long long min, long long max, long long *out)
{
    long long n;
    if (json_scan_picked(m, member) && json_scan_integer(&m->span[member], &n) == 0 && n >= min && n <= max)
        *out = n;
}

/* One element of "attempts": its known members, each ignored when of another type (as before). */
static int on_attempts_item(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    retry_record *out = ctx;
    (void)key; /* NULL: array elements */
    attempt_record a;
    memset(&a, 0, sizeof a);
    if (value->kind == JSON_SCAN_OBJECT) {
        json_scan_pick m = {.names = attempt_names, .count = AT_COUNT};
        if (json_scan_object(value->start, value->len, json_scan_pick_member, &m, NULL, 0) == 0) {
            long long attempt = 0, status = 0;
            take_integer(&m, AT_ATTEMPT, INT_MIN, INT_MAX, &attempt);
            take_integer(&m, AT_STATUS, 0, 999, &status);
            a.attempt = (int)attempt;
            a.status = (long)status;
            take_time(&m, AT_AT, &a.at_ms);
            take_number(&m, AT_LATENCY, &a.latency_ms);
            take_string(&m, AT_ERROR, a.error, sizeof a.error);
        }
    }
    retry_record_add_attempt(out, &a); /* an element of another kind counts as an empty attempt, as before */
    return 0;
}

int retry_record_decode(const char *buf, size_t len, retry_record *out, char *errbuf, size_t errlen)
{
    json_scan_pick m = {.names = record_names, .count = RR_COUNT};
    char scan_error[128];
    memset(out, 0, sizeof *out);
    if (json_scan_object(buf, len, json_scan_pick_member, &m, scan_error, sizeof scan_error) != 0) {
        snprintf(errbuf, errlen, "invalid JSON: %s", scan_error);
        return -1;
    }
    static const int required[] = {RR_ENVELOPE, RR_WEBHOOK_ID, RR_ATTEMPT, RR_DUE_AT, RR_ATTEMPTS};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (!json_scan_picked(&m, required[i])) {
            snprintf(errbuf, errlen, "retry record: object item not found: %s", record_names[required[i]]);
            return -1;
        }
    }
    long long webhook_id = 0, attempt = 0;
    int64_t due_ms = 0;
    if (json_scan_integer(&m.span[RR_WEBHOOK_ID], &webhook_id) != 0 ||
        json_scan_integer(&m.span[RR_ATTEMPT], &attempt) != 0 || webhook_id <= 0 || attempt < 1 ||
        attempt > 1000000 || m.span[RR_ATTEMPTS].kind != JSON_SCAN_ARRAY || take_time(&m, RR_DUE_AT, &due_ms) != 0) {
        snprintf(errbuf, errlen, "retry record: invalid webhook_id, attempt, due_at or attempts");
        return -1;
    }
    if (m.span[RR_ENVELOPE].kind != JSON_SCAN_OBJECT) {
        snprintf(errbuf, errlen, "retry record: envelope must be an object");
        return -1;
    }
    if (envelope_decode(m.span[RR_ENVELOPE].start, m.span[RR_ENVELOPE].len, &out->env, errbuf, errlen) != 0)
        return -1;
    out->webhook_id = webhook_id;
    out->attempt = (int)attempt;
    out->due_ms = due_ms;
    /* the array was validated with the whole message: this walk cannot fail */
    json_scan_document(m.span[RR_ATTEMPTS].start, m.span[RR_ATTEMPTS].len, on_attempts_item, out, NULL, 0);
    take_string(&m, RR_URL, out->webhook_url, sizeof out->webhook_url);
    take_string(&m, RR_REASON, out->reason, sizeof out->reason);
    take_time(&m, RR_DEAD_AT, &out->dead_ms);
    long long parked = 0;
    take_integer(&m, RR_PARKED, 0, INT_MAX, &parked);
    out->parked = (int)parked;
    return 0;
}
