/*
 * fuzz_address — url_guard_address_forbidden() on arbitrary sockaddrs (the dispatcher's connect-time check).
 *
 * Input: 16 bytes of IPv6 address (missing bytes are zero), then optionally a family selector byte.
 * Invariants:
 *   - the result is 0 or 1;
 *   - an IPv4 address a.b.c.d (the first 4 bytes) gets the same verdict as AF_INET, as ::ffff:a.b.c.d
 *     (mapped), as 64:ff9b::a.b.c.d (NAT64) and as 2002:aabb:ccdd:: (6to4) — the header promises that these
 *     forms are judged by the embedded IPv4 address;
 *   - ::a.b.c.d (compatible) gets the same verdict except for :: and ::1, which are always forbidden;
 *   - any family other than AF_INET / AF_INET6 and NULL fail closed (1).
 */
#include "fuzz_util.h"
#include "url_guard.h"

#include <netinet/in.h>
#include <sys/socket.h>

static int verdict6(const unsigned char b[16])
{
    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    memcpy(in6.sin6_addr.s6_addr, b, 16);
    return url_guard_address_forbidden((const struct sockaddr *)&in6);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char raw[16] = {0};
    memcpy(raw, data, size < 16 ? size : 16);
    uint8_t selector = size > 16 ? data[16] : 0;

    int v6 = verdict6(raw);
    FUZZ_CHECK(v6 == 0 || v6 == 1, "v6 verdict %d", v6);

    struct sockaddr_in in4;
    memset(&in4, 0, sizeof in4);
    in4.sin_family = AF_INET;
    memcpy(&in4.sin_addr.s_addr, raw, 4); /* network byte order: raw[0] is the first octet */
    int v4 = url_guard_address_forbidden((const struct sockaddr *)&in4);
    FUZZ_CHECK(v4 == 0 || v4 == 1, "v4 verdict %d", v4);

    unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(mapped + 12, raw, 4);
    FUZZ_CHECK(verdict6(mapped) == v4, "::ffff:%u.%u.%u.%u: v6 %d, v4 %d", raw[0], raw[1], raw[2], raw[3],
               verdict6(mapped), v4);

    unsigned char nat64[16] = {0x00, 0x64, 0xff, 0x9b};
    memcpy(nat64 + 12, raw, 4);
    FUZZ_CHECK(verdict6(nat64) == v4, "64:ff9b::%u.%u.%u.%u: v6 %d, v4 %d", raw[0], raw[1], raw[2], raw[3],
               verdict6(nat64), v4);

    unsigned char sixtofour[16] = {0x20, 0x02};
    memcpy(sixtofour + 2, raw, 4);
    memcpy(sixtofour + 6, raw + 6, 10); /* the subnet and interface bits do not matter */
    FUZZ_CHECK(verdict6(sixtofour) == v4, "2002:%02x%02x:%02x%02x::: v6 %d, v4 %d", raw[0], raw[1], raw[2],
               raw[3], verdict6(sixtofour), v4);

    unsigned char compat[16] = {0};
    memcpy(compat + 12, raw, 4);
    int is_special = raw[0] == 0 && raw[1] == 0 && raw[2] == 0 && raw[3] <= 1;
    FUZZ_CHECK(verdict6(compat) == (is_special ? 1 : v4), "::%u.%u.%u.%u: v6 %d, v4 %d", raw[0], raw[1], raw[2],
               raw[3], verdict6(compat), v4);

    /* an arbitrary family fails closed; the storage is big enough for any reader */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = (sa_family_t)(selector | (size > 17 ? data[17] << 8 : 0));
    memcpy((char *)&ss + sizeof ss.ss_family, raw, 16);
    int other = url_guard_address_forbidden((const struct sockaddr *)&ss);
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
        FUZZ_CHECK(other == 1, "family %u allowed", ss.ss_family);
    FUZZ_CHECK(url_guard_address_forbidden(NULL) == 1, "NULL allowed");
    return 0;
}
