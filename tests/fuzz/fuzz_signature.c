/*
 * fuzz_signature — signature_verify() with arbitrary webhook-signature headers (receivers' side of the
 * contract; also what our own tests use) and signature_compute() with arbitrary secrets / ids.
 * Input: 8 bytes timestamp, then NUL-separated secret, msg_id, header, and the body (rest, may contain NULs).
 * Invariants: verify never matches when compute refuses the secret; when compute succeeds its output is
 * "v1," + 44 base64 characters, verify accepts it alone, surrounded by spaces and next to the arbitrary header,
 * and refuses it with one character changed.
 */
#include "fuzz_util.h"
#include "signature.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    long long ts = 0;
    if (size >= 8) {
        memcpy(&ts, data, 8);
        data += 8;
        size -= 8;
    }
    char *secret = fuzz_take_string(&data, &size);
    char *msg_id = fuzz_take_string(&data, &size);
    char *header = fuzz_take_string(&data, &size);
    const char *body = (const char *)data;
    size_t body_len = size;

    int verdict = signature_verify(secret, msg_id, ts, body, body_len, header);
    FUZZ_CHECK(verdict == 0 || verdict == 1, "verdict %d", verdict);
    FUZZ_CHECK(signature_verify(secret, msg_id, ts, body, body_len, NULL) == 0, "NULL header matched");

    char sig[SIGNATURE_TEXT_MAX];
    if (signature_compute(secret, msg_id, ts, body, body_len, sig, sizeof sig) != 0) {
        FUZZ_CHECK(verdict == 0, "header matched for a secret compute refuses");
    } else {
        FUZZ_CHECK(strlen(sig) == 47 && strncmp(sig, "v1,", 3) == 0, "signature %s", sig);
        FUZZ_CHECK(signature_verify(secret, msg_id, ts, body, body_len, sig) == 1, "own signature refused");
        size_t hl = strlen(header);
        char *combo = malloc(hl + sizeof sig + 4);
        snprintf(combo, hl + sizeof sig + 4, " %s %s ", header, sig);
        FUZZ_CHECK(signature_verify(secret, msg_id, ts, body, body_len, combo) == 1, "combined header refused");
        free(combo);
        sig[10] = sig[10] == 'A' ? 'B' : 'A';
        FUZZ_CHECK(signature_verify(secret, msg_id, ts, body, body_len, sig) == 0, "altered signature accepted");
        char small[8];
        FUZZ_CHECK(signature_compute(secret, msg_id, ts, body, body_len, small, sizeof small) == -1,
                   "fits in 8 bytes?");
    }
    free(header);
    free(msg_id);
    free(secret);
    return 0;
}
