/*
 * schema.c — parses the schema JSON (README.md, "Schema") and checks everything a
 * later layer relies on: names are identifiers, types and options fit each
 * other, defaults fit their field, relations point at real models.  Each
 * message names the model, the field and the problem.
 */
#include "core/schema.h"

#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/datetime.h"
#include "core/json_arena.h"

static const char *const type_names[] = {
    [TALLY_TYPE_INTEGER] = "integer", [TALLY_TYPE_FLOAT] = "float",   [TALLY_TYPE_BOOLEAN] = "boolean",
    [TALLY_TYPE_STRING] = "string",   [TALLY_TYPE_DATETIME] = "datetime", [TALLY_TYPE_JSON] = "json",
    [TALLY_TYPE_BELONGS_TO] = "belongsTo", [TALLY_TYPE_HAS_MANY] = "hasMany",
};

const char *tally_type_name(tally_type type) { return type_names[type]; }

static int parse_type(const char *s, tally_type *out)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (strcmp(s, type_names[i]) == 0) {
            *out = (tally_type)i;
            return 0;
        }
    return -1;
}

/* Names that would shadow a route under /api or a storage table. */
static bool reserved_model_name(const char *name)
{
    static const char *const reserved[] = {"transaction", "locks", "limits", "ws", "metrics", "health",
                                          "keys", "changes", "actions"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcmp(name, reserved[i]) == 0)
            return true;
    return strncasecmp(name, "sqlite_", 7) == 0 || strncasecmp(name, "tally_", 6) == 0;
}

static bool reserved_field_name(const char *name)
{
    return strcmp(name, "id") == 0 || strcmp(name, "createdAt") == 0 || strcmp(name, "updatedAt") == 0;
}

#define FAIL(...) tally_fail(err, TALLY_BAD_REQUEST, NULL, __VA_ARGS__)

static int check_keys(json_t *obj, const char *const *allowed, const char *where, tally_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(key, *a) == 0)
                ok = true;
        if (!ok) {
            char list[256] = "";
            for (const char *const *a = allowed; *a; a++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", a == allowed ? "" : ", ", *a);
            return FAIL("%s: unknown option '%s' (allowed: %s)", where, key, list);
        }
    }
    return 0;
}

/* <0, 0, >0: exact for two integers (above 2^53 a double cannot tell
 * neighbours apart), by value otherwise. */
static int compare_number(const tally_value *a, const tally_value *b)
{
    if (a->kind == TALLY_VALUE_INT && b->kind == TALLY_VALUE_INT)
        return (a->u.i > b->u.i) - (a->u.i < b->u.i);
    double x = tally_value_as_double(a), y = tally_value_as_double(b);
    return (x > y) - (x < y);
}

/* A model or field name given as the value of "model" / "inverse": copied
 * into a TALLY_NAME_MAX buffer, so a longer one is refused, never cut short
 * (a cut name could silently match another model or field). */
static int copy_name(json_t *j, char *out, const char *where, const char *what, tally_error *err)
{
    size_t n = json_string_length(j);
    const char *s = json_string_value(j);
    bool model = strcmp(what, "model") == 0;
    if (n >= TALLY_NAME_MAX)
        return FAIL("%s: %s '%.64s%s' %s (it is %zu bytes long; %s names are identifiers of at most %d bytes)",
                    where, what, s, n > 64 ? "..." : "", model ? "is not declared" : "names no field", n,
                    model ? "model" : "field", TALLY_NAME_MAX - 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* Reads a numeric bound or default for an integer/float field. */
static int parse_number(json_t *j, tally_type type, tally_value *out, const char *where, const char *what,
                        tally_error *err)
{
    if (type == TALLY_TYPE_INTEGER) {
        if (!json_is_integer(j))
            return FAIL("%s: %s must be an integer", where, what);
        *out = tally_value_int(json_integer_value(j));
    } else {
        if (!json_is_number(j))
            return FAIL("%s: %s must be a number", where, what);
        *out = tally_value_float(json_number_value(j));
    }
    return 0;
}

static int parse_default(json_t *j, tally_field *f, const char *where, tally_error *err)
{
    if (json_is_null(j))
        return FAIL("%s: default must not be null (leave it out instead)", where);
    switch (f->type) {
    case TALLY_TYPE_INTEGER:
    case TALLY_TYPE_FLOAT:
        return parse_number(j, f->type, &f->default_value, where, "default", err);
    case TALLY_TYPE_BOOLEAN:
        if (!json_is_boolean(j))
            return FAIL("%s: default must be true or false", where);
        f->default_value = tally_value_int(json_is_true(j));
        return 0;
    case TALLY_TYPE_STRING: {
        if (!json_is_string(j))
            return FAIL("%s: default must be a string", where);
        char *s = strdup(json_string_value(j));
        f->default_value = tally_value_text(s, json_string_length(j));
        return 0;
    }
    case TALLY_TYPE_DATETIME: {
        int64_t ms;
        if (!json_is_string(j) || tally_datetime_parse(json_string_value(j), json_string_length(j), &ms) != 0)
            return FAIL("%s: default must be an RFC 3339 date-time string such as \"2024-01-31T12:00:00Z\"", where);
        f->default_value = tally_value_int(ms);
        return 0;
    }
    case TALLY_TYPE_JSON: {
        char *s = tally_json_text(j, JSON_COMPACT | JSON_ENCODE_ANY);
        f->default_value = tally_value_text(s, strlen(s));
        return 0;
    }
    default:
        return FAIL("%s: a %s field cannot have a default", where, type_names[f->type]);
    }
}

static int parse_field(json_t *jf, const char *name, tally_field *f, const char *model, tally_error *err)
{
    char where[200];
    snprintf(where, sizeof where, "model '%s', field '%s'", model, name);
    if (!tally_is_identifier(name, strlen(name)))
        return FAIL("%s: field names must match [A-Za-z][A-Za-z0-9_]* and be at most 63 bytes", where);
    if (reserved_field_name(name))
        return FAIL("%s: '%s' is given to every record by the server; choose another name", where, name);
    if (!json_is_object(jf))
        return FAIL("%s: a field is an object such as {\"type\": \"integer\"}", where);
    static const char *const keys[] = {"type", "required", "default", "unique", "min", "max", "maxLength",
                                       "model", "inverse", "onDelete", NULL};
    if (check_keys(jf, keys, where, err))
        return -TALLY_BAD_REQUEST;
    snprintf(f->name, sizeof f->name, "%s", name);
    json_t *jt = json_object_get(jf, "type");
    if (!json_is_string(jt))
        return FAIL("%s: \"type\" is required: one of integer, float, boolean, string, datetime, json, "
                    "belongsTo, hasMany", where);
    if (parse_type(json_string_value(jt), &f->type))
        return FAIL("%s: unknown type '%s': use integer, float, boolean, string, datetime, json, belongsTo "
                    "or hasMany", where, json_string_value(jt));
    bool numeric = f->type == TALLY_TYPE_INTEGER || f->type == TALLY_TYPE_FLOAT;
    bool relation = f->type == TALLY_TYPE_BELONGS_TO || f->type == TALLY_TYPE_HAS_MANY;

    json_t *j;
    if ((j = json_object_get(jf, "required"))) {
        if (!json_is_boolean(j))
            return FAIL("%s: required must be true or false", where);
        if (f->type == TALLY_TYPE_HAS_MANY && json_is_true(j))
            return FAIL("%s: a hasMany field cannot be required", where);
        f->required = json_is_true(j);
    }
    if ((j = json_object_get(jf, "unique"))) {
        if (!json_is_boolean(j))
            return FAIL("%s: unique must be true or false", where);
        if (json_is_true(j) && (f->type == TALLY_TYPE_HAS_MANY || f->type == TALLY_TYPE_JSON))
            return FAIL("%s: a %s field cannot be unique", where, type_names[f->type]);
        f->unique = json_is_true(j);
    }
    if ((j = json_object_get(jf, "min"))) {
        if (!numeric)
            return FAIL("%s: min applies to integer and float fields only", where);
        if (parse_number(j, f->type, &f->min, where, "min", err))
            return -TALLY_BAD_REQUEST;
        f->has_min = true;
    }
    if ((j = json_object_get(jf, "max"))) {
        if (!numeric)
            return FAIL("%s: max applies to integer and float fields only", where);
        if (parse_number(j, f->type, &f->max, where, "max", err))
            return -TALLY_BAD_REQUEST;
        f->has_max = true;
    }
    if (f->has_min && f->has_max && compare_number(&f->min, &f->max) > 0)
        return FAIL("%s: min is greater than max", where);
    if ((j = json_object_get(jf, "maxLength"))) {
        if (f->type != TALLY_TYPE_STRING)
            return FAIL("%s: maxLength applies to string fields only", where);
        if (!json_is_integer(j) || json_integer_value(j) < 1)
            return FAIL("%s: maxLength must be a positive integer", where);
        f->has_max_length = true;
        f->max_length = json_integer_value(j);
    }
    if ((j = json_object_get(jf, "default"))) {
        if (parse_default(j, f, where, err))
            return -TALLY_BAD_REQUEST;
        f->has_default = true;
        if (numeric && ((f->has_min && compare_number(&f->default_value, &f->min) < 0) ||
                        (f->has_max && compare_number(&f->default_value, &f->max) > 0)))
            return FAIL("%s: the default lies outside min/max", where);
        if (f->has_max_length &&
            (int64_t)tally_utf8_length(f->default_value.u.text.ptr, f->default_value.u.text.len) > f->max_length)
            return FAIL("%s: the default is longer than maxLength", where);
    }
    if ((j = json_object_get(jf, "model"))) {
        if (!relation)
            return FAIL("%s: model applies to belongsTo and hasMany fields only", where);
        if (!json_is_string(j))
            return FAIL("%s: model must be the name of a model", where);
        if (copy_name(j, f->target, where, "model", err))
            return -TALLY_BAD_REQUEST;
    } else if (relation) {
        return FAIL("%s: a %s field needs \"model\": the name of the model it points to", where,
                    type_names[f->type]);
    }
    if ((j = json_object_get(jf, "inverse"))) {
        if (f->type != TALLY_TYPE_HAS_MANY)
            return FAIL("%s: inverse applies to hasMany fields only", where);
        if (!json_is_string(j))
            return FAIL("%s: inverse must name the belongsTo field of the other model", where);
        if (copy_name(j, f->inverse, where, "inverse", err))
            return -TALLY_BAD_REQUEST;
    }
    if ((j = json_object_get(jf, "onDelete"))) {
        if (f->type != TALLY_TYPE_BELONGS_TO)
            return FAIL("%s: onDelete applies to belongsTo fields only", where);
        const char *s = json_is_string(j) ? json_string_value(j) : "";
        if (strcmp(s, "restrict") == 0)
            f->on_delete = TALLY_ON_DELETE_RESTRICT;
        else if (strcmp(s, "cascade") == 0)
            f->on_delete = TALLY_ON_DELETE_CASCADE;
        else if (strcmp(s, "setNull") == 0)
            f->on_delete = TALLY_ON_DELETE_SET_NULL;
        else
            return FAIL("%s: onDelete must be \"restrict\", \"cascade\" or \"setNull\"", where);
        if (f->on_delete == TALLY_ON_DELETE_SET_NULL && f->required)
            return FAIL("%s: onDelete setNull cannot apply to a required field", where);
    }
    return 0;
}

static int parse_model(json_t *jm, const char *name, tally_model *m, tally_error *err)
{
    char where[100];
    snprintf(where, sizeof where, "model '%s'", name);
    if (!tally_is_identifier(name, strlen(name)))
        return FAIL("%s: model names must match [A-Za-z][A-Za-z0-9_]* and be at most 63 bytes", where);
    if (reserved_model_name(name))
        return FAIL("%s: the name is reserved (it would clash with /api/%s or internal tables)", where, name);
    if (!json_is_object(jm))
        return FAIL("%s: a model is an object with \"fields\"", where);
    static const char *const keys[] = {"fields", "unique", "changes", NULL};
    if (check_keys(jm, keys, where, err))
        return -TALLY_BAD_REQUEST;
    snprintf(m->name, sizeof m->name, "%s", name);
    json_t *jc = json_object_get(jm, "changes");
    if (jc && !json_is_boolean(jc))
        return FAIL("%s: \"changes\" is true or false (false keeps the model's writes out of the change feed)", where);
    m->changes = !jc || json_is_true(jc);
    json_t *jfields = json_object_get(jm, "fields");
    if (!json_is_object(jfields))
        return FAIL("%s: \"fields\" is required and must be an object of field definitions", where);
    size_t n = json_object_size(jfields);
    if (n > TALLY_MAX_FIELDS)
        return FAIL("%s: more than %d fields", where, TALLY_MAX_FIELDS);
    m->fields = calloc(n ? n : 1, sizeof *m->fields);
    m->column_field = calloc(n + TALLY_COL_FIRST_FIELD, sizeof(int));
    m->column_field[0] = m->column_field[1] = m->column_field[2] = -1;
    m->ncolumns = TALLY_COL_FIRST_FIELD;
    const char *fname;
    json_t *jf;
    /* jansson keeps insertion order, so columns follow the declaration order. */
    json_object_foreach(jfields, fname, jf) {
        tally_field *f = &m->fields[m->nfields++];
        if (parse_field(jf, fname, f, name, err))
            return -TALLY_BAD_REQUEST;
        f->column = f->type == TALLY_TYPE_HAS_MANY ? -1 : m->ncolumns++;
        if (f->column >= 0)
            m->column_field[f->column] = m->nfields - 1;
    }
    json_t *ju = json_object_get(jm, "unique");
    if (ju) {
        if (!json_is_array(ju))
            return FAIL("%s: \"unique\" is a list of keys, each a list of field names: [[\"a\", \"b\"]]", where);
        m->uniques = calloc(json_array_size(ju) + 1, sizeof *m->uniques);
        size_t i;
        json_t *key;
        json_array_foreach(ju, i, key) {
            if (!json_is_array(key) || json_array_size(key) == 0 || json_array_size(key) > TALLY_MAX_UNIQUE_FIELDS)
                return FAIL("%s: unique key %zu must be a list of 1 to %d field names", where, i,
                            TALLY_MAX_UNIQUE_FIELDS);
            tally_unique_key *u = &m->uniques[m->nuniques++];
            size_t k;
            json_t *jn;
            json_array_foreach(key, k, jn) {
                int fi = json_is_string(jn) ? tally_model_field(m, json_string_value(jn), json_string_length(jn)) : -1;
                if (fi < 0)
                    return FAIL("%s: unique key %zu names '%s', which is not a field of the model", where, i,
                                json_is_string(jn) ? json_string_value(jn) : "(not a string)");
                if (m->fields[fi].type == TALLY_TYPE_HAS_MANY || m->fields[fi].type == TALLY_TYPE_JSON)
                    return FAIL("%s: unique key %zu: a %s field cannot be part of a unique key", where, i,
                                type_names[m->fields[fi].type]);
                for (int p = 0; p < u->nfields; p++)
                    if (u->fields[p] == fi)
                        return FAIL("%s: unique key %zu names '%s' twice", where, i, m->fields[fi].name);
                u->fields[u->nfields++] = fi;
            }
        }
    }
    return 0;
}

/* Second pass: relations point at models that exist, hasMany at a belongsTo back. */
static int resolve_relations(tally_schema *s, tally_error *err)
{
    for (int mi = 0; mi < s->nmodels; mi++) {
        tally_model *m = &s->models[mi];
        for (int fi = 0; fi < m->nfields; fi++) {
            tally_field *f = &m->fields[fi];
            if (f->type != TALLY_TYPE_BELONGS_TO && f->type != TALLY_TYPE_HAS_MANY)
                continue;
            const tally_model *t = tally_schema_model(s, f->target, strlen(f->target));
            if (!t)
                return FAIL("model '%s', field '%s': model '%s' is not declared", m->name, f->name, f->target);
            f->target_model = t->index;
            if (f->type == TALLY_TYPE_BELONGS_TO)
                continue;
            if (f->inverse[0] == '\0') { /* find the only belongsTo in the target that points back */
                int found = -1;
                for (int k = 0; k < t->nfields; k++)
                    if (t->fields[k].type == TALLY_TYPE_BELONGS_TO && strcmp(t->fields[k].target, m->name) == 0) {
                        if (found >= 0)
                            return FAIL("model '%s', field '%s': model '%s' has several belongsTo fields to '%s'; "
                                        "name one with \"inverse\"", m->name, f->name, t->name, m->name);
                        found = k;
                    }
                if (found < 0)
                    return FAIL("model '%s', field '%s': model '%s' has no belongsTo field pointing to '%s'; add "
                                "one and name it with \"inverse\"", m->name, f->name, t->name, m->name);
                snprintf(f->inverse, sizeof f->inverse, "%s", t->fields[found].name);
            }
            int inv = tally_model_field(t, f->inverse, strlen(f->inverse));
            if (inv < 0 || t->fields[inv].type != TALLY_TYPE_BELONGS_TO || strcmp(t->fields[inv].target, m->name))
                return FAIL("model '%s', field '%s': inverse '%s' must be a belongsTo field of model '%s' that points "
                            "to '%s'", m->name, f->name, f->inverse, t->name, m->name);
            f->inverse_field = inv;
        }
    }
    return 0;
}

static int positive(json_t *j, int64_t *out)
{
    if (!json_is_integer(j) || json_integer_value(j) < 1)
        return -1;
    *out = json_integer_value(j);
    return 0;
}

/* "limits": {"login": {"rate": 10, "periodMs": 60000, "burst": 5}} */
static int parse_limits(json_t *jl, tally_schema *s, tally_error *err)
{
    if (!json_is_object(jl))
        return FAIL("schema: \"limits\" is an object of named limits such as {\"login\": {\"rate\": 10, "
                    "\"periodMs\": 60000, \"burst\": 5}}");
    s->limits = calloc(json_object_size(jl) + 1, sizeof *s->limits);
    const char *name;
    json_t *v;
    json_object_foreach(jl, name, v) {
        char where[100];
        snprintf(where, sizeof where, "limit '%s'", name);
        if (!tally_is_identifier(name, strlen(name)))
            return FAIL("%s: limit names must match [A-Za-z][A-Za-z0-9_]* and be at most 63 bytes", where);
        static const char *const keys[] = {"rate", "periodMs", "burst", NULL};
        if (!json_is_object(v))
            return FAIL("%s: a limit is an object with rate, periodMs and burst", where);
        if (check_keys(v, keys, where, err))
            return -TALLY_BAD_REQUEST;
        tally_limit *l = &s->limits[s->nlimits++];
        snprintf(l->name, sizeof l->name, "%s", name);
        if (positive(json_object_get(v, "rate"), &l->rate))
            return FAIL("%s: rate is required: a positive whole number of requests per period", where);
        if (positive(json_object_get(v, "periodMs"), &l->period_ms) || l->period_ms > 366LL * 86400000)
            return FAIL("%s: periodMs is required: a positive whole number of milliseconds, at most a year", where);
        l->burst = 1;
        if (json_object_get(v, "burst") && positive(json_object_get(v, "burst"), &l->burst))
            return FAIL("%s: burst is a positive whole number of requests allowed at once", where);
        if (l->rate > 1000000000 || l->burst > 1000000000)
            return FAIL("%s: rate and burst are at most 1000000000", where);
    }
    return 0;
}

/* The schema's identity: the same models and limits give the same digest,
 * whatever the file's spacing or key order. */
static void digest_of(const json_t *root, char hex[65])
{
    char *canon = tally_json_text(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!canon)
        abort();
    unsigned char md[32];
    EVP_Digest(canon, strlen(canon), md, NULL, EVP_sha256(), NULL);
    free(canon);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

int tally_schema_parse(const char *text, size_t len, tally_schema **out, tally_error *err)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return FAIL("schema is not valid JSON: %s at line %d, column %d", jerr.text, jerr.line, jerr.column);
    tally_schema *s = calloc(1, sizeof *s);
    int rc = 0;
    static const char *const keys[] = {"models", "limits", "actions", NULL};
    json_t *models = json_object_get(root, "models");
    if (!json_is_object(root)) {
        rc = FAIL("schema: the top level must be an object with \"models\"");
        goto done;
    }
    if ((rc = check_keys(root, keys, "schema", err)))
        goto done;
    if (!json_is_object(models) || json_object_size(models) == 0) {
        rc = FAIL("schema: \"models\" must be an object with at least one model");
        goto done;
    }
    s->models = calloc(json_object_size(models), sizeof *s->models);
    const char *name;
    json_t *jm;
    json_object_foreach(models, name, jm) {
        tally_model *m = &s->models[s->nmodels];
        m->index = s->nmodels++;
        if ((rc = parse_model(jm, name, m, err)))
            goto done;
    }
    rc = resolve_relations(s, err);
    if (rc == 0 && json_object_get(root, "limits"))
        rc = parse_limits(json_object_get(root, "limits"), s, err);
    if (rc == 0 && json_object_get(root, "actions"))
        rc = tally_actions_parse(json_object_get(root, "actions"), s, err);
    if (rc == 0)
        digest_of(root, s->digest);
done:
    json_decref(root);
    if (rc) {
        tally_schema_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int tally_schema_load(const char *path, tally_schema **out, tally_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "cannot read schema file %s: %m", path);
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[65536];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n > cap) {
            cap = (len + n) * 2;
            buf = realloc(buf, cap);
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    int rc = tally_schema_parse(buf ? buf : "", len, out, err);
    free(buf);
    return rc;
}

void tally_schema_free(tally_schema *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nmodels; i++) {
        tally_model *m = &s->models[i];
        for (int k = 0; k < m->nfields; k++)
            if (m->fields[k].has_default && m->fields[k].default_value.kind == TALLY_VALUE_TEXT)
                free((char *)m->fields[k].default_value.u.text.ptr);
        free(m->fields);
        free(m->column_field);
        free(m->uniques);
    }
    free(s->models);
    free(s->limits);
    tally_actions_free(s);
    free(s);
}

const tally_limit *tally_schema_limit(const tally_schema *s, const char *name, size_t len)
{
    for (int i = 0; i < s->nlimits; i++)
        if (strlen(s->limits[i].name) == len && memcmp(s->limits[i].name, name, len) == 0)
            return &s->limits[i];
    return NULL;
}

const tally_model *tally_schema_model(const tally_schema *s, const char *name, size_t len)
{
    for (int i = 0; i < s->nmodels; i++)
        if (strlen(s->models[i].name) == len && memcmp(s->models[i].name, name, len) == 0)
            return &s->models[i];
    return NULL;
}

int tally_model_field(const tally_model *m, const char *name, size_t len)
{
    for (int i = 0; i < m->nfields; i++)
        if (strlen(m->fields[i].name) == len && memcmp(m->fields[i].name, name, len) == 0)
            return i;
    return -1;
}

const char *tally_model_column_name(const tally_model *m, int c)
{
    static const char *const fixed[] = {"id", "createdAt", "updatedAt"};
    return c < TALLY_COL_FIRST_FIELD ? fixed[c] : m->fields[m->column_field[c]].name;
}

tally_type tally_model_column_type(const tally_model *m, int c)
{
    if (c == TALLY_COL_ID)
        return TALLY_TYPE_INTEGER;
    if (c < TALLY_COL_FIRST_FIELD)
        return TALLY_TYPE_DATETIME;
    return m->fields[m->column_field[c]].type;
}
