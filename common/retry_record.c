/* retry_record — see retry_record.h. */
#include "retry_record.h"

#include "json_text.h"
#include "timeutil.h"

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

static json_t *time_value(int64_t ms)
{
    char text[TIME_TEXT_MAX];
    time_format_rfc3339(ms, 1, text);
    return json_string(text);
}

char *retry_record_encode(const retry_record *rec, size_t *len)
{
    json_t *env = envelope_to_json(&rec->env);
    if (env == NULL)
        return NULL;
    json_t *attempts = json_array();
    for (int i = 0; i < rec->attempt_count; i++) {
        const attempt_record *a = &rec->attempts[i];
        json_array_append_new(attempts, json_pack("{s:i, s:o, s:o, s:f, s:o}", "attempt", a->attempt, "at",
                                                  time_value(a->at_ms), "status",
                                                  a->status > 0 ? json_integer(a->status) : json_null(),
                                                  "latency_ms", a->latency_ms, "error",
                                                  a->error[0] ? json_string(a->error) : json_null()));
    }
    json_t *obj = json_pack("{s:o, s:I, s:i, s:o, s:o}", "envelope", env, "webhook_id", (json_int_t)rec->webhook_id,
                            "attempt", rec->attempt, "due_at", time_value(rec->due_ms), "attempts", attempts);
    if (obj == NULL)
        return NULL;
    if (rec->webhook_url[0])
        json_object_set_new(obj, "webhook_url", json_string(rec->webhook_url));
    if (rec->reason[0])
        json_object_set_new(obj, "reason", json_string(rec->reason));
    if (rec->dead_ms > 0)
        json_object_set_new(obj, "dead_lettered_at", time_value(rec->dead_ms));
    return json_text_take(obj, len);
}

/* Copies a string member into out when present. */
static void copy_string(json_t *obj, const char *key, char *out, size_t outlen)
{
    const char *value = json_string_value(json_object_get(obj, key));
    if (value != NULL)
        snprintf(out, outlen, "%s", value);
}

int retry_record_decode(const char *buf, size_t len, retry_record *out, char *errbuf, size_t errlen)
{
    json_error_t error;
    memset(out, 0, sizeof *out);
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL) {
        snprintf(errbuf, errlen, "invalid JSON: %s", error.text);
        return -1;
    }
    json_t *env = NULL, *attempts = NULL;
    json_int_t webhook_id = 0;
    int attempt = 0;
    const char *due = NULL;
    int64_t due_ms = 0;
    if (json_unpack_ex(root, &error, 0, "{s:o, s:I, s:i, s:s, s:o}", "envelope", &env, "webhook_id", &webhook_id,
                       "attempt", &attempt, "due_at", &due, "attempts", &attempts) != 0) {
        snprintf(errbuf, errlen, "retry record: %s", error.text);
        goto err;
    }
    if (webhook_id <= 0 || attempt < 1 || !json_is_array(attempts) || time_parse_rfc3339(due, &due_ms) != 0) {
        snprintf(errbuf, errlen, "retry record: invalid webhook_id, attempt, due_at or attempts");
        goto err;
    }
    char *env_text = json_dumps(env, JSON_COMPACT); /* NULL when envelope is not an object or array */
    if (env_text == NULL) {
        snprintf(errbuf, errlen, "retry record: envelope must be an object");
        goto err;
    }
    int rc = envelope_decode(env_text, strlen(env_text), &out->env, errbuf, errlen);
    free(env_text);
    if (rc != 0)
        goto err;
    out->webhook_id = (long long)webhook_id;
    out->attempt = attempt;
    out->due_ms = due_ms;
    size_t i;
    json_t *item;
    json_array_foreach(attempts, i, item)
    {
        attempt_record a;
        memset(&a, 0, sizeof a);
        const char *at = json_string_value(json_object_get(item, "at"));
        a.attempt = (int)json_integer_value(json_object_get(item, "attempt"));
        if (at != NULL)
            time_parse_rfc3339(at, &a.at_ms);
        a.status = (long)json_integer_value(json_object_get(item, "status"));
        a.latency_ms = json_number_value(json_object_get(item, "latency_ms"));
        copy_string(item, "error", a.error, sizeof a.error);
        retry_record_add_attempt(out, &a);
    }
    copy_string(root, "webhook_url", out->webhook_url, sizeof out->webhook_url);
    copy_string(root, "reason", out->reason, sizeof out->reason);
    const char *dead = json_string_value(json_object_get(root, "dead_lettered_at"));
    if (dead != NULL)
        time_parse_rfc3339(dead, &out->dead_ms);
    json_decref(root);
    return 0;
err:
    json_decref(root);
    retry_record_clear(out);
    return -1;
}
