/* envelope — see envelope.h. */
#include "envelope.h"

#include "event_types.h"
#include "json_scan.h"
#include "json_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void envelope_clear(envelope *env)
{
    if (env == NULL)
        return;
    free(env->data);
    memset(env, 0, sizeof *env);
}

int envelope_copy(envelope *dst, const envelope *src)
{
    *dst = *src;
    if (src->data == NULL)
        return 0;
    dst->data = malloc(src->data_len + 1);
    if (dst->data == NULL) {
        memset(dst, 0, sizeof *dst);
        return -1;
    }
    memcpy(dst->data, src->data, src->data_len);
    dst->data[src->data_len] = '\0';
    return 0;
}

#define BODY_PREFIX "{\"data\":"
#define BODY_TYPE_KEY ",\"type\":\""

int envelope_view_in_body(const envelope *env, const char *body, size_t body_len, envelope *view)
{
    const char *type = event_type_name(env->type);
    size_t prefix = sizeof BODY_PREFIX - 1, suffix = sizeof BODY_TYPE_KEY - 1 + (type != NULL ? strlen(type) : 0) + 2;
    if (type == NULL || body == NULL || body_len < prefix + suffix + 2 || memcmp(body, BODY_PREFIX, prefix) != 0 ||
        memcmp(body + body_len - suffix, BODY_TYPE_KEY, sizeof BODY_TYPE_KEY - 1) != 0)
        return -1;
    *view = *env;
    view->data = (char *)body + prefix;
    view->data_len = body_len - prefix - suffix;
    return 0;
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

/* The envelope's members, in contract order: what envelope_decode() collects from a message and
 * envelope_from_request() from a client's event, which has the same five (spans into the text). */
enum { MEMBER_ID, MEMBER_TYPE, MEMBER_ORG, MEMBER_OCCURRED_AT, MEMBER_DATA, MEMBER_COUNT };
static const char *const member_names[MEMBER_COUNT] = {"id", "type", "organization_id", "occurred_at", "data"};

static int on_data_member(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    if (json_scan_string_equals(key, "id"))
        *(int *)ctx = value->kind == JSON_SCAN_INTEGER;
    return 0;
}

/* Decodes a string span into a buffer of its raw length (a decoded string is never longer). Returns a malloc'd
 * string or NULL. */
static char *decode_text(const json_scan_span *s)
{
    char *text = malloc(s->len + 1);
    if (text != NULL && json_scan_string_decode(s, text, s->len + 1) < 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* The member's span when the event has it and it is not null, else NULL. */
static const json_scan_span *present(const json_scan_pick *m, int member)
{
    if (!json_scan_picked(m, member) || m->span[member].kind == JSON_SCAN_NULL)
        return NULL;
    return &m->span[member];
}

int envelope_from_request(const char *text, size_t len, long long token_org, int index, envelope *out,
                          json_t *errors)
{
    size_t errors_before = json_array_size(errors);
    json_scan_pick m = {.names = member_names, .count = MEMBER_COUNT};
    memset(out, 0, sizeof *out);
    out->type = -1;

    if (json_scan_object(text, len, json_scan_pick_member, &m, NULL, 0) != 0) {
        add_error(errors, index, "event", "must be a JSON object");
        return -1;
    }

    char name[64];
    const json_scan_span *type = json_scan_picked(&m, MEMBER_TYPE) ? &m.span[MEMBER_TYPE] : NULL;
    if (type == NULL)
        add_error(errors, index, "type", "is required");
    else if (type->kind != JSON_SCAN_STRING || json_scan_string_decode(type, name, sizeof name) < 0 ||
             (out->type = event_type_index(name)) < 0)
        add_error(errors, index, "type", "must be one of the eight event types");

    const json_scan_span *org = present(&m, MEMBER_ORG);
    long long org_value = 0;
    if (org == NULL) {
        if (token_org > 0)
            out->organization_id = token_org;
        else
            add_error(errors, index, "organization_id", "is required with a service token");
    } else if (json_scan_integer(org, &org_value) != 0 || org_value <= 0) {
        add_error(errors, index, "organization_id", "must be a positive integer");
    } else if (token_org > 0 && org_value != token_org) {
        add_error(errors, index, "organization_id", "must be your own organization");
    } else {
        out->organization_id = org_value;
    }

    const json_scan_span *data = json_scan_picked(&m, MEMBER_DATA) ? &m.span[MEMBER_DATA] : NULL;
    int data_id_integer = 0;
    if (data == NULL)
        add_error(errors, index, "data", "is required");
    else if (data->kind != JSON_SCAN_OBJECT)
        add_error(errors, index, "data", "must be a JSON object");
    else if (json_scan_members(data, on_data_member, &data_id_integer) != 0 || !data_id_integer)
        add_error(errors, index, "data.id", "must be an integer"); /* data was validated with the event */

    const json_scan_span *id = present(&m, MEMBER_ID);
    if (id != NULL && (id->kind != JSON_SCAN_STRING || json_scan_string_decode(id, out->id, sizeof out->id) < 0 ||
                       !envelope_id_valid(out->id))) {
        add_error(errors, index, "id", "must be 1-128 printable ASCII characters");
        out->id[0] = '\0';
    }

    const json_scan_span *occurred = present(&m, MEMBER_OCCURRED_AT);
    int64_t occurred_ms = time_now_ms();
    if (occurred != NULL) {
        char *stamp = occurred->kind == JSON_SCAN_STRING ? decode_text(occurred) : NULL;
        if (stamp == NULL || time_parse_rfc3339(stamp, &occurred_ms) != 0)
            add_error(errors, index, "occurred_at", "must be an RFC 3339 timestamp");
        free(stamp);
    }
    time_format_rfc3339(occurred_ms, 1, out->occurred_at);

    if (json_array_size(errors) != errors_before)
        return -1;
    out->data = malloc(data->len + 1);
    if (out->data == NULL) {
        add_error(errors, index, "data", "could not be stored");
        return -1;
    }
    out->data_len = json_scan_compact(out->data, data->start, data->len);
    out->data[out->data_len] = '\0';
    return 0;
}

json_t *envelope_to_json(const envelope *env)
{
    json_t *data = json_loadb(env->data, env->data_len, 0, NULL);
    if (data == NULL)
        return NULL;
    return json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", env->id, "type", event_type_name(env->type),
                     "organization_id", (json_int_t)env->organization_id, "occurred_at", env->occurred_at, "data",
                     data);
}

/* Starts env's JSON in a malloc'd buffer with room for data plus the other fields escaped at worst (id: 128 × 2
 * for '"' and '\\'; type, organization_id and occurred_at are short and plain); *type gets the type's name.
 * Returns the buffer (finish it with text_finish()), or NULL when env has no data or type, or out of memory. */
static char *text_begin(const envelope *env, json_buf *b, const char **type)
{
    *type = event_type_name(env->type);
    if (env->data == NULL || *type == NULL)
        return NULL;
    size_t cap = env->data_len + 2 * ENVELOPE_ID_MAX + TIME_TEXT_MAX + 160;
    char *text = malloc(cap);
    if (text != NULL)
        json_buf_init(b, text, cap);
    return text;
}

static char *text_finish(char *text, json_buf *b, size_t *len)
{
    if (b->overflow) {
        free(text);
        return NULL;
    }
    if (len != NULL)
        *len = b->len;
    return text;
}

char *envelope_encode(const envelope *env, size_t *len)
{
    json_buf b;
    const char *type;
    char *text = text_begin(env, &b, &type);
    if (text == NULL)
        return NULL;
    json_buf_raw(&b, "{", 1);
    json_buf_key(&b, "id");
    json_buf_string(&b, env->id);
    json_buf_key(&b, "type");
    json_buf_string(&b, type);
    json_buf_key(&b, "organization_id");
    json_buf_int(&b, env->organization_id);
    json_buf_key(&b, "occurred_at");
    json_buf_string(&b, env->occurred_at);
    json_buf_key(&b, "data");
    json_buf_raw(&b, env->data, env->data_len);
    json_buf_raw(&b, "}", 1);
    return text_finish(text, &b, len);
}

int envelope_decode(const char *buf, size_t len, envelope *out, char *errbuf, size_t errlen)
{
    json_scan_pick m = {.names = member_names, .count = MEMBER_COUNT};
    char scan_error[128];
    memset(out, 0, sizeof *out);
    if (json_scan_object(buf, len, json_scan_pick_member, &m, scan_error, sizeof scan_error) != 0) {
        snprintf(errbuf, errlen, "invalid JSON: %s", scan_error);
        return -1;
    }
    for (int i = 0; i < MEMBER_COUNT; i++) {
        if (!json_scan_picked(&m, i)) {
            snprintf(errbuf, errlen, "envelope: object item not found: %s", member_names[i]);
            return -1;
        }
    }
    char type[64], id[ENVELOPE_ID_MAX + 1];
    long long org = 0;
    int64_t occurred_ms = 0;
    int data_id_integer = 0;
    char *occurred = NULL;
    const json_scan_span *id_text = &m.span[MEMBER_ID], *type_text = &m.span[MEMBER_TYPE],
                         *org_number = &m.span[MEMBER_ORG], *occurred_text = &m.span[MEMBER_OCCURRED_AT],
                         *data = &m.span[MEMBER_DATA];
    if (id_text->kind != JSON_SCAN_STRING || type_text->kind != JSON_SCAN_STRING ||
        occurred_text->kind != JSON_SCAN_STRING) {
        snprintf(errbuf, errlen, "envelope: id, type and occurred_at must be strings");
    } else if (json_scan_integer(org_number, &org) != 0) {
        snprintf(errbuf, errlen, "envelope: organization_id must be an integer");
    } else if (json_scan_string_decode(id_text, id, sizeof id) < 0 || !envelope_id_valid(id)) {
        snprintf(errbuf, errlen, "envelope: id must be 1-128 printable ASCII characters");
    } else if (json_scan_string_decode(type_text, type, sizeof type) < 0 || (out->type = event_type_index(type)) < 0) {
        snprintf(errbuf, errlen, "envelope: unknown type");
    } else if (org <= 0) {
        snprintf(errbuf, errlen, "envelope: organization_id must be positive");
    } else if ((occurred = decode_text(occurred_text)) == NULL || time_parse_rfc3339(occurred, &occurred_ms) != 0) {
        snprintf(errbuf, errlen, "envelope: occurred_at must be RFC 3339");
    } else if (data->kind != JSON_SCAN_OBJECT || json_scan_members(data, on_data_member, &data_id_integer) != 0 ||
               !data_id_integer) { /* data was validated with the envelope: walked, not scanned again */
        snprintf(errbuf, errlen, "envelope: data must be an object with an integer id");
    } else if ((out->data = malloc(data->len + 1)) == NULL) {
        snprintf(errbuf, errlen, "envelope: out of memory");
    } else {
        memcpy(out->data, data->start, data->len);
        out->data[data->len] = '\0';
        out->data_len = data->len;
        memcpy(out->id, id, sizeof id);
        out->organization_id = org;
        time_format_rfc3339(occurred_ms, 1, out->occurred_at);
        free(occurred);
        return 0;
    }
    free(occurred);
    memset(out, 0, sizeof *out);
    return -1;
}

char *envelope_delivery_body(const envelope *env, size_t *len)
{
    json_buf b;
    const char *type;
    char *text = text_begin(env, &b, &type);
    if (text == NULL)
        return NULL;
    json_buf_raw(&b, BODY_PREFIX, sizeof BODY_PREFIX - 1); /* the layout envelope_view_in_body() relies on */
    json_buf_raw(&b, env->data, env->data_len);
    json_buf_raw(&b, BODY_TYPE_KEY, sizeof BODY_TYPE_KEY - 1);
    json_buf_raw(&b, type, strlen(type)); /* event type names need no escaping */
    json_buf_raw(&b, "\"}", 2);
    return text_finish(text, &b, len);
}
