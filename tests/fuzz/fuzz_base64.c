/*
 * fuzz_base64 — secret_base64_decode() / secret_base64_encode() (webhook secrets "whsec_<base64>").
 * Input: byte 0 = output buffer size for the decode (0-255), the rest the text.
 * Invariants: the decode never writes past outlen (the buffer is exactly outlen bytes); on success it returns
 * at most outlen bytes, and encoding them and decoding again gives the same bytes (round trip); encoding the
 * raw input and decoding it gives the input back, with the exact length.
 */
#include "fuzz_util.h"
#include "secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    const uint8_t *raw = data;
    size_t raw_size = size;
    size_t outlen = fuzz_byte(&data, &size);
    char *text = fuzz_strdup(data, size);
    unsigned char *out = malloc(outlen > 0 ? outlen : 1);
    int n = secret_base64_decode(text, out, outlen);
    FUZZ_CHECK(n >= -1, "rc %d", n);
    if (n >= 0) {
        FUZZ_CHECK((size_t)n <= outlen, "%d bytes into %zu", n, outlen);
        FUZZ_CHECK(n > 0 || strlen(text) == 0, "0 bytes from \"%s\"", text);
        char enc[4 * 256 / 3 + 8];
        int m = secret_base64_encode(out, (size_t)n, enc, sizeof enc);
        FUZZ_CHECK(m >= 0 && (size_t)m == strlen(text), "re-encoded length %d vs %zu", m, strlen(text));
        unsigned char back[256];
        int k = secret_base64_decode(enc, back, sizeof back);
        FUZZ_CHECK(k == n && memcmp(back, out, (size_t)n) == 0, "round trip of \"%s\" via \"%s\"", text, enc);
    }
    /* encode → decode of arbitrary bytes */
    size_t enclen = 4 * ((raw_size + 2) / 3) + 1;
    char *enc = malloc(enclen);
    FUZZ_CHECK(secret_base64_encode(raw, raw_size, enc, enclen - 1) == -1, "encode into a short buffer");
    int m = secret_base64_encode(raw, raw_size, enc, enclen);
    FUZZ_CHECK(m >= 0 && (size_t)m == enclen - 1, "encode length %d", m);
    if (raw_size > 0) {
        /* EVP_DecodeBlock writes the padding as zero bytes, so decode needs up to 2 bytes of slack beyond the
         * decoded length (len / 4 * 3): a documented-by-code quirk, not an overflow. */
        unsigned char *dec = malloc(raw_size + 2);
        int k = secret_base64_decode(enc, dec, raw_size + 2);
        FUZZ_CHECK(k == (int)raw_size && memcmp(dec, raw, raw_size) == 0, "decode(encode(x)) != x for %zu bytes",
                   raw_size);
        free(dec);
    }
    free(enc);
    free(out);
    free(text);
    return 0;
}
