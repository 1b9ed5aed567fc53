/* Unit tests for store/sql, the text: the exact SQL of every builder for the
 * shop schema and for a schema with every type and option (CREATE TABLE ...
 * STRICT with AUTOINCREMENT, NOT NULL, CHECK constraints named "min:stock",
 * "max:…", "bool:…", REFERENCES … ON DELETE RESTRICT / CASCADE / SET NULL;
 * the ALTER TABLE column definition; unique indexes for a field and a
 * compound key; select by id, list with sort keys and keyset conditions,
 * insert, upsert, update with sets and atomics nested in order with their
 * parameter numbers and column number, bulk update with its crossing count,
 * delete), and the same text whatever the values.  test_sql_db.c runs that
 * SQL on a real database; the shared helpers are in sql_util.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/decode.h"
#include "api/filter.h"
#include "core/schema.h"
#include "store/sql.h"
#include "sql_util.h"

static void assert_sql(tally_sql *q, const char *want)
{
    if (!q->s || strcmp(q->s, want) != 0)
        fail_msg("SQL differs:\n got: %s\nwant: %s", q->s ? q->s : "(null)", want);
    assert_int_equal(q->len, strlen(want));
    tally_sql_free(q);
}

/* ---- text ------------------------------------------------------------------- */

static void test_name_quoting(void **state)
{
    (void)state;
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_name(&q, "orderCount");
    tally_sql_add(&q, ".");
    tally_sql_name(&q, "x");
    assert_sql(&q, "\"orderCount\".\"x\"");
}

static void test_create_table_shop(void **state)
{
    (void)state;
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_create_table(&q, M(shop, "customer"));
    assert_sql(&q, "CREATE TABLE \"customer\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \"createdAt\" INTEGER NOT NULL, "
                   "\"updatedAt\" INTEGER NOT NULL, \"name\" TEXT NOT NULL, \"email\" TEXT, \"orderCount\" INTEGER) STRICT");
    tally_sql_init(&q);
    tally_sql_create_table(&q, M(shop, "product"));
    assert_sql(&q, "CREATE TABLE \"product\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \"createdAt\" INTEGER NOT NULL, "
                   "\"updatedAt\" INTEGER NOT NULL, \"sku\" TEXT NOT NULL, "
                   "\"stock\" INTEGER CONSTRAINT \"min:stock\" CHECK (\"stock\" >= 0)) STRICT");
    tally_sql_init(&q);
    tally_sql_create_table(&q, M(shop, "ticket"));
    assert_sql(&q, "CREATE TABLE \"ticket\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \"createdAt\" INTEGER NOT NULL, "
                   "\"updatedAt\" INTEGER NOT NULL, "
                   "\"event\" INTEGER NOT NULL REFERENCES \"event\"(\"id\") ON DELETE RESTRICT) STRICT");
    /* hasMany has no column. */
    tally_sql_init(&q);
    tally_sql_create_table(&q, M(shop, "post"));
    assert_sql(&q, "CREATE TABLE \"post\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \"createdAt\" INTEGER NOT NULL, "
                   "\"updatedAt\" INTEGER NOT NULL, \"title\" TEXT NOT NULL) STRICT");
    tally_sql_init(&q);
    tally_sql_create_table(&q, M(shop, "image"));
    assert_sql(&q, "CREATE TABLE \"image\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \"createdAt\" INTEGER NOT NULL, "
                   "\"updatedAt\" INTEGER NOT NULL, \"url\" TEXT NOT NULL, "
                   "\"post\" INTEGER REFERENCES \"post\"(\"id\") ON DELETE RESTRICT) STRICT");
    tally_sql_init(&q);
    tally_sql_create_table(&q, M(shop, "event"));
    assert_sql(&q, "CREATE TABLE \"event\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \"createdAt\" INTEGER NOT NULL, "
                   "\"updatedAt\" INTEGER NOT NULL, \"soldTicketCount\" INTEGER, \"availableTicketCount\" INTEGER "
                   "CONSTRAINT \"min:availableTicketCount\" CHECK (\"availableTicketCount\" >= 0)) STRICT");
}

static void test_create_table_every_option(void **state)
{
    (void)state;
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_create_table(&q, M(pets, "pet"));
    assert_sql(&q,
               "CREATE TABLE \"pet\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \"createdAt\" INTEGER NOT NULL, "
               "\"updatedAt\" INTEGER NOT NULL, "
               "\"keeper\" INTEGER REFERENCES \"owner\"(\"id\") ON DELETE CASCADE, "
               "\"vet\" INTEGER REFERENCES \"owner\"(\"id\") ON DELETE SET NULL, "
               "\"rescuer\" INTEGER NOT NULL REFERENCES \"owner\"(\"id\") ON DELETE RESTRICT, "
               "\"weight\" REAL CONSTRAINT \"min:weight\" CHECK (\"weight\" >= -1.5) "
               "CONSTRAINT \"max:weight\" CHECK (\"weight\" <= 2.25), "
               "\"ratio\" REAL CONSTRAINT \"max:ratio\" CHECK (\"ratio\" <= 0.10000000000000001), "
               "\"age\" INTEGER NOT NULL CONSTRAINT \"min:age\" CHECK (\"age\" >= -3) "
               "CONSTRAINT \"max:age\" CHECK (\"age\" <= 30), "
               "\"good\" INTEGER CONSTRAINT \"bool:good\" CHECK (\"good\" IN (0, 1)), "
               "\"born\" INTEGER, \"extra\" TEXT, \"nick\" TEXT) STRICT");
}

static void test_column_def_for_alter(void **state)
{
    (void)state;
    const tally_model *pet = M(pets, "pet");
    tally_sql q;
    /* A column added later cannot be NOT NULL; everything else stays. */
    tally_sql_init(&q);
    tally_sql_column_def(&q, pet, F(pet, "age"), 1);
    assert_sql(&q, "\"age\" INTEGER CONSTRAINT \"min:age\" CHECK (\"age\" >= -3) CONSTRAINT \"max:age\" CHECK (\"age\" <= 30)");
    tally_sql_init(&q);
    tally_sql_column_def(&q, pet, F(pet, "age"), 0);
    assert_sql(&q, "\"age\" INTEGER NOT NULL CONSTRAINT \"min:age\" CHECK (\"age\" >= -3) CONSTRAINT \"max:age\" CHECK "
                   "(\"age\" <= 30)");
    tally_sql_init(&q);
    tally_sql_column_def(&q, pet, F(pet, "rescuer"), 1);
    assert_sql(&q, "\"rescuer\" INTEGER REFERENCES \"owner\"(\"id\") ON DELETE RESTRICT");
    tally_sql_init(&q);
    tally_sql_column_def(&q, pet, F(pet, "extra"), 1);
    assert_sql(&q, "\"extra\" TEXT");
}

static void test_unique_index(void **state)
{
    (void)state;
    const tally_model *c = M(shop, "customer");
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_unique_index(&q, c, tally_model_field(c, "email", 5), -1);
    assert_sql(&q, "CREATE UNIQUE INDEX IF NOT EXISTS \"u:customer:email\" ON \"customer\" (\"email\")");
    const tally_model *p = M(shop, "product");
    tally_sql_init(&q);
    tally_sql_unique_index(&q, p, tally_model_field(p, "sku", 3), -1);
    assert_sql(&q, "CREATE UNIQUE INDEX IF NOT EXISTS \"u:product:sku\" ON \"product\" (\"sku\")");
    const tally_model *rl = M(shop, "rateLimit");
    tally_sql_init(&q);
    tally_sql_unique_index(&q, rl, -1, 0);
    assert_sql(&q, "CREATE UNIQUE INDEX IF NOT EXISTS \"u:rateLimit:userId:window\" ON \"rateLimit\" (\"userId\", \"window\")");
    const tally_model *pet = M(pets, "pet");
    tally_sql_init(&q);
    tally_sql_unique_index(&q, pet, -1, 0);
    assert_sql(&q, "CREATE UNIQUE INDEX IF NOT EXISTS \"u:pet:rescuer:nick\" ON \"pet\" (\"rescuer\", \"nick\")");
}

static void test_select_list_delete(void **state)
{
    (void)state;
    tally_sql q;
    tally_binds b;
    tally_sql_init(&q);
    tally_binds_init(&b);
    tally_sql_select_by_id(&q, &b, M(shop, "customer"), tally_value_int(42));
    assert_sql(&q, "SELECT \"id\", \"createdAt\", \"updatedAt\", \"name\", \"email\", \"orderCount\" FROM \"customer\" "
                   "WHERE \"id\" = ?1");
    assert_binds(&b, "i:42");
    /* A REF id is bound as the REF: the store resolves it at bind time. */
    tally_sql_init(&q);
    tally_sql_select_by_id(&q, &b, M(shop, "customer"), tally_value_ref(2, TALLY_COL_ID));
    tally_sql_free(&q);
    assert_binds(&b, "r:2.0");

    /* A listing without filter or cursor: no parameter at all; one row more than the page. */
    tally_plan *plan = tally_plan_new(shop);
    tally_step *s = list_step(plan, M(shop, "customer"), NULL);
    tally_sql_init(&q);
    tally_sql_list(&q, &b, s);
    assert_sql(&q, "SELECT \"id\", \"createdAt\", \"updatedAt\", \"name\", \"email\", \"orderCount\" FROM \"customer\" "
                   "WHERE 1 ORDER BY \"id\" ASC LIMIT 51");
    assert_binds(&b, "");
    s->first = 1000;
    tally_sql_init(&q);
    tally_sql_list(&q, &b, s);
    assert_sql(&q, "SELECT \"id\", \"createdAt\", \"updatedAt\", \"name\", \"email\", \"orderCount\" FROM \"customer\" "
                   "WHERE 1 ORDER BY \"id\" ASC LIMIT 1001");
    assert_binds(&b, "");
    /* Sort keys in order, id last; after a cursor row: keyset conditions. */
    s = list_step(plan, M(shop, "customer"), "[{'orderCount': 'descending'}, {'name': 'ascending'}]");
    tally_sql_init(&q);
    tally_sql_list(&q, &b, s);
    assert_sql(&q, "SELECT \"id\", \"createdAt\", \"updatedAt\", \"name\", \"email\", \"orderCount\" FROM \"customer\" "
                   "WHERE 1 ORDER BY \"orderCount\" DESC, \"name\" ASC, \"id\" ASC LIMIT 51");
    assert_binds(&b, "");
    s->after = tally_arena_alloc(&plan->arena, 3 * sizeof *s->after);
    s->after[0] = tally_value_int(7);
    s->after[1] = tally_value_text("Ada", 3);
    s->after[2] = tally_value_int(12);
    tally_sql_init(&q);
    tally_sql_list(&q, &b, s);
    assert_sql(&q, "SELECT \"id\", \"createdAt\", \"updatedAt\", \"name\", \"email\", \"orderCount\" FROM \"customer\" "
                   "WHERE 1 AND (((\"orderCount\" < ?1 OR \"orderCount\" IS NULL)) OR (\"orderCount\" = ?2 AND "
                   "\"name\" > ?3) OR (\"orderCount\" = ?4 AND \"name\" = ?5 AND \"id\" > ?6)) "
                   "ORDER BY \"orderCount\" DESC, \"name\" ASC, \"id\" ASC LIMIT 51");
    assert_binds(&b, "i:7 i:7 t:Ada i:7 t:Ada i:12");
    /* Unset cursor values: NULL sorts first ascending, last descending. */
    s->after[0] = tally_value_null();
    s->after[1] = tally_value_null();
    tally_sql_init(&q);
    tally_sql_list(&q, &b, s);
    assert_sql(&q, "SELECT \"id\", \"createdAt\", \"updatedAt\", \"name\", \"email\", \"orderCount\" FROM \"customer\" "
                   "WHERE 1 AND ((0) OR (\"orderCount\" IS NULL AND \"name\" IS NOT NULL) OR "
                   "(\"orderCount\" IS NULL AND \"name\" IS NULL AND \"id\" > ?1)) "
                   "ORDER BY \"orderCount\" DESC, \"name\" ASC, \"id\" ASC LIMIT 51");
    assert_binds(&b, "i:12");
    tally_plan_free(plan);

    /* hasMany is no column to select. */
    tally_sql_init(&q);
    tally_sql_select_by_id(&q, &b, M(shop, "post"), tally_value_int(1));
    assert_sql(&q, "SELECT \"id\", \"createdAt\", \"updatedAt\", \"title\" FROM \"post\" WHERE \"id\" = ?1");
    assert_binds(&b, "i:1");
    plan = tally_plan_new(shop);
    tally_step *d = tally_plan_add_step(plan, TALLY_OP_DELETE, M(shop, "rateLimit"));
    d->id = tally_value_int(9);
    tally_sql_init(&q);
    tally_sql_delete(&q, &b, d);
    assert_sql(&q, "DELETE FROM \"rateLimit\" WHERE \"id\" = ?1");
    assert_binds(&b, "i:9");
    tally_plan_free(plan);
}

static void test_insert(void **state)
{
    (void)state;
    tally_binds b;
    tally_binds_init(&b);
    tally_plan *plan = decode(shop, "customer", 0, "{'email': 'e', 'name': 'Ada'}");
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_insert(&q, &b, &plan->steps[0], 1000);
    /* Given fields in the body's order, then defaults: ?1 ?2 are the clock. */
    assert_sql(&q, "INSERT INTO \"customer\" (\"createdAt\", \"updatedAt\", \"email\", \"name\", \"orderCount\") "
                   "VALUES (?1, ?2, ?3, ?4, ?5)");
    assert_binds(&b, "i:1000 i:1000 t:e t:Ada i:0");
    tally_plan_free(plan);

    plan = decode(shop, "course", 0, "{}");
    tally_sql_init(&q);
    tally_sql_insert(&q, &b, &plan->steps[0], -5);
    assert_sql(&q, "INSERT INTO \"course\" (\"createdAt\", \"updatedAt\", \"maxStudents\", \"slotsTaken\") "
                   "VALUES (?1, ?2, ?3, ?4)");
    assert_binds(&b, "i:-5 i:-5 i:30 i:0");
    tally_plan_free(plan);

    /* No field at all. */
    plan = tally_plan_new(shop);
    tally_plan_add_step(plan, TALLY_OP_CREATE, M(shop, "post"));
    tally_sql_init(&q);
    tally_sql_insert(&q, &b, &plan->steps[0], 1);
    assert_sql(&q, "INSERT INTO \"post\" (\"createdAt\", \"updatedAt\") VALUES (?1, ?2)");
    assert_binds(&b, "i:1 i:1");
    tally_plan_free(plan);

    /* Nested: the event first, then the ticket with its link (a REF to step 0's id). */
    plan = decode(shop, "ticket", 0, "{'event': {'create': {}}}");
    tally_sql_init(&q);
    tally_sql_insert(&q, &b, &plan->steps[0], 7);
    assert_sql(&q, "INSERT INTO \"event\" (\"createdAt\", \"updatedAt\", \"soldTicketCount\", \"availableTicketCount\") "
                   "VALUES (?1, ?2, ?3, ?4)");
    assert_binds(&b, "i:7 i:7 i:0 i:0");
    tally_sql_init(&q);
    tally_sql_insert(&q, &b, &plan->steps[1], 7);
    assert_sql(&q, "INSERT INTO \"ticket\" (\"createdAt\", \"updatedAt\", \"event\") VALUES (?1, ?2, ?3)");
    assert_binds(&b, "i:7 i:7 r:0.0");
    tally_plan_free(plan);

    /* Every kind of value, bound as stored: floats, NULLs, booleans as 0/1. */
    plan = decode(pets, "pet", 0, "{'rescuer': 3, 'weight': 0.5, 'ratio': null, 'good': false, 'nick': 'Rex'}");
    tally_sql_init(&q);
    tally_sql_insert(&q, &b, &plan->steps[0], 9);
    assert_sql(&q, "INSERT INTO \"pet\" (\"createdAt\", \"updatedAt\", \"rescuer\", \"weight\", \"ratio\", \"good\", "
                   "\"nick\", \"age\") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    assert_binds(&b, "i:9 i:9 i:3 f:0.5 n i:0 t:Rex i:0");
    tally_plan_free(plan);
}

/* A plan from an upsert body ('-quoted). */
static tally_plan *decode_upsert(const tally_schema *s, const char *model, const char *sq)
{
    json_t *body = json_sq(sq, 0);
    tally_plan *plan = tally_plan_new(s);
    tally_error err;
    int rc = tally_decode_upsert(plan, M(s, model), body, &err);
    json_decref(body);
    if (rc < 0)
        fail_msg("upsert refused: %s", err.message);
    return plan;
}

static void test_upsert(void **state)
{
    (void)state;
    tally_binds b;
    tally_binds_init(&b);
    tally_sql q;
    tally_plan *plan = decode_upsert(shop, "rateLimit",
                                     "{'on': ['window', 'userId'], 'create': {'userId': 'u', 'window': 5, 'requests': 1},"
                                     " 'update': {'_atomics': {'requests': {'increment': 1}}}}");
    tally_sql_init(&q);
    tally_sql_insert(&q, &b, &plan->steps[0], 100);
    assert_sql(&q, "INSERT INTO \"rateLimit\" (\"createdAt\", \"updatedAt\", \"userId\", \"window\", \"requests\") "
                   "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (\"window\", \"userId\") DO UPDATE SET \"updatedAt\" = ?6, "
                   "\"requests\" = tally_add(\"requests\", ?7, 5) RETURNING \"id\"");
    assert_binds(&b, "i:100 i:100 t:u i:5 i:1 i:100 i:1");
    tally_plan_free(plan);

    /* Sets in the update part, no atomics. */
    plan = decode_upsert(shop, "customer", "{'on': 'email', 'create': {'name': 'N', 'email': 'e'}, 'update': {'name': 'M'}}");
    tally_sql_init(&q);
    tally_sql_insert(&q, &b, &plan->steps[0], 3);
    assert_sql(&q, "INSERT INTO \"customer\" (\"createdAt\", \"updatedAt\", \"name\", \"email\", \"orderCount\") "
                   "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (\"email\") DO UPDATE SET \"updatedAt\" = ?6, "
                   "\"name\" = ?7 RETURNING \"id\"");
    assert_binds(&b, "i:3 i:3 t:N t:e i:0 i:3 t:M");
    tally_plan_free(plan);
}

static void test_update(void **state)
{
    (void)state;
    tally_sql q;
    tally_binds b;
    tally_binds_init(&b);
    tally_plan *plan = decode(shop, "customer", 7, "{}");
    tally_sql_init(&q);
    tally_sql_update(&q, &b, &plan->steps[0], 1000);
    assert_sql(&q, "UPDATE \"customer\" SET \"updatedAt\" = ?1 WHERE \"id\" = ?2");
    assert_binds(&b, "i:1000 i:7");
    tally_plan_free(plan);

    plan = decode(shop, "customer", 7, "{'name': 'B', 'email': null}");
    tally_sql_init(&q);
    tally_sql_update(&q, &b, &plan->steps[0], 1000);
    assert_sql(&q, "UPDATE \"customer\" SET \"updatedAt\" = ?1, \"name\" = ?2, \"email\" = ?3 WHERE \"id\" = ?4");
    assert_binds(&b, "i:1000 t:B n i:7");
    tally_plan_free(plan);

    plan = decode(shop, "customer", 7, "{'_atomics': {'orderCount': {'increment': 1}}}");
    tally_sql_init(&q);
    tally_sql_update(&q, &b, &plan->steps[0], 1000);
    assert_sql(&q, "UPDATE \"customer\" SET \"updatedAt\" = ?1, \"orderCount\" = tally_add(\"orderCount\", ?2, 5) "
                   "WHERE \"id\" = ?3");
    assert_binds(&b, "i:1000 i:1 i:7");
    tally_plan_free(plan);

    /* A list nests in order (the first operation innermost); sets come before atomics. */
    plan = decode(shop, "product", 7, "{'_atomics': {'stock': [{'increment': 5}, {'decrement': 2}]}, 'sku': 'S'}");
    tally_sql_init(&q);
    tally_sql_update(&q, &b, &plan->steps[0], 1000);
    assert_sql(&q, "UPDATE \"product\" SET \"updatedAt\" = ?1, \"sku\" = ?2, "
                   "\"stock\" = tally_sub(tally_add(\"stock\", ?3, 4), ?4, 4) WHERE \"id\" = ?5");
    assert_binds(&b, "i:1000 t:S i:5 i:2 i:7");
    tally_plan_free(plan);

    plan = decode(shop, "product", 7,
                  "{'_atomics': {'stock': [{'decrement': 1}, {'decrement': 1}, {'increment': 3}, {'decrement': 4}]}}");
    tally_sql_init(&q);
    tally_sql_update(&q, &b, &plan->steps[0], 1000);
    assert_sql(&q, "UPDATE \"product\" SET \"updatedAt\" = ?1, \"stock\" = "
                   "tally_sub(tally_add(tally_sub(tally_sub(\"stock\", ?2, 4), ?3, 4), ?4, 4), ?5, 4) WHERE \"id\" = ?6");
    assert_binds(&b, "i:1000 i:1 i:1 i:3 i:4 i:7");
    tally_plan_free(plan);

    /* Two fields, each with its own column number. */
    plan = decode(shop, "event", 7,
                  "{'_atomics': {'soldTicketCount': {'increment': 1}, 'availableTicketCount': {'decrement': 1}}}");
    tally_sql_init(&q);
    tally_sql_update(&q, &b, &plan->steps[0], 1000);
    assert_sql(&q, "UPDATE \"event\" SET \"updatedAt\" = ?1, \"soldTicketCount\" = tally_add(\"soldTicketCount\", ?2, 3), "
                   "\"availableTicketCount\" = tally_sub(\"availableTicketCount\", ?3, 4) WHERE \"id\" = ?4");
    assert_binds(&b, "i:1000 i:1 i:1 i:7");
    tally_plan_free(plan);

    /* A float field and several sets. */
    plan = decode(pets, "pet", 7,
                  "{'nick': 'n', 'good': false, '_atomics': {'weight': [{'increment': 0.5}], 'age': {'decrement': {}}}}");
    tally_sql_init(&q);
    tally_sql_update(&q, &b, &plan->steps[0], 1000);
    assert_sql(&q, "UPDATE \"pet\" SET \"updatedAt\" = ?1, \"nick\" = ?2, \"good\" = ?3, "
                   "\"weight\" = tally_add(\"weight\", ?4, 6), \"age\" = tally_sub(\"age\", ?5, 8) WHERE \"id\" = ?6");
    assert_binds(&b, "i:1000 t:n i:0 f:0.5 i:1 i:7");
    tally_plan_free(plan);

    /* A guard: the id, then the guard's values. */
    plan = decode(shop, "product", 7,
                  "{'_atomics': {'stock': {'decrement': 2}}, '_where': {'stock': {'greaterThanOrEqual': 2}}}");
    tally_sql_init(&q);
    tally_sql_update(&q, &b, &plan->steps[0], 1000);
    assert_sql(&q, "UPDATE \"product\" SET \"updatedAt\" = ?1, \"stock\" = tally_sub(\"stock\", ?2, 4) "
                   "WHERE \"id\" = ?3 AND (\"stock\" IS NOT NULL AND \"stock\" >= ?4)");
    assert_binds(&b, "i:1000 i:2 i:7 i:2");
    tally_plan_free(plan);
}

/* A plan from an updateMany / deleteMany body ('-quoted). */
static tally_plan *decode_bulk(const tally_schema *s, const char *model, bool update, const char *sq)
{
    json_t *body = json_sq(sq, 0);
    tally_plan *plan = tally_plan_new(s);
    tally_error err;
    int rc = update ? tally_decode_update_many(plan, M(s, model), body, &err)
                    : tally_decode_delete_many(plan, M(s, model), body, &err);
    json_decref(body);
    if (rc < 0)
        fail_msg("bulk call refused: %s", err.message);
    return plan;
}

static void test_bulk(void **state)
{
    (void)state;
    tally_sql q;
    tally_binds b;
    tally_binds_init(&b);
    tally_plan *plan = decode_bulk(shop, "product", true,
                                   "{'filter': {'sku': {'in': ['a', 'b']}}, 'set': {'sku': 'z'},"
                                   " '_atomics': {'stock': [{'decrement': 3}, {'increment': 1}]}}");
    tally_sql_init(&q);
    tally_sql_update(&q, &b, &plan->steps[0], 50);
    assert_sql(&q, "UPDATE \"product\" SET \"updatedAt\" = ?1, \"sku\" = ?2, "
                   "\"stock\" = tally_add(tally_sub(\"stock\", ?3, 4), ?4, 4) "
                   "WHERE (\"sku\" IS NOT NULL AND \"sku\" IN (?5, ?6))");
    assert_binds(&b, "i:50 t:z i:3 i:1 t:a t:b");
    /* The crossing count: the same filter, then each bounded field's new value against its bound. */
    tally_sql_init(&q);
    tally_sql_count_crossing(&q, &b, &plan->steps[0]);
    assert_sql(&q, "SELECT count(*) FROM \"product\" WHERE (\"sku\" IS NOT NULL AND \"sku\" IN (?1, ?2)) AND "
                   "(0 OR tally_add(tally_sub(\"stock\", ?3, 4), ?4, 4) < 0)");
    assert_binds(&b, "t:a t:b i:3 i:1");
    tally_plan_free(plan);

    /* A set value for a bounded field is checked as the value itself; unbounded fields add nothing. */
    plan = decode_bulk(pets, "pet", true, "{'filter': {}, 'set': {'age': 40, 'nick': 'x'}, "
                                          "'_atomics': {'weight': {'increment': 0.25}}}");
    tally_sql_init(&q);
    tally_sql_count_crossing(&q, &b, &plan->steps[0]);
    assert_sql(&q, "SELECT count(*) FROM \"pet\" WHERE 1 AND (0 OR tally_add(\"weight\", ?1, 6) < -1.5 OR "
                   "tally_add(\"weight\", ?2, 6) > 2.25 OR ?3 < -3 OR ?4 > 30)");
    assert_binds(&b, "f:0.25 f:0.25 i:40 i:40");
    tally_plan_free(plan);

    plan = decode_bulk(shop, "customer", false, "{'filter': {'OR': [{'email': {'isSet': false}}, {'name': {'equals': 'x'}}]}}");
    tally_sql_init(&q);
    tally_sql_delete(&q, &b, &plan->steps[0]);
    assert_sql(&q, "DELETE FROM \"customer\" WHERE ((\"email\" IS NULL) OR (\"name\" IS NOT NULL AND \"name\" = ?1))");
    assert_binds(&b, "t:x");
    tally_plan_free(plan);
    plan = decode_bulk(shop, "customer", false, "{'filter': {}}");
    tally_sql_init(&q);
    tally_sql_delete(&q, &b, &plan->steps[0]);
    assert_sql(&q, "DELETE FROM \"customer\" WHERE 1");
    assert_binds(&b, "");
    tally_plan_free(plan);
}

static void test_builders_are_pure(void **state)
{
    (void)state;
    /* Same step shape, same text, whatever the values (the store caches by text). */
    tally_plan *a = decode(shop, "product", 1, "{'sku': 'x', '_atomics': {'stock': [{'increment': 5}, {'decrement': 2}]}}");
    tally_plan *b = decode(shop, "product", 99, "{'sku': 'yyyy', '_atomics': {'stock': [{'increment': {}}, {'decrement': 70}]}}");
    tally_sql qa, qb;
    tally_binds ba, bb;
    tally_sql_init(&qa);
    tally_sql_init(&qb);
    tally_binds_init(&ba);
    tally_binds_init(&bb);
    tally_sql_update(&qa, &ba, &a->steps[0], 1);
    tally_sql_update(&qb, &bb, &b->steps[0], 2);
    assert_string_equal(qa.s, qb.s);
    assert_binds(&ba, "i:1 t:x i:5 i:2 i:1");
    assert_binds(&bb, "i:2 t:yyyy i:1 i:70 i:99");
    tally_sql_free(&qa);
    tally_sql_free(&qb);
    tally_plan_free(a);
    tally_plan_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_quoting),
        cmocka_unit_test(test_create_table_shop),
        cmocka_unit_test(test_create_table_every_option),
        cmocka_unit_test(test_column_def_for_alter),
        cmocka_unit_test(test_unique_index),
        cmocka_unit_test(test_select_list_delete),
        cmocka_unit_test(test_insert),
        cmocka_unit_test(test_upsert),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_bulk),
        cmocka_unit_test(test_builders_are_pure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
