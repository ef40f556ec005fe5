/* http_server — see http_server.h. */
#include "http_server.h"

#include "api_metrics.h"
#include "config.h"
#include "log.h"
#include "timeutil.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct http_server {
    struct MHD_Daemon *daemon;  /* libmicrohttpd daemon, owned */
    const api_context *api;     /* borrowed */
    atomic_int in_flight;       /* requests started and not yet completed */
};

/* Per-request state, created on the first callback of a request and freed by request_completed(). */
typedef struct request_state {
    api_request req;     /* what handlers see */
    size_t body_cap;     /* bytes allocated for req.body */
    size_t body_limit;   /* the route's limit */
    int too_large;       /* the body went past body_limit: answer 413 */
    int suspended;       /* waiting for api_request_resume() */
    int64_t started_us;  /* monotonic time of the first callback, for the latency histogram */
    http_server *server; /* owner */
} request_state;

const char *api_header(api_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

const char *api_query(api_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, name);
}

void api_request_suspend(api_request *req)
{
    request_state *state = (request_state *)req;
    state->suspended = 1;
    MHD_suspend_connection(req->connection);
}

void api_request_resume(api_request *req)
{
    MHD_resume_connection(req->connection);
}

/* Writes reply to the connection and releases what it owns. Returns MHD's verdict. */
static enum MHD_Result send_reply(struct MHD_Connection *connection, api_reply *reply)
{
    char *text = NULL;
    size_t len = 0;
    const char *content_type = "application/json";
    if (reply->text_owned != NULL) {
        text = reply->text_owned;
        reply->text_owned = NULL;
        content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (reply->text != NULL) {
        text = strdup(reply->text);
        content_type = "text/plain; charset=utf-8";
    } else if (reply->body != NULL) {
        text = json_dumps(reply->body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    } else {
        text = strdup("");
    }
    json_decref(reply->body);
    reply->body = NULL;
    if (text == NULL)
        return MHD_NO;
    len = strlen(text);
    struct MHD_Response *response = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (response == NULL) {
        free(text);
        return MHD_NO;
    }
    if (len > 0)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (reply->retry_after[0] != '\0')
        MHD_add_response_header(response, MHD_HTTP_HEADER_RETRY_AFTER, reply->retry_after);
    if (reply->allow != NULL)
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, reply->allow);
    enum MHD_Result result = MHD_queue_response(connection, (unsigned int)reply->status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result send_message(struct MHD_Connection *connection, int status, const char *message)
{
    api_reply reply = {0};
    api_reply_message(&reply, status, message);
    return send_reply(connection, &reply);
}

/* Appends a chunk of body, or marks the request too large (the rest is read and dropped). */
static void append_body(request_state *state, const char *data, size_t len)
{
    if (state->too_large || state->req.body_len + len > state->body_limit) {
        state->too_large = 1;
        return;
    }
    if (state->req.body_len + len + 1 > state->body_cap) {
        size_t cap = state->body_cap ? state->body_cap : 4096;
        while (cap < state->req.body_len + len + 1)
            cap *= 2;
        char *grown = realloc(state->req.body, cap);
        if (grown == NULL) {
            state->too_large = 1;
            return;
        }
        state->req.body = grown;
        state->body_cap = cap;
    }
    memcpy(state->req.body + state->req.body_len, data, len);
    state->req.body_len += len;
    state->req.body[state->req.body_len] = '\0';
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *connection, const char *url,
                                      const char *method, const char *version, const char *upload_data,
                                      size_t *upload_data_size, void **con_cls)
{
    http_server *server = cls;
    request_state *state = *con_cls;
    (void)version;

    if (state == NULL) {
        state = calloc(1, sizeof *state);
        if (state == NULL)
            return MHD_NO;
        state->server = server;
        state->req.api = server->api;
        state->req.connection = connection;
        state->req.method = method;
        state->req.path = url;
        state->body_limit = router_body_limit(method, url);
        state->started_us = time_monotonic_us();
        atomic_fetch_add(&server->in_flight, 1);
        *con_cls = state;
        const char *length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long declared = length != NULL ? strtoull(length, NULL, 10) : 0;
        if (declared > state->body_limit) {
            state->too_large = 1;
            /* A modestly oversized body is read and dropped so the client, still sending, gets to read the 413
             * (answering early makes the kernel reset the connection under its feet). A huge one is refused at
             * once: reading it would cost more than a reset client. */
            if (declared > (unsigned long long)state->body_limit * 16)
                return send_message(connection, 413, "request body too large");
        }
        return MHD_YES;
    }

    if (*upload_data_size > 0) {
        append_body(state, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (state->too_large) {
        api_metrics_record(server->api->series, api_metrics_route(url), 413, time_monotonic_us() - state->started_us);
        return send_message(connection, 413, "request body too large");
    }

    api_reply reply = {0};
    int outcome;
    if (state->suspended) {
        state->suspended = 0;
        outcome = state->req.resume_handler(&state->req, &reply);
    } else {
        outcome = router_dispatch(&state->req, &reply);
    }
    if (outcome == API_SUSPENDED)
        return MHD_YES;
    api_metrics_record(server->api->series, api_metrics_route(url), reply.status,
                       time_monotonic_us() - state->started_us);
    return send_reply(connection, &reply);
}

static void request_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                              enum MHD_RequestTerminationCode code)
{
    http_server *server = cls;
    request_state *state = *con_cls;
    (void)connection;
    (void)code;
    if (state == NULL)
        return;
    if (state->req.async_free != NULL)
        state->req.async_free(state->req.async_state);
    free(state->req.body);
    free(state);
    *con_cls = NULL;
    atomic_fetch_sub(&server->in_flight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    log_json(LOG_WARN, "http", "{s:s}", "detail", line);
}

http_server *http_server_start(const char *listen_addr, int threads, const api_context *api, char *errbuf,
                               size_t errlen)
{
    char host[128];
    int port = 0;
    if (config_split_host_port(listen_addr, host, sizeof host, &port) != 0) {
        snprintf(errbuf, errlen, "LISTEN_ADDR must be host:port, got \"%s\"", listen_addr);
        return NULL;
    }
    struct sockaddr_storage addr = {0};
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                         MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    if (host[0] == '\0') {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(errbuf, errlen, "LISTEN_ADDR host must be an IP address, got \"%s\"", host);
        return NULL;
    }

    http_server *server = calloc(1, sizeof *server);
    if (server == NULL)
        return NULL;
    server->api = api;
    atomic_init(&server->in_flight, 0);
    server->daemon = MHD_start_daemon(
        /* the logger first: MHD prints to stderr itself (not JSON) for options parsed before it */
        flags, (uint16_t)port, NULL, NULL, &access_handler, server, MHD_OPTION_EXTERNAL_LOGGER, &mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
        MHD_OPTION_NOTIFY_COMPLETED, &request_completed, server, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)20000, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_END);
    if (server->daemon == NULL) {
        snprintf(errbuf, errlen, "cannot listen on %s", listen_addr);
        free(server);
        return NULL;
    }
    return server;
}

void http_server_stop(http_server *server, long long grace_ms, void (*before_drain)(void *), void *arg)
{
    if (server == NULL)
        return;
    MHD_socket listen_fd = MHD_quiesce_daemon(server->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    if (before_drain != NULL)
        before_drain(arg);
    int64_t deadline = time_monotonic_ms() + grace_ms;
    while (atomic_load(&server->in_flight) > 0 && time_monotonic_ms() < deadline)
        usleep(10 * 1000);
    MHD_stop_daemon(server->daemon);
    free(server);
}
