/*
 * curl_post — the bench's "libcurl alone" baseline: keeps CONNS HTTPS POSTs in flight against one URL for SECONDS
 * with libcurl's multi interface, the way curl's docs/examples/ephiperfifo.c drives it (epoll, socket and timer
 * callbacks, curl_multi_socket_action), reusing every easy handle and its keep-alive connection, and prints
 *
 *     CURLPOSTJSON {"requests": N, "ok": N, "failed": N, "duration_us": N}
 *
 * It sends what a dispatcher delivery sends (the same body and headers, a fixed signature instead of a computed
 * one) and nothing else: no Kafka, no Redis, no signing, no per-webhook bookkeeping. So the dispatch rows can
 * show how close the dispatcher comes to what libcurl itself can do on this machine, next to wrk's figure.
 *
 *     curl_post -u URL -c CONNS -s SECONDS -f BODYFILE -a CAFILE [-t THREADS] [-H "Name: value"]...
 *
 * THREADS (default 1) threads each run their own multi handle with CONNS/THREADS transfers. Bench tool only:
 * not part of hookd.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 16

typedef struct options {
    const char *url, *body_file, *ca_file;
    char *body;
    size_t body_len;
    int conns, threads;
    double seconds;
    const char *headers[MAX_HEADERS];
    int n_headers;
} options;

/* One thread's multi handle, epoll set and counters. */
typedef struct runner {
    const options *opt;
    int conns;
    pthread_t thread;
    int epfd;
    long timeout_ms; /* what libcurl last asked for (-1: none) */
    CURLM *multi;
    struct curl_slist *headers;
    uint64_t ok, failed;
} runner;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

/* CURLMOPT_SOCKETFUNCTION: mirror libcurl's interest into the epoll set. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    runner *r = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, s, NULL);
        curl_multi_assign(r->multi, s, NULL);
        return 0;
    }
    struct epoll_event ev = {.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u),
                             .data.fd = s};
    if (socketp == NULL) {
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST)
            epoll_ctl(r->epfd, EPOLL_CTL_MOD, s, &ev);
        curl_multi_assign(r->multi, s, r);
    } else if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT) {
        epoll_ctl(r->epfd, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: the next epoll_wait waits at most this long. */
static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    ((runner *)userp)->timeout_ms = timeout_ms;
    return 0;
}

static CURL *new_easy(runner *r)
{
    const options *o = r->opt;
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    return e;
}

static void *run(void *arg)
{
    runner *r = arg;
    const options *o = r->opt;
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    r->multi = curl_multi_init();
    r->timeout_ms = -1;
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r);
    curl_multi_setopt(r->multi, CURLMOPT_MAXCONNECTS, (long)r->conns);
    for (int i = 0; i < o->n_headers; i++)
        r->headers = curl_slist_append(r->headers, o->headers[i]);
    CURL **easies = calloc((size_t)r->conns, sizeof *easies);
    for (int i = 0; i < r->conns; i++) {
        easies[i] = new_easy(r);
        curl_multi_add_handle(r->multi, easies[i]);
    }
    int64_t end = now_us() + (int64_t)(o->seconds * 1e6);
    int running = 0;
    struct epoll_event evs[256];
    while (now_us() < end) {
        long wait = r->timeout_ms < 0 ? 100 : r->timeout_ms;
        int n = epoll_wait(r->epfd, evs, 256, (int)(wait > 100 ? 100 : wait));
        if (n <= 0) {
            curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        } else {
            for (int i = 0; i < n; i++) {
                int flags = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                            ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                            ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
                curl_multi_socket_action(r->multi, evs[i].data.fd, flags, &running);
            }
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(r->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            long status = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result == CURLE_OK && status >= 200 && status < 300)
                r->ok++;
            else
                r->failed++;
            curl_multi_remove_handle(r->multi, e);
            curl_multi_add_handle(r->multi, e); /* the next request, on the same kept-alive connection */
        }
        if (r->timeout_ms == 0)
            curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    for (int i = 0; i < r->conns; i++) {
        curl_multi_remove_handle(r->multi, easies[i]);
        curl_easy_cleanup(easies[i]);
    }
    free(easies);
    curl_multi_cleanup(r->multi);
    curl_slist_free_all(r->headers);
    close(r->epfd);
    return NULL;
}

static int read_body(options *o)
{
    FILE *f = fopen(o->body_file, "rb");
    if (f == NULL)
        return -1;
    size_t cap = 1 << 16;
    o->body = malloc(cap);
    o->body_len = fread(o->body, 1, cap - 1, f);
    o->body[o->body_len] = '\0';
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    options o = {.conns = 64, .threads = 1, .seconds = 5};
    int c;
    while ((c = getopt(argc, argv, "u:c:s:f:a:t:H:")) != -1) {
        switch (c) {
        case 'u': o.url = optarg; break;
        case 'c': o.conns = atoi(optarg); break;
        case 's': o.seconds = atof(optarg); break;
        case 'f': o.body_file = optarg; break;
        case 'a': o.ca_file = optarg; break;
        case 't': o.threads = atoi(optarg); break;
        case 'H':
            if (o.n_headers < MAX_HEADERS)
                o.headers[o.n_headers++] = optarg;
            break;
        default: return 2;
        }
    }
    if (o.url == NULL || o.body_file == NULL || o.ca_file == NULL || o.conns < 1 || o.threads < 1 ||
        o.threads > o.conns || read_body(&o) != 0) {
        fprintf(stderr, "usage: curl_post -u URL -c CONNS -s SECONDS -f BODYFILE -a CAFILE [-t THREADS] [-H h]...\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    runner *rs = calloc((size_t)o.threads, sizeof *rs);
    int64_t t0 = now_us();
    for (int i = 0; i < o.threads; i++) {
        rs[i].opt = &o;
        rs[i].conns = o.conns / o.threads + (i < o.conns % o.threads ? 1 : 0);
        pthread_create(&rs[i].thread, NULL, run, &rs[i]);
    }
    uint64_t ok = 0, failed = 0;
    for (int i = 0; i < o.threads; i++) {
        pthread_join(rs[i].thread, NULL);
        ok += rs[i].ok;
        failed += rs[i].failed;
    }
    int64_t dt = now_us() - t0;
    printf("CURLPOSTJSON {\"requests\": %llu, \"ok\": %llu, \"failed\": %llu, \"duration_us\": %lld}\n",
           (unsigned long long)(ok + failed), (unsigned long long)ok, (unsigned long long)failed, (long long)dt);
    free(rs);
    free(o.body);
    curl_global_cleanup();
    return 0;
}
