/* test_limit — see test_limit.h. */
#include "test_limit.h"

#include <pthread.h>
#include <stdlib.h>

/* The organizations with a test delivery running; at most TEST_LIMIT_TOTAL of them, so a scan is cheap. */
typedef struct org_slots {
    long long org;
    int running; /* 0: the entry is free */
} org_slots;

struct test_limit {
    pthread_mutex_t lock; /* guards everything below */
    int running;          /* test deliveries running in the process */
    org_slots orgs[TEST_LIMIT_TOTAL];
};

test_limit *test_limit_new(void)
{
    test_limit *l = calloc(1, sizeof *l);
    if (l != NULL)
        pthread_mutex_init(&l->lock, NULL);
    return l;
}

void test_limit_free(test_limit *l)
{
    if (l == NULL)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l);
}

int test_limit_take(test_limit *l, long long org)
{
    pthread_mutex_lock(&l->lock);
    org_slots *mine = NULL, *spare = NULL;
    for (int i = 0; i < TEST_LIMIT_TOTAL && mine == NULL; i++) {
        if (l->orgs[i].running > 0 && l->orgs[i].org == org)
            mine = &l->orgs[i];
        else if (l->orgs[i].running == 0 && spare == NULL)
            spare = &l->orgs[i];
    }
    int ok = l->running < TEST_LIMIT_TOTAL && (mine != NULL ? mine->running < TEST_LIMIT_PER_ORG : spare != NULL);
    if (ok) {
        if (mine == NULL) {
            mine = spare;
            mine->org = org;
        }
        mine->running++;
        l->running++;
    }
    pthread_mutex_unlock(&l->lock);
    return ok ? 0 : -1;
}

void test_limit_give(test_limit *l, long long org)
{
    pthread_mutex_lock(&l->lock);
    for (int i = 0; i < TEST_LIMIT_TOTAL; i++) {
        if (l->orgs[i].running > 0 && l->orgs[i].org == org) {
            l->orgs[i].running--;
            l->running--;
            break;
        }
    }
    pthread_mutex_unlock(&l->lock);
}
