/* metrics_server — see metrics_server.h. */
#include "metrics_server.h"

#include "http_server.h"
#include "kafka_config.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The context every request carries as req->api (http_api.h leaves struct api_context to each program). */
struct api_context {
    dispatcher_metrics *dm; /* borrowed */
};

struct metrics_server {
    struct api_context context;
    http_server *http; /* owned */
};

/* What the port accepts of a request body: nothing it serves reads one. */
#define METRICS_BODY_LIMIT 1024
/* Prometheus, a kubelet's probes and an operator's curl: a few connections; the rest are closed on accept. */
#define METRICS_MAX_CONNECTIONS 64

static size_t body_limit(const char *method, const char *path)
{
    (void)method;
    (void)path;
    return METRICS_BODY_LIMIT;
}

static void readiness(const dispatcher_metrics *dm, api_reply *reply)
{
    int kafka = atomic_load(&dm->kafka_ok), redis = atomic_load(&dm->redis_ok);
    int stopping = atomic_load(&dm->stopping);
    int ready = kafka && redis && !stopping;
    /* same shape as producer-api's /readyz */
    const char *kafka_check = kafka ? "ok" : kafka_unready_reason(atomic_load(&dm->kafka_failure));
    json_t *checks = json_pack("{s:s, s:s}", "kafka", kafka_check, "redis",
                             redis ? "ok" : dm_redis_failure(dm));
    if (checks != NULL && stopping)
        json_object_set_new(checks, "shutdown", json_string("in progress"));
    api_reply_json(reply, ready ? 200 : 503,
                   checks ? json_pack("{s:s, s:o}", "status", ready ? "ok" : "unavailable", "checks", checks) : NULL);
    if (reply->body == NULL)
        api_reply_message(reply, 500, "out of memory");
}

static int dispatch(api_request *req, api_reply *reply)
{
    const dispatcher_metrics *dm = req->api->dm;
    int is_healthz = strcmp(req->path, "/healthz") == 0, is_readyz = strcmp(req->path, "/readyz") == 0;
    int is_metrics = strcmp(req->path, "/metrics") == 0;
    if (!is_healthz && !is_readyz && !is_metrics) {
        api_reply_message(reply, 404, "not found");
        return API_DONE;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        api_reply_message(reply, 405, "method not allowed");
        reply->allow = "GET, HEAD";
        return API_DONE;
    }
    if (is_healthz) {
        api_reply_json(reply, 200, json_pack("{s:s}", "status", "ok"));
    } else if (is_readyz) {
        readiness(dm, reply);
    } else {
        size_t len = 0;
        reply->text_owned = metrics_render(dm->reg, &len);
        if (reply->text_owned != NULL)
            reply->status = 200;
        else
            api_reply_message(reply, 500, "out of memory");
    }
    return API_DONE;
}

metrics_server *metrics_server_start(const char *addr, dispatcher_metrics *dm, char *errbuf, size_t errlen)
{
    metrics_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    srv->context.dm = dm;
    http_server_config config = {
        .listen_addr = addr,
        .addr_setting = "METRICS_ADDR",
        .threads = 1,
        .max_connections = METRICS_MAX_CONNECTIONS,
        .api = &srv->context,
        .dispatch = dispatch,
        .body_limit = body_limit,
    };
    srv->http = http_server_start(&config, errbuf, errlen);
    if (srv->http == NULL) {
        free(srv);
        return NULL;
    }
    return srv;
}

void metrics_server_stop(metrics_server *srv)
{
    if (srv == NULL)
        return;
    http_server_stop(srv->http, 0, NULL, NULL);
    free(srv);
}
