/* kafka_topics — see kafka_topics.h. */
#include "kafka_topics.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

static int refused(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED || err == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED;
}

/* 1 when topic exists on the cluster rk talks to (its metadata, within timeout_ms), 0 when the broker says it does
 * not or will not describe it, -1 when no answer came (errbuf says why). */
static int topic_exists(rd_kafka_t *rk, const char *topic, int timeout_ms, char *errbuf, size_t errlen)
{
    /* a topic handle so that the request names this topic alone; the broker cannot create it on the way (automatic
     * creation takes the Create ACL this path lacks) */
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rkt == NULL) {
        snprintf(errbuf, errlen, "%s", rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errbuf, errlen, "%s", rd_kafka_err2str(err));
        return -1;
    }
    int exists = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0 && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
            md->topics[i].partition_cnt > 0)
            exists = 1;
    rd_kafka_metadata_destroy(md);
    return exists;
}

int kafka_topics_exists_though_refused(rd_kafka_t *rk, const char *topic, rd_kafka_resp_err_t err, int timeout_ms)
{
    if (!refused(err))
        return 0;
    char why[256] = "";
    int found = topic_exists(rk, topic, timeout_ms, why, sizeof why);
    if (found == 1)
        log_json(LOG_INFO, "topic exists (not created: no Create ACL)", "{s:s}", "topic", topic);
    else if (found < 0)
        log_json(LOG_DEBUG, "topic lookup after a refused creation got no answer", "{s:s, s:s}", "topic", topic,
                 "error", why);
    return found == 1;
}
