/*
 * fuzz_host_port — config_split_host_port() (LISTEN_ADDR, METRICS_ADDR).
 * Input: byte 0 = host buffer size (0-255), the rest the address text.
 * Invariants: nothing is written past hostlen (ASan: the buffer is exactly hostlen bytes); on success the
 * host is NUL-terminated inside it, the port is 0-65535, and the host is a prefix-substring of the input.
 */
#include "config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t hostlen = fuzz_byte(&data, &size);
    char *addr = fuzz_strdup(data, size);
    char *host = malloc(hostlen > 0 ? hostlen : 1);
    int port = -1;
    if (config_split_host_port(addr, host, hostlen, &port) == 0) {
        FUZZ_CHECK(hostlen > 0 && memchr(host, '\0', hostlen) != NULL, "host not terminated");
        FUZZ_CHECK(port >= 0 && port <= 65535, "port %d", port);
        FUZZ_CHECK(host[0] == '\0' || strstr(addr, host) != NULL, "host \"%s\" not in \"%s\"", host, addr);
    }
    FUZZ_CHECK(config_split_host_port(NULL, host, hostlen, &port) == -1, "NULL accepted");
    free(host);
    free(addr);
    return 0;
}
