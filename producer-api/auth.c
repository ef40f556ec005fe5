/* auth — see auth.h. */
#include "auth.h"

#include "token_cache.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The presented token, or NULL. */
static const char *presented_token(api_request *req)
{
    const char *token = api_header(req, "auth");
    if (token != NULL && token[0] != '\0')
        return token;
    const char *authorization = api_header(req, "Authorization");
    if (authorization != NULL && strncasecmp(authorization, "Bearer ", 7) == 0) {
        token = authorization + 7;
        while (*token == ' ')
            token++;
        if (*token != '\0')
            return token;
    }
    token = api_query(req, "auth");
    if (token != NULL && token[0] != '\0')
        return token;
    return NULL;
}

int auth_authenticate(api_request *req, auth_identity *who, api_reply *reply)
{
    const char *token = presented_token(req);
    if (token == NULL || strlen(token) > 256) {
        api_reply_message(reply, 401, "unauthorized");
        return -1;
    }
    char digest[SHA256_HEX_LEN + 1];
    secret_sha256_hex(token, strlen(token), digest);
    token_grant grant = {0};
    uint64_t generation = 0;
    if (token_cache_get(req->api->tokens, digest, &grant, &generation)) {
        who->org = grant.org;
        who->is_service = grant.is_service;
        return 0;
    }
    webhook_store *store = store_pool_acquire(req->api->stores);
    store_status status = token_store_lookup(store, token, &who->org, &who->is_service);
    store_pool_release(req->api->stores, store);
    if (status == STORE_OK) {
        grant.org = who->org;
        grant.is_service = who->is_service;
        token_cache_put(req->api->tokens, digest, &grant, generation);
    }
    if (status == STORE_OK)
        return 0;
    if (status == STORE_UNAVAILABLE) {
        api_reply_message(reply, 503, "storage unavailable, retry later");
        snprintf(reply->retry_after, sizeof reply->retry_after, "1");
    } else {
        api_reply_message(reply, 401, "unauthorized");
    }
    return -1;
}
