/*
 * group_handover — see group_handover.h.
 */
#include "group_handover.h"

#include "kafka_config.h"
#include "timeutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int group_handover_topic_group(const char *group, const char *type_name, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s.%s", group, type_name);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* How long one rd_kafka_committed call of a reader waits before the reader's queue is looked at for a refusal */
#define READER_SLICE_MS 100

/* 1 when reader's queue holds the broker's refusal of its group (GROUP_AUTHORIZATION_FAILED). A reader that may
 * not see its group never gets an answer to rd_kafka_committed: librdkafka reports the refused FindCoordinator
 * request on the consumer queue and keeps asking, so the read would only time out. Drains the queue (a reader is
 * assigned nothing: it holds only errors). */
static int reader_refused(rd_kafka_t *reader)
{
    int refused = 0;
    rd_kafka_message_t *msg;
    while ((msg = rd_kafka_consumer_poll(reader, 0)) != NULL) {
        if (msg->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
            refused = 1;
        rd_kafka_message_destroy(msg);
    }
    return refused;
}

/* Reads the committed offsets of parts through rk (a consumer of the group to read; reader: 1 when rk is one of
 * reader_new's, whose queue may be drained) into row (parts->cnt cells, -1 where none), waiting until deadline_ms
 * (monotonic). Returns 0, 1 when the broker refuses to show the group's offsets (GROUP_AUTHORIZATION_FAILED), or
 * -1 with errbuf. */
static int read_committed(rd_kafka_t *rk, int reader, const char *group, const rd_kafka_topic_partition_list_t *parts,
                          int64_t *row, int64_t deadline_ms, char *errbuf, size_t errlen)
{
    rd_kafka_topic_partition_list_t *got = rd_kafka_topic_partition_list_copy(parts);
    if (got == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    rd_kafka_resp_err_t err;
    int refused = 0;
    for (;;) {
        int64_t wait = deadline_ms - time_monotonic_ms();
        if (wait < 0)
            wait = 0;
        if (reader && wait > READER_SLICE_MS)
            wait = READER_SLICE_MS;
        err = rd_kafka_committed(rk, got, (int)wait);
        if (err != RD_KAFKA_RESP_ERR__TIMED_OUT || !reader)
            break;
        if ((refused = reader_refused(rk)) != 0 || time_monotonic_ms() >= deadline_ms)
            break;
    }
    int rc = 0;
    if (refused || err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
        rc = 1;
    } else if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errbuf, errlen, "committed offsets of group %s: %s", group, rd_kafka_err2str(err));
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < got->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &got->elems[i];
        if (p->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(errbuf, errlen, "committed offset of group %s, %s [%d]: %s", group, p->topic, (int)p->partition,
                     rd_kafka_err2str(p->err));
            rc = -1;
        } else {
            row[i] = p->offset >= 0 ? p->offset : -1;
        }
    }
    rd_kafka_topic_partition_list_destroy(got);
    return rc;
}

/* A consumer of group that only reads its committed offsets: it never subscribes nor is assigned anything, so it
 * never joins the group nor commits. NULL with errbuf. */
static rd_kafka_t *reader_new(const rd_kafka_conf_t *reader_conf, const char *group, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(reader_conf);
    if (conf == NULL) {
        snprintf(errbuf, errlen, "reader of group %s: out of memory", group);
        return NULL;
    }
    if (kafka_config_set(conf, "group.id", group, errbuf, errlen) != 0 ||
        kafka_config_set(conf, "enable.auto.commit", "false", errbuf, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char kerr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof kerr);
    if (rk == NULL) {
        snprintf(errbuf, errlen, "reader of group %s: %s", group, kerr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

int group_handover_offsets(rd_kafka_t *rk, const rd_kafka_conf_t *reader_conf, const char *own_group,
                           const char *const *other_groups, int other_count, rd_kafka_topic_partition_list_t *parts,
                           int timeout_ms, const char **from, const char **refused, char *errbuf, size_t errlen)
{
    for (int i = 0; from != NULL && parts != NULL && i < parts->cnt; i++)
        from[i] = NULL;
    *refused = NULL;
    if (parts == NULL || parts->cnt == 0 || other_count <= 0)
        return 0;
    if (other_count > GROUP_HANDOVER_MAX_GROUPS) {
        snprintf(errbuf, errlen, "%d groups to read, at most %d", other_count, GROUP_HANDOVER_MAX_GROUPS);
        return -1;
    }
    int64_t deadline_ms = time_monotonic_ms() + timeout_ms;
    size_t cells = (size_t)(other_count + 1) * (size_t)parts->cnt;
    int64_t *offsets = malloc(cells * sizeof *offsets);
    rd_kafka_t *readers[GROUP_HANDOVER_MAX_GROUPS] = {0};
    int rc = offsets == NULL ? -1 : 0;
    if (offsets == NULL)
        snprintf(errbuf, errlen, "out of memory");
    for (size_t i = 0; rc == 0 && i < cells; i++)
        offsets[i] = -1;
    /* the readers first, so that they connect to their coordinators side by side */
    for (int g = 0; rc == 0 && g < other_count; g++)
        if ((readers[g] = reader_new(reader_conf, other_groups[g], errbuf, errlen)) == NULL)
            rc = -1;
    if (rc == 0)
        rc = read_committed(rk, 0, own_group, parts, offsets, deadline_ms, errbuf, errlen) == 0 ? 0 : -1;
    for (int g = 0; rc == 0 && g < other_count; g++) {
        int got = read_committed(readers[g], 1, other_groups[g], parts, offsets + (size_t)(g + 1) * (size_t)parts->cnt,
                                 deadline_ms, errbuf, errlen);
        if (got < 0)
            rc = -1;
        else if (got == 1 && *refused == NULL)
            *refused = other_groups[g];
    }
    for (int g = 0; g < other_count; g++)
        if (readers[g] != NULL)
            rd_kafka_destroy_flags(readers[g], RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    int carried = 0;
    for (int i = 0; rc == 0 && i < parts->cnt; i++) {
        int64_t own = offsets[i], best = -1;
        int best_group = -1;
        for (int g = 0; g < other_count; g++) {
            int64_t o = offsets[(size_t)(g + 1) * (size_t)parts->cnt + (size_t)i];
            if (o > best) {
                best = o;
                best_group = g;
            }
        }
        if (best > own) {
            parts->elems[i].offset = best;
            if (from != NULL)
                from[i] = other_groups[best_group];
            carried++;
        }
    }
    free(offsets);
    return rc == 0 ? carried : -1;
}
