/* secret — see secret.h. */
#include "secret.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int secret_random_bytes(unsigned char *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = getrandom(buf + done, len - done, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

int secret_base64_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
    size_t need = 4 * ((len + 2) / 3) + 1;
    if (outlen < need || len > 0x3fffffff)
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

int secret_base64_decode(const char *in, unsigned char *out, size_t outlen)
{
    size_t len = strlen(in);
    if (len == 0 || len % 4 != 0 || len > 0x3fffffff)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                 c == '/' || (c == '=' && i >= len - 2);
        if (!ok)
            return -1;
    }
    if (in[len - 2] == '=' && in[len - 1] != '=')
        return -1;
    size_t padding = (in[len - 1] == '=') + (in[len - 2] == '=');
    size_t decoded = len / 4 * 3;
    if (outlen < decoded)
        return -1;
    if (EVP_DecodeBlock(out, (const unsigned char *)in, (int)len) < 0)
        return -1;
    return (int)(decoded - padding); /* EVP_DecodeBlock counts padding as zero bytes */
}

/* Writes base64 of SECRET_RANDOM_BYTES fresh random bytes into encoded (64 bytes). Returns its length or -1. */
static int random_base64(char encoded[64])
{
    unsigned char raw[SECRET_RANDOM_BYTES];
    if (secret_random_bytes(raw, sizeof raw) != 0)
        return -1;
    int n = secret_base64_encode(raw, sizeof raw, encoded, 64);
    OPENSSL_cleanse(raw, sizeof raw);
    return n;
}

int secret_generate_webhook_secret(char *out, size_t outlen)
{
    char encoded[64];
    if (random_base64(encoded) < 0 || (size_t)snprintf(out, outlen, "whsec_%s", encoded) >= outlen)
        return -1;
    return 0;
}

int secret_generate_token(char *out, size_t outlen)
{
    char encoded[64];
    int n = random_base64(encoded);
    if (n < 0)
        return -1;
    /* base64url without padding: safe in headers, query strings and shells */
    for (int i = 0; i < n; i++) {
        if (encoded[i] == '+')
            encoded[i] = '-';
        else if (encoded[i] == '/')
            encoded[i] = '_';
        else if (encoded[i] == '=')
            encoded[i] = '\0';
    }
    if ((size_t)snprintf(out, outlen, "hkd_%s", encoded) >= outlen)
        return -1;
    return 0;
}

/* SHA-256 fetched once for secret_sha256_hex (which hashes every API token presented): OpenSSL 3's SHA256()
 * fetches the algorithm on each call. Never freed (process lifetime); NULL if the fetch failed, then SHA256(). */
static EVP_MD *token_sha256;
static pthread_once_t token_sha256_once = PTHREAD_ONCE_INIT;

static void token_sha256_fetch(void)
{
    token_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void secret_sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[SHA256_DIGEST_LENGTH];
    pthread_once(&token_sha256_once, token_sha256_fetch);
    if (token_sha256 == NULL || EVP_Digest(data, len, digest, NULL, token_sha256, NULL) != 1)
        SHA256(data, len, digest);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0xf];
    }
    out[SHA256_HEX_LEN] = '\0';
}

int secret_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}
