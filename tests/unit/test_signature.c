/* Unit tests for common/signature.c and common/secret.c: Standard Webhooks signatures and key material. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "secret.h"
#include "signature.h"
#include "signature_cache.h"

#include <string.h>

/* The published Standard Webhooks example: secret, id, timestamp, payload and the signature it must give. */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS 1614265330LL
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIGNATURE "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static void signature_matches_the_specification_example(void **state)
{
    (void)state;
    char out[SIGNATURE_TEXT_MAX];
    assert_int_equal(signature_compute(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), out, sizeof out), 0);
    assert_string_equal(out, SPEC_SIGNATURE);
}

static void verify_accepts_any_matching_entry_and_rejects_changes(void **state)
{
    (void)state;
    const char *body = SPEC_BODY;
    size_t len = strlen(body);
    assert_true(signature_verify(SPEC_SECRET, SPEC_ID, SPEC_TS, body, len, SPEC_SIGNATURE));
    assert_true(signature_verify(SPEC_SECRET, SPEC_ID, SPEC_TS, body, len, "v1,AAAA " SPEC_SIGNATURE));
    assert_false(signature_verify(SPEC_SECRET, SPEC_ID, SPEC_TS + 1, body, len, SPEC_SIGNATURE));
    assert_false(signature_verify(SPEC_SECRET, "msg_other", SPEC_TS, body, len, SPEC_SIGNATURE));
    assert_false(signature_verify(SPEC_SECRET, SPEC_ID, SPEC_TS, "{\"test\": 2432232315}", len, SPEC_SIGNATURE));
    assert_false(signature_verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", SPEC_ID, SPEC_TS, body, len, SPEC_SIGNATURE));
    assert_false(signature_verify(SPEC_SECRET, SPEC_ID, SPEC_TS, body, len, ""));
    assert_false(signature_verify(SPEC_SECRET, SPEC_ID, SPEC_TS, body, len, NULL));
}

static void invalid_secrets_are_refused(void **state)
{
    (void)state;
    char out[SIGNATURE_TEXT_MAX];
    assert_int_equal(signature_compute("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "id", 1, "x", 1, out, sizeof out), -1);
    assert_int_equal(signature_compute("whsec_", "id", 1, "x", 1, out, sizeof out), -1);
    assert_int_equal(signature_compute("whsec_!!!!", "id", 1, "x", 1, out, sizeof out), -1);
    assert_int_equal(signature_compute(NULL, "id", 1, "x", 1, out, sizeof out), -1);
}

static void generated_secret_is_whsec_and_32_bytes(void **state)
{
    (void)state;
    char a[SECRET_TEXT_MAX], b[SECRET_TEXT_MAX];
    unsigned char raw[64];
    assert_int_equal(secret_generate_webhook_secret(a, sizeof a), 0);
    assert_int_equal(secret_generate_webhook_secret(b, sizeof b), 0);
    assert_int_equal(strncmp(a, "whsec_", 6), 0);
    assert_int_equal(secret_base64_decode(a + 6, raw, sizeof raw), 32);
    assert_string_not_equal(a, b);
    char sig[SIGNATURE_TEXT_MAX];
    assert_int_equal(signature_compute(a, "id", 1, "x", 1, sig, sizeof sig), 0);
}

static void tokens_are_url_safe_and_distinct(void **state)
{
    (void)state;
    char a[SECRET_TEXT_MAX], b[SECRET_TEXT_MAX];
    assert_int_equal(secret_generate_token(a, sizeof a), 0);
    assert_int_equal(secret_generate_token(b, sizeof b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(strncmp(a, "hkd_", 4), 0);
    assert_int_equal(strlen(a), 4 + 43);
    assert_null(strpbrk(a, "+/= "));
}

static void base64_round_trips_and_rejects_garbage(void **state)
{
    (void)state;
    const unsigned char in[] = {0, 1, 2, 250, 251, 252, 253};
    char text[32];
    unsigned char out[32];
    for (size_t len = 0; len <= sizeof in; len++) {
        int n = secret_base64_encode(in, len, text, sizeof text);
        assert_int_equal(n, (int)(4 * ((len + 2) / 3)));
        if (len == 0)
            continue;
        assert_int_equal(secret_base64_decode(text, out, sizeof out), (int)len);
        assert_memory_equal(in, out, len);
    }
    assert_int_equal(secret_base64_decode("abc", out, sizeof out), -1);
    assert_int_equal(secret_base64_decode("ab=c", out, sizeof out), -1);
    assert_int_equal(secret_base64_decode("a b=", out, sizeof out), -1);
    assert_int_equal(secret_base64_decode("", out, sizeof out), -1);
    assert_int_equal(secret_base64_encode(in, sizeof in, text, 5), -1);
}

static void sha256_hex_of_known_input(void **state)
{
    (void)state;
    char hex[SHA256_HEX_LEN + 1];
    secret_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(secret_equal("abcd", "abcd", 4));
    assert_false(secret_equal("abcd", "abce", 4));
}

/* Keys of a whole block, one byte more (hashed first, RFC 2104) and longer: references from Python's hmac. */
static const struct {
    const char *secret, *signature;
} LONG_KEYS[] = {
    {"whsec_AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661vA==",
     "v1,NomsVBWc7vJZYGGif1kMeUNlWfHm37fPb0fqCwFxpAM="},
    {"whsec_AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661vMM=",
     "v1,UzoGkb00rNwpCMKKSUBYKhCxoCa/nBMgUCYMWNaaVdk="},
    {"whsec_AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661vMPK0djf5u30+wIJEBceJSwzOkFIT1ZdZGtyeYCHjpWc",
     "v1,8HyfPJFffoM+oVs/3A9bQJZxvVh16HQAmaY/Ab6oMl4="},
};

static void keys_of_a_block_and_longer_sign_as_hmac_specifies(void **state)
{
    (void)state;
    char out[SIGNATURE_TEXT_MAX];
    for (size_t i = 0; i < sizeof LONG_KEYS / sizeof LONG_KEYS[0]; i++) {
        assert_int_equal(signature_compute(LONG_KEYS[i].secret, "msg_long", SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), out,
                                           sizeof out), 0);
        assert_string_equal(out, LONG_KEYS[i].signature);
    }
}

static void a_prepared_key_signs_every_message_like_a_fresh_one(void **state)
{
    (void)state;
    signature_key *key = signature_key_new(SPEC_SECRET);
    assert_non_null(key);
    char kept[SIGNATURE_TEXT_MAX], fresh[SIGNATURE_TEXT_MAX];
    /* the key's state must not carry over from one signature to the next */
    for (long long ts = SPEC_TS; ts < SPEC_TS + 3; ts++) {
        assert_int_equal(signature_key_sign(key, SPEC_ID, ts, SPEC_BODY, strlen(SPEC_BODY), kept, sizeof kept), 0);
        assert_int_equal(signature_compute(SPEC_SECRET, SPEC_ID, ts, SPEC_BODY, strlen(SPEC_BODY), fresh, sizeof fresh), 0);
        assert_string_equal(kept, fresh);
    }
    assert_int_equal(signature_key_sign(key, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), kept, sizeof kept), 0);
    assert_string_equal(kept, SPEC_SIGNATURE);
    assert_int_equal(signature_key_sign(key, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), kept, 3), -1);
    signature_key_free(key);
    signature_key_free(NULL);
    assert_null(signature_key_new("whsec_not base64!"));
    assert_null(signature_key_new("sk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert_null(signature_key_new(NULL));
}

static void the_cache_prepares_each_secret_once_and_signs_like_signature_compute(void **state)
{
    (void)state;
    signature_cache *cache = signature_cache_new();
    assert_non_null(cache);
    char out[SIGNATURE_TEXT_MAX];
    unsigned long long hits, misses;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(signature_cache_sign(cache, SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), out,
                                              sizeof out), 0);
        assert_string_equal(out, SPEC_SIGNATURE);
        for (size_t i = 0; i < sizeof LONG_KEYS / sizeof LONG_KEYS[0]; i++) {
            assert_int_equal(signature_cache_sign(cache, LONG_KEYS[i].secret, "msg_long", SPEC_TS, SPEC_BODY,
                                                  strlen(SPEC_BODY), out, sizeof out), 0);
            assert_string_equal(out, LONG_KEYS[i].signature);
        }
    }
    signature_cache_counts(cache, &hits, &misses);
    assert_int_equal(misses, 4);
    assert_int_equal(hits, 8);
    /* an invalid secret fails every time and is never kept */
    for (int round = 0; round < 2; round++)
        assert_int_equal(signature_cache_sign(cache, "whsec_%%%%", SPEC_ID, SPEC_TS, "{}", 2, out, sizeof out), -1);
    assert_int_equal(signature_cache_sign(cache, NULL, SPEC_ID, SPEC_TS, "{}", 2, out, sizeof out), -1);
    signature_cache_counts(cache, &hits, &misses);
    assert_int_equal(misses, 4);
    signature_cache_free(cache);
    signature_cache_free(NULL);
}

static void the_cache_stays_right_when_secrets_outnumber_its_slots(void **state)
{
    (void)state;
    signature_cache *cache = signature_cache_new();
    assert_non_null(cache);
    enum { SECRETS = SIGNATURE_CACHE_SLOTS * 3 };
    char secret[SECRET_TEXT_MAX], kept[SIGNATURE_TEXT_MAX], fresh[SIGNATURE_TEXT_MAX];
    unsigned char key[24];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < SECRETS; i++) {
            memset(key, 0, sizeof key);
            memcpy(key, &i, sizeof i);
            memcpy(secret, "whsec_", 6);
            assert_true(secret_base64_encode(key, sizeof key, secret + 6, sizeof secret - 6) > 0);
            assert_int_equal(signature_cache_sign(cache, secret, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), kept,
                                                  sizeof kept), 0);
            assert_int_equal(signature_compute(secret, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), fresh,
                                               sizeof fresh), 0);
            assert_string_equal(kept, fresh);
        }
    }
    unsigned long long hits, misses;
    signature_cache_counts(cache, &hits, &misses);
    assert_int_equal(hits + misses, 2 * SECRETS);
    assert_true(misses >= SECRETS); /* every secret was prepared at least once */
    signature_cache_free(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(signature_matches_the_specification_example),
        cmocka_unit_test(keys_of_a_block_and_longer_sign_as_hmac_specifies),
        cmocka_unit_test(a_prepared_key_signs_every_message_like_a_fresh_one),
        cmocka_unit_test(the_cache_prepares_each_secret_once_and_signs_like_signature_compute),
        cmocka_unit_test(the_cache_stays_right_when_secrets_outnumber_its_slots),
        cmocka_unit_test(verify_accepts_any_matching_entry_and_rejects_changes),
        cmocka_unit_test(invalid_secrets_are_refused),
        cmocka_unit_test(generated_secret_is_whsec_and_32_bytes),
        cmocka_unit_test(tokens_are_url_safe_and_distinct),
        cmocka_unit_test(base64_round_trips_and_rejects_garbage),
        cmocka_unit_test(sha256_hex_of_known_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
