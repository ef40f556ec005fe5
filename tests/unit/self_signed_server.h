/*
 * self_signed_server — for unit tests that run a real TLS server: a server SSL_CTX with a fresh self-signed P-256
 * certificate (valid from a minute ago for an hour). Header-only (each unit test is one translation unit); include
 * it after <cmocka.h>, whose assertions it uses. The caller frees the context with SSL_CTX_free.
 */
#ifndef HOOKD_TEST_SELF_SIGNED_SERVER_H
#define HOOKD_TEST_SELF_SIGNED_SERVER_H

#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* A server context whose certificate names common_name, with subject_alt_name as its subjectAltName (OpenSSL's
 * syntax, e.g. "IP:127.0.0.1"; NULL: none). With pem_path, the certificate is also written there (PEM), for a
 * client to trust as its CA file. */
static SSL_CTX *self_signed_server_context(const char *common_name, const char *subject_alt_name,
                                           const char *pem_path)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    assert_non_null(key);
    assert_non_null(cert);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC, (const unsigned char *)common_name,
                               -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_set_pubkey(cert, key);
    if (subject_alt_name != NULL) {
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
        X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, subject_alt_name);
        assert_non_null(san);
        X509_add_ext(cert, san, -1);
        X509_EXTENSION_free(san);
    }
    assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
    if (pem_path != NULL) {
        FILE *f = fopen(pem_path, "w");
        assert_non_null(f);
        assert_int_equal(PEM_write_X509(f, cert), 1);
        fclose(f);
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
}

#endif
