/* Unit tests for core/error: the X-macro table (every code has a unique
 * upper-case name, a status in 200..599 and a generic text, and the three
 * arrays line up with the enum), the statuses README.md, "Errors" fixes for each
 * code, out-of-range codes answering as INTERNAL, and tally_fail /
 * tally_error_clear: code, message and path filled, -code returned, NULL err
 * and NULL path allowed, messages and paths longer than their buffers cut
 * short and still NUL-terminated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

/* The table as the header spells it, rebuilt here independently of error.c. */
static const struct {
    tally_code code;
    const char *name;
    int status;
    const char *text;
} expected[] = {
#define X(name, status, text) {TALLY_##name, #name, status, text},
    TALLY_ERRORS(X)
#undef X
};

static void test_every_code_has_name_status_text(void **state)
{
    (void)state;
    assert_int_equal(sizeof expected / sizeof expected[0], TALLY__CODE_COUNT);
    for (int c = 0; c < TALLY__CODE_COUNT; c++) {
        const char *name = tally_code_name((tally_code)c);
        const char *text = tally_code_text((tally_code)c);
        int status = tally_code_status((tally_code)c);
        assert_non_null(name);
        assert_non_null(text);
        assert_true(strlen(name) > 0);
        assert_true(strlen(text) > 0);
        if (status < 200 || status > 599)
            fail_msg("%s has status %d", name, status);
        /* The enum value, the name, the status and the text come from one row. */
        assert_int_equal(expected[c].code, c);
        assert_string_equal(name, expected[c].name);
        assert_int_equal(status, expected[c].status);
        assert_string_equal(text, expected[c].text);
        /* Names are what clients match on: upper case, digits and '_'. */
        for (const char *p = name; *p; p++)
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
                fail_msg("code name %s has character '%c'", name, *p);
        /* Texts are for a person: no trailing newline, no format directives. */
        assert_null(strchr(text, '\n'));
        assert_null(strchr(text, '%'));
    }
}

static void test_names_unique(void **state)
{
    (void)state;
    for (int a = 0; a < TALLY__CODE_COUNT; a++)
        for (int b = a + 1; b < TALLY__CODE_COUNT; b++)
            if (strcmp(tally_code_name((tally_code)a), tally_code_name((tally_code)b)) == 0)
                fail_msg("codes %d and %d share the name %s", a, b, tally_code_name((tally_code)a));
}

static void test_ok_is_zero(void **state)
{
    (void)state;
    /* Functions return 0 or -code: that only works if OK is 0 and nothing else is. */
    assert_int_equal(TALLY_OK, 0);
    assert_string_equal(tally_code_name(TALLY_OK), "OK");
    assert_int_equal(tally_code_status(TALLY_OK), 200);
    for (int c = 1; c < TALLY__CODE_COUNT; c++)
        assert_true(tally_code_status((tally_code)c) >= 400);
}

static void test_specific_statuses(void **state)
{
    (void)state;
    static const struct {
        tally_code code;
        const char *name;
        int status;
    } want[] = {
        {TALLY_BAD_REQUEST, "BAD_REQUEST", 400},
        {TALLY_UNAUTHORIZED, "UNAUTHORIZED", 401},
        {TALLY_FORBIDDEN, "FORBIDDEN", 403},
        {TALLY_NOT_FOUND, "NOT_FOUND", 404},
        {TALLY_METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", 405},
        {TALLY_GUARD_FAILED, "GUARD_FAILED", 409},
        {TALLY_UNIQUE_VIOLATION, "UNIQUE_VIOLATION", 409},
        {TALLY_CONFLICT, "CONFLICT", 409},
        {TALLY_EXPECTATION_FAILED, "EXPECTATION_FAILED", 409},
        {TALLY_LOCKED, "LOCKED", 409},
        {TALLY_LOCK_LOST, "LOCK_LOST", 409},
        {TALLY_PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", 413},
        {TALLY_VALIDATION, "VALIDATION", 422},
        {TALLY_INVARIANT, "INVARIANT", 422},
        {TALLY_OVERFLOW, "OVERFLOW", 422},
        {TALLY_IDEMPOTENCY_MISMATCH, "IDEMPOTENCY_MISMATCH", 422},
        {TALLY_RATE_LIMITED, "RATE_LIMITED", 429},
        {TALLY_INTERNAL, "INTERNAL", 500},
        {TALLY_OVERLOADED, "OVERLOADED", 503},
        {TALLY_UNAVAILABLE, "UNAVAILABLE", 503},
        {TALLY_TIMEOUT, "TIMEOUT", 504},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_string_equal(tally_code_name(want[i].code), want[i].name);
        if (tally_code_status(want[i].code) != want[i].status)
            fail_msg("%s: status %d, want %d", want[i].name, tally_code_status(want[i].code), want[i].status);
    }
}

static void test_out_of_range_is_internal(void **state)
{
    (void)state;
    const tally_code bad[] = {(tally_code)-1, TALLY__CODE_COUNT, (tally_code)(TALLY__CODE_COUNT + 1000),
                              (tally_code)-1000000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_string_equal(tally_code_name(bad[i]), "INTERNAL");
        assert_int_equal(tally_code_status(bad[i]), 500);
        assert_string_equal(tally_code_text(bad[i]), tally_code_text(TALLY_INTERNAL));
    }
}

static void test_fail_fills_and_returns(void **state)
{
    (void)state;
    tally_error err;
    memset(&err, 'x', sizeof err);
    int rc = tally_fail(&err, TALLY_NOT_FOUND, "images[2].url", "%s %lld does not exist", "customer", 42LL);
    assert_int_equal(rc, -TALLY_NOT_FOUND);
    assert_true(rc < 0);
    assert_int_equal(err.code, TALLY_NOT_FOUND);
    assert_string_equal(err.message, "customer 42 does not exist");
    assert_string_equal(err.path, "images[2].url");

    /* NULL path means no path. */
    rc = tally_fail(&err, TALLY_VALIDATION, NULL, "plain");
    assert_int_equal(rc, -TALLY_VALIDATION);
    assert_int_equal(err.code, TALLY_VALIDATION);
    assert_string_equal(err.message, "plain");
    assert_string_equal(err.path, "");

    /* A '%' in the path is text, not a directive. */
    tally_fail(&err, TALLY_BAD_REQUEST, "a%sb%n", "x");
    assert_string_equal(err.path, "a%sb%n");

    /* Every code round-trips through tally_fail. */
    for (int c = 1; c < TALLY__CODE_COUNT; c++) {
        assert_int_equal(tally_fail(&err, (tally_code)c, "p", "m%d", c), -c);
        assert_int_equal(err.code, c);
    }
}

static void test_fail_null_err(void **state)
{
    (void)state;
    assert_int_equal(tally_fail(NULL, TALLY_CONFLICT, "x", "%s", "nobody listens"), -TALLY_CONFLICT);
    assert_int_equal(tally_fail(NULL, TALLY_INTERNAL, NULL, "no path"), -TALLY_INTERNAL);
    assert_int_equal(tally_fail(NULL, TALLY_OK, NULL, "ok"), 0);
}

static void test_fail_truncates_long_text(void **state)
{
    (void)state;
    tally_error err;
    char big[4096];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char bigpath[1024];
    memset(bigpath, 'p', sizeof bigpath - 1);
    bigpath[sizeof bigpath - 1] = '\0';

    /* Canaries on both sides: truncation must stay inside each buffer. */
    struct {
        char before[16];
        tally_error e;
        char after[16];
    } guarded;
    memset(&guarded, 0x5a, sizeof guarded);
    int rc = tally_fail(&guarded.e, TALLY_VALIDATION, bigpath, "%s and more %d", big, 7);
    assert_int_equal(rc, -TALLY_VALIDATION);
    assert_int_equal(strlen(guarded.e.message), sizeof err.message - 1);
    assert_int_equal(strlen(guarded.e.path), sizeof err.path - 1);
    assert_memory_equal(guarded.e.message, big, sizeof err.message - 1);
    assert_memory_equal(guarded.e.path, bigpath, sizeof err.path - 1);
    for (size_t i = 0; i < sizeof guarded.before; i++) {
        assert_int_equal((unsigned char)guarded.before[i], 0x5a);
        assert_int_equal((unsigned char)guarded.after[i], 0x5a);
    }

    /* Exactly at the limit: 511 characters fit, 512 lose the last one. */
    big[511] = '\0';
    tally_fail(&err, TALLY_VALIDATION, NULL, "%s", big);
    assert_int_equal(strlen(err.message), 511);
    big[511] = 'm';
    big[512] = '\0';
    tally_fail(&err, TALLY_VALIDATION, NULL, "%s", big);
    assert_int_equal(strlen(err.message), 511);
    bigpath[255] = '\0';
    tally_fail(&err, TALLY_VALIDATION, bigpath, "x");
    assert_string_equal(err.path, bigpath);

    /* Multibyte text cut at the limit is still NUL-terminated (bytes, not characters). */
    char utf[2048] = "";
    for (int i = 0; i < 300; i++)
        strcat(utf, "\xc3\xa9"); /* é */
    tally_fail(&err, TALLY_VALIDATION, utf, "%s", utf);
    assert_int_equal(strlen(err.message), 511);
    assert_int_equal(strlen(err.path), 255);
}

static void test_clear(void **state)
{
    (void)state;
    tally_error err;
    tally_fail(&err, TALLY_INVARIANT, "stock", "stock would go below its min of 0");
    tally_error_clear(&err);
    assert_int_equal(err.code, TALLY_OK);
    assert_string_equal(err.message, "");
    assert_string_equal(err.path, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_name_status_text),
        cmocka_unit_test(test_names_unique),
        cmocka_unit_test(test_ok_is_zero),
        cmocka_unit_test(test_specific_statuses),
        cmocka_unit_test(test_out_of_range_is_internal),
        cmocka_unit_test(test_fail_fills_and_returns),
        cmocka_unit_test(test_fail_null_err),
        cmocka_unit_test(test_fail_truncates_long_text),
        cmocka_unit_test(test_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
