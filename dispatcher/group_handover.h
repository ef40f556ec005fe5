/*
 * group_handover — where an event partition starts when it is assigned: at the highest offset committed for it by
 * its member's own consumer group or by the group of the other consumer layout.
 *
 * The two layouts (CONSUMER_PER_TOPIC, consumer.h "Members") use different groups:
 *   - one consumer for the eight event topics (CONSUMER_PER_TOPIC=0): group KAFKA_GROUP;
 *   - a consumer per event topic (CONSUMER_PER_TOPIC=1, the default): a group per topic, "KAFKA_GROUP.<type>"
 *     (hookd-dispatcher.project.created, ...). They shared KAFKA_GROUP until librdkafka 2.0's cooperative-sticky
 *     assignor was found to loop for ever on the group leader's main thread (a core at 100 %, the group never
 *     assigned again) when the members of one group subscribe to different topics: its isBalanced() reuses the
 *     outer loop's index in an inner loop over a member's potential partitions (librdkafka issue #4783, fixed in
 *     2.6): after the inner loop the outer one goes on at that member's potential partition count + 1, so a
 *     member at that index or beyond, short of partitions with none to take, is reached again and again.
 *     Members of one topic's group all subscribe to that topic alone and have its partition count as potential
 *     partitions: the loop then needs at least partitions + 2 members, two dispatchers more than the topic has
 *     partitions (README, "Scaling": replicas beyond the partition count idle anyway). In the shared group a
 *     member's potential partitions were one topic's (12) among eight members per dispatcher: two dispatchers
 *     were enough.
 *
 * So a dispatcher that starts in one layout meets partitions whose progress the other layout's group holds (an
 * upgrade from a build with the shared group, or CONSUMER_PER_TOPIC changed). Starting them at the group's own
 * committed offset, none, would deliver every event of the topic's retention again (auto.offset.reset=earliest).
 * Everything below an offset a group committed was finished by that group's dispatchers, so the highest committed
 * offset of the groups is where nothing is skipped and the least is repeated.
 *
 * When the offsets cannot be read (no answer in time, a coordinator moving), the dispatcher does not start the
 * partitions at their own group's offset, which on the first start after a layout change is the topic's earliest:
 * they stay paused, and the read is tried again (consumer.c, "awaiting the handover").
 *
 * Thread contract: any thread that may block for up to the timeout (the dispatcher calls it from its rebalance
 * callback and its hold timer, on the event loop). Ownership: borrows everything.
 */
#ifndef HOOKD_GROUP_HANDOVER_H
#define HOOKD_GROUP_HANDOVER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#define GROUP_HANDOVER_MAX_GROUPS 16

/* For parts (topic and partition set; offsets RD_KAFKA_OFFSET_INVALID as librdkafka hands an assignment over), reads
 * the offsets committed by own_group, through rk (a consumer in that group: rd_kafka_committed), and by each of
 * other_groups, each through a reader made for the read from reader_conf (brokers and security; the reader is
 * given the group.id, never subscribes nor commits, and is destroyed before this returns), waiting at most
 * timeout_ms in all. Sets parts->elems[i].offset to the highest offset an other group committed where that is
 * above own_group's (or own_group has none); the other partitions keep their offset (librdkafka then starts at
 * own_group's committed offset). from (may be NULL; parts->cnt entries) gets, for each partition, the group its
 * offset came from (one of other_groups, borrowed) or NULL. An other group whose offsets the broker is not
 * authorized to show counts as one with none, and *refused is set to its name (borrowed; NULL when none was
 * refused): that answer will not change by asking again. librdkafka gives a reader no answer when its group is
 * refused (it reports the refused FindCoordinator on the reader's queue and keeps asking), so a reader's read waits
 * in short slices and looks at that queue between them. Returns how many partitions were set, or -1 with errbuf
 * when a group's offsets could not be read (no answer within timeout_ms, a coordinator error): parts is then left
 * as it was.
 *
 * Why not the Admin API's ListConsumerGroupOffsets, which reads any group through rk itself: librdkafka (2.0.2, and
 * still open upstream: issues #3663 and #4605) aborts the process on an assertion (`eonce->refcnt > 0`) when such a
 * coordinator request fails or times out; this module used it until a test with a read that times out showed it. */
int group_handover_offsets(rd_kafka_t *rk, const rd_kafka_conf_t *reader_conf, const char *own_group,
                           const char *const *other_groups, int other_count, rd_kafka_topic_partition_list_t *parts,
                           int timeout_ms, const char **from, const char **refused, char *errbuf, size_t errlen);

/* Writes "<group>.<type_name>", the group of one event topic's consumers, into out. Returns 0, or -1 when it does
 * not fit. */
int group_handover_topic_group(const char *group, const char *type_name, char *out, size_t outlen);

#endif
