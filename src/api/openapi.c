/*
 * openapi.c — the OpenAPI 3.1 document of a schema (see openapi.h), built
 * with jansson once at start-up.
 *
 * Component names: a model's schemas are "<model>.<kind>" (customer.record,
 * customer.create, …); the shared ones have no dot (Error, ErrorCode,
 * IntegerCondition, …), so a model's name can never collide with them
 * (model names are identifiers, README "Schema").
 */
#include "api/openapi.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/changes.h"
#include "api/locks.h"
#include "core/json_arena.h"

#ifndef TALLY_VERSION
#define TALLY_VERSION "0.0.0"
#endif

#define LIST_FIRST_MAX 1000
#define SORT_KEYS_MAX 16

/* ---- small builders (each returns a new reference) ------------------------------ */

static json_t *ref(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *ref(const char *fmt, ...)
{
    char name[256], target[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(target, sizeof target, "#/components/schemas/%s", name);
    return json_pack("{s:s}", "$ref", target);
}

static json_t *param_ref(const char *name)
{
    char target[128];
    snprintf(target, sizeof target, "#/components/parameters/%s", name);
    return json_pack("{s:s}", "$ref", target);
}

static json_t *type_only(const char *type) { return json_pack("{s:s}", "type", type); }

/* {"type": "object", "properties": {}, "additionalProperties": false}; properties filled by the caller. */
static json_t *closed_object(void)
{
    return json_pack("{s:s, s:o, s:b}", "type", "object", "properties", json_object(), "additionalProperties", 0);
}

static json_t *props(json_t *object) { return json_object_get(object, "properties"); }

static void require(json_t *object, const char *name)
{
    json_t *req = json_object_get(object, "required");
    if (!req) {
        req = json_array();
        json_object_set_new(object, "required", req);
    }
    json_array_append_new(req, json_string(name));
}

static json_t *array_of(json_t *items) { return json_pack("{s:s, s:o}", "type", "array", "items", items); }

static json_t *any_of2(json_t *a, json_t *b) { return json_pack("{s:[o,o]}", "anyOf", a, b); }

/* The schema that also admits null: ["T", "null"] for a plain type, else anyOf with null. */
static json_t *or_null(json_t *schema)
{
    json_t *type = json_object_get(schema, "type");
    if (json_is_string(type)) {
        json_object_set_new(schema, "type", json_pack("[s,s]", json_string_value(type), "null"));
        return schema;
    }
    if (!json_object_get(schema, "$ref") && !json_object_get(schema, "anyOf"))
        return schema; /* {} (a json field) already admits null */
    return any_of2(schema, type_only("null"));
}

static json_t *id_schema(const char *description)
{
    return json_pack("{s:s, s:s, s:i, s:s}", "type", "integer", "format", "int64", "minimum", 1, "description",
                     description);
}

static bool is_numeric(const tally_field *f) { return f->type == TALLY_TYPE_INTEGER || f->type == TALLY_TYPE_FLOAT; }

/* The JSON value of a field as a record shows it (never null here; see or_null). */
static json_t *field_value(const tally_schema *schema, const tally_field *f)
{
    json_t *s;
    switch (f->type) {
    case TALLY_TYPE_INTEGER:
        s = json_pack("{s:s, s:s}", "type", "integer", "format", "int64");
        if (f->has_min)
            json_object_set_new(s, "minimum", json_integer(f->min.u.i));
        if (f->has_max)
            json_object_set_new(s, "maximum", json_integer(f->max.u.i));
        return s;
    case TALLY_TYPE_FLOAT:
        s = json_pack("{s:s, s:s}", "type", "number", "format", "double");
        if (f->has_min)
            json_object_set_new(s, "minimum", f->min.kind == TALLY_VALUE_INT ? json_integer(f->min.u.i) : json_real(f->min.u.f));
        if (f->has_max)
            json_object_set_new(s, "maximum", f->max.kind == TALLY_VALUE_INT ? json_integer(f->max.u.i) : json_real(f->max.u.f));
        return s;
    case TALLY_TYPE_BOOLEAN: return type_only("boolean");
    case TALLY_TYPE_STRING:
        s = type_only("string");
        if (f->has_max_length)
            json_object_set_new(s, "maxLength", json_integer(f->max_length));
        return s;
    case TALLY_TYPE_DATETIME:
        return json_pack("{s:s, s:s, s:s}", "type", "string", "format", "date-time", "description", "RFC 3339");
    case TALLY_TYPE_JSON: return json_pack("{s:s}", "description", "any JSON value");
    case TALLY_TYPE_BELONGS_TO: {
        char text[160];
        snprintf(text, sizeof text, "the id of the linked %s record", f->target);
        return id_schema(text);
    }
    case TALLY_TYPE_HAS_MANY: break;
    }
    (void)schema;
    return json_object();
}

/* A field's value as a request gives it: null allowed unless the field is required. */
static json_t *field_input(const tally_schema *schema, const tally_field *f)
{
    json_t *v = field_value(schema, f);
    return f->required ? v : or_null(v);
}

/* The schema's default for a create body, for the types whose default is a plain JSON value. */
static void add_default(json_t *s, const tally_field *f)
{
    if (!f->has_default)
        return;
    const tally_value *d = &f->default_value;
    json_t *v = NULL;
    if (f->type == TALLY_TYPE_INTEGER && d->kind == TALLY_VALUE_INT)
        v = json_integer(d->u.i);
    else if (f->type == TALLY_TYPE_FLOAT)
        v = d->kind == TALLY_VALUE_FLOAT ? json_real(d->u.f) : d->kind == TALLY_VALUE_INT ? json_real((double)d->u.i) : NULL;
    else if (f->type == TALLY_TYPE_BOOLEAN && d->kind == TALLY_VALUE_INT)
        v = json_boolean(d->u.i);
    else if (f->type == TALLY_TYPE_STRING && d->kind == TALLY_VALUE_TEXT)
        v = json_stringn(d->u.text.ptr, d->u.text.len);
    if (v)
        json_object_set_new(s, "default", v);
}

/* A belongsTo value in a body: a bare id, {"_link": id}, and (allow_create) {"create": {…}}. */
static json_t *link_input(const tally_field *f, bool allow_create)
{
    char text[200];
    snprintf(text, sizeof text, "the id of a %s record", f->target);
    json_t *link = closed_object();
    json_object_set_new(props(link), "_link", id_schema(text));
    require(link, "_link");
    json_t *any = json_pack("{s:[o,o]}", "anyOf", id_schema(text), link);
    if (allow_create) {
        json_t *create = closed_object();
        json_object_set_new(props(create), "create", ref("%s.create", f->target));
        require(create, "create");
        json_array_append_new(json_object_get(any, "anyOf"), create);
    }
    return f->required ? any : or_null(any);
}

/* ---- filters and sorting ------------------------------------------------------- */

static const char *condition_name(tally_type t)
{
    switch (t) {
    case TALLY_TYPE_INTEGER: return "IntegerCondition";
    case TALLY_TYPE_FLOAT: return "FloatCondition";
    case TALLY_TYPE_BOOLEAN: return "BooleanCondition";
    case TALLY_TYPE_STRING: return "StringCondition";
    case TALLY_TYPE_DATETIME: return "DateTimeCondition";
    case TALLY_TYPE_JSON: return "JsonCondition";
    case TALLY_TYPE_BELONGS_TO: return "LinkCondition";
    case TALLY_TYPE_HAS_MANY: break;
    }
    return NULL;
}

/* {"equals": v, …} for one field type; a value may also be {"field": "other"}. */
static json_t *condition(tally_type t)
{
    json_t *c = closed_object(), *p = props(c);
    if (t == TALLY_TYPE_JSON) {
        json_object_set_new(c, "description", json_string("a json field: only isSet, or equals/notEquals null"));
        json_object_set_new(p, "equals", type_only("null"));
        json_object_set_new(p, "notEquals", type_only("null"));
        json_object_set_new(p, "isSet", type_only("boolean"));
        return c;
    }
    tally_field f = {.type = t == TALLY_TYPE_BELONGS_TO ? TALLY_TYPE_INTEGER : t};
    static const char *const order_ops[] = {"lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual"};
    json_object_set_new(p, "equals", json_pack("{s:[o,o,o]}", "anyOf", field_value(NULL, &f), type_only("null"),
                                               ref("FieldReference")));
    json_object_set_new(p, "notEquals", json_pack("{s:[o,o,o]}", "anyOf", field_value(NULL, &f), type_only("null"),
                                                  ref("FieldReference")));
    for (size_t i = 0; i < sizeof order_ops / sizeof order_ops[0]; i++)
        json_object_set_new(p, order_ops[i], any_of2(field_value(NULL, &f), ref("FieldReference")));
    json_object_set_new(p, "in", array_of(field_value(NULL, &f)));
    json_object_set_new(p, "notIn", array_of(field_value(NULL, &f)));
    json_object_set_new(p, "isSet", type_only("boolean"));
    return c;
}

static json_t *model_filter(const tally_model *m)
{
    json_t *s = closed_object(), *p = props(s);
    char text[200];
    snprintf(text, sizeof text,
             "a filter on %s records: fields with conditions, ANDed; AND, OR and NOT combine (at most 32 levels)", m->name);
    json_object_set_new(s, "description", json_string(text));
    json_object_set_new(p, "AND", array_of(ref("%s.filter", m->name)));
    json_object_set_new(p, "OR", array_of(ref("%s.filter", m->name)));
    json_object_set_new(p, "NOT", ref("%s.filter", m->name));
    for (int c = 0; c < m->ncolumns; c++)
        json_object_set_new(p, tally_model_column_name(m, c), ref("%s", condition_name(tally_model_column_type(m, c))));
    return s;
}

static json_t *model_sort(const tally_model *m)
{
    json_t *key = closed_object(), *p = props(key);
    json_object_set_new(key, "minProperties", json_integer(1));
    json_object_set_new(key, "maxProperties", json_integer(1));
    for (int c = 0; c < m->ncolumns; c++)
        if (tally_model_column_type(m, c) != TALLY_TYPE_JSON)
            json_object_set_new(p, tally_model_column_name(m, c), ref("SortDirection"));
    json_t *list = array_of(json_deep_copy(key));
    json_object_set_new(list, "maxItems", json_integer(SORT_KEYS_MAX));
    return json_pack("{s:s, s:[o,o]}", "description", "one sort key or a list of them; id breaks ties", "anyOf", key,
                     list);
}

/* ---- a model's bodies and answers ------------------------------------------------ */

static json_t *model_record(const tally_schema *schema, const tally_model *m)
{
    json_t *s = closed_object(), *p = props(s);
    char text[200];
    snprintf(text, sizeof text, "a %s record; unset fields are null", m->name);
    json_object_set_new(s, "description", json_string(text));
    json_object_set_new(p, "id", id_schema("the record's id"));
    require(s, "id");
    for (int i = 0; i < m->nfields; i++) {
        const tally_field *f = &m->fields[i];
        if (f->type == TALLY_TYPE_HAS_MANY)
            continue; /* not part of the record */
        json_object_set_new(p, f->name, field_input(schema, f));
        require(s, f->name);
    }
    json_object_set_new(p, "createdAt", json_pack("{s:s, s:s}", "type", "string", "format", "date-time"));
    json_object_set_new(p, "updatedAt", json_pack("{s:s, s:s}", "type", "string", "format", "date-time"));
    require(s, "createdAt");
    require(s, "updatedAt");
    return s;
}

static json_t *model_create(const tally_schema *schema, const tally_model *m);

/* A record created inside a hasMany list: the target's create body without the
 * inverse link, which the server sets to the record being created. */
static json_t *nested_create(const tally_schema *schema, const tally_field *has_many)
{
    const tally_model *target = &schema->models[has_many->target_model];
    json_t *s = model_create(schema, target);
    json_object_del(props(s), has_many->inverse);
    json_t *req = json_object_get(s, "required");
    for (size_t i = json_array_size(req); i-- > 0;)
        if (strcmp(json_string_value(json_array_get(req, i)), has_many->inverse) == 0)
            json_array_remove(req, i);
    if (req && json_array_size(req) == 0)
        json_object_del(s, "required");
    return s;
}

static json_t *model_create(const tally_schema *schema, const tally_model *m)
{
    json_t *s = closed_object(), *p = props(s);
    for (int i = 0; i < m->nfields; i++) {
        const tally_field *f = &m->fields[i];
        json_t *v;
        if (f->type == TALLY_TYPE_HAS_MANY) {
            json_t *create = closed_object(), *link = closed_object();
            json_object_set_new(props(create), "create", nested_create(schema, f));
            require(create, "create");
            json_object_set_new(props(link), "_link", id_schema("the id of an existing record to link"));
            require(link, "_link");
            v = array_of(any_of2(create, link));
        } else if (f->type == TALLY_TYPE_BELONGS_TO) {
            v = link_input(f, true);
        } else {
            v = field_input(schema, f);
            add_default(v, f);
        }
        json_object_set_new(p, f->name, v);
        if (f->required && !f->has_default && f->type != TALLY_TYPE_HAS_MANY)
            require(s, f->name);
    }
    return s;
}

static bool has_numeric(const tally_model *m)
{
    for (int i = 0; i < m->nfields; i++)
        if (is_numeric(&m->fields[i]))
            return true;
    return false;
}

static json_t *model_atomics(const tally_model *m)
{
    json_t *s = closed_object(), *p = props(s);
    json_object_set_new(s, "description",
                        json_string("numeric fields changed inside the database: an operation or a list of them, "
                                    "applied in order; min and max are judged on the value written"));
    for (int i = 0; i < m->nfields; i++) {
        const tally_field *f = &m->fields[i];
        if (!is_numeric(f))
            continue;
        const char *op = f->type == TALLY_TYPE_INTEGER ? "IntegerAtomic" : "FloatAtomic";
        json_object_set_new(p, f->name, any_of2(ref("%s", op), array_of(ref("%s", op))));
    }
    return s;
}

/* Fields to set (all optional), with _atomics and _where as the call takes them. */
static json_t *model_changes(const tally_schema *schema, const tally_model *m, bool atomics, bool where, bool nested)
{
    json_t *s = closed_object(), *p = props(s);
    for (int i = 0; i < m->nfields; i++) {
        const tally_field *f = &m->fields[i];
        if (f->type == TALLY_TYPE_HAS_MANY)
            continue;
        json_object_set_new(p, f->name, f->type == TALLY_TYPE_BELONGS_TO ? link_input(f, nested) : field_input(schema, f));
    }
    if (atomics && has_numeric(m))
        json_object_set_new(p, "_atomics", ref("%s.atomics", m->name));
    if (where)
        json_object_set_new(p, "_where",
                            json_pack("{s:s, s:o}", "description",
                                      "a guard: the change happens only if the row matches (else 409 GUARD_FAILED)",
                                      "allOf", json_pack("[o]", ref("%s.filter", m->name))));
    return s;
}

static json_t *model_list(const tally_model *m)
{
    json_t *s = closed_object(), *p = props(s);
    json_object_set_new(p, "records", array_of(ref("%s.record", m->name)));
    json_object_set_new(p, "next", json_pack("{s:[s,s], s:s}", "type", "string", "null", "description",
                                             "the cursor of the next page (pass it as after), or null"));
    require(s, "records");
    require(s, "next");
    return s;
}

static json_t *model_find(const tally_model *m)
{
    json_t *s = closed_object(), *p = props(s);
    json_object_set_new(p, "filter", ref("%s.filter", m->name));
    json_object_set_new(p, "sort", ref("%s.sort", m->name));
    json_object_set_new(p, "first", json_pack("{s:s, s:i, s:i, s:i}", "type", "integer", "minimum", 1, "maximum",
                                              LIST_FIRST_MAX, "default", 50));
    json_object_set_new(p, "after", json_pack("{s:s, s:s}", "type", "string", "description",
                                              "the next cursor of an earlier page with the same filter and sort"));
    return s;
}

static json_t *model_upsert(const tally_model *m)
{
    json_t *s = closed_object(), *p = props(s);
    json_object_set_new(p, "on", json_pack("{s:s, s:[o,o]}", "description",
                                           "the unique field, or the fields of a compound unique key, to match on",
                                           "anyOf", type_only("string"), array_of(type_only("string"))));
    json_object_set_new(p, "create", ref("%s.create", m->name));
    json_object_set_new(p, "update", ref("%s.upsertUpdate", m->name));
    require(s, "on");
    require(s, "create");
    require(s, "update");
    return s;
}

static json_t *model_update_many(const tally_model *m)
{
    json_t *s = closed_object(), *p = props(s);
    json_object_set_new(p, "filter", ref("%s.filter", m->name));
    json_object_set_new(p, "set", ref("%s.set", m->name));
    if (has_numeric(m))
        json_object_set_new(p, "_atomics", ref("%s.atomics", m->name));
    require(s, "filter");
    return s;
}

static json_t *model_delete_many(const tally_model *m)
{
    json_t *s = closed_object();
    json_object_set_new(props(s), "filter", ref("%s.filter", m->name));
    require(s, "filter");
    return s;
}

static void add_model_schemas(json_t *schemas, const tally_schema *schema, const tally_model *m)
{
    char name[TALLY_NAME_MAX + 32];
#define PUT(kind, value) (snprintf(name, sizeof name, "%s." kind, m->name), json_object_set_new(schemas, name, value))
    PUT("record", model_record(schema, m));
    PUT("create", model_create(schema, m));
    PUT("update", model_changes(schema, m, true, true, true));
    PUT("set", model_changes(schema, m, false, false, false));
    PUT("upsertUpdate", model_changes(schema, m, true, false, false));
    if (has_numeric(m))
        PUT("atomics", model_atomics(m));
    PUT("filter", model_filter(m));
    PUT("sort", model_sort(m));
    PUT("list", model_list(m));
    PUT("find", model_find(m));
    PUT("upsert", model_upsert(m));
    PUT("updateMany", model_update_many(m));
    PUT("deleteMany", model_delete_many(m));
    json_t *upserted = closed_object();
    json_object_set_new(props(upserted), "record", ref("%s.record", m->name));
    json_object_set_new(props(upserted), "created", type_only("boolean"));
    require(upserted, "record");
    require(upserted, "created");
    PUT("upserted", upserted);
#undef PUT
}

/* ---- shared schemas ---------------------------------------------------------------- */

static json_t *error_schema(void)
{
    json_t *e = json_pack("{s:s, s:o}", "type", "object", "properties", json_object()), *p = props(e);
    json_object_set_new(p, "code", ref("ErrorCode"));
    json_object_set_new(p, "message", json_pack("{s:s, s:s}", "type", "string", "description",
                                                "for a person: what is wrong and what to change"));
    json_object_set_new(p, "path", json_pack("{s:s, s:s}", "type", "string", "description",
                                             "the part of the request that is wrong (\"email\", \"_atomics.stock\")"));
    json_object_set_new(p, "step", json_pack("{s:s, s:i, s:s}", "type", "integer", "minimum", 0, "description",
                                             "in a transaction: the 0-based index of the failing step"));
    json_object_set_new(p, "as", json_pack("{s:s, s:s}", "type", "string", "description", "that step's \"as\" name"));
    json_object_set_new(p, "current", json_pack("{s:s, s:s}", "type", "object", "description",
                                                "GUARD_FAILED: the record as it stood"));
    json_object_set_new(p, "expiresAt", json_pack("{s:s, s:s, s:s}", "type", "string", "format", "date-time",
                                                  "description", "LOCKED: when the holder's lease ends"));
    json_object_set_new(p, "rolledBack", json_pack("{s:s, s:s}", "type", "boolean", "description",
                                                   "the transaction was rolled back (run it again)"));
    require(e, "code");
    require(e, "message");
    json_t *s = json_pack("{s:s, s:s, s:{s:o}, s:[s]}", "description",
                          "every error under /api; a refused rate limit also carries its numbers beside it", "type",
                          "object", "properties", "error", e, "required", "error");
    return s;
}

static json_t *error_codes(void)
{
    json_t *codes = json_array();
    for (int c = TALLY_OK + 1; c < TALLY__CODE_COUNT; c++)
        json_array_append_new(codes, json_string(tally_code_name((tally_code)c)));
    return json_pack("{s:s, s:o}", "type", "string", "enum", codes);
}

static json_t *atomic_op(const char *amount_type)
{
    json_t *ops = json_array();
    static const char *const names[] = {"increment", "decrement"};
    for (int i = 0; i < 2; i++) {
        json_t *o = closed_object();
        json_object_set_new(props(o), names[i],
                            json_pack("{s:s, s:[o,o]}", "description", "the amount; {} means 1", "anyOf",
                                      type_only(amount_type),
                                      json_pack("{s:s, s:i}", "type", "object", "maxProperties", 0)));
        require(o, names[i]);
        json_array_append_new(ops, o);
    }
    return json_pack("{s:o}", "oneOf", ops);
}

static json_t *model_names(const tally_schema *schema)
{
    json_t *names = json_array();
    for (int i = 0; i < schema->nmodels; i++)
        json_array_append_new(names, json_string(schema->models[i].name));
    return json_pack("{s:s, s:o}", "type", "string", "enum", names);
}

/* One kind of transaction step: {op: model, …keys}; every step may add as and expect. */
static json_t *step_kind(const char *op, json_t *op_value, const char *const *keys, const char *const *required)
{
    json_t *s = closed_object(), *p = props(s);
    json_object_set_new(p, op, op_value);
    require(s, op);
    for (const char *const *k = keys; *k; k++) {
        json_t *v = strcmp(*k, "id") == 0          ? id_schema("a record id, or {\"$ref\": \"name.field\"}")
                    : strcmp(*k, "first") == 0     ? type_only("integer")
                    : strcmp(*k, "after") == 0     ? type_only("string")
                    : strcmp(*k, "token") == 0     ? type_only("string")
                    : strcmp(*k, "on") == 0        ? json_pack("{s:[o,o]}", "anyOf", type_only("string"), array_of(type_only("string")))
                    : strcmp(*k, "sort") == 0      ? json_pack("{s:[o,o]}", "anyOf", type_only("object"), type_only("array"))
                                                   : type_only("object");
        if (strcmp(*k, "id") == 0)
            v = any_of2(v, ref("StepReference"));
        json_object_set_new(p, *k, v);
    }
    for (const char *const *k = required; *k; k++)
        require(s, *k);
    json_object_set_new(p, "as", json_pack("{s:s, s:s}", "type", "string", "description",
                                           "a name later steps use in {\"$ref\": \"name.field\"}"));
    json_object_set_new(p, "expect", json_pack("{s:s, s:s}", "type", "object", "description",
                                               "a filter on this step's result; when it does not hold, everything is "
                                               "rolled back (409 EXPECTATION_FAILED)"));
    return s;
}

static json_t *transaction_step(const tally_schema *schema)
{
    static const char *const none[] = {NULL};
    static const char *const data[] = {"data", NULL}, *const id[] = {"id", NULL}, *const id_data[] = {"id", "data", NULL};
    static const char *const find[] = {"filter", "sort", "first", "after", NULL};
    static const char *const update[] = {"id", "data", "where", NULL};
    static const char *const upsert[] = {"on", "create", "update", NULL};
    static const char *const update_many[] = {"filter", "set", "_atomics", NULL}, *const filter[] = {"filter", NULL};
    static const char *const token[] = {"token", NULL};
    json_t *kinds = json_array();
    json_array_append_new(kinds, step_kind("create", ref("ModelName"), data, data));
    json_array_append_new(kinds, step_kind("get", ref("ModelName"), id, id));
    json_array_append_new(kinds, step_kind("find", ref("ModelName"), find, none));
    json_array_append_new(kinds, step_kind("update", ref("ModelName"), update, id_data));
    json_array_append_new(kinds, step_kind("delete", ref("ModelName"), id, id));
    json_array_append_new(kinds, step_kind("upsert", ref("ModelName"), upsert, upsert));
    json_array_append_new(kinds, step_kind("updateMany", ref("ModelName"), update_many, filter));
    json_array_append_new(kinds, step_kind("deleteMany", ref("ModelName"), filter, filter));
    json_array_append_new(kinds, step_kind("checkLock", json_pack("{s:s, s:s}", "type", "string", "description",
                                                                  "a lock name; the step fails with 409 LOCK_LOST "
                                                                  "unless token holds it"),
                                           token, token));
    (void)schema;
    return json_pack("{s:s, s:o}", "description",
                     "one step, in the JSON form of the call it stands for (data, set, where and filter as that "
                     "model's create, update and filter bodies); any value may be {\"$ref\": \"name.field\"}",
                     "anyOf", kinds);
}

static void add_shared_schemas(json_t *schemas, const tally_schema *schema)
{
    json_object_set_new(schemas, "Error", error_schema());
    json_object_set_new(schemas, "ErrorCode", error_codes());
    json_object_set_new(schemas, "ModelName", model_names(schema));
    json_object_set_new(schemas, "SortDirection", json_pack("{s:s, s:[s,s]}", "type", "string", "enum", "ascending",
                                                            "descending"));
    json_t *field_ref = closed_object();
    json_object_set_new(field_ref, "description", json_string("compare with another field of the same row"));
    json_object_set_new(props(field_ref), "field", type_only("string"));
    require(field_ref, "field");
    json_object_set_new(schemas, "FieldReference", field_ref);
    json_t *step_ref = closed_object();
    json_object_set_new(step_ref, "description",
                        json_string("in a transaction: a field of an earlier step's result, \"name.field\""));
    json_object_set_new(props(step_ref), "$ref", type_only("string"));
    require(step_ref, "$ref");
    json_object_set_new(schemas, "StepReference", step_ref);
    static const tally_type types[] = {TALLY_TYPE_INTEGER, TALLY_TYPE_FLOAT, TALLY_TYPE_BOOLEAN, TALLY_TYPE_STRING,
                                       TALLY_TYPE_DATETIME, TALLY_TYPE_JSON, TALLY_TYPE_BELONGS_TO};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        json_object_set_new(schemas, condition_name(types[i]), condition(types[i]));
    json_object_set_new(schemas, "IntegerAtomic", atomic_op("integer"));
    json_object_set_new(schemas, "FloatAtomic", atomic_op("number"));
    json_object_set_new(schemas, "Count", json_pack("{s:s, s:{s:{s:s}}, s:[s], s:b}", "type", "object", "properties",
                                                    "count", "type", "integer", "required", "count",
                                                    "additionalProperties", 0));
    json_object_set_new(schemas, "Deleted", json_pack("{s:s, s:{s:o}, s:[s], s:b}", "type", "object", "properties",
                                                      "id", id_schema("the deleted record's id"), "required", "id",
                                                      "additionalProperties", 0));
    json_object_set_new(schemas, "TransactionStep", transaction_step(schema));
    json_t *txn = closed_object();
    json_object_set_new(props(txn), "steps", array_of(ref("TransactionStep")));
    require(txn, "steps");
    json_object_set_new(schemas, "Transaction", txn);
    json_t *results = closed_object();
    json_object_set_new(props(results), "results",
                        json_pack("{s:s, s:s}", "type", "array", "description",
                                  "each step's result, in order, as its call answers it"));
    require(results, "results");
    json_object_set_new(schemas, "TransactionResults", results);
    json_object_set_new(schemas, "LimitAnswer",
                        json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}, s:[s,s,s,s]}", "type", "object",
                                  "properties", "allowed", "type", "boolean", "remaining", "type", "integer",
                                  "retryAfterMs", "type", "integer", "resetAfterMs", "type", "integer", "required",
                                  "allowed", "remaining", "retryAfterMs", "resetAfterMs"));
    json_object_set_new(schemas, "LockGrant",
                        json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s, s:s}}, s:[s,s,s]}", "type", "object",
                                  "properties", "token", "type", "string", "fence", "type", "integer", "expiresAt",
                                  "type", "string", "format", "date-time", "required", "token", "fence", "expiresAt"));
    json_object_set_new(schemas, "LockLease",
                        json_pack("{s:s, s:{s:{s:s}, s:{s:s, s:s}}, s:[s,s]}", "type", "object", "properties",
                                  "fence", "type", "integer", "expiresAt", "type", "string", "format", "date-time",
                                  "required", "fence", "expiresAt"));
    json_object_set_new(schemas, "LockReleased",
                        json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:[s,s]}", "type", "object", "properties",
                                  "released", "type", "boolean", "fence", "type", "integer", "required", "released",
                                  "fence"));
    json_object_set_new(schemas, "LockList",
                        json_pack("{s:s, s:{s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s, s:s}}}}}, s:[s]}", "type",
                                  "object", "properties", "locks", "type", "array", "items", "type", "object",
                                  "properties", "name", "type", "string", "fence", "type", "integer", "expiresAt",
                                  "type", "string", "format", "date-time", "required", "locks"));
    json_object_set_new(schemas, "Scopes", json_pack("{s:s, s:{s:s}, s:s}", "type", "array", "items", "type",
                                                     "string", "description",
                                                     "admin, read, write, read:MODEL, write:MODEL, locks, limits, "
                                                     "metrics, changes, action:NAME"));
    json_object_set_new(schemas, "Key", json_pack("{s:s, s:{s:{s:s}, s:o, s:{s:s, s:s}}}", "type", "object",
                                                  "properties", "name", "type", "string", "scopes", ref("Scopes"),
                                                  "createdAt", "type", "string", "format", "date-time"));
    json_object_set_new(schemas, "Health",
                        json_pack("{s:s, s:{s:{s:s, s:[s,s]}, s:{s:s}, s:{s:s}, s:{s:s, s:s}}, s:[s,s]}", "type",
                                  "object", "properties", "status", "type", "string", "enum", "ok", "unavailable",
                                  "backend", "type", "string", "reason", "type", "string", "synchronousStandbys",
                                  "type", "integer", "description",
                                  "PostgreSQL: standbys that confirm each commit now", "required", "status",
                                  "backend"));
    json_object_set_new(schemas, "WebSocketMessage",
                        json_pack("{s:s, s:s, s:{s:{s:s}, s:{s:s, s:[s,s,s,s,s,s]}, s:{s:s, s:i}, s:o, s:{s:s, s:i},"
                                  " s:{s:s, s:{s:s}}}, s:[s,s]}",
                                  "description", "a message to /api/ws, one JSON text frame (subscribe: the change "
                                  "feed as {\"event\": \"change\", …} messages)", "type", "object",
                                  "properties", "id", "type", "integer", "op", "type", "string", "enum", "begin",
                                  "step", "commit", "rollback", "subscribe", "unsubscribe", "timeoutMs", "type",
                                  "integer", "minimum", 1, "step", ref("TransactionStep"), "after", "type", "integer",
                                  "minimum", 0, "models", "type", "array", "items", "type", "string", "required", "id",
                                  "op"));
}

/* ---- operations ---------------------------------------------------------------------- */

/* The error answers of a call: the codes in lists (each ended by TALLY_OK), one response per status. */
static void add_errors(json_t *responses, const tally_code *const *lists)
{
    bool has[TALLY__CODE_COUNT] = {false};
    for (const tally_code *const *l = lists; *l; l++)
        for (const tally_code *c = *l; *c != TALLY_OK; c++)
            has[*c] = true;
    for (int status = 400; status < 600; status++) {
        char text[1024] = "", key[8];
        size_t used = 0;
        for (int c = TALLY_OK + 1; c < TALLY__CODE_COUNT; c++)
            if (has[c] && tally_code_status((tally_code)c) == status)
                used += (size_t)snprintf(text + used, used < sizeof text ? sizeof text - used : 0, "%s%s: %s",
                                         used ? "; " : "", tally_code_name((tally_code)c), tally_code_text((tally_code)c));
        if (used == 0)
            continue;
        snprintf(key, sizeof key, "%d", status);
        json_t *r = json_pack("{s:s, s:{s:{s:o}}}", "description", text, "content", "application/json", "schema",
                              ref("Error"));
        if (status == 401)
            json_object_set_new(r, "headers", json_pack("{s:{s:s, s:{s:s}}}", "WWW-Authenticate", "description",
                                                        "Bearer", "schema", "type", "string"));
        if (status == 429)
            json_object_set_new(r, "headers", json_pack("{s:{s:s, s:{s:s}}}", "Retry-After", "description",
                                                        "whole seconds to wait", "schema", "type", "integer"));
        json_object_set_new(responses, key, r);
    }
}

#define CODES(...) ((const tally_code[]){__VA_ARGS__, TALLY_OK})
#define ANY_CALL CODES(TALLY_BAD_REQUEST, TALLY_UNAUTHORIZED, TALLY_FORBIDDEN, TALLY_HEADERS_TOO_LARGE, TALLY_INTERNAL, \
                       TALLY_OVERLOADED, TALLY_UNAVAILABLE, TALLY_TIMEOUT)
#define WITH_BODY CODES(TALLY_PAYLOAD_TOO_LARGE)
#define WRITE CODES(TALLY_PAYLOAD_TOO_LARGE, TALLY_IDEMPOTENCY_MISMATCH)
#define VALUES CODES(TALLY_VALIDATION, TALLY_OVERFLOW, TALLY_INVARIANT, TALLY_UNIQUE_VIOLATION)
#define ERRORS(...) ((const tally_code *const[]){__VA_ARGS__, NULL})

static json_t *json_body(json_t *schema, bool required)
{
    return json_pack("{s:b, s:{s:{s:o}}}", "required", required, "content", "application/json", "schema", schema);
}

static json_t *answer(const char *description, json_t *schema)
{
    return json_pack("{s:s, s:{s:{s:o}}}", "description", description, "content", "application/json", "schema",
                     schema);
}

/* A new operation: summary, tag, the scope it needs (NULL: none beyond a valid key) and whether it writes. */
static json_t *operation(const char *id, const char *summary, const char *tag, const char *scope, bool writes)
{
    json_t *op = json_pack("{s:s, s:s, s:[s], s:{}}", "operationId", id, "summary", summary, "tags", tag,
                           "responses");
    if (scope) {
        char text[200];
        snprintf(text, sizeof text, "Needs the scope %s when keys are on.", scope);
        json_object_set_new(op, "description", json_string(text));
        json_object_set_new(op, "x-tally-scope", json_string(scope));
    }
    if (writes)
        json_object_set_new(op, "parameters", json_pack("[o]", param_ref("IdempotencyKey")));
    return op;
}

static json_t *responses(json_t *op) { return json_object_get(op, "responses"); }

static json_t *path_item(json_t *paths, const char *path)
{
    json_t *item = json_object_get(paths, path);
    if (!item) {
        item = json_object();
        json_object_set_new(paths, path, item);
    }
    return item;
}

static void add_model_paths(json_t *paths, const tally_model *m)
{
    char path[TALLY_NAME_MAX + 32], id[TALLY_NAME_MAX + 32], scope_r[TALLY_NAME_MAX + 16], scope_w[TALLY_NAME_MAX + 16];
    char summary[200];
    const char *n = m->name;
    snprintf(scope_r, sizeof scope_r, "read:%s", n);
    snprintf(scope_w, sizeof scope_w, "write:%s", n);
    json_t *op;

    snprintf(path, sizeof path, "/api/%s", n);
    json_t *item = path_item(paths, path);
    snprintf(id, sizeof id, "list_%s", n);
    snprintf(summary, sizeof summary, "List %s records (by id unless sorted), a page at a time", n);
    op = operation(id, summary, n, scope_r, false);
    char fref[TALLY_NAME_MAX + 40], sref[TALLY_NAME_MAX + 40];
    snprintf(fref, sizeof fref, "#/components/schemas/%s.filter", n);
    snprintf(sref, sizeof sref, "#/components/schemas/%s.sort", n);
    json_object_set_new(op, "parameters",
                        json_pack("[{s:s, s:s, s:s, s:{s:{s:{s:s}}}}, {s:s, s:s, s:s, s:{s:{s:{s:s}}}},"
                                  " {s:s, s:s, s:{s:s, s:i, s:i, s:i}}, {s:s, s:s, s:s, s:{s:s}}]",
                                  "name", "filter", "in", "query", "description", "the filter as URL-encoded JSON",
                                  "content", "application/json", "schema", "$ref", fref,
                                  "name", "sort", "in", "query", "description", "the sort as URL-encoded JSON",
                                  "content", "application/json", "schema", "$ref", sref,
                                  "name", "first", "in", "query", "schema", "type", "integer", "minimum", 1,
                                  "maximum", LIST_FIRST_MAX, "default", 50,
                                  "name", "after", "in", "query", "description",
                                  "the next cursor of the previous page", "schema", "type", "string"));
    json_object_set_new(responses(op), "200", answer("a page of records", ref("%s.list", n)));
    add_errors(responses(op), ERRORS(ANY_CALL));
    json_object_set_new(item, "get", op);

    snprintf(id, sizeof id, "create_%s", n);
    snprintf(summary, sizeof summary, "Create a %s record", n);
    op = operation(id, summary, n, scope_w, true);
    json_object_set_new(op, "requestBody", json_body(ref("%s.create", n), true));
    json_object_set_new(responses(op), "201", answer("the record created", ref("%s.record", n)));
    add_errors(responses(op), ERRORS(ANY_CALL, WRITE, VALUES));
    json_object_set_new(item, "post", op);

    snprintf(path, sizeof path, "/api/%s/{id}", n);
    item = path_item(paths, path);
    json_object_set_new(item, "parameters", json_pack("[o]", param_ref("RecordId")));
    snprintf(id, sizeof id, "get_%s", n);
    snprintf(summary, sizeof summary, "Read one %s record", n);
    op = operation(id, summary, n, scope_r, false);
    json_object_set_new(responses(op), "200", answer("the record", ref("%s.record", n)));
    add_errors(responses(op), ERRORS(ANY_CALL, CODES(TALLY_NOT_FOUND)));
    json_object_set_new(item, "get", op);

    snprintf(id, sizeof id, "update_%s", n);
    snprintf(summary, sizeof summary, "Change a %s record: fields to set, _atomics, a _where guard", n);
    op = operation(id, summary, n, scope_w, true);
    json_object_set_new(op, "requestBody", json_body(ref("%s.update", n), true));
    json_object_set_new(responses(op), "200", answer("the record after the change", ref("%s.record", n)));
    add_errors(responses(op), ERRORS(ANY_CALL, WRITE, VALUES, CODES(TALLY_NOT_FOUND, TALLY_GUARD_FAILED)));
    json_object_set_new(item, "patch", op);

    snprintf(id, sizeof id, "delete_%s", n);
    snprintf(summary, sizeof summary, "Delete a %s record", n);
    op = operation(id, summary, n, scope_w, true);
    json_object_set_new(responses(op), "200", answer("the id deleted", ref("Deleted")));
    add_errors(responses(op), ERRORS(ANY_CALL, WRITE, CODES(TALLY_NOT_FOUND, TALLY_CONFLICT)));
    json_object_set_new(item, "delete", op);

    static const struct {
        const char *call, *summary, *answer;
        bool writes;
    } calls[] = {{"find", "List %s records with the filter and sort in a body", "list", false},
                 {"updateMany", "Change every %s record the filter matches, in one statement", "Count", true},
                 {"deleteMany", "Delete every %s record the filter matches ({} for all)", "Count", true},
                 {"upsert", "Create a %s record, or change the one with the same unique key", "upserted", true}};
    for (size_t k = 0; k < sizeof calls / sizeof calls[0]; k++) {
        snprintf(path, sizeof path, "/api/%s/%s", n, calls[k].call);
        snprintf(id, sizeof id, "%s_%s", calls[k].call, n);
        snprintf(summary, sizeof summary, calls[k].summary, n);
        op = operation(id, summary, n, calls[k].writes ? scope_w : scope_r, calls[k].writes);
        json_object_set_new(op, "requestBody", json_body(ref("%s.%s", n, calls[k].call), true));
        json_t *ok = calls[k].answer[0] >= 'a' ? ref("%s.%s", n, calls[k].answer) : ref("%s", calls[k].answer);
        if (strcmp(calls[k].call, "upsert") == 0) {
            json_object_set_new(responses(op), "200", answer("the record changed", json_deep_copy(ok)));
            json_object_set_new(responses(op), "201", answer("the record created", ok));
        } else {
            json_object_set_new(responses(op), "200", answer("the answer", ok));
        }
        if (strcmp(calls[k].call, "find") == 0)
            add_errors(responses(op), ERRORS(ANY_CALL, WITH_BODY));
        else if (strcmp(calls[k].call, "deleteMany") == 0)
            add_errors(responses(op), ERRORS(ANY_CALL, WRITE, CODES(TALLY_CONFLICT)));
        else
            add_errors(responses(op), ERRORS(ANY_CALL, WRITE, VALUES));
        json_object_set_new(path_item(paths, path), "post", op);
    }
}

static json_t *lock_body(const char *const *keys, const char *const *required)
{
    json_t *s = closed_object(), *p = props(s);
    for (const char *const *k = keys; *k; k++) {
        json_t *v = strcmp(*k, "token") == 0 ? type_only("string")
                    : strcmp(*k, "ttlMs") == 0
                        ? json_pack("{s:s, s:i, s:i, s:s}", "type", "integer", "minimum", 1, "maximum",
                                    TALLY_LOCK_TTL_MAX, "description", "how long the lease lasts")
                        : json_pack("{s:s, s:i, s:i, s:s}", "type", "integer", "minimum", 0, "maximum",
                                    TALLY_LOCK_WAIT_MAX, "description", "how long to wait for the lock");
        json_object_set_new(p, *k, v);
    }
    for (const char *const *k = required; *k; k++)
        require(s, *k);
    return s;
}

static void add_primitive_paths(json_t *paths, const tally_schema *schema)
{
    json_t *op;
    op = operation("transaction", "Apply a list of steps, all or nothing", "transactions", NULL, true);
    json_object_set_new(op, "description",
                        json_string("Needs the scopes of all its steps when keys are on, checked before any runs."));
    json_object_set_new(op, "requestBody", json_body(ref("Transaction"), true));
    json_object_set_new(responses(op), "200", answer("every step's result", ref("TransactionResults")));
    add_errors(responses(op), ERRORS(ANY_CALL, WRITE, VALUES,
                                     CODES(TALLY_NOT_FOUND, TALLY_GUARD_FAILED, TALLY_CONFLICT, TALLY_EXPECTATION_FAILED,
                                           TALLY_LOCK_LOST)));
    json_object_set_new(path_item(paths, "/api/transaction"), "post", op);

    static const char *const acquire[] = {"ttlMs", "waitMs", NULL}, *const acquire_req[] = {"ttlMs", NULL};
    static const char *const renew[] = {"token", "ttlMs", NULL}, *const token[] = {"token", NULL};
    static const struct {
        const char *op, *summary, *answer;
        const char *const *keys, *const *required;
        tally_code conflict;
    } lock_ops[] = {{"acquire", "Take a lock with a lease, waiting up to waitMs", "LockGrant", acquire, acquire_req,
                     TALLY_LOCKED},
                    {"renew", "Extend the lease of a lock this token holds", "LockLease", renew, renew, TALLY_LOCK_LOST},
                    {"release", "Release a lock this token holds", "LockReleased", token, token, TALLY_LOCK_LOST}};
    for (size_t k = 0; k < sizeof lock_ops / sizeof lock_ops[0]; k++) {
        char path[64], id[32];
        snprintf(path, sizeof path, "/api/locks/{name}/%s", lock_ops[k].op);
        snprintf(id, sizeof id, "lock_%s", lock_ops[k].op);
        op = operation(id, lock_ops[k].summary, "locks", "locks", true);
        json_object_set_new(op, "requestBody", json_body(lock_body(lock_ops[k].keys, lock_ops[k].required), true));
        json_object_set_new(responses(op), "200", answer("the lease", ref("%s", lock_ops[k].answer)));
        add_errors(responses(op), ERRORS(ANY_CALL, WRITE, CODES(lock_ops[k].conflict)));
        json_t *item = path_item(paths, path);
        json_object_set_new(item, "parameters", json_pack("[o]", param_ref("LockName")));
        json_object_set_new(item, "post", op);
    }
    op = operation("lock_list", "The locks held now (never their tokens)", "locks", "locks", false);
    json_object_set_new(responses(op), "200", answer("the holders", ref("LockList")));
    add_errors(responses(op), ERRORS(ANY_CALL));
    json_object_set_new(path_item(paths, "/api/locks"), "get", op);

    for (int i = 0; i < schema->nlimits; i++) {
        const tally_limit *l = &schema->limits[i];
        char path[TALLY_NAME_MAX + 32], id[TALLY_NAME_MAX + 16], summary[256];
        snprintf(path, sizeof path, "/api/limits/%s/{key}", l->name);
        snprintf(id, sizeof id, "limit_%s", l->name);
        snprintf(summary, sizeof summary, "Rate limit %s: %lld per %lld ms on average, %lld at once (GCRA)", l->name,
                 (long long)l->rate, (long long)l->period_ms, (long long)l->burst);
        op = operation(id, summary, "limits", "limits", true);
        json_t *body = closed_object();
        json_object_set_new(props(body), "cost", json_pack("{s:s, s:i, s:I, s:i}", "type", "integer", "minimum", 1,
                                                            "maximum", (json_int_t)l->burst, "default", 1));
        json_object_set_new(op, "requestBody", json_body(body, false));
        json_object_set_new(op, "x-tally-limit", json_pack("{s:I, s:I, s:I}", "rate", (json_int_t)l->rate, "periodMs",
                                                           (json_int_t)l->period_ms, "burst", (json_int_t)l->burst));
        json_object_set_new(responses(op), "200", answer("allowed", ref("LimitAnswer")));
        add_errors(responses(op), ERRORS(ANY_CALL, WRITE, CODES(TALLY_RATE_LIMITED)));
        json_t *item = path_item(paths, path);
        json_object_set_new(item, "parameters", json_pack("[o]", param_ref("LimitKey")));
        json_object_set_new(item, "post", op);
    }

    op = operation("keys_list", "List API keys (never their tokens)", "keys", "admin", false);
    json_object_set_new(responses(op), "200",
                        answer("the keys", json_pack("{s:s, s:{s:o}, s:[s]}", "type", "object", "properties", "keys",
                                                     array_of(ref("Key")), "required", "keys")));
    add_errors(responses(op), ERRORS(ANY_CALL));
    json_object_set_new(path_item(paths, "/api/keys"), "get", op);
    op = operation("keys_create", "Create an API key; the answer shows its token, once", "keys", "admin", false);
    json_object_set_new(op, "requestBody",
                        json_body(json_pack("{s:s, s:{s:{s:s}, s:o}, s:[s,s], s:b}", "type", "object", "properties",
                                            "name", "type", "string", "scopes", ref("Scopes"), "required", "name",
                                            "scopes", "additionalProperties", 0),
                                  true));
    json_object_set_new(responses(op), "201",
                        answer("the key and its token",
                               json_pack("{s:s, s:{s:{s:s}, s:o, s:{s:s}}, s:[s,s,s]}", "type", "object",
                                         "properties", "name", "type", "string", "scopes", ref("Scopes"), "token",
                                         "type", "string", "required", "name", "scopes", "token")));
    add_errors(responses(op), ERRORS(ANY_CALL, WITH_BODY, CODES(TALLY_CONFLICT)));
    json_object_set_new(path_item(paths, "/api/keys"), "post", op);
    op = operation("keys_revoke", "Revoke an API key", "keys", "admin", false);
    json_object_set_new(op, "parameters", json_pack("[{s:s, s:s, s:b, s:{s:s}}]", "name", "name", "in", "path",
                                                    "required", 1, "schema", "type", "string"));
    json_object_set_new(responses(op), "200",
                        answer("revoked", json_pack("{s:s, s:{s:{s:s}, s:{s:s}}}", "type", "object", "properties",
                                                    "name", "type", "string", "revoked", "type", "boolean")));
    add_errors(responses(op), ERRORS(ANY_CALL, CODES(TALLY_NOT_FOUND)));
    json_object_set_new(path_item(paths, "/api/keys/{name}"), "delete", op);

    op = operation("websocket", "Interactive transactions over WebSocket (begin, step, commit, rollback)", "transactions",
                   NULL, false);
    json_object_set_new(op, "description",
                        json_string("An upgrade to WebSocket version 13. Then one JSON text message each way per "
                                    "call (WebSocketMessage; each answer echoes its id: {\"id\", \"ok\", \"result\"} "
                                    "or {\"id\", \"ok\": false, \"rolledBack\"?, \"error\"}). A begin beyond "
                                    "--max-txns-per-key is TOO_MANY_TRANSACTIONS; begin needs a read or write scope. A browser may pass the token as "
                                    "access_token in the query."));
    json_object_set_new(op, "parameters",
                        json_pack("[{s:s, s:s, s:b, s:{s:s, s:[s]}}, {s:s, s:s, s:b, s:{s:s, s:[s]}},"
                                  " {s:s, s:s, s:b, s:{s:s}}, {s:s, s:s, s:b, s:{s:s}}]",
                                  "name", "Upgrade", "in", "header", "required", 1, "schema", "type", "string", "enum",
                                  "websocket", "name", "Sec-WebSocket-Version", "in", "header", "required", 1,
                                  "schema", "type", "string", "enum", "13", "name", "Sec-WebSocket-Key", "in",
                                  "header", "required", 1, "schema", "type", "string", "name", "access_token", "in",
                                  "query", "required", 0, "schema", "type", "string"));
    json_object_set_new(responses(op), "101", json_pack("{s:s}", "description", "Switching Protocols: a WebSocket"));
    add_errors(responses(op), ERRORS(CODES(TALLY_BAD_REQUEST, TALLY_UNAUTHORIZED, TALLY_FORBIDDEN,
                                           TALLY_UPGRADE_REQUIRED, TALLY_HEADERS_TOO_LARGE, TALLY_OVERLOADED)));
    json_object_set_new(path_item(paths, "/api/ws"), "get", op);

    op = operation("openapi", "This document", "operations", NULL, false);
    json_object_set_new(op, "description", json_string("Needs any valid key when keys are on (no scope)."));
    json_object_set_new(responses(op), "200", answer("the OpenAPI 3.1 document", type_only("object")));
    add_errors(responses(op), ERRORS(CODES(TALLY_UNAUTHORIZED, TALLY_FORBIDDEN, TALLY_HEADERS_TOO_LARGE)));
    json_object_set_new(path_item(paths, "/api/openapi.json"), "get", op);

    op = operation("health", "Whether the server serves and its database answers", "operations", NULL, false);
    json_object_set_new(op, "security", json_array());
    json_object_set_new(responses(op), "200", answer("serving", ref("Health")));
    json_object_set_new(responses(op), "503", answer("the database cannot be reached (writes answer 503 too)",
                                                     ref("Health")));
    json_object_set_new(path_item(paths, "/health"), "get", op);

    op = operation("metrics", "Prometheus metrics: writes, batches, fsyncs, queue depth", "operations", "metrics",
                   false);
    json_object_set_new(responses(op), "200",
                        json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", "Prometheus text format", "content",
                                  "text/plain", "schema", "type", "string"));
    add_errors(responses(op), ERRORS(CODES(TALLY_UNAUTHORIZED, TALLY_FORBIDDEN)));
    json_object_set_new(path_item(paths, "/metrics"), "get", op);
}

static json_t *param_schema(tally_type t)
{
    switch (t) {
    case TALLY_TYPE_INTEGER: return json_pack("{s:s, s:s}", "type", "integer", "format", "int64");
    case TALLY_TYPE_FLOAT: return type_only("number");
    case TALLY_TYPE_BOOLEAN: return type_only("boolean");
    case TALLY_TYPE_STRING: return type_only("string");
    case TALLY_TYPE_DATETIME: return json_pack("{s:s, s:s}", "type", "string", "format", "date-time");
    default: return json_object(); /* any JSON value */
    }
}

/* The change feed (GET /api/changes: a page, a long poll, or server-sent events) and each named action. */
static void add_feed_and_action_paths(json_t *paths, const tally_schema *schema)
{
    json_t *op = operation("changes", "The change feed: committed changes after a seq, in order", "changes", "changes",
                           false);
    json_object_set_new(op, "description",
                        json_string("Needs the scope changes, or read:MODEL of every model asked for with models. "
                                    "With Accept: text/event-stream the answer is a stream of server-sent events "
                                    "(event change, id the seq; Last-Event-ID resumes and wins over after; an error "
                                    "event, then the end, for a cursor past retention). after omitted: from now on; "
                                    "after=0: from the oldest change kept."));
    json_object_set_new(op, "parameters",
                        json_pack("[{s:s, s:s, s:{s:s, s:i}}, {s:s, s:s, s:s, s:{s:s}}, {s:s, s:s, s:{s:s, s:i, s:i, "
                                  "s:i}}, {s:s, s:s, s:{s:s, s:i, s:i}}, {s:s, s:s, s:{s:s}}]",
                                  "name", "after", "in", "query", "schema", "type", "integer", "minimum", 0,
                                  "name", "models", "in", "query", "description", "comma-separated model names",
                                  "schema", "type", "string",
                                  "name", "first", "in", "query", "schema", "type", "integer", "minimum", 1,
                                  "maximum", TALLY_CHANGES_FIRST_MAX, "default", TALLY_CHANGES_FIRST_DEFAULT,
                                  "name", "waitMs", "in", "query", "schema", "type", "integer", "minimum", 0,
                                  "maximum", TALLY_CHANGES_WAIT_MAX,
                                  "name", "Last-Event-ID", "in", "header", "schema", "type", "string"));
    json_t *change = json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, s:[s,s,s]}, s:{s:[s,s]}, s:{s:s, s:s}},"
                               " s:[s,s,s,s,s,s]}",
                               "type", "object", "properties", "seq", "type", "integer", "model", "type", "string",
                               "id", "type", "integer", "op", "type", "string", "enum", "create", "update", "delete",
                               "record", "type", "object", "null", "at", "type", "string", "format", "date-time",
                               "required", "seq", "model", "id", "op", "record", "at");
    json_object_set_new(responses(op), "200",
                        json_pack("{s:s, s:{s:{s:{s:s, s:{s:o, s:{s:s}}, s:[s,s]}}, s:{s:{s:s}}}}", "description",
                                  "a page of changes and the cursor to ask after next", "content", "application/json",
                                  "schema", "type", "object", "properties", "changes", array_of(change), "next", "type",
                                  "integer", "required", "changes", "next", "text/event-stream", "schema", "type",
                                  "string"));
    add_errors(responses(op), ERRORS(ANY_CALL, CODES(TALLY_VALIDATION, TALLY_GONE)));
    json_object_set_new(path_item(paths, "/api/changes"), "get", op);

    for (int i = 0; i < schema->nactions; i++) {
        const tally_action *a = &schema->actions[i];
        char path[TALLY_NAME_MAX + 16], id[TALLY_NAME_MAX + 16], scope[TALLY_NAME_MAX + 16], summary[128];
        snprintf(path, sizeof path, "/api/actions/%s", a->name);
        snprintf(id, sizeof id, "action_%s", a->name);
        snprintf(scope, sizeof scope, "action:%s", a->name);
        snprintf(summary, sizeof summary, "Run the action %s: its steps as one transaction", a->name);
        op = operation(id, summary, "actions", scope, true);
        json_t *body = closed_object(), *required = json_array();
        for (int k = 0; k < a->nparams; k++) {
            json_object_set_new(props(body), a->params[k].name, param_schema(a->params[k].type));
            if (a->params[k].required)
                json_array_append_new(required, json_string(a->params[k].name));
        }
        if (json_array_size(required))
            json_object_set_new(body, "required", required);
        else
            json_decref(required);
        json_t *steps = json_loads(a->steps, 0, NULL);
        json_object_set_new(op, "x-tally-steps", steps ? steps : json_array());
        json_object_set_new(op, "requestBody", json_body(body, false));
        json_object_set_new(responses(op), "200", answer("every step's result", ref("TransactionResults")));
        add_errors(responses(op), ERRORS(ANY_CALL, WRITE, VALUES,
                                         CODES(TALLY_NOT_FOUND, TALLY_GUARD_FAILED, TALLY_CONFLICT,
                                               TALLY_EXPECTATION_FAILED, TALLY_LOCK_LOST)));
        json_object_set_new(path_item(paths, path), "post", op);
    }
}

static json_t *components(const tally_schema *schema)
{
    json_t *schemas = json_object();
    add_shared_schemas(schemas, schema);
    for (int i = 0; i < schema->nmodels; i++)
        add_model_schemas(schemas, schema, &schema->models[i]);
    json_t *params = json_pack(
        "{s:{s:s, s:s, s:b, s:s, s:{s:s, s:i}},"
        " s:{s:s, s:s, s:b, s:{s:s, s:s, s:i}},"
        " s:{s:s, s:s, s:b, s:s, s:{s:s, s:i, s:i}},"
        " s:{s:s, s:s, s:b, s:s, s:{s:s, s:i, s:i}}}",
        "IdempotencyKey", "name", "Idempotency-Key", "in", "header", "required", 0, "description",
        "a retry with the same key and body replays the first answer instead of writing again (kept "
        "24 hours; the same key with another body is 422 IDEMPOTENCY_MISMATCH)",
        "schema", "type", "string", "minLength", 1,
        "RecordId", "name", "id", "in", "path", "required", 1, "schema", "type", "integer", "format", "int64",
        "minimum", 1,
        "LockName", "name", "name", "in", "path", "required", 1, "description", "1 to 128 bytes of UTF-8, URL-encoded",
        "schema", "type", "string", "minLength", 1, "maxLength", 128,
        "LimitKey", "name", "key", "in", "path", "required", 1, "description",
        "whom the limit counts (a user, an address): 1 to 128 bytes of UTF-8, URL-encoded", "schema", "type",
        "string", "minLength", 1, "maxLength", 128);
    json_t *security = json_pack("{s:{s:s, s:s, s:s, s:s}}", "bearer", "type", "http", "scheme", "bearer",
                                 "bearerFormat", "tly_…",
                                 "description",
                                 "an API key's token (tally keys create). A server that has never had a key serves "
                                 "in open mode (loopback only) and needs none.");
    return json_pack("{s:o, s:o, s:o}", "schemas", schemas, "parameters", params, "securitySchemes", security);
}

char *tally_openapi_build(const tally_schema *schema, size_t *len)
{
    json_t *tags = json_array();
    for (int i = 0; i < schema->nmodels; i++)
        json_array_append_new(tags, json_pack("{s:s, s:s}", "name", schema->models[i].name, "description",
                                              "records of this model"));
    static const char *const fixed_tags[][2] = {{"transactions", "all-or-nothing steps, over HTTP or WebSocket"},
                                                {"locks", "locks with fencing tokens"},
                                                {"limits", "the rate limits the schema declares"},
                                                {"keys", "API keys"},
                                                {"changes", "the change feed of committed writes"},
                                                {"actions", "the named actions the schema declares"},
                                                {"operations", "health, metrics and this document"}};
    for (size_t i = 0; i < sizeof fixed_tags / sizeof fixed_tags[0]; i++)
        json_array_append_new(tags, json_pack("{s:s, s:s}", "name", fixed_tags[i][0], "description", fixed_tags[i][1]));
    json_t *paths = json_object();
    for (int i = 0; i < schema->nmodels; i++)
        add_model_paths(paths, &schema->models[i]);
    add_primitive_paths(paths, schema);
    add_feed_and_action_paths(paths, schema);
    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:[{s:[]}], s:o, s:o, s:o}", "openapi", "3.1.0", "info", "title", "Tally",
        "version", TALLY_VERSION, "description",
        "The HTTP API of this Tally server, generated from its schema (digest in x-tally-schema-digest). Every error "
        "under /api is {\"error\": {\"code\", \"message\", \"path\"?}}; another method on a known path is 405 "
        "METHOD_NOT_ALLOWED with an Allow header, an unknown path 404 NOT_FOUND.",
        "security", "bearer", "tags", tags, "paths", paths, "components", components(schema));
    json_object_set_new(json_object_get(doc, "info"), "x-tally-schema-digest", json_string(schema->digest));
    char *text = tally_json_text(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text)
        abort();
    *len = strlen(text);
    return text;
}
