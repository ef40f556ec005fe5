/* delivery_http — see delivery_http.h. */
#include "delivery_http.h"

#include "json_text.h"
#include "retry_policy.h"
#include "signature.h"
#include "signature_cache.h"
#include "timeutil.h"
#include "url_guard.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define SYSTEM_CA_FALLBACK "/etc/ssl/certs/ca-certificates.crt"
#define DEFAULT_USER_AGENT "hookd/" HOOKD_VERSION

const char *delivery_http_system_ca(void)
{
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    return info->cainfo != NULL ? info->cainfo : SYSTEM_CA_FALLBACK;
}

/* Copies the system bundle (when there is one) and then extra into out. Returns 0, or -1 with errbuf. */
static int ca_bundle_write(FILE *out, const char *extra, char *errbuf, size_t errlen)
{
    FILE *in_extra = fopen(extra, "rb");
    if (in_extra == NULL) {
        snprintf(errbuf, errlen, "RECEIVER_CA_FILE %s: %s", extra, strerror(errno));
        return -1;
    }
    char buf[8192];
    size_t n;
    FILE *in_system = fopen(delivery_http_system_ca(), "rb");
    if (in_system != NULL) {
        while ((n = fread(buf, 1, sizeof buf, in_system)) > 0)
            fwrite(buf, 1, n, out);
        fclose(in_system);
        fputc('\n', out);
    }
    while ((n = fread(buf, 1, sizeof buf, in_extra)) > 0)
        fwrite(buf, 1, n, out);
    int failed = ferror(in_extra);
    fclose(in_extra);
    if (failed || fflush(out) != 0 || ferror(out)) {
        snprintf(errbuf, errlen, "cannot write the CA bundle (RECEIVER_CA_FILE %s)", extra);
        return -1;
    }
    return 0;
}

/* The memfd way (see delivery_http.h). Returns 0, or -1 when this system cannot (no memfd, no /proc): the
 * caller falls back to a temp file. An unreadable RECEIVER_CA_FILE is -2 with errbuf: no fallback helps. */
static int ca_bundle_in_memory(delivery_http_ca_bundle *bundle, const char *extra, char *errbuf, size_t errlen)
{
    int fd = memfd_create("hookd-ca", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    int dup_fd = dup(fd); /* fclose closes this one; fd stays open until delivery_http_ca_bundle_close */
    FILE *out = dup_fd >= 0 ? fdopen(dup_fd, "wb") : NULL;
    if (out == NULL) {
        if (dup_fd >= 0)
            close(dup_fd);
        close(fd);
        return -1;
    }
    int written = ca_bundle_write(out, extra, errbuf, errlen);
    fclose(out);
    if (written != 0) {
        close(fd);
        return -2;
    }
    snprintf(bundle->path, sizeof bundle->path, "/proc/self/fd/%d", fd);
    FILE *check = fopen(bundle->path, "rb"); /* what libcurl will do: no /proc mounted fails here */
    if (check == NULL) {
        close(fd);
        bundle->path[0] = '\0';
        return -1;
    }
    fclose(check);
    bundle->fd = fd;
    return 0;
}

int delivery_http_ca_bundle_open_file(delivery_http_ca_bundle *bundle, const char *extra, const char *dir,
                                      char *errbuf, size_t errlen)
{
    memset(bundle, 0, sizeof *bundle);
    bundle->fd = -1;
    snprintf(bundle->path, sizeof bundle->path, "%s/hookd-ca-XXXXXX", dir);
    int fd = mkstemp(bundle->path);
    FILE *out = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (out == NULL) {
        snprintf(errbuf, errlen, "cannot create the CA bundle temp file %s: %s", bundle->path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(bundle->path);
        }
        bundle->path[0] = '\0';
        return -1;
    }
    int written = ca_bundle_write(out, extra, errbuf, errlen);
    if (fclose(out) != 0 && written == 0) {
        snprintf(errbuf, errlen, "cannot write the CA bundle temp file %s", bundle->path);
        written = -1;
    }
    if (written != 0) {
        unlink(bundle->path);
        bundle->path[0] = '\0';
        return -1;
    }
    bundle->temp_file = 1;
    return 0;
}

int delivery_http_ca_bundle_open(delivery_http_ca_bundle *bundle, const char *extra, char *errbuf, size_t errlen)
{
    memset(bundle, 0, sizeof *bundle);
    bundle->fd = -1;
    int rc = ca_bundle_in_memory(bundle, extra, errbuf, errlen);
    if (rc != -1)
        return rc == 0 ? 0 : -1;
    const char *dir = getenv("TMPDIR");
    return delivery_http_ca_bundle_open_file(bundle, extra, dir != NULL && dir[0] != '\0' ? dir : "/tmp", errbuf,
                                             errlen);
}

void delivery_http_ca_bundle_close(delivery_http_ca_bundle *bundle)
{
    if (bundle->path[0] == '\0')
        return;
    if (bundle->temp_file)
        unlink(bundle->path);
    else if (bundle->fd >= 0)
        close(bundle->fd);
    bundle->path[0] = '\0';
    bundle->fd = -1;
    bundle->temp_file = 0;
}

/* One signature, with the thread's prepared keys when there are some. */
static int sign_one(signature_cache *keys, const char *secret, const char *event_id, long long timestamp,
                    const char *body, size_t body_len, char *out, size_t outlen)
{
    return keys != NULL ? signature_cache_sign(keys, secret, event_id, timestamp, body, body_len, out, outlen)
                        : signature_compute(secret, event_id, timestamp, body, body_len, out, outlen);
}

int delivery_http_signatures(signature_cache *keys, const char *secret, const char *previous_secret,
                             const char *event_id, long long timestamp, const char *body, size_t body_len, char *out,
                             size_t outlen)
{
    if (sign_one(keys, secret, event_id, timestamp, body, body_len, out, outlen) != 0)
        return -1; /* the signature with the current secret goes straight into out */
    if (previous_secret == NULL || previous_secret[0] == '\0')
        return 0;
    char old_sig[SIGNATURE_TEXT_MAX];
    if (sign_one(keys, previous_secret, event_id, timestamp, body, body_len, old_sig, sizeof old_sig) != 0)
        return -1;
    size_t used = strlen(out), old_len = strlen(old_sig);
    if (used + 1 + old_len >= outlen)
        return -1;
    out[used] = ' ';
    memcpy(out + used + 1, old_sig, old_len + 1);
    return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: the SSRF guard at connect time, after DNS, for every address curl tries. */
static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
    delivery_http_attempt *a = clientp;
    (void)purpose;
    if (!a->cfg->allow_private && url_guard_address_forbidden(&address->addr)) {
        a->forbidden = 1;
        return CURL_SOCKET_BAD;
    }
    int fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd >= 0 && a->socket_opened != NULL)
        a->socket_opened(a->socket_opened_ctx, fd);
    return fd;
}

/* CURLOPT_WRITEFUNCTION: count the response body and drop it; past DELIVERY_RESPONSE_BODY_MAX, end the transfer
 * (CURLE_WRITE_ERROR: the status already received decides the outcome, delivery_http_finish). */
static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    delivery_http_attempt *a = userdata;
    a->response_bytes += size * nmemb;
    return a->response_bytes > DELIVERY_RESPONSE_BODY_MAX ? 0 : size * nmemb;
}

/* CURLOPT_HEADERFUNCTION: keep the Retry-After value (of the last response, interim ones included). */
static size_t header_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
    delivery_http_attempt *a = userdata;
    size_t len = size * nitems;
    static const char name[] = "retry-after:";
    if (len > sizeof name - 1 && strncasecmp(buffer, name, sizeof name - 1) == 0) {
        const char *v = buffer + sizeof name - 1;
        size_t vlen = len - (sizeof name - 1);
        while (vlen > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vlen--;
        }
        while (vlen > 0 && isspace((unsigned char)v[vlen - 1]))
            vlen--;
        if (vlen >= sizeof a->retry_after)
            vlen = sizeof a->retry_after - 1;
        memcpy(a->retry_after, v, vlen);
        a->retry_after[vlen] = '\0';
    } else if (len > 5 && strncmp(buffer, "HTTP/", 5) == 0) {
        a->retry_after[0] = '\0'; /* a new response (after a 100) starts */
    }
    return len;
}

/* 1 when libcurl's TLS backend is OpenSSL (Debian's libcurl4-openssl-dev): the only one whose SSL_CTX the
 * callback below understands. */
static int tls_is_openssl(void)
{
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    return info->ssl_version != NULL && strncmp(info->ssl_version, "OpenSSL/", 8) == 0;
}

/* SSL_CTX info callback: lets one TLS 1.3 session ticket resume many connections.
 *
 * libcurl 7.88 keeps one session per receiver (host and port) and offers it to every new connection to that
 * receiver. At the end of each TLS 1.3 client handshake, OpenSSL removes the session it used from the client
 * cache when SSL_SESS_CACHE_CLIENT is set (which libcurl sets), and removing marks the SSL_SESSION object itself
 * not resumable. So in a burst, once the first connection that resumed the session finishes its handshake,
 * every connection that builds its ClientHello after that offers a dead session and does a full handshake (an
 * RSA signature on the receiver, a chain verification here), although libcurl logs that it re-used a session:
 * measured, 52–88 % of the bench's new connections resumed, and the e2e burst resumed 1 of 7 to 7 of 7.
 *
 * OpenSSL does this to encourage single-use tickets (RFC 8446, C.4: reuse lets a passive observer link
 * connections). A dispatcher's connections to one receiver come from the same address and are linked anyway,
 * so hookd reuses the ticket, as HTTP clients commonly do; a receiver that insists on single use refuses it and
 * gets a full handshake, as before.
 *
 * How: once the handshake is known to be TLS 1.3, SSL_SESS_CACHE_CLIENT is cleared on the connection's SSL_CTX
 * (libcurl 7.88 makes one per connection), so the removal at the end of the handshake is skipped, and it is set
 * again at SSL_CB_HANDSHAKE_DONE, before any NewSessionTicket is read: tickets still reach libcurl's cache
 * through its new-session callback, which needs the bit. TLS 1.2 handshakes are left alone (their cache update
 * runs before HANDSHAKE_DONE and needs the bit). A failed handshake leaves the bit cleared on a context that is
 * freed with its connection. */
static void tls_info_cb(const SSL *ssl, int where, int ret)
{
    (void)ret;
    SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
    long mode = SSL_CTX_get_session_cache_mode(ctx);
    if (where & SSL_CB_HANDSHAKE_DONE) {
        if (!(mode & SSL_SESS_CACHE_CLIENT))
            SSL_CTX_set_session_cache_mode(ctx, mode | SSL_SESS_CACHE_CLIENT);
    } else if ((where & SSL_CB_LOOP) && (mode & SSL_SESS_CACHE_CLIENT) && SSL_version(ssl) == TLS1_3_VERSION &&
               (SSL_get_state(ssl) == TLS_ST_CR_FINISHED || SSL_get_state(ssl) == TLS_ST_CW_FINISHED)) {
        SSL_CTX_set_session_cache_mode(ctx, mode & ~(long)SSL_SESS_CACHE_CLIENT);
    }
}

/* Logging the sessions libcurl keeps (delivery_http_prepare_ssl_ctx's log): the connection's SSL_CTX carries the
 * log's address and the receiver's authority key (ex_data), and its new-session callback, which libcurl 7.88
 * installs before calling ours (one function, the same for every context), is wrapped. */
typedef int (*new_session_fn)(SSL *ssl, SSL_SESSION *session);
static int log_index = -1, key_index = -1;
static pthread_once_t ex_index_once = PTHREAD_ONCE_INIT;
static _Atomic uintptr_t libcurl_new_session; /* libcurl's callback, stored by every thread with the same value */

static void ex_index_init(void)
{
    log_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    key_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int logging_new_session_cb(SSL *ssl, SSL_SESSION *session)
{
    new_session_fn libcurl_cb = (new_session_fn)atomic_load(&libcurl_new_session);
    int kept = libcurl_cb != NULL ? libcurl_cb(ssl, session) : 0; /* 1: libcurl keeps it (and our reference) */
    SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
    delivery_http_session_log *log = SSL_CTX_get_ex_data(ctx, log_index);
    if (kept && log != NULL) {
        log->keys[log->stored % DELIVERY_HTTP_SESSION_LOG] = (uint64_t)(uintptr_t)SSL_CTX_get_ex_data(ctx, key_index);
        log->stored++;
    }
    return kept;
}

uint64_t delivery_http_authority_key(const char *url)
{
    const char *p = strstr(url, "://");
    p = p != NULL ? p + 3 : url;
    uint64_t h = 14695981039346656037u; /* FNV-1a */
    for (; *p != '\0' && *p != '/' && *p != '?' && *p != '#'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 1099511628211u;
    }
    return h;
}

/* See delivery_http.h. libcurl 7.88 sets SSL_MODE_RELEASE_BUFFERS on the
 * SSL_CTX it makes for each connection, so OpenSSL frees a connection's ~17 KiB read buffer after every record
 * it reads and its write buffer after every write, and allocates them again for the next: four 17 KiB
 * malloc/free round trips per delivery, through glibc's slow path (chunks that size skip the thread caches).
 * Keeping them costs memory per open connection: measured +1 MiB RSS with 80 connections and +3 MiB with
 * 320 (only the touched pages of the two buffers count). The info callback: tls_info_cb above. */
void delivery_http_prepare_ssl_ctx(void *ssl_ctx, delivery_http_session_log *log, uint64_t key)
{
    SSL_CTX *ctx = ssl_ctx;
    SSL_CTX_clear_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_get_info_callback(ctx) == NULL) /* never replace one libcurl might install itself */
        SSL_CTX_set_info_callback(ctx, tls_info_cb);
    new_session_fn current = SSL_CTX_sess_get_new_cb(ctx);
    if (log == NULL || current == NULL || current == logging_new_session_cb)
        return;
    pthread_once(&ex_index_once, ex_index_init);
    uintptr_t seen = atomic_load(&libcurl_new_session);
    if (log_index < 0 || key_index < 0 || (seen != 0 && seen != (uintptr_t)current))
        return; /* a second, different callback: not the libcurl this was written for; leave it alone */
    atomic_store(&libcurl_new_session, (uintptr_t)current);
    if (SSL_CTX_set_ex_data(ctx, log_index, log) == 1 &&
        SSL_CTX_set_ex_data(ctx, key_index, (void *)(uintptr_t)key) == 1)
        SSL_CTX_sess_set_new_cb(ctx, logging_new_session_cb);
}

/* CURLOPT_SSL_CTX_FUNCTION (OpenSSL builds of libcurl only): each connection's SSL_CTX, before its handshake;
 * userptr is the CURLOPT_SSL_CTX_DATA the handle's owner set (its session log), or NULL. */
static CURLcode ssl_ctx_cb(CURL *e, void *ssl_ctx, void *userptr)
{
    char *url = NULL;
    uint64_t key = 0;
    if (userptr != NULL && curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url != NULL)
        key = delivery_http_authority_key(url);
    delivery_http_prepare_ssl_ctx(ssl_ctx, userptr, key);
    return CURLE_OK;
}

/* CURLOPT_PREREQFUNCTION: the connection is up (TLS handshake done) and the request is about to go out; the
 * connection is detached from the handle once the transfer is done, so whether its handshake resumed a session
 * is read here. */
static int prereq_cb(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    delivery_http_attempt *a = clientp;
    struct curl_tlssessioninfo *tls = NULL;
    if (curl_easy_getinfo(a->easy, CURLINFO_TLS_SSL_PTR, &tls) == CURLE_OK && tls != NULL &&
        tls->backend == CURLSSLBACKEND_OPENSSL && tls->internals != NULL)
        a->tls_resumed = SSL_session_reused((SSL *)tls->internals) ? 1 : 0;
    return CURL_PREREQFUNC_OK;
}

void delivery_http_easy_setup(CURL *e, const delivery_http_config *cfg, delivery_http_attempt *a)
{
    memset(a, 0, sizeof *a);
    a->cfg = cfg;
    a->easy = e;
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
    curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_bundle != NULL && cfg->ca_bundle[0] != '\0' ? cfg->ca_bundle
                                                                                          : delivery_http_system_ca());
    curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never through an environment proxy: the guard checks the target */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Per-transfer buffers, held while an attempt runs (so ~MAX_IN_FLIGHT of them): libcurl 7.88 copies every
     * HTTPS request into a 64 KiB upload buffer and reads into a 16 KiB one; at 1,000 attempts in flight that
     * was 60 + 15 MiB of the dispatcher's heap (valgrind massif, fan-out row). Requests are a few KiB and
     * responses are discarded: the smallest upload buffer libcurl allows and a 4 KiB read buffer are plenty
     * (larger bodies just go out in more writes). */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, cfg->user_agent != NULL ? cfg->user_agent : DEFAULT_USER_AGENT);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, a);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, a->errbuf);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, a);
    if (tls_is_openssl())
        curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
}

/* Where the next header goes in an attempt's in-place list: nodes and text bytes used so far. */
typedef struct header_cursor {
    size_t count;
    size_t used;
} header_cursor;

/* Appends "name: value" as the next node of a's in-place header list. Returns 0, or -1 when it does not fit. */
static int add_header(delivery_http_attempt *a, header_cursor *at, const char *name, const char *value)
{
    json_buf text; /* "name: value", NUL-terminated, without printf (six headers per attempt) */
    json_buf_init(&text, a->header_text + at->used, sizeof a->header_text - at->used);
    json_buf_raw(&text, name, strlen(name));
    json_buf_raw(&text, ": ", 2);
    json_buf_raw(&text, value, strlen(value));
    if (at->count == DELIVERY_HTTP_HEADER_COUNT || text.overflow)
        return -1;
    size_t len = text.len;
    struct curl_slist *node = &a->header_nodes[at->count];
    node->data = a->header_text + at->used;
    node->next = NULL;
    if (at->count > 0)
        a->header_nodes[at->count - 1].next = node;
    at->count++;
    at->used += len + 1;
    return 0;
}

int delivery_http_begin(CURL *e, delivery_http_attempt *a, const delivery_http_request *req, char *errbuf,
                        size_t errlen)
{
    a->headers = NULL;
    header_cursor at = {0, 0};
    a->forbidden = 0;
    a->response_bytes = 0;
    a->retry_after[0] = '\0';
    a->errbuf[0] = '\0';
    a->started_at_ms = time_now_ms();
    a->timestamp = (long long)(a->started_at_ms / 1000);
    char signatures[DELIVERY_HTTP_SIGNATURES_MAX], ts[24];
    json_buf ts_text;
    json_buf_init(&ts_text, ts, sizeof ts);
    json_buf_int(&ts_text, a->timestamp);
    if (delivery_http_signatures(a->signing_keys, req->secret, req->previous_secret, req->event_id, a->timestamp,
                                 req->body, req->body_len, signatures, sizeof signatures) != 0) {
        snprintf(errbuf, errlen, "webhook secret is not a valid whsec_ secret");
        return -1;
    }
    if (add_header(a, &at, "Content-Type", "application/json") != 0 ||
        add_header(a, &at, "webhook-id", req->event_id) != 0 ||
        add_header(a, &at, "webhook-timestamp", ts) != 0 ||
        add_header(a, &at, "webhook-signature", signatures) != 0 || add_header(a, &at, "Expect", "") != 0 ||
        add_header(a, &at, "Accept", "") != 0) {
        snprintf(errbuf, errlen, "request headers too long (event id of %zu bytes)", strlen(req->event_id));
        return -1;
    }
    a->headers = &a->header_nodes[0];
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     req->http1_only ? (long)CURL_HTTP_VERSION_1_1 : (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, a->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
    a->start_us = time_monotonic_us();
    a->tls_resumed = -1;
    return 0;
}

/* The attempt's new connection's TLS handshake, if it opened one (the metric hookd_dispatcher_tls_handshakes_total).
 * NUM_CONNECTS is the transfer's own count of connections it created. */
static delivery_http_tls tls_handshake_of(CURL *e, const delivery_http_attempt *a)
{
    long connects = 0;
    if (a->tls_resumed < 0 || curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects) != CURLE_OK || connects <= 0)
        return DELIVERY_HTTP_TLS_NONE;
    return a->tls_resumed ? DELIVERY_HTTP_TLS_RESUMED : DELIVERY_HTTP_TLS_FULL;
}

void delivery_http_finish(CURL *e, delivery_http_attempt *a, CURLcode code, delivery_http_result *res)
{
    memset(res, 0, sizeof *res);
    res->tls_handshake = tls_handshake_of(e, a);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    res->status = status;
    res->latency_ms = (double)(time_monotonic_us() - a->start_us) / 1000.0;
    res->timestamp = a->timestamp;
    res->started_at_ms = a->started_at_ms;
    res->retry_after_ms = -1;
    res->http2_reset = code == CURLE_HTTP2_STREAM || code == CURLE_HTTP2;
    /* a final status received is the receiver's answer, whatever happened to the rest of the exchange */
    if (code == CURLE_OK || (status >= 200 && !a->forbidden)) {
        if (status >= 200 && status < 300) {
            res->ok = 1;
            res->outcome = DELIVERY_HTTP_SUCCESS;
        } else {
            res->outcome = DELIVERY_HTTP_HTTP_ERROR;
            snprintf(res->error, sizeof res->error, "HTTP status %ld", status);
            if (a->retry_after[0] != '\0')
                res->retry_after_ms = retry_after_parse_ms(a->retry_after, time_now_ms());
        }
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        res->outcome = DELIVERY_HTTP_TIMEOUT;
        snprintf(res->error, sizeof res->error, "timeout");
    } else if (a->forbidden && code == CURLE_COULDNT_CONNECT) {
        res->outcome = DELIVERY_HTTP_FORBIDDEN;
        res->status = 0;
        snprintf(res->error, sizeof res->error, "destination address is forbidden");
    } else {
        res->outcome = DELIVERY_HTTP_NETWORK_ERROR;
        res->status = 0;
        snprintf(res->error, sizeof res->error, "%s", a->errbuf[0] ? a->errbuf : curl_easy_strerror(code));
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    a->headers = NULL;
}

int delivery_http_perform_once(const delivery_http_config *cfg, const char *url, const char *secret,
                               const char *previous_secret, const char *event_id, const char *body, size_t len,
                               delivery_http_result *out)
{
    memset(out, 0, sizeof *out);
    out->outcome = DELIVERY_HTTP_NETWORK_ERROR;
    out->retry_after_ms = -1;
    out->started_at_ms = time_now_ms();
    out->timestamp = (long long)(out->started_at_ms / 1000);
    CURL *e = curl_easy_init();
    if (e == NULL) {
        snprintf(out->error, sizeof out->error, "delivery could not be started: out of memory");
        return -1;
    }
    delivery_http_attempt a;
    delivery_http_easy_setup(e, cfg, &a);
    delivery_http_request req = {url, secret, previous_secret, event_id, body, len};
    char err[128];
    if (delivery_http_begin(e, &a, &req, err, sizeof err) != 0) {
        snprintf(out->error, sizeof out->error, "delivery could not be started: %s", err);
        curl_easy_cleanup(e);
        return -1;
    }
    CURLcode code = curl_easy_perform(e);
    delivery_http_finish(e, &a, code, out);
    curl_easy_cleanup(e);
    return out->ok ? 0 : -1;
}
