/*
 * signature — Standard Webhooks v1 signatures.
 *
 * signed content = "<webhook-id>.<webhook-timestamp>.<body>" (raw body bytes)
 * signature      = "v1," + base64(HMAC-SHA256(key, signed content)), key = base64-decode(secret after "whsec_")
 *
 * Thread-safe, stateless.
 */
#ifndef HOOKD_SIGNATURE_H
#define HOOKD_SIGNATURE_H

#include <stddef.h>

#define SIGNATURE_TEXT_MAX 64 /* "v1," + 44 base64 characters + NUL fits */

/* Writes "v1,<base64>" into out (SIGNATURE_TEXT_MAX bytes). Returns 0, or -1 when the secret is not a valid
 * "whsec_<base64>" secret. */
int signature_compute(const char *secret, const char *msg_id, long long timestamp, const char *body,
                      size_t body_len, char *out, size_t outlen);

/* Checks a webhook-signature header value (space-separated "v1,<b64>" entries) against secret. Returns 1
 * when any v1 entry matches (compared in constant time), 0 otherwise. */
int signature_verify(const char *secret, const char *msg_id, long long timestamp, const char *body,
                     size_t body_len, const char *header);

#endif
