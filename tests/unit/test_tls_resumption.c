/* Unit tests for delivery_http_prepare_ssl_ctx (common/delivery_http.c): a TLS 1.3 session stays resumable
 * after a connection used it, so a burst of new connections to one receiver all resume the one session libcurl
 * keeps for it. Real OpenSSL handshakes over in-memory BIO pairs, with a client context set up the way
 * libcurl 7.88 sets up each connection's (a new SSL_CTX per connection, SSL_SESS_CACHE_CLIENT |
 * SSL_SESS_CACHE_NO_INTERNAL, sessions kept by a new-session callback); the server is OpenSSL with its default
 * stateless tickets, as nginx and Python's ssl module use them. End to end (libcurl, a real receiver):
 * tests/e2e/test_delivery.py, test_new_connections_resume_the_tls_session. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "delivery_http.h"
#include "self_signed_server.h"

/* The client's session cache, as libcurl's: the latest session its connections were given (one receiver). */
static SSL_SESSION *cached;
static int sessions_stored;

static int new_session_cb(SSL *ssl, SSL_SESSION *session)
{
    (void)ssl;
    SSL_SESSION_free(cached);
    cached = session; /* returning 1 keeps the reference OpenSSL passed */
    sessions_stored++;
    return 1;
}

/* A server context with a fresh self-signed P-256 certificate; version is the highest it speaks. */
static SSL_CTX *server_ctx(int version)
{
    SSL_CTX *ctx = self_signed_server_context("receiver", NULL, NULL);
    SSL_CTX_set_max_proto_version(ctx, version);
    return ctx;
}

/* One client connection's context, made the way libcurl 7.88 makes one per connection; prepared by hookd's
 * callback when prepared is set. */
static SSL_CTX *client_ctx(int prepared)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the test's certificate is its own; not under test here */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    if (prepared)
        delivery_http_prepare_ssl_ctx(ctx, NULL, 0);
    return ctx;
}

/* One connection in progress: both ends over a BIO pair. */
typedef struct connection {
    SSL_CTX *client_ctx;
    SSL *client, *server;
} connection;

/* Opens a connection offering session (NULL: none) and completes its handshake, without the client reading
 * what the server sends after it (its session tickets). */
static void handshake(connection *c, SSL_CTX *server, int prepared, SSL_SESSION *session)
{
    c->client_ctx = client_ctx(prepared);
    c->client = SSL_new(c->client_ctx);
    c->server = SSL_new(server);
    assert_non_null(c->client);
    assert_non_null(c->server);
    BIO *client_bio = NULL, *server_bio = NULL;
    assert_int_equal(BIO_new_bio_pair(&client_bio, 0, &server_bio, 0), 1);
    SSL_set_bio(c->client, client_bio, client_bio);
    SSL_set_bio(c->server, server_bio, server_bio);
    SSL_set_connect_state(c->client);
    SSL_set_accept_state(c->server);
    if (session != NULL)
        assert_int_equal(SSL_set_session(c->client, session), 1);
    int client_done = 0, server_done = 0;
    for (int round = 0; round < 20 && !(client_done && server_done); round++) {
        if (!client_done)
            client_done = SSL_do_handshake(c->client) == 1;
        if (!server_done)
            server_done = SSL_do_handshake(c->server) == 1;
    }
    assert_true(client_done && server_done);
}

/* The client reads one byte of application data, and with it the session tickets sent before it. */
static void read_tickets(connection *c)
{
    char byte = 'x';
    assert_int_equal(SSL_write(c->server, &byte, 1), 1);
    assert_int_equal(SSL_read(c->client, &byte, 1), 1);
}

static void close_connection(connection *c)
{
    SSL_shutdown(c->client);
    SSL_free(c->client);
    SSL_free(c->server);
    SSL_CTX_free(c->client_ctx);
}

static void forget_sessions(void)
{
    SSL_SESSION_free(cached);
    cached = NULL;
    sessions_stored = 0;
}

/* Connection 1 brings a session; connection 2 resumes it and finishes its handshake before it reads its own
 * tickets (a burst: the others are starting meanwhile); connection 3 then offers the same session. Returns
 * whether connection 3 resumed; checks what holds either way. */
static int third_connection_resumes(int version, int prepared)
{
    SSL_CTX *server = server_ctx(version);
    connection first, second, third;
    handshake(&first, server, prepared, NULL);
    read_tickets(&first);
    assert_non_null(cached); /* the session cache got the first connection's session */
    assert_int_equal(SSL_version(first.client), version);
    SSL_SESSION *offered = cached;
    SSL_SESSION_up_ref(offered);
    handshake(&second, server, prepared, offered);
    assert_true(SSL_session_reused(second.client));
    handshake(&third, server, prepared, offered);
    int resumed = SSL_session_reused(third.client);
    int stored_before = sessions_stored;
    read_tickets(&second); /* a resumed connection's tickets still reach the cache */
    if (version == TLS1_3_VERSION)
        assert_true(sessions_stored > stored_before);
    close_connection(&first);
    close_connection(&second);
    close_connection(&third);
    SSL_SESSION_free(offered);
    SSL_CTX_free(server);
    forget_sessions();
    return resumed;
}

static void test_a_tls13_session_resumes_every_connection_of_a_burst(void **state)
{
    (void)state;
    assert_true(third_connection_resumes(TLS1_3_VERSION, 1));
}

/* The control: without the callback, OpenSSL 3 retires the session at the end of the second connection's
 * handshake, and the third does a full handshake although it offered it (what the callback is for). */
static void test_without_the_callback_openssl_retires_the_session_after_one_use(void **state)
{
    (void)state;
    assert_false(third_connection_resumes(TLS1_3_VERSION, 0));
}

/* TLS 1.2 is left as it was: its sessions are still stored and resumed. */
static void test_tls12_sessions_are_still_stored_and_resumed(void **state)
{
    (void)state;
    assert_true(third_connection_resumes(TLS1_2_VERSION, 1));
}

/* A connection that resumed with the callback set goes back to a normal client cache mode (the tickets it
 * reads after its handshake are stored), and a new context's mode is not changed before its handshake. */
static void test_the_cache_mode_is_restored_after_the_handshake(void **state)
{
    (void)state;
    SSL_CTX *server = server_ctx(TLS1_3_VERSION);
    connection c;
    handshake(&c, server, 1, NULL);
    assert_true(SSL_CTX_get_session_cache_mode(c.client_ctx) & SSL_SESS_CACHE_CLIENT);
    read_tickets(&c);
    assert_true(sessions_stored >= 1);
    assert_true(SSL_CTX_get_session_cache_mode(c.client_ctx) & SSL_SESS_CACHE_CLIENT);
    close_connection(&c);
    SSL_CTX *fresh = client_ctx(1);
    assert_int_equal(SSL_CTX_get_session_cache_mode(fresh), SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    assert_int_equal(SSL_CTX_get_mode(fresh) & SSL_MODE_RELEASE_BUFFERS, 0); /* buffers kept (the other job) */
    SSL_CTX_free(fresh);
    SSL_CTX_free(server);
    forget_sessions();
}

/* With a session log, every session the context's own new-session callback keeps is recorded under the
 * receiver's key, and the callback still runs (libcurl keeps its sessions as before). */
static void test_kept_sessions_are_logged_under_the_receivers_key(void **state)
{
    (void)state;
    SSL_CTX *server = server_ctx(TLS1_3_VERSION);
    delivery_http_session_log log;
    memset(&log, 0, sizeof log);
    connection c;
    c.client_ctx = client_ctx(0);
    delivery_http_prepare_ssl_ctx(c.client_ctx, &log, 0xfeedu);
    delivery_http_prepare_ssl_ctx(c.client_ctx, &log, 0xfeedu); /* twice: wrapped once */
    c.client = SSL_new(c.client_ctx);
    c.server = SSL_new(server);
    BIO *client_bio = NULL, *server_bio = NULL;
    assert_int_equal(BIO_new_bio_pair(&client_bio, 0, &server_bio, 0), 1);
    SSL_set_bio(c.client, client_bio, client_bio);
    SSL_set_bio(c.server, server_bio, server_bio);
    SSL_set_connect_state(c.client);
    SSL_set_accept_state(c.server);
    for (int round = 0; round < 20; round++) {
        SSL_do_handshake(c.client);
        SSL_do_handshake(c.server);
    }
    assert_int_equal(log.stored, 0); /* no ticket read yet */
    read_tickets(&c);
    assert_true(sessions_stored >= 1);
    assert_int_equal(log.stored, (unsigned long)sessions_stored); /* one entry per session the callback kept */
    assert_int_equal(log.keys[0], 0xfeedu);
    close_connection(&c);
    SSL_CTX_free(server);
    forget_sessions();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_tls13_session_resumes_every_connection_of_a_burst),
        cmocka_unit_test(test_without_the_callback_openssl_retires_the_session_after_one_use),
        cmocka_unit_test(test_tls12_sessions_are_still_stored_and_resumed),
        cmocka_unit_test(test_the_cache_mode_is_restored_after_the_handshake),
        cmocka_unit_test(test_kept_sessions_are_logged_under_the_receivers_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
