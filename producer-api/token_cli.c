/* token_cli — see token_cli.h. */
#include "token_cli.h"

#include "secret.h"
#include "webhook_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: producer-api token create --org ID\n"
                    "       producer-api token create --service\n"
                    "       producer-api token revoke TOKEN\n");
    return 2;
}

int token_cli_main(int argc, char **argv, const char *redis_url)
{
    long long org = -1;
    if (argc == 3 && strcmp(argv[1], "create") == 0 && strcmp(argv[2], "--service") == 0) {
        org = 0;
    } else if (argc == 4 && strcmp(argv[1], "create") == 0 && strcmp(argv[2], "--org") == 0) {
        char *end = NULL;
        org = strtoll(argv[3], &end, 10);
        if (*end != '\0' || org <= 0) {
            fprintf(stderr, "--org needs a positive integer organization id\n");
            return 2;
        }
    } else if (!(argc == 3 && strcmp(argv[1], "revoke") == 0)) {
        return usage();
    }

    char errbuf[256];
    webhook_store *store = webhook_store_open(redis_url, errbuf, sizeof errbuf);
    if (store == NULL) {
        fprintf(stderr, "%s\n", errbuf);
        return 1;
    }
    int code = 1;
    if (org >= 0) {
        char token[SECRET_TEXT_MAX];
        if (token_store_create(store, org, token, sizeof token) == STORE_OK) {
            printf("%s\n", token);
            code = 0;
        } else {
            fprintf(stderr, "could not store the token: Redis unreachable at %s\n", redis_url);
        }
    } else {
        store_status status = token_store_revoke(store, argv[2]);
        if (status == STORE_OK) {
            fprintf(stderr, "token revoked\n");
            code = 0;
        } else if (status == STORE_NOT_FOUND) {
            fprintf(stderr, "no such token\n");
        } else {
            fprintf(stderr, "could not revoke the token: Redis unreachable at %s\n", redis_url);
        }
    }
    webhook_store_close(store);
    return code;
}
