/* Unit tests for common/metrics.c (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "metrics.h"

static void test_counter_gauge_render(void **state)
{
    (void)state;
    metrics_registry *reg = metrics_registry_new();
    metric_series *ok = metrics_counter(reg, "hookd_deliveries_total", "Delivery attempts.", "outcome=\"success\"");
    metric_series *bad = metrics_counter(reg, "hookd_deliveries_total", "Delivery attempts.", "outcome=\"failed\"");
    metric_series *g = metrics_gauge(reg, "hookd_in_flight", "In flight.\nsecond line", NULL);
    assert_non_null(ok);
    assert_non_null(bad);
    assert_non_null(g);
    assert_ptr_equal(metrics_counter(reg, "hookd_deliveries_total", "x", "outcome=\"success\""), ok);
    assert_null(metrics_gauge(reg, "hookd_deliveries_total", "x", NULL)); /* type clash */
    assert_null(metrics_counter(reg, "9bad", "x", NULL));
    metric_counter_add(ok, 3);
    metric_counter_add(bad, 1);
    metric_gauge_set(g, 10);
    metric_gauge_add(g, -4);
    metric_counter_add(NULL, 1); /* no-op */
    assert_int_equal(metric_value(ok), 3);
    assert_int_equal(metric_value(g), 6);
    size_t len = 0;
    char *text = metrics_render(reg, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_string_equal(text, "# HELP hookd_deliveries_total Delivery attempts.\n"
                              "# TYPE hookd_deliveries_total counter\n"
                              "hookd_deliveries_total{outcome=\"success\"} 3\n"
                              "hookd_deliveries_total{outcome=\"failed\"} 1\n"
                              "# HELP hookd_in_flight In flight.\\nsecond line\n"
                              "# TYPE hookd_in_flight gauge\n"
                              "hookd_in_flight 6\n");
    free(text);
    metrics_remove(reg, bad);
    text = metrics_render(reg, NULL);
    assert_null(strstr(text, "failed"));
    free(text);
    metrics_registry_free(reg);
}

static void test_histogram(void **state)
{
    (void)state;
    metrics_registry *reg = metrics_registry_new();
    const double bounds[] = {0.1, 1, 5};
    metric_series *h = metrics_histogram(reg, "lat_seconds", "Latency.", "k=\"v\"", bounds, 3);
    assert_non_null(h);
    const double other[] = {0.1, 2};
    assert_null(metrics_histogram(reg, "lat_seconds", "Latency.", "k=\"w\"", other, 2));
    const double unsorted[] = {1, 0.5};
    assert_null(metrics_histogram(reg, "x_seconds", "x", NULL, unsorted, 2));
    metric_histogram_observe(h, 0.05);
    metric_histogram_observe(h, 0.1); /* le is inclusive */
    metric_histogram_observe(h, 0.5);
    metric_histogram_observe(h, 100);
    assert_int_equal(metric_histogram_count(h), 4);
    assert_true(metric_histogram_sum(h) > 100.64 && metric_histogram_sum(h) < 100.66);
    assert_int_equal(metric_histogram_bucket(h, 0), 2);
    assert_int_equal(metric_histogram_bucket(h, 1), 3);
    assert_int_equal(metric_histogram_bucket(h, 2), 3);
    assert_int_equal(metric_histogram_bucket(h, 3), 4);
    char *text = metrics_render(reg, NULL);
    assert_non_null(strstr(text, "# TYPE lat_seconds histogram\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{k=\"v\",le=\"0.10000000000000001\"} 2\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{k=\"v\",le=\"1\"} 3\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{k=\"v\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "lat_seconds_count{k=\"v\"} 4\n"));
    assert_non_null(strstr(text, "lat_seconds_sum{k=\"v\"} 100.6"));
    free(text);
    metrics_registry_free(reg);
}

static void test_escape(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(metrics_escape_label("a\"b\\c\nd", out, sizeof out), 0);
    assert_string_equal(out, "a\\\"b\\\\c\\nd");
    assert_int_equal(metrics_escape_label("abcdef", out, 4), -1);
}

static metric_series *shared;

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++)
        metric_histogram_observe(shared, 1.0);
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    metrics_registry *reg = metrics_registry_new();
    const double bounds[] = {0.5, 2};
    shared = metrics_histogram(reg, "c_seconds", "c", NULL, bounds, 2);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, hammer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(metric_histogram_count(shared), 400000);
    assert_true(metric_histogram_sum(shared) == 400000.0);
    metrics_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge_render),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
