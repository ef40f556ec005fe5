/*
 * secret — randomness, base64, hashing: the key material of hookd.
 *
 * Webhook signing secrets are "whsec_" + base64 of SECRET_RANDOM_BYTES random bytes (the Standard Webhooks
 * form); API tokens are "hkd_" + 43 base64url characters (32 random bytes) and are stored only as SHA-256 hex.
 * All functions are thread-safe and keep no state.
 */
#ifndef HOOKD_SECRET_H
#define HOOKD_SECRET_H

#include <stddef.h>

#define SECRET_RANDOM_BYTES 32
#define SECRET_TEXT_MAX 128 /* room for any secret or token text, NUL included */
#define SHA256_HEX_LEN 64

/* Fills buf with len cryptographically random bytes (getrandom). Returns 0 or -1. */
int secret_random_bytes(unsigned char *buf, size_t len);

/* Writes a new "whsec_..." secret into out (at least SECRET_TEXT_MAX bytes). Returns 0 or -1. */
int secret_generate_webhook_secret(char *out, size_t outlen);

/* Writes a new API token into out (at least SECRET_TEXT_MAX bytes). Returns 0 or -1. */
int secret_generate_token(char *out, size_t outlen);

/* Standard base64 with padding. Returns the encoded length (NUL-terminated in out), or -1 when outlen is too
 * small (needs 4 * ceil(len / 3) + 1). */
int secret_base64_encode(const unsigned char *in, size_t len, char *out, size_t outlen);

/* Decodes standard base64 (padding required, no whitespace). Returns the decoded length, or -1 for invalid
 * input or when outlen is too small. */
int secret_base64_decode(const char *in, unsigned char *out, size_t outlen);

/* Writes the lowercase hex SHA-256 of data into out (SHA256_HEX_LEN + 1 bytes). */
void secret_sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1]);

/* Constant-time comparison of two equal-length buffers: returns 1 when equal, 0 otherwise. */
int secret_equal(const void *a, const void *b, size_t len);

#endif
