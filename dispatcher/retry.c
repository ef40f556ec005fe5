/* retry — see retry.h. */
#include "retry.h"

#include "config.h"
#include "kafka_config.h"
#include "kafka_topics.h"
#include "log.h"
#include "timeutil.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define TOPIC_MAX 256
#define CREATE_RETRY_MS 5000
#define DEAD_TIER (-1)
#define PARK_MAX_DELAY_MS 60000
/* Failed writes of retry records are logged one line per this long: the first at once, the ones after it counted
 * into the next line (note_write_failure). A refused ACL fails every pending record at every tick (TICK_MS). */
#define WRITE_FAILURE_LOG_MS 10000
/* A producer that met a fatal error (librdkafka's idempotent producer: its producer id refused, e.g. without the
 * IdempotentWrite that Write on some topic implies) takes no more writes, ever: it is replaced by a new one, first
 * at the next tick, then after each further fatal error after twice the wait before, up to the maximum. */
#define PRODUCER_REPLACE_MS 1000
#define PRODUCER_REPLACE_MAX_MS 60000

/* One record written and not acknowledged yet. Owned by the stage (listed in rs->pending). */
typedef struct pending {
    int tier;                    /* tier index, or DEAD_TIER */
    int dead_gone;               /* dead letter because of a 410 */
    int parked;                  /* a parked delivery, not a retry (not counted per tier) */
    char key[24];                /* webhook id */
    char *payload;               /* owned; librdkafka borrows it until the delivery report */
    size_t len;
    dispatch_handoff *handoff;   /* completed on acknowledgement; NULL for replay */
    int queued;                  /* handed to librdkafka, report not yet served */
    struct pending *prev, *next; /* every pending record */
    struct pending *redo_next;   /* produce again at the next tick */
} pending;

struct retry_stage {
    retry_policy policy;
    dispatcher_metrics *dm;               /* borrowed */
    event_loop *loop;                     /* borrowed, may be NULL */
    rd_kafka_t *rk;                       /* owned producer */
    rd_kafka_conf_t *conf;                /* owned: rk's configuration, for its replacement (replace_producer) */
    int producer_fatal;                   /* rk met a fatal error (error_cb): to be replaced */
    int64_t replace_at_ms;                /* not before then (monotonic) */
    int replace_wait_ms;                  /* the wait after the next replacement, if it fails too (reset by a
                                           * write that succeeds after failures) */
    size_t max_message_bytes;             /* its message.max.bytes (allow_record_headroom) */
    rd_kafka_queue_t *main_queue;         /* owned reference to the main queue */
    rd_kafka_queue_t *admin_queue;        /* owned: CreateTopics results */
    int event_fd;                         /* owned */
    int partitions, replication;
    char tier_topic[RETRY_MAX_STEPS][TOPIC_MAX];
    const char *tier_ptrs[RETRY_MAX_STEPS];
    char dead_topic[TOPIC_MAX];
    metric_series *tier_counter[RETRY_MAX_STEPS];
    int topics_ready, creating;
    int64_t next_create_ms;               /* monotonic */
    pending *pending;
    size_t pending_count;
    pending *redo_head;                   /* writes to produce again */
    int64_t write_failure_logged_ms;      /* when a failed write was last logged, 0 never (monotonic) */
    long long write_failures_unlogged;    /* failed writes since then */
    char write_failure_topic[TOPIC_MAX];  /* the last of them: its topic and error */
    char write_failure_error[128];
    int writes_failing;                   /* the last write failed: the next that succeeds says so */
    uint64_t rng;
};

/* ---- helpers -------------------------------------------------------------------------------------------- */

static double rand01(retry_stage *rs)
{
    rs->rng ^= rs->rng << 13;
    rs->rng ^= rs->rng >> 7;
    rs->rng ^= rs->rng << 17;
    return (double)(rs->rng >> 11) / 9007199254740992.0;
}

static void pending_unlink(retry_stage *rs, pending *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        rs->pending = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    rs->pending_count--;
}

static void pending_free(pending *p)
{
    free(p->payload);
    free(p);
}

static const char *topic_of(const retry_stage *rs, const pending *p)
{
    return p->tier == DEAD_TIER ? rs->dead_topic : rs->tier_topic[p->tier];
}

static void pending_written(retry_stage *rs, pending *p);

/* Logs the failed writes counted since the last line, if any, once WRITE_FAILURE_LOG_MS has passed (or force). */
static void log_write_failures(retry_stage *rs, int64_t now, int force)
{
    if (rs->write_failures_unlogged == 0 ||
        (!force && rs->write_failure_logged_ms != 0 && now - rs->write_failure_logged_ms < WRITE_FAILURE_LOG_MS))
        return;
    log_json(LOG_WARN, "retry record writes failed; trying again", "{s:I, s:s, s:s}", "failures",
             (json_int_t)rs->write_failures_unlogged, "topic", rs->write_failure_topic, "error",
             rs->write_failure_error);
    rs->write_failures_unlogged = 0;
    rs->write_failure_logged_ms = now;
}

/* One failed write of p (error: why), which is tried again: counted, and logged at most one line per
 * WRITE_FAILURE_LOG_MS (its event stays held, so nothing is lost; the log must not flood meanwhile). */
static void note_write_failure(retry_stage *rs, const pending *p, const char *error)
{
    metric_counter_add(rs->dm->retry_write_failures, 1);
    snprintf(rs->write_failure_topic, sizeof rs->write_failure_topic, "%s", topic_of(rs, p));
    snprintf(rs->write_failure_error, sizeof rs->write_failure_error, "%s", error);
    rs->write_failures_unlogged++;
    rs->writes_failing = 1;
    log_write_failures(rs, time_monotonic_ms(), 0);
}

/* A write succeeded: after failures, their last count and one line saying so, and the producer's replacement wait
 * back to its first step. */
static void note_write_success(retry_stage *rs)
{
    if (!rs->writes_failing)
        return;
    rs->writes_failing = 0;
    rs->replace_wait_ms = PRODUCER_REPLACE_MS; /* a producer works again: a later fatal error starts afresh */
    int64_t now = time_monotonic_ms();
    log_write_failures(rs, now, 1);
    log_json(LOG_INFO, "retry record writes succeed again", NULL);
}

/* Hands p to librdkafka; on a local refusal it waits for the next tick. A record larger than message.max.bytes
 * would be refused at every tick, and its event's offset never committed: it is given up, loudly. */
static void produce(retry_stage *rs, pending *p)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rs->rk, RD_KAFKA_V_TOPIC(topic_of(rs, p)), RD_KAFKA_V_KEY(p->key, strlen(p->key)),
        RD_KAFKA_V_VALUE(p->payload, p->len), RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->queued = 1;
        return;
    }
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
        log_json(LOG_ERROR, "retry record too large for kafka: the delivery is given up", "{s:s, s:s, s:I, s:I}",
                 "topic", topic_of(rs, p), "webhook_id", p->key, "bytes", (json_int_t)p->len, "max_bytes",
                 (json_int_t)rs->max_message_bytes);
        metric_counter_add(rs->dm->retry_too_large, 1);
        pending_written(rs, p);
        return;
    }
    note_write_failure(rs, p, rd_kafka_err2str(err));
    p->redo_next = rs->redo_head;
    rs->redo_head = p;
}

/* Takes ownership of payload and writes it. */
static void send_record(retry_stage *rs, int tier, long long webhook_id, char *payload, size_t len,
                        dispatch_handoff *handoff, int dead_gone, int parked)
{
    pending *p = calloc(1, sizeof *p);
    if (p == NULL) {
        log_json(LOG_ERROR, "out of memory writing a retry record (the event will be consumed again)", NULL);
        free(payload);
        return;
    }
    p->tier = tier;
    p->dead_gone = dead_gone;
    p->parked = parked;
    snprintf(p->key, sizeof p->key, "%lld", webhook_id);
    p->payload = payload;
    p->len = len;
    p->handoff = handoff;
    p->next = rs->pending;
    if (rs->pending != NULL)
        rs->pending->prev = p;
    rs->pending = p;
    rs->pending_count++;
    produce(rs, p);
}

/* Delivery report (served by rd_kafka_poll on the loop thread). */
static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    retry_stage *rs = opaque;
    pending *p = m->_private;
    if (p == NULL)
        return;
    p->queued = 0;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE && m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
            note_write_failure(rs, p, rd_kafka_err2str(m->err)); /* not retry_stage_free's purge */
        p->redo_next = rs->redo_head;
        rs->redo_head = p;
        return;
    }
    note_write_success(rs);
    if (p->tier == DEAD_TIER)
        metric_counter_add(p->dead_gone ? rs->dm->dead_gone : rs->dm->dead_exhausted, 1);
    else if (!p->parked) /* parked deliveries are counted when parked (dispatch) */
        metric_counter_add(rs->tier_counter[p->tier], 1);
    pending_written(rs, p);
}

/* p is done with (written, or given up): frees it and lets its event's offset go. */
static void pending_written(retry_stage *rs, pending *p)
{
    pending_unlink(rs, p);
    dispatch_handoff *h = p->handoff;
    pending_free(p);
    if (h != NULL)
        dispatch_handoff_done(h);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    retry_stage *rs = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        rs->producer_fatal = 1; /* served on the loop thread (rd_kafka_poll): replaced at the next tick */
    log_level level = err == RD_KAFKA_RESP_ERR__FATAL ? LOG_ERROR
                      : err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? LOG_DEBUG
                                                                                                      : LOG_WARN;
    log_json(level, "kafka producer error", "{s:s, s:s}", "error", rd_kafka_err2name((rd_kafka_resp_err_t)err),
             "reason", reason);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    log_json(level <= 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG, "librdkafka", "{s:s, s:s}", "facility", fac,
             "message", buf);
}

/* ---- topics --------------------------------------------------------------------------------------------- */

static void create_topics(retry_stage *rs)
{
    int n = rs->policy.tiers + 1;
    rd_kafka_NewTopic_t *topics[RETRY_MAX_STEPS + 1];
    char err[256];
    for (int i = 0; i < n; i++) {
        const char *name = i < rs->policy.tiers ? rs->tier_topic[i] : rs->dead_topic;
        topics[i] = rd_kafka_NewTopic_new(name, rs->partitions, rs->replication, err, sizeof err);
        if (topics[i] == NULL) {
            log_json(LOG_ERROR, "cannot describe a topic to create", "{s:s, s:s}", "topic", name, "error", err);
            for (int j = 0; j < i; j++)
                rd_kafka_NewTopic_destroy(topics[j]);
            rs->next_create_ms = time_monotonic_ms() + CREATE_RETRY_MS;
            return;
        }
    }
    rd_kafka_AdminOptions_t *admin = rd_kafka_AdminOptions_new(rs->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(admin, 10000, err, sizeof err);
    rd_kafka_AdminOptions_set_operation_timeout(admin, 10000, err, sizeof err);
    rd_kafka_CreateTopics(rs->rk, topics, (size_t)n, admin, rs->admin_queue);
    rd_kafka_AdminOptions_destroy(admin);
    for (int i = 0; i < n; i++)
        rd_kafka_NewTopic_destroy(topics[i]);
    rs->creating = 1;
}

/* Serves a CreateTopics result when one arrived. */
static void serve_admin(retry_stage *rs)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(rs->admin_queue, 0);
    if (ev == NULL)
        return;
    rs->creating = 0;
    int ok = rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!ok) {
        log_json(LOG_WARN, "creating the retry topics failed; trying again", "{s:s}", "error",
                 rd_kafka_event_error_string(ev));
    } else {
        size_t count = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &count);
        for (size_t i = 0; i < count; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            const char *name = rd_kafka_topic_result_name(res[i]);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
                log_json(LOG_INFO, "topic created", "{s:s}", "topic", name);
            } else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS &&
                       /* or created by the cluster's operators, who gave the dispatcher no Create ACL
                        * (kafka_topics.h): a metadata round trip on the event loop, once per topic and start */
                       !kafka_topics_exists_though_refused(rs->rk, name, e, 1000)) {
                ok = 0;
                log_json(LOG_WARN, "creating a retry topic failed; trying again", "{s:s, s:s}", "topic", name,
                         "error", rd_kafka_topic_result_error_string(res[i]));
            }
        }
    }
    rd_kafka_event_destroy(ev);
    if (ok)
        rs->topics_ready = 1;
    else
        rs->next_create_ms = time_monotonic_ms() + CREATE_RETRY_MS;
}

/* ---- lifecycle ------------------------------------------------------------------------------------------ */

/* What a retry or dead-letter record adds to its event's envelope, at most: up to RETRY_RECORD_MAX_ATTEMPTS
 * attempts with an error of RETRY_ERROR_MAX bytes each (escaped: twice that), the webhook's URL, a reason and a few
 * fields (~12 KiB); rounded up. */
#define RETRY_RECORD_HEADROOM_BYTES 32768

/* The retry producer takes messages RETRY_RECORD_HEADROOM_BYTES larger than producer-api's (the same
 * message.max.bytes, 1,000,000 by default, or KAFKA_MESSAGE_MAX_BYTES when set for both): the largest event
 * producer-api accepts then fits its retry record. With the default, 1,032,768 bytes, within a broker's default
 * record batch limit (1,048,588). */
static int allow_record_headroom(retry_stage *rs, rd_kafka_conf_t *conf, char *errbuf, size_t errlen)
{
    size_t events = 0;
    if (kafka_config_get_size(conf, "message.max.bytes", &events) != 0) {
        snprintf(errbuf, errlen, "kafka producer: message.max.bytes unreadable");
        return -1;
    }
    size_t records = events + RETRY_RECORD_HEADROOM_BYTES;
    if (records > 1000000000) /* librdkafka's own ceiling */
        records = 1000000000;
    rs->max_message_bytes = records;
    char text[32];
    snprintf(text, sizeof text, "%zu", records);
    return kafka_config_set(conf, "message.max.bytes", text, errbuf, errlen);
}

static void attach_queues(retry_stage *rs);

retry_stage *retry_stage_new(const retry_options *opts, event_loop *loop, dispatcher_metrics *dm, char *errbuf,
                             size_t errlen)
{
    retry_stage *rs = calloc(1, sizeof *rs);
    if (rs == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    rs->policy = *opts->policy;
    rs->dm = dm;
    rs->loop = loop;
    rs->event_fd = -1;
    rs->partitions = opts->partitions;
    rs->replication = opts->replication;
    rs->rng = (uint64_t)time_now_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    if (rs->rng == 0)
        rs->rng = 1;
    for (int t = 0; t < rs->policy.tiers; t++) {
        if (snprintf(rs->tier_topic[t], TOPIC_MAX, "%sretry.%s", opts->topic_prefix, opts->policy->tier_name[t]) >=
            TOPIC_MAX) {
            snprintf(errbuf, errlen, "TOPIC_PREFIX is too long");
            free(rs);
            return NULL;
        }
        rs->tier_ptrs[t] = rs->tier_topic[t];
        rs->tier_counter[t] = dm_tier_series(dm, rs->policy.tier_name[t]);
    }
    snprintf(rs->dead_topic, TOPIC_MAX, "%sdead", opts->topic_prefix);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char hostname[128] = "host", client_id[192];
    gethostname(hostname, sizeof hostname - 1);
    snprintf(client_id, sizeof client_id, "hookd-dispatcher-retry-%s-%d", hostname, (int)getpid());
    if (kafka_config_set(conf, "client.id", client_id, errbuf, errlen) != 0 ||
        kafka_config_set(conf, "enable.idempotence", "true", errbuf, errlen) != 0 ||
        kafka_config_set(conf, "acks", "all", errbuf, errlen) != 0 ||
        kafka_config_set(conf, "message.timeout.ms", "0", errbuf, errlen) != 0 || /* never give up locally */
        kafka_config_set(conf, "linger.ms", "25", errbuf, errlen) != 0 ||
        kafka_config_set(conf, "compression.type", "lz4", errbuf, errlen) != 0 ||
        /* batches the tier consumer's fetches take from every partition at once (common/kafka_config.h) */
        kafka_config_set(conf, "batch.size", KAFKA_RECORD_BATCH_MAX_BYTES, errbuf, errlen) != 0 ||
        kafka_config_set(conf, "socket.nagle.disable", "true", errbuf, errlen) != 0 ||
        /* retries and dead letters reach a broker that came back within a second, not up to 10 s later */
        kafka_config_set(conf, "reconnect.backoff.max.ms", "1000", errbuf, errlen) != 0 ||
        kafka_config_from_env(conf, errbuf, errlen) != 0 || allow_record_headroom(rs, conf, errbuf, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        free(rs);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, rs);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rs->replace_wait_ms = PRODUCER_REPLACE_MS;
    rs->conf = rd_kafka_conf_dup(conf);
    char kerr[512];
    rs->rk = rs->conf == NULL ? NULL : rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    if (rs->rk == NULL) {
        snprintf(errbuf, errlen, "kafka producer: %s", rs->conf == NULL ? "out of memory" : kerr);
        rd_kafka_conf_destroy(conf);
        if (rs->conf != NULL)
            rd_kafka_conf_destroy(rs->conf);
        free(rs);
        return NULL;
    }
    if (loop != NULL) {
        rs->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (rs->event_fd < 0 || event_loop_add(loop, rs->event_fd, EPOLLIN, LOOP_TAG_PRODUCER) != 0) {
            snprintf(errbuf, errlen, "producer queue: %s", strerror(errno));
            retry_stage_free(rs);
            return NULL;
        }
    }
    attach_queues(rs);
    create_topics(rs);
    return rs;
}

/* Takes rk's main queue (its delivery reports, woken through event_fd) and a queue for CreateTopics results. */
static void attach_queues(retry_stage *rs)
{
    rs->admin_queue = rd_kafka_queue_new(rs->rk);
    rs->main_queue = rd_kafka_queue_get_main(rs->rk);
    if (rs->event_fd >= 0) {
        static const uint64_t one = 1;
        rd_kafka_queue_io_event_enable(rs->main_queue, rs->event_fd, &one, sizeof one);
    }
}

/* Replaces a producer that met a fatal error with a new one of the same configuration. Its records still queued
 * are purged and written again through the new one (one that reached Kafka before the error may then be there
 * twice: its retry comes twice, as after a crash). No record is lost: each stays pending until a report says
 * written. */
static void replace_producer(retry_stage *rs)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(rs->conf);
    char kerr[512] = "out of memory";
    rd_kafka_t *fresh = conf == NULL ? NULL : rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    if (fresh == NULL) {
        if (conf != NULL)
            rd_kafka_conf_destroy(conf);
        log_json(LOG_ERROR, "retry producer not replaced; trying again", "{s:s}", "error", kerr);
        rs->replace_at_ms = time_monotonic_ms() + rs->replace_wait_ms;
        return;
    }
    char fatal[256] = "";
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(rs->rk, fatal, sizeof fatal);
    rd_kafka_purge(rs->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    /* the purged records' reports: written again (dr_msg_cb); at most ~100 ms on the loop, once per replacement */
    for (int i = 0; i < 10 && rd_kafka_outq_len(rs->rk) > 0; i++)
        rd_kafka_poll(rs->rk, 10);
    rd_kafka_poll(rs->rk, 0);
    for (pending *p = rs->pending; p != NULL; p = p->next) {
        if (p->queued) { /* its report did not come: the new producer writes it */
            p->queued = 0;
            p->redo_next = rs->redo_head;
            rs->redo_head = p;
        }
    }
    if (rs->event_fd >= 0)
        rd_kafka_queue_io_event_enable(rs->main_queue, -1, NULL, 0);
    rd_kafka_queue_destroy(rs->main_queue);
    rd_kafka_queue_destroy(rs->admin_queue);
    rd_kafka_destroy(rs->rk);
    rs->rk = fresh;
    attach_queues(rs);
    if (rs->creating) { /* its result went with the old producer's queue */
        rs->creating = 0;
        rs->next_create_ms = 0;
    }
    rs->producer_fatal = 0;
    metric_counter_add(rs->dm->retry_producer_replacements, 1);
    log_json(LOG_ERROR, "retry producer failed for good: replaced by a new one", "{s:s, s:s, s:I}", "error",
             rd_kafka_err2name(code), "reason", fatal, "pending", (json_int_t)rs->pending_count);
    rs->replace_at_ms = time_monotonic_ms() + rs->replace_wait_ms; /* a fatal error again: not before then */
    rs->replace_wait_ms = rs->replace_wait_ms * 2 > PRODUCER_REPLACE_MAX_MS ? PRODUCER_REPLACE_MAX_MS
                                                                             : rs->replace_wait_ms * 2;
}

void retry_stage_free(retry_stage *rs)
{
    if (rs == NULL)
        return;
    log_write_failures(rs, time_monotonic_ms(), 1);
    if (rs->main_queue != NULL) {
        rd_kafka_queue_io_event_enable(rs->main_queue, -1, NULL, 0);
        rd_kafka_queue_destroy(rs->main_queue);
    }
    if (rs->admin_queue != NULL)
        rd_kafka_queue_destroy(rs->admin_queue);
    if (rs->rk != NULL) {
        rd_kafka_purge(rs->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        /* purged reports: detach them from hand-offs that will never complete */
        for (pending *p = rs->pending; p != NULL; p = p->next)
            p->handoff = NULL;
        rd_kafka_poll(rs->rk, 100);
        rd_kafka_destroy(rs->rk);
    }
    if (rs->conf != NULL)
        rd_kafka_conf_destroy(rs->conf);
    while (rs->pending != NULL) {
        pending *p = rs->pending;
        pending_unlink(rs, p);
        pending_free(p);
    }
    if (rs->event_fd >= 0) {
        if (rs->loop != NULL)
            event_loop_del(rs->loop, rs->event_fd);
        close(rs->event_fd);
    }
    free(rs);
}

int retry_stage_tier_count(const retry_stage *rs)
{
    return rs->policy.tiers;
}

const char *const *retry_stage_tier_topics(const retry_stage *rs)
{
    return rs->tier_ptrs;
}

const char *retry_stage_dead_topic(const retry_stage *rs)
{
    return rs->dead_topic;
}

size_t retry_stage_pending(const retry_stage *rs)
{
    return rs->pending_count;
}

void retry_stage_serve(retry_stage *rs)
{
    if (rs->event_fd >= 0)
        loop_fd_drain(rs->event_fd);
    for (int i = 0; i < 64 && rd_kafka_poll(rs->rk, 0) > 0; i++)
        ;
}

void retry_stage_tick(retry_stage *rs)
{
    retry_stage_serve(rs);
    if (rs->producer_fatal && time_monotonic_ms() >= rs->replace_at_ms)
        replace_producer(rs);
    pending *redo = rs->redo_head;
    rs->redo_head = NULL;
    while (redo != NULL) {
        pending *p = redo;
        redo = p->redo_next;
        p->redo_next = NULL;
        produce(rs, p);
    }
    if (rs->creating)
        serve_admin(rs);
    else if (!rs->topics_ready && time_monotonic_ms() >= rs->next_create_ms)
        create_topics(rs);
    log_write_failures(rs, time_monotonic_ms(), 0);
}

int retry_stage_wait_topics(retry_stage *rs, int timeout_ms)
{
    int64_t deadline = time_monotonic_ms() + timeout_ms;
    while (!rs->topics_ready && time_monotonic_ms() < deadline) {
        retry_stage_tick(rs);
        usleep(50000);
    }
    return rs->topics_ready ? 0 : -1;
}

/* ---- the failure hook ----------------------------------------------------------------------------------- */

/* The tier a retry due after delay_ms waits in: the scheduled tier, or, when a Retry-After stretched the delay
 * past that tier's jitter range, the longest tier not longer than the delay (so the record does not hold the
 * scheduled tier's partition much longer than its own delay). */
static int tier_for_delay(const retry_policy *p, int scheduled, long long delay_ms)
{
    if (scheduled < 0 || delay_ms <= p->tier_delay_ms[scheduled] * 6 / 5)
        return scheduled;
    int best = scheduled;
    for (int t = 0; t < p->tiers; t++)
        if (p->tier_delay_ms[t] <= delay_ms && p->tier_delay_ms[t] > p->tier_delay_ms[best])
            best = t;
    return best;
}

/* The "retry scheduled" line, built without jansson (one per failed attempt, and per refusal that got its own
 * "delivery attempt" line). */
static void log_retry_scheduled(const failed_delivery *f, int attempt, const char *tier, long long delay_ms)
{
    log_line l;
    if (!log_line_begin(&l, LOG_INFO, "retry scheduled"))
        return;
    json_buf *b = &l.fields;
    json_buf_key(b, "event_id");
    json_buf_string(b, f->env->id);
    json_buf_key(b, "webhook_id");
    json_buf_int(b, f->webhook_id);
    json_buf_key(b, "attempt");
    json_buf_int(b, attempt);
    json_buf_key(b, "tier");
    json_buf_string(b, tier);
    json_buf_key(b, "delay_ms");
    json_buf_int(b, delay_ms);
    json_buf_key(b, "error");
    json_buf_string(b, f->result->error != NULL ? f->result->error : "");
    log_line_end(&l);
}

/* The tier of a delivery parked for the n-th time (times >= 1): the n-th tier, but none whose delay is over
 * PARK_MAX_DELAY_MS unless it is the first. A webhook that stays backlogged has its parked deliveries re-read
 * (and, still backlogged, written again) every ~30 s with the default schedule rather than every 5 s — each time
 * is a Kafka write and read of the record — and none waits more than a minute past the backlog's end. */
static int park_tier(const retry_policy *p, int times)
{
    int tier = 0;
    while (tier + 1 < p->tiers && tier + 1 < times && p->tier_delay_ms[tier + 1] <= PARK_MAX_DELAY_MS)
        tier++;
    return tier;
}

int retry_stage_on_failure(void *ctx, const failed_delivery *f, dispatch_handoff *handoff)
{
    retry_stage *rs = ctx;
    retry_record *rec = calloc(1, sizeof *rec);
    if (rec == NULL) {
        log_json(LOG_ERROR, "out of memory building a retry record (the event will be consumed again)", NULL);
        return 0;
    }
    if (f->history != NULL) {
        for (int i = 0; i < f->history->attempt_count; i++)
            retry_record_add_attempt(rec, &f->history->attempts[i]);
    }
    if (envelope_copy(&rec->env, f->env) != 0) {
        free(rec);
        log_json(LOG_ERROR, "out of memory building a retry record (the event will be consumed again)", NULL);
        return 0;
    }
    rec->webhook_id = f->webhook_id;
    int64_t now = time_now_ms();
    if (f->parked) { /* not a failure: the same attempt waits one tier delay (no jitter: due times stay in
                      * order within the tier) */
        rec->attempt = f->attempt;
        rec->parked = (f->history != NULL ? f->history->parked : 0) + 1;
        int tier = park_tier(&rs->policy, rec->parked);
        rec->due_ms = now + rs->policy.tier_delay_ms[tier];
        size_t len = 0;
        char *payload = retry_record_encode(rec, &len);
        retry_record_clear(rec);
        free(rec);
        if (payload == NULL) {
            log_json(LOG_ERROR, "cannot encode a retry record (the event will be consumed again)", NULL);
            return 0;
        }
        send_record(rs, tier, f->webhook_id, payload, len, handoff, 0, 1);
        return 0;
    }
    int tier;
    long long delay;
    const char *dead_reason = NULL;
    char reason[RETRY_ERROR_MAX];
    int gone = 0;
    {
        const delivery_result *res = f->result;
        attempt_record a;
        memset(&a, 0, sizeof a);
        a.attempt = f->attempt;
        a.at_ms = res->started_at_ms > 0 ? res->started_at_ms : now;
        a.status = res->status;
        a.latency_ms = (double)(long long)(res->latency_ms * 10 + 0.5) / 10.0;
        snprintf(a.error, sizeof a.error, "%s", res->error != NULL ? res->error : "");
        retry_record_add_attempt(rec, &a);
        long long retry_after = (res->status == 429 || res->status == 503) && res->retry_after_ms > 0
                                    ? res->retry_after_ms
                                    : 0;
        tier = retry_tier_for_attempt(&rs->policy, f->attempt);
        delay = retry_next_delay_ms(&rs->policy, f->attempt, rand01(rs), retry_after);
        if (res->status == 410) {
            dead_reason = "410 Gone";
            gone = 1;
        } else if (tier < 0 || delay < 0) {
            snprintf(reason, sizeof reason, "gave up after %d attempts", f->attempt);
            dead_reason = reason;
        } else {
            rec->attempt = f->attempt + 1;
            tier = tier_for_delay(&rs->policy, tier, delay);
        }
    }
    char *payload;
    size_t len = 0;
    if (dead_reason != NULL) {
        rec->attempt = f->attempt;
        rec->due_ms = now;
        rec->dead_ms = now;
        snprintf(rec->webhook_url, sizeof rec->webhook_url, "%s", f->url);
        snprintf(rec->reason, sizeof rec->reason, "%s", dead_reason);
        payload = retry_record_encode(rec, &len);
        if (!f->quiet) /* a summed refusal: counted as dead-lettered in its "deliveries refused" line */
            log_json(LOG_WARN, "delivery dead-lettered", "{s:s, s:I, s:i, s:s, s:s}", "event_id", f->env->id,
                     "webhook_id", (json_int_t)f->webhook_id, "attempts", rec->attempt_count, "reason", dead_reason,
                     "topic", rs->dead_topic);
        tier = DEAD_TIER;
    } else {
        rec->due_ms = now + delay;
        payload = retry_record_encode(rec, &len);
        if (!f->quiet) /* a summed refusal: its "deliveries refused" line stands for this one too */
            log_retry_scheduled(f, rec->attempt, rs->policy.tier_name[tier], delay);
    }
    retry_record_clear(rec);
    free(rec);
    if (payload == NULL) {
        log_json(LOG_ERROR, "cannot encode a retry record (the event will be consumed again)", NULL);
        return 0;
    }
    send_record(rs, tier, f->webhook_id, payload, len, handoff, gone, 0);
    return tier == DEAD_TIER;
}

int retry_stage_replay(retry_stage *rs, const retry_record *src)
{
    if (rs->policy.tiers == 0)
        return -1;
    retry_record *rec = calloc(1, sizeof *rec);
    if (rec == NULL)
        return -1;
    for (int i = 0; i < src->attempt_count; i++)
        retry_record_add_attempt(rec, &src->attempts[i]);
    if (envelope_copy(&rec->env, &src->env) != 0) {
        free(rec);
        return -1;
    }
    rec->webhook_id = src->webhook_id;
    rec->attempt = 1;
    rec->due_ms = time_now_ms();
    size_t len = 0;
    char *payload = retry_record_encode(rec, &len);
    long long id = rec->webhook_id;
    retry_record_clear(rec);
    free(rec);
    if (payload == NULL)
        return -1;
    send_record(rs, 0, id, payload, len, NULL, 0, 0);
    return 0;
}

/* ---- replay --------------------------------------------------------------------------------------------- */

static int replay_usage(void)
{
    fprintf(stderr, "usage: dispatcher replay --webhook ID [--since RFC3339] [--until RFC3339]\n");
    return 2;
}

int retry_replay_main(int argc, char **argv)
{
    long long webhook_id = 0;
    int64_t since = 0, until = INT64_MAX;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--webhook") == 0 && val != NULL) {
            char *end;
            webhook_id = strtoll(val, &end, 10);
            if (*end != '\0' || webhook_id <= 0)
                return replay_usage();
        } else if (strcmp(arg, "--since") == 0 && val != NULL) {
            if (time_parse_rfc3339(val, &since) != 0)
                return replay_usage();
        } else if (strcmp(arg, "--until") == 0 && val != NULL) {
            if (time_parse_rfc3339(val, &until) != 0)
                return replay_usage();
        } else {
            return replay_usage();
        }
        i++;
    }
    if (webhook_id <= 0)
        return replay_usage();
    char err[512];
    retry_policy policy;
    long partitions = 12, replication = 1;
    if (retry_policy_parse(config_string("RETRY_SCHEDULE", RETRY_DEFAULT_SCHEDULE), &policy, err, sizeof err) != 0 ||
        config_long("TOPIC_PARTITIONS", 12, 1, 10000, &partitions, err, sizeof err) != 0 ||
        config_long("TOPIC_REPLICATION", 1, 1, 100, &replication, err, sizeof err) != 0) {
        log_json(LOG_ERROR, "invalid configuration", "{s:s}", "error", err);
        return 2;
    }
    if (policy.tiers == 0) {
        log_json(LOG_ERROR, "invalid configuration", "{s:s}", "error", "RETRY_SCHEDULE=none: nothing to replay into");
        return 2;
    }
    const char *prefix = config_string("TOPIC_PREFIX", "webhooks.");
    dispatcher_metrics *dm = dm_new();
    retry_options ropts = {prefix, &policy, (int)partitions, (int)replication};
    retry_stage *rs = dm != NULL ? retry_stage_new(&ropts, NULL, dm, err, sizeof err) : NULL;
    if (rs == NULL) {
        log_json(LOG_ERROR, "kafka producer", "{s:s}", "error", dm != NULL ? err : "out of memory");
        dm_free(dm);
        return 1;
    }
    int rc = 1;
    rd_kafka_t *rk = NULL;
    long long replayed = 0, scanned = 0;
    if (retry_stage_wait_topics(rs, 30000) != 0) {
        log_json(LOG_ERROR, "the retry and dead-letter topics are not available", NULL);
        goto out;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char group[64];
    snprintf(group, sizeof group, "hookd-replay-%d", (int)getpid());
    if (kafka_config_set(conf, "group.id", group, err, sizeof err) != 0 ||
        kafka_config_set(conf, "enable.auto.commit", "false", err, sizeof err) != 0 ||
        kafka_config_set(conf, "enable.partition.eof", "true", err, sizeof err) != 0 ||
        kafka_config_from_env(conf, err, sizeof err) != 0) {
        rd_kafka_conf_destroy(conf);
        log_json(LOG_ERROR, "kafka consumer", "{s:s}", "error", err);
        goto out;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        log_json(LOG_ERROR, "kafka consumer", "{s:s}", "error", err);
        goto out;
    }
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, rs->dead_topic, NULL);
    rd_kafka_resp_err_t merr = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (merr != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 || md->topics[0].err != 0) {
        log_json(LOG_ERROR, "cannot read the dead-letter topic's metadata", "{s:s}", "error",
                 rd_kafka_err2str(merr != 0 ? merr : md->topic_cnt == 1 ? md->topics[0].err : merr));
        if (md != NULL)
            rd_kafka_metadata_destroy(md);
        goto out;
    }
    int nparts = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new(nparts);
    int64_t *high = calloc((size_t)nparts + 1, sizeof *high);
    int left = 0;
    for (int i = 0; i < nparts && high != NULL; i++) {
        int32_t part = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, rs->dead_topic, part, &lo, &hi, 10000) != 0) {
            log_json(LOG_ERROR, "cannot read the dead-letter topic's watermarks", "{s:i}", "partition", part);
            nparts = -1;
            break;
        }
        if (part < nparts)
            high[part] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(assign, rs->dead_topic, part)->offset = lo;
            left++;
        }
    }
    rd_kafka_metadata_destroy(md);
    if (nparts < 0 || high == NULL) {
        rd_kafka_topic_partition_list_destroy(assign);
        free(high);
        goto out;
    }
    if (left > 0)
        rd_kafka_assign(rk, assign);
    rd_kafka_topic_partition_list_destroy(assign);
    int64_t deadline = time_monotonic_ms() + 120000;
    while (left > 0 && time_monotonic_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        retry_stage_serve(rs);
        if (m == NULL)
            continue;
        int part = m->partition;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (part >= 0 && part < nparts && high[part] >= 0) {
                high[part] = -1;
                left--;
            }
        } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            log_json(LOG_WARN, "reading the dead-letter topic", "{s:s}", "error", rd_kafka_message_errstr(m));
        } else {
            scanned++;
            retry_record rec;
            if (retry_record_decode(m->payload, m->len, &rec, err, sizeof err) == 0) {
                if (rec.webhook_id == webhook_id && rec.dead_ms >= since && rec.dead_ms <= until &&
                    retry_stage_replay(rs, &rec) == 0)
                    replayed++;
                retry_record_clear(&rec);
            } else {
                log_json(LOG_WARN, "malformed dead letter skipped", "{s:i, s:I, s:s}", "partition", part, "offset",
                         (json_int_t)m->offset, "error", err);
            }
            if (part >= 0 && part < nparts && high[part] >= 0 && m->offset + 1 >= high[part]) {
                high[part] = -1;
                left--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    free(high);
    if (left > 0) {
        log_json(LOG_ERROR, "timed out reading the dead-letter topic", NULL);
        goto out;
    }
    deadline = time_monotonic_ms() + 60000;
    while (retry_stage_pending(rs) > 0 && time_monotonic_ms() < deadline) {
        rd_kafka_poll(rs->rk, 100);
        retry_stage_tick(rs);
    }
    if (retry_stage_pending(rs) > 0) {
        log_json(LOG_ERROR, "replayed records not acknowledged in time", "{s:I}", "pending",
                 (json_int_t)retry_stage_pending(rs));
        goto out;
    }
    log_json(LOG_INFO, "replay finished", "{s:I, s:I, s:I, s:s}", "webhook_id", (json_int_t)webhook_id, "scanned",
             (json_int_t)scanned, "hookd_dispatcher_replayed_total", (json_int_t)replayed, "topic",
             rs->tier_topic[0]);
    printf("replayed %lld\n", replayed);
    fflush(stdout);
    rc = 0;
out:
    if (rk != NULL) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    retry_stage_free(rs);
    dm_free(dm);
    return rc;
}
