/* event_loop — see event_loop.h. */
#include "event_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* The loop: just the epoll fd. */
struct event_loop {
    int epfd;
};

event_loop *event_loop_new(void)
{
    event_loop *loop = calloc(1, sizeof *loop);
    if (loop == NULL)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        free(loop);
        return NULL;
    }
    return loop;
}

void event_loop_free(event_loop *loop)
{
    if (loop == NULL)
        return;
    close(loop->epfd);
    free(loop);
}

static int ctl(event_loop *loop, int op, int fd, uint32_t events, loop_tag tag)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = ((uint64_t)tag << 32) | (uint32_t)fd;
    return epoll_ctl(loop->epfd, op, fd, &ev);
}

int event_loop_add(event_loop *loop, int fd, uint32_t events, loop_tag tag)
{
    if (ctl(loop, EPOLL_CTL_ADD, fd, events, tag) == 0)
        return 0;
    if (errno == EEXIST) /* curl reuses socket numbers: a stale registration is simply re-armed */
        return ctl(loop, EPOLL_CTL_MOD, fd, events, tag);
    return -1;
}

int event_loop_mod(event_loop *loop, int fd, uint32_t events, loop_tag tag)
{
    if (ctl(loop, EPOLL_CTL_MOD, fd, events, tag) == 0)
        return 0;
    if (errno == ENOENT)
        return ctl(loop, EPOLL_CTL_ADD, fd, events, tag);
    return -1;
}

int event_loop_del(event_loop *loop, int fd)
{
    if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) == 0 || errno == ENOENT || errno == EBADF)
        return 0;
    return -1;
}

int event_loop_wait(event_loop *loop, loop_event *out, int max, int timeout_ms)
{
    struct epoll_event evs[256];
    if (max > 256)
        max = 256;
    int n = epoll_wait(loop->epfd, evs, max, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        out[i].fd = (int)(uint32_t)(evs[i].data.u64 & 0xffffffffu);
        out[i].tag = (loop_tag)(evs[i].data.u64 >> 32);
        out[i].events = evs[i].events;
    }
    return n;
}

int loop_timerfd_new(void)
{
    return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
}

int loop_timerfd_arm(int fd, long long ms, long long interval_ms)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (ms >= 0) {
        long long ns = ms == 0 ? 1 : ms * 1000000LL;
        its.it_value.tv_sec = ns / 1000000000LL;
        its.it_value.tv_nsec = ns % 1000000000LL;
        its.it_interval.tv_sec = interval_ms / 1000;
        its.it_interval.tv_nsec = (interval_ms % 1000) * 1000000L;
    }
    return timerfd_settime(fd, 0, &its, NULL);
}

int loop_fd_drain(int fd)
{
    uint64_t value;
    int fired = 0;
    while (read(fd, &value, sizeof value) == (ssize_t)sizeof value)
        fired = 1;
    return fired;
}

int loop_signalfd_new(void)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

int loop_signalfd_read(int fd)
{
    struct signalfd_siginfo info;
    if (read(fd, &info, sizeof info) != (ssize_t)sizeof info)
        return 0;
    return (int)info.ssi_signo;
}
