/* kafka_stats — see kafka_stats.h. The document is validated once, by json_scan_object_lenient(); each level below
 * is walked with json_scan_members() over the span its parent handed out (no second validation). */
#include "kafka_stats.h"

#include "json_scan.h"

#include <stdlib.h>
#include <string.h>

#define TOPIC_NAME_MAX 256 /* Kafka allows 249 characters */

typedef struct reader {
    kafka_stats_health *health;
    kafka_stats_lag_fn on_lag;
    void *ctx;
    char topic[TOPIC_NAME_MAX];
} reader;

/* One object's members by name: a json_scan_pick over a span of the validated document. 0 when it is an object. */
static int pick(const json_scan_span *obj, json_scan_pick *p)
{
    return json_scan_members(obj, json_scan_pick_member, p);
}

/* "brokers": {"<name>": {"nodeid": 1, "state": "UP", ...}, ...} */
static int on_broker(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    reader *r = ctx;
    (void)key;
    static const char *const names[] = {"nodeid", "state"};
    json_scan_pick p = {.names = names, .count = 2};
    long long nodeid = -1;
    if (pick(value, &p) == 0 && json_scan_picked(&p, 0) && json_scan_picked(&p, 1) &&
        json_scan_integer(&p.span[0], &nodeid) == 0 && nodeid >= 0 && p.span[1].kind == JSON_SCAN_STRING &&
        json_scan_string_equals(&p.span[1], "UP"))
        r->health->brokers_up++;
    return 0;
}

/* A lag member's value as jansson's json_integer_value read it: the integer, or 0 for any other kind. */
static long long integer_or_zero(const json_scan_span *s)
{
    long long v = 0;
    return json_scan_integer(s, &v) == 0 ? v : 0;
}

/* "partitions": {"<id>": {"consumer_lag": N, "consumer_lag_stored": N, ...}, ...} */
static int on_partition(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    reader *r = ctx;
    char id[16];
    if (json_scan_string_decode(key, id, sizeof id) <= 0)
        return 0;
    char *end;
    long partition = strtol(id, &end, 10);
    if (*end != '\0' || partition < -1 || partition > 1000000)
        return 0;
    static const char *const names[] = {"consumer_lag_stored", "consumer_lag"};
    json_scan_pick p = {.names = names, .count = 2};
    if (pick(value, &p) != 0)
        return 0;
    long long lag = json_scan_picked(&p, 0)   ? integer_or_zero(&p.span[0])
                    : json_scan_picked(&p, 1) ? integer_or_zero(&p.span[1])
                                              : -1;
    r->on_lag(r->ctx, r->topic, (int)partition, lag);
    return 0;
}

/* "topics": {"<name>": {"partitions": {...}, ...}, ...} */
static int on_topic(void *ctx, const json_scan_span *key, const json_scan_span *value)
{
    reader *r = ctx;
    if (json_scan_string_decode(key, r->topic, sizeof r->topic) < 0)
        return 0; /* no topic of ours has such a name */
    static const char *const names[] = {"partitions"};
    json_scan_pick p = {.names = names, .count = 1};
    if (pick(value, &p) == 0 && json_scan_picked(&p, 0))
        json_scan_members(&p.span[0], on_partition, r);
    return 0;
}

int kafka_stats_read(const char *json, size_t len, kafka_stats_health *health, kafka_stats_lag_fn on_lag,
                     void *ctx)
{
    memset(health, 0, sizeof *health);
    static const char *const names[] = {"brokers", "cgrp", "topics"};
    enum { BROKERS, CGRP, TOPICS };
    json_scan_pick top = {.names = names, .count = 3};
    if (json_scan_object_lenient(json, len, json_scan_pick_member, &top, NULL, 0) != 0)
        return -1;
    reader r = {.health = health, .on_lag = on_lag, .ctx = ctx};
    if (json_scan_picked(&top, BROKERS))
        json_scan_members(&top.span[BROKERS], on_broker, &r);
    static const char *const group_names[] = {"state", "join_state"};
    json_scan_pick group = {.names = group_names, .count = 2};
    if (json_scan_picked(&top, CGRP) && pick(&top.span[CGRP], &group) == 0 && json_scan_picked(&group, 0) &&
        json_scan_picked(&group, 1) && group.span[0].kind == JSON_SCAN_STRING &&
        group.span[1].kind == JSON_SCAN_STRING)
        health->group_steady = json_scan_string_equals(&group.span[0], "up") &&
                               json_scan_string_equals(&group.span[1], "steady");
    if (on_lag != NULL && json_scan_picked(&top, TOPICS))
        json_scan_members(&top.span[TOPICS], on_topic, &r);
    return 0;
}
