/* event_producer — see event_producer.h. */
#include "event_producer.h"

#include "event_types.h"
#include "kafka_config.h"
#include "kafka_topics.h"
#include "log.h"
#include "uuid.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* The first replacement of a producer that met a fatal error waits this long after it (ticks of 100 ms), each
 * further one twice the wait before, up to the maximum; a write that succeeds starts the waits afresh. */
#define REPLACE_FIRST_TICKS 10
#define REPLACE_MAX_TICKS 600

/* One librdkafka producer and its handles. The current one takes every send; one replaced after a fatal error
 * is retired: its messages are purged (each request told "not written"), and the poller frees it once no thread
 * uses it and it holds nothing. Owned by its event_producer. */
typedef struct producer_instance {
    rd_kafka_t *rk;                              /* owned */
    rd_kafka_topic_t *topics[EVENT_TYPE_COUNT];  /* owned */
    rd_kafka_queue_t *reports;                   /* the main queue (delivery reports, errors), a reference */
    int users;                                   /* threads using it now (under the producer's lock) */
    struct producer_instance *next;              /* the retired list */
} producer_instance;

struct event_producer {
    pthread_mutex_t lock;                        /* guards current, retired and every instance's users */
    producer_instance *current;                  /* takes sends; replaced only by the poller thread */
    producer_instance *retired;                  /* replaced ones, freed by the poller when drained */
    rd_kafka_conf_t *conf;                       /* owned: the configuration, for replacements */
    size_t max_message_bytes;                    /* librdkafka's message.max.bytes (KAFKA_MESSAGE_MAX_BYTES) */
    char topic_names[EVENT_TYPE_COUNT][128];     /* prefix + event type */
    event_producer_options options;              /* copy; topic_prefix points at the environment */
    int reports_fd;                              /* eventfd, owned: librdkafka writes it when reports queue up */
    pthread_t poller;                            /* creates topics; serves reports nobody else served */
    atomic_int stopping;                         /* set by destroy: the poller exits */
    atomic_int topics_ready;                     /* the eight topics exist */
    atomic_int last_failure;                     /* authentication or TLS error since the last ready check, 0 none
                                                  * (on_error, librdkafka's thread; kafka_unready_reason) */
    atomic_int fatal;                            /* the current instance met a fatal error: the poller replaces it */
    atomic_int written;                          /* a write succeeded since the last replacement */
    long long replace_wait_ticks;                /* poller only: the wait after the next replacement */
    long long replace_at_tick;                   /* poller only: no replacement before this tick */
};

/* The current instance, marked used until release(): a replaced instance is not freed under a thread using it. */
static producer_instance *acquire(event_producer *producer)
{
    pthread_mutex_lock(&producer->lock);
    producer_instance *instance = producer->current;
    instance->users++;
    pthread_mutex_unlock(&producer->lock);
    return instance;
}

static void release(event_producer *producer, producer_instance *instance)
{
    pthread_mutex_lock(&producer->lock);
    instance->users--;
    pthread_mutex_unlock(&producer->lock);
}

static void on_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *message, void *opaque)
{
    event_producer *producer = opaque;
    (void)rk;
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_json(LOG_WARN, "kafka write failed", "{s:s, s:s}", "topic", rd_kafka_topic_name(message->rkt),
                 "error", rd_kafka_err2str(message->err));
    else
        atomic_store(&producer->written, 1);
    producer->options.delivered(message->_private, message->err == RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    event_producer *producer = opaque;
    char fatal[256];
    if (kafka_error_is_connection_failure(err))
        atomic_store(&producer->last_failure, err);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_resp_err_t code = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        log_json(LOG_ERROR, "kafka producer fatal error", "{s:s, s:s}", "error", rd_kafka_err2name(code), "reason",
                 fatal);
        pthread_mutex_lock(&producer->lock);
        if (producer->current != NULL && producer->current->rk == rk) /* not one already retired */
            atomic_store(&producer->fatal, 1);
        pthread_mutex_unlock(&producer->lock);
        return;
    }
    log_json(LOG_WARN, "kafka", "{s:s, s:s}", "error", rd_kafka_err2name((rd_kafka_resp_err_t)err), "reason",
             reason);
}

/* A new instance from producer->conf (a copy: rd_kafka_new takes it), its reports signalled on reports_fd. NULL
 * with errbuf. */
static producer_instance *instance_new(event_producer *producer, char *errbuf, size_t errlen)
{
    producer_instance *instance = calloc(1, sizeof *instance);
    rd_kafka_conf_t *conf = instance != NULL ? rd_kafka_conf_dup(producer->conf) : NULL;
    if (conf == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        free(instance);
        return NULL;
    }
    char reason[512];
    instance->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason);
    if (instance->rk == NULL) {
        snprintf(errbuf, errlen, "kafka producer: %s", reason);
        rd_kafka_conf_destroy(conf);
        free(instance);
        return NULL;
    }
    for (int i = 0; i < EVENT_TYPE_COUNT; i++)
        instance->topics[i] = rd_kafka_topic_new(instance->rk, producer->topic_names[i], NULL);
    instance->reports = rd_kafka_queue_get_main(instance->rk);
    /* librdkafka writes the 8-byte value whenever the queue goes from empty to not empty */
    static const uint64_t one = 1;
    rd_kafka_queue_io_event_enable(instance->reports, producer->reports_fd, &one, sizeof one);
    return instance;
}

/* Frees an instance no thread uses, after serving what its queue still holds. */
static void instance_free(producer_instance *instance)
{
    rd_kafka_queue_io_event_enable(instance->reports, -1, NULL, 0);
    rd_kafka_poll(instance->rk, 0);
    rd_kafka_queue_destroy(instance->reports);
    for (int i = 0; i < EVENT_TYPE_COUNT; i++)
        rd_kafka_topic_destroy(instance->topics[i]);
    rd_kafka_destroy(instance->rk);
    free(instance);
}

/* The poller's replacement of a current instance that met a fatal error (an idempotent producer whose producer id
 * the broker refused, e.g. a user with Write on no topic, or a broken sequence): librdkafka takes no write from it
 * ever again, and every event would be answered 503 until a restart. A new instance of the same configuration
 * takes the sends from now on; the old one's queued and in-flight messages are purged, so their requests are
 * answered 503 at once (the client sends them again; one that had reached Kafka may then be there twice). */
static void replace_instance(event_producer *producer, long long tick)
{
    char errbuf[512];
    producer_instance *fresh = instance_new(producer, errbuf, sizeof errbuf);
    if (fresh == NULL) {
        log_json(LOG_ERROR, "kafka producer not replaced; trying again", "{s:s}", "error", errbuf);
        producer->replace_at_tick = tick + producer->replace_wait_ticks;
        return;
    }
    pthread_mutex_lock(&producer->lock);
    producer_instance *old = producer->current;
    producer->current = fresh;
    old->next = producer->retired;
    producer->retired = old;
    atomic_store(&producer->fatal, 0);
    atomic_store(&producer->written, 0);
    pthread_mutex_unlock(&producer->lock);
    char fatal[256] = "";
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(old->rk, fatal, sizeof fatal);
    int outstanding = rd_kafka_outq_len(old->rk);
    /* its reports are served here, by the poller, not on the HTTP loop's eventfd */
    rd_kafka_queue_io_event_enable(old->reports, -1, NULL, 0);
    rd_kafka_purge(old->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(old->rk, 0);
    if (producer->options.replacements != NULL)
        metric_counter_add(producer->options.replacements, 1);
    log_json(LOG_ERROR, "kafka producer failed for good: replaced by a new one", "{s:s, s:s, s:i, s:I}", "error",
             rd_kafka_err2name(code), "reason", fatal, "outstanding", outstanding, "next_in_ms",
             (json_int_t)(producer->replace_wait_ticks * 100));
    producer->replace_at_tick = tick + producer->replace_wait_ticks;
    producer->replace_wait_ticks = producer->replace_wait_ticks * 2 > REPLACE_MAX_TICKS
                                       ? REPLACE_MAX_TICKS
                                       : producer->replace_wait_ticks * 2;
}

/* Serves the retired instances' reports and frees those no thread uses and that hold nothing more. */
static void drain_retired(event_producer *producer)
{
    pthread_mutex_lock(&producer->lock);
    producer_instance **link = &producer->retired;
    producer_instance *done = NULL;
    while (*link != NULL) {
        producer_instance *instance = *link;
        if (instance->users == 0 && rd_kafka_outq_len(instance->rk) == 0) {
            *link = instance->next;
            instance->next = done;
            done = instance;
        } else {
            link = &instance->next;
        }
    }
    producer_instance *waiting = producer->retired; /* only the poller unlinks: these stay valid below */
    pthread_mutex_unlock(&producer->lock);
    for (producer_instance *instance = waiting; instance != NULL; instance = instance->next)
        rd_kafka_poll(instance->rk, 0);
    while (done != NULL) {
        producer_instance *next = done->next;
        instance_free(done);
        done = next;
    }
}

/* One attempt at creating the topics that do not exist. Returns 0 when all eight exist afterwards. */
static int create_topics(event_producer *producer)
{
    rd_kafka_t *rk = producer->current->rk; /* on the poller, which alone replaces it */
    char errstr[256];
    rd_kafka_NewTopic_t *new_topics[EVENT_TYPE_COUNT] = {0};
    int rc = -1;
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *admin = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(admin, 10000, errstr, sizeof errstr);
    rd_kafka_AdminOptions_set_operation_timeout(admin, 10000, errstr, sizeof errstr);
    for (int i = 0; i < EVENT_TYPE_COUNT; i++) {
        new_topics[i] = rd_kafka_NewTopic_new(producer->topic_names[i], producer->options.partitions,
                                              producer->options.replication, errstr, sizeof errstr);
        if (new_topics[i] == NULL) {
            log_json(LOG_ERROR, "invalid topic settings", "{s:s}", "error", errstr);
            goto done;
        }
    }
    rd_kafka_CreateTopics(rk, new_topics, EVENT_TYPE_COUNT, admin, queue);
    /* wait in short slices so that shutdown is never held up by an unreachable cluster */
    rd_kafka_event_t *event = NULL;
    for (int waited = 0; event == NULL && waited < 15000 && !atomic_load(&producer->stopping); waited += 200)
        event = rd_kafka_queue_poll(queue, 200);
    if (event == NULL)
        goto done;
    if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_json(LOG_WARN, "creating topics failed", "{s:s}", "error", rd_kafka_event_error_string(event));
    } else {
        size_t count = 0;
        const rd_kafka_topic_result_t **results =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
        rc = 0;
        for (size_t i = 0; i < count; i++) {
            rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
            const char *name = rd_kafka_topic_result_name(results[i]);
            if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
                log_json(LOG_INFO, "topic created", "{s:s}", "topic", name);
            else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS &&
                     !kafka_topics_exists_though_refused(rk, name, err, 5000)) {
                log_json(LOG_WARN, "creating topic failed", "{s:s, s:s}", "topic", name, "error",
                         rd_kafka_err2str(err));
                rc = -1;
            }
        }
    }
    rd_kafka_event_destroy(event);
done:
    for (int i = 0; i < EVENT_TYPE_COUNT; i++)
        if (new_topics[i] != NULL)
            rd_kafka_NewTopic_destroy(new_topics[i]);
    rd_kafka_AdminOptions_destroy(admin);
    rd_kafka_queue_destroy(queue);
    return rc;
}

void event_producer_serve_reports(void *arg)
{
    event_producer *producer = arg;
    uint64_t count;
    ssize_t n = read(producer->reports_fd, &count, sizeof count); /* first: a report queued after it writes again */
    (void)n;
    producer_instance *instance = acquire(producer);
    for (int i = 0; i < 64 && rd_kafka_poll(instance->rk, 0) > 0; i++)
        ;
    release(producer, instance);
}

/* The poller: creates the topics (retrying every 2 s until it works). Reports are served by whoever watches
 * reports_fd; every 100 ms the poller also serves any left waiting, so a producer nobody watches (a tool, a
 * server not started yet) still gets its callbacks. It does not block in rd_kafka_poll(): a thread waiting there
 * is woken for every report batch, one more thread hop per request than the HTTP loop alone. */
static void *poller_main(void *arg)
{
    event_producer *producer = arg;
    long long next_topic_attempt = 0;
    long long tick = 0;
    const struct timespec tick_length = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
    while (!atomic_load(&producer->stopping)) {
        if (!atomic_load(&producer->topics_ready) && tick >= next_topic_attempt) {
            if (create_topics(producer) == 0) {
                atomic_store(&producer->topics_ready, 1);
                log_json(LOG_INFO, "topics ready", "{s:s}", "prefix", producer->options.topic_prefix);
            }
            next_topic_attempt = tick + 20; /* 20 ticks of 100 ms */
        }
        if (atomic_load(&producer->written))
            producer->replace_wait_ticks = REPLACE_FIRST_TICKS; /* it works again: a later failure starts afresh */
        if (atomic_load(&producer->fatal) && tick >= producer->replace_at_tick)
            replace_instance(producer, tick);
        nanosleep(&tick_length, NULL);
        rd_kafka_poll(producer->current->rk, 0); /* the poller's own read of current: it alone replaces it */
        if (producer->retired != NULL)
            drain_retired(producer);
        tick++;
    }
    return NULL;
}

/* Frees what create made (the poller thread is not running): the instances, the report eventfd, the
 * configuration, the lock and the struct. */
static void free_handles(event_producer *producer)
{
    while (producer->retired != NULL) {
        producer_instance *next = producer->retired->next;
        instance_free(producer->retired);
        producer->retired = next;
    }
    if (producer->current != NULL)
        instance_free(producer->current);
    if (producer->reports_fd >= 0)
        close(producer->reports_fd);
    if (producer->conf != NULL)
        rd_kafka_conf_destroy(producer->conf);
    pthread_mutex_destroy(&producer->lock);
    free(producer);
}

event_producer *event_producer_create(const event_producer_options *options, char *errbuf, size_t errlen)
{
    char value[32];
    event_producer *producer = calloc(1, sizeof *producer);
    if (producer == NULL)
        return NULL;
    producer->options = *options;
    producer->reports_fd = -1;
    atomic_init(&producer->stopping, 0);
    atomic_init(&producer->topics_ready, 0);
    for (int i = 0; i < EVENT_TYPE_COUNT; i++) {
        if (event_type_topic(options->topic_prefix, i, producer->topic_names[i], sizeof producer->topic_names[i])) {
            snprintf(errbuf, errlen, "TOPIC_PREFIX is too long");
            free(producer);
            return NULL;
        }
    }

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(value, sizeof value, "%lld", options->produce_timeout_ms);
    if (kafka_config_set(conf, "enable.idempotence", "true", errbuf, errlen) != 0 ||
        kafka_config_set(conf, "acks", "all", errbuf, errlen) != 0 ||
        /* A single event waits for linger + the acks=all round trip. librdkafka 2.0 sleeps in whole
         * milliseconds, so any linger waits up to 1 ms, but a message arriving after a sub-millisecond deadline
         * sends the batch at once: 0.5 ms gave 1.5x the single-event throughput of 1 ms and the same batches,
         * and 0.3 ms 1.5x that of 0.5 ms on a faster machine (62-73 k against 32-47 k req/s, alternated);
         * 0.1 ms and 0 make a produce request of nearly every event (docs/BENCHMARKS.md). KAFKA_LINGER_MS
         * overrides */
        kafka_config_set(conf, "linger.ms", "0.3", errbuf, errlen) != 0 ||
        kafka_config_set(conf, "compression.type", "lz4", errbuf, errlen) != 0 ||
        /* batches the dispatcher's fetches take from every partition at once (common/kafka_config.h) */
        kafka_config_set(conf, "batch.size", KAFKA_RECORD_BATCH_MAX_BYTES, errbuf, errlen) != 0 ||
        /* a ProduceRequest written while the previous one is unacknowledged must not wait for a TCP ACK */
        kafka_config_set(conf, "socket.nagle.disable", "true", errbuf, errlen) != 0 ||
        kafka_config_set(conf, "partitioner", "murmur2_random", errbuf, errlen) != 0 ||
        kafka_config_set(conf, "message.timeout.ms", value, errbuf, errlen) != 0 ||
        kafka_config_set(conf, "socket.keepalive.enable", "true", errbuf, errlen) != 0 ||
        /* message timeouts are only scanned when a broker thread wakes up: with the default 10 s reconnect
         * backoff an unreachable cluster answered 503 up to PRODUCE_TIMEOUT + 10 s late */
        kafka_config_set(conf, "reconnect.backoff.max.ms", "1000", errbuf, errlen) != 0 ||
        kafka_config_set(conf, "client.id", "hookd-producer-api", errbuf, errlen) != 0 ||
        kafka_config_from_env(conf, errbuf, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        free(producer);
        return NULL;
    }
    if (kafka_config_get_size(conf, "message.max.bytes", &producer->max_message_bytes) != 0)
        producer->max_message_bytes = 1000000;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery_report);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, producer);
    producer->conf = conf;
    producer->replace_wait_ticks = REPLACE_FIRST_TICKS;
    pthread_mutex_init(&producer->lock, NULL);
    producer->reports_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (producer->reports_fd < 0) {
        snprintf(errbuf, errlen, "cannot create an eventfd for kafka delivery reports");
        goto fail;
    }
    if ((producer->current = instance_new(producer, errbuf, errlen)) == NULL)
        goto fail;
    if (pthread_create(&producer->poller, NULL, poller_main, producer) != 0) {
        snprintf(errbuf, errlen, "cannot start the kafka poller thread");
        goto fail;
    }
    return producer;
fail:
    free_handles(producer);
    return NULL;
}

int event_producer_reports_fd(const event_producer *producer)
{
    return producer->reports_fd;
}

/* What librdkafka adds to a message's key and value when it checks them against message.max.bytes (a record's
 * largest framing), rounded up. */
#define MESSAGE_OVERHEAD_MAX 64

/* The length of the id the event will carry: one that came without an id gets a UUIDv7 after validation. */
static size_t id_length(const envelope *env)
{
    return env->id[0] != '\0' ? strlen(env->id) : UUID_TEXT_LEN;
}

size_t event_producer_message_size(const envelope *env)
{
    /* {"id":"","type":"","organization_id":,"occurred_at":"","data":} is 56 bytes; an id of printable ASCII
     * escapes to at most 2 bytes a character ("\"" and "\\"); the longest type name and a long long take < 40;
     * the key is the organization id again */
    return env->data_len + 2 * id_length(env) + strlen(env->occurred_at) + 56 + 40 + 20 + MESSAGE_OVERHEAD_MAX;
}

int event_producer_fits(const event_producer *producer, const envelope *env, size_t *size)
{
    *size = event_producer_message_size(env);
    if (*size <= producer->max_message_bytes)
        return 1;
    size_t len = 0; /* near the limit: the exact size */
    char *value = envelope_encode(env, &len);
    if (value == NULL)
        return 1; /* out of memory: the send will say so */
    free(value);
    char key[32];
    size_t unassigned_id = env->id[0] == '\0' ? UUID_TEXT_LEN : 0;
    *size = len + unassigned_id + (size_t)snprintf(key, sizeof key, "%lld", env->organization_id) +
            MESSAGE_OVERHEAD_MAX;
    return *size <= producer->max_message_bytes;
}

size_t event_producer_max_message_bytes(const event_producer *producer)
{
    return producer->max_message_bytes;
}

int event_producer_send(event_producer *producer, const envelope *env, void *opaque)
{
    size_t len = 0;
    char *value = envelope_encode(env, &len);
    if (value == NULL)
        return -1;
    char key[32];
    int key_len = snprintf(key, sizeof key, "%lld", env->organization_id);
    producer_instance *instance = acquire(producer);
    int rc = rd_kafka_produce(instance->topics[env->type], RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_FREE, value, len,
                              key, (size_t)key_len, opaque);
    release(producer, instance);
    if (rc != 0) {
        rd_kafka_resp_err_t err = rd_kafka_last_error();
        if (err != RD_KAFKA_RESP_ERR__FATAL) /* that one is logged once, and the producer replaced (poller) */
            log_json(LOG_WARN, "kafka queue refused a message", "{s:s}", "error", rd_kafka_err2str(err));
        free(value);
        return -1;
    }
    return 0;
}

void event_producer_flush(event_producer *producer, int timeout_ms)
{
    producer_instance *instance = acquire(producer);
    rd_kafka_flush(instance->rk, timeout_ms);
    release(producer, instance);
}

int event_producer_ready(event_producer *producer, int timeout_ms)
{
    const struct rd_kafka_metadata *metadata = NULL;
    producer_instance *instance = acquire(producer);
    rd_kafka_resp_err_t err = rd_kafka_metadata(instance->rk, 0, instance->topics[0], &metadata, timeout_ms);
    release(producer, instance);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    int ok = metadata->topic_cnt == 1 && metadata->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_metadata_destroy(metadata);
    atomic_store(&producer->last_failure, 0); /* a broker answered */
    return ok && atomic_load(&producer->topics_ready);
}

const char *event_producer_unready_reason(event_producer *producer)
{
    return kafka_unready_reason(atomic_load(&producer->last_failure));
}

void event_producer_destroy(event_producer *producer)
{
    if (producer == NULL)
        return;
    event_producer_flush(producer, (int)producer->options.produce_timeout_ms + 1000); /* serves reports itself */
    atomic_store(&producer->stopping, 1);
    pthread_join(producer->poller, NULL);
    free_handles(producer); /* instance_free serves what each instance still holds */
}
