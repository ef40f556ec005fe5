/* http_api — the reply helpers of http_api.h (the request functions live in http_server.c). */
#include "http_api.h"

void api_reply_json(api_reply *reply, int status, json_t *body)
{
    reply->status = status;
    json_decref(reply->body);
    reply->body = body;
}

void api_reply_message(api_reply *reply, int status, const char *message)
{
    api_reply_json(reply, status, json_pack("{s:s}", "message", message));
}
