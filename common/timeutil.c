/* timeutil — see timeutil.h. */
#include "timeutil.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void time_format_rfc3339(int64_t epoch_ms, int with_millis, char *out)
{
    /* floor division: before 1970 the millisecond part must still be 0-999 (not "-544") */
    int64_t millis = epoch_ms % 1000;
    if (millis < 0)
        millis += 1000;
    time_t seconds = (time_t)((epoch_ms - millis) / 1000);
    /* Log lines stamp the current time many times per second: the thread keeps the last second's text and
     * only writes the milliseconds (gmtime_r + snprintf were ~2 % of the dispatcher's CPU). */
    static _Thread_local time_t cached_second = (time_t)-1;
    static _Thread_local char cached_text[TIME_TEXT_MAX - 5]; /* "YYYY-MM-DDTHH:MM:SS"; ".mmmZ" follows in out */
    static _Thread_local size_t cached_len;
    if (seconds != cached_second) {
        struct tm tm;
        gmtime_r(&seconds, &tm);
        snprintf(cached_text, sizeof cached_text, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_len = strlen(cached_text);
        cached_second = seconds;
    }
    size_t len = cached_len;
    memcpy(out, cached_text, len);
    if (with_millis) {
        out[len++] = '.';
        out[len++] = (char)('0' + millis / 100);
        out[len++] = (char)('0' + millis / 10 % 10);
        out[len++] = (char)('0' + millis % 10);
    }
    out[len++] = 'Z';
    out[len] = '\0';
}

/* Reads exactly `digits` decimal digits at *p; returns -1 when they are not there. */
static int read_number(const char **p, int digits)
{
    int value = 0;
    for (int i = 0; i < digits; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        value = value * 10 + ((*p)[i] - '0');
    }
    *p += digits;
    return value;
}

int time_parse_rfc3339(const char *text, int64_t *epoch_ms)
{
    const char *p = text;
    int year = read_number(&p, 4);
    if (year < 0 || *p++ != '-')
        return -1;
    int month = read_number(&p, 2);
    if (month < 1 || month > 12 || *p++ != '-')
        return -1;
    int day = read_number(&p, 2);
    if (day < 1 || day > 31 || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    int hour = read_number(&p, 2);
    if (hour < 0 || hour > 23 || *p++ != ':')
        return -1;
    int minute = read_number(&p, 2);
    if (minute < 0 || minute > 59 || *p++ != ':')
        return -1;
    int second = read_number(&p, 2);
    if (second < 0 || second > 60)
        return -1;
    int millis = 0;
    if (*p == '.') {
        p++;
        int scale = 100, count = 0;
        while (isdigit((unsigned char)*p)) {
            millis += (*p - '0') * scale;
            scale /= 10;
            p++;
            count++;
        }
        if (count == 0)
            return -1;
    }
    int offset_minutes = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh = read_number(&p, 2);
        if (oh < 0 || oh > 23 || *p++ != ':')
            return -1;
        int om = read_number(&p, 2);
        if (om < 0 || om > 59)
            return -1;
        offset_minutes = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    static const int days_in_month[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > days_in_month[month - 1] || (month == 2 && day == 29 && !leap))
        return -1;
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    time_t seconds = timegm(&tm);
    int64_t ms = ((int64_t)seconds - (int64_t)offset_minutes * 60) * 1000 + millis;
    /* an offset can move 0000-01-01 or 9999-12-31 out of the four-digit years time_format_rfc3339 writes */
    if (ms < TIME_MIN_MS || ms > TIME_MAX_MS)
        return -1;
    *epoch_ms = ms;
    return 0;
}
