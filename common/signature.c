/* signature — see signature.h. */
#include "signature.h"

#include "json_text.h"
#include "secret.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_PREFIX "whsec_"

/* SHA-256, fetched once: an implicit fetch per digest init takes OpenSSL 3's method-store lock (and EVP_MAC_fetch
 * per attempt was a measurable share of the dispatcher's CPU, docs/BENCHMARKS.md). Never freed (process
 * lifetime); NULL when the fetch failed (signing then fails). */
static EVP_MD *sha256_impl;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_impl = EVP_MD_fetch(NULL, "SHA256", NULL);
}

#define HMAC_BLOCK 64 /* SHA-256's block size */

/* HMAC-SHA256 (RFC 2104) with the key already absorbed: inner = H state after (key ^ ipad), outer = H state after
 * (key ^ opad). A signature copies each state once and hashes only the message and the inner digest. */
struct signature_key {
    EVP_MD_CTX *inner;
    EVP_MD_CTX *outer;
    EVP_MD_CTX *work; /* scratch for signature_key_sign */
};

void signature_key_free(signature_key *k)
{
    if (k == NULL)
        return;
    EVP_MD_CTX_free(k->inner); /* frees (and clears) the digest state */
    EVP_MD_CTX_free(k->outer);
    EVP_MD_CTX_free(k->work);
    free(k);
}

signature_key *signature_key_new(const char *secret)
{
    unsigned char key[128], pad[HMAC_BLOCK];
    if (secret == NULL || strncmp(secret, SECRET_PREFIX, strlen(SECRET_PREFIX)) != 0)
        return NULL;
    int key_len = secret_base64_decode(secret + strlen(SECRET_PREFIX), key, sizeof key);
    if (key_len <= 0)
        return NULL;
    pthread_once(&sha256_once, sha256_fetch);
    signature_key *k = calloc(1, sizeof *k);
    if (k == NULL || sha256_impl == NULL)
        goto fail;
    k->inner = EVP_MD_CTX_new();
    k->outer = EVP_MD_CTX_new();
    k->work = EVP_MD_CTX_new();
    if (k->inner == NULL || k->outer == NULL || k->work == NULL)
        goto fail;
    if (key_len > HMAC_BLOCK) { /* a key longer than a block is replaced by its digest */
        unsigned int digest_len = 0;
        if (EVP_Digest(key, (size_t)key_len, key, &digest_len, sha256_impl, NULL) != 1)
            goto fail;
        key_len = (int)digest_len;
    }
    memset(pad, 0x36, sizeof pad);
    for (int i = 0; i < key_len; i++)
        pad[i] ^= key[i];
    if (EVP_DigestInit_ex(k->inner, sha256_impl, NULL) != 1 || EVP_DigestUpdate(k->inner, pad, sizeof pad) != 1)
        goto fail;
    memset(pad, 0x5c, sizeof pad);
    for (int i = 0; i < key_len; i++)
        pad[i] ^= key[i];
    if (EVP_DigestInit_ex(k->outer, sha256_impl, NULL) != 1 || EVP_DigestUpdate(k->outer, pad, sizeof pad) != 1)
        goto fail;
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(pad, sizeof pad);
    return k;
fail:
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(pad, sizeof pad);
    signature_key_free(k);
    return NULL;
}

int signature_key_sign(signature_key *k, const char *msg_id, long long timestamp, const char *body,
                       size_t body_len, char *out, size_t outlen)
{
    char prefix[192];
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    json_buf text; /* "<msg_id>.<timestamp>." without printf (once per attempt) */
    json_buf_init(&text, prefix, sizeof prefix);
    json_buf_raw(&text, msg_id, strlen(msg_id));
    json_buf_raw(&text, ".", 1);
    json_buf_int(&text, timestamp);
    json_buf_raw(&text, ".", 1);
    size_t prefix_len = text.len;
    if (text.overflow || outlen < 4)
        return -1;
    int ok = EVP_MD_CTX_copy_ex(k->work, k->inner) == 1 && EVP_DigestUpdate(k->work, prefix, prefix_len) == 1 &&
             EVP_DigestUpdate(k->work, body, body_len) == 1 && EVP_DigestFinal_ex(k->work, digest, &digest_len) == 1 &&
             EVP_MD_CTX_copy_ex(k->work, k->outer) == 1 && EVP_DigestUpdate(k->work, digest, digest_len) == 1 &&
             EVP_DigestFinal_ex(k->work, digest, &digest_len) == 1;
    int rc = -1;
    if (ok) {
        memcpy(out, "v1,", 3);
        rc = secret_base64_encode(digest, digest_len, out + 3, outlen - 3) < 0 ? -1 : 0;
    }
    OPENSSL_cleanse(digest, sizeof digest);
    return rc;
}

int signature_compute(const char *secret, const char *msg_id, long long timestamp, const char *body,
                      size_t body_len, char *out, size_t outlen)
{
    signature_key *k = signature_key_new(secret);
    if (k == NULL)
        return -1;
    int rc = signature_key_sign(k, msg_id, timestamp, body, body_len, out, outlen);
    signature_key_free(k);
    return rc;
}

int signature_verify(const char *secret, const char *msg_id, long long timestamp, const char *body,
                     size_t body_len, const char *header)
{
    char expected[SIGNATURE_TEXT_MAX];
    if (header == NULL ||
        signature_compute(secret, msg_id, timestamp, body, body_len, expected, sizeof expected) != 0)
        return 0;
    size_t expected_len = strlen(expected);
    int matched = 0;
    const char *p = header;
    while (*p != '\0') {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == expected_len && secret_equal(p, expected, len))
            matched = 1;
        p += len;
    }
    return matched;
}
