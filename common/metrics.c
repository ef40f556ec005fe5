/* metrics — see metrics.h. */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type;

/* One series: owned by its family. Values are atomics so updates need no lock. */
struct metric_series {
    struct metric_family *family;          /* back pointer (not owned) */
    char *labels;                          /* label text between the braces, "" for none (owned) */
    _Atomic int64_t value;                 /* counter or gauge value */
    _Atomic uint64_t buckets[METRICS_MAX_BUCKETS + 1]; /* histogram: per-bucket (non-cumulative) counts, +Inf last */
    _Atomic uint64_t count;                /* histogram: observations */
    _Atomic uint64_t sum_bits;             /* histogram: sum, as the bits of a double (CAS-updated) */
    struct metric_series *next;            /* next series of the family */
};

/* One family: owned by the registry. */
typedef struct metric_family {
    char *name;                            /* owned */
    char *help;                            /* owned */
    metric_type type;
    double bounds[METRICS_MAX_BUCKETS];    /* histogram upper bounds */
    size_t nbounds;
    metric_series *series;                 /* owned list, registration order */
    struct metric_family *next;
} metric_family;

/* The registry: a mutex-protected list of families. */
struct metrics_registry {
    pthread_mutex_t lock;
    metric_family *families;               /* owned list, registration order */
};

metrics_registry *metrics_registry_new(void)
{
    metrics_registry *reg = calloc(1, sizeof *reg);
    if (reg == NULL)
        return NULL;
    pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

static void series_free(metric_series *s)
{
    free(s->labels);
    free(s);
}

void metrics_registry_free(metrics_registry *reg)
{
    if (reg == NULL)
        return;
    for (metric_family *f = reg->families; f != NULL;) {
        metric_family *fnext = f->next;
        for (metric_series *s = f->series; s != NULL;) {
            metric_series *snext = s->next;
            series_free(s);
            s = snext;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = fnext;
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

/* Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]* */
static int name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':'))
            return 0;
    }
    return 1;
}

/* Finds or creates (name, labels) under the lock. */
static metric_series *series_get(metrics_registry *reg, const char *name, const char *help, const char *labels,
                                 metric_type type, const double *bounds, size_t nbounds)
{
    if (reg == NULL || !name_valid(name) || nbounds > METRICS_MAX_BUCKETS)
        return NULL;
    if (labels == NULL)
        labels = "";
    if (strchr(labels, '\n') != NULL)
        return NULL;
    for (size_t i = 1; i < nbounds; i++)
        if (!(bounds[i] > bounds[i - 1]))
            return NULL;
    metric_series *result = NULL;
    pthread_mutex_lock(&reg->lock);
    metric_family *fam = NULL, **tail = &reg->families;
    for (metric_family *f = reg->families; f != NULL; f = f->next) {
        tail = &f->next;
        if (strcmp(f->name, name) == 0)
            fam = f;
    }
    if (fam != NULL) {
        if (fam->type != type ||
            (type == METRIC_HISTOGRAM &&
             (fam->nbounds != nbounds || memcmp(fam->bounds, bounds, nbounds * sizeof *bounds) != 0)))
            goto out;
    } else {
        fam = calloc(1, sizeof *fam);
        if (fam == NULL)
            goto out;
        fam->name = strdup(name);
        fam->help = strdup(help != NULL ? help : "");
        if (fam->name == NULL || fam->help == NULL) {
            free(fam->name);
            free(fam->help);
            free(fam);
            goto out;
        }
        fam->type = type;
        fam->nbounds = nbounds;
        if (nbounds > 0)
            memcpy(fam->bounds, bounds, nbounds * sizeof *bounds);
        *tail = fam;
    }
    metric_series **stail = &fam->series;
    for (metric_series *s = fam->series; s != NULL; s = s->next) {
        stail = &s->next;
        if (strcmp(s->labels, labels) == 0) {
            result = s;
            goto out;
        }
    }
    metric_series *s = calloc(1, sizeof *s);
    if (s == NULL || (s->labels = strdup(labels)) == NULL) {
        free(s);
        goto out;
    }
    s->family = fam;
    *stail = s;
    result = s;
out:
    pthread_mutex_unlock(&reg->lock);
    return result;
}

metric_series *metrics_counter(metrics_registry *reg, const char *name, const char *help, const char *labels)
{
    return series_get(reg, name, help, labels, METRIC_COUNTER, NULL, 0);
}

metric_series *metrics_gauge(metrics_registry *reg, const char *name, const char *help, const char *labels)
{
    return series_get(reg, name, help, labels, METRIC_GAUGE, NULL, 0);
}

metric_series *metrics_histogram(metrics_registry *reg, const char *name, const char *help, const char *labels,
                                 const double *bounds, size_t nbounds)
{
    return series_get(reg, name, help, labels, METRIC_HISTOGRAM, bounds, nbounds);
}

void metrics_remove(metrics_registry *reg, metric_series *series)
{
    if (reg == NULL || series == NULL)
        return;
    pthread_mutex_lock(&reg->lock);
    metric_family *fam = series->family;
    for (metric_series **pp = &fam->series; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == series) {
            *pp = series->next;
            series_free(series);
            break;
        }
    }
    pthread_mutex_unlock(&reg->lock);
}

void metric_counter_add(metric_series *s, uint64_t n)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->value, (int64_t)n, memory_order_relaxed);
}

void metric_gauge_set(metric_series *s, int64_t value)
{
    if (s != NULL)
        atomic_store_explicit(&s->value, value, memory_order_relaxed);
}

void metric_gauge_add(metric_series *s, int64_t delta)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->value, delta, memory_order_relaxed);
}

static double bits_to_double(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return bits;
}

void metric_histogram_observe(metric_series *s, double value)
{
    if (s == NULL)
        return;
    const metric_family *fam = s->family;
    size_t i = 0;
    while (i < fam->nbounds && value > fam->bounds[i])
        i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&s->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&s->sum_bits, &old, double_to_bits(bits_to_double(old) + value),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

int64_t metric_value(const metric_series *s)
{
    return s != NULL ? atomic_load_explicit(&((metric_series *)s)->value, memory_order_relaxed) : 0;
}

uint64_t metric_histogram_count(const metric_series *s)
{
    return s != NULL ? atomic_load(&((metric_series *)s)->count) : 0;
}

double metric_histogram_sum(const metric_series *s)
{
    return s != NULL ? bits_to_double(atomic_load(&((metric_series *)s)->sum_bits)) : 0.0;
}

uint64_t metric_histogram_bucket(const metric_series *s, size_t i)
{
    if (s == NULL || i > s->family->nbounds)
        return 0;
    uint64_t total = 0;
    for (size_t j = 0; j <= i; j++)
        total += atomic_load(&((metric_series *)s)->buckets[j]);
    return total;
}

/* A growing output buffer. */
typedef struct strbuf {
    char *data;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(strbuf *sb, const char *fmt, ...)
{
    if (sb->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            sb->failed = 1;
            return;
        }
        if ((size_t)n < sb->cap - sb->len) {
            sb->len += (size_t)n;
            return;
        }
        size_t cap = sb->cap * 2 + (size_t)n + 1;
        char *data = realloc(sb->data, cap);
        if (data == NULL) {
            sb->failed = 1;
            return;
        }
        sb->data = data;
        sb->cap = cap;
    }
}

/* Help text escaping: backslash and newline. */
static void sb_help(strbuf *sb, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            sb_printf(sb, "\\\\");
        else if (*p == '\n')
            sb_printf(sb, "\\n");
        else
            sb_printf(sb, "%c", *p);
    }
}

static const char *type_name(metric_type t)
{
    return t == METRIC_COUNTER ? "counter" : t == METRIC_GAUGE ? "gauge" : "histogram";
}

char *metrics_render(metrics_registry *reg, size_t *len)
{
    strbuf sb = {malloc(4096), 0, 4096, 0};
    if (sb.data == NULL)
        return NULL;
    sb.data[0] = '\0';
    pthread_mutex_lock(&reg->lock);
    for (const metric_family *f = reg->families; f != NULL; f = f->next) {
        if (f->series == NULL)
            continue;
        sb_printf(&sb, "# HELP %s ", f->name);
        sb_help(&sb, f->help);
        sb_printf(&sb, "\n# TYPE %s %s\n", f->name, type_name(f->type));
        for (metric_series *s = f->series; s != NULL; s = s->next) {
            const char *lb = s->labels;
            int has = lb[0] != '\0';
            if (f->type != METRIC_HISTOGRAM) {
                sb_printf(&sb, "%s%s%s%s %lld\n", f->name, has ? "{" : "", lb, has ? "}" : "",
                          (long long)atomic_load(&s->value));
                continue;
            }
            uint64_t cumulative = 0;
            for (size_t i = 0; i <= f->nbounds; i++) {
                cumulative += atomic_load(&s->buckets[i]);
                char le[64];
                if (i < f->nbounds)
                    snprintf(le, sizeof le, "%.17g", f->bounds[i]);
                else
                    snprintf(le, sizeof le, "+Inf");
                sb_printf(&sb, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, lb, has ? "," : "", le,
                          (unsigned long long)cumulative);
            }
            sb_printf(&sb, "%s_sum%s%s%s %.17g\n", f->name, has ? "{" : "", lb, has ? "}" : "",
                      bits_to_double(atomic_load(&s->sum_bits)));
            /* count = sum of buckets, so a concurrent observe never shows count < +Inf bucket */
            sb_printf(&sb, "%s_count%s%s%s %llu\n", f->name, has ? "{" : "", lb, has ? "}" : "",
                      (unsigned long long)cumulative);
        }
    }
    pthread_mutex_unlock(&reg->lock);
    if (sb.failed) {
        free(sb.data);
        return NULL;
    }
    if (len != NULL)
        *len = sb.len;
    return sb.data;
}

int metrics_escape_label(const char *value, char *out, size_t outlen)
{
    size_t j = 0;
    for (const char *p = value; *p; p++) {
        const char *rep = NULL;
        char one[2] = {*p, '\0'};
        if (*p == '\\')
            rep = "\\\\";
        else if (*p == '"')
            rep = "\\\"";
        else if (*p == '\n')
            rep = "\\n";
        else
            rep = one;
        size_t n = strlen(rep);
        if (j + n >= outlen)
            return -1;
        memcpy(out + j, rep, n);
        j += n;
    }
    if (j >= outlen)
        return -1;
    out[j] = '\0';
    return 0;
}
