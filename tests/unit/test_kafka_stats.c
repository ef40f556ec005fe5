/* Unit tests for dispatcher/kafka_stats.c: librdkafka's statistics read in place, checked against the jansson
 * reading it replaced on a real document (a consumer of 8 topics x 12 partitions, librdkafka 2.0.2) and on
 * variants of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kafka_stats.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE "tests/unit/data/kafka_stats_96_partitions.json"
#define MAX_LAGS 512

typedef struct lag_entry {
    char topic[256];
    int partition;
    long long lag;
} lag_entry;

typedef struct lags {
    lag_entry e[MAX_LAGS];
    int n;
} lags;

static void collect(void *ctx, const char *topic, int partition, long long lag)
{
    lags *l = ctx;
    assert_true(l->n < MAX_LAGS);
    snprintf(l->e[l->n].topic, sizeof l->e[l->n].topic, "%s", topic);
    l->e[l->n].partition = partition;
    l->e[l->n].lag = lag;
    l->n++;
}

/* The reading kafka_stats replaced (dispatcher/consumer.c's stats_cb before), on a jansson tree. */
static void reference(const char *json, kafka_stats_health *h, lags *l)
{
    memset(h, 0, sizeof *h);
    l->n = 0;
    json_t *root = json_loads(json, 0, NULL);
    assert_non_null(root);
    const char *name;
    json_t *b;
    json_object_foreach(json_object_get(root, "brokers"), name, b) {
        const char *state = json_string_value(json_object_get(b, "state"));
        if (state != NULL && strcmp(state, "UP") == 0 && json_integer_value(json_object_get(b, "nodeid")) >= 0)
            h->brokers_up++;
    }
    json_t *cgrp = json_object_get(root, "cgrp");
    const char *cstate = json_string_value(json_object_get(cgrp, "state"));
    const char *jstate = json_string_value(json_object_get(cgrp, "join_state"));
    h->group_steady = cstate != NULL && strcmp(cstate, "up") == 0 && jstate != NULL && strcmp(jstate, "steady") == 0;
    json_t *t;
    json_object_foreach(json_object_get(root, "topics"), name, t) {
        const char *pname;
        json_t *p;
        json_object_foreach(json_object_get(t, "partitions"), pname, p) {
            json_t *lag = json_object_get(p, "consumer_lag_stored");
            if (lag == NULL)
                lag = json_object_get(p, "consumer_lag");
            collect(l, name, atoi(pname), lag != NULL ? json_integer_value(lag) : -1);
        }
    }
    json_decref(root);
}

static char *read_sample(void)
{
    FILE *f = fopen(SAMPLE, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    assert_true(n > 1000);
    return buf;
}

/* Reads json both ways and requires the same health and the same lags in the same order. */
static void same_as_reference(const char *json, kafka_stats_health *out, lags *got)
{
    kafka_stats_health want_h;
    static lags want;
    reference(json, &want_h, &want);
    got->n = 0;
    assert_int_equal(kafka_stats_read(json, strlen(json), out, collect, got), 0);
    assert_int_equal(out->brokers_up, want_h.brokers_up);
    assert_int_equal(out->group_steady, want_h.group_steady);
    assert_int_equal(got->n, want.n);
    for (int i = 0; i < want.n; i++) {
        assert_string_equal(got->e[i].topic, want.e[i].topic);
        assert_int_equal(got->e[i].partition, want.e[i].partition);
        assert_int_equal(got->e[i].lag, want.e[i].lag);
    }
}

static void a_real_document_reads_as_jansson_read_it(void **state)
{
    (void)state;
    char *json = read_sample();
    kafka_stats_health h;
    static lags got;
    same_as_reference(json, &h, &got);
    assert_int_equal(h.brokers_up, 2); /* the broker and its entry as group coordinator */
    assert_int_equal(h.group_steady, 1);
    assert_int_equal(got.n, 8 * 13); /* 12 partitions and librdkafka's -1 per topic */
    free(json);
}

/* A variant of the real document: f edits the tree, the text is dumped again. */
static char *variant(void (*f)(json_t *root))
{
    char *json = read_sample();
    json_t *root = json_loads(json, 0, NULL);
    free(json);
    assert_non_null(root);
    f(root);
    char *text = json_dumps(root, JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}

static void lags_set(json_t *root)
{
    const char *name;
    json_t *t;
    long long v = 0;
    json_object_foreach(json_object_get(root, "topics"), name, t) {
        const char *pname;
        json_t *p;
        json_object_foreach(json_object_get(t, "partitions"), pname, p) {
            v++;
            if (v % 5 == 0) {
                json_object_del(p, "consumer_lag_stored"); /* falls back to consumer_lag */
                json_object_set_new(p, "consumer_lag", json_integer(v * 1000));
            } else if (v % 7 == 0) {
                json_object_set_new(p, "consumer_lag_stored", json_string("many")); /* not an integer: 0 */
            } else if (v % 11 == 0) {
                json_object_del(p, "consumer_lag_stored");
                json_object_del(p, "consumer_lag"); /* neither: -1 */
            } else {
                json_object_set_new(p, "consumer_lag_stored", json_integer(v));
            }
        }
    }
}

static void brokers_down_group_rejoining(json_t *root)
{
    const char *name;
    json_t *b;
    int i = 0;
    json_object_foreach(json_object_get(root, "brokers"), name, b) {
        json_object_set_new(b, "state", json_string(i++ == 0 ? "DOWN" : "UP"));
        json_object_set_new(b, "nodeid", json_integer(i == 1 ? 1 : -1)); /* the UP one is a bootstrap entry */
    }
    json_object_set_new(json_object_get(root, "cgrp"), "join_state", json_string("wait-join"));
}

static void no_group_no_topics(json_t *root)
{
    json_object_del(root, "cgrp");
    json_object_del(root, "topics");
}

static void variants_read_as_jansson_read_them(void **state)
{
    (void)state;
    static lags got;
    kafka_stats_health h;

    char *json = variant(lags_set);
    same_as_reference(json, &h, &got);
    int fallback = 0, not_integer = 0, none = 0;
    for (int i = 0; i < got.n; i++) {
        fallback += got.e[i].lag >= 5000 && got.e[i].lag % 5000 == 0;
        not_integer += got.e[i].lag == 0;
        none += got.e[i].lag == -1;
    }
    assert_true(fallback > 0 && not_integer > 0 && none > 0);
    free(json);

    json = variant(brokers_down_group_rejoining);
    same_as_reference(json, &h, &got);
    assert_int_equal(h.brokers_up, 0);
    assert_int_equal(h.group_steady, 0);
    free(json);

    json = variant(no_group_no_topics);
    same_as_reference(json, &h, &got);
    assert_int_equal(h.group_steady, 0);
    assert_int_equal(got.n, 0);
    free(json);
}

/* librdkafka is trusted not to repeat keys, so they are not checked; a repeated member of a broker, the group or a
 * partition is read as jansson (flags 0) read it: the last wins. */
static void a_repeated_key_is_read_as_jansson_read_it(void **state)
{
    (void)state;
    const char *json = "{\"cgrp\":{\"state\":\"down\",\"join_state\":\"steady\",\"state\":\"up\"},"
                       "\"topics\":{\"t\":{\"partitions\":{\"3\":{\"consumer_lag\":5,\"consumer_lag\":9}}}},"
                       "\"brokers\":{\"b\":{\"nodeid\":-1,\"state\":\"UP\",\"nodeid\":2},\"c\":{\"nodeid\":3,\"state\":\"UP\"}}}";
    kafka_stats_health h;
    static lags got;
    same_as_reference(json, &h, &got);
    assert_int_equal(h.group_steady, 1);
    assert_int_equal(h.brokers_up, 2);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.e[0].lag, 9);
}

static void what_is_not_an_object_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "[]", "{\"brokers\":", "{\"a\":1}x", "null", "{\"a\":\"\xff\"}"};
    kafka_stats_health h = {7, 7};
    static lags got;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        got.n = 0;
        assert_int_equal(kafka_stats_read(bad[i], strlen(bad[i]), &h, collect, &got), -1);
        assert_int_equal(h.brokers_up, 0);
        assert_int_equal(got.n, 0);
    }
    /* wrong kinds where objects are expected are skipped, not trusted */
    const char *odd = "{\"brokers\":[1],\"cgrp\":\"up\",\"topics\":{\"t\":{\"partitions\":[]},\"u\":7}}";
    assert_int_equal(kafka_stats_read(odd, strlen(odd), &h, collect, &got), 0);
    assert_int_equal(h.brokers_up, 0);
    assert_int_equal(h.group_steady, 0);
    assert_int_equal(got.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_real_document_reads_as_jansson_read_it),
        cmocka_unit_test(variants_read_as_jansson_read_them),
        cmocka_unit_test(a_repeated_key_is_read_as_jansson_read_it),
        cmocka_unit_test(what_is_not_an_object_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
