/* http_api — the reply helpers of http_api.h (the request functions live in http_server.c). */
#include "http_api.h"

#include <stdlib.h>

void api_reply_json(api_reply *reply, int status, json_t *body)
{
    reply->status = status;
    json_decref(reply->body);
    reply->body = body;
    free(reply->json_owned);
    reply->json_owned = NULL;
}

void api_reply_json_text(api_reply *reply, int status, char *text)
{
    json_decref(reply->body);
    reply->body = NULL;
    free(reply->json_owned);
    reply->json_owned = text;
    reply->status = status;
    if (text == NULL)
        api_reply_message(reply, 500, "out of memory");
}

void api_reply_message(api_reply *reply, int status, const char *message)
{
    api_reply_json(reply, status, json_pack("{s:s}", "message", message));
}
