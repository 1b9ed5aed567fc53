/* Unit tests for store/migrate over a real SQLite file in a temporary
 * folder, with records written through exec/writer (the harness is
 * writer_util.h): new fields and models added with data kept and defaults
 * filled, a dropped field or model refused (naming model and field) unless
 * allow_destructive, a changed type or changed options always refused,
 * unique added over duplicates refused, a refused migration changing
 * nothing; and regression tests for bugs fixed since. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/schema.h"
#include "exec/writer.h"
#include "store/backend.h"
#include "shop_json.h"
#include "writer_util.h"

/* ---- migrations ---------------------------------------------------------------------------- */

/* The shop with one model's fields replaced ('-quoted fragments). */
static tally_schema *shop_variant(const char *from, const char *to)
{
    char *text = strdup(SHOP_JSON);
    char *q = dq(from);
    char *r = dq(to);
    char *at = strstr(text, q);
    if (!at)
        fail_msg("fragment not in the shop: %s", q);
    size_t cap = strlen(text) + strlen(r) + 1;
    char *out = malloc(cap);
    snprintf(out, cap, "%.*s%s%s", (int)(at - text), text, r, at + strlen(q));
    tally_schema *s = NULL;
    tally_error err;
    if (tally_schema_parse(out, strlen(out), &s, &err))
        fail_msg("variant schema: %s", err.message);
    free(text);
    free(q);
    free(r);
    free(out);
    return s;
}

static int migrate(const tally_schema *s, bool destructive, tally_error *err)
{
    tally_store_options so = {.role = TALLY_STORE_WRITER};
    tally_store *st = NULL;
    if (tally_store_open(g_db, s, &so, &st, err))
        fail_msg("open: %s", err->message);
    int rc = tally_store_migrate(st, destructive ? TALLY_MIGRATE_DESTRUCTIVE : 0, err);
    tally_store_close(st);
    return rc;
}

static void seed(void)
{
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_create(shop, "customer", "{'name': 'Old', 'email': 'old@example.com', 'orderCount': 7}"));
    expect_record(&a, 201);
    answer_free(&a);
    a = run(w, plan_create(shop, "customer", "{'name': 'Old', 'email': 'old2@example.com'}"));
    expect_record(&a, 201);
    answer_free(&a);
    a = run(w, plan_create(shop, "rateLimit", "{'userId': 'u', 'window': 1}"));
    expect_record(&a, 201);
    answer_free(&a);
    tally_writer_stop(w);
    tally_writer_free(w);
}

static void test_migrate_adds_fields_and_models(void **state)
{
    (void)state;
    seed();
    tally_schema *v2 = shop_variant(
        "'orderCount': { 'type': 'integer', 'default': 0 } } },",
        "'orderCount': { 'type': 'integer', 'default': 0 },"
        " 'tier': {'type': 'string', 'default': 'it\\u0027s basic'},"
        " 'visits': {'type': 'integer', 'default': 7, 'min': 0},"
        " 'vip': {'type': 'boolean', 'default': true},"
        " 'score': {'type': 'float', 'default': 0.1},"
        " 'since': {'type': 'datetime', 'default': '2024-01-31T12:00:00Z'},"
        " 'prefs': {'type': 'json', 'default': {'a': 1}},"
        " 'nick': {'type': 'string', 'unique': true},"
        " 'referrer': {'type': 'belongsTo', 'model': 'customer', 'onDelete': 'setNull'} } },"
        " 'note': {'fields': {'text': {'type': 'string'}, 'customer': {'type': 'belongsTo', 'model': 'customer'}}},");
    tally_error err;
    if (migrate(v2, false, &err))
        fail_msg("migrate: %s", err.message);
    /* Idempotent. */
    if (migrate(v2, false, &err))
        fail_msg("second migrate: %s", err.message);

    /* The old rows keep their data and get each new field's default. */
    json_t *c = stored(v2, "customer", 1);
    assert_string_equal(str_of(c, "name"), "Old");
    assert_string_equal(str_of(c, "email"), "old@example.com");
    assert_int_equal(int_of(c, "orderCount"), 7);
    assert_string_equal(str_of(c, "tier"), "it's basic");
    assert_int_equal(int_of(c, "visits"), 7);
    assert_true(json_is_true(json_object_get(c, "vip")));
    assert_true(json_real_value(json_object_get(c, "score")) == 0.1);
    assert_string_equal(str_of(c, "since"), "2024-01-31T12:00:00.000Z");
    assert_int_equal(int_of(json_object_get(c, "prefs"), "a"), 1);
    assert_true(json_is_null(json_object_get(c, "nick")));
    assert_true(json_is_null(json_object_get(c, "referrer")));
    json_decref(c);

    /* The new fields and model work, with their constraints. */
    tally_writer *w = start_writer(v2, 0, 0);
    answer a = run(w, plan_create(v2, "note", "{'text': 'hi', 'customer': {'_link': 1}}"));
    expect_record(&a, 201);
    answer_free(&a);
    a = run(w, plan_update(v2, "customer", 1, "{'nick': 'n', '_atomics': {'visits': {'decrement': 8}}}"));
    expect_error(&a, 422, "INVARIANT", "_atomics.visits", NULL);
    answer_free(&a);
    a = run(w, plan_update(v2, "customer", 1, "{'nick': 'n', 'referrer': {'_link': 2}}"));
    expect_record(&a, 200);
    answer_free(&a);
    a = run(w, plan_update(v2, "customer", 2, "{'nick': 'n'}"));
    expect_error(&a, 409, "UNIQUE_VIOLATION", "nick", NULL);
    answer_free(&a);
    a = run(w, plan_update(v2, "customer", 1, "{'referrer': {'_link': 99}}"));
    expect_error(&a, 422, "VALIDATION", "referrer", NULL);
    answer_free(&a);
    tally_writer_stop(w);
    tally_writer_free(w);
    tally_schema_free(v2);
}

static void test_migrate_dropped_field(void **state)
{
    (void)state;
    seed();
    tally_schema *v3 = shop_variant(",\n      'orderCount': { 'type': 'integer', 'default': 0 }", "");
    assert_int_equal(tally_model_field(tally_schema_model(v3, "customer", 8), "orderCount", 10), -1);
    tally_error err;
    assert_int_equal(migrate(v3, false, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "model 'customer'"));
    assert_non_null(strstr(err.message, "field 'orderCount'"));
    assert_non_null(strstr(err.message, "allow-destructive"));
    /* Refused: nothing changed. */
    if (migrate(shop, false, &err))
        fail_msg("the original schema no longer migrates: %s", err.message);
    assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), 7);

    /* Asked for explicitly: dropped, the rest kept. */
    if (migrate(v3, true, &err))
        fail_msg("destructive migrate: %s", err.message);
    json_t *c = stored(v3, "customer", 1);
    assert_null(json_object_get(c, "orderCount"));
    assert_string_equal(str_of(c, "email"), "old@example.com");
    json_decref(c);
    /* Putting it back is taking the database back to an earlier schema
     * version: asked for explicitly, it adds the field again, its old values
     * gone, its default filled in. */
    assert_int_equal(migrate(shop, false, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "version 1 of the database"));
    if (migrate(shop, true, &err))
        fail_msg("re-adding: %s", err.message);
    assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), 0);
    tally_schema_free(v3);
}

static void test_migrate_drop_unique_field(void **state)
{
    (void)state;
    /* Formerly a BUG: migrate_model ran "DROP INDEX ...; ALTER TABLE ... DROP
     * COLUMN ..." while its SELECT over tally_fields was still stepping, and
     * SQLite refused ("database table is locked").  The field and its index
     * are dropped. */
    seed();
    tally_schema *v3 = shop_variant("'email':      { 'type': 'string', 'unique': true },", "");
    tally_error err;
    assert_int_equal(migrate(v3, false, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "field 'email'"));
    if (migrate(v3, true, &err))
        fail_msg("destructive migrate: %s", err.message);
    json_t *c = stored(v3, "customer", 1);
    assert_null(json_object_get(c, "email"));
    json_decref(c);
    tally_schema_free(v3);
}

static void test_migrate_drop_indexed_and_linked_fields(void **state)
{
    (void)state;
    seed();
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_create(shop, "ticket", "{'event': {'create': {}}}"));
    expect_record(&a, 201);
    answer_free(&a);
    tally_writer_stop(w);
    tally_writer_free(w);
    /* A field of a compound key that left the schema with it: the key's index
     * (left in place when the key went) goes with the field. */
    tally_schema *v = shop_variant(
        "      \"fields\": {\n        \"userId\":   { \"type\": \"string\", \"required\": true },\n"
        "        \"window\":   { \"type\": \"integer\", \"required\": true },\n"
        "        \"requests\": { \"type\": \"integer\", \"default\": 0 } },\n      \"unique\": [[\"userId\", \"window\"]] }",
        "      \"fields\": {\n        \"userId\":   { \"type\": \"string\", \"required\": true },\n"
        "        \"requests\": { \"type\": \"integer\", \"default\": 0 } } }");
    tally_error err;
    assert_int_equal(migrate(v, false, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "field 'window'"));
    if (migrate(v, true, &err))
        fail_msg("destructive migrate: %s", err.message);
    json_t *r = stored(v, "rateLimit", 1);
    assert_string_equal(str_of(r, "userId"), "u");
    assert_null(json_object_get(r, "window"));
    json_decref(r);
    /* A belongsTo field (a column with REFERENCES). */
    tally_schema *v2 = shop_variant("\"ticket\": { \"fields\": { \"event\": { \"type\": \"belongsTo\", \"model\": \"event\", "
                                    "\"required\": true } } },",
                                    "\"ticket\": { \"fields\": { \"note\": { \"type\": \"string\" } } },");
    /* v2, made from the shop, also puts rateLimit.window back: a required
     * field without a default, refused while rateLimit holds a record that
     * would have no value; with the table emptied it is added. */
    assert_int_equal(migrate(v2, true, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "model 'rateLimit', field 'window': a new required field needs a value"));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(g_db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM rateLimit", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    if (migrate(v2, true, &err))
        fail_msg("dropping a belongsTo: %s", err.message);
    r = stored(v2, "ticket", 1);
    assert_null(json_object_get(r, "event"));
    assert_true(json_is_null(json_object_get(r, "note")));
    json_decref(r);
    tally_schema_free(v);
    tally_schema_free(v2);
}

static const char RATE_LIMIT_MODEL[] =
    ",\n    \"rateLimit\": {\n      \"fields\": {\n        \"userId\":   { \"type\": \"string\", \"required\": true },\n"
    "        \"window\":   { \"type\": \"integer\", \"required\": true },\n"
    "        \"requests\": { \"type\": \"integer\", \"default\": 0 } },\n      \"unique\": [[\"userId\", \"window\"]] }";

static void test_migrate_dropped_model(void **state)
{
    (void)state;
    seed();
    tally_schema *v = shop_variant(RATE_LIMIT_MODEL, "");
    assert_null(tally_schema_model(v, "rateLimit", 9));
    tally_error err;
    assert_int_equal(migrate(v, false, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "model 'rateLimit'"));
    assert_non_null(strstr(err.message, "allow-destructive"));
    /* Refused: nothing changed. */
    assert_int_equal(stored_int(shop, "rateLimit", 1, "window"), 1);
    if (migrate(shop, false, &err))
        fail_msg("the original schema no longer migrates: %s", err.message);
    tally_schema_free(v);
}

static void test_migrate_drop_model(void **state)
{
    (void)state;
    /* Formerly a BUG: dropped_models ran DROP TABLE while its SELECT DISTINCT
     * over tally_fields was still stepping, so with allow_destructive every
     * dropped model failed with "database table is locked".  The table is
     * dropped. */
    seed();
    tally_schema *v = shop_variant(RATE_LIMIT_MODEL, "");
    tally_error err;
    if (migrate(v, true, &err))
        fail_msg("destructive migrate: %s", err.message);
    /* Back again (the database taken back to its first schema version): an empty table. */
    if (migrate(shop, true, &err))
        fail_msg("re-adding: %s", err.message);
    assert_int_equal(stored_count(shop, "rateLimit"), 0);
    tally_schema_free(v);
}

static void test_migrate_changed_type(void **state)
{
    (void)state;
    seed();
    tally_schema *v = shop_variant("'orderCount': { 'type': 'integer', 'default': 0 }",
                                   "'orderCount': { 'type': 'float', 'default': 0 }");
    tally_error err;
    assert_int_equal(migrate(v, false, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "model 'customer'"));
    assert_non_null(strstr(err.message, "field 'orderCount'"));
    assert_non_null(strstr(err.message, "integer"));
    assert_non_null(strstr(err.message, "float"));
    /* Never, even when destruction is allowed. */
    assert_int_equal(migrate(v, true, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "field 'orderCount'"));
    assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), 7);
    tally_schema_free(v);
}

static void test_migrate_changed_options(void **state)
{
    (void)state;
    seed();
    static const char *const variants[][2] = {
        {"'stock': { 'type': 'integer', 'default': 0, 'min': 0 }", "'stock': { 'type': 'integer', 'default': 0, 'min': 0, 'max': 99 }"},
        {"'stock': { 'type': 'integer', 'default': 0, 'min': 0 }", "'stock': { 'type': 'integer', 'default': 0 }"},
        {"'name':       { 'type': 'string', 'required': true }", "'name':       { 'type': 'string' }"},
        {"'event': { 'type': 'belongsTo', 'model': 'event', 'required': true }",
         "'event': { 'type': 'belongsTo', 'model': 'event', 'required': true, 'onDelete': 'cascade' }"},
    };
    static const char *const names[] = {"field 'stock'", "field 'stock'", "field 'name'", "field 'event'"};
    for (size_t i = 0; i < 4; i++) {
        tally_schema *v = shop_variant(variants[i][0], variants[i][1]);
        tally_error err;
        assert_int_equal(migrate(v, true, &err), -TALLY_BAD_REQUEST);
        if (!strstr(err.message, names[i]))
            fail_msg("message lacks %s: %s", names[i], err.message);
        tally_schema_free(v);
    }
    /* A changed default is no stored constraint: allowed. */
    tally_schema *v = shop_variant("'orderCount': { 'type': 'integer', 'default': 0 }",
                                   "'orderCount': { 'type': 'integer', 'default': 5 }");
    tally_error err;
    if (migrate(v, false, &err))
        fail_msg("changed default refused: %s", err.message);
    tally_schema_free(v);
}

static void test_migrate_unique(void **state)
{
    (void)state;
    seed(); /* two customers named 'Old' */
    tally_schema *v = shop_variant("'name':       { 'type': 'string', 'required': true }",
                                   "'name':       { 'type': 'string', 'required': true, 'unique': true }");
    tally_error err;
    assert_int_equal(migrate(v, false, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "model 'customer'"));
    assert_non_null(strstr(err.message, "name"));
    assert_non_null(strstr(err.message, "2 stored records share the value 'Old'"));
    assert_null(strstr(err.message, "UNIQUE constraint")); /* SQLite's words stay out */
    assert_int_equal(stored_count(shop, "customer"), 2);

    /* Without duplicates it is added and enforced. */
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_update(shop, "customer", 2, "{'name': 'New'}"));
    expect_record(&a, 200);
    answer_free(&a);
    tally_writer_stop(w);
    tally_writer_free(w);
    if (migrate(v, false, &err))
        fail_msg("unique refused: %s", err.message);
    w = start_writer(v, 0, 0);
    a = run(w, plan_create(v, "customer", "{'name': 'New'}"));
    expect_error(&a, 409, "UNIQUE_VIOLATION", "name", NULL);
    answer_free(&a);
    tally_writer_stop(w);
    tally_writer_free(w);
    tally_schema_free(v);
}

static void test_migrate_drop_unique(void **state)
{
    (void)state;
    /* Formerly a BUG: a field that stops being unique had its index dropped
     * with DROP INDEX while migrate_model's SELECT over tally_fields was still
     * stepping ("database table is locked"), so the migration was refused.
     * The index is dropped and duplicates are allowed from then on. */
    seed();
    tally_schema *v = shop_variant("'email':      { 'type': 'string', 'unique': true }",
                                   "'email':      { 'type': 'string' }");
    tally_error err;
    if (migrate(v, false, &err))
        fail_msg("dropping unique refused: %s", err.message);
    tally_writer *w = start_writer(v, 0, 0);
    answer a = run(w, plan_create(v, "customer", "{'name': 'X', 'email': 'old@example.com'}"));
    expect_record(&a, 201);
    answer_free(&a);
    tally_writer_stop(w);
    tally_writer_free(w);
    tally_schema_free(v);
}

static void test_migrate_unique_message_in_our_words(void **state)
{
    (void)state;
    /* A unique index over duplicates is refused before it is tried, in our
     * words: the model, the field, a value two records share and what to do,
     * not SQLite's "UNIQUE constraint failed" (nor, formerly, a message that
     * was both the output and an argument of one snprintf). */
    seed();
    tally_schema *v = shop_variant("'name':       { 'type': 'string', 'required': true }",
                                   "'name':       { 'type': 'string', 'required': true, 'unique': true }");
    tally_error err;
    assert_int_equal(migrate(v, false, &err), -TALLY_BAD_REQUEST);
    if (!strstr(err.message, "model 'customer': cannot make name unique: 2 stored records share the value 'Old'") ||
        !strstr(err.message, "(record 1 is one;") || !strstr(err.message, "change or delete those records") ||
        strstr(err.message, "UNIQUE constraint"))
        fail_msg("message: %s", err.message);
    tally_schema_free(v);
}

/* The versions recorded in the database, in order, as "1:digest-prefix,2:…". */
static void versions(char *out, size_t cap)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    assert_int_equal(sqlite3_open_v2(g_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT version, substr(digest, 1, 8) FROM tally_schema_versions "
                                            "ORDER BY version", -1, &stmt, NULL), SQLITE_OK);
    size_t n = 0;
    out[0] = 0;
    while (sqlite3_step(stmt) == SQLITE_ROW)
        n += (size_t)snprintf(out + n, cap - n, "%s%lld:%s", n ? "," : "", sqlite3_column_int64(stmt, 0),
                              (const char *)sqlite3_column_text(stmt, 1));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

static void test_migrate_schema_versions(void **state)
{
    (void)state;
    seed(); /* the shop: version 1 */
    char v[256], d1[16], d2[16];
    versions(v, sizeof v);
    assert_int_equal(strlen(v), 10);
    assert_memory_equal(v, "1:", 2);
    snprintf(d1, sizeof d1, "%.8s", shop->digest);
    assert_string_equal(v + 2, d1);

    /* The same schema, spaced and ordered differently, is the same version. */
    tally_schema *same = shop_variant("'orderCount': { 'type': 'integer', 'default': 0 }",
                                      "'orderCount':{'default':0,'type':'integer'}");
    assert_string_equal(same->digest, shop->digest);
    tally_error err;
    if (migrate(same, false, &err))
        fail_msg("same schema: %s", err.message);
    versions(v, sizeof v);
    assert_int_equal(strlen(v), 10);

    /* An additive change is the next version, and the older schema is refused
     * from then on, saying which versions; nothing changes. */
    tally_schema *v2 = shop_variant("'orderCount': { 'type': 'integer', 'default': 0 }",
                                    "'orderCount': { 'type': 'integer', 'default': 0 }, 'tier': {'type': 'string'}");
    if (migrate(v2, false, &err))
        fail_msg("v2: %s", err.message);
    snprintf(d2, sizeof d2, "%.8s", v2->digest);
    char want[64];
    snprintf(want, sizeof want, "1:%s,2:%s", d1, d2);
    versions(v, sizeof v);
    assert_string_equal(v, want);
    assert_int_equal(migrate(shop, false, &err), -TALLY_BAD_REQUEST);
    if (!strstr(err.message, "this schema is version 1 of the database, which was migrated to version 2 at 20") ||
        !strstr(err.message, "newest schema file") || !strstr(err.message, "--allow-destructive"))
        fail_msg("message: %s", err.message);
    versions(v, sizeof v);
    assert_string_equal(v, want);
    /* Limits are part of the schema too: another limit (the shop's login
     * limit at another rate) is another version, though no table changes. */
    tally_schema *v3 = shop_variant("'login': { 'rate': 10, 'periodMs': 60000, 'burst': 5 }",
                                    "'login': { 'rate': 5, 'periodMs': 60000, 'burst': 5 }");
    assert_string_not_equal(v3->digest, shop->digest);

    /* Taken back on purpose: the older schema is the newest version again. */
    if (migrate(shop, true, &err))
        fail_msg("taken back: %s", err.message);
    snprintf(want, sizeof want, "1:%s,2:%s,3:%s", d1, d2, d1);
    versions(v, sizeof v);
    assert_string_equal(v, want);
    if (migrate(shop, false, &err))
        fail_msg("newest again: %s", err.message);
    assert_int_equal(migrate(v2, false, &err), -TALLY_BAD_REQUEST);
    assert_non_null(strstr(err.message, "version 2 of the database, which was migrated to version 3"));
    tally_schema_free(same);
    tally_schema_free(v2);
    tally_schema_free(v3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_migrate_adds_fields_and_models),
        T(test_migrate_dropped_field),
        T(test_migrate_dropped_model),
        T(test_migrate_drop_unique_field),
        T(test_migrate_drop_model),
        T(test_migrate_drop_indexed_and_linked_fields),
        T(test_migrate_changed_type),
        T(test_migrate_changed_options),
        T(test_migrate_unique),
        T(test_migrate_drop_unique),
        T(test_migrate_unique_message_in_our_words),
        T(test_migrate_schema_versions),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
