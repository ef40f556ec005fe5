/* config — see config.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void config_print_help(FILE *out, const char *usage, const config_var *vars, size_t count, int kafka_passthrough)
{
    fprintf(out, "%s\n\nConfiguration (environment variables):\n", usage);
    for (size_t i = 0; i < count; i++) {
        fprintf(out, "  %-24s %s", vars[i].name, vars[i].help);
        if (vars[i].default_value != NULL)
            fprintf(out, " (default: %s)", vars[i].default_value[0] ? vars[i].default_value : "empty");
        fputc('\n', out);
    }
    if (kafka_passthrough)
        fprintf(out, "  %-24s %s\n", "KAFKA_<PROPERTY>",
                "any librdkafka property: KAFKA_SECURITY_PROTOCOL=SASL_SSL sets security.protocol");
}

const char *config_string(const char *name, const char *default_value)
{
    const char *value = getenv(name);
    if (value == NULL || value[0] == '\0')
        return default_value;
    return value;
}

int config_long(const char *name, long default_value, long min, long max, long *out, char *errbuf, size_t errlen)
{
    const char *text = config_string(name, NULL);
    if (text == NULL) {
        *out = default_value;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        snprintf(errbuf, errlen, "%s must be an integer from %ld to %ld, got \"%s\"", name, min, max, text);
        return -1;
    }
    *out = value;
    return 0;
}

int config_bool(const char *name, int default_value, int *out, char *errbuf, size_t errlen)
{
    const char *text = config_string(name, NULL);
    if (text == NULL) {
        *out = default_value;
        return 0;
    }
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    snprintf(errbuf, errlen, "%s must be 1 or 0 (true/false), got \"%s\"", name, text);
    return -1;
}

int duration_parse_ms(const char *text, long long *out_ms)
{
    if (text == NULL)
        return -1;
    while (isspace((unsigned char)*text))
        text++;
    if (!isdigit((unsigned char)*text) && *text != '.')
        return -1;
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || !isfinite(value) || value < 0)
        return -1;
    double scale;
    if (*end == '\0' || strcmp(end, "s") == 0)
        scale = 1000.0;
    else if (strcmp(end, "ms") == 0)
        scale = 1.0;
    else if (strcmp(end, "m") == 0)
        scale = 60000.0;
    else if (strcmp(end, "h") == 0)
        scale = 3600000.0;
    else if (strcmp(end, "d") == 0)
        scale = 86400000.0;
    else
        return -1;
    double ms = value * scale;
    if (ms > 9.0e15) /* beyond any sane duration; also keeps the cast below defined */
        return -1;
    *out_ms = (long long)llround(ms);
    return 0;
}

int config_duration_ms(const char *name, const char *default_text, long long min_ms, long long max_ms,
                       long long *out_ms, char *errbuf, size_t errlen)
{
    const char *text = config_string(name, default_text);
    long long ms = 0;
    if (duration_parse_ms(text, &ms) != 0 || ms < min_ms || ms > max_ms) {
        snprintf(errbuf, errlen, "%s must be a duration like 500ms, 5s, 2m from %lldms to %lldms, got \"%s\"",
                 name, min_ms, max_ms, text != NULL ? text : "");
        return -1;
    }
    *out_ms = ms;
    return 0;
}

int config_split_host_port(const char *addr, char *host, size_t hostlen, int *port)
{
    const char *port_text;
    size_t host_len;
    if (addr == NULL || hostlen == 0)
        return -1;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        host_len = (size_t)(close - addr - 1);
        addr++;
        port_text = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (colon == NULL) {
            host_len = 0;
            port_text = addr;
        } else {
            host_len = (size_t)(colon - addr);
            port_text = colon + 1;
        }
    }
    if (host_len >= hostlen)
        return -1;
    char *end = NULL;
    errno = 0;
    long value = strtol(port_text, &end, 10);
    if (errno != 0 || end == port_text || *end != '\0' || value < 0 || value > 65535)
        return -1;
    memcpy(host, addr, host_len);
    host[host_len] = '\0';
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
        host[0] = '\0';
    *port = (int)value;
    return 0;
}
