/* Unit tests for core/scope: parsing the scopes of a key (and refusing what
 * is not one), printing them back, and which scope grants which: admin
 * everything, write the matching read, unnamed read/write every model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/scope.h"

static tally_scope parse(const char *text)
{
    tally_scope s;
    tally_error err;
    assert_int_equal(tally_scope_parse(text, strlen(text), &s, &err), 0);
    return s;
}

static void refused(const char *text, const char *word)
{
    tally_scope s;
    tally_error err;
    assert_int_equal(tally_scope_parse(text, strlen(text), &s, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, word));
}

static void parses_every_scope(void **state)
{
    (void)state;
    const char *all[] = {"admin", "read", "write", "read:post", "write:post", "locks", "limits", "changes",
                         "metrics", "action:sellTicket"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tally_scope s = parse(all[i]);
        char back[100];
        tally_scope_format(&s, back, sizeof back);
        assert_string_equal(back, all[i]);
    }
    assert_int_equal(parse("write:post").kind, TALLY_SCOPE_WRITE);
    assert_string_equal(parse("write:post").name, "post");
}

static void refuses_what_is_no_scope(void **state)
{
    (void)state;
    refused("superuser", "not a scope");
    refused("", "not a scope");
    refused("read:", "model or action name");
    refused("read:1post", "model or action name");
    refused("admin:x", "takes no");
    refused("locks:a", "takes no");
    refused("action", "needs a name");
    refused("Read", "not a scope");
}

static void lists_round_trip_without_duplicates(void **state)
{
    (void)state;
    tally_scopes set;
    tally_error err;
    assert_int_equal(tally_scopes_parse_list("read  write:post read", &set, &err), 0);
    assert_int_equal(set.n, 2);
    char text[200];
    tally_scopes_format(&set, text, sizeof text);
    assert_string_equal(text, "read write:post");
    assert_int_equal(tally_scopes_parse_list("read bogus", &set, &err), -TALLY_BAD_REQUEST);
}

static bool allows(const char *have, const char *need)
{
    tally_scopes set;
    tally_error err;
    assert_int_equal(tally_scopes_parse_list(have, &set, &err), 0);
    tally_scope n = parse(need);
    return tally_scopes_allow(&set, &n);
}

static void matching(void **state)
{
    (void)state;
    assert_true(allows("admin", "write:post"));
    assert_true(allows("admin", "metrics"));
    assert_true(allows("admin", "action:x"));
    assert_true(allows("read", "read:post"));
    assert_false(allows("read", "write:post"));
    assert_true(allows("write", "read:post"));        /* write implies read */
    assert_true(allows("write:post", "read:post"));   /* and write:M read:M */
    assert_false(allows("write:post", "read:image"));
    assert_false(allows("read:post", "write:post"));
    assert_false(allows("read:post", "read:image"));
    assert_true(allows("read:post", "read:post"));
    assert_false(allows("write", "admin"));
    assert_false(allows("read write", "locks"));
    assert_true(allows("locks", "locks"));
    assert_false(allows("limits", "locks"));
    assert_true(allows("action:a", "action:a"));
    assert_false(allows("action:a", "action:b"));
    assert_false(allows("metrics", "read:post"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_every_scope),
        cmocka_unit_test(refuses_what_is_no_scope),
        cmocka_unit_test(lists_round_trip_without_duplicates),
        cmocka_unit_test(matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
