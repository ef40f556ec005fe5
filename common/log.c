/* log — see log.h. */
#include "log.h"

#include "timeutil.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Written once by log_init() before threads start; read-only afterwards. */
static char log_service[48] = "hookd";
static log_level log_min_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* This thread's batch (log_batch_begin); only that thread touches it. */
static _Thread_local struct {
    int on;
    size_t len;
    char buf[LOG_BATCH_MAX];
} batch;

static void write_all(const char *text, size_t len)
{
    ssize_t ignored = write(STDERR_FILENO, text, len); /* stderr: nothing better to do when this fails */
    (void)ignored;
}

/* Writes one line (newline included), or adds it to this thread's batch. */
static void emit(const char *line, size_t len)
{
    if (!batch.on) {
        write_all(line, len);
        return;
    }
    if (batch.len + len > sizeof batch.buf)
        log_flush();
    if (len > sizeof batch.buf) {
        write_all(line, len);
        return;
    }
    memcpy(batch.buf + batch.len, line, len);
    batch.len += len;
}

void log_batch_begin(void)
{
    batch.on = 1;
}

void log_batch_end(void)
{
    log_flush();
    batch.on = 0;
}

void log_flush(void)
{
    if (batch.len == 0)
        return;
    write_all(batch.buf, batch.len);
    batch.len = 0;
}

int log_init(const char *service, const char *level_name)
{
    if (service != NULL)
        snprintf(log_service, sizeof log_service, "%s", service);
    log_min_level = LOG_INFO;
    if (level_name == NULL || level_name[0] == '\0')
        return 0;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(level_name, level_names[i]) == 0) {
            log_min_level = (log_level)i;
            return 0;
        }
    }
    if (strcasecmp(level_name, "warning") == 0) {
        log_min_level = LOG_WARN;
        return 0;
    }
    return -1;
}

int log_enabled(log_level level)
{
    return level >= log_min_level;
}

void log_json(log_level level, const char *msg, const char *fields_fmt, ...)
{
    if (!log_enabled(level))
        return;

    char ts[TIME_TEXT_MAX];
    time_format_rfc3339(time_now_ms(), 1, ts);

    json_t *line = json_pack("{s:s, s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "service",
                             log_service, "msg", msg != NULL ? msg : "");
    if (line == NULL)
        return;
    if (fields_fmt != NULL) {
        json_error_t error;
        va_list ap;
        va_start(ap, fields_fmt);
        json_t *fields = json_vpack_ex(&error, 0, fields_fmt, ap);
        va_end(ap);
        if (fields == NULL)
            json_object_set_new(line, "log_error", json_string(error.text));
        else if (json_is_object(fields))
            json_object_update(line, fields);
        json_decref(fields);
    }

    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (text == NULL)
        return;
    size_t len = strlen(text);
    text[len] = '\n'; /* overwrite the terminator: the whole line goes out in one write */
    emit(text, len + 1);
    free(text);
}

int log_line_begin(log_line *l, log_level level, const char *msg)
{
    if (!log_enabled(level))
        return 0;
    char ts[TIME_TEXT_MAX];
    time_format_rfc3339(time_now_ms(), 1, ts);
    json_buf *b = &l->fields;
    json_buf_init(b, l->text, sizeof l->text - 1); /* one byte kept for the newline */
    json_buf_raw(b, "{", 1);
    json_buf_key(b, "ts");
    json_buf_string(b, ts);
    json_buf_key(b, "level");
    json_buf_string(b, level_names[level]);
    json_buf_key(b, "service");
    json_buf_string(b, log_service);
    json_buf_key(b, "msg");
    json_buf_string(b, msg != NULL ? msg : "");
    l->header_len = b->len;
    return 1;
}

void log_line_end(log_line *l)
{
    json_buf *b = &l->fields;
    json_buf_raw(b, "}", 1);
    if (b->overflow) {
        b->overflow = 0;
        b->len = l->header_len;
        static const char tail[] = ",\"log_error\":\"line too long\"}";
        json_buf_raw(b, tail, sizeof tail - 1);
    }
    b->data[b->len] = '\n'; /* the byte kept free by log_line_begin() */
    emit(b->data, b->len + 1);
}
