/* metrics_server — see metrics_server.h. */
#include "metrics_server.h"

#include "config.h"
#include "log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics_server {
    struct MHD_Daemon *daemon;   /* owned */
    dispatcher_metrics *dm;      /* borrowed */
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, const char *type, char *body,
                             size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    metrics_server *srv = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json",
                     strdup("{\"error\":\"method not allowed\"}"), 30);
    if (strcmp(url, "/healthz") == 0) {
        char *body = strdup("{\"status\":\"ok\"}");
        return reply(conn, MHD_HTTP_OK, "application/json", body, body ? strlen(body) : 0);
    }
    if (strcmp(url, "/readyz") == 0) {
        int kafka = atomic_load(&srv->dm->kafka_ok), redis = atomic_load(&srv->dm->redis_ok);
        int stopping = atomic_load(&srv->dm->stopping);
        int ready = kafka && redis && !stopping;
        char *body = malloc(160);
        if (body == NULL)
            return MHD_NO;
        /* same shape as producer-api's /readyz */
        int n = snprintf(body, 160, "{\"status\":\"%s\",\"checks\":{\"kafka\":\"%s\",\"redis\":\"%s\"%s}}",
                         ready ? "ok" : "unavailable", kafka ? "ok" : "unreachable", redis ? "ok" : "unreachable",
                         stopping ? ",\"shutdown\":\"in progress\"" : "");
        return reply(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", body, (size_t)n);
    }
    if (strcmp(url, "/metrics") == 0) {
        size_t len = 0;
        char *text = metrics_render(srv->dm->reg, &len);
        if (text == NULL)
            return MHD_NO;
        return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len);
    }
    char *body = strdup("{\"error\":\"not found\"}");
    return reply(conn, MHD_HTTP_NOT_FOUND, "application/json", body, body ? strlen(body) : 0);
}

metrics_server *metrics_server_start(const char *addr, dispatcher_metrics *dm, char *errbuf, size_t errlen)
{
    char host[256];
    int port = 0;
    if (config_split_host_port(addr, host, sizeof host, &port) != 0) {
        snprintf(errbuf, errlen, "METRICS_ADDR must be host:port, got \"%s\"", addr);
        return NULL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    if (host[0] != '\0' && strchr(host, ':') != NULL) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) {
            snprintf(errbuf, errlen, "METRICS_ADDR host must be an IP address, got \"%s\"", host);
            return NULL;
        }
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        const char *h = host[0] != '\0' ? host : "0.0.0.0";
        if (strcmp(h, "localhost") == 0)
            h = "127.0.0.1";
        if (inet_pton(AF_INET, h, &a4->sin_addr) != 1) {
            snprintf(errbuf, errlen, "METRICS_ADDR host must be an IP address, got \"%s\"", host);
            return NULL;
        }
    }
    metrics_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    srv->dm = dm;
    srv->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, srv, MHD_OPTION_SOCK_ADDR, &ss,
                                   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_CONNECTION_LIMIT,
                                   (unsigned int)64, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        snprintf(errbuf, errlen, "cannot listen on METRICS_ADDR %s", addr);
        free(srv);
        return NULL;
    }
    return srv;
}

void metrics_server_stop(metrics_server *srv)
{
    if (srv == NULL)
        return;
    MHD_stop_daemon(srv->daemon);
    free(srv);
}
