/* delivery_job — see delivery_job.h. */
#include "delivery_job.h"

#include "event_loop.h"

#include <stdint.h>
#include <unistd.h>

void job_chain_append(delivery_job **head, delivery_job **tail, delivery_job *job)
{
    job->next = NULL;
    if (*tail != NULL)
        (*tail)->next = job;
    else
        *head = job;
    *tail = job;
}

int job_queue_init(job_queue *q, int wake_fd)
{
    q->head = q->tail = NULL;
    q->wake_fd = wake_fd;
    return pthread_mutex_init(&q->lock, NULL) == 0 ? 0 : -1;
}

void job_queue_destroy(job_queue *q)
{
    pthread_mutex_destroy(&q->lock);
}

void job_queue_push(job_queue *q, delivery_job *first, delivery_job *last)
{
    last->next = NULL;
    pthread_mutex_lock(&q->lock);
    int was_empty = q->head == NULL;
    if (was_empty)
        q->head = first;
    else
        q->tail->next = first;
    q->tail = last;
    pthread_mutex_unlock(&q->lock);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t ignored = write(q->wake_fd, &one, sizeof one); /* fails only when the counter is saturated */
        (void)ignored;
    }
}

delivery_job *job_queue_take(job_queue *q)
{
    loop_fd_drain(q->wake_fd); /* before the take: a push after it signals again */
    pthread_mutex_lock(&q->lock);
    delivery_job *all = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    return all;
}
