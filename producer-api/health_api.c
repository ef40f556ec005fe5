/*
 * health_api — GET /healthz (the process answers) and GET /readyz (Redis answers PING and a Kafka broker
 * answers a metadata request with the topics present), GET /metrics (Prometheus text). No token needed.
 */
#include "event_producer.h"
#include "handlers.h"

int health_live(api_request *req, api_reply *reply)
{
    (void)req;
    api_reply_json(reply, 200, json_pack("{s:s}", "status", "ok"));
    return API_DONE;
}

int health_ready(api_request *req, api_reply *reply)
{
    webhook_store *store = store_pool_acquire(req->api->stores);
    int redis_ok = webhook_store_ping(store) == 0;
    const char *redis_check = redis_ok ? "ok" : redis_conn_failure(webhook_store_conn(store)); /* static */
    store_pool_release(req->api->stores, store);
    int kafka_ok = event_producer_ready(req->api->producer, 1000);
    int ready = redis_ok && kafka_ok;
    api_reply_json(reply, ready ? 200 : 503,
                   json_pack("{s:s, s:{s:s, s:s}}", "status", ready ? "ok" : "unavailable", "checks", "redis",
                             redis_check, "kafka",
                             kafka_ok ? "ok" : event_producer_unready_reason(req->api->producer)));
    return API_DONE;
}

int metrics_page(api_request *req, api_reply *reply)
{
    reply->status = 200;
    reply->text_owned = metrics_render(req->api->metrics, NULL);
    if (reply->text_owned == NULL)
        api_reply_message(reply, 500, "out of memory");
    return API_DONE;
}
