/* Unit tests for core/datetime: RFC 3339 parsing and formatting against
 * known instants, every day of years 0000-9999 against an independent
 * calendar walk, offsets, pre-1970 values, and each malformed input the
 * header promises to refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/datetime.h"

/* Parses a NUL-terminated string; fails the test if it does not parse. */
static int64_t parse_ok(const char *s)
{
    int64_t ms = 0x5a5a5a5a;
    int rc = tally_datetime_parse(s, strlen(s), &ms);
    if (rc != 0)
        fail_msg("expected \"%s\" to parse", s);
    return ms;
}

static void assert_parse_fails(const char *s)
{
    int64_t ms = 12345;
    int rc = tally_datetime_parse(s, strlen(s), &ms);
    if (rc != -1)
        fail_msg("expected \"%s\" to be refused", s);
    assert_int_equal(ms, 12345); /* untouched on failure */
}

static void assert_formats(int64_t ms, const char *want)
{
    char buf[TALLY_DATETIME_MAX];
    memset(buf, 'x', sizeof buf);
    size_t n = tally_datetime_format(ms, buf);
    assert_int_equal(n, 24);
    assert_int_equal(strlen(buf), 24);
    assert_string_equal(buf, want);
}

static void test_known_instants(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_ok("2026-11-23T15:07:41Z"), 1795446461000LL);
    assert_int_equal(parse_ok("2000-02-29T12:00:00Z"), 951825600000LL);
    assert_int_equal(parse_ok("2038-01-19T03:14:08Z"), 2147483648000LL);
    assert_int_equal(parse_ok("0000-01-01T00:00:00Z"), TALLY_DATETIME_MIN_MS);
    assert_int_equal(parse_ok("9999-12-31T23:59:59.999Z"), TALLY_DATETIME_MAX_MS);

    assert_formats(0, "1970-01-01T00:00:00.000Z");
    assert_formats(1795446461000LL, "2026-11-23T15:07:41.000Z");
    assert_formats(1795446461007LL, "2026-11-23T15:07:41.007Z");
    assert_formats(TALLY_DATETIME_MIN_MS, "0000-01-01T00:00:00.000Z");
    assert_formats(TALLY_DATETIME_MAX_MS, "9999-12-31T23:59:59.999Z");
}

static void test_pre_1970(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1969-12-31T23:59:59.999Z"), -1);
    assert_int_equal(parse_ok("1969-12-31T23:59:59Z"), -1000);
    assert_int_equal(parse_ok("1969-07-20T20:17:40Z"), -14182940000LL);
    assert_int_equal(parse_ok("1900-01-01T00:00:00Z"), -2208988800000LL);
    assert_int_equal(parse_ok("0001-01-01T00:00:00Z"), -62135596800000LL);

    assert_formats(-1, "1969-12-31T23:59:59.999Z");
    assert_formats(-1000, "1969-12-31T23:59:59.000Z");
    assert_formats(-999, "1969-12-31T23:59:59.001Z");
    assert_formats(-86400000LL, "1969-12-31T00:00:00.000Z");
    assert_formats(-86400001LL, "1969-12-30T23:59:59.999Z");
    assert_formats(-14182940000LL, "1969-07-20T20:17:40.000Z");
    assert_formats(-2208988800000LL, "1900-01-01T00:00:00.000Z");
    assert_formats(-62135596800000LL, "0001-01-01T00:00:00.000Z");
    assert_formats(-62135596800001LL, "0000-12-31T23:59:59.999Z");
}

static void test_fractions(void **state)
{
    (void)state;
    const int64_t base = 1795446461000LL;
    assert_int_equal(parse_ok("2026-11-23T15:07:41.5Z"), base + 500);
    assert_int_equal(parse_ok("2026-11-23T15:07:41.05Z"), base + 50);
    assert_int_equal(parse_ok("2026-11-23T15:07:41.123Z"), base + 123);
    assert_int_equal(parse_ok("2026-11-23T15:07:41.000Z"), base);
    /* Past three digits the fraction is truncated, never rounded. */
    assert_int_equal(parse_ok("2026-11-23T15:07:41.9999Z"), base + 999);
    assert_int_equal(parse_ok("2026-11-23T15:07:41.123456789Z"), base + 123);
    assert_int_equal(parse_ok("2026-11-23T15:07:41.000999999Z"), base);
    /* Before 1970 truncation is still toward the earlier wall-clock digit. */
    assert_int_equal(parse_ok("1969-12-31T23:59:59.9999Z"), -1);
}

static void test_offsets_and_case(void **state)
{
    (void)state;
    const int64_t base = 1795446461000LL;
    assert_int_equal(parse_ok("2026-11-23T15:07:41+01:00"), 1795442861000LL);
    assert_int_equal(parse_ok("2026-11-23T15:07:41-05:30"), 1795466261000LL);
    assert_int_equal(parse_ok("2026-11-23T15:07:41.5+01:00"), 1795442861500LL);
    assert_int_equal(parse_ok("2026-11-23T15:07:41+00:00"), base);
    assert_int_equal(parse_ok("2026-11-23T15:07:41-00:00"), base);
    assert_int_equal(parse_ok("2026-11-23T16:07:41+01:00"), base);
    assert_int_equal(parse_ok("2026-11-24T04:07:41+13:00"), base);
    assert_int_equal(parse_ok("2026-11-23T03:07:41-12:00"), base);
    assert_int_equal(parse_ok("2026-11-23T15:07:41+23:59"), base - (23 * 60 + 59) * 60000LL);
    /* An offset can carry the instant across a year, and across 1970. */
    assert_int_equal(parse_ok("1970-01-01T00:30:00+01:00"), -1800000);
    assert_int_equal(parse_ok("1969-12-31T23:30:00-01:00"), 1800000);

    assert_int_equal(parse_ok("2026-11-23t15:07:41z"), base);
    assert_int_equal(parse_ok("2026-11-23 15:07:41Z"), base);
    assert_int_equal(parse_ok("2026-11-23t15:07:41.5-00:00"), base + 500);
}

static void test_leap_years(void **state)
{
    (void)state;
    parse_ok("2000-02-29T00:00:00Z");
    parse_ok("2024-02-29T00:00:00Z");
    parse_ok("2400-02-29T00:00:00Z");
    parse_ok("1600-02-29T00:00:00Z");
    parse_ok("0000-02-29T00:00:00Z"); /* year 0 is divisible by 400 */
    parse_ok("0004-02-29T00:00:00Z");
    assert_parse_fails("1900-02-29T00:00:00Z");
    assert_parse_fails("2100-02-29T00:00:00Z");
    assert_parse_fails("2023-02-29T00:00:00Z");
    assert_parse_fails("2025-02-29T00:00:00Z");
    assert_parse_fails("0001-02-29T00:00:00Z");
    assert_parse_fails("2024-02-30T00:00:00Z");

    /* The day after Feb 28 is Mar 1 in a common year, Feb 29 in a leap one. */
    assert_int_equal(parse_ok("2023-03-01T00:00:00Z") - parse_ok("2023-02-28T00:00:00Z"),
                     86400000LL);
    assert_int_equal(parse_ok("2024-03-01T00:00:00Z") - parse_ok("2024-02-28T00:00:00Z"),
                     2 * 86400000LL);
    assert_int_equal(parse_ok("2001-01-01T00:00:00Z") - parse_ok("2000-01-01T00:00:00Z"),
                     366 * 86400000LL);
    assert_int_equal(parse_ok("1901-01-01T00:00:00Z") - parse_ok("1900-01-01T00:00:00Z"),
                     365 * 86400000LL);
    assert_formats(parse_ok("2024-02-29T23:59:59.999Z"), "2024-02-29T23:59:59.999Z");
    assert_formats(parse_ok("2024-02-29T23:59:59.999Z") + 1, "2024-03-01T00:00:00.000Z");
    assert_formats(parse_ok("2023-02-28T23:59:59.999Z") + 1, "2023-03-01T00:00:00.000Z");
}

static void test_leap_second_clamped(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), 1483228799000LL);
    assert_int_equal(parse_ok("2016-12-31T23:59:60.5Z"), 1483228799500LL);
    assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), parse_ok("2016-12-31T23:59:59Z"));
}

/* Walks every day from 0000-01-01 to 9999-12-31 with a plain day/month/year
 * counter (independent of the code under test), checking that each date
 * parses to the previous one plus a day and formats back to itself. */
static void test_every_day(void **state)
{
    (void)state;
    static const int mdays[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = 0, m = 1, d = 1;
    int64_t want = TALLY_DATETIME_MIN_MS;
    char text[64], buf[TALLY_DATETIME_MAX];
    long days = 0;
    for (;;) {
        snprintf(text, sizeof text, "%04d-%02d-%02dT00:00:00.000Z", y, m, d);
        int64_t got = 0;
        assert_int_equal(tally_datetime_parse(text, strlen(text), &got), 0);
        if (got != want)
            fail_msg("%s parsed to %lld, want %lld", text, (long long)got, (long long)want);
        assert_int_equal(tally_datetime_format(got, buf), 24);
        assert_string_equal(buf, text);
        /* The last millisecond of the previous day formats as that day. */
        if (days > 0) {
            assert_int_equal(tally_datetime_format(got - 1, buf), 24);
            assert_memory_not_equal(buf, text, 10);
            assert_string_equal(buf + 10, "T23:59:59.999Z");
        }
        days++;
        want += 86400000LL;

        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        int len = mdays[m] + (m == 2 && leap);
        if (++d > len) {
            d = 1;
            if (++m > 12) {
                m = 1;
                if (++y > 9999)
                    break;
            }
        }
    }
    assert_int_equal(days, 3652425); /* 10000 Gregorian years */
    assert_int_equal(want - 1, TALLY_DATETIME_MAX_MS);
}

/* parse(format(ms)) == ms for a spread of values across the whole range. */
static void test_round_trip_spread(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    const uint64_t span = (uint64_t)(TALLY_DATETIME_MAX_MS - TALLY_DATETIME_MIN_MS) + 1;
    char buf[TALLY_DATETIME_MAX];
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ms = TALLY_DATETIME_MIN_MS + (int64_t)(x % span);
        if (i < 2000)
            ms = (int64_t)(x % 4000000) - 2000000; /* dense around 1970 */
        assert_int_equal(tally_datetime_format(ms, buf), 24);
        int64_t back = 0;
        assert_int_equal(tally_datetime_parse(buf, 24, &back), 0);
        if (back != ms)
            fail_msg("%lld -> %s -> %lld", (long long)ms, buf, (long long)back);
    }
}

static void test_format_out_of_range(void **state)
{
    (void)state;
    char buf[TALLY_DATETIME_MAX];
    assert_int_equal(tally_datetime_format(TALLY_DATETIME_MIN_MS - 1, buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(tally_datetime_format(TALLY_DATETIME_MAX_MS + 1, buf), 0);
    assert_int_equal(tally_datetime_format(INT64_MIN, buf), 0);
    assert_int_equal(tally_datetime_format(INT64_MAX, buf), 0);
}

static void test_not_nul_terminated(void **state)
{
    (void)state;
    const char *s = "2026-11-23T15:07:41Zjunk";
    int64_t ms = 0;
    assert_int_equal(tally_datetime_parse(s, 20, &ms), 0);
    assert_int_equal(ms, 1795446461000LL);
    assert_int_equal(tally_datetime_parse(s, strlen(s), &ms), -1);
    /* Cut short of the offset: missing offset. */
    assert_int_equal(tally_datetime_parse(s, 19, &ms), -1);
    /* An exact-size heap copy, so ASan catches any read past len. */
    for (size_t cut = 0; cut <= 26; cut++) {
        const char *full = "2026-11-23T15:07:41.5+01:00";
        char *copy = test_malloc(cut ? cut : 1);
        memcpy(copy, full, cut);
        int rc = tally_datetime_parse(copy, cut, &ms);
        assert_int_equal(rc, -1); /* every proper prefix is incomplete */
        test_free(copy);
    }
    assert_int_equal(tally_datetime_parse(NULL, 0, &ms), -1);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "2026",
        "2026-11-23",
        /* month and day */
        "2026-00-23T15:07:41Z",
        "2026-13-23T15:07:41Z",
        "2026-11-00T15:07:41Z",
        "2026-11-31T15:07:41Z",
        "2026-04-31T15:07:41Z",
        "2026-01-32T15:07:41Z",
        "2026-12-32T15:07:41Z",
        /* time of day */
        "2026-11-23T24:00:00Z",
        "2026-11-23T25:07:41Z",
        "2026-11-23T15:60:41Z",
        "2026-11-23T15:07:61Z",
        "2026-11-23T15:07:99Z",
        /* missing or bad offset */
        "2026-11-23T15:07:41",
        "2026-11-23T15:07:41.5",
        "2026-11-23T15:07:41+01",
        "2026-11-23T15:07:41+0100",
        "2026-11-23T15:07:41+1:00",
        "2026-11-23T15:07:41+01:0",
        "2026-11-23T15:07:41+24:00",
        "2026-11-23T15:07:41+01:60",
        "2026-11-23T15:07:41 01:00",
        "2026-11-23T15:07:41UTC",
        "2026-11-23T15:07:41GMT",
        /* trailing garbage */
        "2026-11-23T15:07:41Zx",
        "2026-11-23T15:07:41Z ",
        "2026-11-23T15:07:41ZZ",
        "2026-11-23T15:07:41+01:00x",
        "2026-11-23T15:07:41+01:00:00",
        /* fraction */
        "2026-11-23T15:07:41.Z",
        "2026-11-23T15:07:41.1234567890Z",
        "2026-11-23T15:07:41,5Z",
        "2026-11-23T15:07:41.5.5Z",
        /* shape */
        "2026-11-23X15:07:41Z",
        "2026-11-23_15:07:41Z",
        "2026/11/23T15:07:41Z",
        "2026-11-23T15-07-41Z",
        "2026-1-23T15:07:41Z",
        "2026-11-3T15:07:41Z",
        "26-11-23T15:07:41Z",
        "+2026-11-23T15:07:41Z",
        "-2026-11-23T15:07:41Z",
        "20261-11-23T15:07:41Z",
        "2026-11-23T15:07Z",
        "2026-11-23T1:07:41Z",
        "2026-11-23T15:07:4Z",
        "2O26-11-23T15:07:41Z",
        "2026-1a-23T15:07:41Z",
        " 2026-11-23T15:07:41Z",
        "2026-11-23T15:07:41 Z",
        "2026-11-23T 15:07:41Z",
        "2026-11-23T-5:07:41Z",
        "2026-11-23T+5:07:41Z",
        /* instants pushed outside 0000..9999 by the offset */
        "0000-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59.999-00:01",
        "9999-12-31T23:30:00-01:00",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_parse_fails(bad[i]);

    /* An embedded NUL is not a separator or an offset. */
    int64_t ms = 0;
    assert_int_equal(tally_datetime_parse("2026-11-23T15:07:41\0Z", 21, &ms), -1);
    assert_int_equal(tally_datetime_parse("2026-11-23\00015:07:41Z", 20, &ms), -1);
}

static void test_now(void **state)
{
    (void)state;
    int64_t before = (int64_t)time(NULL) * 1000;
    int64_t now = tally_now_ms();
    int64_t after = ((int64_t)time(NULL) + 1) * 1000;
    assert_true(now >= before - 1000 && now <= after);
    assert_true(now > parse_ok("2020-01-01T00:00:00Z"));
    char buf[TALLY_DATETIME_MAX];
    assert_int_equal(tally_datetime_format(now, buf), 24);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_instants),
        cmocka_unit_test(test_pre_1970),
        cmocka_unit_test(test_fractions),
        cmocka_unit_test(test_offsets_and_case),
        cmocka_unit_test(test_leap_years),
        cmocka_unit_test(test_leap_second_clamped),
        cmocka_unit_test(test_every_day),
        cmocka_unit_test(test_round_trip_spread),
        cmocka_unit_test(test_format_out_of_range),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
