/*
 * token_cli — `producer-api token create --org ID | --service` and `producer-api token revoke TOKEN`.
 * Prints the token alone on stdout (create) so scripts can capture it; messages go to stderr.
 */
#ifndef HOOKD_TOKEN_CLI_H
#define HOOKD_TOKEN_CLI_H

/* Runs the token command in argv (argv[0] is "token"). Returns the process exit code. */
int token_cli_main(int argc, char **argv, const char *redis_url);

#endif
