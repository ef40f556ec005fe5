/*
 * log — structured logging: one JSON object per line on stderr.
 *
 * Every line carries "ts" (RFC 3339 UTC with milliseconds), "level", "service" and "msg", plus any fields
 * the caller packs with a jansson json_pack() format. Example:
 *
 *     log_json(LOG_INFO, "listening", "{s:s, s:i}", "addr", addr, "threads", 4);
 *
 * Thread contract: log_init() is called once, before any thread starts; after that log_json() may be called
 * from any thread (each line is written with a single write(2), so lines never interleave).
 */
#ifndef HOOKD_LOG_H
#define HOOKD_LOG_H

typedef enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO = 1,
    LOG_WARN = 2,
    LOG_ERROR = 3
} log_level;

/* Sets the service name and the minimum level ("debug", "info", "warn", "error"; NULL means "info").
 * Returns 0, or -1 when level_name is not one of those (the level is then left at info). */
int log_init(const char *service, const char *level_name);

/* Returns non-zero when a line of this level would be written (use it to skip building costly fields). */
int log_enabled(log_level level);

/* Writes one line. fields_fmt is a json_pack() format for an object ("{s:s, s:I}") or NULL for none; the
 * arguments follow it. A format that fails to pack is logged as a field "log_error" instead of crashing. */
void log_json(log_level level, const char *msg, const char *fields_fmt, ...);

#endif
