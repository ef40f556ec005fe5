/*
 * fuzz_envelope_request — envelope_from_request() on arbitrary JSON (one event of POST /api/v1/events).
 *
 * Input: byte 0 selects the token (bit 0: organization token of org 7, else service token) and bit 1 the
 * batch index (3, or -1 for a single event); the rest is parsed with json_loadb (invalid JSON is skipped:
 * json_loadb itself is jansson's, not ours).
 * Invariants: the return value agrees with the errors array (0 <=> no new errors), every error is
 * {"field": string, "message": string[, "index"]}; an accepted event (given an id when the client sent none,
 * as events_api does) encodes to an envelope that envelope_decode() accepts with the same fields — what
 * producer-api accepts, the dispatcher must be able to read.
 */
#include "envelope.h"
#include "event_types.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t sel = fuzz_byte(&data, &size);
    long long token_org = (sel & 1) ? 7 : 0;
    int index = (sel & 2) ? 3 : -1;

    json_error_t jerr;
    json_t *event = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (event == NULL)
        return 0;
    json_t *errors = json_array();
    json_array_append_new(errors, json_string("pre-existing")); /* errors of earlier events in a batch */
    envelope env;
    int rc = envelope_from_request(event, token_org, index, &env, errors);
    FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
    FUZZ_CHECK((rc == 0) == (json_array_size(errors) == 1), "rc %d with %zu errors", rc, json_array_size(errors));
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        if (i == 0)
            continue;
        FUZZ_CHECK(json_is_string(json_object_get(e, "field")) && json_is_string(json_object_get(e, "message")),
                   "malformed error");
        json_t *idx = json_object_get(e, "index");
        FUZZ_CHECK(index < 0 ? idx == NULL : json_integer_value(idx) == index, "index");
    }
    if (rc == 0) {
        FUZZ_CHECK(token_org == 0 || env.organization_id == token_org, "org %lld for token org %lld",
                   env.organization_id, token_org);
        if (env.id[0] == '\0')
            snprintf(env.id, sizeof env.id, "0192f0c1-0000-7000-8000-000000000000");
        size_t len = 0;
        char *text = envelope_encode(&env, &len);
        FUZZ_CHECK(text != NULL, "encode failed");
        envelope again;
        char err[128];
        int drc = envelope_decode(text, len, &again, err, sizeof err);
        FUZZ_CHECK(drc == 0, "accepted event does not decode: %s: %s", text, err);
        FUZZ_CHECK(strcmp(env.id, again.id) == 0 && env.type == again.type &&
                       env.organization_id == again.organization_id &&
                       strcmp(env.occurred_at, again.occurred_at) == 0,
                   "round trip differs: %s", text);
        envelope_clear(&again);
        free(text);
    } else {
        FUZZ_CHECK(env.data == NULL, "data kept on failure");
    }
    envelope_clear(&env);
    json_decref(errors);
    json_decref(event);
    return 0;
}
