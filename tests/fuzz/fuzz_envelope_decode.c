/*
 * fuzz_envelope_decode — envelope_decode() on arbitrary bytes (a Kafka message value: anyone who can write to
 * the topics controls it; schemas/envelope.json is a public contract for backends).
 *
 * Differential: envelope_decode() scans without a tree (json_scan.h); reference_decode() below is the decoder it
 * replaced, on jansson. Both must accept the same messages, with the same id, type, organization_id, occurred_at
 * and data (compared as JSON values).
 * Invariants: errbuf terminated; on success the envelope is valid (id printable 1-128, known type, org > 0,
 * object data with integer id) and round-trips: envelope_encode() then envelope_decode() again gives the same
 * fields; the delivery body is {"data":<data>,"type":<type>}.
 */
#include "envelope.h"
#include "event_types.h"
#include "fuzz_util.h"

/* The jansson decoder envelope_decode() was until 2026-11-29. Returns 0 and fills out (data: a new reference). */
static int reference_decode(const char *buf, size_t len, envelope *out, json_t **data_out)
{
    json_error_t error;
    memset(out, 0, sizeof *out);
    *data_out = NULL;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL)
        return -1;
    const char *id = NULL, *type = NULL, *occurred = NULL;
    json_int_t org = 0;
    json_t *data = NULL;
    int64_t occurred_ms = 0;
    int rc = -1;
    if (json_unpack_ex(root, &error, 0, "{s:s, s:s, s:I, s:s, s:o}", "id", &id, "type", &type, "organization_id",
                       &org, "occurred_at", &occurred, "data", &data) == 0 &&
        envelope_id_valid(id) && (out->type = event_type_index(type)) >= 0 && org > 0 &&
        time_parse_rfc3339(occurred, &occurred_ms) == 0 && json_is_object(data) &&
        json_is_integer(json_object_get(data, "id"))) {
        snprintf(out->id, sizeof out->id, "%s", id);
        out->organization_id = (long long)org;
        time_format_rfc3339(occurred_ms, 1, out->occurred_at);
        *data_out = json_incref(data);
        rc = 0;
    }
    json_decref(root);
    return rc;
}

static json_t *parse_data(const envelope *env)
{
    FUZZ_CHECK(env->data != NULL && strlen(env->data) == env->data_len, "data text");
    json_t *data = json_loadb(env->data, env->data_len, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(json_is_object(data) && json_is_integer(json_object_get(data, "id")), "data: %s", env->data);
    return data;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    envelope env, again, ref;
    json_t *ref_data;
    char err[128];
    memset(err, 'x', sizeof err);
    int rc = envelope_decode((const char *)data, size, &env, err, sizeof err);
    int ref_rc = reference_decode((const char *)data, size, &ref, &ref_data);
    if (rc != 0 && ref_rc == 0) { /* allowed only for the NUL bytes jansson skips (fuzz_util.h) */
        size_t stripped_size;
        int removed;
        char *stripped = fuzz_strip_jansson_nuls(data, size, &stripped_size, &removed);
        FUZZ_CHECK(removed, "envelope_decode refused (%s) what the jansson reference accepted", err);
        FUZZ_CHECK(envelope_decode(stripped, stripped_size, &env, err, sizeof err) == 0,
                   "envelope_decode refused (%s) the input without jansson's skipped NULs", err);
        envelope_clear(&env);
        json_decref(ref_data);
        free(stripped);
        return 0;
    }
    FUZZ_CHECK(rc == ref_rc, "envelope_decode %d, jansson reference %d (%s)", rc, ref_rc, rc != 0 ? err : "");
    if (rc != 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL, "errbuf not terminated");
        FUZZ_CHECK(env.data == NULL, "data left on failure");
        return 0;
    }
    FUZZ_CHECK(envelope_id_valid(env.id), "invalid id accepted");
    FUZZ_CHECK(event_type_name(env.type) != NULL, "type %d", env.type);
    FUZZ_CHECK(env.organization_id > 0, "org %lld", env.organization_id);
    FUZZ_CHECK(strcmp(env.id, ref.id) == 0 && env.type == ref.type && env.organization_id == ref.organization_id &&
                   strcmp(env.occurred_at, ref.occurred_at) == 0,
               "fields differ from the jansson reference");
    json_t *parsed = parse_data(&env);
    FUZZ_CHECK(json_equal(parsed, ref_data), "data differs from the jansson reference: %s", env.data);

    size_t len = 0;
    char *text = envelope_encode(&env, &len);
    FUZZ_CHECK(text != NULL, "encode failed");
    FUZZ_CHECK(len == strlen(text), "length %zu vs %zu", len, strlen(text));
    rc = envelope_decode(text, len, &again, err, sizeof err);
    FUZZ_CHECK(rc == 0, "re-decode of %s failed: %s", text, err);
    FUZZ_CHECK(strcmp(env.id, again.id) == 0, "id %s vs %s", env.id, again.id);
    FUZZ_CHECK(env.type == again.type, "type %d vs %d", env.type, again.type);
    FUZZ_CHECK(env.organization_id == again.organization_id, "org %lld vs %lld", env.organization_id,
               again.organization_id);
    FUZZ_CHECK(strcmp(env.occurred_at, again.occurred_at) == 0, "occurred_at %s vs %s", env.occurred_at,
               again.occurred_at);
    FUZZ_CHECK(again.data_len == env.data_len && memcmp(again.data, env.data, env.data_len) == 0,
               "data bytes differ after round trip: %s", text);

    char *body = envelope_delivery_body(&env, &len);
    FUZZ_CHECK(body != NULL, "delivery body failed");
    json_t *body_json = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(json_object_size(body_json) == 2 && json_equal(json_object_get(body_json, "data"), parsed) &&
                   json_is_string(json_object_get(body_json, "type")) &&
                   strcmp(json_string_value(json_object_get(body_json, "type")), event_type_name(env.type)) == 0,
               "delivery body %s", body);
    envelope view;
    FUZZ_CHECK(envelope_view_in_body(&env, body, len, &view) == 0 && view.data_len == env.data_len &&
                   memcmp(view.data, env.data, env.data_len) == 0,
               "view of the envelope in its body: %s", body);
    json_decref(body_json);
    json_decref(parsed);
    json_decref(ref_data);
    free(body);
    free(text);
    envelope_clear(&again);
    envelope_clear(&env);
    return 0;
}
