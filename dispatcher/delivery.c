/* delivery — see delivery.h. Per-attempt HTTP: common/delivery_http.c. Pattern: curl's docs/examples/ephiperfifo.c (epoll + timerfd). */
#include "delivery.h"

#include "delivery_http.h"
#include "http1_fallback.h"
#include "log.h"
#include "timeutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define POOL_KEEP_MAX 4096       /* idle easy handles kept for reuse */
#define MULTI_MAX_IDLE_CONNS 4096

/* One attempt in progress, or an idle pooled easy handle. Owned by the engine. */
typedef struct transfer {
    CURL *easy;                    /* owned, configured once, reused */
    struct delivery_engine *eng;   /* back pointer */
    delivery_request req;          /* borrowed strings, see delivery.h */
    delivery_http_attempt http;    /* per-attempt state (headers, SSRF flag, Retry-After, curl error) */
    struct transfer *prev, *next;  /* active list, or free list (next only) */
} transfer;

/* The engine: one multi handle on the dispatcher's loop. */
struct delivery_engine {
    CURLM *multi;                  /* owned */
    event_loop *loop;              /* borrowed */
    int timer_fd;                  /* owned timerfd for CURLMOPT_TIMERFUNCTION */
    int64_t timer_armed_us;        /* monotonic deadline the timerfd is armed for, 0 when it is not armed */
    int timeout_now;               /* libcurl asked for a timeout of 0: run it at the end of this loop pass */
    delivery_options opts;
    delivery_http_config http;     /* points at ca_bundle */
    char ca_bundle[64];            /* temp file: system bundle + RECEIVER_CA_FILE ("" when unused), unlinked at free */
    delivery_done_fn done;
    void *ctx;
    transfer *active;              /* attempts in progress (doubly linked) */
    size_t active_count;
    transfer *free_list;           /* idle transfers with configured easy handles */
    size_t free_count;
    http1_fallback *http1;         /* owned: webhooks delivered over HTTP/1.1 for now */
};

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in a socket into the epoll set. */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    delivery_engine *eng = userp;
    if (what == CURL_POLL_REMOVE) {
        event_loop_del(eng->loop, s);
        return 0;
    }
    uint32_t events = 0;
    if (what & CURL_POLL_IN)
        events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        events |= EPOLLOUT;
    if (event_loop_mod(eng->loop, s, events, LOOP_TAG_CURL_SOCKET) != 0)
        log_json(LOG_ERROR, "epoll_ctl failed for a curl socket", "{s:i, s:s}", "fd", (int)s, "error",
                 strerror(errno));
    return 0;
}

/* CURLMOPT_TIMERFUNCTION. libcurl calls it after nearly every socket action, mostly with a deadline no sooner
 * than the one already armed; a timerfd_settime() per call was 22 % of the dispatcher's CPU in the dispatch
 * benchmark (in a VM, programming a timer traps to the hypervisor). So the timerfd is only re-armed when the new
 * deadline is earlier than the armed one, and never disarmed: firing early is harmless (delivery_on_timer() lets
 * libcurl check its timeouts, and libcurl then asks for the deadline it really wants). A timeout of 0 (after
 * every curl_multi_add_handle()) needs no timer at all: it is run by delivery_run_pending() at the end of the
 * loop pass; that was another 22 % in timerfd_settime(). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    delivery_engine *eng = userp;
    if (timeout_ms < 0)
        return 0; /* "no timeout": an armed timer may still fire once, harmlessly */
    if (timeout_ms == 0) {
        eng->timeout_now = 1;
        return 0;
    }
    int64_t deadline = time_monotonic_us() + (int64_t)timeout_ms * 1000;
    if (eng->timer_armed_us != 0 && eng->timer_armed_us <= deadline)
        return 0; /* a wake-up at or before it is already armed */
    if (loop_timerfd_arm(eng->timer_fd, timeout_ms, 0) == 0)
        eng->timer_armed_us = deadline;
    return 0;
}

delivery_engine *delivery_engine_new(event_loop *loop, const delivery_options *opts, delivery_done_fn done,
                                     void *ctx, char *errbuf, size_t errlen)
{
    delivery_engine *eng = calloc(1, sizeof *eng);
    if (eng == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    eng->loop = loop;
    eng->opts = *opts;
    eng->opts.ca_file = NULL; /* not retained; the bundle path is */
    eng->done = done;
    eng->ctx = ctx;
    eng->timer_fd = -1;
    if (opts->ca_file != NULL && opts->ca_file[0] != '\0' &&
        delivery_http_ca_bundle_create(opts->ca_file, eng->ca_bundle, sizeof eng->ca_bundle, errbuf, errlen) != 0)
        goto err;
    eng->http.timeout_ms = opts->timeout_ms;
    eng->http.allow_private = opts->allow_private;
    eng->http.ca_bundle = eng->ca_bundle[0] != '\0' ? eng->ca_bundle : NULL;
    eng->http.user_agent = NULL;
    eng->http1 = http1_fallback_new();
    eng->multi = curl_multi_init();
    eng->timer_fd = loop_timerfd_new();
    if (eng->http1 == NULL || eng->multi == NULL || eng->timer_fd < 0 ||
        event_loop_add(loop, eng->timer_fd, EPOLLIN, LOOP_TAG_CURL_TIMER) != 0) {
        snprintf(errbuf, errlen, "cannot set up the curl multi handle: %s", strerror(errno));
        goto err;
    }
    curl_multi_setopt(eng->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(eng->multi, CURLMOPT_SOCKETDATA, eng);
    curl_multi_setopt(eng->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(eng->multi, CURLMOPT_TIMERDATA, eng);
    curl_multi_setopt(eng->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(eng->multi, CURLMOPT_MAXCONNECTS, (long)MULTI_MAX_IDLE_CONNS);
    /* No CURLMOPT_MAX_HOST_CONNECTIONS: transfers queued by that cap would spend their DELIVERY_TIMEOUT
     * waiting. Consequence: a burst to an HTTP/2 receiver that arrives before its first connection is up opens
     * extra connections; once one is established, transfers multiplex on it (PIPEWAIT). */
    curl_multi_setopt(eng->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 250L);
    return eng;
err:
    delivery_engine_free(eng);
    return NULL;
}

static void transfer_destroy(transfer *t)
{
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->http.headers);
    free(t);
}

void delivery_engine_free(delivery_engine *eng)
{
    if (eng == NULL)
        return;
    while (eng->active != NULL) {
        transfer *t = eng->active;
        eng->active = t->next;
        curl_multi_remove_handle(eng->multi, t->easy);
        transfer_destroy(t);
    }
    while (eng->free_list != NULL) {
        transfer *t = eng->free_list;
        eng->free_list = t->next;
        transfer_destroy(t);
    }
    if (eng->multi != NULL)
        curl_multi_cleanup(eng->multi);
    if (eng->timer_fd >= 0) {
        event_loop_del(eng->loop, eng->timer_fd);
        close(eng->timer_fd);
    }
    if (eng->ca_bundle[0] != '\0')
        unlink(eng->ca_bundle);
    http1_fallback_free(eng->http1);
    free(eng);
}

/* A transfer with a configured easy handle: from the pool, or new. NULL on failure. */
static transfer *transfer_get(delivery_engine *eng)
{
    transfer *t = eng->free_list;
    if (t != NULL) {
        eng->free_list = t->next;
        eng->free_count--;
        return t;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL || (t->easy = curl_easy_init()) == NULL) {
        free(t);
        return NULL;
    }
    t->eng = eng;
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    delivery_http_easy_setup(t->easy, &eng->http, &t->http);
    return t;
}

/* Returns a finished transfer to the pool (or frees it when the pool is full). */
static void transfer_put(delivery_engine *eng, transfer *t)
{
    curl_slist_free_all(t->http.headers);
    t->http.headers = NULL;
    memset(&t->req, 0, sizeof t->req);
    if (eng->free_count >= POOL_KEEP_MAX) {
        transfer_destroy(t);
        return;
    }
    t->prev = NULL;
    t->next = eng->free_list;
    eng->free_list = t;
    eng->free_count++;
}

int delivery_start(delivery_engine *eng, const delivery_request *req)
{
    transfer *t = transfer_get(eng);
    if (t == NULL)
        return -1;
    t->req = *req;
    delivery_http_request hreq = {req->url, req->secret, req->previous_secret, req->event_id, req->body,
                                  req->body_len, http1_fallback_active(eng->http1, req->webhook_id, time_monotonic_us() / 1000)};
    char err[128];
    if (delivery_http_begin(t->easy, &t->http, &hreq, err, sizeof err) != 0) {
        log_json(LOG_ERROR, "delivery could not be started", "{s:I, s:s}", "webhook_id", (json_int_t)req->webhook_id,
                 "error", err);
        transfer_put(eng, t);
        return -1;
    }
    CURLMcode rc = curl_multi_add_handle(eng->multi, t->easy);
    if (rc != CURLM_OK) {
        log_json(LOG_ERROR, "curl_multi_add_handle failed", "{s:s}", "error", curl_multi_strerror(rc));
        transfer_put(eng, t);
        return -1;
    }
    t->prev = NULL;
    t->next = eng->active;
    if (eng->active != NULL)
        eng->active->prev = t;
    eng->active = t;
    eng->active_count++;
    return 0;
}

/* Turns one finished transfer into a result, calls back, recycles the handle. */
static void finish(delivery_engine *eng, transfer *t, CURLcode code)
{
    curl_multi_remove_handle(eng->multi, t->easy);
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        eng->active = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    eng->active_count--;

    delivery_http_result hres;
    delivery_http_finish(t->easy, &t->http, code, &hres);
    if (hres.http2_reset && http1_fallback_mark(eng->http1, t->req.webhook_id, time_monotonic_us() / 1000))
        log_json(LOG_WARN, "receiver reset an HTTP/2 stream; delivering over HTTP/1.1 for an hour", "{s:I, s:s}",
                 "webhook_id", (json_int_t)t->req.webhook_id, "url", t->req.url);
    delivery_result res;
    memset(&res, 0, sizeof res);
    res.ok = hres.ok;
    res.outcome = (dm_outcome)hres.outcome;
    res.status = hres.status;
    res.latency_ms = hres.latency_ms;
    res.error = hres.ok ? NULL : hres.error;
    res.timestamp = hres.timestamp;
    res.retry_after_ms = hres.retry_after_ms;
    res.started_at_ms = hres.started_at_ms;
    delivery_request req = t->req;
    transfer_put(eng, t);
    eng->done(eng->ctx, &req, &res);
}

/* Collects every finished transfer. */
static void check_done(delivery_engine *eng)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(eng->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        transfer *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        finish(eng, t, msg->data.result);
    }
}

void delivery_on_socket(delivery_engine *eng, int fd, unsigned events)
{
    int flags = 0, running = 0;
    if (events & EPOLLIN)
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP))
        flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(eng->multi, fd, flags, &running);
    check_done(eng);
}

void delivery_on_timer(delivery_engine *eng)
{
    int running = 0;
    loop_fd_drain(eng->timer_fd);
    eng->timer_armed_us = 0; /* a one-shot timerfd is disarmed once it fired */
    curl_multi_socket_action(eng->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(eng);
}

int delivery_run_pending(delivery_engine *eng)
{
    if (!eng->timeout_now)
        return 0;
    int running = 0;
    eng->timeout_now = 0;
    curl_multi_socket_action(eng->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(eng);
    return eng->timeout_now;
}

size_t delivery_active(const delivery_engine *eng)
{
    return eng->active_count;
}
