/* Unit tests for api/json_in: integer literals past 64 bits widened to
 * doubles (and nothing else touched, strings included), integers inside the
 * range kept exact, NUL characters refused with their path, and jansson's
 * errors turned into our words with line and column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api/json_in.h"

static void check_widen(const char *in, const char *want, size_t count)
{
    tally_buf b;
    tally_buf_init(&b);
    assert_int_equal(tally_json_widen_integers(in, strlen(in), &b), count);
    assert_string_equal(b.s ? b.s : "", want);
    tally_buf_free(&b);
}

static void test_widen(void **state)
{
    (void)state;
    check_widen("{\"a\": 12345678901234567000}", "{\"a\": 12345678901234567000.0}", 1);
    check_widen("[9223372036854775807, 9223372036854775808]", "[9223372036854775807, 9223372036854775808.0]", 1);
    check_widen("[-9223372036854775808, -9223372036854775809]", "[-9223372036854775808, -9223372036854775809.0]", 1);
    check_widen("[1e30, 1.5, 100000000000000000000.5, 0]", "[1e30, 1.5, 100000000000000000000.5, 0]", 0);
    /* inside strings nothing changes, escaped quotes included */
    check_widen("{\"k\\\"99999999999999999999\": \"99999999999999999999\"}",
                "{\"k\\\"99999999999999999999\": \"99999999999999999999\"}", 0);
    check_widen("", "", 0);
}

static void test_big_integers(void **state)
{
    (void)state;
    tally_error err;
    const char *text = "{\"price\": 12345678901234567000, \"stock\": 9007199254740993}";
    json_t *j = tally_json_parse(text, strlen(text), "the body", "", TALLY_JSON_DOCUMENT, &err);
    assert_non_null(j);
    json_t *price = json_object_get(j, "price"), *stock = json_object_get(j, "stock");
    assert_true(json_is_real(price));
    assert_true(json_real_value(price) == 12345678901234567000.0);
    assert_true(tally_json_is_huge_integer(price));
    assert_true(json_is_integer(stock)); /* exact: 2^53 + 1 */
    assert_true(json_integer_value(stock) == 9007199254740993LL);
    assert_false(tally_json_is_huge_integer(stock));
    json_decref(j);

    json_t *small = json_real(1.5), *big_neg = json_real(-1e19), *edge = json_real(9223372036854775807.0);
    assert_false(tally_json_is_huge_integer(small));
    assert_true(tally_json_is_huge_integer(big_neg));
    assert_true(tally_json_is_huge_integer(edge)); /* the double is 2^63 */
    json_decref(small);
    json_decref(big_neg);
    json_decref(edge);

    /* past what a double holds: still refused, in our words */
    const char *huge = "{\"x\": 1e999}";
    assert_null(tally_json_parse(huge, strlen(huge), "the body", "", TALLY_JSON_DOCUMENT, &err));
    assert_int_equal(err.code, TALLY_VALIDATION);
    assert_non_null(strstr(err.message, "too large for a double"));
}

static void test_nul(void **state)
{
    (void)state;
    tally_error err;
    const char *text = "{\"name\": \"ok\", \"items\": [{\"label\": \"a\\u0000b\"}]}";
    assert_null(tally_json_parse(text, strlen(text), "the body", "", TALLY_JSON_DOCUMENT, &err));
    assert_int_equal(err.code, TALLY_VALIDATION);
    assert_string_equal(err.path, "items[0].label");
    assert_non_null(strstr(err.message, "strings may not contain the NUL character (\\u0000)"));

    const char *param = "{\"name\": {\"equals\": \"\\u0000\"}}";
    assert_null(tally_json_parse(param, strlen(param), "filter", "filter", TALLY_JSON_ANY, &err));
    assert_string_equal(err.path, "filter.name.equals");

    const char *key = "{\"a\\u0000\": 1}";
    assert_null(tally_json_parse(key, strlen(key), "the body", "", TALLY_JSON_DOCUMENT, &err));
    assert_int_equal(err.code, TALLY_VALIDATION);
    assert_non_null(strstr(err.message, "NUL character"));
    assert_null(strstr(err.message, "JSON_ALLOW_NUL"));

    char path[64];
    json_t *clean = json_pack("{s:[s,i]}", "a", "x", 1);
    assert_false(tally_json_find_nul(clean, "", path, sizeof path));
    assert_string_equal(path, "");
    json_decref(clean);
}

/* Each malformed text is a 400 in our words: line, column, no jansson phrase. */
static void test_errors_in_our_words(void **state)
{
    (void)state;
    static const struct { const char *text, *want; } cases[] = {
        {"{\"name\": \"a\",", "before every string, object and list is closed"},
        {"{\"name\" \"a\"}", "not followed by ':'"},
        {"{\"a\": 1 \"b\": 2}", "missing a ','"},
        {"{\"a\": 1, \"a\": 2}", "the same key twice"},
        {"{\"a\": 1} x", "more text follows"},
        {"{\"a\": tru}", "not valid JSON at line 1"},
        {"{\"a\": \"\\q\"}", "invalid escape"},
        {"{\"a\": \"\xff\"}", "not valid UTF-8"},
        {"5", "must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tally_error err;
        assert_null(tally_json_parse(cases[i].text, strlen(cases[i].text), "the body", "", TALLY_JSON_DOCUMENT, &err));
        assert_int_equal(err.code, TALLY_BAD_REQUEST);
        if (!strstr(err.message, cases[i].want))
            fail_msg("%s: got '%s', want '%s'", cases[i].text, err.message, cases[i].want);
        assert_non_null(strstr(err.message, "the body"));
        assert_null(strstr(err.message, "expected near"));
        assert_null(strstr(err.message, "JSON_"));
    }
    tally_error err;
    assert_null(tally_json_parse("{\n\"a\": ]", 8, "the body", "", TALLY_JSON_DOCUMENT, &err));
    assert_non_null(strstr(err.message, "line 2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_widen),
        cmocka_unit_test(test_big_integers),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_errors_in_our_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
