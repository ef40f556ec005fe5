/* delivery — see delivery.h. Pattern: curl's docs/examples/ephiperfifo.c (epoll + timerfd). */
#include "delivery.h"

#include "log.h"
#include "signature.h"
#include "timeutil.h"
#include "url_guard.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESPONSE_KEEP_MAX 0      /* response bodies are counted and dropped */
#define POOL_KEEP_MAX 4096       /* idle easy handles kept for reuse */
#define MULTI_MAX_IDLE_CONNS 4096
#define SYSTEM_CA_FALLBACK "/etc/ssl/certs/ca-certificates.crt"

/* One attempt in progress, or an idle pooled easy handle. Owned by the engine. */
typedef struct transfer {
    CURL *easy;                    /* owned, configured once, reused */
    struct delivery_engine *eng;   /* back pointer */
    delivery_request req;          /* borrowed strings, see delivery.h */
    struct curl_slist *headers;    /* owned per attempt */
    int64_t start_us;              /* monotonic start of the attempt */
    long long timestamp;           /* webhook-timestamp sent */
    int forbidden;                 /* the open-socket callback refused an address */
    size_t response_bytes;         /* body bytes received (and dropped) */
    char errbuf[CURL_ERROR_SIZE];  /* curl's detailed error text */
    struct transfer *prev, *next;  /* active list, or free list (next only) */
} transfer;

/* The engine: one multi handle on the dispatcher's loop. */
struct delivery_engine {
    CURLM *multi;                  /* owned */
    event_loop *loop;              /* borrowed */
    int timer_fd;                  /* owned timerfd for CURLMOPT_TIMERFUNCTION */
    delivery_options opts;
    char ca_bundle[64];            /* temp file: system bundle + RECEIVER_CA_FILE ("" when unused), unlinked at free */
    const char *system_bundle;     /* libcurl's default CA file (static string) */
    delivery_done_fn done;
    void *ctx;
    transfer *active;              /* attempts in progress (doubly linked) */
    size_t active_count;
    transfer *free_list;           /* idle transfers with configured easy handles */
    size_t free_count;
    char user_agent[64];
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

/* CURLMOPT_TIMERFUNCTION: (re)arm or disarm the timerfd. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    delivery_engine *eng = userp;
    loop_timerfd_arm(eng->timer_fd, timeout_ms, 0);
    return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: the SSRF guard at connect time, after DNS, for every address curl tries. */
static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
    transfer *t = clientp;
    (void)purpose;
    if (!t->eng->opts.allow_private && url_guard_address_forbidden(&address->addr)) {
        t->forbidden = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

/* CURLOPT_WRITEFUNCTION: count the response body and drop it. */
static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    transfer *t = userdata;
    t->response_bytes += size * nmemb;
    return size * nmemb;
}

/* Builds the concatenated CA bundle (system bundle + extra) in a temp file. Returns 0 or -1 with errbuf. */
static int build_ca_bundle(delivery_engine *eng, const char *extra, char *errbuf, size_t errlen)
{
    const char *system_bundle = eng->system_bundle;
    FILE *in_extra = fopen(extra, "rb");
    if (in_extra == NULL) {
        snprintf(errbuf, errlen, "RECEIVER_CA_FILE %s: %s", extra, strerror(errno));
        return -1;
    }
    snprintf(eng->ca_bundle, sizeof eng->ca_bundle, "/tmp/hookd-ca-XXXXXX");
    int fd = mkstemp(eng->ca_bundle);
    FILE *out = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (out == NULL) {
        snprintf(errbuf, errlen, "cannot create the CA bundle temp file: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        fclose(in_extra);
        eng->ca_bundle[0] = '\0';
        return -1;
    }
    char buf[8192];
    size_t n;
    FILE *in_system = fopen(system_bundle, "rb");
    if (in_system != NULL) {
        while ((n = fread(buf, 1, sizeof buf, in_system)) > 0)
            fwrite(buf, 1, n, out);
        fclose(in_system);
        fputc('\n', out);
    } else {
        log_json(LOG_WARN, "system CA bundle not readable; trusting RECEIVER_CA_FILE only", "{s:s}", "path",
                 system_bundle);
    }
    while ((n = fread(buf, 1, sizeof buf, in_extra)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in_extra);
    if (fclose(out) != 0) {
        snprintf(errbuf, errlen, "cannot write the CA bundle temp file");
        return -1;
    }
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
    snprintf(eng->user_agent, sizeof eng->user_agent, "hookd/%s", HOOKD_VERSION);
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    eng->system_bundle = info->cainfo != NULL ? info->cainfo : SYSTEM_CA_FALLBACK;
    if (opts->ca_file != NULL && opts->ca_file[0] != '\0' && build_ca_bundle(eng, opts->ca_file, errbuf, errlen) != 0)
        goto err;
    eng->multi = curl_multi_init();
    eng->timer_fd = loop_timerfd_new();
    if (eng->multi == NULL || eng->timer_fd < 0 ||
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
    curl_slist_free_all(t->headers);
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
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L); /* wait to multiplex on an HTTP/2 connection being set up */
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    /* One CA file and no CA directory: only then does libcurl (7.87+) cache the parsed X509 store across
     * connections (CURLOPT_CA_CACHE_TIMEOUT); a CA path costs a directory lookup per handshake. */
    curl_easy_setopt(e, CURLOPT_CAINFO, eng->ca_bundle[0] != '\0' ? eng->ca_bundle : eng->system_bundle);
    curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never through an environment proxy: the guard checks the target */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)eng->opts.timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, eng->user_agent);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    return t;
}

/* Returns a finished transfer to the pool (or frees it when the pool is full). */
static void transfer_put(delivery_engine *eng, transfer *t)
{
    curl_slist_free_all(t->headers);
    t->headers = NULL;
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

/* Appends "name: value" to *list. Returns 0 or -1. */
static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[512];
    if (snprintf(line, sizeof line, "%s: %s", name, value) >= (int)sizeof line)
        return -1;
    struct curl_slist *l = curl_slist_append(*list, line);
    if (l == NULL)
        return -1;
    *list = l;
    return 0;
}

int delivery_start(delivery_engine *eng, const delivery_request *req)
{
    transfer *t = transfer_get(eng);
    if (t == NULL)
        return -1;
    t->req = *req;
    t->forbidden = 0;
    t->response_bytes = 0;
    t->errbuf[0] = '\0';
    t->timestamp = (long long)(time_now_ms() / 1000);
    char signature[SIGNATURE_TEXT_MAX], ts[24];
    snprintf(ts, sizeof ts, "%lld", t->timestamp);
    if (signature_compute(req->secret, req->event_id, t->timestamp, req->body, req->body_len, signature,
                          sizeof signature) != 0) {
        log_json(LOG_ERROR, "webhook secret is not a valid whsec_ secret", "{s:I}", "webhook_id",
                 (json_int_t)req->webhook_id);
        transfer_put(eng, t);
        return -1;
    }
    if (add_header(&t->headers, "Content-Type", "application/json") != 0 ||
        add_header(&t->headers, "webhook-id", req->event_id) != 0 ||
        add_header(&t->headers, "webhook-timestamp", ts) != 0 ||
        add_header(&t->headers, "webhook-signature", signature) != 0 ||
        (t->headers = curl_slist_append(t->headers, "Expect:")) == NULL ||
        (t->headers = curl_slist_append(t->headers, "Accept:")) == NULL) {
        transfer_put(eng, t);
        return -1;
    }
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
    t->start_us = time_monotonic_us();
    CURLMcode rc = curl_multi_add_handle(eng->multi, e);
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

    delivery_result res;
    memset(&res, 0, sizeof res);
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    res.status = status;
    res.latency_ms = (double)(time_monotonic_us() - t->start_us) / 1000.0;
    res.timestamp = t->timestamp;
    char reason[CURL_ERROR_SIZE + 32];
    if (code == CURLE_OK) {
        if (status >= 200 && status < 300) {
            res.ok = 1;
            res.outcome = DM_SUCCESS;
        } else {
            res.outcome = DM_HTTP_ERROR;
            snprintf(reason, sizeof reason, "HTTP status %ld", status);
            res.error = reason;
        }
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        res.outcome = DM_TIMEOUT;
        res.error = "timeout";
    } else if (t->forbidden && code == CURLE_COULDNT_CONNECT) {
        res.outcome = DM_FORBIDDEN;
        res.status = 0;
        res.error = "destination address is forbidden";
    } else {
        res.outcome = DM_NETWORK_ERROR;
        res.status = 0;
        snprintf(reason, sizeof reason, "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(code));
        res.error = reason;
    }
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
    curl_multi_socket_action(eng->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(eng);
}

size_t delivery_active(const delivery_engine *eng)
{
    return eng->active_count;
}
