/*
 * delivery_worker — one delivery thread: its own epoll loop, libcurl multi handle, timerfd and pool of reused
 * easy handles (keep-alive connections stay with the worker that opened them).
 *
 * Why threads: a delivery's cost is almost all libcurl, OpenSSL and the kernel (measured: hookd's own code is
 * about 1 % of the dispatcher's CPU), and with one loop thread doing Kafka, dispatch and HTTP the dispatcher
 * could use one core only. The event-loop thread keeps Kafka, Redis, dispatch and the offsets; workers run the
 * attempts (docs/DESIGN.md "Delivery threads").
 *
 * The worker takes jobs from its inbox (delivery_worker_submit), starts each as a transfer (signing it with the
 * attempt's timestamp: delivery_http_begin; a burst to a receiver the thread has not met yet sends one first and
 * holds the rest until that connection brought a TLS session, at most FIRST_CONTACT_HOLD_MS: first_contact.h),
 * drives the transfers with curl_multi_socket_action from its epoll loop (pattern: curl's
 * docs/examples/ephiperfifo.c), and when a transfer ends fills the job's result and pushes
 * it on the done queue it was given: one push per loop pass with every job that ended in it. A job that cannot
 * even start (invalid secret, out of memory) comes back at once as a failed attempt (network_error, "delivery
 * could not be started: ...").
 *
 * One multi handle per thread, shared by every webhook: a connection one webhook's attempt left idle serves the
 * next attempt to the same receiver, whichever webhook it is for. Eight multi handles per thread (a webhook's
 * attempts always in the same one, to shorten libcurl's walks of its connection pool) opened 536-578
 * connections instead of 320 in the fan-out benchmark and delivered 0.81 x as much (docs/BENCHMARKS.md,
 * 2026-12-06 19:00).
 *
 * Ownership: the worker owns its thread, loop, multi handle, easy handles and inbox; jobs stay the engine's (see
 * delivery_job.h); cfg and the done queue are borrowed and must outlive the worker.
 * Thread contract: start, submit and stop from the engine's thread; everything else runs on the worker's thread.
 */
#ifndef HOOKD_DELIVERY_WORKER_H
#define HOOKD_DELIVERY_WORKER_H

#include "delivery_http.h"
#include "delivery_job.h"

#include <stddef.h>

typedef struct delivery_worker delivery_worker;

/* Starts worker number index (named in its thread name and logs). Returns NULL with errbuf on failure. */
delivery_worker *delivery_worker_start(unsigned index, const delivery_http_config *cfg, job_queue *done,
                                       char *errbuf, size_t errlen);

/* Hands the chain first..last (linked by next) to the worker. */
void delivery_worker_submit(delivery_worker *w, delivery_job *first, delivery_job *last);

/* Stops the thread, aborting every transfer still running (their jobs are not returned), and frees the worker.
 * NULL is ignored. */
void delivery_worker_stop(delivery_worker *w);

#endif
