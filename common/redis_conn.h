/*
 * redis_conn — one Redis connection that heals itself.
 *
 * Owns a hiredis context built from a redis:// URL (redis://[[user]:password@]host[:port][/db]), or a rediss:// one
 * for TLS: then the context's socket leads to a redis_tls relay (redis_tls.h) that holds the TLS connection, and
 * the extra CAs of REDIS_CA_FILE (read from the environment at open) are trusted besides the system's, and the
 * client certificate of REDIS_CLIENT_CERT_FILE / REDIS_CLIENT_KEY_FILE is presented when set. With REDIS_SENTINELS
 * (and REDIS_SENTINEL_MASTER, REDIS_SENTINEL_USERNAME, REDIS_SENTINEL_PASSWORD; read at open) every connect first asks Redis Sentinel where
 * the master is (redis_sentinel.h) and checks with ROLE that it is the master; the URL then gives only the scheme,
 * credentials and database. A write refused with READONLY (the server became a replica: a failover) drops the
 * connection and is tried once more on a new one, which the sentinels (or the URL's name, re-resolved) lead to the
 * new master; it was refused, not run, so it is never run twice. A command on a
 * broken connection reconnects once (AUTH and SELECT replayed) before giving up, and reconnects are spaced by a
 * short backoff so an outage never becomes a busy loop. Commands time out after REDIS_CONN_TIMEOUT_MS; a command
 * that timed out is not tried again (the server is there but stalled, and a second try on a new connection made
 * every caller wait twice as long: 4 s per API request against a frozen Redis, measured), and its connection is
 * dropped, since its reply could still arrive.
 *
 * Thread contract: a redis_conn is used by one thread at a time (callers keep one per thread or a pool).
 */
#ifndef HOOKD_REDIS_CONN_H
#define HOOKD_REDIS_CONN_H

#include "redis_tls.h"

#include <hiredis.h>
#include <stdatomic.h>
#include <stddef.h>

#define REDIS_CONN_TIMEOUT_MS 2000
#define REDIS_GATE_SLOW_MS 250 /* a failed connect that took this long closes the gate, as a timeout does */

typedef struct redis_conn redis_conn;

/* The --help rows (config_var initializers, config.h) of the settings redis_conn_open reads from the environment
 * besides the URL, for the tables of both binaries. */
#define REDIS_CONN_CONFIG_VARS \
    {"REDIS_CA_FILE", "", "PEM file of extra CAs trusted for a rediss:// server, added to the system's"}, \
    {"REDIS_CLIENT_CERT_FILE", "", \
     "PEM client certificate (chain allowed) for a rediss:// server that asks for one " \
     "(with REDIS_CLIENT_KEY_FILE)"}, \
    {"REDIS_CLIENT_KEY_FILE", "", "PEM private key of REDIS_CLIENT_CERT_FILE (unencrypted)"}, \
    {"REDIS_SENTINELS", "", \
     "Redis Sentinel addresses (host[:port],...; port 26379 by default): the master is asked of them " \
     "at each connect"}, \
    {"REDIS_SENTINEL_MASTER", "", "name of the master the sentinels monitor (required with REDIS_SENTINELS)"}, \
    {"REDIS_SENTINEL_USERNAME", "", \
     "ACL user of sentinels that require one (Redis 6.2+; with REDIS_SENTINEL_PASSWORD; empty: the default user)"}, \
    {"REDIS_SENTINEL_PASSWORD", "", "AUTH password of sentinels that require one (empty: none)"},

/* redis_gate — lets the connections that share it fail at once while Redis is known to hang.
 *
 * A Redis that accepts connections but does not answer costs each command a REDIS_CONN_TIMEOUT_MS wait. Where
 * commands run on threads that also serve other work (producer-api's HTTP loops), every request behind a timed-out
 * one waited too: 40 concurrent requests against a frozen Redis took up to 16 s, /healthz included. So the first
 * timeout (or a failed connect that took REDIS_GATE_SLOW_MS) closes the gate, and while it is closed the commands
 * of every connection sharing it fail at once, without touching the network. Only redis_gate_open() opens it:
 * its owner runs a prober that does (producer-api: store_pool.c), on a connection without the gate.
 *
 * A plain value owned by the caller, which must outlive the connections given it. Thread-safe (atomic). */
typedef struct redis_gate {
    atomic_int closed;
} redis_gate;

/* Closes the gate. Returns 1 when it was open. */
int redis_gate_close(redis_gate *gate);

/* Opens the gate (Redis answered the prober). Returns 1 when it was closed. */
int redis_gate_open(redis_gate *gate);

/* 1 while the gate is closed. */
int redis_gate_closed(redis_gate *gate);

/* Parses url and connects. Returns NULL with a reason in errbuf only when a setting is invalid: the URL; for
 * rediss://, REDIS_CA_FILE or the client certificate's files set but unreadable, or only one of the latter set;
 * REDIS_SENTINELS malformed or without REDIS_SENTINEL_MASTER. An unreachable server (or sentinel), or one whose
 * certificate does not verify, is not an error here (the first command reports it). The caller frees with
 * redis_conn_close(). */
redis_conn *redis_conn_open(const char *url, char *errbuf, size_t errlen);

/* Closes the connection and frees conn. NULL is ignored. */
void redis_conn_close(redis_conn *conn);

/* Runs one command given as argv (binary-safe). Returns a reply the caller frees with freeReplyObject(), or
 * NULL when Redis cannot be reached (after one reconnect attempt) or did not answer in REDIS_CONN_TIMEOUT_MS.
 * An error reply (REDIS_REPLY_ERROR) is returned as a reply, not NULL. */
redisReply *redis_conn_command(redis_conn *conn, int argc, const char **argv, const size_t *argvlen);

/* Like redis_conn_command with argv of NUL-terminated strings. */
redisReply *redis_conn_commandv(redis_conn *conn, int argc, const char **argv);

/* Why conn's last command (or the connect before it) failed, for /readyz: "unreachable" (the TCP connect or the name
 * lookup), "connection lost", "not answering" (a command timed out, or the gate is closed), "no sentinel answered",
 * "not the master", "authentication required" / "authentication refused" (NOAUTH; AUTH refused), "database
 * refused (SELECT)", "command not permitted by the ACL" (NOPERM), "loading its dataset", "busy running a script",
 * "replica without its master", or a TLS one (redis_tls.h: "TLS: server certificate not trusted", "TLS: client
 * certificate refused", "TLS handshake failed"). "unreachable" too when nothing failed yet. A static string;
 * read it on the thread that uses conn, right after the failure. */
const char *redis_conn_failure(const redis_conn *conn);

/* The underlying context (connected or NULL), for subscribe loops that need the fd. Owned by conn. */
redisContext *redis_conn_context(redis_conn *conn);

/* Makes conn's commands fail at once while gate is closed, and close it when one times out. gate is borrowed
 * (NULL: none, the default). Set before conn is used. */
void redis_conn_set_gate(redis_conn *conn, redis_gate *gate);

/* Drops the current connection (the next command reconnects). */
void redis_conn_reset(redis_conn *conn);

/* Drops the current connection when the server has closed it (or sent something nobody asked for), so that the
 * next command goes out on a new one. One non-blocking peek at the socket. For pipelines, which are not sent
 * twice: without it, a pipeline sent on a connection a restarted Redis had closed failed part way, and its
 * sender could not tell that none of it had run. Returns 1 when it dropped the connection, else 0. */
int redis_conn_drop_if_closed(redis_conn *conn);

/* Connects now if needed. Returns 0 when connected, -1 otherwise. */
int redis_conn_ensure(redis_conn *conn);

/* 1 when reply is Redis's READONLY error: a write refused (not run) because the server is a replica. */
int redis_reply_is_readonly(const redisReply *reply);

/* For pipelines that met a READONLY reply (redis_reply_is_readonly): logs it and drops the connection, so that the
 * next command reconnects (through the sentinels, when configured) to the master. */
void redis_conn_note_readonly(redis_conn *conn);

/* Opens a connection to host:port, plain (tls NULL) or through a redis_tls relay (tls: what it trusts and
 * presents), within timeout_ms, which also becomes the context's command timeout. Returns the context, *relay set
 * (NULL when plain), or NULL with a reason in errbuf. The caller ends it with redis_undial(ctx, *relay). */
redisContext *redis_dial(const char *host, int port, const redis_tls_files *tls, int timeout_ms, redis_tls **relay,
                         char *errbuf, size_t errlen);

/* Frees ctx (NULL ignored), then stops relay (NULL ignored). */
void redis_undial(redisContext *ctx, redis_tls *relay);

#endif
