/*
 * fuzz_retry_record — retry_record_decode() on arbitrary bytes (messages on the retry tiers and the dead-letter
 * topic; anyone who can write to those topics controls them).
 * Invariants: errbuf terminated; on success attempt_count <= RETRY_RECORD_MAX_ATTEMPTS, strings terminated, the
 * envelope is valid; the record encodes to text jansson accepts (valid UTF-8 whatever the strings held), and
 * decodes again to the same webhook_id, attempt, due time, envelope id/type/org, attempt count, url and reason.
 */
#include "fuzz_util.h"
#include "retry_record.h"

#include <jansson.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static retry_record rec, again; /* large (2 KiB URL): keep them off the stack */
    char err[160];
    memset(err, 'x', sizeof err);
    if (retry_record_decode((const char *)data, size, &rec, err, sizeof err) != 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL, "errbuf not terminated");
        FUZZ_CHECK(rec.env.data == NULL, "data kept on failure");
        return 0;
    }
    FUZZ_CHECK(rec.attempt_count >= 0 && rec.attempt_count <= RETRY_RECORD_MAX_ATTEMPTS, "count %d",
               rec.attempt_count);
    FUZZ_CHECK(rec.webhook_id > 0 && rec.attempt >= 1, "webhook_id / attempt");
    FUZZ_CHECK(rec.env.data != NULL, "envelope data");
    size_t len = 0;
    char *text = retry_record_encode(&rec, &len);
    FUZZ_CHECK(text != NULL, "encode failed");
    json_error_t jerr;
    json_t *parsed = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    FUZZ_CHECK(parsed != NULL, "encoded record is not JSON: %s: %s", jerr.text, text);
    json_decref(parsed);
    int rc = retry_record_decode(text, len, &again, err, sizeof err);
    FUZZ_CHECK(rc == 0, "re-decode failed: %s: %s", err, text);
    FUZZ_CHECK(again.webhook_id == rec.webhook_id && again.attempt == rec.attempt && again.due_ms == rec.due_ms,
               "fields differ: %s", text);
    FUZZ_CHECK(strcmp(again.env.id, rec.env.id) == 0 && again.env.type == rec.env.type &&
                   again.env.organization_id == rec.env.organization_id,
               "envelope differs");
    FUZZ_CHECK(again.attempt_count == rec.attempt_count, "attempt count %d vs %d", again.attempt_count,
               rec.attempt_count);
    FUZZ_CHECK(strcmp(again.webhook_url, rec.webhook_url) == 0 && strcmp(again.reason, rec.reason) == 0,
               "url / reason");
    free(text);
    retry_record_clear(&again);
    retry_record_clear(&rec);
    return 0;
}
