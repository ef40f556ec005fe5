/*
 * metrics — a small Prometheus registry: counters, gauges and histograms with fixed labels, rendered in the
 * text exposition format (version 0.0.4).
 *
 * A metric family is a name + help + type; a series is one family with one fixed label set, written as the
 * text between the braces: "outcome=\"success\",status_class=\"2xx\"" (NULL or "" for none). Registering the
 * same (name, labels) twice returns the same series, so a caller may look a series up again instead of
 * keeping the pointer. Label values must already be escaped (metrics_escape_label() helps).
 *
 * Ownership: the registry owns every family and series; series pointers stay valid until the series is
 * removed (metrics_remove) or the registry is freed.
 * Thread contract: updates (metric_*_add/set/observe) are lock-free atomics, callable from any thread.
 * Registration, removal and rendering take the registry mutex, so they may also run on any thread; a series
 * must not be updated after it was removed.
 */
#ifndef HOOKD_METRICS_H
#define HOOKD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_BUCKETS 32

typedef struct metrics_registry metrics_registry;
typedef struct metric_series metric_series; /* one counter, gauge or histogram series */

/* Creates an empty registry. Returns NULL on allocation failure. Free with metrics_registry_free(). */
metrics_registry *metrics_registry_new(void);

/* Frees the registry and every series. NULL is ignored. */
void metrics_registry_free(metrics_registry *reg);

/* Registers (or finds) a counter series. Returns NULL when name is already a family of another type, when
 * name or labels are invalid, or on allocation failure. */
metric_series *metrics_counter(metrics_registry *reg, const char *name, const char *help, const char *labels);

/* Registers (or finds) a gauge series (an integer value that goes up and down). */
metric_series *metrics_gauge(metrics_registry *reg, const char *name, const char *help, const char *labels);

/* Registers (or finds) a histogram series with upper bounds (strictly increasing, at most METRICS_MAX_BUCKETS;
 * +Inf is implicit). A second registration of the family must use the same bounds. */
metric_series *metrics_histogram(metrics_registry *reg, const char *name, const char *help, const char *labels,
                                 const double *bounds, size_t nbounds);

/* Removes one series (e.g. the lag gauge of a revoked partition). NULL is ignored. */
void metrics_remove(metrics_registry *reg, metric_series *series);

/* Counter: adds n. NULL is ignored (so an unregistered metric is a no-op). */
void metric_counter_add(metric_series *s, uint64_t n);

/* Gauge: sets / adds (delta may be negative). NULL is ignored. */
void metric_gauge_set(metric_series *s, int64_t value);
void metric_gauge_add(metric_series *s, int64_t delta);

/* Histogram: records one observation. NULL is ignored. */
void metric_histogram_observe(metric_series *s, double value);

/* Current value of a counter or gauge (tests and health checks). */
int64_t metric_value(const metric_series *s);

/* Histogram reads (tests): total count, sum, and the cumulative count of bucket i (i == nbounds is +Inf). */
uint64_t metric_histogram_count(const metric_series *s);
double metric_histogram_sum(const metric_series *s);
uint64_t metric_histogram_bucket(const metric_series *s, size_t i);

/* Renders every family (in registration order) as Prometheus text. Returns a malloc'd NUL-terminated string
 * the caller frees, or NULL on allocation failure; *len (may be NULL) gets its length. */
char *metrics_render(metrics_registry *reg, size_t *len);

/* Escapes a label value (backslash, double quote, newline) into out. Returns 0, or -1 when it does not fit. */
int metrics_escape_label(const char *value, char *out, size_t outlen);

#endif
