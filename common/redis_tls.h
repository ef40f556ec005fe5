/*
 * redis_tls — rediss:// (Redis over TLS) for a hiredis that has no TLS (Debian 12's hiredis 0.14).
 *
 * hiredis speaks plain RESP over a file descriptor. redis_tls_start opens the TLS connection itself and gives
 * hiredis one end of a socketpair; a thread of the connection's own relays between the other end and the TLS
 * connection. So every command, pipeline and socket timeout of redis_conn works unchanged over TLS, and managed
 * Redis services that take TLS only (Azure Cache for Redis, ElastiCache with in-transit encryption, Memorystore
 * with TLS) need no proxy sidecar.
 *
 * What is checked: TLS 1.2 or later; the server's certificate chain against the system CAs plus, when given, the
 * PEM file ca_file (REDIS_CA_FILE); the certificate's name against host (a DNS name, sent as SNI too, or an IP
 * address, matched against the certificate's IP addresses). With files->cert_file and files->key_file
 * (REDIS_CLIENT_CERT_FILE, REDIS_CLIENT_KEY_FILE), that certificate (PEM, chain allowed) is presented to a server that asks for one, as a
 * redis-server with TLS does by default (tls-auth-clients yes).
 *
 * Ownership: redis_tls_start returns the relay and, in *fd, the descriptor for hiredis (redisConnectFd), which
 * hiredis then owns. The caller closes that descriptor first (redisFree), then calls redis_tls_stop, which waits
 * for the relay's thread (it ends as soon as either side closes) and frees everything.
 *
 * Thread contract: start and stop on the thread that owns the redis_conn; the relay's thread touches only its own
 * relay. The process must ignore SIGPIPE (both mains do, first thing): OpenSSL writes to the server's socket with
 * write(2), and a server that has gone would otherwise end the process.
 */
#ifndef HOOKD_REDIS_TLS_H
#define HOOKD_REDIS_TLS_H

#include <stddef.h>

typedef struct redis_tls redis_tls;

/* What a TLS connection trusts and presents; each "" (or NULL) for none. Borrowed for the call. */
typedef struct redis_tls_files {
    const char *ca_file;   /* REDIS_CA_FILE: extra CAs (PEM) trusted besides the system's */
    const char *cert_file; /* REDIS_CLIENT_CERT_FILE: the client certificate (PEM, chain allowed) */
    const char *key_file;  /* REDIS_CLIENT_KEY_FILE: its private key (PEM, unencrypted) */
} redis_tls_files;

/* Connects to host:port over TCP and completes the TLS handshake within timeout_ms (counted from the TCP connect:
 * building the TLS context from files comes first and is not counted), then starts the relay.
 * Returns the relay with *fd set, or NULL with a reason in errbuf (unreachable, refused, timed out, a certificate
 * that does not verify, or files that cannot be used). */
redis_tls *redis_tls_start(const char *host, int port, const redis_tls_files *files, int timeout_ms, int *fd,
                           char *errbuf, size_t errlen);

/* The TCP socket to the server (owned by t), for redis_conn_drop_if_closed's peek: the relay ends a connection the
 * server closed, but a pipeline sent before it has done so would fail part way, so the server's end-of-file (or an
 * alert, or unasked bytes) the relay has not taken yet is looked for there too. */
int redis_tls_socket(const redis_tls *t);

/* Why the relay's TLS connection ended, when the server said why: "TLS: client certificate refused" (its alert
 * after a TLS 1.3 handshake: no certificate sent, or one it does not accept), else NULL. A static string. Set by
 * the relay before it closes hiredis's end, so a command that failed on the connection can ask before
 * redis_tls_stop. t NULL: NULL. */
const char *redis_tls_failure(const redis_tls *t);

/* The kind of failure a redis_tls_start error text (errbuf) describes, for readiness checks: "TLS: server
 * certificate not trusted", "TLS: client certificate refused" (TLS 1.2 refuses it in the handshake), "TLS handshake
 * failed" (anything else in the handshake, a timeout included), or NULL when the TCP connect (or the name lookup)
 * failed. A static string. */
const char *redis_tls_failure_kind(const char *error);

/* Waits for the relay to end (the caller closed the descriptor start gave it) and frees it. NULL is ignored. */
void redis_tls_stop(redis_tls *t);

#endif
