/* Unit tests for dispatcher/delivery_job.c: the queue that carries delivery jobs between threads (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "delivery_job.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* The eventfd's counter, reset to 0 (0 when it was not signalled). */
static uint64_t drain(int fd)
{
    uint64_t n = 0;
    if (read(fd, &n, sizeof n) != (ssize_t)sizeof n)
        return 0;
    return n;
}

static void test_fifo_order_and_take_empties(void **state)
{
    (void)state;
    int fd = eventfd(0, EFD_NONBLOCK);
    job_queue q;
    assert_int_equal(job_queue_init(&q, fd), 0);
    assert_null(job_queue_take(&q));
    delivery_job jobs[5];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 5; i++)
        jobs[i].req.webhook_id = i;
    jobs[0].next = &jobs[1];
    job_queue_push(&q, &jobs[0], &jobs[1]); /* a chain of two */
    job_queue_push(&q, &jobs[2], &jobs[2]);
    jobs[3].next = &jobs[4];
    job_queue_push(&q, &jobs[3], &jobs[4]);
    delivery_job *got = job_queue_take(&q);
    for (int i = 0; i < 5; i++) {
        assert_non_null(got);
        assert_int_equal(got->req.webhook_id, i);
        got = got->next;
    }
    assert_null(got);
    assert_null(job_queue_take(&q));
    job_queue_destroy(&q);
    close(fd);
}

static void test_signals_only_when_it_turns_non_empty(void **state)
{
    (void)state;
    int fd = eventfd(0, EFD_NONBLOCK);
    job_queue q;
    assert_int_equal(job_queue_init(&q, fd), 0);
    delivery_job a, b, c;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    job_queue_push(&q, &a, &a);
    job_queue_push(&q, &b, &b); /* the consumer has not taken a yet: no second wake-up */
    assert_int_equal(drain(fd), 1);
    assert_non_null(job_queue_take(&q));
    job_queue_push(&q, &c, &c); /* empty again: wakes */
    assert_int_equal(drain(fd), 1);
    assert_ptr_equal(job_queue_take(&q), &c);
    assert_int_equal(drain(fd), 0);
    delivery_job d;
    memset(&d, 0, sizeof d);
    job_queue_push(&q, &d, &d);
    assert_ptr_equal(job_queue_take(&q), &d); /* the take drains the wake-up itself */
    assert_int_equal(drain(fd), 0);
    job_queue_destroy(&q);
    close(fd);
}

/* Two producers push while the consumer drains the eventfd and takes, as the real threads do: every job arrives
 * exactly once, and the consumer never sleeps with jobs queued (it waits on the eventfd only). */
#define PER_PRODUCER 20000

typedef struct producer_arg {
    job_queue *q;
    delivery_job *jobs;
    long long base;
} producer_arg;

static void *producer(void *p)
{
    producer_arg *a = p;
    for (int i = 0; i < PER_PRODUCER; i++) {
        a->jobs[i].req.webhook_id = a->base + i;
        job_queue_push(a->q, &a->jobs[i], &a->jobs[i]);
    }
    return NULL;
}

static void test_two_producers_one_consumer(void **state)
{
    (void)state;
    int fd = eventfd(0, EFD_NONBLOCK);
    job_queue q;
    assert_int_equal(job_queue_init(&q, fd), 0);
    delivery_job *jobs = calloc(2 * PER_PRODUCER, sizeof *jobs);
    char *seen = calloc(2 * PER_PRODUCER, 1);
    assert_non_null(jobs);
    assert_non_null(seen);
    producer_arg args[2] = {{&q, jobs, 0}, {&q, jobs + PER_PRODUCER, PER_PRODUCER}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, producer, &args[i]), 0);
    int got = 0;
    long long last[2] = {-1, PER_PRODUCER - 1};
    while (got < 2 * PER_PRODUCER) {
        /* sleeps until a push turned the queue non-empty, as the loops sleep in epoll_wait */
        struct pollfd pfd = {fd, POLLIN, 0};
        assert_int_equal(poll(&pfd, 1, -1), 1);
        for (delivery_job *j = job_queue_take(&q); j != NULL; j = j->next) {
            long long id = j->req.webhook_id;
            assert_false(seen[id]);
            seen[id] = 1;
            int who = id >= PER_PRODUCER;
            assert_true(id > last[who]); /* each producer's jobs arrive in the order pushed */
            last[who] = id;
            got++;
        }
    }
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    assert_null(job_queue_take(&q));
    free(seen);
    free(jobs);
    job_queue_destroy(&q);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_order_and_take_empties),
        cmocka_unit_test(test_signals_only_when_it_turns_non_empty),
        cmocka_unit_test(test_two_producers_one_consumer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
