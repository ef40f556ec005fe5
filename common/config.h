/*
 * config — 12-factor configuration: every setting is an environment variable.
 *
 * A binary describes its variables in a table of config_var (name, default, help). --help prints that table
 * (config_print_help), and the typed readers below parse one variable, falling back to the default when the
 * variable is unset or empty. Readers never exit: they return -1 with a message naming the variable, and
 * main() decides.
 *
 * Thread contract: call these during start-up, before threads; getenv() is not safe against setenv().
 */
#ifndef HOOKD_CONFIG_H
#define HOOKD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef struct config_var {
    const char *name;          /* environment variable name, e.g. "REDIS_URL" */
    const char *default_value; /* shown by --help and used when unset; NULL = no default */
    const char *help;          /* one line */
} config_var;

/* Prints "NAME  (default: X)  help" for each variable, then a note on KAFKA_<PROPERTY> passthrough when
 * kafka_passthrough is non-zero. */
void config_print_help(FILE *out, const char *usage, const config_var *vars, size_t count, int kafka_passthrough);

/* The variable's value, or default_value when unset or empty. The pointer is owned by the environment. */
const char *config_string(const char *name, const char *default_value);

/* Parses an integer in [min, max]. Returns 0 and sets *out, or -1 with a message in errbuf. */
int config_long(const char *name, long default_value, long min, long max, long *out, char *errbuf, size_t errlen);

/* Parses a boolean: 1/0, true/false, yes/no, on/off. Returns 0 or -1 with a message in errbuf. */
int config_bool(const char *name, int default_value, int *out, char *errbuf, size_t errlen);

/* Parses a duration such as "250ms", "5s", "2m", "1h", "1d" or a bare number of seconds ("1.5").
 * Returns 0 and sets *out_ms (milliseconds, >= 0), or -1. No errbuf: callers say which variable. */
int duration_parse_ms(const char *text, long long *out_ms);

/* config_long for durations: default_text is parsed like the variable. Returns 0 or -1 with errbuf. */
int config_duration_ms(const char *name, const char *default_text, long long min_ms, long long max_ms,
                       long long *out_ms, char *errbuf, size_t errlen);

/* Splits "host:port" (IPv6 as "[::1]:port"; a bare ":port" or "port" means all interfaces). Writes the host
 * (empty for all interfaces) into host and returns 0 with *port set, or -1. */
int config_split_host_port(const char *addr, char *host, size_t hostlen, int *port);

#endif
