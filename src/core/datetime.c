/* datetime: RFC 3339 <-> UTC epoch milliseconds (see datetime.h). Owns no
 * state. The calendar is proleptic Gregorian with a year 0 (a leap year), as
 * RFC 3339 uses; day counts are computed from the year, so nothing depends
 * on the C library's time zone or locale. */
#include "core/datetime.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#define MS_PER_DAY 86400000LL

/* Days before the first of each month in a common year. */
static const int k_days_before_month[13] = {
    0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365,
};

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    int n = k_days_before_month[m] - k_days_before_month[m - 1];
    return (m == 2 && is_leap(y)) ? n + 1 : n;
}

/* Days from 0000-01-01 to y-01-01, for 0 <= y <= 10000. Years 0..y-1 hold
 * (y-1)/4 - (y-1)/100 + (y-1)/400 leap years among 1..y-1, plus year 0
 * itself. */
static int64_t days_before_year(int y)
{
    if (y <= 0)
        return 0;
    int64_t n = y - 1;
    return 365 * (int64_t)y + n / 4 - n / 100 + n / 400 + 1;
}

/* days_before_year(1970): day 0 of the Unix epoch, counted from 0000-01-01. */
#define EPOCH_DAY 719528LL

/* Days since 1970-01-01 (negative before) for a valid date. */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t doy = k_days_before_month[m - 1] + (m > 2 && is_leap(y)) + (d - 1);
    return days_before_year(y) + doy - EPOCH_DAY;
}

/* Reads exactly n ASCII digits at s; -1 if any is not a digit. */
static int read_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int tally_datetime_parse(const char *s, size_t len, int64_t *out_ms)
{
    /* "YYYY-MM-DDTHH:MM:SS" is 19 bytes, and at least "Z" must follow. */
    if (!s || len < 20)
        return -1;
    if (s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':')
        return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return -1;

    int year = read_digits(s, 4);
    int month = read_digits(s + 5, 2);
    int day = read_digits(s + 8, 2);
    int hour = read_digits(s + 11, 2);
    int minute = read_digits(s + 14, 2);
    int second = read_digits(s + 17, 2);
    if (year < 0 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month))
        return -1;
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60)
        return -1;
    /* A leap second cannot be represented in epoch time; it is taken as the
     * last millisecond-aligned second before it rather than refused, since
     * RFC 3339 allows it. */
    if (second == 60)
        second = 59;

    size_t i = 19;
    int millis = 0;
    if (s[i] == '.') {
        i++;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (i - start < 3)
                millis = millis * 10 + (s[i] - '0');
            i++;
        }
        size_t ndigits = i - start;
        if (ndigits < 1 || ndigits > 9)
            return -1;
        /* Scale ".5" to 500 and ".25" to 250; digits past the third were
         * skipped above (truncated, never rounded). */
        for (size_t k = ndigits; k < 3; k++)
            millis *= 10;
    }

    if (i >= len)
        return -1; /* no offset */
    int64_t offset_ms = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        if (len - i < 6 || s[i + 3] != ':')
            return -1;
        int oh = read_digits(s + i + 1, 2);
        int om = read_digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        offset_ms = ((int64_t)oh * 60 + om) * 60000;
        if (s[i] == '-')
            offset_ms = -offset_ms;
        i += 6;
    } else {
        return -1;
    }
    if (i != len)
        return -1; /* trailing garbage */

    int64_t local_ms = days_from_civil(year, month, day) * MS_PER_DAY +
                       ((int64_t)hour * 3600 + minute * 60 + second) * 1000 + millis;
    /* The local time is in range by construction; the offset can move the
     * instant a day either way past the ends. */
    int64_t utc_ms = local_ms - offset_ms;
    if (utc_ms < TALLY_DATETIME_MIN_MS || utc_ms > TALLY_DATETIME_MAX_MS)
        return -1;
    *out_ms = utc_ms;
    return 0;
}

static void put_digits(char *out, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* "YYYY-MM-DDT" of day0, days counted from 0000-01-01 as days_before_year does. */
static void format_date(int64_t day0, char out[11])
{
    /* 146097 days per 400 years gives the year to within one; correct it. */
    int year = (int)(day0 * 400 / 146097);
    while (year > 0 && days_before_year(year) > day0)
        year--;
    while (days_before_year(year + 1) <= day0)
        year++;
    int doy = (int)(day0 - days_before_year(year));
    int month = 1;
    while (month < 12 && doy >= k_days_before_month[month] + (month >= 2 && is_leap(year)))
        month++;
    int day = doy - k_days_before_month[month - 1] - (month > 2 && is_leap(year)) + 1;
    put_digits(out, year, 4);
    out[4] = '-';
    put_digits(out + 5, month, 2);
    out[7] = '-';
    put_digits(out + 8, day, 2);
    out[10] = 'T';
}

size_t tally_datetime_format(int64_t ms, char *out)
{
    if (ms < TALLY_DATETIME_MIN_MS || ms > TALLY_DATETIME_MAX_MS) {
        out[0] = '\0';
        return 0;
    }
    /* ms is at least MIN_MS, so this shift makes it non-negative and the
     * divisions below are floor divisions, also before 1970. */
    int64_t since0 = ms + EPOCH_DAY * MS_PER_DAY;
    int64_t day0 = since0 / MS_PER_DAY;
    int64_t ms_of_day = since0 % MS_PER_DAY;

    /* Most datetimes an answer holds fall on the day of the one before
     * (createdAt, updatedAt, today): the date's text is kept per thread. */
    static _Thread_local int64_t last_day0 = -1;
    static _Thread_local char last_date[11];
    if (day0 != last_day0) {
        format_date(day0, last_date);
        last_day0 = day0;
    }

    int secs = (int)(ms_of_day / 1000);
    int millis = (int)(ms_of_day % 1000);
    memcpy(out, last_date, 11);
    put_digits(out + 11, secs / 3600, 2);
    out[13] = ':';
    put_digits(out + 14, secs / 60 % 60, 2);
    out[16] = ':';
    put_digits(out + 17, secs % 60, 2);
    out[19] = '.';
    put_digits(out + 20, millis, 3);
    out[23] = 'Z';
    out[24] = '\0';
    return 24;
}

int64_t tally_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
