/*
 * fuzz_signature — signature_verify() with arbitrary webhook-signature headers (receivers' side of the
 * contract; also what our own tests use) and signature_compute() with arbitrary secrets / ids.
 * Input: 8 bytes timestamp, then NUL-separated secret, msg_id, header, and the body (rest, may contain NULs).
 * Invariants: verify never matches when compute refuses the secret; when compute succeeds its output is
 * "v1," + 44 base64 characters, verify accepts it alone, surrounded by spaces and next to the arbitrary header,
 * and refuses it with one character changed; it equals OpenSSL's one-shot HMAC() of the same key and message
 * (signature.c keeps its own HMAC key schedule), and a signature_key prepared from the secret gives it too.
 */
#include "fuzz_util.h"
#include "secret.h"
#include "signature.h"

#include <openssl/hmac.h>

/* The signature by an independent route: OpenSSL's HMAC() over "<msg_id>.<ts>.<body>". */
static void reference_signature(const char *secret, const char *msg_id, long long ts, const char *body, size_t body_len,
                                char *out, size_t outlen)
{
    unsigned char key[128], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int key_len = secret_base64_decode(secret + 6, key, sizeof key);
    FUZZ_CHECK(key_len > 0, "compute accepted a secret whose key does not decode");
    size_t id_len = strlen(msg_id);
    char *msg = malloc(id_len + 32 + body_len);
    int n = snprintf(msg, id_len + 32, "%s.%lld.", msg_id, ts);
    memcpy(msg + n, body, body_len);
    FUZZ_CHECK(HMAC(EVP_sha256(), key, key_len, (unsigned char *)msg, (size_t)n + body_len, mac, &mac_len) != NULL,
               "HMAC() failed");
    free(msg);
    memcpy(out, "v1,", 3);
    FUZZ_CHECK(secret_base64_encode(mac, mac_len, out + 3, outlen - 3) > 0, "base64");
}

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
        char ref[SIGNATURE_TEXT_MAX], kept[SIGNATURE_TEXT_MAX];
        reference_signature(secret, msg_id, ts, body, body_len, ref, sizeof ref);
        FUZZ_CHECK(strcmp(sig, ref) == 0, "signature %s, HMAC() gives %s", sig, ref);
        signature_key *key = signature_key_new(secret);
        FUZZ_CHECK(key != NULL, "no key for a secret compute accepted");
        FUZZ_CHECK(signature_key_sign(key, msg_id, ts, body, body_len, kept, sizeof kept) == 0 &&
                       signature_key_sign(key, msg_id, ts, body, body_len, kept, sizeof kept) == 0 &&
                       strcmp(kept, sig) == 0,
                   "a kept key signs %s, compute %s", kept, sig);
        signature_key_free(key);
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
