/* envelope — see envelope.h. */
#include "envelope.h"

#include "event_types.h"
#include "json_text.h"

#include <stdio.h>
#include <string.h>

void envelope_clear(envelope *env)
{
    if (env == NULL)
        return;
    json_decref(env->data);
    memset(env, 0, sizeof *env);
}

int envelope_id_valid(const char *id)
{
    size_t len = 0;
    if (id == NULL)
        return 0;
    for (; id[len] != '\0'; len++)
        if ((unsigned char)id[len] < 0x21 || (unsigned char)id[len] > 0x7e)
            return 0;
    return len >= 1 && len <= ENVELOPE_ID_MAX;
}

static void add_error(json_t *errors, int index, const char *field, const char *message)
{
    json_t *error = json_pack("{s:s, s:s}", "field", field, "message", message);
    if (error == NULL)
        return;
    if (index >= 0)
        json_object_set_new(error, "index", json_integer(index));
    json_array_append_new(errors, error);
}

int envelope_from_request(json_t *event, long long token_org, int index, envelope *out, json_t *errors)
{
    size_t errors_before = json_array_size(errors);
    memset(out, 0, sizeof *out);
    out->type = -1;

    if (!json_is_object(event)) {
        add_error(errors, index, "event", "must be a JSON object");
        return -1;
    }

    json_t *type = json_object_get(event, "type");
    if (type == NULL)
        add_error(errors, index, "type", "is required");
    else if (!json_is_string(type) || (out->type = event_type_index(json_string_value(type))) < 0)
        add_error(errors, index, "type", "must be one of the eight event types");

    json_t *org = json_object_get(event, "organization_id");
    if (org == NULL || json_is_null(org)) {
        if (token_org > 0)
            out->organization_id = token_org;
        else
            add_error(errors, index, "organization_id", "is required with a service token");
    } else if (!json_is_integer(org) || json_integer_value(org) <= 0) {
        add_error(errors, index, "organization_id", "must be a positive integer");
    } else if (token_org > 0 && json_integer_value(org) != token_org) {
        add_error(errors, index, "organization_id", "must be your own organization");
    } else {
        out->organization_id = (long long)json_integer_value(org);
    }

    json_t *data = json_object_get(event, "data");
    if (data == NULL)
        add_error(errors, index, "data", "is required");
    else if (!json_is_object(data))
        add_error(errors, index, "data", "must be a JSON object");
    else if (!json_is_integer(json_object_get(data, "id")))
        add_error(errors, index, "data.id", "must be an integer");

    json_t *id = json_object_get(event, "id");
    if (id != NULL && !json_is_null(id)) {
        if (!json_is_string(id) || !envelope_id_valid(json_string_value(id)))
            add_error(errors, index, "id", "must be 1-128 printable ASCII characters");
        else
            snprintf(out->id, sizeof out->id, "%s", json_string_value(id));
    }

    json_t *occurred = json_object_get(event, "occurred_at");
    int64_t occurred_ms = time_now_ms();
    if (occurred != NULL && !json_is_null(occurred)) {
        if (!json_is_string(occurred) || time_parse_rfc3339(json_string_value(occurred), &occurred_ms) != 0)
            add_error(errors, index, "occurred_at", "must be an RFC 3339 timestamp");
    }
    time_format_rfc3339(occurred_ms, 1, out->occurred_at);

    if (json_array_size(errors) != errors_before) {
        out->data = NULL;
        return -1;
    }
    out->data = json_incref(data);
    return 0;
}

json_t *envelope_to_json(const envelope *env)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:O}", "id", env->id, "type", event_type_name(env->type),
                     "organization_id", (json_int_t)env->organization_id, "occurred_at", env->occurred_at, "data",
                     env->data);
}

char *envelope_encode(const envelope *env, size_t *len)
{
    return json_text_take(envelope_to_json(env), len);
}

int envelope_decode(const char *buf, size_t len, envelope *out, char *errbuf, size_t errlen)
{
    json_error_t error;
    memset(out, 0, sizeof *out);
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL) {
        snprintf(errbuf, errlen, "invalid JSON: %s", error.text);
        return -1;
    }
    const char *id = NULL, *type = NULL, *occurred = NULL;
    json_int_t org = 0;
    json_t *data = NULL;
    int64_t occurred_ms = 0;
    if (json_unpack_ex(root, &error, 0, "{s:s, s:s, s:I, s:s, s:o}", "id", &id, "type", &type,
                       "organization_id", &org, "occurred_at", &occurred, "data", &data) != 0) {
        snprintf(errbuf, errlen, "envelope: %s", error.text);
    } else if (!envelope_id_valid(id)) {
        snprintf(errbuf, errlen, "envelope: id must be 1-128 printable ASCII characters");
    } else if ((out->type = event_type_index(type)) < 0) {
        snprintf(errbuf, errlen, "envelope: unknown type \"%.40s\"", type);
    } else if (org <= 0) {
        snprintf(errbuf, errlen, "envelope: organization_id must be positive");
    } else if (time_parse_rfc3339(occurred, &occurred_ms) != 0) {
        snprintf(errbuf, errlen, "envelope: occurred_at must be RFC 3339");
    } else if (!json_is_object(data) || !json_is_integer(json_object_get(data, "id"))) {
        snprintf(errbuf, errlen, "envelope: data must be an object with an integer id");
    } else {
        snprintf(out->id, sizeof out->id, "%s", id);
        out->organization_id = (long long)org;
        time_format_rfc3339(occurred_ms, 1, out->occurred_at);
        out->data = json_incref(data);
        json_decref(root);
        return 0;
    }
    json_decref(root);
    memset(out, 0, sizeof *out);
    return -1;
}

char *envelope_delivery_body(const envelope *env, size_t *len)
{
    return json_text_take(json_pack("{s:O, s:s}", "data", env->data, "type", event_type_name(env->type)), len);
}
