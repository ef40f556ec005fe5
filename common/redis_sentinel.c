/* redis_sentinel — see redis_sentinel.h. */
#include "redis_sentinel.h"

#include "redis_conn.h"

#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct redis_sentinels {
    struct {
        char host[256];
        int port;
    } at[REDIS_SENTINELS_MAX]; /* in the order REDIS_SENTINELS gives */
    int count;
    int first;        /* index asked first: the one that answered last */
    char master[128]; /* REDIS_SENTINEL_MASTER */
    char username[128]; /* REDIS_SENTINEL_USERNAME, "" for AUTH with the password alone */
    char password[256];
};

/* Parses one "host[:port]" (len bytes at text) into s->at[s->count]. Returns 0, or -1 when malformed. */
static int parse_one(redis_sentinels *s, const char *text, size_t len)
{
    char item[300];
    if (len == 0 || len >= sizeof item)
        return -1;
    memcpy(item, text, len);
    item[len] = '\0';
    char *host = item, *port_text = NULL;
    if (item[0] == '[') { /* [v6]:port */
        char *close = strchr(item, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return -1;
        *close = '\0';
        host = item + 1;
        port_text = close[1] == ':' ? close + 2 : NULL;
    } else {
        char *colon = strchr(item, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL)
            return -1; /* a bare IPv6 literal: its port would be ambiguous */
        if (colon != NULL) {
            *colon = '\0';
            port_text = colon + 1;
        }
    }
    long port = 26379;
    if (port_text != NULL) {
        char *end = NULL;
        port = strtol(port_text, &end, 10);
        if (end == port_text || *end != '\0' || port < 1 || port > 65535)
            return -1;
    }
    if (host[0] == '\0' || strlen(host) >= sizeof s->at[0].host || strpbrk(host, " \t/@?#") != NULL)
        return -1;
    strcpy(s->at[s->count].host, host);
    s->at[s->count].port = (int)port;
    s->count++;
    return 0;
}

redis_sentinels *redis_sentinels_new(const char *list, const char *master, const char *username, const char *password,
                                     char *errbuf, size_t errlen)
{
    if (master == NULL || master[0] == '\0' || strlen(master) >= sizeof ((redis_sentinels *)0)->master) {
        snprintf(errbuf, errlen, "REDIS_SENTINELS needs REDIS_SENTINEL_MASTER, the name the sentinels monitor "
                                 "(e.g. mymaster)");
        return NULL;
    }
    if (password != NULL && strlen(password) >= sizeof ((redis_sentinels *)0)->password) {
        snprintf(errbuf, errlen, "REDIS_SENTINEL_PASSWORD is too long");
        return NULL;
    }
    if (username != NULL && strlen(username) >= sizeof ((redis_sentinels *)0)->username) {
        snprintf(errbuf, errlen, "REDIS_SENTINEL_USERNAME is too long");
        return NULL;
    }
    if (username != NULL && username[0] != '\0' && (password == NULL || password[0] == '\0')) {
        snprintf(errbuf, errlen, "REDIS_SENTINEL_USERNAME needs REDIS_SENTINEL_PASSWORD, the user's password");
        return NULL;
    }
    redis_sentinels *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    for (const char *p = list; p != NULL;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && *p == ' ') { /* "a:1, b:2" */
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (s->count == REDIS_SENTINELS_MAX || parse_one(s, p, len) != 0) {
            snprintf(errbuf, errlen, "REDIS_SENTINELS must be host[:port] items separated by commas (at most %d), "
                                     "as in sentinel-0:26379,sentinel-1:26379",
                     REDIS_SENTINELS_MAX);
            free(s);
            return NULL;
        }
        p = comma != NULL ? comma + 1 : NULL;
    }
    strcpy(s->master, master);
    snprintf(s->username, sizeof s->username, "%s", username != NULL ? username : "");
    snprintf(s->password, sizeof s->password, "%s", password != NULL ? password : "");
    return s;
}

void redis_sentinels_free(redis_sentinels *s)
{
    free(s);
}

const char *redis_sentinels_master(const redis_sentinels *s)
{
    return s->master;
}

int redis_sentinels_count(const redis_sentinels *s)
{
    return s->count;
}

const char *redis_sentinels_at(const redis_sentinels *s, int i, int *port)
{
    *port = s->at[i].port;
    return s->at[i].host;
}

/* Asks sentinel i. Returns 0 with the master's address, or -1 with a reason in errbuf. */
static int ask(redis_sentinels *s, int i, const redis_tls_files *tls, char *host, size_t hostlen, int *port,
               char *errbuf, size_t errlen)
{
    char why[256] = "";
    redis_tls *relay = NULL;
    redisContext *ctx =
        redis_dial(s->at[i].host, s->at[i].port, tls, REDIS_SENTINEL_TIMEOUT_MS, &relay, why, sizeof why);
    int rc = -1;
    redisReply *reply = NULL;
    if (ctx == NULL)
        goto done;
    if (s->password[0] != '\0') {
        const char *auth_user[] = {"AUTH", s->username, s->password}, *auth_default[] = {"AUTH", s->password};
        reply = s->username[0] != '\0' ? redisCommandArgv(ctx, 3, auth_user, NULL)
                                        : redisCommandArgv(ctx, 2, auth_default, NULL);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            snprintf(why, sizeof why, "AUTH: %s", reply != NULL ? reply->str : ctx->errstr);
            goto done;
        }
        freeReplyObject(reply);
    }
    const char *question[] = {"SENTINEL", "get-master-addr-by-name", s->master};
    reply = redisCommandArgv(ctx, 3, question, NULL);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof why, "%s", reply != NULL ? reply->str : ctx->errstr);
        goto done;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        snprintf(why, sizeof why, "it monitors no master named %s", s->master);
        goto done;
    }
    long p = strtol(reply->element[1]->str, NULL, 10);
    if (reply->element[0]->len == 0 || reply->element[0]->len >= hostlen || p < 1 || p > 65535) {
        snprintf(why, sizeof why, "unusable master address");
        goto done;
    }
    memcpy(host, reply->element[0]->str, reply->element[0]->len + 1);
    *port = (int)p;
    rc = 0;
done:
    if (reply != NULL)
        freeReplyObject(reply);
    redis_undial(ctx, relay);
    if (rc != 0)
        snprintf(errbuf, errlen, "sentinel %s:%d: %s", s->at[i].host, s->at[i].port, why);
    return rc;
}

int redis_sentinels_find_master(redis_sentinels *s, const redis_tls_files *tls, char *host, size_t hostlen, int *port,
                                char *errbuf, size_t errlen)
{
    for (int k = 0; k < s->count; k++) {
        int i = (s->first + k) % s->count;
        if (ask(s, i, tls, host, hostlen, port, errbuf, errlen) == 0) {
            s->first = i;
            return 0;
        }
    }
    return -1;
}
