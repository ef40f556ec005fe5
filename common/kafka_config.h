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

/* The largest record batch producer-api and the dispatcher's retry producer write (batch.size) and the most the
 * dispatcher's consumers fetch of one partition at a time (max.partition.fetch.bytes); KAFKA_BATCH_SIZE and
 * KAFKA_MAX_PARTITION_FETCH_BYTES override them.
 * One figure for both because Kafka returns a batch over the per-partition limit only for the first partition
 * with data in a fetch (KIP-74): with librdkafka's default batches (1 MB) a backlog came one partition per fetch,
 * so the dispatcher worked one to three webhooks at a time (docs/BENCHMARKS.md, 2026-12-06 11:39). batch.size
 * counts uncompressed bytes, so a batch on disk is at most this. 128 KiB since each event topic's consumer fetches
 * 256 KiB at a time (dispatcher/consumer.c, FETCH_MAX_BYTES): a fetch carries batches of at least two partitions
 * however little they compress, where 256 KiB batches with 512 KiB fetches came two partitions per fetch and the
 * dispatch benchmark's receivers had fewer deliveries in flight (2026-12-07 06:23 and 09:00). */
#define KAFKA_RECORD_BATCH_MAX_BYTES "131072"

/* Sets bootstrap.servers and applies the passthrough variables to conf. Returns 0, or -1 with errbuf naming
 * the variable librdkafka refused. conf stays owned by the caller. */
int kafka_config_from_env(rd_kafka_conf_t *conf, char *errbuf, size_t errlen);

/* What /readyz says of Kafka when no broker is up, from the last connection failure librdkafka reported for the
 * client (its error_cb; 0 for none): "authentication failed" for RD_KAFKA_RESP_ERR__AUTHENTICATION (wrong SASL
 * credentials or mechanism), "TLS handshake failed" for RD_KAFKA_RESP_ERR__SSL (e.g. a broker certificate that
 * KAFKA_SSL_CA_LOCATION does not verify), "consumer group not authorized" and "topic not authorized" for the
 * broker's ACL refusals (RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED, ..._TOPIC_AUTHORIZATION_FAILED, which the
 * dispatcher's consumers report), else "unreachable". A static string. */
const char *kafka_unready_reason(int last_failure);

/* 1 when an error_cb error is one kafka_unready_reason names (worth keeping as the client's last failure). */
int kafka_error_is_connection_failure(int err);

/* Sets one property; returns 0 or -1 with librdkafka's reason in errbuf. */
int kafka_config_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errbuf, size_t errlen);

/* Reads a numeric property (as set so far, defaults included) into *out. Returns 0, or -1 when librdkafka has no
 * such property. */
int kafka_config_get_size(rd_kafka_conf_t *conf, const char *name, size_t *out);

#endif
