/* kafka_config — see kafka_config.h. */
#include "kafka_config.h"

#include "config.h"
#include "log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/* Variables with the KAFKA_ prefix that hookd reads itself and never passes to librdkafka. */
static const char *const own_variables[] = {"KAFKA_BROKERS", "KAFKA_GROUP"};

/* librdkafka's own log lines, re-emitted as JSON log lines (syslog levels: 0-3 error, 4 warn, 5-6 info). */
static void log_to_json(const rd_kafka_t *rk, int level, const char *facility, const char *message)
{
    log_level mapped = level <= 3 ? LOG_ERROR : level == 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG;
    log_json(mapped, "librdkafka", "{s:s, s:s, s:s}", "client", rd_kafka_name(rk), "facility", facility, "detail",
             message);
}

const char *kafka_unready_reason(int last_failure)
{
    switch (last_failure) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        return "authentication failed";
    case RD_KAFKA_RESP_ERR__SSL:
        return "TLS handshake failed";
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        return "consumer group not authorized";
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        return "topic not authorized";
    default:
        return "unreachable";
    }
}

int kafka_error_is_connection_failure(int err)
{
    return err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL;
}

int kafka_config_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errbuf, size_t errlen)
{
    char reason[256];
    if (rd_kafka_conf_set(conf, name, value, reason, sizeof reason) != RD_KAFKA_CONF_OK) {
        snprintf(errbuf, errlen, "kafka property %s: %s", name, reason);
        return -1;
    }
    return 0;
}

int kafka_config_get_size(rd_kafka_conf_t *conf, const char *name, size_t *out)
{
    char text[32];
    size_t len = sizeof text;
    if (rd_kafka_conf_get(conf, name, text, &len) != RD_KAFKA_CONF_OK)
        return -1;
    *out = (size_t)strtoull(text, NULL, 10);
    return 0;
}

int kafka_config_from_env(rd_kafka_conf_t *conf, char *errbuf, size_t errlen)
{
    rd_kafka_conf_set_log_cb(conf, log_to_json);
    if (kafka_config_set(conf, "bootstrap.servers", config_string("KAFKA_BROKERS", KAFKA_DEFAULT_BROKERS), errbuf,
                         errlen) != 0)
        return -1;
    for (char **env = environ; env != NULL && *env != NULL; env++) {
        const char *entry = *env;
        const char *eq = strchr(entry, '=');
        if (strncmp(entry, "KAFKA_", 6) != 0 || eq == NULL || eq[1] == '\0')
            continue;
        size_t name_len = (size_t)(eq - entry);
        int own = 0;
        for (size_t i = 0; i < sizeof own_variables / sizeof own_variables[0]; i++)
            if (strlen(own_variables[i]) == name_len && strncmp(entry, own_variables[i], name_len) == 0)
                own = 1;
        if (own || name_len <= 6 || name_len - 6 >= 128)
            continue;
        char property[128];
        size_t j = 0;
        for (const char *p = entry + 6; p < eq; p++)
            property[j++] = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
        property[j] = '\0';
        if (kafka_config_set(conf, property, eq + 1, errbuf, errlen) != 0)
            return -1;
    }
    return 0;
}
