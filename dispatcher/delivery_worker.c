/* delivery_worker — see delivery_worker.h. Pattern: curl's docs/examples/ephiperfifo.c (epoll + timerfd). */
#include "delivery_worker.h"

#include "event_loop.h"
#include "first_contact.h"
#include "log.h"
#include "timeutil.h"
#include "tls_sessions.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define POOL_KEEP_MAX 4096       /* idle easy handles kept for reuse */
#define MULTI_MAX_IDLE_CONNS 4096

/* One attempt in progress, or an idle pooled easy handle. Owned by the worker. */
typedef struct transfer {
    CURL *easy;                    /* owned, configured once, reused */
    delivery_job *job;             /* the attempt it runs (the engine's), NULL while idle */
    delivery_http_attempt http;    /* per-attempt state (headers, SSRF flag, Retry-After, curl error) */
    int tls_shard;                 /* the TLS session shard easy is attached to, -1 for none yet */
    int scout_slot;                /* first_contact slot when the attempt is a receiver's scout, else -1 */
    struct transfer *prev, *next;  /* active list, or free list (next only) */
} transfer;

struct delivery_worker {
    unsigned index;
    pthread_t thread;
    int started;                   /* the thread runs (join it) */
    atomic_int stop;               /* set by delivery_worker_stop */
    const delivery_http_config *cfg; /* borrowed */
    job_queue *done;               /* borrowed: where finished jobs go */
    job_queue inbox;               /* jobs handed over by the engine */
    int inbox_fd;                  /* owned eventfd: the inbox turned non-empty, or stop */
    event_loop *loop;              /* owned */
    CURLM *multi;                  /* owned */
    int timer_fd;                  /* owned timerfd for CURLMOPT_TIMERFUNCTION */
    int64_t timer_armed_us;        /* monotonic deadline the timerfd is armed for, 0 when it is not armed */
    int timeout_now;               /* libcurl asked for a timeout of 0: run it at the end of this loop pass */
    transfer *active;              /* attempts in progress (doubly linked) */
    transfer *free_list;           /* idle transfers with configured easy handles */
    size_t free_count;
    delivery_job *out_head, *out_tail; /* jobs finished in this loop pass, pushed to done at its end */
    uint8_t *sock_state;           /* owned: per socket number, what the epoll set holds (SOCK_* bits) */
    size_t sock_state_len;
    signature_cache *signing_keys; /* owned: the webhooks' prepared signing keys (this thread's only) */
    tls_sessions *tls_sessions;    /* owned: resumable TLS sessions, shared by this thread's easy handles */
    first_contact *contacts;       /* owned: receivers met, and the jobs held while a scout meets a new one */
    delivery_http_session_log sessions; /* the TLS sessions this thread's connections kept (CURLOPT_SSL_CTX_DATA) */
};

/* What the worker's epoll set holds for one socket number, and whether libcurl currently wants it. */
enum {
    SOCK_IN = 1,         /* registered for EPOLLIN */
    SOCK_OUT = 2,        /* registered for EPOLLOUT */
    SOCK_REGISTERED = 4, /* in the epoll set */
    SOCK_WANTED = 8,     /* libcurl asked for it and has not removed it since */
    SOCK_OURS = 16,      /* a connection socket this worker opened (socket_opened) and will see closed */
};

/* The state byte of socket number fd, growing the table as needed; NULL when out of memory (callers then
 * fall back to plain epoll_ctl calls, which are always correct). */
static uint8_t *sock_state(delivery_worker *w, int fd)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= w->sock_state_len) {
        size_t len = w->sock_state_len ? w->sock_state_len : 256;
        while (len <= (size_t)fd)
            len *= 2;
        uint8_t *grown = realloc(w->sock_state, len);
        if (grown == NULL)
            return NULL;
        memset(grown + w->sock_state_len, 0, len - w->sock_state_len);
        w->sock_state = grown;
        w->sock_state_len = len;
    }
    return &w->sock_state[fd];
}

/* delivery_http_attempt.socket_opened: this worker's libcurl just created a connection socket. Whatever had
 * this number before was closed, and the kernel drops a closed socket from every epoll set. */
static void socket_opened(void *ctx, int fd)
{
    uint8_t *st = sock_state(ctx, fd);
    if (st != NULL)
        *st = SOCK_OURS;
}

/* CURLOPT_CLOSESOCKETFUNCTION: libcurl closes one of this worker's connection sockets (through the connection,
 * so whichever transfer or pool clean-up closes it; clientp is the worker, which outlives its multi handle). */
static int socket_close_cb(void *clientp, curl_socket_t fd)
{
    delivery_worker *w = clientp;
    if (fd >= 0 && (size_t)fd < w->sock_state_len)
        w->sock_state[fd] = 0;
    return close(fd);
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in a socket into the worker's epoll set.
 *
 * libcurl removes a keep-alive connection's socket when its transfer ends and asks for it again (EPOLLIN once
 * the request is written) with the next transfer on that connection: an EPOLL_CTL_DEL and an EPOLL_CTL_ADD per
 * delivery, two of the ~7 syscalls a delivery cost. So a removed connection socket is only "parked": it stays
 * in the epoll set for EPOLLIN and is marked unwanted, and when libcurl asks for the same interest again nothing
 * has to change. A parked socket that becomes readable (the receiver closed the idle connection, or sent
 * something unasked) is taken out of the set then (on_socket); libcurl finds out on its next use, as before.
 * Only sockets whose whole life this worker sees are parked: connection sockets, created through
 * socket_opened and closed through socket_close_cb, so a socket number's state is never stale. Anything else
 * libcurl watches (its resolver's socketpair) and any socket registered for EPOLLOUT (an idle socket is always
 * writable) is removed at once, as libcurl asks. */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    delivery_worker *w = userp;
    uint8_t *st = sock_state(w, s);
    if (what == CURL_POLL_REMOVE) {
        if (st != NULL && (*st & (SOCK_OURS | SOCK_REGISTERED | SOCK_OUT)) == (SOCK_OURS | SOCK_REGISTERED)) {
            *st &= (uint8_t)~SOCK_WANTED; /* parked */
            return 0;
        }
        event_loop_del(w->loop, s);
        if (st != NULL)
            *st = 0; /* not parkable, perhaps already closed (a connect attempt that lost): forget it all */
        return 0;
    }
    uint8_t want = (uint8_t)(((what & CURL_POLL_IN) ? SOCK_IN : 0) | ((what & CURL_POLL_OUT) ? SOCK_OUT : 0));
    if (st != NULL && (*st & SOCK_REGISTERED) && (*st & (SOCK_IN | SOCK_OUT)) == want) {
        *st |= SOCK_WANTED;
        return 0;
    }
    uint32_t events = ((want & SOCK_IN) ? EPOLLIN : 0) | ((want & SOCK_OUT) ? EPOLLOUT : 0);
    /* event_loop_mod falls back to an ADD and event_loop_add to a MOD: a wrong guess costs a syscall only */
    int rc = st != NULL && (*st & SOCK_REGISTERED) ? event_loop_mod(w->loop, s, events, LOOP_TAG_CURL_SOCKET)
                                                   : event_loop_add(w->loop, s, events, LOOP_TAG_CURL_SOCKET);
    if (rc != 0) {
        log_json(LOG_ERROR, "epoll_ctl failed for a curl socket", "{s:i, s:s}", "fd", (int)s, "error",
                 strerror(errno));
        if (st != NULL)
            *st = 0;
        return 0;
    }
    if (st != NULL)
        *st = (uint8_t)((*st & SOCK_OURS) | want | SOCK_REGISTERED | SOCK_WANTED);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION. libcurl calls it after nearly every socket action, mostly with a deadline no sooner
 * than the one already armed; a timerfd_settime() per call was 22 % of the dispatcher's CPU in the dispatch
 * benchmark (in a VM, programming a timer traps to the hypervisor). So the timerfd is only re-armed when the new
 * deadline is earlier than the armed one, and never disarmed: firing early is harmless (on_timer() lets libcurl
 * check its timeouts, and libcurl then asks for the deadline it really wants). A timeout of 0 (after every
 * curl_multi_add_handle()) needs no timer at all: it is run at the end of the loop pass (run_pending); that was
 * another 22 % in timerfd_settime(). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    delivery_worker *w = userp;
    if (timeout_ms < 0)
        return 0; /* "no timeout": an armed timer may still fire once, harmlessly */
    if (timeout_ms == 0) {
        w->timeout_now = 1;
        return 0;
    }
    int64_t deadline = time_monotonic_us() + (int64_t)timeout_ms * 1000;
    if (w->timer_armed_us != 0 && w->timer_armed_us <= deadline)
        return 0; /* a wake-up at or before it is already armed */
    if (loop_timerfd_arm(w->timer_fd, timeout_ms, 0) == 0)
        w->timer_armed_us = deadline;
    return 0;
}

static void transfer_destroy(transfer *t)
{
    curl_easy_cleanup(t->easy);
    free(t);
}

/* A transfer with a configured easy handle: from the pool, or new. NULL on failure. */
static transfer *transfer_get(delivery_worker *w)
{
    transfer *t = w->free_list;
    if (t != NULL) {
        w->free_list = t->next;
        w->free_count--;
        return t;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL || (t->easy = curl_easy_init()) == NULL) {
        free(t);
        return NULL;
    }
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    t->tls_shard = -1;
    t->scout_slot = -1;
    delivery_http_easy_setup(t->easy, w->cfg, &t->http);
    t->http.socket_opened = socket_opened;
    t->http.socket_opened_ctx = w;
    t->http.signing_keys = w->signing_keys;
    curl_easy_setopt(t->easy, CURLOPT_CLOSESOCKETFUNCTION, socket_close_cb);
    curl_easy_setopt(t->easy, CURLOPT_CLOSESOCKETDATA, w);
    curl_easy_setopt(t->easy, CURLOPT_SSL_CTX_DATA, &w->sessions); /* outlives every connection: see worker_free */
    return t;
}

/* Returns a finished transfer to the pool (or frees it when the pool is full). */
static void transfer_put(delivery_worker *w, transfer *t)
{
    t->http.headers = NULL;
    t->job = NULL;
    if (w->free_count >= POOL_KEEP_MAX) {
        transfer_destroy(t);
        return;
    }
    t->prev = NULL;
    t->next = w->free_list;
    w->free_list = t;
    w->free_count++;
}

/* Queues a finished job for this pass's push to the done queue. */
static void job_finished(delivery_worker *w, delivery_job *job)
{
    job_chain_append(&w->out_head, &w->out_tail, job);
}

/* A job that never went out: a failed attempt with no response. */
static void job_not_started(delivery_worker *w, delivery_job *job, const char *why)
{
    log_json(LOG_ERROR, "delivery could not be started", "{s:I, s:s}", "webhook_id",
             (json_int_t)job->req.webhook_id, "error", why);
    delivery_http_result *r = &job->result;
    memset(r, 0, sizeof *r);
    r->outcome = DELIVERY_HTTP_NETWORK_ERROR;
    r->started_at_ms = time_now_ms();
    r->timestamp = r->started_at_ms / 1000;
    r->retry_after_ms = -1;
    snprintf(r->error, sizeof r->error, "delivery could not be started: %s", why);
    job_finished(w, job);
}

static void launch(delivery_worker *w, delivery_job *job, uint64_t authority_key, int scout_slot);

/* Launches the jobs first_contact released (a chain linked by next; their receiver is known now). */
static void launch_released(delivery_worker *w, delivery_job *job)
{
    while (job != NULL) {
        delivery_job *next = job->next;
        launch(w, job, delivery_http_authority_key(job->req.url), -1);
        job = next;
    }
}

/* A scout's attempt ended (or never started): its receiver's held jobs go. */
static void scout_done(delivery_worker *w, int scout_slot)
{
    if (scout_slot >= 0)
        launch_released(w, first_contact_scout_done(w->contacts, scout_slot));
}

/* Adds job's transfer to libcurl; authority_key is its URL's (delivery_http_authority_key), scout_slot >= 0 when
 * it is a receiver's scout (first_contact.h). */
static void launch(delivery_worker *w, delivery_job *job, uint64_t authority_key, int scout_slot)
{
    transfer *t = transfer_get(w);
    if (t == NULL) {
        job_not_started(w, job, "out of memory");
        scout_done(w, scout_slot);
        return;
    }
    const delivery_request *req = &job->req;
    delivery_http_request hreq = {req->url, req->secret, req->previous_secret, req->event_id, req->body,
                                  req->body_len, job->http1_only};
    char err[128];
    tls_sessions_attach(w->tls_sessions, t->easy, tls_sessions_shard(authority_key), &t->tls_shard); /* -1: own */
    if (delivery_http_begin(t->easy, &t->http, &hreq, err, sizeof err) != 0) {
        transfer_put(w, t);
        job_not_started(w, job, err);
        scout_done(w, scout_slot);
        return;
    }
    CURLMcode rc = curl_multi_add_handle(w->multi, t->easy);
    if (rc != CURLM_OK) {
        transfer_put(w, t);
        job_not_started(w, job, curl_multi_strerror(rc));
        scout_done(w, scout_slot);
        return;
    }
    t->job = job;
    t->scout_slot = scout_slot;
    t->prev = NULL;
    t->next = w->active;
    if (w->active != NULL)
        w->active->prev = t;
    w->active = t;
}

/* Starts job now, as a new receiver's scout, or holds it while that receiver's scout is out (first_contact.h). */
static void start_job(delivery_worker *w, delivery_job *job)
{
    int slot = -1;
    uint64_t key = delivery_http_authority_key(job->req.url);
    switch (first_contact_admit(w->contacts, key, job, time_monotonic_us(), &slot)) {
    case FIRST_CONTACT_HELD:
        return;
    case FIRST_CONTACT_SCOUT:
        launch(w, job, key, slot);
        return;
    case FIRST_CONTACT_GO:
    default:
        launch(w, job, key, -1);
        return;
    }
}

/* Turns one finished transfer into its job's result and recycles the handle. */
static void finish(delivery_worker *w, transfer *t, CURLcode code)
{
    curl_multi_remove_handle(w->multi, t->easy);
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        w->active = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    delivery_job *job = t->job;
    int scout_slot = t->scout_slot;
    t->scout_slot = -1;
    delivery_http_finish(t->easy, &t->http, code, &job->result);
    transfer_put(w, t);
    job_finished(w, job);
    scout_done(w, scout_slot);
}

/* Collects every finished transfer. */
static void check_done(delivery_worker *w)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        transfer *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        finish(w, t, msg->data.result);
    }
}

static void on_socket(delivery_worker *w, int fd, unsigned events)
{
    if (fd >= 0 && (size_t)fd < w->sock_state_len && (w->sock_state[fd] & SOCK_REGISTERED) &&
        !(w->sock_state[fd] & SOCK_WANTED)) {
        event_loop_del(w->loop, fd); /* a parked socket stirred: libcurl does not watch it, so stop watching */
        w->sock_state[fd] &= SOCK_OURS;
        return;
    }
    int flags = 0, running = 0;
    if (events & EPOLLIN)
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP))
        flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(w->multi, fd, flags, &running);
    check_done(w);
}

static void on_timer(delivery_worker *w)
{
    int running = 0;
    loop_fd_drain(w->timer_fd);
    w->timer_armed_us = 0; /* a one-shot timerfd is disarmed once it fired */
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(w);
}

/* Runs what libcurl asked to run "now" (after every new transfer) once per loop pass. */
static void run_pending(delivery_worker *w)
{
    if (!w->timeout_now)
        return;
    int running = 0;
    w->timeout_now = 0;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(w); /* asked for "now" again: the next pass runs it without sleeping */
}

static void on_inbox(delivery_worker *w)
{
    delivery_job *job = job_queue_take(&w->inbox);
    while (job != NULL) {
        delivery_job *next = job->next;
        start_job(w, job);
        job = next;
    }
}

/* How long the loop may sleep: not past the next first-contact hold deadline (at least 1 ms), nor 1 s. */
static int wait_ms(const delivery_worker *w)
{
    if (w->timeout_now)
        return 0;
    if (first_contact_holding(w->contacts) == 0)
        return 1000;
    int64_t left_us = first_contact_next_deadline(w->contacts) - time_monotonic_us();
    return left_us <= 1000 ? 1 : left_us >= 1000000 ? 1000 : (int)((left_us + 999) / 1000);
}

static void *worker_main(void *arg)
{
    delivery_worker *w = arg;
    loop_event evs[256];
    while (!atomic_load(&w->stop)) {
        int n = event_loop_wait(w->loop, evs, 256, wait_ms(w));
        for (int i = 0; i < n; i++) {
            switch (evs[i].tag) {
            case LOOP_TAG_CURL_SOCKET:
                on_socket(w, evs[i].fd, evs[i].events);
                break;
            case LOOP_TAG_CURL_TIMER:
                on_timer(w);
                break;
            case LOOP_TAG_DELIVERY_INBOX:
                on_inbox(w);
                break;
            default:
                break;
            }
        }
        if (first_contact_holding(w->contacts) > 0) /* a session came in, or a hold ran out */
            launch_released(w, first_contact_release_due(w->contacts, time_monotonic_us(), &w->sessions));
        run_pending(w);
        if (w->out_head != NULL) {
            job_queue_push(w->done, w->out_head, w->out_tail);
            w->out_head = w->out_tail = NULL;
        }
    }
    return NULL;
}

/* Frees what the worker owns (the thread has ended or never started). */
static void worker_free(delivery_worker *w)
{
    while (w->active != NULL) {
        transfer *t = w->active;
        w->active = t->next;
        curl_multi_remove_handle(w->multi, t->easy);
        transfer_destroy(t);
    }
    while (w->free_list != NULL) {
        transfer *t = w->free_list;
        w->free_list = t->next;
        transfer_destroy(t);
    }
    if (w->multi != NULL)
        curl_multi_cleanup(w->multi);
    tls_sessions_free(w->tls_sessions); /* after every easy handle attached to it */
    first_contact_free(w->contacts);    /* after the multi handle: no connection logs to w->sessions any more */
    if (w->timer_fd >= 0)
        close(w->timer_fd);
    if (w->inbox_fd >= 0) {
        job_queue_destroy(&w->inbox);
        close(w->inbox_fd);
    }
    event_loop_free(w->loop);
    free(w->sock_state);
    signature_cache_free(w->signing_keys);
    free(w);
}

delivery_worker *delivery_worker_start(unsigned index, const delivery_http_config *cfg, job_queue *done,
                                       char *errbuf, size_t errlen)
{
    delivery_worker *w = calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    w->index = index;
    w->cfg = cfg;
    w->done = done;
    w->timer_fd = -1;
    w->inbox_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->inbox_fd >= 0 && job_queue_init(&w->inbox, w->inbox_fd) != 0) {
        close(w->inbox_fd);
        w->inbox_fd = -1;
    }
    w->loop = event_loop_new();
    w->multi = curl_multi_init();
    w->timer_fd = loop_timerfd_new();
    w->signing_keys = signature_cache_new(); /* used only by the worker's thread once it runs */
    w->tls_sessions = tls_sessions_new();    /* likewise */
    w->contacts = first_contact_new();       /* likewise */
    if (w->inbox_fd < 0 || w->loop == NULL || w->multi == NULL || w->timer_fd < 0 || w->signing_keys == NULL ||
        w->tls_sessions == NULL || w->contacts == NULL ||
        event_loop_add(w->loop, w->timer_fd, EPOLLIN, LOOP_TAG_CURL_TIMER) != 0 ||
        event_loop_add(w->loop, w->inbox_fd, EPOLLIN, LOOP_TAG_DELIVERY_INBOX) != 0) {
        snprintf(errbuf, errlen, "cannot set up delivery worker %u: %s", index, strerror(errno));
        worker_free(w);
        return NULL;
    }
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)MULTI_MAX_IDLE_CONNS);
    /* No CURLMOPT_MAX_HOST_CONNECTIONS: transfers queued by that cap would spend their DELIVERY_TIMEOUT
     * waiting. Consequence: a burst to an HTTP/2 receiver that arrives before its first connection is up opens
     * extra connections; once one is established, transfers multiplex on it (PIPEWAIT). */
    curl_multi_setopt(w->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 250L);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        snprintf(errbuf, errlen, "cannot start delivery worker %u: %s", index, strerror(rc));
        worker_free(w);
        return NULL;
    }
    w->started = 1;
    char name[16];
    snprintf(name, sizeof name, "delivery-%u", index);
    pthread_setname_np(w->thread, name);
    return w;
}

void delivery_worker_submit(delivery_worker *w, delivery_job *first, delivery_job *last)
{
    job_queue_push(&w->inbox, first, last);
}

void delivery_worker_stop(delivery_worker *w)
{
    if (w == NULL)
        return;
    if (w->started) {
        atomic_store(&w->stop, 1);
        uint64_t one = 1;
        ssize_t ignored = write(w->inbox_fd, &one, sizeof one);
        (void)ignored;
        pthread_join(w->thread, NULL);
    }
    worker_free(w);
}
