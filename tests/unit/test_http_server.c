/* Unit tests for common/http_server.c: suspended requests resumed from another thread and from the loop's own
 * thread (through the notify descriptor, the way producer-api serves Kafka delivery reports), over real sockets
 * on 127.0.0.1. */
#include "http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* What the handlers saw; written by the loop thread and the resuming thread, read by the test after the reply. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static api_request *suspended;   /* the request waiting for a resume */
static pthread_t dispatch_thread; /* the loop thread that ran dispatch */
static pthread_t notify_thread;   /* the thread on_notify ran on */
static int notify_calls;
static int notify_fd = -1;
static int resume_from_thread;    /* 1: dispatch starts a thread that resumes; 0: it writes notify_fd */

static int resume_handler(api_request *req, api_reply *reply)
{
    (void)req;
    api_reply_json(reply, 202, json_pack("{s:b}", "resumed", 1));
    return API_DONE;
}

static void *resume_later(void *arg)
{
    usleep(20 * 1000);
    api_request_resume(arg);
    return NULL;
}

static int dispatch(api_request *req, api_reply *reply)
{
    if (strcmp(req->path, "/real") == 0) { /* a fractional number as the delivery log stores it */
        api_reply_json(reply, 200, json_pack("{s:f}", "latency_ms", 43.4));
        return API_DONE;
    }
    if (strcmp(req->path, "/suspend") != 0) {
        api_reply_message(reply, 404, "not found");
        return API_DONE;
    }
    pthread_mutex_lock(&seen_lock);
    dispatch_thread = pthread_self();
    suspended = req;
    pthread_mutex_unlock(&seen_lock);
    req->resume_handler = resume_handler;
    api_request_suspend(req);
    if (resume_from_thread) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, resume_later, req), 0);
        pthread_detach(t);
    } else {
        uint64_t one = 1;
        assert_int_equal(write(notify_fd, &one, sizeof one), (ssize_t)sizeof one); /* "a report arrived" */
    }
    return API_SUSPENDED;
}

/* Like producer-api's report serving: read the descriptor, then resume the waiting request on this thread. */
static void on_notify(void *arg)
{
    int fd = *(int *)arg;
    uint64_t count;
    ssize_t n = read(fd, &count, sizeof count);
    (void)n;
    pthread_mutex_lock(&seen_lock);
    notify_thread = pthread_self();
    notify_calls++;
    api_request *req = suspended;
    suspended = NULL;
    pthread_mutex_unlock(&seen_lock);
    if (req != NULL)
        api_request_resume(req);
}

static size_t body_limit(const char *method, const char *path)
{
    (void)method;
    (void)path;
    return 1024;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return ntohs(addr.sin_port);
}

static http_server *start(int threads, int with_notify, int *port)
{
    char addr[64], errbuf[256];
    *port = free_port();
    snprintf(addr, sizeof addr, "127.0.0.1:%d", *port);
    http_server_config config = {
        .listen_addr = addr,
        .threads = threads,
        .dispatch = dispatch,
        .body_limit = body_limit,
    };
    if (with_notify) {
        config.notify_fd = notify_fd;
        config.on_notify = on_notify;
        config.notify_arg = &notify_fd;
    }
    http_server *server = http_server_start(&config, errbuf, sizeof errbuf);
    if (server == NULL)
        fail_msg("http_server_start: %s", errbuf);
    return server;
}

/* Sends `GET path` on a fresh connection and returns the reply's status (0 when none came within 5 s); the reply
 * text goes into out. */
static int request_path(int port, const char *path, char *out, size_t out_len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval timeout = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    char text[256];
    snprintf(text, sizeof text, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(send(fd, text, strlen(text), 0), (ssize_t)strlen(text));
    size_t got = 0;
    ssize_t n;
    while (got + 1 < out_len && (n = recv(fd, out + got, out_len - 1 - got, 0)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fd);
    int status = 0;
    if (sscanf(out, "HTTP/1.1 %d", &status) != 1)
        return 0;
    return status;
}

static int request(int port, char *out, size_t out_len)
{
    return request_path(port, "/suspend", out, out_len);
}

static void reset_seen(int from_thread)
{
    pthread_mutex_lock(&seen_lock);
    suspended = NULL;
    notify_calls = 0;
    resume_from_thread = from_thread;
    pthread_mutex_unlock(&seen_lock);
}

static void test_request_resumed_from_another_thread_is_answered(void **state)
{
    (void)state;
    reset_seen(1);
    int port;
    http_server *server = start(2, 0, &port);
    char reply[2048];
    assert_int_equal(request(port, reply, sizeof reply), 202);
    assert_non_null(strstr(reply, "\"resumed\":true"));
    http_server_stop(server, 1000, NULL, NULL);
}

/* Starts a server of `threads` loops watching a fresh notify eventfd, sends `requests` requests one after the
 * other (each resumed from on_notify), checks each is answered 202 and that on_notify ran once per request. */
static void serve_notified_requests(int threads, int requests)
{
    reset_seen(0);
    notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert_true(notify_fd >= 0);
    int port;
    http_server *server = start(threads, 1, &port);
    char reply[2048];
    for (int i = 0; i < requests; i++) {
        assert_int_equal(request(port, reply, sizeof reply), 202);
        assert_non_null(strstr(reply, "\"resumed\":true"));
    }
    http_server_stop(server, 1000, NULL, NULL);
    close(notify_fd);
    notify_fd = -1;
    pthread_mutex_lock(&seen_lock);
    assert_int_equal(notify_calls, requests);
    pthread_mutex_unlock(&seen_lock);
}

/* The notify descriptor's function runs on the loop thread, and a request it resumes there is answered at the end
 * of the loop's batch of events without any wake-up (no eventfd is written for it): a build that only served
 * resumes on the wake-up leaves these requests waiting, and no reply comes. */
static void test_notify_runs_on_the_loop_and_its_resume_is_answered(void **state)
{
    (void)state;
    serve_notified_requests(1, 3);
    pthread_mutex_lock(&seen_lock);
    assert_true(pthread_equal(notify_thread, dispatch_thread));
    pthread_mutex_unlock(&seen_lock);
}

/* With several loops the notify descriptor is watched by one of them; requests of the other loops are resumed
 * from it through their wake-ups, so every one is answered whichever loop accepted it. */
static void test_notify_resumes_requests_of_every_loop(void **state)
{
    (void)state;
    serve_notified_requests(4, 20);
}

/* JSON replies print reals with 15 significant digits: the delivery log's latency_ms 43.4 came out as jansson's
 * default 17, 43.399999999999999. */
static void test_reply_prints_reals_short(void **state)
{
    (void)state;
    int port;
    http_server *server = start(1, 0, &port);
    char reply[4096];
    assert_int_equal(request_path(port, "/real", reply, sizeof reply), 200);
    assert_non_null(strstr(reply, "{\"latency_ms\":43.4}"));
    http_server_stop(server, 1000, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_resumed_from_another_thread_is_answered),
        cmocka_unit_test(test_notify_runs_on_the_loop_and_its_resume_is_answered),
        cmocka_unit_test(test_notify_resumes_requests_of_every_loop),
        cmocka_unit_test(test_reply_prints_reals_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
