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

#include "json_text.h"

#include <stddef.h>

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

/* A line built field by field without jansson, for the per-delivery hot path:
 *
 *     log_line l;
 *     if (log_line_begin(&l, LOG_INFO, "delivery attempt")) {
 *         json_buf_key(&l.fields, "attempt");
 *         json_buf_int(&l.fields, 3);
 *         log_line_end(&l);
 *     }
 *
 * log_line_begin() returns 0 (and nothing must follow) when the level is disabled. Fields that do not fit in
 * LOG_LINE_MAX are all dropped and the line carries "log_error":"line too long" instead. */
#define LOG_LINE_MAX 16384
typedef struct log_line {
    json_buf fields;      /* append ',"key":value' pairs with json_buf_key() and friends */
    size_t header_len;    /* length of ts/level/service/msg */
    char text[LOG_LINE_MAX];
} log_line;

int log_line_begin(log_line *l, log_level level, const char *msg);
void log_line_end(log_line *l);

/* Batching, for a thread that logs a line per delivery (the dispatcher's event loop): after log_batch_begin()
 * the calling thread's lines are gathered in a thread-local buffer of LOG_BATCH_MAX bytes and written when
 * log_flush() is called (call it before the thread sleeps) or when the next line would not fit. A batch write
 * holds whole lines and never exceeds PIPE_BUF (4096), so it is atomic on a pipe and another thread's line
 * never lands inside it; a single line longer than that is written on its own, as without batching. Lines are
 * then at most one loop pass late, and lost if the process dies before the flush. Other threads are unaffected.
 * The dispatcher measured one write(2) per delivery attempt otherwise. */
#define LOG_BATCH_MAX 4096
void log_batch_begin(void);
void log_flush(void);
void log_batch_end(void); /* flushes and writes this thread's lines at once again */

#endif
