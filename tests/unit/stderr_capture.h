/*
 * stderr_capture — for unit tests of code that logs: points stderr at a SOCK_SEQPACKET socket pair, so that each
 * write(2) arrives as one record and a test can read back exactly what was written, write by write.
 * Header-only (each unit test is one translation unit). stderr_capture_setup/teardown are cmocka group fixtures
 * that also start the log (service "test", level info).
 */
#ifndef HOOKD_TEST_STDERR_CAPTURE_H
#define HOOKD_TEST_STDERR_CAPTURE_H

#include "log.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

static int stderr_capture_reader = -1; /* the other end of stderr */
static int stderr_capture_saved = -1;  /* the real stderr */

/* Returns 0, or -1 when the socket pair cannot be made. */
static int stderr_capture_start(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0)
        return -1;
    stderr_capture_saved = dup(STDERR_FILENO);
    dup2(sv[0], STDERR_FILENO);
    close(sv[0]);
    stderr_capture_reader = sv[1];
    fcntl(stderr_capture_reader, F_SETFL, O_NONBLOCK);
    return 0;
}

static void stderr_capture_stop(void)
{
    dup2(stderr_capture_saved, STDERR_FILENO);
    close(stderr_capture_saved);
    close(stderr_capture_reader);
}

/* The next write(2) made to stderr, NUL-terminated in buf; -1 when there is none. */
static ssize_t stderr_capture_next(char *buf, size_t cap)
{
    ssize_t n = read(stderr_capture_reader, buf, cap - 1);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

static int stderr_capture_setup(void **state)
{
    (void)state;
    if (stderr_capture_start() != 0)
        return -1;
    return log_init("test", "info");
}

static int stderr_capture_teardown(void **state)
{
    (void)state;
    stderr_capture_stop();
    return 0;
}

#endif
