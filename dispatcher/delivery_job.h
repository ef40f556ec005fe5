/*
 * delivery_job — one delivery attempt on its way between the event-loop thread and a delivery worker thread,
 * and the queue that carries jobs from one thread to the other.
 *
 * The event-loop thread fills a job's request and hands it to a worker (delivery_worker_submit); the worker runs
 * the attempt, fills the result and puts the job on the engine's done queue; the event-loop thread takes it off
 * there, calls the done callback and reuses the job. A job is touched by one thread at a time, and the queue's
 * mutex orders the hand-overs (everything written before a push is seen after the take).
 *
 * A job_queue is a mutex-protected FIFO of jobs plus an eventfd to wake its consumer. A push signals the eventfd
 * only when the queue was empty, so a busy consumer is not woken once per job; job_queue_take() therefore drains
 * the eventfd before it takes, so a push that lands between the two is never missed. The wake fd must be
 * non-blocking.
 *
 * Ownership: jobs belong to the delivery engine (delivery.c), which allocates and frees every one of them; a
 * queue owns neither its jobs nor its wake fd.
 * Thread contract: job_queue_push / job_queue_take from any thread.
 */
#ifndef HOOKD_DELIVERY_JOB_H
#define HOOKD_DELIVERY_JOB_H

#include "delivery.h"
#include "delivery_http.h"

#include <pthread.h>

typedef struct delivery_job {
    delivery_request req;         /* strings borrowed from the dispatch until the done callback returned */
    int http1_only;               /* deliver over HTTP/1.1 (the webhook's receiver broke an HTTP/2 stream) */
    unsigned worker;              /* the worker it was handed to */
    delivery_http_result result;  /* filled by the worker */
    struct delivery_job *next;    /* link in a queue, a pending batch or the engine's free list */
    struct delivery_job *all_next; /* every job the engine allocated (freed at the end) */
} delivery_job;

typedef struct job_queue {
    pthread_mutex_t lock;
    delivery_job *head, *tail;
    int wake_fd;                  /* eventfd written when the queue turns non-empty; borrowed */
} job_queue;

/* Appends job to the chain *head..*tail (linked by next; both NULL when empty). Single-threaded: the chain belongs
 * to the caller (a worker's finished jobs, a pass's pending jobs, a receiver's held jobs). */
void job_chain_append(delivery_job **head, delivery_job **tail, delivery_job *job);

/* Initialises an empty queue that wakes wake_fd. Returns 0 or -1. */
int job_queue_init(job_queue *q, int wake_fd);
void job_queue_destroy(job_queue *q);

/* Appends the chain first..last (linked by next, last->next ignored). Signals wake_fd when the queue was empty. */
void job_queue_push(job_queue *q, delivery_job *first, delivery_job *last);

/* Drains wake_fd, then takes every queued job in FIFO order (NULL when empty). */
delivery_job *job_queue_take(job_queue *q);

#endif
