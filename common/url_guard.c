/* url_guard — see url_guard.h for what this module owns and the rules it enforces. */
#include "url_guard.h"
#include "hex.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------------------------------------- */
/* errors                                                                                          */

static void guard_set_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void guard_set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------------------------------- */
/* address ranges                                                                                  */

struct v4_net {
    uint32_t net;  /* host byte order */
    unsigned bits; /* prefix length */
};

/* Forbidden IPv4 networks (read-only table). 224/4 + 240/4 together are 224/3. */
static const struct v4_net forbidden_v4[] = {
    {0x00000000u, 8},  /* 0.0.0.0/8 "this network" / unspecified */
    {0x0a000000u, 8},  /* 10.0.0.0/8 private */
    {0x64400000u, 10}, /* 100.64.0.0/10 CGNAT */
    {0x7f000000u, 8},  /* 127.0.0.0/8 loopback */
    {0xa9fe0000u, 16}, /* 169.254.0.0/16 link-local (cloud metadata) */
    {0xac100000u, 12}, /* 172.16.0.0/12 private */
    {0xc0000000u, 24}, /* 192.0.0.0/24 IETF protocol assignments */
    {0xc0a80000u, 16}, /* 192.168.0.0/16 private */
    {0xc6120000u, 15}, /* 198.18.0.0/15 benchmarking */
    {0xe0000000u, 4},  /* 224.0.0.0/4 multicast */
    {0xf0000000u, 4},  /* 240.0.0.0/4 reserved, includes 255.255.255.255 */
};

static int v4_forbidden(uint32_t addr)
{
    for (size_t i = 0; i < sizeof forbidden_v4 / sizeof forbidden_v4[0]; i++) {
        uint32_t mask = forbidden_v4[i].bits == 0 ? 0 : 0xffffffffu << (32 - forbidden_v4[i].bits);
        if ((addr & mask) == forbidden_v4[i].net)
            return 1;
    }
    return 0;
}

static uint32_t v4_from_bytes(const unsigned char *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | (uint32_t)b[3];
}

static int all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

static int v6_forbidden(const unsigned char b[16])
{
    static const unsigned char loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

    if (all_zero(b, 16) || memcmp(b, loopback, 16) == 0)
        return 1;                                      /* :: and ::1 */
    if ((b[0] & 0xfe) == 0xfc)
        return 1;                                      /* fc00::/7 unique local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return 1;                                      /* fe80::/10 link-local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return 1;                                      /* fec0::/10 site-local (deprecated) */
    if (b[0] == 0xff)
        return 1;                                      /* ff00::/8 multicast */
    if (all_zero(b, 10) && b[10] == 0xff && b[11] == 0xff)
        return v4_forbidden(v4_from_bytes(b + 12));    /* ::ffff:0:0/96 mapped */
    if (all_zero(b, 12))
        return v4_forbidden(v4_from_bytes(b + 12));    /* ::/96 compatible */
    if (b[0] == 0x20 && b[1] == 0x02)
        return v4_forbidden(v4_from_bytes(b + 2));     /* 2002::/16 6to4 */
    if (memcmp(b, nat64, sizeof nat64) == 0)
        return v4_forbidden(v4_from_bytes(b + 12));    /* 64:ff9b::/96 NAT64 */
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* host syntax                                                                                     */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Length of host without one trailing dot (the root label). */
static size_t host_len_sans_root(const char *host)
{
    size_t n = strlen(host);
    if (n > 0 && host[n - 1] == '.')
        n--;
    return n;
}

/*
 * One part of an inet_aton-style address: "0x"/"0X" + at least one hex digit, "0" + octal digits,
 * or decimal digits. Returns 0 and the value (capped check at 32 bits), -1 when malformed/too big.
 * Unlike glibc we refuse a bare "0x" (glibc reads it as 0).
 */
static int ipv4_part(const char *s, size_t n, uint32_t *out)
{
    unsigned base = 10;
    size_t i = 0;
    uint64_t v = 0;

    if (n == 0)
        return -1;
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
        if (i == n)
            return -1;
    } else if (n >= 2 && s[0] == '0') {
        base = 8;
        i = 1;
    }
    for (; i < n; i++) {
        int d = hex_digit_value((unsigned char)s[i]);
        if (d < 0 || (unsigned)d >= base)
            return -1;
        v = v * base + (unsigned)d;
        if (v > 0xffffffffu)
            return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/*
 * Parse host (first n bytes) as an inet_aton-style IPv4 address of 1-4 parts: a.b.c.d, a.b.c (c is
 * 16 bits), a.b (b is 24 bits), a (32 bits). Returns 0 and the address in host byte order, or -1.
 */
static int ipv4_parse(const char *host, size_t n, uint32_t *addr)
{
    uint32_t parts[4];
    size_t nparts = 0, start = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i < n && host[i] != '.')
            continue;
        if (nparts == 4)
            return -1;
        if (ipv4_part(host + start, i - start, &parts[nparts]) != 0)
            return -1;
        nparts++;
        start = i + 1;
    }
    uint32_t v = 0;
    for (size_t i = 0; i + 1 < nparts; i++) {
        if (parts[i] > 0xff)
            return -1;
        v |= parts[i] << (24 - 8 * i);
    }
    uint32_t last = parts[nparts - 1];
    unsigned last_bits = 32 - 8 * (unsigned)(nparts - 1);
    if (last_bits < 32 && last >= (1u << last_bits))
        return -1;
    *addr = v | last;
    return 0;
}

/*
 * Does host (first n bytes) end in a numeric label — all decimal digits, or 0x/0X followed by hex
 * digits only? Such a host is meant as an IPv4 address by the resolver and must parse as one; it is
 * never treated as a DNS name (same rule as the WHATWG URL standard's "ends in a number").
 */
static int ends_in_number(const char *host, size_t n)
{
    size_t start = n;
    while (start > 0 && host[start - 1] != '.')
        start--;
    const char *l = host + start;
    size_t ln = n - start;
    if (ln == 0)
        return 0;
    size_t i = 0;
    if (ln >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X')) {
        for (i = 2; i < ln; i++)
            if (hex_digit_value((unsigned char)l[i]) < 0)
                return 0;
        return 1;
    }
    for (i = 0; i < ln; i++)
        if (!is_digit(l[i]))
            return 0;
    return 1;
}

/* LDH DNS name: labels of 1-63 letters/digits/hyphens, not starting or ending with '-', total <= 253
 * (not counting one trailing root dot). */
static int dns_name_valid(const char *host, size_t n)
{
    if (n == 0 || n > 253)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? host[i] : '.';
        if (c == '.') {
            if (label == 0 || label > 63 || host[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        int ok = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
        if (!ok || (label == 0 && c == '-'))
            return 0;
        label++;
    }
    return 1;
}

/* "localhost" or "*.localhost", case-insensitive, host[0..n) already stripped of the root dot. */
static int is_localhost(const char *host, size_t n)
{
    static const char lh[] = "localhost";
    const size_t lhn = sizeof lh - 1;
    if (n == lhn)
        return strncasecmp(host, lh, lhn) == 0;
    if (n > lhn)
        return host[n - lhn - 1] == '.' && strncasecmp(host + n - lhn, lh, lhn) == 0;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* URL                                                                                             */

/* The raw text must be printable ASCII: no whitespace, control characters or raw non-ASCII bytes. */
static int check_chars(const char *url, size_t len, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == 0x7f) {
            guard_set_err(errbuf, errlen, "URL contains whitespace or control characters");
            return -1;
        }
        if (c >= 0x80) {
            guard_set_err(errbuf, errlen, "URL contains non-ASCII characters (percent-encode them)");
            return -1;
        }
    }
    return 0;
}

static const char *parse_error_reason(CURLUcode rc)
{
    switch (rc) {
    case CURLUE_BAD_SCHEME:
    case CURLUE_NO_SCHEME:
    case CURLUE_BAD_SLASHES:
        return "must be an absolute https URL";
    case CURLUE_BAD_PORT_NUMBER:
        return "port must be between 1 and 65535";
    case CURLUE_NO_HOST:
        return "URL has no host";
    case CURLUE_BAD_HOSTNAME:
        return "invalid host";
    case CURLUE_BAD_IPV6:
        return "invalid IPv6 address";
    case CURLUE_OUT_OF_MEMORY:
        return "out of memory";
    default:
        return NULL;
    }
}

/* Does CURLUPART part exist in u (even if empty)? */
static int part_present(CURLU *u, CURLUPart part)
{
    char *v = NULL;
    CURLUcode rc = curl_url_get(u, part, &v, 0);
    curl_free(v);
    return rc == CURLUE_OK;
}

static int check_port(CURLU *u, char *errbuf, size_t errlen)
{
    char *port = NULL;
    CURLUcode rc = curl_url_get(u, CURLUPART_PORT, &port, 0);
    if (rc == CURLUE_NO_PORT)
        return 0;
    int ok = 0;
    if (rc == CURLUE_OK && port != NULL && port[0] != '\0' && strlen(port) <= 5) {
        unsigned long v = 0;
        ok = 1;
        for (const char *p = port; *p; p++) {
            if (!is_digit(*p)) {
                ok = 0;
                break;
            }
            v = v * 10 + (unsigned long)(*p - '0');
        }
        ok = ok && v >= 1 && v <= 65535;
    }
    curl_free(port);
    if (!ok) {
        guard_set_err(errbuf, errlen, "port must be between 1 and 65535");
        return -1;
    }
    return 0;
}

/* Judge the host curl extracted (already percent-decoded by curl). */
static int check_host(const char *host, int allow_private, char *errbuf, size_t errlen)
{
    size_t hlen = strlen(host);

    if (hlen == 0) {
        guard_set_err(errbuf, errlen, "URL has no host");
        return -1;
    }
    if (host[0] == '[') {
        char buf[INET6_ADDRSTRLEN + 1];
        struct in6_addr a6;
        if (hlen < 3 || host[hlen - 1] != ']' || hlen - 2 >= sizeof buf) {
            guard_set_err(errbuf, errlen, "invalid IPv6 address");
            return -1;
        }
        memcpy(buf, host + 1, hlen - 2);
        buf[hlen - 2] = '\0';
        if (inet_pton(AF_INET6, buf, &a6) != 1) {
            guard_set_err(errbuf, errlen, "invalid IPv6 address");
            return -1;
        }
        if (!allow_private && v6_forbidden(a6.s6_addr)) {
            guard_set_err(errbuf, errlen, "host is a private address");
            return -1;
        }
        return 0;
    }

    size_t n = host_len_sans_root(host);
    if (ends_in_number(host, n)) {
        uint32_t a4;
        if (ipv4_parse(host, n, &a4) != 0) {
            guard_set_err(errbuf, errlen, "invalid host (not a valid IPv4 address)");
            return -1;
        }
        if (!allow_private && v4_forbidden(a4)) {
            guard_set_err(errbuf, errlen, "host is a private address");
            return -1;
        }
        return 0;
    }
    if (!dns_name_valid(host, n)) {
        guard_set_err(errbuf, errlen, "invalid host name");
        return -1;
    }
    if (!allow_private && is_localhost(host, n)) {
        guard_set_err(errbuf, errlen, "host is localhost");
        return -1;
    }
    return 0;
}

/* Everything after curl accepted the URL; u is owned by the caller. */
static int check_parsed(CURLU *u, const char *url, int allow_private, char *errbuf, size_t errlen)
{
    char *scheme = NULL;
    int is_https = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK && scheme != NULL &&
                   strcasecmp(scheme, "https") == 0;
    curl_free(scheme);
    if (!is_https) {
        guard_set_err(errbuf, errlen, "must be an https URL");
        return -1;
    }
    /* libcurl reads "https:///x" as host "x"; RFC 3986 says the authority is empty. Require exactly
     * "https://" followed by the authority. */
    if (strncasecmp(url, "https://", 8) != 0) {
        guard_set_err(errbuf, errlen, "must be an absolute https URL (https://host/...)");
        return -1;
    }
    if (url[8] == '/' || url[8] == '\\') {
        guard_set_err(errbuf, errlen, "URL has no host");
        return -1;
    }
    if (part_present(u, CURLUPART_USER) || part_present(u, CURLUPART_PASSWORD) ||
        part_present(u, CURLUPART_OPTIONS)) {
        guard_set_err(errbuf, errlen, "URL must not contain credentials (user:password@)");
        return -1;
    }
    if (part_present(u, CURLUPART_ZONEID)) {
        guard_set_err(errbuf, errlen, "IPv6 zone ids are not allowed");
        return -1;
    }
    if (check_port(u, errbuf, errlen) != 0)
        return -1;

    char *host = NULL;
    CURLUcode rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    if (rc != CURLUE_OK || host == NULL) {
        curl_free(host);
        guard_set_err(errbuf, errlen, rc == CURLUE_OUT_OF_MEMORY ? "out of memory" : "URL has no host");
        return -1;
    }
    int ret = check_host(host, allow_private, errbuf, errlen);
    curl_free(host);
    return ret;
}

int url_guard_check_url(const char *url, int allow_private, char *errbuf, size_t errlen)
{
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (url == NULL || url[0] == '\0') {
        guard_set_err(errbuf, errlen, "URL is empty");
        return -1;
    }
    size_t len = strnlen(url, URL_GUARD_MAX_URL_LEN + 1);
    if (len > URL_GUARD_MAX_URL_LEN) {
        guard_set_err(errbuf, errlen, "URL is longer than %d bytes", URL_GUARD_MAX_URL_LEN);
        return -1;
    }
    if (check_chars(url, len, errbuf, errlen) != 0)
        return -1;

    CURLU *u = curl_url();
    if (u == NULL) {
        guard_set_err(errbuf, errlen, "out of memory");
        return -1;
    }
    int ret;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (rc != CURLUE_OK) {
        const char *why = parse_error_reason(rc);
        if (why != NULL)
            guard_set_err(errbuf, errlen, "%s", why);
        else
            guard_set_err(errbuf, errlen, "not a valid URL (%s)", curl_url_strerror(rc));
        ret = -1;
    } else {
        ret = check_parsed(u, url, allow_private, errbuf, errlen);
    }
    curl_url_cleanup(u);
    if (ret == 0 && errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    return ret;
}

int url_guard_address_forbidden(const struct sockaddr *sa)
{
    if (sa == NULL)
        return 1;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in in4;
        memcpy(&in4, sa, sizeof in4);
        return v4_forbidden(ntohl(in4.sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof in6);
        return v6_forbidden(in6.sin6_addr.s6_addr);
    }
    return 1;
}
