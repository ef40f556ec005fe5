/* redis_tls — see redis_tls.h. */
#include "redis_tls.h"

#include "log.h"
#include "timeutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_BUFFER 16384

/* One TLS connection and the thread relaying it to hiredis's socket. */
struct redis_tls {
    SSL_CTX *ctx;        /* owned */
    SSL *ssl;            /* owned */
    int tcp_fd;          /* owned: the TCP connection to Redis (non-blocking) */
    int relay_fd;        /* owned: the relay's end of the socketpair (non-blocking) */
    pthread_t thread;
    int thread_started;
    char host[256];      /* for the relay's log line */
    atomic_int client_certificate_refused; /* set by the relay before it ends: the server's alert said so */
};

/* The text redis_tls_start's errbuf and the relay's log line use for a server that refused the client's
 * certificate (or its absence); redis_tls_failure_kind looks for it. */
#define CLIENT_CERTIFICATE_REFUSED "client certificate refused"

static void tls_free(redis_tls *t)
{
    if (t->ssl != NULL)
        SSL_free(t->ssl);
    if (t->ctx != NULL)
        SSL_CTX_free(t->ctx);
    if (t->tcp_fd >= 0)
        close(t->tcp_fd);
    if (t->relay_fd >= 0)
        close(t->relay_fd);
    free(t);
}

/* The first queued OpenSSL error as text (or fallback), queue cleared. */
static void ssl_error_text(const char *fallback, char *out, size_t outlen)
{
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, out, outlen);
    else
        snprintf(out, outlen, "%s", fallback);
    ERR_clear_error();
}

/* 1 when the OpenSSL error e is an alert from the server about the client's certificate: none was sent (TLS 1.3's
 * certificate_required), or the one sent was refused (bad, unknown, unsupported, expired, revoked, unknown CA). */
static int is_client_certificate_alert(unsigned long e)
{
    switch (ERR_GET_REASON(e)) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        return 1;
    default:
        return 0;
    }
}

/* Waits until fd is ready for events or deadline (monotonic ms) passes. Returns 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - time_monotonic_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* Keep-alive probes as hiredis sets them on its own sockets (idle 15 s), so a dead peer is noticed. */
static void keep_alive(int fd)
{
    int on = 1, idle = 15, interval = 5, count = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

/* A non-blocking TCP connection to host:port (each address in turn) by deadline_ms. Returns the socket or -1. */
static int tcp_connect(const char *host, int port, int64_t deadline_ms, char *errbuf, size_t errlen)
{
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(errbuf, errlen, "%s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(errbuf, errlen, "no address for %s", host);
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            snprintf(errbuf, errlen, "socket: %s", strerror(errno));
            continue;
        }
        int err = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            if (err == EINPROGRESS) {
                int ready = wait_fd(fd, POLLOUT, deadline_ms);
                socklen_t len = sizeof err;
                if (ready <= 0)
                    err = ready == 0 ? ETIMEDOUT : errno;
                else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                    err = errno;
            }
        }
        if (err == 0)
            break;
        snprintf(errbuf, errlen, "connect to %s:%d: %s", host, port, strerror(err));
        close(fd);
        fd = -1;
        if (err == ETIMEDOUT)
            break; /* the time is up for every address */
    }
    freeaddrinfo(res);
    return fd;
}

/* The client context: TLS 1.2+, peer verification against the system CAs and files->ca_file, and the client
 * certificate of files when there is one. NULL with errbuf. */
static SSL_CTX *client_context(const redis_tls_files *files, char *errbuf, size_t errlen)
{
    const char *ca_file = files->ca_file;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        ssl_error_text("cannot create a TLS context", errbuf, errlen);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1 ||
        (ca_file != NULL && ca_file[0] != '\0' && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)) {
        char why[200];
        ssl_error_text("unreadable", why, sizeof why);
        snprintf(errbuf, errlen, "REDIS_CA_FILE %s: %s", ca_file != NULL ? ca_file : "", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (files->cert_file != NULL && files->cert_file[0] != '\0' &&
        (SSL_CTX_use_certificate_chain_file(ctx, files->cert_file) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, files->key_file, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(ctx) != 1)) {
        char why[200];
        ssl_error_text("unusable", why, sizeof why);
        snprintf(errbuf, errlen, "REDIS_CLIENT_CERT_FILE %s / REDIS_CLIENT_KEY_FILE %s: %s", files->cert_file,
                 files->key_file, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The TLS handshake on t->tcp_fd for host by deadline_ms. Returns 0, or -1 with errbuf. */
static int handshake(redis_tls *t, const char *host, int64_t deadline_ms, char *errbuf, size_t errlen)
{
    if ((t->ssl = SSL_new(t->ctx)) == NULL || SSL_set_fd(t->ssl, t->tcp_fd) != 1) {
        ssl_error_text("cannot create a TLS connection", errbuf, errlen);
        return -1;
    }
    unsigned char ip[sizeof(struct in6_addr)];
    int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    int named = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host)
                      : SSL_set_tlsext_host_name(t->ssl, host) == 1 && SSL_set1_host(t->ssl, host) == 1;
    if (!named) {
        ssl_error_text("cannot set the expected server name", errbuf, errlen);
        return -1;
    }
    for (;;) {
        int rc = SSL_connect(t->ssl);
        if (rc == 1)
            return 0;
        int e = SSL_get_error(t->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int ready = wait_fd(t->tcp_fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ms);
            if (ready > 0)
                continue;
            snprintf(errbuf, errlen, "TLS handshake with %s: %s", host, ready == 0 ? "timed out" : strerror(errno));
            return -1;
        }
        long verify = SSL_get_verify_result(t->ssl);
        char why[200], ssl_text[160];
        if (verify != X509_V_OK) {
            snprintf(why, sizeof why, "certificate not trusted: %s", X509_verify_cert_error_string(verify));
        } else if (e == SSL_ERROR_SSL && is_client_certificate_alert(ERR_peek_error())) {
            ssl_error_text("", ssl_text, sizeof ssl_text); /* TLS 1.2: the server refuses it in the handshake */
            snprintf(why, sizeof why, CLIENT_CERTIFICATE_REFUSED ": %s", ssl_text);
        } else {
            ssl_error_text(e == SSL_ERROR_SYSCALL ? "connection closed" : "handshake failed", why, sizeof why);
        }
        snprintf(errbuf, errlen, "TLS handshake with %s: %s", host, why);
        ERR_clear_error();
        return -1;
    }
}

/* Logs why the TLS connection failed (SSL_get_error's e), unless Redis closed it cleanly (close_notify). The
 * server's alert is the only place some reasons show: in TLS 1.3 a server that refuses the client's certificate
 * (or its absence) says so after the client's side of the handshake is done. */
static void note_end(redis_tls *t, int e)
{
    if (e == SSL_ERROR_ZERO_RETURN)
        return;
    if (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        /* the server closed TCP without TLS's close_notify, as redis-server does when it stops or restarts (or
         * kills a client): one line per connection, the next command's reconnect says the rest */
        ERR_clear_error();
        log_json(LOG_INFO, "redis TLS connection closed by the server", "{s:s}", "host", t->host);
        return;
    }
    char why[200];
    int err = errno;
    int refused = e == SSL_ERROR_SSL && is_client_certificate_alert(ERR_peek_error());
    ssl_error_text(e == SSL_ERROR_SYSCALL ? (err != 0 ? strerror(err) : "connection closed") : "TLS error", why,
                   sizeof why);
    if (refused) {
        /* before the relay closes hiredis's end: the command that then fails finds the flag set */
        atomic_store(&t->client_certificate_refused, 1);
        log_json(LOG_WARN, "redis TLS connection ended", "{s:s, s:s, s:s}", "host", t->host, "error", why, "reason",
                 CLIENT_CERTIFICATE_REFUSED);
        return;
    }
    log_json(LOG_WARN, "redis TLS connection ended", "{s:s, s:s}", "host", t->host, "error", why);
}

const char *redis_tls_failure(const redis_tls *t)
{
    return t != NULL && atomic_load(&t->client_certificate_refused) ? "TLS: " CLIENT_CERTIFICATE_REFUSED : NULL;
}

const char *redis_tls_failure_kind(const char *error)
{
    if (strncmp(error, "TLS handshake with ", 19) != 0)
        return NULL; /* the network (or the relay's own resources), not TLS */
    if (strstr(error, ": certificate not trusted: ") != NULL)
        return "TLS: server certificate not trusted";
    if (strstr(error, ": " CLIENT_CERTIFICATE_REFUSED ": ") != NULL)
        return "TLS: " CLIENT_CERTIFICATE_REFUSED;
    return "TLS handshake failed";
}

/* The relay: bytes from hiredis (relay_fd) go out through SSL_write, records SSL_read comes back to it. Both
 * sockets are non-blocking; one buffer each way. Ends when either side closes or fails: it then closes the TLS
 * connection (close_notify, best effort) and its socketpair end, so hiredis reads end-of-file. */
static void *relay_main(void *arg)
{
    redis_tls *t = arg;
    unsigned char up[RELAY_BUFFER], down[RELAY_BUFFER]; /* up: hiredis -> Redis; down: Redis -> hiredis */
    size_t up_len = 0, up_off = 0, down_len = 0, down_off = 0;
    short write_wants = 0, read_wants = POLLIN; /* what the pending SSL_write / SSL_read wait for on tcp_fd */
    for (;;) {
        int progress = 0;
        if (up_len == 0) {
            ssize_t n = read(t->relay_fd, up, sizeof up);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                break; /* hiredis closed its end (redisFree), or it broke */
            if (n > 0) {
                up_len = (size_t)n;
                up_off = 0;
                progress = 1;
            }
        }
        if (up_off < up_len) {
            int n = SSL_write(t->ssl, up + up_off, (int)(up_len - up_off));
            if (n > 0) {
                up_off += (size_t)n;
                if (up_off == up_len)
                    up_len = up_off = 0;
                write_wants = 0;
                progress = 1;
            } else {
                int e = SSL_get_error(t->ssl, n);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                    note_end(t, e);
                    break;
                }
                write_wants = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            }
        }
        if (down_len == 0) {
            int n = SSL_read(t->ssl, down, sizeof down);
            if (n > 0) {
                down_len = (size_t)n;
                down_off = 0;
                read_wants = POLLIN;
                progress = 1;
            } else {
                int e = SSL_get_error(t->ssl, n);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                    note_end(t, e);
                    break; /* closed by Redis (close_notify or TCP), or failed */
                }
                read_wants = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            }
        }
        if (down_off < down_len) {
            ssize_t n = send(t->relay_fd, down + down_off, down_len - down_off, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                break;
            if (n > 0) {
                down_off += (size_t)n;
                if (down_off == down_len)
                    down_len = down_off = 0;
                progress = 1;
            }
        }
        if (progress)
            continue;
        struct pollfd p[2] = {
            {.fd = t->relay_fd, .events = (short)((up_len == 0 ? POLLIN : 0) | (down_off < down_len ? POLLOUT : 0))},
            {.fd = t->tcp_fd, .events = (short)((up_off < up_len ? write_wants : 0) | (down_len == 0 ? read_wants : 0))},
        };
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
            if (!(p[0].revents & POLLIN) || up_len != 0)
                break; /* hiredis's end is gone and nothing is left to read from it */
    }
    SSL_shutdown(t->ssl); /* close_notify; the answer is not waited for */
    ERR_clear_error();
    shutdown(t->relay_fd, SHUT_RDWR);
    OPENSSL_thread_stop();
    return NULL;
}

redis_tls *redis_tls_start(const char *host, int port, const redis_tls_files *files, int timeout_ms, int *fd,
                           char *errbuf, size_t errlen)
{
    *fd = -1;
    redis_tls *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    t->tcp_fd = t->relay_fd = -1;
    atomic_init(&t->client_certificate_refused, 0);
    snprintf(t->host, sizeof t->host, "%s", host);
    if ((t->ctx = client_context(files, errbuf, errlen)) == NULL)
        goto fail;
    /* the timeout is the network's: it starts once the context is built, since building it is local work that
     * can take long (OpenSSL's first use in the process, and the system CA bundle parsed at each connect: under
     * valgrind on a busy machine that alone took the whole 2 s, and the connect then "timed out" at once) */
    int64_t deadline_ms = time_monotonic_ms() + timeout_ms;
    if ((t->tcp_fd = tcp_connect(host, port, deadline_ms, errbuf, errlen)) < 0)
        goto fail;
    keep_alive(t->tcp_fd);
    if (handshake(t, host, deadline_ms, errbuf, errlen) != 0)
        goto fail;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        snprintf(errbuf, errlen, "socketpair: %s", strerror(errno));
        goto fail;
    }
    t->relay_fd = pair[1];
    int flags = fcntl(t->relay_fd, F_GETFL);
    if (flags < 0 || fcntl(t->relay_fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        pthread_create(&t->thread, NULL, relay_main, t) != 0) {
        snprintf(errbuf, errlen, "cannot start the TLS relay: %s", strerror(errno));
        close(pair[0]);
        goto fail;
    }
    t->thread_started = 1;
    *fd = pair[0];
    return t;
fail:
    tls_free(t);
    return NULL;
}

int redis_tls_socket(const redis_tls *t)
{
    return t->tcp_fd;
}

void redis_tls_stop(redis_tls *t)
{
    if (t == NULL)
        return;
    if (t->thread_started)
        pthread_join(t->thread, NULL);
    tls_free(t);
}
