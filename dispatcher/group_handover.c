/*
 * group_handover — see group_handover.h.
 */
#include "group_handover.h"

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

/* The index of (topic, partition) in parts, or -1. */
static int part_index(const rd_kafka_topic_partition_list_t *parts, const char *topic, int32_t partition)
{
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition == partition && strcmp(parts->elems[i].topic, topic) == 0)
            return i;
    return -1;
}

/* Records one ListConsumerGroupOffsets answer: its group's committed offsets go to row g of offsets (count columns,
 * -1 where none). Returns the group's index among names, or -1 with errbuf when the answer is an error or names
 * no group of ours. */
static int take_answer(rd_kafka_event_t *ev, const char *const *names, int name_count,
                       const rd_kafka_topic_partition_list_t *parts, int64_t *offsets, char *errbuf, size_t errlen)
{
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errbuf, errlen, "listing committed offsets: %s", rd_kafka_event_error_string(ev));
        return -1;
    }
    const rd_kafka_ListConsumerGroupOffsets_result_t *result = rd_kafka_event_ListConsumerGroupOffsets_result(ev);
    size_t n = 0;
    const rd_kafka_group_result_t **groups =
        result != NULL ? rd_kafka_ListConsumerGroupOffsets_result_groups(result, &n) : NULL;
    if (groups == NULL || n != 1) {
        snprintf(errbuf, errlen, "listing committed offsets: %zu groups answered, 1 asked", n);
        return -1;
    }
    const rd_kafka_error_t *gerr = rd_kafka_group_result_error(groups[0]);
    const char *name = rd_kafka_group_result_name(groups[0]);
    if (gerr != NULL) {
        snprintf(errbuf, errlen, "listing committed offsets of group %s: %s", name, rd_kafka_error_string(gerr));
        return -1;
    }
    int g = -1;
    for (int i = 0; i < name_count && g < 0; i++)
        if (strcmp(names[i], name) == 0)
            g = i;
    if (g < 0) {
        snprintf(errbuf, errlen, "listing committed offsets: an answer for group %s, not asked", name);
        return -1;
    }
    const rd_kafka_topic_partition_list_t *got = rd_kafka_group_result_partitions(groups[0]);
    for (int i = 0; got != NULL && i < got->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &got->elems[i];
        int at = part_index(parts, p->topic, p->partition);
        if (at >= 0 && p->err == RD_KAFKA_RESP_ERR_NO_ERROR && p->offset >= 0)
            offsets[(size_t)g * (size_t)parts->cnt + (size_t)at] = p->offset;
    }
    return g;
}

/* Asks for the committed offsets of every group of names (one request each, all at once) and waits for the answers
 * until deadline_ms (monotonic). offsets: name_count rows of parts->cnt, filled with -1 beforehand. Returns 0, or
 * -1 with errbuf. */
static int read_offsets(rd_kafka_t *rk, const char *const *names, int name_count,
                        const rd_kafka_topic_partition_list_t *parts, int64_t *offsets, int64_t deadline_ms,
                        char *errbuf, size_t errlen)
{
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    if (queue == NULL || options == NULL) {
        snprintf(errbuf, errlen, "listing committed offsets: out of memory");
        if (queue != NULL)
            rd_kafka_queue_destroy(queue);
        if (options != NULL)
            rd_kafka_AdminOptions_destroy(options);
        return -1;
    }
    int64_t wait = deadline_ms - time_monotonic_ms();
    rd_kafka_AdminOptions_set_request_timeout(options, wait > 1 ? (int)wait : 1, NULL, 0);
    for (int g = 0; g < name_count; g++) {
        /* the request copies the list and reads only its topics and partitions */
        rd_kafka_ListConsumerGroupOffsets_t *request = rd_kafka_ListConsumerGroupOffsets_new(names[g], parts);
        rd_kafka_ListConsumerGroupOffsets(rk, &request, 1, options, queue);
        rd_kafka_ListConsumerGroupOffsets_destroy(request);
    }
    int answered = 0, rc = 0;
    unsigned char seen[GROUP_HANDOVER_MAX_GROUPS + 1] = {0};
    while (answered < name_count && rc == 0) {
        wait = deadline_ms - time_monotonic_ms();
        rd_kafka_event_t *ev = rd_kafka_queue_poll(queue, wait > 0 ? (int)wait : 0);
        if (ev == NULL) {
            snprintf(errbuf, errlen, "listing committed offsets: %d of %d groups answered in time", answered,
                     name_count);
            rc = -1;
            break;
        }
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT) {
            int g = take_answer(ev, names, name_count, parts, offsets, errbuf, errlen);
            if (g < 0)
                rc = -1;
            else if (!seen[g]) {
                seen[g] = 1;
                answered++;
            }
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_queue_destroy(queue); /* answers still to come are dropped with it */
    return rc;
}

int group_handover_offsets(rd_kafka_t *rk, const char *own_group, const char *const *other_groups, int other_count,
                           rd_kafka_topic_partition_list_t *parts, int timeout_ms, const char **from, char *errbuf,
                           size_t errlen)
{
    for (int i = 0; from != NULL && parts != NULL && i < parts->cnt; i++)
        from[i] = NULL;
    if (parts == NULL || parts->cnt == 0 || other_count <= 0)
        return 0;
    if (other_count > GROUP_HANDOVER_MAX_GROUPS) {
        snprintf(errbuf, errlen, "%d groups to read, at most %d", other_count, GROUP_HANDOVER_MAX_GROUPS);
        return -1;
    }
    const char *names[GROUP_HANDOVER_MAX_GROUPS + 1];
    names[0] = own_group;
    for (int i = 0; i < other_count; i++)
        names[i + 1] = other_groups[i];
    int name_count = other_count + 1;
    size_t cells = (size_t)name_count * (size_t)parts->cnt;
    int64_t *offsets = malloc(cells * sizeof *offsets);
    if (offsets == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cells; i++)
        offsets[i] = -1;
    if (read_offsets(rk, names, name_count, parts, offsets, time_monotonic_ms() + timeout_ms, errbuf, errlen) != 0) {
        free(offsets);
        return -1;
    }
    int carried = 0;
    for (int i = 0; i < parts->cnt; i++) {
        int64_t own = offsets[i], best = -1;
        int best_group = -1;
        for (int g = 1; g < name_count; g++) {
            int64_t o = offsets[(size_t)g * (size_t)parts->cnt + (size_t)i];
            if (o > best) {
                best = o;
                best_group = g;
            }
        }
        if (best > own) {
            parts->elems[i].offset = best;
            if (from != NULL)
                from[i] = names[best_group];
            carried++;
        }
    }
    free(offsets);
    return carried;
}
