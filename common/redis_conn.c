/* redis_conn — see redis_conn.h. */
#include "redis_conn.h"

#include "log.h"
#include "redis_sentinel.h"
#include "redis_tls.h"
#include "timeutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct redis_conn {
    redisContext *ctx;        /* NULL while disconnected */
    char host[256];           /* server host name or address */
    int port;                 /* server TCP port */
    char password[256];       /* AUTH password, empty for none */
    char username[128];       /* AUTH user name (Redis 6 ACL), empty for the default user */
    int db;                   /* SELECT index */
    int64_t next_attempt_ms;  /* monotonic time before which no reconnect is tried (backoff) */
    int backoff_ms;           /* current backoff: 50 ms doubling to 2 s, reset on success */
    redis_gate *gate;         /* borrowed, NULL for none */
    int tls;                  /* rediss://: through a redis_tls relay */
    char ca_file[512];        /* REDIS_CA_FILE at open: extra CAs for rediss:// ("" for the system's only) */
    char cert_file[512];      /* REDIS_CLIENT_CERT_FILE at open: client certificate for rediss:// ("" for none) */
    char key_file[512];       /* REDIS_CLIENT_KEY_FILE at open: its key */
    redis_tls *relay;         /* owned while connected over TLS, else NULL */
    redis_sentinels *sentinels; /* owned; REDIS_SENTINELS at open: host and port come from them (NULL: from the URL) */
    const char *failure;      /* static: why the last command or connect failed (redis_conn_failure), NULL after one
                               * that succeeded */
};

/* The readiness reasons redis_conn_failure gives besides the TLS ones (redis_tls.h), one place for their text. */
#define FAILURE_UNREACHABLE "unreachable"
#define FAILURE_NOT_ANSWERING "not answering"

int redis_gate_close(redis_gate *gate)
{
    return atomic_exchange(&gate->closed, 1) == 0;
}

int redis_gate_open(redis_gate *gate)
{
    return atomic_exchange(&gate->closed, 0) == 1;
}

int redis_gate_closed(redis_gate *gate)
{
    return atomic_load(&gate->closed);
}

/* Closes conn's gate (if any) because a call waited too long for Redis; logs it once per closing. */
static void close_gate(redis_conn *conn)
{
    if (conn->gate != NULL && redis_gate_close(conn->gate))
        log_json(LOG_WARN, "redis hangs: commands fail at once until it answers again", "{s:s, s:i}", "host",
                 conn->host, "port", conn->port);
}

void redis_conn_set_gate(redis_conn *conn, redis_gate *gate)
{
    conn->gate = gate;
}

static int copy_part(CURLU *u, CURLUPart part, char *out, size_t outlen, int flags)
{
    char *value = NULL;
    out[0] = '\0';
    if (curl_url_get(u, part, &value, flags) != CURLUE_OK)
        return 0;
    int ok = strlen(value) < outlen;
    if (ok)
        strcpy(out, value);
    curl_free(value);
    return ok ? 0 : -1;
}

/* Copies the file path in environment variable name into out ("" when unset). Returns -1 with errbuf when it is too
 * long, or when tls is on and the file cannot be read. */
static int tls_file_setting(const char *name, int tls, char *out, size_t outlen, char *errbuf, size_t errlen)
{
    const char *value = getenv(name);
    if (value != NULL && strlen(value) >= outlen) {
        snprintf(errbuf, errlen, "%s is too long", name);
        return -1;
    }
    snprintf(out, outlen, "%s", value != NULL ? value : "");
    if (tls && out[0] != '\0' && access(out, R_OK) != 0) {
        snprintf(errbuf, errlen, "%s %s: %s", name, out, strerror(errno));
        return -1;
    }
    return 0;
}

redis_conn *redis_conn_open(const char *url, char *errbuf, size_t errlen)
{
    redis_conn *conn = calloc(1, sizeof *conn);
    CURLU *u = curl_url();
    char scheme[16], port[16], path[64];
    if (conn == NULL || u == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        goto err;
    }
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        copy_part(u, CURLUPART_SCHEME, scheme, sizeof scheme, 0) != 0 ||
        (strcmp(scheme, "redis") != 0 && strcmp(scheme, "rediss") != 0)) {
        snprintf(errbuf, errlen, "REDIS_URL must look like redis://[[user]:password@]host[:port][/db] "
                                 "(rediss:// for TLS)");
        goto err;
    }
    conn->tls = strcmp(scheme, "rediss") == 0;
    if (tls_file_setting("REDIS_CA_FILE", conn->tls, conn->ca_file, sizeof conn->ca_file, errbuf, errlen) != 0 ||
        tls_file_setting("REDIS_CLIENT_CERT_FILE", conn->tls, conn->cert_file, sizeof conn->cert_file, errbuf,
                         errlen) != 0 ||
        tls_file_setting("REDIS_CLIENT_KEY_FILE", conn->tls, conn->key_file, sizeof conn->key_file, errbuf,
                         errlen) != 0)
        goto err;
    if ((conn->cert_file[0] != '\0') != (conn->key_file[0] != '\0')) {
        snprintf(errbuf, errlen, "REDIS_CLIENT_CERT_FILE and REDIS_CLIENT_KEY_FILE go together: set both or neither");
        goto err;
    }
    const char *sentinels = getenv("REDIS_SENTINELS");
    if (sentinels != NULL && sentinels[0] != '\0' &&
        (conn->sentinels = redis_sentinels_new(sentinels, getenv("REDIS_SENTINEL_MASTER"),
                                               getenv("REDIS_SENTINEL_USERNAME"), getenv("REDIS_SENTINEL_PASSWORD"),
                                               errbuf, errlen)) == NULL)
        goto err;
    if (copy_part(u, CURLUPART_HOST, conn->host, sizeof conn->host, 0) != 0 || conn->host[0] == '\0' ||
        copy_part(u, CURLUPART_PORT, port, sizeof port, 0) != 0 ||
        copy_part(u, CURLUPART_USER, conn->username, sizeof conn->username, CURLU_URLDECODE) != 0 ||
        copy_part(u, CURLUPART_PASSWORD, conn->password, sizeof conn->password, CURLU_URLDECODE) != 0 ||
        copy_part(u, CURLUPART_PATH, path, sizeof path, 0) != 0) {
        snprintf(errbuf, errlen, "REDIS_URL has an invalid host, port, user or path");
        goto err;
    }
    /* an IPv6 literal comes back bracketed; hiredis wants it bare */
    size_t hlen = strlen(conn->host);
    if (conn->host[0] == '[' && conn->host[hlen - 1] == ']') {
        memmove(conn->host, conn->host + 1, hlen - 2);
        conn->host[hlen - 2] = '\0';
    }
    conn->port = port[0] ? atoi(port) : 6379;
    conn->db = 0;
    if (path[0] != '\0' && strcmp(path, "/") != 0) {
        char *end = NULL;
        long db = strtol(path + 1, &end, 10);
        if (end == path + 1 || *end != '\0' || db < 0 || db > 1000) {
            snprintf(errbuf, errlen, "REDIS_URL database must be a number, as in redis://host:6379/0");
            goto err;
        }
        conn->db = (int)db;
    }
    curl_url_cleanup(u);
    conn->backoff_ms = 50;
    redis_conn_ensure(conn);
    return conn;
err:
    curl_url_cleanup(u);
    if (conn != NULL)
        redis_sentinels_free(conn->sentinels);
    free(conn);
    return NULL;
}

void redis_conn_reset(redis_conn *conn)
{
    redis_undial(conn->ctx, conn->relay);
    conn->ctx = NULL;
    conn->relay = NULL;
}

void redis_conn_close(redis_conn *conn)
{
    if (conn == NULL)
        return;
    redis_conn_reset(conn);
    redis_sentinels_free(conn->sentinels);
    free(conn);
}

/* 1 when fd has something to read (an end-of-file, unasked bytes) or an error, seen with a non-blocking peek. */
static int socket_has_news(int fd)
{
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

int redis_conn_drop_if_closed(redis_conn *conn)
{
    if (conn->ctx == NULL)
        return 0;
    if (!socket_has_news(conn->ctx->fd) && (conn->relay == NULL || !socket_has_news(redis_tls_socket(conn->relay))))
        return 0; /* open, and nothing pending: the usual case */
    redis_conn_reset(conn); /* 0: closed by the server; > 0: unasked data; < 0: reset */
    return 1;
}

redisContext *redis_conn_context(redis_conn *conn)
{
    return conn->ctx;
}

redisContext *redis_dial(const char *host, int port, const redis_tls_files *tls, int timeout_ms, redis_tls **relay,
                         char *errbuf, size_t errlen)
{
    struct timeval timeout = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *ctx = NULL;
    char tls_error[256] = "";
    *relay = NULL;
    if (tls != NULL) {
        int fd = -1;
        *relay = redis_tls_start(host, port, tls, timeout_ms, &fd, tls_error, sizeof tls_error);
        if (*relay != NULL && (ctx = redisConnectFd(fd)) == NULL)
            close(fd);
    } else {
        ctx = redisConnectWithTimeout(host, port, timeout);
    }
    if (ctx == NULL || ctx->err) {
        snprintf(errbuf, errlen, "%s", tls_error[0] != '\0' ? tls_error : ctx != NULL ? ctx->errstr : "out of memory");
        redis_undial(ctx, *relay);
        *relay = NULL;
        return NULL;
    }
    redisSetTimeout(ctx, timeout);
    if (tls == NULL)
        redisEnableKeepAlive(ctx); /* over TLS the relay's TCP socket has it (on a socketpair it would fail) */
    return ctx;
}

void redis_undial(redisContext *ctx, redis_tls *relay)
{
    if (ctx != NULL)
        redisFree(ctx);
    redis_tls_stop(relay); /* after redisFree closed its socket: the relay sees that and ends */
}

/* Whether the command that just failed on ctx ran out of REDIS_CONN_TIMEOUT_MS (the socket timeout), given the
 * errno it left. hiredis 0.14 reports that as an I/O error with EAGAIN; hiredis 1.x has an error code of its own. */
static int command_timed_out(const redisContext *ctx, int err)
{
#ifdef REDIS_ERR_TIMEOUT
    if (ctx->err == REDIS_ERR_TIMEOUT)
        return 1;
#endif
    return ctx->err == REDIS_ERR_IO && (err == EAGAIN || err == EWOULDBLOCK);
}

/* The readiness reason for a command on conn's context that got no reply (timed_out: command_timed_out's answer):
 * what the TLS relay heard from the server if anything, else a timeout or a lost connection. */
static const char *no_reply_failure(const redis_conn *conn, int timed_out)
{
    const char *tls = redis_tls_failure(conn->relay);
    return tls != NULL ? tls : timed_out ? FAILURE_NOT_ANSWERING : "connection lost";
}

/* The readiness reason for an error reply, by its first word (Redis's error codes), else NULL for one that says
 * nothing about the server's state (a wrong type, a syntax error): the command ran. */
static const char *error_reply_failure(const redisReply *reply)
{
    static const struct {
        const char *code, *failure;
    } known[] = {
        {"NOAUTH ", "authentication required"},   /* REDIS_URL has no password, the server wants one */
        {"WRONGPASS ", "authentication refused"}, /* Redis 6+: wrong user or password */
        {"NOPERM ", "command not permitted by the ACL"},
        {"LOADING ", "loading its dataset"},
        {"BUSY ", "busy running a script"},
        {"MASTERDOWN ", "replica without its master"},
    };
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR || reply->str == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strncmp(reply->str, known[i].code, strlen(known[i].code)) == 0)
            return known[i].failure;
    return NULL;
}

/* Sends a command on conn's fresh context ctx during the handshake; returns 0 when the reply is not an error, else
 * -1 with conn->failure set (refusal when Redis answered an error without a code error_reply_failure knows). */
static int handshake(redis_conn *conn, redisContext *ctx, int argc, const char **argv, const char *refusal)
{
    redisReply *reply = redisCommandArgv(ctx, argc, argv, NULL);
    if (reply == NULL) {
        conn->failure = no_reply_failure(conn, command_timed_out(ctx, errno));
        log_json(LOG_WARN, "redis handshake failed", "{s:s, s:s, s:s}", "command", argv[0], "error", ctx->errstr,
                 "reason", conn->failure);
        return -1;
    }
    int ok = reply->type != REDIS_REPLY_ERROR;
    if (!ok) {
        const char *known = error_reply_failure(reply);
        conn->failure = known != NULL ? known : refusal;
        log_json(LOG_ERROR, "redis handshake refused", "{s:s, s:s}", "command", argv[0], "error", reply->str);
    }
    freeReplyObject(reply);
    return ok ? 0 : -1;
}

/* With sentinels: whether the server ctx reached is the master (ROLE's first element), as a sentinel's answer may
 * be stale during a failover. Returns 0 when it is. */
static int check_master_role(redis_conn *conn, redisContext *ctx)
{
    redisReply *reply = redisCommand(ctx, "ROLE");
    const char *role = reply == NULL                    ? ctx->errstr /* no answer */
                       : reply->type == REDIS_REPLY_ERROR ? reply->str /* e.g. LOADING */
                       : reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                               reply->element[0]->type == REDIS_REPLY_STRING
                           ? reply->element[0]->str /* master, slave, sentinel */
                           : "?";
    int master = strcmp(role, "master") == 0;
    if (!master)
        log_json(LOG_WARN, "redis server named by the sentinels is not the master (yet): asking again later",
                 "{s:s, s:s, s:i, s:s}", "master", redis_sentinels_master(conn->sentinels), "host", conn->host,
                 "port", conn->port, "role", role);
    if (reply != NULL)
        freeReplyObject(reply);
    return master ? 0 : -1;
}

/* A connect that failed: close the gate when it took long, and space the next one by the backoff. */
static void connect_failed(redis_conn *conn, int64_t started_ms)
{
    if (time_monotonic_ms() - started_ms >= REDIS_GATE_SLOW_MS)
        close_gate(conn); /* a connect that hangs (a black-holed address) is as slow as a stall */
    conn->next_attempt_ms = started_ms + conn->backoff_ms;
    conn->backoff_ms = conn->backoff_ms * 2 > 2000 ? 2000 : conn->backoff_ms * 2;
}

int redis_conn_ensure(redis_conn *conn)
{
    if (conn->ctx != NULL)
        return 0;
    int64_t now = time_monotonic_ms();
    if (now < conn->next_attempt_ms)
        return -1;
    char error[256] = "";
    redis_tls_files files = {conn->ca_file, conn->cert_file, conn->key_file};
    if (conn->sentinels != NULL) {
        char host[sizeof conn->host];
        int port = 0;
        if (redis_sentinels_find_master(conn->sentinels, conn->tls ? &files : NULL, host, sizeof host, &port, error,
                                        sizeof error) != 0) {
            log_json(LOG_WARN, "redis master unknown: no sentinel answered", "{s:s, s:s, s:i}", "master",
                     redis_sentinels_master(conn->sentinels), "error", error, "retry_in_ms", conn->backoff_ms);
            conn->failure = "no sentinel answered";
            connect_failed(conn, now);
            return -1;
        }
        if (strcmp(host, conn->host) != 0 || port != conn->port) {
            log_json(LOG_INFO, "redis master found by the sentinels", "{s:s, s:s, s:i}", "master",
                     redis_sentinels_master(conn->sentinels), "host", host, "port", port);
            strcpy(conn->host, host);
            conn->port = port;
        }
    }
    redisContext *ctx =
        redis_dial(conn->host, conn->port, conn->tls ? &files : NULL, REDIS_CONN_TIMEOUT_MS, &conn->relay, error,
                   sizeof error);
    if (ctx == NULL) {
        log_json(LOG_WARN, "redis unreachable", "{s:s, s:i, s:s, s:i}", "host", conn->host, "port", conn->port,
                 "error", error, "retry_in_ms", conn->backoff_ms);
        const char *tls_kind = conn->tls ? redis_tls_failure_kind(error) : NULL;
        conn->failure = tls_kind != NULL ? tls_kind : FAILURE_UNREACHABLE;
        connect_failed(conn, now);
        return -1;
    }
    char db_text[16];
    snprintf(db_text, sizeof db_text, "%d", conn->db);
    const char *auth_user[] = {"AUTH", conn->username, conn->password};
    const char *auth_default[] = {"AUTH", conn->password};
    const char *select[] = {"SELECT", db_text};
    const char **auth = conn->username[0] != '\0' ? auth_user : auth_default;
    int auth_argc = conn->username[0] != '\0' ? 3 : 2;
    conn->ctx = ctx; /* from here a refusal drops it with redis_conn_reset */
    if ((conn->password[0] != '\0' && handshake(conn, ctx, auth_argc, auth, "authentication refused") != 0) ||
        (conn->db != 0 && handshake(conn, ctx, 2, select, "database refused (SELECT)") != 0)) {
        redis_conn_reset(conn);
        conn->next_attempt_ms = now + 2000;
        return -1;
    }
    if (conn->sentinels != NULL && check_master_role(conn, ctx) != 0) {
        conn->failure = "not the master";
        redis_conn_reset(conn);
        connect_failed(conn, now);
        return -1;
    }
    conn->backoff_ms = 50;
    conn->next_attempt_ms = 0;
    return 0;
}

int redis_reply_is_readonly(const redisReply *reply)
{
    return reply != NULL && reply->type == REDIS_REPLY_ERROR && reply->str != NULL &&
           strncmp(reply->str, "READONLY", 8) == 0;
}

void redis_conn_note_readonly(redis_conn *conn)
{
    log_json(LOG_WARN, "redis refused a write: the server is a read-only replica now (a failover?), reconnecting",
             "{s:s, s:i}", "host", conn->host, "port", conn->port);
    redis_conn_reset(conn);
}

redisReply *redis_conn_command(redis_conn *conn, int argc, const char **argv, const size_t *argvlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (conn->gate != NULL && redis_gate_closed(conn->gate)) {
            conn->failure = FAILURE_NOT_ANSWERING;
            return NULL; /* Redis hangs: fail now rather than wait for it */
        }
        if (redis_conn_ensure(conn) != 0)
            return NULL;
        redisReply *reply = redisCommandArgv(conn->ctx, argc, argv, argvlen);
        if (redis_reply_is_readonly(reply)) {
            /* refused, not run: a replica since a failover (or a REDIS_URL naming a replica). A new connection
             * reaches the master if the URL's name (or the sentinels) now lead there, so try once more on it */
            freeReplyObject(reply);
            redis_conn_note_readonly(conn);
            continue;
        }
        if (reply != NULL) {
            conn->failure = error_reply_failure(reply); /* NULL for an answer, or an error that says nothing of Redis */
            return reply;
        }
        int timed_out = command_timed_out(conn->ctx, errno);
        conn->failure = no_reply_failure(conn, timed_out); /* before the reset ends the relay */
        log_json(LOG_WARN, timed_out ? "redis command timed out" : "redis command failed", "{s:s, s:s}", "command",
                 argv[0], "error", conn->ctx->errstr);
        redis_conn_reset(conn); /* the reply of a timed-out command could still arrive: never reuse the connection */
        if (timed_out) {
            close_gate(conn);
            return NULL; /* Redis is there but stalled: a second try would only double the caller's wait */
        }
        /* else a stale connection (server restarted, connection reset): try once more on a new one */
    }
    return NULL;
}

const char *redis_conn_failure(const redis_conn *conn)
{
    return conn->failure != NULL ? conn->failure : FAILURE_UNREACHABLE;
}

redisReply *redis_conn_commandv(redis_conn *conn, int argc, const char **argv)
{
    return redis_conn_command(conn, argc, argv, NULL);
}
