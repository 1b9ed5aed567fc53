/* decode.c — request JSON to plan steps; see decode.h. */
#include "api/decode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/filter.h"
#include "api/json_in.h"
#include "core/datetime.h"
#include "core/json_arena.h"

/* path.name, or name itself at the top level: always a copy in the plan's
 * arena, never the JSON key, because a step may keep it (step->path) after
 * the request's JSON is freed. */
static const char *sub(tally_plan *plan, const char *path, const char *name)
{
    return tally_arena_join(&plan->arena, path, ".", name);
}

static const char *json_kind(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return tally_json_is_huge_integer(v) ? "a whole number past the 64-bit range" : "a non-integer number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int bad_type(tally_error *err, const char *path, const tally_field *f, json_t *v, const char *expected)
{
    const char *type = tally_type_name(f->type);
    return tally_fail(err, TALLY_VALIDATION, path, "%s is %s %s field and takes %s, not %s", f->name,
                      strchr("aeiou", type[0]) ? "an" : "a", type, expected, json_kind(v));
}

/* An integer literal past 64 bits (read as a double, see json_in.h) where an integer field's value goes. */
static int huge_integer(tally_error *err, const char *path, const char *field)
{
    return tally_fail(err, TALLY_OVERFLOW, path, "%s is an integer field: the number given does not fit a signed "
                      "64-bit integer (from -9223372036854775808 to 9223372036854775807)", field);
}

static bool is_numeric_type(tally_type t)
{
    return t == TALLY_TYPE_INTEGER || t == TALLY_TYPE_FLOAT || t == TALLY_TYPE_BELONGS_TO;
}

bool tally_ref_fits(tally_type from, tally_type to)
{
    return from == to || (is_numeric_type(from) && is_numeric_type(to));
}

int tally_decode_ref(tally_plan *plan, json_t *j, const char *path, tally_value *out, tally_type *type, tally_error *err)
{
    json_t *ref = json_is_object(j) && json_object_size(j) == 1 ? json_object_get(j, "$ref") : NULL;
    if (!ref)
        return 0;
    const char *text = json_string_value(ref);
    const char *dot = text ? strchr(text, '.') : NULL;
    if (!dot)
        return tally_fail(err, TALLY_BAD_REQUEST, path, "a reference is {\"$ref\": \"name.field\"}");
    size_t nlen = (size_t)(dot - text);
    const char *field = dot + 1;
    for (int i = 0; i < plan->ntxn; i++) {
        const char *as = plan->txn[i].as;
        if (!as || strlen(as) != nlen || memcmp(as, text, nlen) != 0)
            continue;
        int step = plan->txn[i].answer;
        const tally_step *s = &plan->steps[step];
        if (s->op == TALLY_OP_UPDATE_MANY || s->op == TALLY_OP_DELETE_MANY) {
            if (strcmp(field, "count") != 0)
                return tally_fail(err, TALLY_BAD_REQUEST, path, "step '%s' returns only \"count\"", as);
            *out = tally_value_ref(step, TALLY_REF_COUNT);
            *type = TALLY_TYPE_INTEGER;
            return 1;
        }
        if (s->op == TALLY_OP_LIST)
            return tally_fail(err, TALLY_BAD_REQUEST, path, "the result of a find step ('%s') cannot be referenced", as);
        if (!s->model) { /* a checkLock step: its fence, to pass on to a fenced write */
            if (s->op != TALLY_OP_LOCK_CHECK || strcmp(field, "fence") != 0)
                return tally_fail(err, TALLY_BAD_REQUEST, path, "step '%s' checks a lock and returns only \"fence\"",
                                  as);
            *out = tally_value_ref(step, TALLY_REF_FENCE);
            *type = TALLY_TYPE_INTEGER;
            return 1;
        }
        int column = -1;
        for (int c = 0; c < s->model->ncolumns; c++)
            if (strcmp(field, tally_model_column_name(s->model, c)) == 0)
                column = c;
        if (s->op == TALLY_OP_DELETE && column != TALLY_COL_ID)
            return tally_fail(err, TALLY_BAD_REQUEST, path, "step '%s' deletes a record and returns only \"id\"", as);
        if (column < 0)
            return tally_fail(err, TALLY_BAD_REQUEST, path, "step '%s' returns a %s record, which has no field '%s'", as,
                              s->model->name, field);
        *out = tally_value_ref(step, column);
        *type = tally_model_column_type(s->model, column);
        return 1;
    }
    return tally_fail(err, TALLY_BAD_REQUEST, path,
                      "no earlier step is named '%.*s' (name a step with \"as\" before referring to it)", (int)nlen,
                      text);
}

/* A reference where a value of type `to` is expected: 1 (out set), 0 (not a reference) or -code. */
static int typed_ref(tally_plan *plan, json_t *j, const char *path, tally_type to, tally_value *out, tally_error *err)
{
    tally_type from;
    int r = tally_decode_ref(plan, j, path, out, &from, err);
    if (r == 1 && !tally_ref_fits(from, to))
        return tally_fail(err, TALLY_BAD_REQUEST, path, "the reference gives %s %s value where %s %s is expected",
                          strchr("aeiou", tally_type_name(from)[0]) ? "an" : "a", tally_type_name(from),
                          strchr("aeiou", tally_type_name(to)[0]) ? "an" : "a", tally_type_name(to));
    return r;
}

/* Reads a link target id: an integer or {"_link": integer}. */
static int link_id(json_t *v, int64_t *id)
{
    if (json_is_object(v) && json_object_size(v) == 1 && json_object_get(v, "_link"))
        v = json_object_get(v, "_link");
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return -1;
    *id = json_integer_value(v);
    return 0;
}

/* Decodes one plain value for field f (not a nested create). */
static int decode_value(tally_plan *plan, const tally_field *f, json_t *v, const char *path, tally_value *out,
                        tally_error *err)
{
    if (f->type == TALLY_TYPE_BELONGS_TO && json_is_object(v) && json_object_size(v) == 1 && json_object_get(v, "_link"))
        v = json_object_get(v, "_link");
    int r = typed_ref(plan, v, path, f->type, out, err);
    if (r)
        return r < 0 ? r : 0;
    if (json_is_null(v)) {
        if (f->required)
            return tally_fail(err, TALLY_VALIDATION, path, "%s is required and cannot be null", f->name);
        *out = tally_value_null();
        return 0;
    }
    switch (f->type) {
    case TALLY_TYPE_INTEGER:
        if (tally_json_is_huge_integer(v))
            return huge_integer(err, path, f->name);
        if (!json_is_integer(v))
            return bad_type(err, path, f, v, "a whole number");
        *out = tally_value_int(json_integer_value(v));
        return 0;
    case TALLY_TYPE_FLOAT:
        if (!json_is_number(v))
            return bad_type(err, path, f, v, "a number");
        *out = tally_value_float(json_number_value(v));
        return 0;
    case TALLY_TYPE_BOOLEAN:
        if (!json_is_boolean(v))
            return bad_type(err, path, f, v, "true or false");
        *out = tally_value_int(json_is_true(v));
        return 0;
    case TALLY_TYPE_STRING: {
        if (!json_is_string(v))
            return bad_type(err, path, f, v, "a string");
        size_t n = json_string_length(v);
        const char *s = json_string_value(v);
        if (memchr(s, '\0', n))
            return tally_fail(err, TALLY_VALIDATION, path, "%s contains a NUL character (\\u0000), which strings "
                              "cannot hold", f->name);
        if (f->has_max_length && (int64_t)tally_utf8_length(s, n) > f->max_length)
            return tally_fail(err, TALLY_VALIDATION, path, "%s is %zu characters long; its maxLength is %lld",
                              f->name, tally_utf8_length(s, n), (long long)f->max_length);
        *out = tally_value_text(tally_arena_strndup(&plan->arena, s, n), n);
        return 0;
    }
    case TALLY_TYPE_DATETIME: {
        int64_t ms;
        if (!json_is_string(v) || tally_datetime_parse(json_string_value(v), json_string_length(v), &ms) != 0)
            return tally_fail(err, TALLY_VALIDATION, path,
                              "%s is a datetime field and takes an RFC 3339 string such as "
                              "\"2024-01-31T12:00:00Z\"", f->name);
        *out = tally_value_int(ms);
        return 0;
    }
    case TALLY_TYPE_JSON: {
        char *s = tally_json_text(v, JSON_COMPACT | JSON_ENCODE_ANY);
        size_t n = strlen(s);
        *out = tally_value_text(tally_arena_strndup(&plan->arena, s, n), n);
        free(s);
        return 0;
    }
    case TALLY_TYPE_BELONGS_TO: {
        int64_t id;
        if (link_id(v, &id))
            return tally_fail(err, TALLY_VALIDATION, path,
                              "%s links to a %s: give {\"_link\": id} with a positive integer id, or "
                              "{\"create\": {...}} to create one", f->name, f->target);
        *out = tally_value_int(id);
        return 0;
    }
    default:
        return tally_fail(err, TALLY_BAD_REQUEST, path, "%s cannot be set directly", f->name);
    }
}

static bool is_nested_create(json_t *v)
{
    return json_is_object(v) && json_object_size(v) == 1 && json_object_get(v, "create");
}

static int reject_reserved(const char *key, const char *path, tally_error *err)
{
    if (strcmp(key, "id") == 0 || strcmp(key, "createdAt") == 0 || strcmp(key, "updatedAt") == 0)
        return tally_fail(err, TALLY_BAD_REQUEST, path, "%s is set by the server and cannot be written", key);
    return 0;
}

static int unknown_field(const tally_model *m, const char *key, const char *path, tally_error *err)
{
    return tally_fail(err, TALLY_BAD_REQUEST, path, "%s has no field '%s'; check the spelling against the schema",
                      m->name, key);
}

/* The create with an injected value: a hasMany child's link to its parent. */
static int decode_create_with(tally_plan *plan, const tally_model *m, json_t *body, const char *path, int inject_col,
                              tally_value inject, tally_error *err)
{
    if (!json_is_object(body))
        return tally_fail(err, TALLY_BAD_REQUEST, path[0] ? path : NULL,
                          "a %s record is written as a JSON object of field values, not %s", m->name,
                          json_kind(body));
    tally_assign *sets = tally_arena_alloc(&plan->arena, (size_t)m->ncolumns * sizeof *sets);
    int nsets = 0;
    bool *given = tally_arena_zalloc(&plan->arena, (size_t)m->nfields * sizeof *given);
    const char *key;
    json_t *v;
    /* First: nested belongsTo creates, which must run before this record. */
    json_object_foreach(body, key, v) {
        const char *fpath = sub(plan, path, key);
        if (reject_reserved(key, fpath, err))
            return -TALLY_BAD_REQUEST;
        if (key[0] == '_')
            return tally_fail(err, TALLY_BAD_REQUEST, fpath, "'%s' is not allowed when creating a record", key);
        int fi = tally_model_field(m, key, strlen(key));
        if (fi < 0)
            return unknown_field(m, key, fpath, err);
        const tally_field *f = &m->fields[fi];
        given[fi] = true;
        if (f->column == inject_col && inject_col >= 0)
            return tally_fail(err, TALLY_BAD_REQUEST, fpath, "%s is set by the parent record this one is nested in",
                              key);
        if (f->type == TALLY_TYPE_HAS_MANY)
            continue;
        tally_value value;
        if (f->type == TALLY_TYPE_BELONGS_TO && is_nested_create(v)) {
            int step = decode_create_with(plan, &plan->schema->models[f->target_model], json_object_get(v, "create"),
                                          fpath, -1, tally_value_null(), err);
            if (step < 0)
                return step;
            value = tally_value_ref(step, TALLY_COL_ID);
        } else if (decode_value(plan, f, v, fpath, &value, err)) {
            return -(int)err->code;
        }
        sets[nsets++] = (tally_assign){f->column, value};
    }
    /* Then defaults and the required check for what was not given. */
    for (int fi = 0; fi < m->nfields; fi++) {
        const tally_field *f = &m->fields[fi];
        if (given[fi] || f->column < 0)
            continue;
        if (f->column == inject_col)
            sets[nsets++] = (tally_assign){f->column, inject};
        else if (f->has_default)
            sets[nsets++] = (tally_assign){f->column, f->default_value};
        else if (f->required)
            return tally_fail(err, TALLY_VALIDATION, sub(plan, path, f->name),
                              "%s is required: give it a value when creating a %s", f->name, m->name);
    }
    tally_step *s = tally_plan_add_step(plan, TALLY_OP_CREATE, m);
    s->path = path;
    s->sets = sets;
    s->nsets = nsets;
    int self = plan->nsteps - 1;
    /* Last: hasMany children, created or relinked to point at this record. */
    json_object_foreach(body, key, v) {
        int fi = tally_model_field(m, key, strlen(key));
        const tally_field *f = &m->fields[fi];
        if (f->type != TALLY_TYPE_HAS_MANY)
            continue;
        const char *fpath = sub(plan, path, key);
        if (!json_is_array(v))
            return tally_fail(err, TALLY_VALIDATION, fpath,
                              "%s takes a list of {\"create\": {...}} or {\"_link\": id} items", key);
        const tally_model *child = &plan->schema->models[f->target_model];
        int inverse_col = child->fields[f->inverse_field].column;
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            const char *ipath = tally_arena_printf(&plan->arena, "%s[%zu]", fpath, i);
            int64_t id;
            if (is_nested_create(item)) {
                int rc = decode_create_with(plan, child, json_object_get(item, "create"), ipath, inverse_col,
                                            tally_value_ref(self, TALLY_COL_ID), err);
                if (rc < 0)
                    return rc;
            } else if (link_id(item, &id) == 0) {
                tally_step *u = tally_plan_add_step(plan, TALLY_OP_UPDATE, child);
                u->path = ipath;
                u->link = true;
                u->id = tally_value_int(id);
                u->sets = tally_arena_alloc(&plan->arena, sizeof *u->sets);
                u->sets[0] = (tally_assign){inverse_col, tally_value_ref(self, TALLY_COL_ID)};
                u->nsets = 1;
            } else {
                return tally_fail(err, TALLY_VALIDATION, ipath,
                                  "each item of %s is {\"create\": {...}} or {\"_link\": id}", key);
            }
        }
    }
    return self;
}

int tally_decode_create(tally_plan *plan, const tally_model *m, json_t *body, const char *path, tally_error *err)
{
    /* The steps keep their path: own the caller's. */
    path = path[0] ? tally_arena_strndup(&plan->arena, path, strlen(path)) : "";
    return decode_create_with(plan, m, body, path, -1, tally_value_null(), err);
}

/* One operation of _atomics: {"increment": n} or {"decrement": n}; {} as n means 1. */
static int decode_atomic_op(tally_plan *plan, const tally_field *f, json_t *op, const char *path, tally_atomic *out,
                            tally_error *err)
{
    json_t *amount = NULL;
    if (json_is_object(op) && json_object_size(op) == 1) {
        if ((amount = json_object_get(op, "increment")))
            out->kind = TALLY_ATOMIC_INCREMENT;
        else if ((amount = json_object_get(op, "decrement")))
            out->kind = TALLY_ATOMIC_DECREMENT;
    }
    if (!amount)
        return tally_fail(err, TALLY_BAD_REQUEST, path,
                          "an atomic operation is {\"increment\": n} or {\"decrement\": n}, or a list of them");
    out->column = f->column;
    int r = typed_ref(plan, amount, path, f->type, &out->amount, err);
    if (r)
        return r < 0 ? r : 0;
    if (json_is_object(amount) && json_object_size(amount) == 0)
        out->amount = tally_value_int(1);
    else if (json_is_integer(amount))
        out->amount = tally_value_int(json_integer_value(amount));
    else if (f->type == TALLY_TYPE_INTEGER && tally_json_is_huge_integer(amount))
        return huge_integer(err, path, f->name);
    else if (json_is_real(amount) && f->type == TALLY_TYPE_FLOAT)
        out->amount = tally_value_float(json_real_value(amount));
    else
        return tally_fail(err, TALLY_BAD_REQUEST, path, "the amount must be %s (or {} for 1), not %s",
                          f->type == TALLY_TYPE_INTEGER ? "a whole number" : "a number", json_kind(amount));
    return 0;
}

static int decode_atomics(tally_plan *plan, tally_step *s, json_t *atomics, bool *set_fields, const char *path,
                          tally_error *err)
{
    const tally_model *m = s->model;
    if (!json_is_object(atomics))
        return tally_fail(err, TALLY_BAD_REQUEST, sub(plan, path, "_atomics"),
                          "_atomics is an object: {\"field\": {\"increment\": n}}");
    size_t cap = 0;
    const char *key;
    json_t *v;
    json_object_foreach(atomics, key, v) cap += json_is_array(v) ? json_array_size(v) : 1;
    s->atomics = tally_arena_alloc(&plan->arena, (cap ? cap : 1) * sizeof *s->atomics);
    json_object_foreach(atomics, key, v) {
        const char *fpath = tally_arena_join(&plan->arena, sub(plan, path, "_atomics"), ".", key);
        int fi = tally_model_field(m, key, strlen(key));
        if (fi < 0) {
            if (reject_reserved(key, fpath, err))
                return -TALLY_BAD_REQUEST;
            return unknown_field(m, key, fpath, err);
        }
        const tally_field *f = &m->fields[fi];
        if (f->type != TALLY_TYPE_INTEGER && f->type != TALLY_TYPE_FLOAT)
            return tally_fail(err, TALLY_VALIDATION, fpath,
                              "%s is a field of type %s; increment and decrement work on integer and float fields", key,
                              tally_type_name(f->type));
        if (set_fields[fi])
            return tally_fail(err, TALLY_BAD_REQUEST, fpath,
                              "%s is both set and changed by _atomics; do one or the other", key);
        if (json_is_array(v)) {
            if (json_array_size(v) == 0)
                return tally_fail(err, TALLY_BAD_REQUEST, fpath, "the list of operations is empty");
            size_t i;
            json_t *op;
            json_array_foreach(v, i, op) {
                const char *opath = tally_arena_printf(&plan->arena, "%s[%zu]", fpath, i);
                if (decode_atomic_op(plan, f, op, opath, &s->atomics[s->natomics++], err))
                    return -TALLY_BAD_REQUEST;
            }
        } else if (decode_atomic_op(plan, f, v, fpath, &s->atomics[s->natomics++], err)) {
            return -TALLY_BAD_REQUEST;
        }
    }
    return 0;
}

/*
 * Fields to set and _atomics, shared by PATCH (fields at the top of the
 * body), updateMany ("set") and upsert ("update").  Keys starting with '_'
 * in `fields` are left to the caller.  path and atomics_path (where _atomics
 * sits) prefix error paths.
 */
static int decode_changes(tally_plan *plan, const tally_model *m, json_t *fields, const char *path, json_t *atomics,
                          const char *atomics_path, tally_assign **sets_out, int *nsets_out, tally_step *s,
                          tally_error *err)
{
    tally_assign *sets = tally_arena_alloc(&plan->arena, (size_t)m->ncolumns * sizeof *sets);
    int nsets = 0;
    bool *set_fields = tally_arena_zalloc(&plan->arena, (size_t)m->nfields * sizeof *set_fields);
    const char *key;
    json_t *v;
    if (fields && !json_is_object(fields))
        return tally_fail(err, TALLY_BAD_REQUEST, path[0] ? path : NULL,
                          "expected an object of fields to set, not %s", json_kind(fields));
    json_object_foreach(fields, key, v) {
        if (key[0] == '_')
            continue;
        const char *fpath = sub(plan, path, key);
        if (reject_reserved(key, fpath, err))
            return -TALLY_BAD_REQUEST;
        int fi = tally_model_field(m, key, strlen(key));
        if (fi < 0)
            return unknown_field(m, key, fpath, err);
        const tally_field *f = &m->fields[fi];
        if (f->type == TALLY_TYPE_HAS_MANY)
            return tally_fail(err, TALLY_BAD_REQUEST, fpath,
                              "%s is a hasMany list; change it by setting '%s' on the %s records", key, f->inverse,
                              f->target);
        tally_value value;
        if (f->type == TALLY_TYPE_BELONGS_TO && is_nested_create(v)) {
            if (s->op != TALLY_OP_UPDATE)
                return tally_fail(err, TALLY_BAD_REQUEST, fpath, "a nested create is not allowed here; use {\"_link\": id}");
            int step = tally_decode_create(plan, &plan->schema->models[f->target_model], json_object_get(v, "create"),
                                           fpath, err);
            if (step < 0)
                return step;
            value = tally_value_ref(step, TALLY_COL_ID);
        } else if (decode_value(plan, f, v, fpath, &value, err)) {
            return -(int)err->code;
        }
        set_fields[fi] = true;
        sets[nsets++] = (tally_assign){f->column, value};
    }
    *sets_out = sets;
    *nsets_out = nsets;
    if (atomics && decode_atomics(plan, s, atomics, set_fields, atomics_path, err))
        return -(int)err->code;
    return 0;
}

/* The filter of updateMany / deleteMany: required, {} written out for every row. */
static int decode_bulk_filter(tally_plan *plan, tally_step *s, json_t *body, const char *call, tally_error *err)
{
    json_t *filter = json_object_get(body, "filter");
    if (!filter)
        return tally_fail(err, TALLY_BAD_REQUEST, "filter",
                          "%s needs \"filter\"; to %s every row, say so with \"filter\": {}", call,
                          s->op == TALLY_OP_DELETE_MANY ? "delete" : "change");
    return tally_decode_filter(plan, s->model, filter, "filter", &s->where, err);
}

static bool listed(const char *key, const char *const *names)
{
    for (; names && *names; names++)
        if (strcmp(*names, key) == 0)
            return true;
    return false;
}

const char *tally_unknown_key(json_t *obj, const char *const *allowed, const char *const *also)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (!listed(key, allowed) && !listed(key, also))
            return key;
    }
    return NULL;
}

int tally_decode_check_keys(json_t *body, const char *const *allowed, const char *call, tally_error *err)
{
    if (!json_is_object(body))
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "the body of %s is a JSON object, not %s", call, json_kind(body));
    const char *key = tally_unknown_key(body, allowed, NULL);
    return key ? tally_fail(err, TALLY_BAD_REQUEST, key, "%s takes no '%s'", call, key) : 0;
}

int tally_decode_update(tally_plan *plan, const tally_model *m, tally_value id, json_t *data, const char *data_path,
                        json_t *where, const char *where_path, tally_error *err)
{
    if (!json_is_object(data))
        return tally_fail(err, TALLY_BAD_REQUEST, data_path[0] ? data_path : NULL,
                          "the changes are a JSON object of fields to set and \"_atomics\", not %s", json_kind(data));
    /* The step is added last (nested creates come first), so decode into a scratch step. */
    tally_step scratch = {.op = TALLY_OP_UPDATE, .model = m, .path = data_path, .where_path = where_path};
    tally_assign *sets;
    int nsets;
    if (decode_changes(plan, m, data, data_path, json_object_get(data, "_atomics"), data_path, &sets, &nsets, &scratch,
                       err))
        return -(int)err->code;
    if (where && tally_decode_filter(plan, m, where, where_path, &scratch.where, err))
        return -(int)err->code;
    tally_step *s = tally_plan_add_step(plan, TALLY_OP_UPDATE, m);
    *s = scratch;
    s->id = id;
    s->sets = sets;
    s->nsets = nsets;
    return plan->nsteps - 1;
}

int tally_decode_patch(tally_plan *plan, const tally_model *m, tally_value id, json_t *body, tally_error *err)
{
    if (!json_is_object(body))
        return tally_fail(err, TALLY_BAD_REQUEST, NULL,
                          "the body is a JSON object of fields to set, \"_atomics\" and \"_where\", not %s",
                          json_kind(body));
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (key[0] == '_' && strcmp(key, "_atomics") != 0 && strcmp(key, "_where") != 0)
            return tally_fail(err, TALLY_BAD_REQUEST, key,
                              "unknown key '%s'; PATCH takes fields, \"_atomics\" and \"_where\"", key);
    }
    return tally_decode_update(plan, m, id, body, "", json_object_get(body, "_where"), "_where", err);
}

int tally_decode_update_many(tally_plan *plan, const tally_model *m, json_t *body, tally_error *err)
{
    static const char *const keys[] = {"filter", "set", "_atomics", NULL};
    if (tally_decode_check_keys(body, keys, "updateMany", err))
        return -(int)err->code;
    tally_step *s = tally_plan_add_step(plan, TALLY_OP_UPDATE_MANY, m);
    if (decode_bulk_filter(plan, s, body, "updateMany", err))
        return -(int)err->code;
    json_t *set = json_object_get(body, "set");
    if (decode_changes(plan, m, set, "set", json_object_get(body, "_atomics"), "", &s->sets, &s->nsets, s, err))
        return -(int)err->code;
    if (set && json_is_object(set)) {
        const char *key;
        json_t *v;
        json_object_foreach(set, key, v) {
            if (key[0] == '_')
                return tally_fail(err, TALLY_BAD_REQUEST, sub(plan, "set", key),
                                  "set takes fields; atomics go in \"_atomics\" beside it");
        }
    }
    if (s->nsets == 0 && s->natomics == 0)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "updateMany needs \"set\" or \"_atomics\" with something to change");
    return plan->nsteps - 1;
}

int tally_decode_delete_many(tally_plan *plan, const tally_model *m, json_t *body, tally_error *err)
{
    static const char *const keys[] = {"filter", NULL};
    if (tally_decode_check_keys(body, keys, "deleteMany", err))
        return -(int)err->code;
    tally_step *s = tally_plan_add_step(plan, TALLY_OP_DELETE_MANY, m);
    if (decode_bulk_filter(plan, s, body, "deleteMany", err))
        return -(int)err->code;
    return plan->nsteps - 1;
}

/* `on` must be exactly a unique field or a declared compound key (in any order). */
static int decode_on(tally_plan *plan, tally_step *s, json_t *on, tally_error *err)
{
    const tally_model *m = s->model;
    json_t *list = json_is_string(on) ? json_pack("[O]", on) : json_incref(on);
    int rc = 0;
    if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > TALLY_MAX_UNIQUE_FIELDS) {
        rc = tally_fail(err, TALLY_BAD_REQUEST, "on", "on names the unique key to match: a field or a list of fields");
        goto done;
    }
    int fields[TALLY_MAX_UNIQUE_FIELDS];
    size_t i;
    json_t *name;
    json_array_foreach(list, i, name) {
        int fi = json_is_string(name) ? tally_model_field(m, json_string_value(name), json_string_length(name)) : -1;
        if (fi < 0) {
            rc = tally_fail(err, TALLY_BAD_REQUEST, tally_arena_printf(&plan->arena, "on[%zu]", i),
                            "%s has no field %s", m->name, json_is_string(name) ? json_string_value(name) : "(not a name)");
            goto done;
        }
        for (size_t k = 0; k < i; k++)
            if (fields[k] == fi) {
                rc = tally_fail(err, TALLY_BAD_REQUEST, tally_arena_printf(&plan->arena, "on[%zu]", i),
                                "on names %s twice", m->fields[fi].name);
                goto done;
            }
        fields[i] = fi;
        s->on[i] = m->fields[fi].column;
    }
    s->non = (int)json_array_size(list);
    bool declared = s->non == 1 && m->fields[fields[0]].unique;
    for (int k = 0; !declared && k < m->nuniques; k++) {
        const tally_unique_key *u = &m->uniques[k];
        if (u->nfields != s->non)
            continue;
        int matched = 0;
        for (int a = 0; a < s->non; a++)
            for (int b = 0; b < u->nfields; b++)
                matched += fields[a] == u->fields[b];
        declared = matched == s->non;
    }
    if (!declared)
        rc = tally_fail(err, TALLY_BAD_REQUEST, "on",
                        "on must name a unique field or a compound unique key declared in the schema for %s", m->name);
done:
    json_decref(list);
    return rc;
}

int tally_decode_upsert(tally_plan *plan, const tally_model *m, json_t *body, tally_error *err)
{
    static const char *const keys[] = {"on", "create", "update", NULL};
    if (tally_decode_check_keys(body, keys, "upsert", err))
        return -(int)err->code;
    json_t *on = json_object_get(body, "on"), *create = json_object_get(body, "create"),
           *update = json_object_get(body, "update");
    if (!on || !create)
        return tally_fail(err, TALLY_BAD_REQUEST, on ? "create" : "on",
                          "upsert needs \"on\" (a unique key), \"create\" (the new record) and optionally \"update\"");
    /* Decode the create part as a create, then turn that step into the upsert;
     * it must be the one step added (the plan may hold a transaction's earlier steps). */
    int before = plan->nsteps;
    int step = decode_create_with(plan, m, create, "create", -1, tally_value_null(), err);
    if (step < 0)
        return step;
    if (step != before || plan->nsteps != before + 1)
        return tally_fail(err, TALLY_BAD_REQUEST, "create", "an upsert's create takes plain values and {\"_link\": id}, "
                          "not nested creates or hasMany lists");
    tally_step *s = &plan->steps[step];
    s->op = TALLY_OP_UPSERT;
    s->path = "";
    if (decode_on(plan, s, on, err))
        return -(int)err->code;
    for (int i = 0; i < s->non; i++) {
        bool given = false;
        for (int k = 0; k < s->nsets; k++)
            given |= s->sets[k].column == s->on[i] && s->sets[k].value.kind != TALLY_VALUE_NULL;
        if (!given)
            return tally_fail(err, TALLY_BAD_REQUEST, "create",
                              "create must give every field of on (%s is missing), or no existing record could match",
                              tally_model_column_name(m, s->on[i]));
    }
    if (update) {
        if (!json_is_object(update))
            return tally_fail(err, TALLY_BAD_REQUEST, "update", "update is an object of fields and/or \"_atomics\"");
        const char *key;
        json_t *v;
        json_object_foreach(update, key, v) {
            if (key[0] == '_' && strcmp(key, "_atomics") != 0)
                return tally_fail(err, TALLY_BAD_REQUEST, sub(plan, "update", key),
                                  "update takes fields and \"_atomics\"");
        }
        if (decode_changes(plan, m, update, "update", json_object_get(update, "_atomics"), "update", &s->usets,
                           &s->nusets, s,
                           err))
            return -(int)err->code;
    }
    return step;
}

int tally_decode_id(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > 19)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (INT64_MAX - (s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1)
        return -1;
    *out = v;
    return 0;
}

