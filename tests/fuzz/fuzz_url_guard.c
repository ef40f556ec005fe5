/*
 * fuzz_url_guard — url_guard_check_url() on arbitrary text (the "url" of POST /api/v1/webhooks).
 *
 * Invariants:
 *   - errbuf is always NUL-terminated; empty on success, a reason on failure;
 *   - accepted with allow_private = 0  =>  accepted with allow_private = 1;
 *   - an accepted URL is at most URL_GUARD_MAX_URL_LEN bytes and starts with "https://" (any case);
 *   - differential against the resolver: when a strictly accepted URL's host (as libcurl extracts it, the
 *     string the dispatcher later resolves) is a numeric address for getaddrinfo(AI_NUMERICHOST) — glibc's
 *     inet_aton forms, IPv6 literals — none of the addresses it denotes may be forbidden by
 *     url_guard_address_forbidden(). This catches any IPv4/IPv6 spelling the guard parses differently from
 *     the resolver.
 */
#include "fuzz_util.h"
#include "url_guard.h"

#include <curl/curl.h>
#include <netdb.h>
#include <strings.h>
#include <stdlib.h>
#include <sys/socket.h>

static void check_resolver_agrees(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL;
    if (u == NULL)
        return;
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host != NULL) {
        /* the whole host: a truncated copy is another host (a long run of zeros cut short resolves elsewhere) */
        size_t n = strlen(host);
        const char *from = host;
        if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
            from = host + 1;
            n -= 2;
        }
        char *name = strndup(from, n);
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_flags = AI_NUMERICHOST;
        hints.ai_socktype = SOCK_STREAM;
        if (name != NULL && name[0] != '\0' && getaddrinfo(name, "443", &hints, &res) == 0) {
            for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
                FUZZ_CHECK(url_guard_address_forbidden(ai->ai_addr) == 0,
                           "accepted URL %s has host %s that resolves to a forbidden address", url, host);
            freeaddrinfo(res);
        }
        free(name);
    }
    curl_free(host);
    curl_url_cleanup(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 3 * URL_GUARD_MAX_URL_LEN)
        return 0;
    char *url = fuzz_strdup(data, size);
    char err_strict[160], err_lenient[8]; /* the lenient one is deliberately short: truncation must be safe */
    memset(err_strict, 'x', sizeof err_strict);
    memset(err_lenient, 'x', sizeof err_lenient);

    int strict = url_guard_check_url(url, 0, err_strict, sizeof err_strict);
    int lenient = url_guard_check_url(url, 1, err_lenient, sizeof err_lenient);
    (void)url_guard_check_url(url, 0, NULL, 0);

    FUZZ_CHECK(strict == 0 || strict == -1, "strict returned %d", strict);
    FUZZ_CHECK(lenient == 0 || lenient == -1, "lenient returned %d", lenient);
    FUZZ_CHECK(memchr(err_strict, '\0', sizeof err_strict) != NULL, "errbuf not terminated");
    FUZZ_CHECK(memchr(err_lenient, '\0', sizeof err_lenient) != NULL, "short errbuf not terminated");
    FUZZ_CHECK((strict == 0) == (err_strict[0] == '\0'), "errbuf \"%s\" does not match result %d", err_strict,
               strict);
    FUZZ_CHECK(strict != 0 || lenient == 0, "%s accepted strictly but refused with allow_private: %s", url,
               err_lenient);
    if (lenient == 0) {
        FUZZ_CHECK(strlen(url) <= URL_GUARD_MAX_URL_LEN, "accepted URL of %zu bytes", strlen(url));
        FUZZ_CHECK(strncasecmp(url, "https://", 8) == 0, "accepted URL without https://: %s", url);
    }
    if (strict == 0)
        check_resolver_agrees(url);
    free(url);
    return 0;
}
