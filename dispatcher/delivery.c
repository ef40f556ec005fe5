/* delivery — see delivery.h. The attempts themselves run on delivery_worker.c threads. */
#include "delivery.h"

#include "delivery_http.h"
#include "delivery_job.h"
#include "delivery_worker.h"
#include "http1_fallback.h"
#include "log.h"
#include "timeutil.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Attempts bound for one worker, collected during a loop pass. */
typedef struct worker_slot {
    delivery_worker *worker;      /* owned */
    delivery_job *pending_head, *pending_tail; /* started in this pass, not yet handed over */
    size_t active;                /* handed over (or pending) and not yet back */
} worker_slot;

struct delivery_engine {
    event_loop *loop;             /* borrowed */
    delivery_http_config http;    /* read by every worker; points at ca_bundle */
    delivery_http_ca_bundle ca;   /* system CAs + RECEIVER_CA_FILE (path "" when unused), closed at free */
    delivery_done_fn done;
    void *ctx;
    int done_fd;                  /* owned eventfd, LOOP_TAG_DELIVERY_DONE */
    int done_queue_ready;         /* done_queue initialised */
    job_queue done_queue;         /* finished jobs, pushed by the workers */
    worker_slot *workers;         /* owned, threads entries */
    unsigned threads;
    delivery_job *all_jobs;       /* every job allocated (all_next), freed at the end */
    delivery_job *free_jobs;      /* idle jobs (the pool grows to the most attempts ever in flight) */
    size_t active_count;
    http1_fallback *http1;        /* owned: webhooks delivered over HTTP/1.1 for now */
};

delivery_engine *delivery_engine_new(event_loop *loop, const delivery_options *opts, delivery_done_fn done,
                                     void *ctx, char *errbuf, size_t errlen)
{
    if (opts->threads < 1 || opts->threads > DELIVERY_THREADS_MAX) {
        snprintf(errbuf, errlen, "delivery threads must be 1 to %d", DELIVERY_THREADS_MAX);
        return NULL;
    }
    delivery_engine *eng = calloc(1, sizeof *eng);
    if (eng == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    eng->loop = loop;
    eng->done = done;
    eng->ctx = ctx;
    eng->done_fd = -1;
    if (opts->ca_file != NULL && opts->ca_file[0] != '\0' &&
        delivery_http_ca_bundle_open(&eng->ca, opts->ca_file, errbuf, errlen) != 0)
        goto err;
    eng->http.timeout_ms = opts->timeout_ms;
    eng->http.allow_private = opts->allow_private;
    eng->http.ca_bundle = eng->ca.path[0] != '\0' ? eng->ca.path : NULL;
    eng->http.user_agent = NULL;
    eng->http1 = http1_fallback_new();
    eng->workers = calloc(opts->threads, sizeof *eng->workers);
    eng->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (eng->http1 == NULL || eng->workers == NULL || eng->done_fd < 0 ||
        job_queue_init(&eng->done_queue, eng->done_fd) != 0) {
        snprintf(errbuf, errlen, "cannot set up the delivery engine: %s", strerror(errno));
        goto err;
    }
    eng->done_queue_ready = 1;
    if (event_loop_add(loop, eng->done_fd, EPOLLIN, LOOP_TAG_DELIVERY_DONE) != 0) {
        snprintf(errbuf, errlen, "cannot set up the delivery engine: %s", strerror(errno));
        goto err;
    }
    for (unsigned i = 0; i < opts->threads; i++) {
        eng->workers[i].worker = delivery_worker_start(i, &eng->http, &eng->done_queue, errbuf, errlen);
        if (eng->workers[i].worker == NULL)
            goto err;
        eng->threads = i + 1;
    }
    return eng;
err:
    delivery_engine_free(eng);
    return NULL;
}

void delivery_engine_free(delivery_engine *eng)
{
    if (eng == NULL)
        return;
    for (unsigned i = 0; i < eng->threads; i++)
        delivery_worker_stop(eng->workers[i].worker); /* joined: no thread touches a job after this */
    free(eng->workers);
    while (eng->all_jobs != NULL) {
        delivery_job *job = eng->all_jobs;
        eng->all_jobs = job->all_next;
        free(job);
    }
    if (eng->done_fd >= 0) {
        event_loop_del(eng->loop, eng->done_fd);
        close(eng->done_fd);
    }
    if (eng->done_queue_ready)
        job_queue_destroy(&eng->done_queue);
    delivery_http_ca_bundle_close(&eng->ca);
    http1_fallback_free(eng->http1);
    free(eng);
}

/* An idle job (from the pool, or new); NULL when out of memory. */
static delivery_job *job_get(delivery_engine *eng)
{
    delivery_job *job = eng->free_jobs;
    if (job != NULL) {
        eng->free_jobs = job->next;
        return job;
    }
    job = malloc(sizeof *job);
    if (job == NULL)
        return NULL;
    job->all_next = eng->all_jobs;
    eng->all_jobs = job;
    return job;
}

/* Returns a job to the pool (kept until the engine is freed: MAX_IN_FLIGHT bounds how many there are). */
static void job_put(delivery_engine *eng, delivery_job *job)
{
    job->next = eng->free_jobs;
    eng->free_jobs = job;
}

/* The worker with the fewest attempts in flight (the first of equals). */
static unsigned least_busy(const delivery_engine *eng)
{
    unsigned best = 0;
    for (unsigned i = 1; i < eng->threads; i++)
        if (eng->workers[i].active < eng->workers[best].active)
            best = i;
    return best;
}

int delivery_start(delivery_engine *eng, const delivery_request *req)
{
    delivery_job *job = job_get(eng);
    if (job == NULL) {
        log_json(LOG_ERROR, "delivery could not be started", "{s:I, s:s}", "webhook_id",
                 (json_int_t)req->webhook_id, "error", "out of memory");
        return -1;
    }
    job->req = *req;
    job->http1_only = http1_fallback_active(eng->http1, req->webhook_id, time_monotonic_us() / 1000);
    job->worker = least_busy(eng);
    worker_slot *ws = &eng->workers[job->worker];
    job_chain_append(&ws->pending_head, &ws->pending_tail, job);
    ws->active++;
    eng->active_count++;
    return 0;
}

void delivery_flush(delivery_engine *eng)
{
    for (unsigned i = 0; i < eng->threads; i++) {
        worker_slot *ws = &eng->workers[i];
        if (ws->pending_head == NULL)
            continue;
        delivery_worker_submit(ws->worker, ws->pending_head, ws->pending_tail);
        ws->pending_head = ws->pending_tail = NULL;
    }
}

/* One finished job: fallback bookkeeping, the done callback, back to the pool. */
static void finish(delivery_engine *eng, delivery_job *job)
{
    eng->workers[job->worker].active--;
    eng->active_count--;
    const delivery_http_result *hres = &job->result;
    if (hres->http2_reset && http1_fallback_mark(eng->http1, job->req.webhook_id, time_monotonic_us() / 1000))
        log_json(LOG_WARN, "receiver reset an HTTP/2 stream; delivering over HTTP/1.1 for an hour", "{s:I, s:s}",
                 "webhook_id", (json_int_t)job->req.webhook_id, "url", job->req.url);
    delivery_result res;
    memset(&res, 0, sizeof res);
    res.ok = hres->ok;
    res.outcome = (dm_outcome)hres->outcome;
    res.status = hres->status;
    res.latency_ms = hres->latency_ms;
    res.error = hres->ok ? NULL : hres->error;
    res.timestamp = hres->timestamp;
    res.retry_after_ms = hres->retry_after_ms;
    res.started_at_ms = hres->started_at_ms;
    res.tls_handshake = hres->tls_handshake;
    eng->done(eng->ctx, &job->req, &res);
    job_put(eng, job);
}

void delivery_on_done(delivery_engine *eng)
{
    delivery_job *job = job_queue_take(&eng->done_queue);
    while (job != NULL) {
        delivery_job *next = job->next;
        finish(eng, job);
        job = next;
    }
}

size_t delivery_active(const delivery_engine *eng)
{
    return eng->active_count;
}
