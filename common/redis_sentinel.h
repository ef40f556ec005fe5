/*
 * redis_sentinel — where the Redis master is, asked of Redis Sentinel.
 *
 * A Redis kept highly available by Sentinel (the Bitnami chart's "replication with sentinel", a self-run
 * redis-sentinel set) has no fixed master address: after a failover a replica is the master. With REDIS_SENTINELS
 * (host[:port],... ; port 26379 by default) and REDIS_SENTINEL_MASTER (the monitored master's name), each new
 * connection of redis_conn first asks the sentinels, one at a time, `SENTINEL get-master-addr-by-name <name>`,
 * and connects where the first one that knows says; redis_conn then checks with ROLE that the server really is
 * the master (a sentinel can answer from a stale view) before using it. The sentinel that answered is asked first
 * next time. This follows the Sentinel clients guidelines (redis.io, "Sentinel client spec") without the optional
 * +switch-master subscription: a demoted master closes its clients' connections (Sentinel sends CLIENT KILL), and
 * a write refused with READONLY drops the connection too (redis_conn.c), so the next command asks again.
 *
 * Sentinels are reached like the server: plainly for redis://, over TLS (same CA and client certificate) for
 * rediss://. REDIS_SENTINEL_PASSWORD is sent with AUTH to sentinels that require one (requirepass in sentinel.conf),
 * as the password of REDIS_SENTINEL_USERNAME when that is set (a Redis 6.2+ sentinel's ACL user, e.g. one allowed
 * only the SENTINEL command).
 *
 * Ownership: redis_sentinels_new returns a value the caller frees with redis_sentinels_free. Thread contract: one
 * thread at a time (each redis_conn owns its own).
 */
#ifndef HOOKD_REDIS_SENTINEL_H
#define HOOKD_REDIS_SENTINEL_H

#include "redis_tls.h"

#include <stddef.h>

#define REDIS_SENTINELS_MAX 16
#define REDIS_SENTINEL_TIMEOUT_MS 500 /* per sentinel: connect, AUTH and the question */

typedef struct redis_sentinels redis_sentinels;

/* Parses list ("host[:port],host[:port]", IPv6 literals in brackets) and keeps master, username and password
 * (each NULL or "" for none). Returns NULL with a reason in errbuf when the list is empty, malformed or longer than
 * REDIS_SENTINELS_MAX, master is empty, or a username comes without a password. */
redis_sentinels *redis_sentinels_new(const char *list, const char *master, const char *username, const char *password,
                                     char *errbuf, size_t errlen);

/* Frees s. NULL is ignored. */
void redis_sentinels_free(redis_sentinels *s);

/* The master name asked about (REDIS_SENTINEL_MASTER). Owned by s. */
const char *redis_sentinels_master(const redis_sentinels *s);

/* How many sentinels s has, and the i-th one's host (owned by s) and *port, in REDIS_SENTINELS's order. */
int redis_sentinels_count(const redis_sentinels *s);
const char *redis_sentinels_at(const redis_sentinels *s, int i, int *port);

/* Asks the sentinels in turn, the one that answered last first, where the master is; tls is NULL for plain
 * connections. Returns 0 with its address in host (hostlen bytes) and *port, or -1 with the last sentinel's reason
 * in errbuf (none reachable, none knows the name, a refused AUTH). */
int redis_sentinels_find_master(redis_sentinels *s, const redis_tls_files *tls, char *host, size_t hostlen, int *port,
                                char *errbuf, size_t errlen);

#endif
