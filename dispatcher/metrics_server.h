/*
 * metrics_server — GET (or HEAD) /healthz, /readyz and /metrics on METRICS_ADDR, served by common/http_server on
 * one loop thread of its own (at most 64 connections). It only reads: the metrics registry (rendered under its
 * mutex) and the health atomics of dispatcher_metrics. Other paths get a JSON 404, other methods a 405.
 *
 *   /healthz  200 {"status":"ok"} while the process runs its loop
 *   /readyz   200 when Kafka is up (a broker connected and the group joined) and Redis answered; else 503,
 *             with {"status", "kafka", "redis", "stopping"}
 *   /metrics  Prometheus text
 *
 * Ownership: owns the HTTP server; borrows dm, which must outlive it.
 */
#ifndef HOOKD_METRICS_SERVER_H
#define HOOKD_METRICS_SERVER_H

#include "dispatcher_metrics.h"

#include <stddef.h>

typedef struct metrics_server metrics_server;

/* Starts listening on addr ("host:port", host an IP address or localhost). Returns NULL with errbuf on failure. */
metrics_server *metrics_server_start(const char *addr, dispatcher_metrics *dm, char *errbuf, size_t errlen);

/* Stops the thread (requests in progress are cut off) and frees the server. NULL is ignored. */
void metrics_server_stop(metrics_server *srv);

#endif
