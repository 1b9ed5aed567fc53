/* Unit tests for store/postgres/errors.c: PostgreSQL's diagnostics (SQLSTATE,
 * constraint, column, message) mapped to Tally's errors as a pure function,
 * with the SQLite backend's messages and paths: CHECK -> INVARIANT naming the
 * field (also through a shortened name), unique -> UNIQUE_VIOLATION with the
 * index's fields, foreign keys -> the missing link or still referenced, NOT
 * NULL -> VALIDATION, tally:overflow / 22003 -> OVERFLOW, tally:null ->
 * VALIDATION, 40001 / 40P01 -> CONFLICT with rerun, a lost connection ->
 * UNAVAILABLE, anything else INTERNAL without the library's text; and the
 * URL shown in messages has no password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sql_util.h"
#include "store/postgres/internal.h"

static tally_pg_diag diag(const char *sqlstate, const char *message, const char *constraint, const char *column)
{
    tally_pg_diag d = {.sqlstate = sqlstate, .message = message, .constraint = constraint, .column = column};
    return d;
}

static void expect(tally_plan *plan, int step, tally_pg_diag d, tally_code code, const char *path, const char *msg)
{
    tally_error err;
    tally_error_clear(&err);
    assert_int_equal(tally_pg_map_error(plan, &plan->steps[step], &d, &err), -(int)code);
    assert_int_equal(err.code, code);
    if (strcmp(err.path, path) != 0)
        fail_msg("path: got '%s', want '%s'", err.path, path);
    if (msg && strcmp(err.message, msg) != 0)
        fail_msg("message:\n got: %s\nwant: %s", err.message, msg);
}

static void test_checks(void **state)
{
    (void)state;
    tally_plan *plan = decode(shop, "product", 1, "{'_atomics': {'stock': {'decrement': 100}}}");
    expect(plan, 0, diag("23514", "new row violates check constraint", "min:stock", NULL), TALLY_INVARIANT,
           "_atomics.stock", "stock would go below its min of 0; nothing was changed");
    tally_plan_free(plan);
    plan = decode(pets, "pet", 1, "{'weight': 9}");
    expect(plan, 0, diag("23514", "x", "max:weight", NULL), TALLY_INVARIANT, "weight",
           "weight would go above its max of 2.25; nothing was changed");
    expect(plan, 0, diag("23514", "x", "bool:good", NULL), TALLY_INVARIANT, "",
           "a constraint would be violated: CHECK constraint failed: bool:good");
    tally_plan_free(plan);
}

static void test_long_constraint_name(void **state)
{
    (void)state;
    char f63[64], json[512];
    memset(f63, 'q', 63);
    f63[63] = '\0';
    snprintf(json, sizeof json, "{\"models\": {\"m\": {\"fields\": {\"%s\": {\"type\": \"integer\", \"max\": 5}}}}}", f63);
    tally_schema *s;
    assert_int_equal(parse_schema(json, &s), 0);
    char name[TALLY_PG_IDENT_MAX + 1];
    tally_pgsql_constraint_name(name, "max", &s->models[0].fields[0]);
    tally_plan *plan = tally_plan_new(s);
    tally_step *st = tally_plan_add_step(plan, TALLY_OP_UPDATE, &s->models[0]);
    st->path = "";
    st->id = tally_value_int(1);
    char want[256];
    snprintf(want, sizeof want, "%s would go above its max of 5; nothing was changed", f63);
    expect(plan, 0, diag("23514", "x", name, NULL), TALLY_INVARIANT, f63, want);
    tally_plan_free(plan);
    tally_schema_free(s);
}

static void test_unique_and_not_null(void **state)
{
    (void)state;
    tally_plan *plan = decode(shop, "customer", 0, "{'name': 'B', 'email': 'e'}");
    expect(plan, 0, diag("23505", "duplicate key", "u:customer:email", NULL), TALLY_UNIQUE_VIOLATION, "email",
           "another customer already has this value (email must be unique); choose another value");
    expect(plan, 0, diag("23502", "null value in column", NULL, "name"), TALLY_VALIDATION, "name",
           "name is required and cannot be null");
    tally_plan_free(plan);
    plan = decode(shop, "rateLimit", 0, "{'userId': 'u', 'window': 1}");
    expect(plan, 0, diag("23505", "duplicate key", "u:rateLimit:userId:window", NULL), TALLY_UNIQUE_VIOLATION,
           "userId,window",
           "another rateLimit already has this combination of values (userId,window must be unique); choose another "
           "value");
    tally_plan_free(plan);
}

static void test_links(void **state)
{
    (void)state;
    tally_plan *plan = decode(shop, "ticket", 0, "{'event': 99}");
    expect(plan, 0, diag("23503", "violates foreign key", "fk:event", NULL), TALLY_VALIDATION, "event",
           "event: there is no event with id 99 to link to; create it first or link an existing one");
    tally_plan_free(plan);
    plan = tally_plan_new(shop);
    tally_step *d = tally_plan_add_step(plan, TALLY_OP_DELETE, M(shop, "event"));
    d->path = "";
    d->id = tally_value_int(4);
    expect(plan, 0, diag("23503", "x", "fk:event", NULL), TALLY_CONFLICT, "", "event 4 is still linked from other records");
    tally_step *dm = tally_plan_add_step(plan, TALLY_OP_DELETE_MANY, M(shop, "event"));
    dm->path = "";
    expect(plan, 1, diag("23503", "x", "fk:event", NULL), TALLY_CONFLICT, "",
           "some matching event records are still linked from other records with onDelete restrict; nothing was "
           "deleted. Delete or relink those first");
    tally_plan_free(plan);
}

static void test_arithmetic(void **state)
{
    (void)state;
    tally_plan *plan = decode(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}");
    expect(plan, 0, diag("22003", "tally:overflow:5", NULL, NULL), TALLY_OVERFLOW, "_atomics.orderCount",
           "orderCount: the result would not fit a signed 64-bit integer; nothing was changed");
    expect(plan, 0, diag("22004", "tally:null:5", NULL, NULL), TALLY_VALIDATION, "_atomics.orderCount",
           "orderCount is not set, so it cannot be incremented or decremented; set it to a number first");
    expect(plan, 0, diag("22003", "bigint out of range", NULL, NULL), TALLY_OVERFLOW, "", NULL);
    tally_plan_free(plan);
}

static void test_retry_and_loss(void **state)
{
    (void)state;
    tally_plan *plan = decode(shop, "customer", 1, "{'name': 'x'}");
    tally_error err;
    tally_pg_diag d = diag("40001", "could not serialize access", NULL, NULL);
    assert_int_equal(tally_pg_map_error(plan, &plan->steps[0], &d, &err), -TALLY_CONFLICT);
    assert_true(err.rerun);
    assert_non_null(strstr(err.message, "run it again"));
    d = diag("40P01", "deadlock detected", NULL, NULL);
    assert_int_equal(tally_pg_map_error(plan, &plan->steps[0], &d, &err), -TALLY_CONFLICT);
    assert_true(err.rerun);
    assert_non_null(strstr(err.message, "deadlock"));
    d = diag(NULL, "server closed the connection unexpectedly", NULL, NULL);
    d.lost = true;
    assert_int_equal(tally_pg_map_error(plan, &plan->steps[0], &d, &err), -TALLY_UNAVAILABLE);
    assert_false(err.rerun);
    assert_string_equal(err.message, "the database could not complete the write (the connection was lost); retry");
    d = diag("57P01", "terminating connection due to administrator command", NULL, NULL);
    assert_int_equal(tally_pg_map_error(plan, &plan->steps[0], &d, &err), -TALLY_UNAVAILABLE);
    d = diag("08006", "connection failure", NULL, NULL);
    assert_int_equal(tally_pg_map_error(plan, &plan->steps[0], &d, &err), -TALLY_UNAVAILABLE);
    /* Anything else: INTERNAL, and the library's words stay in the server log. */
    d = diag("XX000", "secret internal detail", NULL, NULL);
    assert_int_equal(tally_pg_map_error(plan, &plan->steps[0], &d, &err), -TALLY_INTERNAL);
    assert_null(strstr(err.message, "secret"));
    assert_non_null(strstr(err.message, "XX000"));
    /* Outside a record step. */
    d = diag("40P01", "deadlock detected", NULL, NULL);
    assert_int_equal(tally_pg_fail(&d, "store the limit", &err), -TALLY_CONFLICT);
    assert_true(err.rerun);
    d = diag("42P01", "relation does not exist", NULL, NULL);
    assert_int_equal(tally_pg_fail(&d, "store the limit", &err), -TALLY_UNAVAILABLE);
    assert_string_equal(err.message, "the database could not store the limit (SQLSTATE 42P01); retry");
    tally_plan_free(plan);
}

static void test_redact_url(void **state)
{
    (void)state;
    char out[256];
    tally_url_redact("postgresql://ada:s3cr%40t@db.example:5432/shop?sslmode=require", out, sizeof out);
    assert_string_equal(out, "postgresql://ada@db.example:5432/shop?sslmode=require");
    tally_url_redact("postgres://db/shop?user=ada&password=hunter2&sslmode=disable", out, sizeof out);
    assert_string_equal(out, "postgres://db/shop?user=ada&password=***&sslmode=disable");
    tally_url_redact("postgresql://ada@127.0.0.1:55432/postgres", out, sizeof out);
    assert_string_equal(out, "postgresql://ada@127.0.0.1:55432/postgres");
    tally_url_redact("postgresql:///shop", out, sizeof out);
    assert_string_equal(out, "postgresql:///shop");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),          cmocka_unit_test(test_long_constraint_name),
        cmocka_unit_test(test_unique_and_not_null), cmocka_unit_test(test_links),
        cmocka_unit_test(test_arithmetic),      cmocka_unit_test(test_retry_and_loss),
        cmocka_unit_test(test_redact_url),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
