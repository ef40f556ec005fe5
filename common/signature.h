/*
 * signature — Standard Webhooks v1 signatures.
 *
 * signed content = "<webhook-id>.<webhook-timestamp>.<body>" (raw body bytes)
 * signature      = "v1," + base64(HMAC-SHA256(key, signed content)), key = base64-decode(secret after "whsec_")
 *
 * signature_compute and signature_verify are thread-safe and stateless. A signature_key is a secret prepared
 * once for many signatures (the dispatcher signs every attempt): the HMAC key schedule is kept, so a signature
 * hashes only its message. A signature_cache (signature_cache.h) keeps keys by secret for one thread.
 */
#ifndef HOOKD_SIGNATURE_H
#define HOOKD_SIGNATURE_H

#include <stddef.h>

#define SIGNATURE_TEXT_MAX 64 /* "v1," + 44 base64 characters + NUL fits */

/* Writes "v1,<base64>" into out (SIGNATURE_TEXT_MAX bytes). Returns 0, or -1 when the secret is not a valid
 * "whsec_<base64>" secret. */
int signature_compute(const char *secret, const char *msg_id, long long timestamp, const char *body,
                      size_t body_len, char *out, size_t outlen);

/* A secret's HMAC-SHA256 key schedule. Owned by the caller (signature_key_free); used by one thread at a time. */
typedef struct signature_key signature_key;

/* Prepares "whsec_<base64>" for signing. Returns NULL when the secret is not valid or out of memory. */
signature_key *signature_key_new(const char *secret);

/* Same output and return as signature_compute, with the key prepared by signature_key_new. */
int signature_key_sign(signature_key *key, const char *msg_id, long long timestamp, const char *body,
                       size_t body_len, char *out, size_t outlen);

/* Frees the key and clears its state; NULL is allowed. */
void signature_key_free(signature_key *key);

/* Checks a webhook-signature header value (space-separated "v1,<b64>" entries) against secret. Returns 1
 * when any v1 entry matches (compared in constant time), 0 otherwise. */
int signature_verify(const char *secret, const char *msg_id, long long timestamp, const char *body,
                     size_t body_len, const char *header);

#endif
