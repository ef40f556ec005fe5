/*
 * fuzz_envelope_decode — envelope_decode() on arbitrary bytes (a Kafka message value: anyone who can write to
 * the topics controls it; schemas/envelope.json is a public contract for backends).
 *
 * Invariants: errbuf terminated; on success the envelope is valid (id printable 1-128, known type, org > 0,
 * object data with integer id) and round-trips: envelope_encode() then envelope_decode() again gives the same
 * id, type, organization_id and occurred_at; envelope_delivery_body() works.
 */
#include "envelope.h"
#include "event_types.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    envelope env, again;
    char err[128];
    memset(err, 'x', sizeof err);
    if (envelope_decode((const char *)data, size, &env, err, sizeof err) != 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL, "errbuf not terminated");
        FUZZ_CHECK(env.data == NULL, "data left on failure");
        return 0;
    }
    FUZZ_CHECK(envelope_id_valid(env.id), "invalid id accepted");
    FUZZ_CHECK(event_type_name(env.type) != NULL, "type %d", env.type);
    FUZZ_CHECK(env.organization_id > 0, "org %lld", env.organization_id);
    FUZZ_CHECK(json_is_object(env.data) && json_is_integer(json_object_get(env.data, "id")), "data");

    size_t len = 0;
    char *text = envelope_encode(&env, &len);
    FUZZ_CHECK(text != NULL, "encode failed");
    FUZZ_CHECK(len == strlen(text), "length %zu vs %zu", len, strlen(text));
    int rc = envelope_decode(text, len, &again, err, sizeof err);
    FUZZ_CHECK(rc == 0, "re-decode of %s failed: %s", text, err);
    FUZZ_CHECK(strcmp(env.id, again.id) == 0, "id %s vs %s", env.id, again.id);
    FUZZ_CHECK(env.type == again.type, "type %d vs %d", env.type, again.type);
    FUZZ_CHECK(env.organization_id == again.organization_id, "org %lld vs %lld", env.organization_id,
               again.organization_id);
    FUZZ_CHECK(strcmp(env.occurred_at, again.occurred_at) == 0, "occurred_at %s vs %s", env.occurred_at,
               again.occurred_at);
    FUZZ_CHECK(json_equal(env.data, again.data), "data differs after round trip: %s", text);

    char *body = envelope_delivery_body(&env, &len);
    FUZZ_CHECK(body != NULL, "delivery body failed");
    free(body);
    free(text);
    envelope_clear(&again);
    envelope_clear(&env);
    return 0;
}
