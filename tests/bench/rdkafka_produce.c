/* tests/bench/rdkafka_produce.c — the librdkafka producer alone, for `make bench`.
 *
 * Writes COUNT hookd envelopes to one topic with the producer settings of producer-api
 * (producer-api/event_producer.c: enable.idempotence, acks=all, lz4, linger.ms=0.3, batch.size=131072,
 * murmur2_random), waits for every delivery report and prints one line of JSON:
 *     {"count": N, "delivered": N, "failed": 0, "seconds": S, "per_second": R}
 * Used as the baseline of the "ingress batch" row and to pre-load events for the dispatch, fan-out and
 * memory rows (envelopes exactly as producer-api writes them, key = organization id as decimal text).
 *
 *   rdkafka_produce -b BROKERS -t TOPIC -n COUNT [-o ORGS] [-O FIRST_ORG] [-s PAD_BYTES] [-i ID_PREFIX]
 *                   [-T EVENT_TYPE] [-c PARTITIONS] [-X PROPERTY=VALUE]...
 *   -o/-O  organization of message i = FIRST_ORG + i % ORGS (default 1 + i % 1)
 *   -s     bytes of padding in data.pad (default 900: an envelope of about 1 KiB)
 *   -c     create the topic with that many partitions first (ignored if it exists)
 *   -X     a librdkafka property set after producer-api's (what-if runs: -X batch.size=1000000)
 * Bounded: exits after COUNT messages, or after 120 s waiting for reports (exit 1).
 */
#include <librdkafka/rdkafka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long delivered, failed;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err)
        failed++;
    else
        delivered++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "rdkafka_produce: %s: %s\n", k, err);
        exit(2);
    }
}

static void create_topic(rd_kafka_t *rk, const char *topic, int partitions)
{
    char err[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof err);
    if (nt == NULL) {
        fprintf(stderr, "rdkafka_produce: %s\n", err);
        exit(2);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 10000, err, sizeof err);
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
    if (ev == NULL) {
        fprintf(stderr, "rdkafka_produce: topic creation timed out\n");
        exit(1);
    }
    size_t n = 0;
    const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            fprintf(stderr, "rdkafka_produce: create %s: %s\n", topic, rd_kafka_err2str(e));
            exit(1);
        }
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
}

/* n bytes of word-salad text into out (n + 1 bytes), different for every i: the same words and generator as
 * bench.py's pad_text(), so pre-loaded events compress like real JSON (2-3x with lz4) and not ~60x like one
 * repeated letter. */
static void pad_text(long i, char *out, size_t n)
{
    static const char *const words[] = {
        "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do", "eiusmod",
        "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua", "enim", "ad", "minim",
        "veniam", "quis", "nostrud", "exercitation", "ullamco", "laboris", "nisi", "aliquip", "ex", "ea",
        "commodo", "consequat", "duis", "aute", "irure", "in", "reprehenderit", "voluptate", "velit", "esse",
        "cillum", "fugiat", "nulla", "pariatur", "excepteur", "sint", "occaecat", "cupidatat", "non", "proident",
        "sunt", "culpa", "qui", "officia", "deserunt", "mollit", "anim", "id", "est", "laborum", "project", "task",
        "hours", "budget", "client", "invoice"};
    const size_t nwords = sizeof words / sizeof words[0];
    unsigned long long x = ((unsigned long long)i * 2654435761ULL + 12345ULL) & 0xFFFFFFFFULL;
    size_t len = 0;
    while (len < n) {
        x = (x * 1103515245ULL + 12345ULL) & 0x7FFFFFFFULL;
        const char *w = words[(x >> 16) % nwords];
        if (len > 0)
            out[len++] = ' ';
        for (size_t k = 0; w[k] != '\0' && len < n; k++)
            out[len++] = w[k];
    }
    out[n] = '\0';
}

int main(int argc, char **argv)
{
    const char *brokers = "127.0.0.1:9092", *topic = NULL, *id_prefix = "bench", *type = "project.created";
    long count = 0, orgs = 1, first_org = 1, pad = 900;
    int partitions = 0, opt, nextra = 0;
    char *extra[16];
    while ((opt = getopt(argc, argv, "b:t:n:o:O:s:i:T:c:X:")) != -1) {
        switch (opt) {
        case 'b': brokers = optarg; break;
        case 't': topic = optarg; break;
        case 'n': count = atol(optarg); break;
        case 'o': orgs = atol(optarg); break;
        case 'O': first_org = atol(optarg); break;
        case 's': pad = atol(optarg); break;
        case 'i': id_prefix = optarg; break;
        case 'T': type = optarg; break;
        case 'c': partitions = atoi(optarg); break;
        case 'X':
            if (nextra == 16 || strchr(optarg, '=') == NULL) {
                fprintf(stderr, "rdkafka_produce: -X takes PROPERTY=VALUE, at most 16 times\n");
                return 2;
            }
            extra[nextra++] = optarg;
            break;
        default:
            fprintf(stderr, "usage: %s -b BROKERS -t TOPIC -n COUNT [-o ORGS] [-O FIRST_ORG] [-s PAD] [-i ID_PREFIX] "
                            "[-T TYPE] [-c PARTITIONS] [-X PROPERTY=VALUE]...\n", argv[0]);
            return 2;
        }
    }
    if (topic == NULL || count <= 0 || orgs <= 0 || pad < 0 || pad > 900000) {
        fprintf(stderr, "rdkafka_produce: -t TOPIC and -n COUNT > 0 are required\n");
        return 2;
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", brokers);
    /* the producer-api settings (producer-api/event_producer.c) */
    set(conf, "enable.idempotence", "true");
    set(conf, "acks", "all");
    set(conf, "linger.ms", "0.3");
    set(conf, "batch.size", "131072");
    set(conf, "socket.nagle.disable", "true");
    set(conf, "compression.type", "lz4");
    set(conf, "partitioner", "murmur2_random");
    set(conf, "message.timeout.ms", "30000");
    set(conf, "queue.buffering.max.messages", "1000000");
    set(conf, "client.id", "hookd-bench-produce");
    for (int i = 0; i < nextra; i++) {
        char *eq = strchr(extra[i], '=');
        *eq = '\0';
        set(conf, extra[i], eq + 1);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == NULL) {
        fprintf(stderr, "rdkafka_produce: %s\n", err);
        return 1;
    }
    if (partitions > 0)
        create_topic(rk, topic, partitions);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);

    char *padding = malloc((size_t)pad + 1);
    size_t cap = (size_t)pad + 512;
    char *buf = malloc(cap);
    char key[32];

    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        long org = first_org + i % orgs;
        pad_text(i, padding, (size_t)pad);
        int len = snprintf(buf, cap,
                           "{\"id\":\"%s-%ld\",\"type\":\"%s\",\"organization_id\":%ld,"
                           "\"occurred_at\":\"2026-11-29T01:02:03.000Z\",\"data\":{\"id\":%ld,\"pad\":\"%s\"}}",
                           id_prefix, i, type, org, i, padding);
        int klen = snprintf(key, sizeof key, "%ld", org);
        for (;;) {
            if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, buf, (size_t)len, key, (size_t)klen,
                                 NULL) == 0)
                break;
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "rdkafka_produce: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
                return 1;
            }
            rd_kafka_poll(rk, 5);
        }
        if ((i & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    double deadline = now_s() + 120;
    while (delivered + failed < count && now_s() < deadline)
        rd_kafka_poll(rk, 20);
    double secs = now_s() - t0;
    printf("{\"count\": %ld, \"delivered\": %ld, \"failed\": %ld, \"seconds\": %.4f, \"per_second\": %.1f}\n", count,
           delivered, failed, secs, delivered / secs);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_flush(rk, 5000);
    rd_kafka_destroy(rk);
    free(buf);
    free(padding);
    return (delivered == count) ? 0 : 1;
}
