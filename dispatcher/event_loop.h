/*
 * event_loop — an epoll set (the dispatcher's main loop; each delivery worker has its own), plus timerfd /
 * signalfd / eventfd helpers.
 *
 * Every registered fd carries a caller-chosen tag (what kind of fd it is); event_loop_wait() hands back
 * (fd, tag, events) triples and the caller dispatches on the tag. Nothing but the fd and tag is stored, so an
 * fd that was closed and removed between two waits can never reach a dangling pointer.
 *
 * Ownership: the loop owns only the epoll fd; registered fds stay owned by whoever registered them.
 * Thread contract: one loop, one thread: the dispatcher's main thread has one, each delivery worker its own.
 */
#ifndef HOOKD_EVENT_LOOP_H
#define HOOKD_EVENT_LOOP_H

#include <signal.h>
#include <stdint.h>

/* What an fd is; chosen by the dispatcher. */
typedef enum loop_tag {
    LOOP_TAG_CURL_SOCKET = 1, /* a libcurl transfer socket */
    LOOP_TAG_CURL_TIMER,      /* the timerfd behind CURLMOPT_TIMERFUNCTION */
    LOOP_TAG_KAFKA,           /* eventfd signalled by librdkafka when the consumer queue becomes non-empty */
    LOOP_TAG_TICK,            /* the periodic housekeeping timerfd */
    LOOP_TAG_SIGNAL,          /* signalfd for SIGTERM / SIGINT */
    LOOP_TAG_HOLD,            /* timerfd: a retry-tier partition waiting for its head message is due */
    LOOP_TAG_PRODUCER,        /* eventfd signalled by librdkafka when the retry producer's queue has events */
    LOOP_TAG_KAFKA_RETRY,     /* eventfd of the retry-tier consumer's queue */
    LOOP_TAG_DELIVERY_DONE,   /* eventfd: delivery workers finished attempts (the engine's done queue) */
    LOOP_TAG_DELIVERY_INBOX,  /* eventfd of a delivery worker's inbox (on the worker's own loop) */
    LOOP_TAG_REDIS_READY      /* eventfd: the dispatcher's Redis thread read subscriber lists (redis_worker.h) */
} loop_tag;

/* One readiness report. */
typedef struct loop_event {
    int fd;
    loop_tag tag;
    uint32_t events; /* EPOLLIN / EPOLLOUT / EPOLLERR / EPOLLHUP */
} loop_event;

typedef struct event_loop event_loop;

/* Creates the epoll set. Returns NULL on failure (errno set). */
event_loop *event_loop_new(void);

/* Closes the epoll fd and frees loop. NULL is ignored. */
void event_loop_free(event_loop *loop);

/* Registers, re-arms or removes fd. Return 0 or -1. event_loop_del ignores fds that are already gone. */
int event_loop_add(event_loop *loop, int fd, uint32_t events, loop_tag tag);
int event_loop_mod(event_loop *loop, int fd, uint32_t events, loop_tag tag);
int event_loop_del(event_loop *loop, int fd);

/* Waits up to timeout_ms (-1 forever) and fills out[0..n). Returns n >= 0 (0 also on EINTR), or -1. */
int event_loop_wait(event_loop *loop, loop_event *out, int max, int timeout_ms);

/* A non-blocking monotonic timerfd. Returns the fd or -1. */
int loop_timerfd_new(void);

/* Arms timerfd fd to fire once after ms (0 = as soon as possible) and then every interval_ms (0 = once);
 * ms < 0 disarms. Returns 0 or -1. */
int loop_timerfd_arm(int fd, long long ms, long long interval_ms);

/* Reads and discards a timerfd's or eventfd's counter (non-blocking). Returns 1 when it had fired, else 0. */
int loop_fd_drain(int fd);

/* Blocks SIGTERM and SIGINT for the process (call before any thread starts) and returns a non-blocking
 * signalfd for them, or -1. SIGPIPE is ignored. */
int loop_signalfd_new(void);

/* Reads one pending signal from a signalfd: returns its number, or 0 when none. */
int loop_signalfd_read(int fd);

#endif
