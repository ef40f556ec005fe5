/* signature_cache — see signature_cache.h. */
#include "signature_cache.h"

#include "signature.h"

#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct cache_slot {
    char *secret;       /* owned copy of the secret's text; NULL: empty slot */
    size_t secret_len;
    signature_key *key; /* owned */
} cache_slot;

struct signature_cache {
    cache_slot slots[SIGNATURE_CACHE_SLOTS];
    unsigned long long hits, misses;
};

/* FNV-1a over the secret's text: spreads secrets (random base64) evenly enough for direct mapping. */
static size_t slot_of(const char *secret, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)secret[i];
        h *= 1099511628211ull;
    }
    return (size_t)(h % SIGNATURE_CACHE_SLOTS);
}

static void slot_clear(cache_slot *s)
{
    if (s->secret != NULL) {
        OPENSSL_cleanse(s->secret, s->secret_len);
        free(s->secret);
    }
    signature_key_free(s->key);
    memset(s, 0, sizeof *s);
}

signature_cache *signature_cache_new(void)
{
    return calloc(1, sizeof(signature_cache));
}

void signature_cache_free(signature_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < SIGNATURE_CACHE_SLOTS; i++)
        slot_clear(&c->slots[i]);
    free(c);
}

int signature_cache_sign(signature_cache *c, const char *secret, const char *msg_id, long long timestamp,
                         const char *body, size_t body_len, char *out, size_t outlen)
{
    if (secret == NULL)
        return -1;
    size_t len = strlen(secret);
    cache_slot *s = &c->slots[slot_of(secret, len)];
    if (s->secret == NULL || s->secret_len != len || memcmp(s->secret, secret, len) != 0) {
        signature_key *key = signature_key_new(secret);
        if (key == NULL)
            return -1; /* not a valid secret (or out of memory, where signature_compute fails too) */
        char *copy = malloc(len + 1);
        if (copy == NULL) {
            int rc = signature_key_sign(key, msg_id, timestamp, body, body_len, out, outlen);
            signature_key_free(key);
            return rc;
        }
        memcpy(copy, secret, len + 1);
        slot_clear(s);
        s->secret = copy;
        s->secret_len = len;
        s->key = key;
        c->misses++;
    } else {
        c->hits++;
    }
    return signature_key_sign(s->key, msg_id, timestamp, body, body_len, out, outlen);
}

void signature_cache_counts(const signature_cache *c, unsigned long long *hits, unsigned long long *misses)
{
    *hits = c->hits;
    *misses = c->misses;
}
