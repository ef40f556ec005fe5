/*
 * handlers — the endpoints router.c dispatches to. Each fills *reply (or suspends, for events) and returns
 * API_DONE or API_SUSPENDED. id is the {id} path segment, already parsed as a positive integer.
 */
#ifndef HOOKD_HANDLERS_H
#define HOOKD_HANDLERS_H

#include "api.h"
#include "auth.h"

int webhooks_create(api_request *req, const auth_identity *who, api_reply *reply);
int webhooks_list(api_request *req, const auth_identity *who, api_reply *reply);
int webhooks_get(api_request *req, const auth_identity *who, long long id, api_reply *reply);
int webhooks_delete(api_request *req, const auth_identity *who, long long id, api_reply *reply);
/* POST /api/v1/webhooks/{id}/rotate_secret: a new secret; the old one keeps signing for 24 h. */
int webhooks_rotate_secret(api_request *req, const auth_identity *who, long long id, api_reply *reply);
/* GET /api/v1/webhooks/{id}/deliveries: the last 100 attempts, newest first. */
int webhooks_deliveries(api_request *req, const auth_identity *who, long long id, api_reply *reply);
/* POST /api/v1/webhooks/{id}/test: one signed synthetic delivery, answered with its outcome. */
int webhooks_test(api_request *req, const auth_identity *who, long long id, api_reply *reply);
#define SECRET_ROTATION_GRACE_MS (24LL * 3600 * 1000)

int events_post(api_request *req, const auth_identity *who, api_reply *reply);

/* GET /healthz, /readyz — no token. */
int health_live(api_request *req, api_reply *reply);
int health_ready(api_request *req, api_reply *reply);
/* GET /metrics — Prometheus text, no token. */
int metrics_page(api_request *req, api_reply *reply);

#endif
