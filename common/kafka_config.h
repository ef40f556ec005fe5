/*
 * kafka_config — librdkafka configuration from the environment.
 *
 * KAFKA_BROKERS sets bootstrap.servers; every other KAFKA_<PROPERTY> variable (except the ones hookd reads
 * itself: KAFKA_GROUP) is passed through: the suffix is lower-cased and '_' becomes '.', so
 * KAFKA_SECURITY_PROTOCOL=SASL_SSL sets security.protocol and KAFKA_SASL_MECHANISMS=PLAIN sets
 * sasl.mechanisms. Passthrough is applied last, so it may override hookd's defaults.
 *
 * Thread contract: start-up only (reads environ).
 */
#ifndef HOOKD_KAFKA_CONFIG_H
#define HOOKD_KAFKA_CONFIG_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#define KAFKA_DEFAULT_BROKERS "127.0.0.1:9092"

/* Sets bootstrap.servers and applies the passthrough variables to conf. Returns 0, or -1 with errbuf naming
 * the variable librdkafka refused. conf stays owned by the caller. */
int kafka_config_from_env(rd_kafka_conf_t *conf, char *errbuf, size_t errlen);

/* Sets one property; returns 0 or -1 with librdkafka's reason in errbuf. */
int kafka_config_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errbuf, size_t errlen);

#endif
