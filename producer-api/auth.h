/*
 * auth — who is calling: the API token from the `auth` header, the `auth` query parameter or
 * `Authorization: Bearer <token>`, looked up by its SHA-256 in the token cache (token_cache.h), and in Redis
 * when the cache does not have it. A revoked token stops working within TOKEN_CACHE_REFRESH.
 */
#ifndef HOOKD_AUTH_H
#define HOOKD_AUTH_H

#include "api.h"

typedef struct auth_identity {
    long long org;   /* organization of an organization token; 0 for a service token */
    int is_service;  /* 1 for a service token (may post events for any organization) */
} auth_identity;

/* Authenticates req. Returns 0 with *who filled; otherwise fills reply (401 unauthorized, or 503 when Redis
 * is unreachable) and returns -1. */
int auth_authenticate(api_request *req, auth_identity *who, api_reply *reply);

#endif
