/*
 * kafka_topics — what hookd's services do when the broker refuses to create a topic they need.
 *
 * producer-api creates the eight event topics and the dispatcher the retry tiers and the dead-letter topic
 * (CreateTopics, at start and until it works). A cluster's operators may create them instead and grant hookd no
 * Create ACL: the broker then answers TOPIC_AUTHORIZATION_FAILED (or CLUSTER_AUTHORIZATION_FAILED) for every topic
 * of the request, whether it exists or not, so a refused topic is looked up (Describe is enough) and one that
 * exists counts as there.
 *
 * Thread contract: any thread that may block for up to timeout_ms. Ownership: borrows everything.
 */
#ifndef HOOKD_KAFKA_TOPICS_H
#define HOOKD_KAFKA_TOPICS_H

#include <librdkafka/rdkafka.h>

/* 1 when err, a CreateTopics result's error for one topic, is the broker's ACL refusal. */
int kafka_topics_refused(rd_kafka_resp_err_t err);

/* 1 when topic exists on the cluster rk talks to (its metadata, within timeout_ms), 0 when the broker says it does
 * not or will not describe it, -1 when no answer came (errbuf says why). */
int kafka_topics_exists(rd_kafka_t *rk, const char *topic, int timeout_ms, char *errbuf, size_t errlen);

#endif
