/*
 * fuzz_envelope_request — envelope_from_request() on arbitrary bytes (one event of POST /api/v1/events).
 *
 * Input: byte 0 selects the token (bit 0: organization token of org 7, else service token) and bit 1 the
 * batch index (3, or -1 for a single event); the rest is the event's text.
 *
 * Differential: envelope_from_request() reads the event's members from json_scan spans; reference_from_request()
 * below is the jansson version it replaced (2026-11-29). On every input both must accept or refuse alike, with
 * the same errors array, and an accepted event must have the same id, type, organization_id, occurred_at (when
 * the client gave one) and data (compared as JSON values; the new data is the client's text compacted).
 * Invariants: the return value agrees with the errors array; an accepted event (given an id when the client sent
 * none, as events_api does) encodes to an envelope that envelope_decode() accepts with the same fields and data
 * bytes — what producer-api accepts, the dispatcher must be able to read.
 */
#include "envelope.h"
#include "event_types.h"
#include "fuzz_util.h"

static void reference_error(json_t *errors, int index, const char *field, const char *message)
{
    json_t *error = json_pack("{s:s, s:s}", "field", field, "message", message);
    if (index >= 0)
        json_object_set_new(error, "index", json_integer(index));
    json_array_append_new(errors, error);
}

/* envelope_from_request() as it was on jansson. Fills out (data: a new reference in *data_out). */
static int reference_from_request(json_t *event, long long token_org, int index, envelope *out, json_t **data_out,
                                  json_t *errors)
{
    size_t errors_before = json_array_size(errors);
    memset(out, 0, sizeof *out);
    out->type = -1;
    *data_out = NULL;
    if (!json_is_object(event)) {
        reference_error(errors, index, "event", "must be a JSON object");
        return -1;
    }
    json_t *type = json_object_get(event, "type");
    if (type == NULL)
        reference_error(errors, index, "type", "is required");
    else if (!json_is_string(type) || (out->type = event_type_index(json_string_value(type))) < 0)
        reference_error(errors, index, "type", "must be one of the eight event types");
    json_t *org = json_object_get(event, "organization_id");
    if (org == NULL || json_is_null(org)) {
        if (token_org > 0)
            out->organization_id = token_org;
        else
            reference_error(errors, index, "organization_id", "is required with a service token");
    } else if (!json_is_integer(org) || json_integer_value(org) <= 0) {
        reference_error(errors, index, "organization_id", "must be a positive integer");
    } else if (token_org > 0 && json_integer_value(org) != token_org) {
        reference_error(errors, index, "organization_id", "must be your own organization");
    } else {
        out->organization_id = (long long)json_integer_value(org);
    }
    json_t *data = json_object_get(event, "data");
    if (data == NULL)
        reference_error(errors, index, "data", "is required");
    else if (!json_is_object(data))
        reference_error(errors, index, "data", "must be a JSON object");
    else if (!json_is_integer(json_object_get(data, "id")))
        reference_error(errors, index, "data.id", "must be an integer");
    json_t *id = json_object_get(event, "id");
    if (id != NULL && !json_is_null(id)) {
        if (!json_is_string(id) || !envelope_id_valid(json_string_value(id)))
            reference_error(errors, index, "id", "must be 1-128 printable ASCII characters");
        else
            snprintf(out->id, sizeof out->id, "%s", json_string_value(id));
    }
    json_t *occurred = json_object_get(event, "occurred_at");
    int64_t occurred_ms = 0;
    if (occurred != NULL && !json_is_null(occurred)) {
        if (!json_is_string(occurred) || time_parse_rfc3339(json_string_value(occurred), &occurred_ms) != 0)
            reference_error(errors, index, "occurred_at", "must be an RFC 3339 timestamp");
        else
            time_format_rfc3339(occurred_ms, 1, out->occurred_at);
    }
    if (json_array_size(errors) != errors_before)
        return -1;
    *data_out = json_incref(data);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t sel = fuzz_byte(&data, &size);
    long long token_org = (sel & 1) ? 7 : 0;
    int index = (sel & 2) ? 3 : -1;

    json_t *ref_errors = json_array();
    json_array_append_new(ref_errors, json_string("pre-existing")); /* errors of earlier events in a batch */
    json_t *event = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    envelope ref;
    json_t *ref_data = NULL;
    int ref_rc = -1;
    if (event == NULL) /* not JSON: events_api refuses such a body before, and a batch element cannot be one */
        reference_error(ref_errors, index, "event", "must be a JSON object");
    else
        ref_rc = reference_from_request(event, token_org, index, &ref, &ref_data, ref_errors);

    json_t *errors = json_array();
    json_array_append_new(errors, json_string("pre-existing"));
    envelope env;
    int rc = envelope_from_request((const char *)data, size, token_org, index, &env, errors);
    if (!json_equal(errors, ref_errors)) {
        /* allowed only where jansson skipped a NUL after a number or literal (fuzz_util.h): then the input
         * without those NULs must give the reference's answer */
        size_t stripped_size;
        int removed;
        char *stripped = fuzz_strip_jansson_nuls(data, size, &stripped_size, &removed);
        FUZZ_CHECK(removed && rc == -1 && env.data == NULL, "differs from the reference with no NUL to explain it");
        json_decref(errors);
        errors = json_array();
        json_array_append_new(errors, json_string("pre-existing"));
        rc = envelope_from_request(stripped, stripped_size, token_org, index, &env, errors);
        free(stripped);
    }
    if (!json_equal(errors, ref_errors)) {
        char *a = json_dumps(errors, JSON_COMPACT), *b = json_dumps(ref_errors, JSON_COMPACT);
        FUZZ_CHECK(0, "errors %s, jansson reference %s", a, b);
    }
    FUZZ_CHECK(rc == ref_rc, "rc %d, reference %d", rc, ref_rc);
    FUZZ_CHECK((rc == 0) == (json_array_size(errors) == 1), "rc %d with %zu errors", rc, json_array_size(errors));

    if (rc == 0) {
        FUZZ_CHECK(token_org == 0 || env.organization_id == token_org, "org %lld for token org %lld",
                   env.organization_id, token_org);
        FUZZ_CHECK(strcmp(env.id, ref.id) == 0 && env.type == ref.type && env.organization_id == ref.organization_id,
                   "fields differ from the reference");
        FUZZ_CHECK(ref.occurred_at[0] == '\0' || strcmp(env.occurred_at, ref.occurred_at) == 0, "occurred_at %s vs %s",
                   env.occurred_at, ref.occurred_at);
        FUZZ_CHECK(env.data != NULL && strlen(env.data) == env.data_len, "data text");
        json_t *parsed = json_loadb(env.data, env.data_len, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_CHECK(parsed != NULL && json_equal(parsed, ref_data), "data differs from the reference: %s", env.data);
        json_decref(parsed);

        if (env.id[0] == '\0')
            snprintf(env.id, sizeof env.id, "0192f0c1-0000-7000-8000-000000000000");
        size_t len = 0;
        char *encoded = envelope_encode(&env, &len);
        FUZZ_CHECK(encoded != NULL, "encode failed");
        envelope again;
        char err[128];
        int drc = envelope_decode(encoded, len, &again, err, sizeof err);
        FUZZ_CHECK(drc == 0, "accepted event does not decode: %s: %s", encoded, err);
        FUZZ_CHECK(strcmp(env.id, again.id) == 0 && env.type == again.type &&
                       env.organization_id == again.organization_id &&
                       strcmp(env.occurred_at, again.occurred_at) == 0 && again.data_len == env.data_len &&
                       memcmp(again.data, env.data, env.data_len) == 0,
                   "round trip differs: %s", encoded);
        envelope_clear(&again);
        free(encoded);
    } else {
        FUZZ_CHECK(env.data == NULL, "data kept on failure");
    }
    envelope_clear(&env);
    json_decref(ref_data);
    json_decref(ref_errors);
    json_decref(errors);
    json_decref(event);
    return 0;
}
