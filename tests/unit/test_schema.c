/* Unit tests for core/schema: the shop schema of README.md, "Schema" (embedded copy
 * checked against examples/shop.json) parses into the storage layout the
 * header fixes (id/createdAt/updatedAt are columns 0/1/2, stored fields
 * follow in declaration order, hasMany has column -1), with options,
 * relations (target, inverse, onDelete) and compound unique keys resolved;
 * every type and option in a good schema; lookups.  Then bad schemas, each
 * refused with BAD_REQUEST and a message naming the model, the field and the
 * problem: not JSON, duplicate keys, no models, unknown type or option, bad
 * or reserved names (digits first, 64 bytes, id/createdAt/updatedAt,
 * transaction, sqlite_x, tally_x), min > max, a default outside min/max or of
 * the wrong type or too long, maxLength/min/onDelete/inverse on the wrong
 * type, relations to missing models, hasMany without a belongsTo back, bad
 * compound unique keys.  Ends with regression tests for bugs fixed since. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/schema.h"
#include "shop_json.h"
#include "test_util.h"

/* Schemas below are written with ' for " (dq) so they stay readable in C. */
static tally_schema *parse_ok(const char *sq)
{
    char *text = dq(sq);
    tally_schema *s = NULL;
    tally_error err;
    tally_error_clear(&err);
    int rc = tally_schema_parse(text, strlen(text), &s, &err);
    if (rc != 0)
        fail_msg("schema refused: %s\n%s", err.message, text);
    free(text);
    assert_non_null(s);
    return s;
}

/* Parses a bad schema (already in real JSON) and checks every needle is in the message. */
static void refused_json(const char *text, const char *const *needles)
{
    tally_schema *s = (tally_schema *)0x1;
    tally_error err;
    tally_error_clear(&err);
    int rc = tally_schema_parse(text, strlen(text), &s, &err);
    if (rc == 0) {
        tally_schema_free(s);
        fail_msg("schema accepted, expected refusal:\n%s", text);
    }
    assert_int_equal(rc, -TALLY_BAD_REQUEST);
    assert_int_equal(err.code, TALLY_BAD_REQUEST);
    assert_null(s);
    for (const char *const *n = needles; *n; n++)
        if (!strstr(err.message, *n))
            fail_msg("message lacks \"%s\":\n  %s\nfor schema:\n  %s", *n, err.message, text);
}

#define REFUSED(sq, ...)                                                                                              \
    do {                                                                                                              \
        const char *const needles_[] = {__VA_ARGS__, NULL};                                                    \
        char *t_ = dq(sq);                                                                                            \
        refused_json(t_, needles_);                                                                                   \
        free(t_);                                                                                                     \
    } while (0)

/* A one-model, one-field schema with the field definition fdef ('-quoted). */
static char *one_field(const char *model, const char *field, const char *fdef)
{
    char *buf = malloc(4096);
    snprintf(buf, 4096, "{'models': {'%s': {'fields': {'%s': %s}}}}", model, field, fdef);
    char *out = dq(buf);
    free(buf);
    return out;
}

#define FIELD_REFUSED(fdef, ...)                                                                                      \
    do {                                                                                                              \
        const char *const needles_[] = {"model 'm'", "field 'f'", __VA_ARGS__, NULL};                          \
        char *t_ = one_field("m", "f", fdef);                                                                         \
        refused_json(t_, needles_);                                                                                   \
        free(t_);                                                                                                     \
    } while (0)

/* ---- the shop schema ----------------------------------------------------- */

static void test_shop_file_matches_copy(void **state)
{
    (void)state;
    /* meson runs the tests from the build directory, one below the source root. */
    FILE *f = fopen("../examples/shop.json", "rb");
    if (!f)
        fail_msg("cannot open ../examples/shop.json from the build directory");
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, SHOP_JSON);

    tally_schema *s = NULL;
    tally_error err;
    assert_int_equal(tally_schema_load("../examples/shop.json", &s, &err), 0);
    assert_int_equal(s->nmodels, 8);
    tally_schema_free(s);
}

static void test_shop_models_and_columns(void **state)
{
    (void)state;
    tally_schema *s = NULL;
    tally_error err;
    assert_int_equal(tally_schema_parse(SHOP_JSON, strlen(SHOP_JSON), &s, &err), 0);
    assert_int_equal(s->nmodels, 8);
    static const char *const names[] = {"customer", "product", "event", "ticket",
                                        "post",     "image",   "course", "rateLimit"};
    for (int i = 0; i < 8; i++) {
        assert_string_equal(s->models[i].name, names[i]);
        assert_int_equal(s->models[i].index, i);
        assert_ptr_equal(M(s, names[i]), &s->models[i]);
        /* The fixed columns of every model. */
        const tally_model *m = &s->models[i];
        assert_string_equal(tally_model_column_name(m, TALLY_COL_ID), "id");
        assert_string_equal(tally_model_column_name(m, TALLY_COL_CREATED_AT), "createdAt");
        assert_string_equal(tally_model_column_name(m, TALLY_COL_UPDATED_AT), "updatedAt");
        assert_int_equal(tally_model_column_type(m, TALLY_COL_ID), TALLY_TYPE_INTEGER);
        assert_int_equal(tally_model_column_type(m, TALLY_COL_CREATED_AT), TALLY_TYPE_DATETIME);
        assert_int_equal(tally_model_column_type(m, TALLY_COL_UPDATED_AT), TALLY_TYPE_DATETIME);
        assert_int_equal(m->column_field[0], -1);
        assert_int_equal(m->column_field[1], -1);
        assert_int_equal(m->column_field[2], -1);
        /* column <-> field agree both ways. */
        for (int fi = 0; fi < m->nfields; fi++) {
            int c = m->fields[fi].column;
            if (c < 0)
                continue;
            assert_int_equal(m->column_field[c], fi);
            assert_string_equal(tally_model_column_name(m, c), m->fields[fi].name);
            assert_int_equal(tally_model_column_type(m, c), m->fields[fi].type);
        }
    }

    const tally_model *c = M(s, "customer");
    assert_int_equal(c->nfields, 3);
    assert_int_equal(c->ncolumns, 6);
    assert_string_equal(c->fields[0].name, "name");
    assert_string_equal(c->fields[1].name, "email");
    assert_string_equal(c->fields[2].name, "orderCount");
    assert_int_equal(F(c, "name")->column, 3);
    assert_int_equal(F(c, "email")->column, 4);
    assert_int_equal(F(c, "orderCount")->column, 5);
    assert_int_equal(F(c, "name")->type, TALLY_TYPE_STRING);
    assert_true(F(c, "name")->required);
    assert_false(F(c, "name")->unique);
    assert_false(F(c, "name")->has_default);
    assert_true(F(c, "email")->unique);
    assert_false(F(c, "email")->required);
    assert_int_equal(F(c, "orderCount")->type, TALLY_TYPE_INTEGER);
    assert_true(F(c, "orderCount")->has_default);
    assert_int_equal(F(c, "orderCount")->default_value.kind, TALLY_VALUE_INT);
    assert_int_equal(F(c, "orderCount")->default_value.u.i, 0);
    assert_false(F(c, "orderCount")->has_min);
    assert_int_equal(c->nuniques, 0);

    const tally_model *p = M(s, "product");
    const tally_field *stock = F(p, "stock");
    assert_true(stock->has_min);
    assert_false(stock->has_max);
    assert_int_equal(stock->min.kind, TALLY_VALUE_INT);
    assert_int_equal(stock->min.u.i, 0);
    assert_true(F(p, "sku")->required && F(p, "sku")->unique);

    const tally_model *e = M(s, "event");
    assert_int_equal(F(e, "soldTicketCount")->column, 3);
    assert_int_equal(F(e, "availableTicketCount")->column, 4);
    assert_true(F(e, "availableTicketCount")->has_min);
    assert_false(F(e, "soldTicketCount")->has_min);

    const tally_model *t = M(s, "ticket");
    const tally_field *tev = F(t, "event");
    assert_int_equal(tev->type, TALLY_TYPE_BELONGS_TO);
    assert_int_equal(tev->column, 3);
    assert_true(tev->required);
    assert_string_equal(tev->target, "event");
    assert_int_equal(tev->target_model, e->index);
    assert_int_equal(tev->on_delete, TALLY_ON_DELETE_RESTRICT); /* the default */
    assert_int_equal(tally_model_column_type(t, 3), TALLY_TYPE_BELONGS_TO);

    /* post.images is virtual: no column, and the columns stay dense. */
    const tally_model *post = M(s, "post");
    const tally_model *img = M(s, "image");
    assert_int_equal(post->nfields, 2);
    assert_int_equal(post->ncolumns, 4);
    const tally_field *images = F(post, "images");
    assert_int_equal(images->type, TALLY_TYPE_HAS_MANY);
    assert_int_equal(images->column, -1);
    assert_string_equal(images->target, "image");
    assert_int_equal(images->target_model, img->index);
    assert_string_equal(images->inverse, "post");
    assert_int_equal(images->inverse_field, tally_model_field(img, "post", 4));
    assert_int_equal(img->fields[images->inverse_field].type, TALLY_TYPE_BELONGS_TO);
    assert_int_equal(img->fields[images->inverse_field].target_model, post->index);
    assert_int_equal(F(post, "title")->column, 3);

    assert_int_equal(F(img, "url")->column, 3);
    assert_true(F(img, "url")->has_max_length);
    assert_int_equal(F(img, "url")->max_length, 2048);
    assert_int_equal(F(img, "post")->column, 4);
    assert_false(F(img, "post")->required);

    const tally_model *course = M(s, "course");
    assert_int_equal(F(course, "maxStudents")->default_value.u.i, 30);
    assert_int_equal(F(course, "slotsTaken")->column, 5);

    const tally_model *rl = M(s, "rateLimit");
    assert_int_equal(rl->nuniques, 1);
    assert_int_equal(rl->uniques[0].nfields, 2);
    assert_int_equal(rl->uniques[0].fields[0], tally_model_field(rl, "userId", 6));
    assert_int_equal(rl->uniques[0].fields[1], tally_model_field(rl, "window", 6));
    assert_false(F(rl, "userId")->unique); /* compound, not per field */

    tally_schema_free(s);
}

static void test_lookups(void **state)
{
    (void)state;
    tally_schema *s = NULL;
    tally_error err;
    assert_int_equal(tally_schema_parse(SHOP_JSON, strlen(SHOP_JSON), &s, &err), 0);
    assert_null(tally_schema_model(s, "nope", 4));
    assert_null(tally_schema_model(s, "Customer", 8)); /* names are case-sensitive */
    assert_null(tally_schema_model(s, "custome", 7));  /* no prefix matches */
    assert_null(tally_schema_model(s, "customers", 9));
    assert_non_null(tally_schema_model(s, "customerXYZ", 8)); /* length, not NUL, ends the name */
    const tally_model *c = M(s, "customer");
    assert_int_equal(tally_model_field(c, "nam", 3), -1);
    assert_int_equal(tally_model_field(c, "id", 2), -1); /* id is a column, not a field */
    assert_int_equal(tally_model_field(c, "emailx", 5), 1);
    assert_string_equal(tally_type_name(TALLY_TYPE_INTEGER), "integer");
    assert_string_equal(tally_type_name(TALLY_TYPE_FLOAT), "float");
    assert_string_equal(tally_type_name(TALLY_TYPE_BOOLEAN), "boolean");
    assert_string_equal(tally_type_name(TALLY_TYPE_STRING), "string");
    assert_string_equal(tally_type_name(TALLY_TYPE_DATETIME), "datetime");
    assert_string_equal(tally_type_name(TALLY_TYPE_JSON), "json");
    assert_string_equal(tally_type_name(TALLY_TYPE_BELONGS_TO), "belongsTo");
    assert_string_equal(tally_type_name(TALLY_TYPE_HAS_MANY), "hasMany");
    tally_schema_free(s);
}

/* ---- good schemas beyond the shop ------------------------------------------ */

static void test_every_type_and_option(void **state)
{
    (void)state;
    tally_schema *s = parse_ok(
        "{'models': {"
        " 'owner': {'fields': {"
        "   'pets': {'type': 'hasMany', 'model': 'pet', 'inverse': 'keeper'},"
        "   'label': {'type': 'string', 'default': 'it\\'s', 'maxLength': 10}}},"
        " 'pet': {'fields': {"
        "   'keeper': {'type': 'belongsTo', 'model': 'owner', 'onDelete': 'cascade'},"
        "   'vet': {'type': 'belongsTo', 'model': 'owner', 'onDelete': 'setNull'},"
        "   'rescuer': {'type': 'belongsTo', 'model': 'owner', 'onDelete': 'restrict', 'required': true},"
        "   'weight': {'type': 'float', 'min': -1.5, 'max': 2, 'default': 1},"
        "   'age': {'type': 'integer', 'min': -3, 'max': 30, 'default': -3},"
        "   'good': {'type': 'boolean', 'default': true},"
        "   'born': {'type': 'datetime', 'default': '2024-01-31T12:00:00Z'},"
        "   'extra': {'type': 'json', 'default': {'a': [1, 2]}},"
        "   'nick': {'type': 'string', 'unique': true, 'required': false}}},"
        " 'empty': {'fields': {}}"
        "}, 'limits': {}}");
    assert_int_equal(s->nmodels, 3);
    const tally_model *owner = M(s, "owner"), *pet = M(s, "pet");
    /* hasMany first: the string after it is still column 3. */
    assert_int_equal(F(owner, "pets")->column, -1);
    assert_int_equal(F(owner, "label")->column, 3);
    assert_int_equal(owner->ncolumns, 4);
    /* Explicit inverse picks one of several belongsTo fields back. */
    assert_int_equal(F(owner, "pets")->inverse_field, tally_model_field(pet, "keeper", 6));
    const tally_field *label = F(owner, "label");
    assert_int_equal(label->default_value.kind, TALLY_VALUE_TEXT);
    assert_int_equal(label->default_value.u.text.len, 4);
    assert_memory_equal(label->default_value.u.text.ptr, "it\"s", 4); /* ' became " above */

    assert_int_equal(F(pet, "keeper")->on_delete, TALLY_ON_DELETE_CASCADE);
    assert_int_equal(F(pet, "vet")->on_delete, TALLY_ON_DELETE_SET_NULL);
    assert_int_equal(F(pet, "rescuer")->on_delete, TALLY_ON_DELETE_RESTRICT);
    const tally_field *w = F(pet, "weight");
    assert_int_equal(w->min.kind, TALLY_VALUE_FLOAT);
    assert_true(w->min.u.f == -1.5);
    assert_int_equal(w->max.kind, TALLY_VALUE_FLOAT); /* an integer bound of a float field is a float */
    assert_true(w->max.u.f == 2.0);
    assert_int_equal(w->default_value.kind, TALLY_VALUE_FLOAT);
    assert_true(w->default_value.u.f == 1.0);
    const tally_field *age = F(pet, "age");
    assert_int_equal(age->min.kind, TALLY_VALUE_INT);
    assert_int_equal(age->min.u.i, -3);
    assert_int_equal(age->max.u.i, 30);
    assert_int_equal(age->default_value.u.i, -3); /* a default on the bound is inside */
    assert_int_equal(F(pet, "good")->default_value.kind, TALLY_VALUE_INT);
    assert_int_equal(F(pet, "good")->default_value.u.i, 1);
    assert_int_equal(F(pet, "born")->default_value.kind, TALLY_VALUE_INT);
    assert_int_equal(F(pet, "born")->default_value.u.i, 1706702400000LL);
    const tally_field *extra = F(pet, "extra");
    assert_int_equal(extra->default_value.kind, TALLY_VALUE_TEXT);
    assert_string_equal(extra->default_value.u.text.ptr, "{\"a\":[1,2]}"); /* compact JSON */
    assert_true(F(pet, "nick")->unique);
    assert_false(F(pet, "nick")->required);
    for (int fi = 0; fi < pet->nfields; fi++)
        assert_int_equal(pet->fields[fi].column, TALLY_COL_FIRST_FIELD + fi);
    assert_int_equal(M(s, "empty")->nfields, 0);
    assert_int_equal(M(s, "empty")->ncolumns, 3);
    tally_schema_free(s);
}

static void test_names_at_the_limit(void **state)
{
    (void)state;
    char name63[64];
    memset(name63, 'a', 63);
    name63[63] = '\0';
    name63[0] = 'Z';
    name63[62] = '_';
    char buf[1024];
    snprintf(buf, sizeof buf, "{'models': {'%s': {'fields': {'%s': {'type': 'integer'}, 'x9_Y': {'type': 'json'}}}}}",
             name63, name63);
    tally_schema *s = parse_ok(buf);
    const tally_model *m = M(s, name63);
    assert_string_equal(m->fields[0].name, name63);
    assert_string_equal(m->fields[1].name, "x9_Y");
    tally_schema_free(s);

    /* Names that merely contain a reserved word are fine. */
    s = parse_ok("{'models': {'transactions': {'fields': {'ids': {'type': 'integer'}, 'idx': {'type': 'integer'}}},"
                 " 'mysqlite_x': {'fields': {'createdAtX': {'type': 'integer'}}}}}");
    tally_schema_free(s);
}

static void test_hasmany_inverse_inferred(void **state)
{
    (void)state;
    /* Without "inverse", the only belongsTo pointing back is found. */
    tally_schema *s = parse_ok("{'models': {'a': {'fields': {'bs': {'type': 'hasMany', 'model': 'b'}}},"
                               " 'b': {'fields': {'x': {'type': 'integer'}, 'owner': {'type': 'belongsTo', 'model': 'a'},"
                               " 'other': {'type': 'belongsTo', 'model': 'c'}}},"
                               " 'c': {'fields': {}}}}");
    const tally_field *bs = F(M(s, "a"), "bs");
    assert_string_equal(bs->inverse, "owner");
    assert_int_equal(bs->inverse_field, 1);
    tally_schema_free(s);

    /* A self-relation. */
    s = parse_ok("{'models': {'node': {'fields': {'parent': {'type': 'belongsTo', 'model': 'node', 'onDelete': 'cascade'},"
                 " 'children': {'type': 'hasMany', 'model': 'node', 'inverse': 'parent'}}}}}");
    const tally_model *n = M(s, "node");
    assert_int_equal(F(n, "parent")->target_model, n->index);
    assert_int_equal(F(n, "children")->inverse_field, 0);
    tally_schema_free(s);
}

static void test_load_missing_file(void **state)
{
    (void)state;
    tally_schema *s = NULL;
    tally_error err;
    assert_int_equal(tally_schema_load("/nonexistent/dir/schema.json", &s, &err), -TALLY_BAD_REQUEST);
    assert_int_equal(err.code, TALLY_BAD_REQUEST);
    assert_null(s);
    assert_non_null(strstr(err.message, "/nonexistent/dir/schema.json"));
}

/* ---- bad schemas ------------------------------------------------------------ */

static void test_not_json(void **state)
{
    (void)state;
    REFUSED("{'models': {", "not valid JSON");
    REFUSED("", "not valid JSON");
    REFUSED("{'models': {'a': {'fields': {}}}} trailing", "not valid JSON");
    REFUSED("{'models': {'a': {'fields': {'x': {'type': 'integer',}}}}}", "not valid JSON");
    REFUSED("[1, 2]", "top level must be an object");
    REFUSED("'models'", "not valid JSON"); /* jansson refuses a bare string without JSON_DECODE_ANY */
    /* A message points at where the text broke. */
    REFUSED("{\n'models': nope}", "not valid JSON", "line 2");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    REFUSED("{'models': {'a': {'fields': {}}, 'a': {'fields': {}}}}", "not valid JSON", "duplicate");
    REFUSED("{'models': {'a': {'fields': {'x': {'type': 'integer'}, 'x': {'type': 'string'}}}}}", "duplicate");
    REFUSED("{'models': {'a': {'fields': {'x': {'type': 'integer', 'type': 'string'}}}}}", "duplicate");
}

static void test_no_models(void **state)
{
    (void)state;
    REFUSED("{}", "\"models\"", "at least one model");
    REFUSED("{'models': {}}", "\"models\"", "at least one model");
    REFUSED("{'models': []}", "\"models\"");
    REFUSED("{'models': null}", "\"models\"");
    REFUSED("{'models': {'a': {'fields': {}}}, 'modles': {}}", "unknown option 'modles'");
    REFUSED("{'models': {'a': 5}}", "model 'a'", "object");
    REFUSED("{'models': {'a': {}}}", "model 'a'", "\"fields\" is required");
    REFUSED("{'models': {'a': {'fields': []}}}", "model 'a'", "\"fields\"");
    REFUSED("{'models': {'a': {'fields': {}, 'indexes': []}}}", "model 'a'", "unknown option 'indexes'");
}

static void test_unknown_type(void **state)
{
    (void)state;
    FIELD_REFUSED("{'type': 'int'}", "unknown type 'int'");
    FIELD_REFUSED("{'type': 'Integer'}", "unknown type 'Integer'");
    FIELD_REFUSED("{'type': 'text'}", "unknown type 'text'");
    FIELD_REFUSED("{'type': ''}", "unknown type ''");
    FIELD_REFUSED("{'required': true}", "\"type\" is required");
    FIELD_REFUSED("{'type': 5}", "\"type\" is required");
    FIELD_REFUSED("'integer'", "a field is an object");
    FIELD_REFUSED("null", "a field is an object");
}

static void test_unknown_option(void **state)
{
    (void)state;
    FIELD_REFUSED("{'type': 'integer', 'mni': 0}", "unknown option 'mni'", "allowed:", "min");
    FIELD_REFUSED("{'type': 'string', 'maxlength': 5}", "unknown option 'maxlength'");
    FIELD_REFUSED("{'type': 'string', 'Required': true}", "unknown option 'Required'");
    FIELD_REFUSED("{'type': 'string', 'index': true}", "unknown option 'index'");
}

static void test_bad_names(void **state)
{
    (void)state;
    /* Field names. */
    REFUSED("{'models': {'m': {'fields': {'1x': {'type': 'integer'}}}}}", "model 'm'", "field '1x'", "[A-Za-z]");
    REFUSED("{'models': {'m': {'fields': {'_x': {'type': 'integer'}}}}}", "model 'm'", "field '_x'", "[A-Za-z]");
    REFUSED("{'models': {'m': {'fields': {'a-b': {'type': 'integer'}}}}}", "model 'm'", "field 'a-b'");
    REFUSED("{'models': {'m': {'fields': {'a b': {'type': 'integer'}}}}}", "model 'm'", "field 'a b'");
    REFUSED("{'models': {'m': {'fields': {'': {'type': 'integer'}}}}}", "model 'm'", "field ''");
    REFUSED("{'models': {'m': {'fields': {'caf\\u00e9': {'type': 'integer'}}}}}", "model 'm'", "[A-Za-z]");
    REFUSED("{'models': {'m': {'fields': {'a\\\"b': {'type': 'integer'}}}}}", "model 'm'", "[A-Za-z]");
    char name64[65];
    memset(name64, 'b', 64);
    name64[64] = '\0';
    char buf[1024];
    snprintf(buf, sizeof buf, "{'models': {'m': {'fields': {'%s': {'type': 'integer'}}}}}", name64);
    REFUSED(buf, "model 'm'", "at most 63 bytes");
    /* Reserved field names: the server gives every record these. */
    REFUSED("{'models': {'m': {'fields': {'id': {'type': 'integer'}}}}}", "model 'm'", "field 'id'",
            "given to every record");
    REFUSED("{'models': {'m': {'fields': {'createdAt': {'type': 'datetime'}}}}}", "model 'm'", "field 'createdAt'",
            "given to every record");
    REFUSED("{'models': {'m': {'fields': {'updatedAt': {'type': 'datetime'}}}}}", "model 'm'", "field 'updatedAt'",
            "given to every record");

    /* Model names. */
    REFUSED("{'models': {'9lives': {'fields': {}}}}", "model '9lives'", "[A-Za-z]");
    REFUSED("{'models': {'a.b': {'fields': {}}}}", "model 'a.b'", "[A-Za-z]");
    REFUSED("{'models': {'a\\\"; DROP TABLE x; --': {'fields': {}}}}", "[A-Za-z]");
    snprintf(buf, sizeof buf, "{'models': {'%s': {'fields': {}}}}", name64);
    REFUSED(buf, "at most 63 bytes");
    static const char *const reserved[] = {"transaction", "locks", "limits", "ws", "metrics", "health",
                                           "sqlite_x",    "SQLITE_master", "sqlite_", "tally_fields", "Tally_x"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        snprintf(buf, sizeof buf, "{'models': {'ok': {'fields': {}}, '%s': {'fields': {}}}}", reserved[i]);
        char quoted[128];
        snprintf(quoted, sizeof quoted, "model '%s'", reserved[i]);
        REFUSED(buf, quoted, "reserved");
    }
}

static void test_min_max(void **state)
{
    (void)state;
    FIELD_REFUSED("{'type': 'integer', 'min': 5, 'max': 4}", "min is greater than max");
    FIELD_REFUSED("{'type': 'float', 'min': 0.5, 'max': 0.25}", "min is greater than max");
    FIELD_REFUSED("{'type': 'integer', 'min': 1.5}", "min must be an integer");
    FIELD_REFUSED("{'type': 'integer', 'max': '10'}", "max must be an integer");
    FIELD_REFUSED("{'type': 'float', 'min': '0'}", "min must be a number");
    FIELD_REFUSED("{'type': 'float', 'max': null}", "max must be a number");
    FIELD_REFUSED("{'type': 'string', 'min': 1}", "min applies to integer and float fields only");
    FIELD_REFUSED("{'type': 'boolean', 'max': 1}", "max applies to integer and float fields only");
    FIELD_REFUSED("{'type': 'datetime', 'min': 0}", "min applies to integer and float fields only");
    /* min == max is a legal (if dull) field. */
    tally_schema *s = parse_ok("{'models': {'m': {'fields': {'f': {'type': 'integer', 'min': 3, 'max': 3}}}}}");
    tally_schema_free(s);
}

static void test_default_outside_min_max(void **state)
{
    (void)state;
    FIELD_REFUSED("{'type': 'integer', 'default': -1, 'min': 0}", "default lies outside min/max");
    FIELD_REFUSED("{'type': 'integer', 'default': 11, 'max': 10}", "default lies outside min/max");
    FIELD_REFUSED("{'type': 'float', 'default': 1.5000001, 'min': -1.5, 'max': 1.5}", "default lies outside min/max");
    FIELD_REFUSED("{'type': 'float', 'default': -2, 'min': -1.5}", "default lies outside min/max");
    /* The order of options in the JSON does not matter. */
    FIELD_REFUSED("{'default': 0, 'type': 'integer', 'max': -1}", "default lies outside min/max");
}

static void test_default_wrong_type(void **state)
{
    (void)state;
    FIELD_REFUSED("{'type': 'integer', 'default': '5'}", "default must be an integer");
    FIELD_REFUSED("{'type': 'integer', 'default': 1.5}", "default must be an integer");
    FIELD_REFUSED("{'type': 'integer', 'default': true}", "default must be an integer");
    FIELD_REFUSED("{'type': 'float', 'default': 'x'}", "default must be a number");
    FIELD_REFUSED("{'type': 'boolean', 'default': 1}", "default must be true or false");
    FIELD_REFUSED("{'type': 'boolean', 'default': 'true'}", "default must be true or false");
    FIELD_REFUSED("{'type': 'string', 'default': 5}", "default must be a string");
    FIELD_REFUSED("{'type': 'string', 'default': ['a']}", "default must be a string");
    FIELD_REFUSED("{'type': 'datetime', 'default': 'yesterday'}", "default must be an RFC 3339");
    FIELD_REFUSED("{'type': 'datetime', 'default': 0}", "default must be an RFC 3339");
    FIELD_REFUSED("{'type': 'datetime', 'default': '2024-02-30T00:00:00Z'}", "default must be an RFC 3339");
    FIELD_REFUSED("{'type': 'integer', 'default': null}", "default must not be null");
    FIELD_REFUSED("{'type': 'json', 'default': null}", "default must not be null");
    /* Relations have no default at all. */
    REFUSED("{'models': {'a': {'fields': {}}, 'm': {'fields': {'f': {'type': 'belongsTo', 'model': 'a', 'default': 1}}}}}",
            "model 'm'", "field 'f'", "cannot have a default");
    REFUSED("{'models': {'m': {'fields': {'f': {'type': 'hasMany', 'model': 'm', 'default': []}}}}}", "model 'm'",
            "field 'f'", "cannot have a default");
}

static void test_max_length(void **state)
{
    (void)state;
    FIELD_REFUSED("{'type': 'integer', 'maxLength': 5}", "maxLength applies to string fields only");
    FIELD_REFUSED("{'type': 'json', 'maxLength': 5}", "maxLength applies to string fields only");
    FIELD_REFUSED("{'type': 'datetime', 'maxLength': 5}", "maxLength applies to string fields only");
    FIELD_REFUSED("{'type': 'string', 'maxLength': 0}", "maxLength must be a positive integer");
    FIELD_REFUSED("{'type': 'string', 'maxLength': -1}", "maxLength must be a positive integer");
    FIELD_REFUSED("{'type': 'string', 'maxLength': 2.5}", "maxLength must be a positive integer");
    FIELD_REFUSED("{'type': 'string', 'maxLength': '5'}", "maxLength must be a positive integer");
    FIELD_REFUSED("{'type': 'string', 'maxLength': 3, 'default': 'abcd'}", "longer than maxLength");
    /* The default is measured in code points: 3 × 'é' (6 bytes) fits maxLength 3. */
    tally_schema *s = parse_ok("{'models': {'m': {'fields': {'f': {'type': 'string', 'maxLength': 3, "
                               "'default': '\\u00e9\\u00e9\\u00e9'}}}}}");
    tally_schema_free(s);
    FIELD_REFUSED("{'type': 'string', 'maxLength': 3, 'default': '\\u00e9\\u00e9\\u00e9\\u00e9'}",
                  "longer than maxLength");
}

static void test_options_on_wrong_types(void **state)
{
    (void)state;
    FIELD_REFUSED("{'type': 'integer', 'required': 'yes'}", "required must be true or false");
    FIELD_REFUSED("{'type': 'integer', 'unique': 1}", "unique must be true or false");
    FIELD_REFUSED("{'type': 'json', 'unique': true}", "a json field cannot be unique");
    FIELD_REFUSED("{'type': 'integer', 'model': 'm'}", "model applies to belongsTo and hasMany fields only");
    FIELD_REFUSED("{'type': 'belongsTo'}", "needs \"model\"");
    FIELD_REFUSED("{'type': 'hasMany'}", "needs \"model\"");
    FIELD_REFUSED("{'type': 'belongsTo', 'model': 5}", "model must be the name of a model");
    FIELD_REFUSED("{'type': 'belongsTo', 'model': 'm', 'inverse': 'f'}", "inverse applies to hasMany fields only");
    FIELD_REFUSED("{'type': 'integer', 'onDelete': 'cascade'}", "onDelete applies to belongsTo fields only");
    FIELD_REFUSED("{'type': 'belongsTo', 'model': 'm', 'onDelete': 'nullify'}", "onDelete must be");
    FIELD_REFUSED("{'type': 'belongsTo', 'model': 'm', 'onDelete': 'setNull', 'required': true}",
                  "setNull cannot apply to a required field");
    FIELD_REFUSED("{'type': 'hasMany', 'model': 'm', 'required': true}", "a hasMany field cannot be required");
    FIELD_REFUSED("{'type': 'hasMany', 'model': 'm', 'unique': true}", "a hasMany field cannot be unique");
    FIELD_REFUSED("{'type': 'hasMany', 'model': 'm', 'inverse': 5}", "inverse must name");
}

static void test_relations(void **state)
{
    (void)state;
    /* belongsTo to a model that does not exist. */
    REFUSED("{'models': {'ticket': {'fields': {'event': {'type': 'belongsTo', 'model': 'evnt'}}},"
            " 'event': {'fields': {}}}}",
            "model 'ticket'", "field 'event'", "model 'evnt' is not declared");
    REFUSED("{'models': {'post': {'fields': {'images': {'type': 'hasMany', 'model': 'picture'}}}}}",
            "model 'post'", "field 'images'", "model 'picture' is not declared");
    /* hasMany without a belongsTo pointing back. */
    REFUSED("{'models': {'post': {'fields': {'images': {'type': 'hasMany', 'model': 'image'}}},"
            " 'image': {'fields': {'url': {'type': 'string'}}}}}",
            "model 'post'", "field 'images'", "model 'image' has no belongsTo field pointing to 'post'");
    /* ... or a belongsTo that points elsewhere. */
    REFUSED("{'models': {'post': {'fields': {'images': {'type': 'hasMany', 'model': 'image'}}},"
            " 'other': {'fields': {}},"
            " 'image': {'fields': {'post': {'type': 'belongsTo', 'model': 'other'}}}}}",
            "model 'post'", "field 'images'", "no belongsTo field pointing to 'post'");
    /* An inverse that is missing, not a belongsTo, or points elsewhere. */
    REFUSED("{'models': {'post': {'fields': {'images': {'type': 'hasMany', 'model': 'image', 'inverse': 'owner'}}},"
            " 'image': {'fields': {'post': {'type': 'belongsTo', 'model': 'post'}}}}}",
            "model 'post'", "field 'images'", "inverse 'owner'");
    REFUSED("{'models': {'post': {'fields': {'images': {'type': 'hasMany', 'model': 'image', 'inverse': 'url'}}},"
            " 'image': {'fields': {'url': {'type': 'string'}, 'post': {'type': 'belongsTo', 'model': 'post'}}}}}",
            "model 'post'", "field 'images'", "inverse 'url' must be a belongsTo field");
    REFUSED("{'models': {'post': {'fields': {'images': {'type': 'hasMany', 'model': 'image', 'inverse': 'other'}}},"
            " 'x': {'fields': {}},"
            " 'image': {'fields': {'other': {'type': 'belongsTo', 'model': 'x'},"
            "   'post': {'type': 'belongsTo', 'model': 'post'}}}}}",
            "model 'post'", "field 'images'", "inverse 'other'");
    /* Several belongsTo back and no inverse to choose. */
    REFUSED("{'models': {'post': {'fields': {'images': {'type': 'hasMany', 'model': 'image'}}},"
            " 'image': {'fields': {'a': {'type': 'belongsTo', 'model': 'post'}, 'b': {'type': 'belongsTo', 'model': 'post'}}}}}",
            "model 'post'", "field 'images'", "several belongsTo fields", "\"inverse\"");
}

/* "changes": false keeps a model out of the feed; "actions" names, params and the shape of steps. */
static void test_changes_and_actions(void **state)
{
    (void)state;
    tally_schema *s = parse_ok("{'models': {'a': {'fields': {}}, 'b': {'changes': false, 'fields': {}}},"
                               " 'actions': {'go': {'params': {'n': {'type': 'integer', 'required': true},"
                               " 'when': {'type': 'datetime'}}, 'steps': [{'get': 'a', 'id': {'$param': 'n'}}]}}}");
    assert_true(s->models[0].changes);
    assert_false(s->models[1].changes);
    assert_int_equal(s->nactions, 1);
    const tally_action *go = tally_schema_action(s, "go", 2);
    assert_non_null(go);
    assert_int_equal(go->nparams, 2);
    assert_true(go->params[0].required);
    assert_int_equal(go->params[1].type, TALLY_TYPE_DATETIME);
    assert_non_null(strstr(go->steps, "$param"));
    assert_null(tally_schema_action(s, "gone", 4));
    tally_schema_free(s);
    REFUSED("{'models': {'a': {'changes': 'no', 'fields': {}}}}", "model 'a'", "\"changes\" is true or false");
    REFUSED("{'models': {'a': {'fields': {}}}, 'actions': {'go': {'steps': []}}}", "action 'go'", "non-empty list");
    REFUSED("{'models': {'a': {'fields': {}}}, 'actions': {'go': {'steps': [1]}}}", "action 'go', step 0");
    REFUSED("{'models': {'a': {'fields': {}}}, 'actions': {'go': {'params': {'p': {'type': 'money'}},"
            " 'steps': [{'get': 'a', 'id': 1}]}}}", "action 'go', param 'p'", "integer, float");
    REFUSED("{'models': {'a': {'fields': {}}}, 'actions': {'go': {'params': {'p': {'type': 'integer', 'x': 1}},"
            " 'steps': [{'get': 'a', 'id': 1}]}}}", "param 'p'", "unknown key 'x'");
    REFUSED("{'models': {'a': {'fields': {}}}, 'actions': {'9go': {'steps': [{'get': 'a', 'id': 1}]}}}",
            "action '9go'", "names must match");
    REFUSED("{'models': {'a': {'fields': {}}}, 'actions': {'go': {'stepz': []}}}", "action 'go'", "unknown key 'stepz'");
}

static void test_unique_keys(void **state)
{
    (void)state;
    REFUSED("{'models': {'rateLimit': {'fields': {'userId': {'type': 'string'}, 'window': {'type': 'integer'}},"
            " 'unique': [['userId', 'windwo']]}}}",
            "model 'rateLimit'", "'windwo'", "not a field of the model");
    REFUSED("{'models': {'m': {'fields': {'a': {'type': 'string'}}, 'unique': [['a'], ['id']]}}}", "model 'm'",
            "unique key 1", "'id'", "not a field");
    REFUSED("{'models': {'m': {'fields': {'a': {'type': 'string'}}, 'unique': ['a']}}}", "model 'm'", "unique key 0",
            "list of 1 to 8");
    REFUSED("{'models': {'m': {'fields': {'a': {'type': 'string'}}, 'unique': [[]]}}}", "model 'm'", "unique key 0");
    REFUSED("{'models': {'m': {'fields': {'a': {'type': 'string'}}, 'unique': 'a'}}}", "model 'm'", "\"unique\" is a list");
    REFUSED("{'models': {'m': {'fields': {'a': {'type': 'string'}}, 'unique': [['a', 'a']]}}}", "model 'm'",
            "names 'a' twice");
    REFUSED("{'models': {'m': {'fields': {'a': {'type': 'string'}}, 'unique': [['a', 5]]}}}", "model 'm'",
            "not a string");
    REFUSED("{'models': {'m': {'fields': {'a': {'type': 'string'}, 'j': {'type': 'json'}}, 'unique': [['a', 'j']]}}}",
            "model 'm'", "a json field cannot be part of a unique key");
    REFUSED("{'models': {'m': {'fields': {'a': {'type': 'string'}, 'ms': {'type': 'hasMany', 'model': 'c'}},"
            " 'unique': [['a', 'ms']]}, 'c': {'fields': {'m': {'type': 'belongsTo', 'model': 'm'}}}}}",
            "model 'm'", "a hasMany field cannot be part of a unique key");
    REFUSED("{'models': {'m': {'fields': {'a': {'type': 'string'}, 'b': {'type': 'string'}, 'c': {'type': 'string'},"
            " 'd': {'type': 'string'}, 'e': {'type': 'string'}, 'f': {'type': 'string'}, 'g': {'type': 'string'},"
            " 'h': {'type': 'string'}, 'i': {'type': 'string'}},"
            " 'unique': [['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']]}}}",
            "model 'm'", "list of 1 to 8");
    /* Eight fields are allowed, and several keys. */
    tally_schema *s = parse_ok("{'models': {'m': {'fields': {'a': {'type': 'string'}, 'b': {'type': 'string'},"
                               " 'c': {'type': 'string'}, 'd': {'type': 'string'}, 'e': {'type': 'string'},"
                               " 'f': {'type': 'string'}, 'g': {'type': 'string'}, 'h': {'type': 'boolean'}},"
                               " 'unique': [['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], ['h', 'a']]}}}");
    tally_schema_free(s);
}

static void test_too_many_fields(void **state)
{
    (void)state;
    size_t cap = 64 * (TALLY_MAX_FIELDS + 2) + 256;
    char *buf = malloc(cap);
    size_t n = (size_t)snprintf(buf, cap, "{\"models\": {\"m\": {\"fields\": {");
    for (int i = 0; i < TALLY_MAX_FIELDS + 1; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s\"f%d\": {\"type\": \"integer\"}", i ? ", " : "", i);
    snprintf(buf + n, cap - n, "}}}}");
    static const char *const needles[] = {"model 'm'", "more than 500 fields", NULL};
    refused_json(buf, needles);

    /* Exactly TALLY_MAX_FIELDS is fine. */
    n = (size_t)snprintf(buf, cap, "{\"models\": {\"m\": {\"fields\": {");
    for (int i = 0; i < TALLY_MAX_FIELDS; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s\"f%d\": {\"type\": \"integer\"}", i ? ", " : "", i);
    snprintf(buf + n, cap - n, "}}}}");
    tally_schema *s = NULL;
    tally_error err;
    assert_int_equal(tally_schema_parse(buf, strlen(buf), &s, &err), 0);
    assert_int_equal(s->models[0].ncolumns, TALLY_MAX_FIELDS + 3);
    assert_int_equal(s->models[0].fields[TALLY_MAX_FIELDS - 1].column, TALLY_MAX_FIELDS + 2);
    tally_schema_free(s);
    free(buf);
}

/* A refused schema frees what it had built: run under ASan, a leak here fails. */
static void test_error_late_frees_everything(void **state)
{
    (void)state;
    REFUSED("{'models': {'a': {'fields': {'s': {'type': 'string', 'default': 'x'}, 'j': {'type': 'json', 'default': {}}}},"
            " 'b': {'fields': {'s': {'type': 'string', 'default': 'abc', 'maxLength': 2}}}}}",
            "model 'b'", "field 's'", "longer than maxLength");
    REFUSED("{'models': {'a': {'fields': {'s': {'type': 'string', 'default': 'x'}}, 'unique': [['s']]},"
            " 'b': {'fields': {'r': {'type': 'belongsTo', 'model': 'zzz'}}}}}",
            "model 'b'", "field 'r'", "'zzz' is not declared");
    tally_schema_free(NULL);
}

/* ---- formerly known bugs ------------------------------------------------------ */

static void test_min_max_compared_exactly(void **state)
{
    (void)state;
    /* Formerly a BUG: schema.c compared min, max and default as doubles, so
     * integer bounds above 2^53 that differ by less than a double's step
     * compared equal and these were accepted (every create relying on the
     * default then failed its CHECK). */
    FIELD_REFUSED("{'type': 'integer', 'min': 9007199254740993, 'max': 9007199254740992}", "min is greater than max");
    FIELD_REFUSED("{'type': 'integer', 'min': 9007199254740993, 'default': 9007199254740992}",
                  "default lies outside min/max");
    FIELD_REFUSED("{'type': 'integer', 'max': 9223372036854775806, 'default': 9223372036854775807}",
                  "default lies outside min/max");
    FIELD_REFUSED("{'type': 'integer', 'min': -9223372036854775807, 'default': -9223372036854775808}",
                  "default lies outside min/max");
    /* The neighbours that do fit are still accepted, exactly at the bounds. */
    tally_schema *s = parse_ok("{'models': {'m': {'fields': {'f': {'type': 'integer', 'min': 9007199254740992,"
                               " 'max': 9007199254740993, 'default': 9007199254740993}}}}}");
    const tally_field *f = &s->models[0].fields[0];
    assert_int_equal(f->min.u.i, 9007199254740992LL);
    assert_int_equal(f->max.u.i, 9007199254740993LL);
    assert_int_equal(f->default_value.u.i, 9007199254740993LL);
    tally_schema_free(s);
    s = parse_ok("{'models': {'m': {'fields': {'f': {'type': 'integer', 'min': -9223372036854775808,"
                 " 'max': 9223372036854775807, 'default': -9223372036854775808}}}}}");
    tally_schema_free(s);
}

static void test_long_relation_names_refused(void **state)
{
    (void)state;
    /* Formerly a BUG: parse_field copied "model" (and "inverse") into a 64-byte
     * buffer with snprintf and never checked the length, so a target name of
     * 64+ bytes was cut to 63 and silently resolved to a model whose name is
     * that prefix. */
    char name63[64], buf[1024];
    memset(name63, 'a', 63);
    name63[63] = '\0';
    snprintf(buf, sizeof buf,
             "{'models': {'%s': {'fields': {}}, 'm': {'fields': {'f': {'type': 'belongsTo', 'model': '%sXYZ'}}}}}",
             name63, name63);
    REFUSED(buf, "model 'm'", "field 'f'", "is not declared", "at most 63 bytes");
    /* 64 bytes exactly: one too many. */
    snprintf(buf, sizeof buf,
             "{'models': {'%s': {'fields': {}}, 'm': {'fields': {'f': {'type': 'belongsTo', 'model': '%sb'}}}}}",
             name63, name63);
    REFUSED(buf, "model 'm'", "field 'f'", "is not declared", "64 bytes");
    /* 63 bytes is a name, and resolves. */
    snprintf(buf, sizeof buf,
             "{'models': {'%s': {'fields': {}}, 'm': {'fields': {'f': {'type': 'belongsTo', 'model': '%s'}}}}}",
             name63, name63);
    tally_schema *s = parse_ok(buf);
    assert_string_equal(s->models[1].fields[0].target, name63);
    assert_int_equal(s->models[1].fields[0].target_model, 0);
    tally_schema_free(s);
    /* The same for a hasMany's inverse. */
    snprintf(buf, sizeof buf,
             "{'models': {'p': {'fields': {'kids': {'type': 'hasMany', 'model': 'k', 'inverse': '%sXYZ'}}},"
             " 'k': {'fields': {'%s': {'type': 'belongsTo', 'model': 'p'}}}}}",
             name63, name63);
    REFUSED(buf, "model 'p'", "field 'kids'", "inverse", "at most 63 bytes");
    snprintf(buf, sizeof buf,
             "{'models': {'p': {'fields': {'kids': {'type': 'hasMany', 'model': 'k', 'inverse': '%s'}}},"
             " 'k': {'fields': {'%s': {'type': 'belongsTo', 'model': 'p'}}}}}",
             name63, name63);
    s = parse_ok(buf);
    assert_string_equal(s->models[0].fields[0].inverse, name63);
    tally_schema_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shop_file_matches_copy),
        cmocka_unit_test(test_shop_models_and_columns),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_every_type_and_option),
        cmocka_unit_test(test_names_at_the_limit),
        cmocka_unit_test(test_hasmany_inverse_inferred),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_no_models),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_unknown_option),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_min_max),
        cmocka_unit_test(test_default_outside_min_max),
        cmocka_unit_test(test_default_wrong_type),
        cmocka_unit_test(test_max_length),
        cmocka_unit_test(test_options_on_wrong_types),
        cmocka_unit_test(test_relations),
        cmocka_unit_test(test_unique_keys),
        cmocka_unit_test(test_changes_and_actions),
        cmocka_unit_test(test_too_many_fields),
        cmocka_unit_test(test_error_late_frees_everything),
        cmocka_unit_test(test_min_max_compared_exactly),
        cmocka_unit_test(test_long_relation_names_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
