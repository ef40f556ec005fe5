/* Unit tests for redis_tls (common/redis_tls.c), the TLS relay behind rediss://: against a real TLS server on
 * 127.0.0.1 (OpenSSL on a thread of the test, with a self-signed certificate for IP 127.0.0.1), what the relay
 * carries, what it refuses, and what its timeout counts. End to end against redis-server with TLS:
 * tests/e2e/test_redis_tls.py. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "redis_conn.h"
#include "redis_tls.h"
#include "self_signed_server.h"
#include "timeutil.h"

/* What one test's server does with the one connection it accepts. */
typedef enum server_mode {
    SERVE_ECHO,    /* TLS handshake, then echo every byte until the client ends */
    SERVE_SILENT,  /* accept the TCP connection and say nothing until the client ends */
    SERVE_CLIENT_CERT_REQUIRED,       /* as ECHO, but wants a client certificate it trusts (it trusts none) */
    SERVE_CLIENT_CERT_REQUIRED_TLS12, /* the same, at most TLS 1.2: refused inside the handshake */
} server_mode;

/* One test's server: a listening socket on 127.0.0.1 and the thread that serves its first connection. */
typedef struct test_server {
    SSL_CTX *ctx;
    int listen_fd;
    int port;
    server_mode mode;
    pthread_t thread;
    char dir[64];       /* a temporary directory holding cert.pem */
    char cert_file[96]; /* the server's certificate (PEM), which clients trust as their CA file */
} test_server;

static void *serve(void *arg)
{
    test_server *s = arg;
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[512];
    if (s->mode == SERVE_SILENT) {
        while (read(fd, buf, sizeof buf) > 0) {
        }
        close(fd);
        return NULL;
    }
    SSL *ssl = SSL_new(s->ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
        int n;
        while ((n = SSL_read(ssl, buf, sizeof buf)) > 0)
            if (SSL_write(ssl, buf, n) != n)
                break;
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    close(fd);
    return NULL;
}

static void server_start(test_server *s, server_mode mode)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    snprintf(s->dir, sizeof s->dir, "/tmp/hookd-redis-tls-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->cert_file, sizeof s->cert_file, "%s/cert.pem", s->dir);
    s->ctx = self_signed_server_context("redis", "IP:127.0.0.1", s->cert_file);
    if (mode == SERVE_CLIENT_CERT_REQUIRED || mode == SERVE_CLIENT_CERT_REQUIRED_TLS12) /* no CA: any cert fails */
        SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    if (mode == SERVE_CLIENT_CERT_REQUIRED_TLS12)
        assert_int_equal(SSL_CTX_set_max_proto_version(s->ctx, TLS1_2_VERSION), 1);
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(listen(s->listen_fd, 4), 0);
    socklen_t len = sizeof addr;
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&addr, &len), 0);
    s->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

/* Ends the server: a thread still waiting in accept is woken by shutting the listening socket down. */
static void server_stop(test_server *s)
{
    shutdown(s->listen_fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    SSL_CTX_free(s->ctx);
    unlink(s->cert_file);
    rmdir(s->dir);
}

/* Bytes written into the descriptor redis_tls_start gave come back from the echo server, through the relay and
 * TLS; closing the descriptor ends the relay. */
static void test_the_relay_carries_bytes_both_ways(void **state)
{
    (void)state;
    test_server s;
    server_start(&s, SERVE_ECHO);
    redis_tls_files files = {s.cert_file, NULL, NULL};
    char error[256] = "";
    int fd = -1;
    redis_tls *t = redis_tls_start("127.0.0.1", s.port, &files, REDIS_CONN_TIMEOUT_MS, &fd, error, sizeof error);
    assert_non_null(t);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "PING\r\n", 6), 6);
    char reply[16] = "";
    size_t got = 0;
    while (got < 6) {
        ssize_t n = read(fd, reply + got, sizeof reply - 1 - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_string_equal(reply, "PING\r\n");
    close(fd);
    redis_tls_stop(t);
    server_stop(&s);
}

/* A server whose certificate no trusted CA signed is refused, and the reason says so. */
static void test_an_untrusted_certificate_is_refused(void **state)
{
    (void)state;
    test_server s;
    server_start(&s, SERVE_ECHO);
    redis_tls_files files = {NULL, NULL, NULL}; /* the system CAs only */
    char error[256] = "";
    int fd = -1;
    redis_tls *t = redis_tls_start("127.0.0.1", s.port, &files, REDIS_CONN_TIMEOUT_MS, &fd, error, sizeof error);
    assert_null(t);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(error, "certificate not trusted"));
    assert_string_equal(redis_tls_failure_kind(error), "TLS: server certificate not trusted");
    server_stop(&s);
}

/* TLS 1.3 (redis-server's default): the server refuses a client without a certificate after the client's side of
 * the handshake is done, so redis_tls_start succeeds; the relay hears the server's alert, ends hiredis's side, and
 * redis_tls_failure names it (what /readyz says). */
static void test_a_refused_client_certificate_is_named_after_the_handshake(void **state)
{
    (void)state;
    test_server s;
    server_start(&s, SERVE_CLIENT_CERT_REQUIRED);
    redis_tls_files files = {s.cert_file, NULL, NULL};
    char error[256] = "";
    int fd = -1;
    redis_tls *t = redis_tls_start("127.0.0.1", s.port, &files, REDIS_CONN_TIMEOUT_MS, &fd, error, sizeof error);
    if (t == NULL)
        fail_msg("redis_tls_start: %s", error);
    char buf[16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) < 0 && errno == EINTR) {
    }
    assert_int_equal(n, 0); /* the relay ended the connection */
    const char *failure = redis_tls_failure(t);
    assert_non_null(failure);
    assert_string_equal(failure, "TLS: client certificate refused");
    close(fd);
    redis_tls_stop(t);
    server_stop(&s);
}

/* Writes a self-signed certificate and its key to cert_path and key_path: a client certificate no server trusts. */
static void write_client_certificate(const char *cert_path, const char *key_path)
{
    SSL_CTX *ctx = self_signed_server_context("hookd-client", NULL, cert_path);
    FILE *f = fopen(key_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, SSL_CTX_get0_privatekey(ctx), NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    SSL_CTX_free(ctx);
}

/* TLS 1.2: the server refuses the certificate presented inside the handshake, so redis_tls_start fails, and its
 * reason reads as a refused client certificate, not as an untrusted server. */
static void test_a_refused_client_certificate_is_named_in_a_tls12_handshake(void **state)
{
    (void)state;
    test_server s;
    server_start(&s, SERVE_CLIENT_CERT_REQUIRED_TLS12);
    char cert[128], key[128];
    snprintf(cert, sizeof cert, "%s/client.pem", s.dir);
    snprintf(key, sizeof key, "%s/client.key", s.dir);
    write_client_certificate(cert, key);
    redis_tls_files files = {s.cert_file, cert, key};
    char error[256] = "";
    int fd = -1;
    redis_tls *t = redis_tls_start("127.0.0.1", s.port, &files, REDIS_CONN_TIMEOUT_MS, &fd, error, sizeof error);
    assert_null(t);
    assert_non_null(strstr(error, "client certificate refused"));
    assert_string_equal(redis_tls_failure_kind(error), "TLS: client certificate refused");
    unlink(cert);
    unlink(key);
    server_stop(&s);
}

/* A connect refused by the port (nobody listens) is the network's failure, not TLS's. */
static void test_a_refused_connect_is_not_a_tls_failure(void **state)
{
    (void)state;
    test_server s;
    server_start(&s, SERVE_SILENT);
    int port = s.port;
    server_stop(&s); /* the port is closed now */
    redis_tls_files files = {NULL, NULL, NULL};
    char error[256] = "";
    int fd = -1;
    assert_null(redis_tls_start("127.0.0.1", port, &files, REDIS_CONN_TIMEOUT_MS, &fd, error, sizeof error));
    assert_non_null(strstr(error, "onnection refused"));
    assert_null(redis_tls_failure_kind(error));
}

/* A server that takes the TCP connection and never answers the handshake costs timeout_ms, then "timed out". */
static void test_a_silent_server_times_out(void **state)
{
    (void)state;
    test_server s;
    server_start(&s, SERVE_SILENT);
    redis_tls_files files = {s.cert_file, NULL, NULL};
    char error[256] = "";
    int fd = -1;
    int64_t start = time_monotonic_ms();
    redis_tls *t = redis_tls_start("127.0.0.1", s.port, &files, 300, &fd, error, sizeof error);
    int64_t took = time_monotonic_ms() - start;
    assert_null(t);
    assert_non_null(strstr(error, "timed out"));
    assert_string_equal(redis_tls_failure_kind(error), "TLS handshake failed");
    assert_true(took >= 300);
    assert_true(took < 10000);
    server_stop(&s);
}

/* Writes the CA file into a FIFO after a delay, so that reading it (building the TLS context) takes that long. */
typedef struct slow_ca {
    const char *fifo;
    const char *pem_file;
    unsigned delay_ms;
} slow_ca;

static void *write_ca_late(void *arg)
{
    slow_ca *c = arg;
    usleep(c->delay_ms * 1000u);
    FILE *in = fopen(c->pem_file, "r");
    FILE *out = fopen(c->fifo, "w"); /* waits for the reader: redis_tls_start opening REDIS_CA_FILE */
    if (in != NULL && out != NULL) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            fwrite(buf, 1, n, out);
    }
    if (in != NULL)
        fclose(in);
    if (out != NULL)
        fclose(out);
    return NULL;
}

/* The timeout is the network's: building the TLS context (OpenSSL's first use, the system CA bundle and
 * REDIS_CA_FILE parsed) is not counted. Here reading the CA file takes longer than the whole timeout, as building
 * the context did under valgrind on a busy machine, where every `producer-api token create` against a TLS Redis
 * then failed with "connect ...: Connection timed out" before it had sent a packet. */
static void test_the_timeout_does_not_count_building_the_tls_context(void **state)
{
    (void)state;
    test_server s;
    server_start(&s, SERVE_ECHO);
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/ca.fifo", s.dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const int timeout_ms = 1000;
    slow_ca late = {fifo, s.cert_file, (unsigned)timeout_ms + 1500};
    pthread_t writer;
    assert_int_equal(pthread_create(&writer, NULL, write_ca_late, &late), 0);
    redis_tls_files files = {fifo, NULL, NULL};
    char error[256] = "";
    int fd = -1;
    int64_t start = time_monotonic_ms();
    redis_tls *t = redis_tls_start("127.0.0.1", s.port, &files, timeout_ms, &fd, error, sizeof error);
    int64_t took = time_monotonic_ms() - start;
    pthread_join(writer, NULL);
    assert_true(took >= (int64_t)late.delay_ms); /* the premise: the context took longer than the timeout */
    if (t == NULL)
        fail_msg("redis_tls_start failed after %lld ms: %s", (long long)took, error);
    close(fd);
    redis_tls_stop(t);
    unlink(fifo);
    server_stop(&s);
}

int main(void)
{
    /* as both services' mains: a TLS write (the relay's, or this server's close_notify) to a peer that has gone
     * must fail with EPIPE, not end the process */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_relay_carries_bytes_both_ways),
        cmocka_unit_test(test_an_untrusted_certificate_is_refused),
        cmocka_unit_test(test_a_refused_client_certificate_is_named_after_the_handshake),
        cmocka_unit_test(test_a_refused_client_certificate_is_named_in_a_tls12_handshake),
        cmocka_unit_test(test_a_refused_connect_is_not_a_tls_failure),
        cmocka_unit_test(test_a_silent_server_times_out),
        cmocka_unit_test(test_the_timeout_does_not_count_building_the_tls_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
