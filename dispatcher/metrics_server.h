/*
 * metrics_server — GET /healthz, /readyz and /metrics on METRICS_ADDR, served by libmicrohttpd on its own
 * thread. It only reads: the metrics registry (rendered under its mutex) and the health atomics of
 * dispatcher_metrics.
 *
 *   /healthz  200 {"status":"ok"} while the process runs its loop
 *   /readyz   200 when Kafka is up (a broker connected and the group joined) and Redis answered; else 503,
 *             with {"status", "kafka", "redis", "stopping"}
 *   /metrics  Prometheus text
 *
 * Ownership: owns the MHD daemon; borrows dm, which must outlive the server.
 */
#ifndef HOOKD_METRICS_SERVER_H
#define HOOKD_METRICS_SERVER_H

#include "dispatcher_metrics.h"

#include <stddef.h>

typedef struct metrics_server metrics_server;

/* Starts listening on addr ("host:port"). Returns NULL with errbuf on failure. */
metrics_server *metrics_server_start(const char *addr, dispatcher_metrics *dm, char *errbuf, size_t errlen);

/* Stops the thread and frees the server. NULL is ignored. */
void metrics_server_stop(metrics_server *srv);

#endif
