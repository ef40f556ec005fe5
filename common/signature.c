/* signature — see signature.h. */
#include "signature.h"

#include "secret.h"

#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SECRET_PREFIX "whsec_"

/* The HMAC implementation, fetched once: EVP_MAC_fetch takes OpenSSL 3's global method-store lock and was a
 * measurable share of the dispatcher's CPU when done per attempt (docs/BENCHMARKS.md). Never freed (process
 * lifetime); NULL when the fetch failed (signature_compute then fails). */
static EVP_MAC *hmac_impl;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
    hmac_impl = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

int signature_compute(const char *secret, const char *msg_id, long long timestamp, const char *body,
                      size_t body_len, char *out, size_t outlen)
{
    unsigned char key[128];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char prefix[192];
    int rc = -1;

    if (secret == NULL || strncmp(secret, SECRET_PREFIX, strlen(SECRET_PREFIX)) != 0)
        return -1;
    int key_len = secret_base64_decode(secret + strlen(SECRET_PREFIX), key, sizeof key);
    if (key_len <= 0)
        return -1;
    int prefix_len = snprintf(prefix, sizeof prefix, "%s.%lld.", msg_id, timestamp);
    if (prefix_len < 0 || (size_t)prefix_len >= sizeof prefix)
        goto done;

    pthread_once(&hmac_once, hmac_fetch);
    EVP_MAC_CTX *mctx = hmac_impl != NULL ? EVP_MAC_CTX_new(hmac_impl) : NULL;
    if (mctx == NULL)
        goto free_mac;
    char digest_name[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest_name, 0), OSSL_PARAM_construct_end()};
    size_t produced = 0;
    if (EVP_MAC_init(mctx, key, (size_t)key_len, params) != 1 ||
        EVP_MAC_update(mctx, (const unsigned char *)prefix, (size_t)prefix_len) != 1 ||
        EVP_MAC_update(mctx, (const unsigned char *)body, body_len) != 1 ||
        EVP_MAC_final(mctx, mac, &produced, sizeof mac) != 1)
        goto free_mac;
    mac_len = (unsigned int)produced;
    if (outlen < 4)
        goto free_mac;
    memcpy(out, "v1,", 3);
    if (secret_base64_encode(mac, mac_len, out + 3, outlen - 3) < 0)
        goto free_mac;
    rc = 0;
free_mac:
    EVP_MAC_CTX_free(mctx);
done:
    OPENSSL_cleanse(key, sizeof key);
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
