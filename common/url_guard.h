/*
 * url_guard — the SSRF guard for webhook target URLs.
 *
 * This module owns the answer to two questions:
 *
 *   1. At registration (producer-api): is this string an acceptable webhook target?
 *      url_guard_check_url() parses the URL with libcurl's URL API (the same parser the dispatcher
 *      later hands the URL to) and enforces the product rules: absolute https URL, at most
 *      URL_GUARD_MAX_URL_LEN bytes, printable ASCII only, no userinfo, port 1-65535, a host that is
 *      either an LDH DNS name or an IP literal, no IPv6 zone id, and — unless allow_private — no
 *      localhost name and no IP literal in a private / loopback / link-local / multicast / reserved
 *      range. Every IPv4 spelling that the resolver would accept (inet_aton forms: 1-4 parts, each
 *      decimal, octal with a leading 0, or hex with 0x; an optional trailing dot) is judged as the
 *      address it denotes. Host names are not resolved: no DNS lookups happen here.
 *
 *   2. At delivery (dispatcher): is the address curl resolved / connected to forbidden?
 *      url_guard_address_forbidden() is the authoritative check against DNS rebinding and names that
 *      resolve to internal addresses; registration-time checks alone cannot stop those.
 *
 * Forbidden IPv4: 0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12, 192.0.0/24, 192.168/16,
 *                 198.18/15, 224/4, 240/4 (which includes 255.255.255.255).
 * Forbidden IPv6: ::, ::1, fc00::/7, fe80::/10, fec0::/10, ff00::/8; and the IPv4-embedding forms
 *                 ::ffff:0:0/96 (mapped), ::/96 (compatible), 2002::/16 (6to4, IPv4 in bits 16-47)
 *                 and 64:ff9b::/96 (NAT64) are judged by the embedded IPv4 address.
 *
 * The module has no global mutable state; both functions are safe to call from any thread.
 * It does not require curl_global_init() (the URL API does not use it).
 */
#ifndef HOOKD_URL_GUARD_H
#define HOOKD_URL_GUARD_H

#include <stddef.h>
#include <sys/socket.h>

/* Longest accepted webhook URL, in bytes (not counting the terminating NUL). */
#define URL_GUARD_MAX_URL_LEN 2048

/*
 * Validate a webhook target URL at registration.
 *
 * Returns 0 when the URL is acceptable; -1 otherwise, with a short human-readable reason written to
 * errbuf (e.g. "must be an https URL", "host is a private address"), always NUL-terminated and
 * truncated to errlen. On success errbuf is set to the empty string. errbuf may be NULL / errlen 0
 * when the caller does not want a reason. allow_private != 0 lifts only the localhost / private /
 * loopback / reserved address ban (tests and local runs); every other rule still applies.
 *
 * Ownership: url is borrowed and not retained; nothing is allocated for the caller.
 * Thread-safety: reentrant, no shared state; safe from any thread. Performs no DNS lookups.
 */
int url_guard_check_url(const char *url, int allow_private, char *errbuf, size_t errlen);

/*
 * The delivery-time check: is this resolved / connected address forbidden?
 *
 * Returns 1 when forbidden, 0 when allowed. sa must point to a complete struct sockaddr_in
 * (sa_family AF_INET) or struct sockaddr_in6 (AF_INET6); IPv6 forms embedding an IPv4 address
 * (mapped ::ffff:0:0/96, compatible ::/96, 6to4 2002::/16, NAT64 64:ff9b::/96) are judged by the
 * IPv4 address inside. Fails closed: NULL or any other address family returns 1.
 * There is no allow_private switch here; callers that run against local receivers skip the call.
 *
 * Ownership: sa is borrowed and not retained.
 * Thread-safety: pure function; safe from any thread (e.g. a CURLOPT_OPENSOCKETFUNCTION callback).
 */
int url_guard_address_forbidden(const struct sockaddr *sa);

#endif /* HOOKD_URL_GUARD_H */
