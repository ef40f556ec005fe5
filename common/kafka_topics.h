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

/* For one topic of a CreateTopics result whose error is err: 1 when the broker refused it for lack of ACLs and
 * the topic exists all the same (a metadata request on rk, waiting up to timeout_ms), logged at info as
 * "topic exists (not created: no Create ACL)"; the caller then counts it as there. 0 otherwise (another error, a
 * topic that does not exist, or no answer in time): the caller reports err as a failure and tries again. */
int kafka_topics_exists_though_refused(rd_kafka_t *rk, const char *topic, rd_kafka_resp_err_t err, int timeout_ms);

#endif
