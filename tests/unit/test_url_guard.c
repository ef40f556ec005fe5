/* Unit tests for common/url_guard.c (cmocka). Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "url_guard.h"

/* Expected outcome of url_guard_check_url for allow_private = 0 and = 1. */
enum { OK = 0, BAD = -1 };

struct url_case {
    const char *url;
    int want_strict;   /* allow_private = 0 */
    int want_lenient;  /* allow_private = 1 */
    const char *why;   /* substring expected in errbuf for the strict call (NULL: don't care) */
};

#define PRIV "private address"
#define INVALID "invalid host"

static const struct url_case url_cases[] = {
    /* accepted */
    {"https://example.com/", OK, OK, NULL},
    {"https://example.com", OK, OK, NULL},
    {"https://example.com:8443/hooks?a=b", OK, OK, NULL},
    {"https://example.com/hooks#frag", OK, OK, NULL},
    {"HTTPS://Example.COM/Hook", OK, OK, NULL},
    {"HtTpS://example.com./", OK, OK, NULL},
    {"https://a-b.c-d.example/", OK, OK, NULL},
    {"https://xn--bcher-kva.example/", OK, OK, NULL},
    {"https://1.2.3.4.nip.io/", OK, OK, NULL},
    {"https://0x7f.example.com/", OK, OK, NULL},
    {"https://localhost.example.com/", OK, OK, NULL},
    {"https://mylocalhost/", OK, OK, NULL},
    {"https://ex%2ecom/", OK, OK, NULL},
    {"https://93.184.216.34/x", OK, OK, NULL},
    {"https://8.8.8.8:443/", OK, OK, NULL},
    {"https://0x5db8d822/", OK, OK, NULL},        /* 93.184.216.34 in hex */
    {"https://1.2.65535/", OK, OK, NULL},         /* 1.2.255.255 */
    {"https://[2606:4700::1111]/", OK, OK, NULL},
    {"https://[2606:4700::1111]:8443/p", OK, OK, NULL},
    {"https://[::ffff:93.184.216.34]/", OK, OK, NULL},
    {"https://[2002:5db8:d822::1]/", OK, OK, NULL}, /* 6to4 of a public address */
    {"https://[64:ff9b::808:808]/", OK, OK, NULL},  /* NAT64 of 8.8.8.8 */
    {"https://example.com:1/", OK, OK, NULL},
    {"https://example.com:65535/", OK, OK, NULL},
    {"https://example.com:/", OK, OK, NULL},      /* empty port = default port */

    /* scheme */
    {"http://example.com/", BAD, BAD, "https"},
    {"ftp://example.com/", BAD, BAD, "https"},
    {"file:///etc/passwd", BAD, BAD, "https"},
    {"gopher://example.com/", BAD, BAD, "https"},
    {"httpsx://example.com/", BAD, BAD, "https"},
    {"example.com/hook", BAD, BAD, "https"},
    {"//example.com/hook", BAD, BAD, "https"},
    {"/hook", BAD, BAD, "https"},
    {"https:example.com", BAD, BAD, "https"},
    {"https:/example.com", BAD, BAD, "https"},
    {"https:\\\\example.com", BAD, BAD, NULL},

    /* missing host */
    {"https://", BAD, BAD, "no host"},
    {"https:///hook", BAD, BAD, "no host"},
    {"https:////example.com", BAD, BAD, NULL},
    {"https://:443/", BAD, BAD, "no host"},
    {"https://?x", BAD, BAD, "no host"},
    {"", BAD, BAD, "empty"},

    /* userinfo */
    {"https://user@example.com/", BAD, BAD, "credentials"},
    {"https://user:pass@example.com/", BAD, BAD, "credentials"},
    {"https://:pass@example.com/", BAD, BAD, "credentials"},
    {"https://@example.com/", BAD, BAD, "credentials"},
    {"https://example.com:443@evil.com/", BAD, BAD, "credentials"},
    {"https://example.com\\@evil.com/", BAD, BAD, "credentials"},
    {"https://example.com%2F@evil.com/", BAD, BAD, "credentials"},

    /* port */
    {"https://example.com:0/", BAD, BAD, "port"},
    {"https://example.com:65536/", BAD, BAD, "port"},
    {"https://example.com:99999999/", BAD, BAD, "port"},
    {"https://example.com:-1/", BAD, BAD, "port"},
    {"https://example.com:+443/", BAD, BAD, "port"},
    {"https://example.com:44a/", BAD, BAD, "port"},
    {"https://example.com:443:443/", BAD, BAD, "port"},

    /* whitespace / control / non-ASCII */
    {"https://example.com/a b", BAD, BAD, "whitespace"},
    {" https://example.com/", BAD, BAD, "whitespace"},
    {"https://example.com/\t", BAD, BAD, "whitespace"},
    {"https://example.com/\r\nX-Injected: 1", BAD, BAD, "whitespace"},
    {"https://exa\x01mple.com/", BAD, BAD, "control"},
    {"https://example.com/\x7f", BAD, BAD, "control"},
    {"https://ex ample.com/", BAD, BAD, "whitespace"},
    {"https://ex%20ample.com/", BAD, BAD, NULL},
    {"https://ex%00ample.com/", BAD, BAD, NULL},
    {"https://ex%0aample.com/", BAD, BAD, NULL},
    {"https://\xc3\xa9xample.com/", BAD, BAD, "non-ASCII"},
    {"https://example.com/\xc2\xa0", BAD, BAD, "non-ASCII"},

    /* bad DNS labels */
    {"https://-a.com/", BAD, BAD, INVALID},
    {"https://a-.com/", BAD, BAD, INVALID},
    {"https://a..b.com/", BAD, BAD, INVALID},
    {"https://.example.com/", BAD, BAD, INVALID},
    {"https://example.com../", BAD, BAD, INVALID},
    {"https://a_b.com/", BAD, BAD, INVALID},
    {"https://_dmarc.example.com/", BAD, BAD, INVALID},
    {"https://ex%5fample.com/", BAD, BAD, INVALID},
    {"https://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com/", BAD, BAD,
     INVALID}, /* 64-char label */
    {"https://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com/", OK, OK,
     NULL},    /* 63-char label */

    /* localhost */
    {"https://localhost/", BAD, OK, "localhost"},
    {"https://LOCALHOST/", BAD, OK, "localhost"},
    {"https://localhost./", BAD, OK, "localhost"},
    {"https://LocalHost.:8443/x", BAD, OK, "localhost"},
    {"https://api.localhost/", BAD, OK, "localhost"},
    {"https://a.b.LOCALHOST./", BAD, OK, "localhost"},
    {"https://%6cocalhost/", BAD, OK, "localhost"},

    /* IPv4 private ranges, dotted quad */
    {"https://0.0.0.0/", BAD, OK, PRIV},
    {"https://0.1.2.3/", BAD, OK, PRIV},
    {"https://10.0.0.1/", BAD, OK, PRIV},
    {"https://10.255.255.255/", BAD, OK, PRIV},
    {"https://100.64.0.1/", BAD, OK, PRIV},
    {"https://100.127.255.255/", BAD, OK, PRIV},
    {"https://100.128.0.1/", OK, OK, NULL},
    {"https://100.63.255.255/", OK, OK, NULL},
    {"https://127.0.0.1/", BAD, OK, PRIV},
    {"https://127.255.255.254/", BAD, OK, PRIV},
    {"https://169.254.169.254/latest/meta-data/", BAD, OK, PRIV},
    {"https://172.16.0.1/", BAD, OK, PRIV},
    {"https://172.31.255.255/", BAD, OK, PRIV},
    {"https://172.15.255.255/", OK, OK, NULL},
    {"https://172.32.0.0/", OK, OK, NULL},
    {"https://192.0.0.8/", BAD, OK, PRIV},
    {"https://192.0.1.1/", OK, OK, NULL},
    {"https://192.168.1.1/", BAD, OK, PRIV},
    {"https://198.18.0.1/", BAD, OK, PRIV},
    {"https://198.19.255.255/", BAD, OK, PRIV},
    {"https://198.20.0.1/", OK, OK, NULL},
    {"https://224.0.0.1/", BAD, OK, PRIV},
    {"https://239.255.255.250/", BAD, OK, PRIV},
    {"https://240.0.0.1/", BAD, OK, PRIV},
    {"https://255.255.255.255/", BAD, OK, PRIV},
    {"https://223.255.255.255/", OK, OK, NULL},

    /* every IPv4 spelling of loopback */
    {"https://127.1/", BAD, OK, PRIV},
    {"https://127.0.1/", BAD, OK, PRIV},
    {"https://2130706433/", BAD, OK, PRIV},
    {"https://0x7f000001/", BAD, OK, PRIV},
    {"https://0X7F000001/", BAD, OK, PRIV},
    {"https://0x7f.0.0.1/", BAD, OK, PRIV},
    {"https://0x7f.1/", BAD, OK, PRIV},
    {"https://0x7f.0x0.0x0.0x1/", BAD, OK, PRIV},
    {"https://0177.0.0.1/", BAD, OK, PRIV},
    {"https://0177.1/", BAD, OK, PRIV},
    {"https://017700000001/", BAD, OK, PRIV},
    {"https://00000000000000000177.1/", BAD, OK, PRIV},
    {"https://0x00000000007f.1/", BAD, OK, PRIV},
    {"https://0x7f.0.0x1/", BAD, OK, PRIV},
    {"https://0177.0x0.1/", BAD, OK, PRIV},
    {"https://127.0x10000/", BAD, OK, PRIV},   /* 127.1.0.0 */
    {"https://127.0.0.1./", BAD, OK, PRIV},
    {"https://127.1./", BAD, OK, PRIV},
    {"https://2130706433./", BAD, OK, PRIV},
    {"https://0x7f000001.:8443/", BAD, OK, PRIV},
    {"https://127.0.0.1:443/", BAD, OK, PRIV},
    {"https://%31%32%37.0.0.1/", BAD, OK, PRIV},
    {"https://%30x7f.1/", BAD, OK, PRIV},      /* decoded after libcurl's normalisation */
    {"https://%30177.0.0.1./", BAD, OK, PRIV},
    {"https://0/", BAD, OK, PRIV},             /* 0.0.0.0 */
    {"https://0x0/", BAD, OK, PRIV},
    {"https://167772161/", BAD, OK, PRIV},     /* 10.0.0.1 */
    {"https://0xa9fea9fe/", BAD, OK, PRIV},    /* 169.254.169.254 */
    {"https://0251.0376.0251.0376/", BAD, OK, PRIV},
    {"https://4294967295/", BAD, OK, PRIV},    /* 255.255.255.255 */

    /* numeric-looking hosts that are not addresses */
    {"https://1.2.3.4.5/", BAD, BAD, INVALID},
    {"https://0x/", BAD, BAD, INVALID},
    {"https://0x.1/", BAD, BAD, INVALID},
    {"https://1.0x/", BAD, BAD, INVALID},
    {"https://256.1.1.1/", BAD, BAD, INVALID},
    {"https://1.256.1/", BAD, BAD, INVALID},
    {"https://1.2.65536/", BAD, BAD, INVALID},
    {"https://1.16777216/", BAD, BAD, INVALID},
    {"https://4294967296/", BAD, BAD, INVALID},
    {"https://0x100000000/", BAD, BAD, INVALID},
    {"https://08.1.1.1/", BAD, BAD, INVALID},
    {"https://1.2.3.09/", BAD, BAD, INVALID},
    {"https://1.2.3.0x100/", BAD, BAD, INVALID},
    {"https://0xg.1/", BAD, BAD, INVALID},
    {"https://127.0.0.1../", BAD, BAD, INVALID},
    {"https://1..1/", BAD, BAD, INVALID},
    {"https://example.123/", BAD, BAD, INVALID},
    {"https://example.0x1/", BAD, BAD, INVALID},

    /* IPv6 */
    {"https://[::]/", BAD, OK, PRIV},
    {"https://[::1]/", BAD, OK, PRIV},
    {"https://[0:0:0:0:0:0:0:1]:443/", BAD, OK, PRIV},
    {"https://[fc00::1]/", BAD, OK, PRIV},
    {"https://[fd12:3456::1]/", BAD, OK, PRIV},
    {"https://[fe80::1]/", BAD, OK, PRIV},
    {"https://[febf::1]/", BAD, OK, PRIV},
    {"https://[fec0::1]/", BAD, OK, PRIV},
    {"https://[ff02::1]/", BAD, OK, PRIV},
    {"https://[::ffff:127.0.0.1]/", BAD, OK, PRIV},
    {"https://[::ffff:7f00:1]/", BAD, OK, PRIV},
    {"https://[0:0:0:0:0:ffff:127.0.0.1]/", BAD, OK, PRIV},
    {"https://[::ffff:a9fe:a9fe]/", BAD, OK, PRIV},
    {"https://[::127.0.0.1]/", BAD, OK, PRIV},
    {"https://[::10.0.0.1]/", BAD, OK, PRIV},
    {"https://[2002:7f00:1::]/", BAD, OK, PRIV},
    {"https://[2002:a9fe:a9fe::1]/", BAD, OK, PRIV},
    {"https://[64:ff9b::a9fe:a9fe]/", BAD, OK, PRIV},
    {"https://[64:ff9b::127.0.0.1]/", BAD, OK, PRIV},
    {"https://[::1]x/", BAD, BAD, NULL},
    {"https://[127.0.0.1]/", BAD, BAD, "IPv6"},
    {"https://[::ffff:0x7f.1]/", BAD, BAD, "IPv6"},
    {"https://[v1.x]/", BAD, BAD, "IPv6"},
    {"https://[gggg::1]/", BAD, BAD, "IPv6"},
    {"https://[::1/", BAD, BAD, NULL},

    /* zone ids */
    {"https://[fe80::1%25eth0]/", BAD, BAD, "zone"},
    {"https://[fe80::1%eth0]/", BAD, BAD, "zone"},
    {"https://[2606:4700::1111%25eth0]/", BAD, BAD, "zone"},
    {"https://[::1%25]/", BAD, BAD, NULL},
};

static void test_url_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof url_cases / sizeof url_cases[0]; i++) {
        const struct url_case *c = &url_cases[i];
        char err[256];
        memset(err, 'X', sizeof err);
        int got = url_guard_check_url(c->url, 0, err, sizeof err);
        if (got != c->want_strict) {
            print_error("strict   %-50s got %d want %d (%s)\n", c->url, got, c->want_strict, err);
            failures++;
        } else if (got == 0 && err[0] != '\0') {
            print_error("strict   %-50s accepted but errbuf not empty: %s\n", c->url, err);
            failures++;
        } else if (got != 0 && (err[0] == '\0' || (c->why && strstr(err, c->why) == NULL))) {
            print_error("strict   %-50s reason \"%s\" lacks \"%s\"\n", c->url, err, c->why ? c->why : "");
            failures++;
        }
        got = url_guard_check_url(c->url, 1, err, sizeof err);
        if (got != c->want_lenient) {
            print_error("lenient  %-50s got %d want %d (%s)\n", c->url, got, c->want_lenient, err);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* Build "https://example.com/aaaa..." of exactly len bytes. */
static char *url_of_len(size_t len)
{
    static const char prefix[] = "https://example.com/";
    char *s = malloc(len + 1);
    assert_non_null(s);
    memcpy(s, prefix, sizeof prefix - 1);
    memset(s + sizeof prefix - 1, 'a', len - (sizeof prefix - 1));
    s[len] = '\0';
    return s;
}

static void test_url_length(void **state)
{
    (void)state;
    char err[128];
    char *ok = url_of_len(URL_GUARD_MAX_URL_LEN);
    char *big = url_of_len(URL_GUARD_MAX_URL_LEN + 1);
    char *huge = url_of_len(100000);
    assert_int_equal(strlen(ok), 2048);
    assert_int_equal(url_guard_check_url(ok, 0, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_int_equal(url_guard_check_url(big, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "2048"));
    assert_int_equal(url_guard_check_url(big, 1, err, sizeof err), -1);
    assert_int_equal(url_guard_check_url(huge, 0, err, sizeof err), -1);
    free(ok);
    free(big);
    free(huge);
}

static void test_host_length(void **state)
{
    (void)state;
    /* 4 labels of 63 + 3 dots = 255 > 253; 63+1+63+1+63+1+61 = 253 ok. */
    char host[300], url[400], err[128];
    char l63[64];
    memset(l63, 'a', 63);
    l63[63] = '\0';
    snprintf(host, sizeof host, "%s.%s.%s.%.*s", l63, l63, l63, 61, l63);
    assert_int_equal(strlen(host), 253);
    snprintf(url, sizeof url, "https://%s/", host);
    assert_int_equal(url_guard_check_url(url, 0, err, sizeof err), 0);
    snprintf(url, sizeof url, "https://%s./", host); /* root dot does not count */
    assert_int_equal(url_guard_check_url(url, 0, err, sizeof err), 0);
    snprintf(host, sizeof host, "%s.%s.%s.%.*s", l63, l63, l63, 62, l63);
    assert_int_equal(strlen(host), 254);
    snprintf(url, sizeof url, "https://%s/", host);
    assert_int_equal(url_guard_check_url(url, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "invalid host"));
}

static void test_errbuf_handling(void **state)
{
    (void)state;
    char small[8];
    assert_int_equal(url_guard_check_url("http://example.com/", 0, small, sizeof small), -1);
    assert_int_equal(strlen(small), sizeof small - 1); /* truncated, NUL-terminated */
    assert_int_equal(url_guard_check_url("http://example.com/", 0, NULL, 0), -1);
    assert_int_equal(url_guard_check_url("https://example.com/", 0, NULL, 0), 0);
    assert_int_equal(url_guard_check_url(NULL, 0, small, sizeof small), -1);
    char one[1] = {'X'};
    assert_int_equal(url_guard_check_url("ftp://x/", 0, one, sizeof one), -1);
    assert_int_equal(one[0], '\0');
}

/* ---------------------------------------------------------------------------------------------- */

struct addr_case {
    int family;
    const char *addr;
    int forbidden;
};

static const struct addr_case addr_cases[] = {
    {AF_INET, "0.0.0.0", 1},         {AF_INET, "0.255.255.255", 1},  {AF_INET, "1.0.0.0", 0},
    {AF_INET, "10.1.2.3", 1},        {AF_INET, "11.0.0.1", 0},       {AF_INET, "100.64.0.0", 1},
    {AF_INET, "100.127.255.255", 1}, {AF_INET, "100.128.0.0", 0},    {AF_INET, "127.0.0.1", 1},
    {AF_INET, "127.255.255.255", 1}, {AF_INET, "128.0.0.1", 0},      {AF_INET, "169.254.169.254", 1},
    {AF_INET, "169.253.0.1", 0},     {AF_INET, "172.16.0.0", 1},     {AF_INET, "172.31.255.255", 1},
    {AF_INET, "172.32.0.0", 0},      {AF_INET, "192.0.0.1", 1},      {AF_INET, "192.0.2.1", 0},
    {AF_INET, "192.168.0.1", 1},     {AF_INET, "192.169.0.1", 0},    {AF_INET, "198.18.0.0", 1},
    {AF_INET, "198.19.255.255", 1},  {AF_INET, "198.17.255.255", 0}, {AF_INET, "224.0.0.1", 1},
    {AF_INET, "239.1.1.1", 1},       {AF_INET, "240.0.0.1", 1},      {AF_INET, "255.255.255.255", 1},
    {AF_INET, "223.255.255.255", 0}, {AF_INET, "93.184.216.34", 0},  {AF_INET, "8.8.8.8", 0},

    {AF_INET6, "::", 1},                 {AF_INET6, "::1", 1},
    {AF_INET6, "::2", 1}, /* compatible 0.0.0.2 */
    {AF_INET6, "fc00::1", 1},            {AF_INET6, "fdff:ffff::1", 1},
    {AF_INET6, "fe80::1", 1},            {AF_INET6, "febf:ffff::1", 1},
    {AF_INET6, "fec0::1", 1},            {AF_INET6, "feff::1", 1},
    {AF_INET6, "ff02::1", 1},            {AF_INET6, "ff0e::1", 1},
    {AF_INET6, "::ffff:127.0.0.1", 1},   {AF_INET6, "::ffff:7f00:1", 1},
    {AF_INET6, "::ffff:10.0.0.1", 1},    {AF_INET6, "::ffff:169.254.169.254", 1},
    {AF_INET6, "::ffff:93.184.216.34", 0},
    {AF_INET6, "::127.0.0.1", 1},        {AF_INET6, "::192.168.0.1", 1},
    {AF_INET6, "::93.184.216.34", 0},
    {AF_INET6, "2002:7f00:1::", 1},      {AF_INET6, "2002:a9fe:a9fe::1", 1},
    {AF_INET6, "2002:c0a8:0101:1::1", 1}, {AF_INET6, "2002:5db8:d822::1", 0},
    {AF_INET6, "64:ff9b::a9fe:a9fe", 1}, {AF_INET6, "64:ff9b::7f00:1", 1},
    {AF_INET6, "64:ff9b::808:808", 0},   {AF_INET6, "64:ff9b:1::7f00:1", 0}, /* not /96 NAT64 */
    {AF_INET6, "2606:4700::1111", 0},    {AF_INET6, "2001:4860:4860::8888", 0},
    {AF_INET6, "fbff::1", 0},            {AF_INET6, "fe00::1", 0},
};

static void test_address_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof addr_cases / sizeof addr_cases[0]; i++) {
        const struct addr_case *c = &addr_cases[i];
        int got;
        if (c->family == AF_INET) {
            struct sockaddr_in sin;
            memset(&sin, 0, sizeof sin);
            sin.sin_family = AF_INET;
            sin.sin_port = htons(443);
            assert_int_equal(inet_pton(AF_INET, c->addr, &sin.sin_addr), 1);
            got = url_guard_address_forbidden((const struct sockaddr *)&sin);
        } else {
            struct sockaddr_in6 sin6;
            memset(&sin6, 0, sizeof sin6);
            sin6.sin6_family = AF_INET6;
            sin6.sin6_port = htons(443);
            assert_int_equal(inet_pton(AF_INET6, c->addr, &sin6.sin6_addr), 1);
            got = url_guard_address_forbidden((const struct sockaddr *)&sin6);
        }
        if (got != c->forbidden) {
            print_error("address %-28s got %d want %d\n", c->addr, got, c->forbidden);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_address_other_families(void **state)
{
    (void)state;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    assert_int_equal(url_guard_address_forbidden((const struct sockaddr *)&sun), 1);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNSPEC;
    assert_int_equal(url_guard_address_forbidden((const struct sockaddr *)&ss), 1);
    assert_int_equal(url_guard_address_forbidden(NULL), 1);

    /* A sockaddr_storage holding AF_INET works too (what getaddrinfo/getpeername callers pass). */
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(0x08080808u);
    assert_int_equal(url_guard_address_forbidden((const struct sockaddr *)&ss), 0);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(url_guard_address_forbidden((const struct sockaddr *)&ss), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_table),
        cmocka_unit_test(test_url_length),
        cmocka_unit_test(test_host_length),
        cmocka_unit_test(test_errbuf_handling),
        cmocka_unit_test(test_address_table),
        cmocka_unit_test(test_address_other_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
