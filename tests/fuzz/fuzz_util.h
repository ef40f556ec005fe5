/*
 * fuzz_util — helpers shared by the libFuzzer harnesses in tests/fuzz/.
 *
 * Every harness defines LLVMFuzzerTestOneInput(). run.sh links it with libFuzzer (-fsanitize=fuzzer);
 * replay.sh links it with replay_main.c instead, so the kept inputs (corpus/, regressions/) replay under
 * ASan+UBSan in the normal test run without libFuzzer.
 *
 * FUZZ_CHECK(cond, ...) is an invariant: when it fails it prints the message and aborts, which libFuzzer
 * reports as a crash (and saves the input) and the replay driver reports as a failure.
 */
#ifndef HOOKD_FUZZ_UTIL_H
#define HOOKD_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...)                                                                               \
    do {                                                                                                    \
        if (!(cond)) {                                                                                      \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);                    \
            fprintf(stderr, __VA_ARGS__);                                                                   \
            fputc('\n', stderr);                                                                            \
            abort();                                                                                        \
        }                                                                                                   \
    } while (0)

/* A malloc'd NUL-terminated copy of data[0..size) (embedded NULs kept; C string functions stop at the first).
 * Exactly size + 1 bytes, so ASan catches reads past the terminator. The caller frees. */
static inline char *fuzz_strdup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* jansson 2.14 skips a NUL byte that directly follows a number or a literal (its lexer "ungets" the byte after
 * the token, and an ungot NUL reads as "buffer empty"), so it accepts e.g. {"a":1<NUL>}. json_scan refuses
 * such input on purpose (a NUL is not JSON, and the dispatcher passes data bytes through to receivers). This
 * returns a malloc'd copy of data without those NULs (size in *out_size) and whether any was removed, so the
 * differential harnesses can check the scanner on what jansson actually parsed. The caller frees. */
static inline char *fuzz_strip_jansson_nuls(const uint8_t *data, size_t size, size_t *out_size, int *removed)
{
    char *s = fuzz_strdup(data, size);
    size_t n = 0;
    *removed = 0;
    for (size_t i = 0; i < size; i++) {
        unsigned char prev = i > 0 ? data[i - 1] : 0;
        int token_end = (prev >= '0' && prev <= '9') || (prev >= 'a' && prev <= 'z') || (prev >= 'A' && prev <= 'Z');
        if (data[i] == 0 && token_end) {
            *removed = 1;
            continue;
        }
        s[n++] = (char)data[i];
    }
    s[n] = '\0';
    *out_size = n;
    return s;
}

/* Consumes one byte from the front of the input (0 when empty). */
static inline uint8_t fuzz_byte(const uint8_t **data, size_t *size)
{
    if (*size == 0)
        return 0;
    uint8_t b = **data;
    (*data)++;
    (*size)--;
    return b;
}

/* Splits the input at the next NUL byte: returns a malloc'd copy of the part before it (the whole rest when
 * there is no NUL) and advances past the NUL. The caller frees. */
static inline char *fuzz_take_string(const uint8_t **data, size_t *size)
{
    const uint8_t *nul = *size > 0 ? memchr(*data, 0, *size) : NULL;
    size_t len = nul != NULL ? (size_t)(nul - *data) : *size;
    char *s = fuzz_strdup(*data, len);
    size_t used = nul != NULL ? len + 1 : len;
    *data += used;
    *size -= used;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
