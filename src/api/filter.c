/* filter.c — filters, sort specs and cursors from JSON; see filter.h. */
#include "api/filter.h"

#include <stdlib.h>
#include <string.h>

#include "core/base64url.h"
#include "api/decode.h"
#include "core/datetime.h"
#include "core/json_arena.h"

typedef struct filter_ctx {
    tally_plan *plan;
    const tally_model *m;
    tally_error *err;
    int nvalues;
} filter_ctx;

static const struct {
    const char *name;
    tally_cmp_op op;
} ops[] = {
    {"equals", TALLY_CMP_EQ},       {"notEquals", TALLY_CMP_NE},         {"lessThan", TALLY_CMP_LT},
    {"lessThanOrEqual", TALLY_CMP_LE}, {"greaterThan", TALLY_CMP_GT}, {"greaterThanOrEqual", TALLY_CMP_GE},
    {"in", TALLY_CMP_IN},           {"notIn", TALLY_CMP_NOT_IN},         {"isSet", TALLY_CMP_IS_SET},
};

static const char *sub(filter_ctx *c, const char *path, const char *name)
{
    return tally_arena_printf(&c->plan->arena, "%s%s%s", path, path[0] ? "." : "", name);
}

static int bad(filter_ctx *c, const char *path, const char *msg)
{
    return tally_fail(c->err, TALLY_BAD_REQUEST, path, "%s", msg);
}

/* Column by name, including id, createdAt and updatedAt; -1 if none. */
static int column_of(const tally_model *m, const char *name)
{
    for (int col = 0; col < TALLY_COL_FIRST_FIELD; col++)
        if (strcmp(name, tally_model_column_name(m, col)) == 0)
            return col;
    int fi = tally_model_field(m, name, strlen(name));
    return fi >= 0 ? m->fields[fi].column : -1;
}

/* Compared as numbers with one another: a belongsTo holds the linked record's id. */
static bool numeric(tally_type t) { return t == TALLY_TYPE_INTEGER || t == TALLY_TYPE_FLOAT || t == TALLY_TYPE_BELONGS_TO; }

static const char *a_or_an(const char *word) { return strchr("aeiou", word[0]) ? "an" : "a"; }

/* A comparison value for a column of type t (or a transaction reference to one). */
static int filter_value(filter_ctx *c, tally_type t, json_t *v, const char *path, tally_value *out)
{
    tally_type from;
    int r = tally_decode_ref(c->plan, v, path, out, &from, c->err);
    if (r < 0)
        return r;
    if (r == 1)
        return tally_ref_fits(from, t) ? 0 : bad(c, path, "the reference gives a value of another type than the field's");
    switch (t) {
    case TALLY_TYPE_INTEGER:
    case TALLY_TYPE_FLOAT:
        if (json_is_integer(v))
            *out = tally_value_int(json_integer_value(v));
        else if (json_is_real(v))
            *out = tally_value_float(json_real_value(v));
        else
            return bad(c, path, "expected a number here");
        return 0;
    case TALLY_TYPE_BELONGS_TO:
        if (!json_is_integer(v))
            return bad(c, path, "a link is compared by the linked record's id: expected an integer");
        *out = tally_value_int(json_integer_value(v));
        return 0;
    case TALLY_TYPE_BOOLEAN:
        if (!json_is_boolean(v))
            return bad(c, path, "expected true or false here");
        *out = tally_value_int(json_is_true(v));
        return 0;
    case TALLY_TYPE_STRING:
        if (!json_is_string(v))
            return bad(c, path, "expected a string here");
        *out = tally_value_text(tally_arena_strndup(&c->plan->arena, json_string_value(v), json_string_length(v)),
                                json_string_length(v));
        return 0;
    case TALLY_TYPE_DATETIME: {
        int64_t ms;
        if (!json_is_string(v) || tally_datetime_parse(json_string_value(v), json_string_length(v), &ms))
            return bad(c, path, "expected an RFC 3339 date-time string such as \"2024-01-31T12:00:00Z\"");
        *out = tally_value_int(ms);
        return 0;
    }
    default:
        return bad(c, path, "this field cannot be compared; filter it with isSet");
    }
}

/* One node for n conditions that must all hold: the node itself when n is 1. */
static void and_of(tally_filter *nodes, int n, tally_filter *out)
{
    if (n == 1) {
        *out = nodes[0];
        return;
    }
    out->kind = TALLY_FILTER_AND;
    out->children = nodes;
    out->nchildren = n;
}

/* {"op": value, ...} for one column: one CMP node, or an AND of several. */
static int field_conditions(filter_ctx *c, int column, json_t *conds, const char *path, tally_filter *out)
{
    const tally_model *m = c->m;
    tally_type t = tally_model_column_type(m, column);
    if (!json_is_object(conds) || json_object_size(conds) == 0)
        return bad(c, path, "a field's condition is an object such as {\"greaterThan\": 5}");
    tally_filter *nodes = tally_arena_zalloc(&c->plan->arena, json_object_size(conds) * sizeof *nodes);
    int n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(conds, key, v) {
        const char *opath = sub(c, path, key);
        size_t k = 0;
        while (k < sizeof ops / sizeof ops[0] && strcmp(ops[k].name, key) != 0)
            k++;
        if (k == sizeof ops / sizeof ops[0])
            return bad(c, opath, "unknown operator: use equals, notEquals, lessThan, lessThanOrEqual, greaterThan, "
                                 "greaterThanOrEqual, in, notIn or isSet");
        tally_filter *f = &nodes[n++];
        f->kind = TALLY_FILTER_CMP;
        f->column = column;
        f->op = ops[k].op;
        f->other_column = -1;
        if (f->op == TALLY_CMP_IS_SET) {
            if (!json_is_boolean(v))
                return bad(c, opath, "isSet takes true or false");
            f->value = tally_value_int(json_is_true(v));
            continue;
        }
        if (t == TALLY_TYPE_JSON && !(json_is_null(v) && (f->op == TALLY_CMP_EQ || f->op == TALLY_CMP_NE)))
            return bad(c, opath, "a json field can only be filtered with isSet or equals/notEquals null");
        if (f->op == TALLY_CMP_IN || f->op == TALLY_CMP_NOT_IN) {
            if (!json_is_array(v))
                return bad(c, opath, "in and notIn take a list of values");
            f->nvalues = (int)json_array_size(v);
            if ((c->nvalues += f->nvalues) > TALLY_FILTER_MAX_VALUES)
                return bad(c, opath, "the filter holds too many values (at most 10000 in all)");
            f->values = tally_arena_alloc(&c->plan->arena, (size_t)(f->nvalues ? f->nvalues : 1) * sizeof *f->values);
            size_t i;
            json_t *item;
            json_array_foreach(v, i, item) {
                const char *ipath = tally_arena_printf(&c->plan->arena, "%s[%zu]", opath, i);
                if (json_is_null(item))
                    return bad(c, ipath, "null cannot be in a list; use isSet to match unset fields");
                if (filter_value(c, t, item, ipath, &f->values[i]))
                    return -TALLY_BAD_REQUEST;
            }
            continue;
        }
        if (json_is_object(v) && !json_object_get(v, "$ref")) { /* {"field": "other"}: compare two fields of the row */
            json_t *other = json_object_get(v, "field");
            int oc = json_is_string(other) && json_object_size(v) == 1 ? column_of(m, json_string_value(other)) : -1;
            if (!json_is_string(other) || json_object_size(v) != 1)
                return bad(c, opath, "compare with another field as {\"field\": \"name\"}");
            if (oc < 0)
                return tally_fail(c->err, TALLY_BAD_REQUEST, sub(c, opath, "field"), "%s has no field '%s'", m->name,
                                  json_string_value(other));
            tally_type ot = tally_model_column_type(m, oc);
            if (!(numeric(t) && numeric(ot)) && t != ot)
                return tally_fail(c->err, TALLY_BAD_REQUEST, sub(c, opath, "field"),
                                  "cannot compare %s %s field with %s %s field", a_or_an(tally_type_name(t)),
                                  tally_type_name(t), a_or_an(tally_type_name(ot)), tally_type_name(ot));
            if (t == TALLY_TYPE_JSON)
                return bad(c, opath, "json fields cannot be compared");
            f->other_column = oc;
            continue;
        }
        if (json_is_null(v)) {
            if (f->op != TALLY_CMP_EQ && f->op != TALLY_CMP_NE)
                return bad(c, opath, "only equals and notEquals take null; use isSet");
            f->value = tally_value_null();
            continue;
        }
        if (++c->nvalues > TALLY_FILTER_MAX_VALUES)
            return bad(c, opath, "the filter holds too many values (at most 10000 in all)");
        if (filter_value(c, t, v, opath, &f->value))
            return -TALLY_BAD_REQUEST;
    }
    and_of(nodes, n, out);
    return 0;
}

static int decode_node(filter_ctx *c, json_t *j, const char *path, int depth, tally_filter *out)
{
    if (depth > TALLY_FILTER_MAX_DEPTH)
        return bad(c, path, "the filter nests deeper than 32 levels; flatten it");
    if (!json_is_object(j))
        return bad(c, path, "a filter is an object such as {\"stock\": {\"greaterThan\": 0}}");
    size_t n = json_object_size(j);
    if (n == 0) {
        out->kind = TALLY_FILTER_TRUE;
        return 0;
    }
    tally_filter *parts = tally_arena_zalloc(&c->plan->arena, n * sizeof *parts);
    int np = 0;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        const char *kpath = sub(c, path, key);
        tally_filter *f = &parts[np++];
        if (strcmp(key, "AND") == 0 || strcmp(key, "OR") == 0) {
            if (!json_is_array(v))
                return bad(c, kpath, "AND and OR take a list of filters");
            f->kind = key[0] == 'A' ? TALLY_FILTER_AND : TALLY_FILTER_OR;
            f->nchildren = (int)json_array_size(v);
            f->children = tally_arena_zalloc(&c->plan->arena, (size_t)(f->nchildren ? f->nchildren : 1) *
                                                                  sizeof *f->children);
            size_t i;
            json_t *item;
            json_array_foreach(v, i, item) {
                const char *ipath = tally_arena_printf(&c->plan->arena, "%s[%zu]", kpath, i);
                if (decode_node(c, item, ipath, depth + 1, &f->children[i]))
                    return -TALLY_BAD_REQUEST;
            }
        } else if (strcmp(key, "NOT") == 0) {
            f->kind = TALLY_FILTER_NOT;
            f->nchildren = 1;
            f->children = tally_arena_zalloc(&c->plan->arena, sizeof *f->children);
            if (decode_node(c, v, kpath, depth + 1, f->children))
                return -TALLY_BAD_REQUEST;
        } else {
            int column = column_of(c->m, key);
            if (column < 0)
                return tally_fail(c->err, TALLY_BAD_REQUEST, kpath,
                                  "%s has no field '%s' to filter on (AND, OR and NOT are upper case)", c->m->name, key);
            if (field_conditions(c, column, v, kpath, f))
                return -TALLY_BAD_REQUEST;
        }
    }
    and_of(parts, np, out);
    return 0;
}

int tally_decode_filter(tally_plan *plan, const tally_model *m, json_t *j, const char *path,
                        const tally_filter **out, tally_error *err)
{
    filter_ctx c = {.plan = plan, .m = m, .err = err};
    tally_filter *f = tally_arena_zalloc(&plan->arena, sizeof *f);
    if (decode_node(&c, j, path, 1, f))
        return -TALLY_BAD_REQUEST;
    *out = f;
    return 0;
}

/* ---- sort --------------------------------------------------------------------- */

static int sort_key(tally_plan *plan, tally_step *s, json_t *j, const char *path, tally_error *err)
{
    const char *key;
    json_t *v;
    if (!json_is_object(j) || json_object_size(j) != 1)
        return tally_fail(err, TALLY_BAD_REQUEST, path,
                          "a sort key is {\"field\": \"ascending\"} or {\"field\": \"descending\"}");
    json_object_foreach(j, key, v) {
        int column = column_of(s->model, key);
        const char *kpath = tally_arena_printf(&plan->arena, "%s.%s", path, key);
        if (column < 0)
            return tally_fail(err, TALLY_BAD_REQUEST, kpath, "%s has no field '%s' to sort by", s->model->name, key);
        if (tally_model_column_type(s->model, column) == TALLY_TYPE_JSON)
            return tally_fail(err, TALLY_BAD_REQUEST, kpath, "a json field cannot be sorted by");
        const char *dir = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(dir, "ascending") && strcmp(dir, "descending"))
            return tally_fail(err, TALLY_BAD_REQUEST, kpath, "the direction is \"ascending\" or \"descending\"");
        for (int i = 0; i < s->nsort; i++)
            if (s->sort[i].column == column)
                return tally_fail(err, TALLY_BAD_REQUEST, kpath, "%s appears twice in the sort", key);
        s->sort[s->nsort++] = (tally_sort_key){column, dir[0] == 'd'};
    }
    return 0;
}

int tally_decode_sort(tally_plan *plan, tally_step *s, json_t *j, tally_error *err)
{
    size_t n = json_is_array(j) ? json_array_size(j) : 1;
    if (n > 16)
        return tally_fail(err, TALLY_BAD_REQUEST, "sort", "sort by at most 16 fields");
    s->sort = tally_arena_alloc(&plan->arena, (n + 1) * sizeof *s->sort);
    s->nsort = 0;
    if (json_is_array(j)) {
        size_t i;
        json_t *item;
        json_array_foreach(j, i, item) {
            if (sort_key(plan, s, item, tally_arena_printf(&plan->arena, "sort[%zu]", i), err))
                return -TALLY_BAD_REQUEST;
        }
    } else if (j && sort_key(plan, s, j, "sort", err)) {
        return -TALLY_BAD_REQUEST;
    }
    /* id breaks ties, so the order is total and paging is exact. */
    bool has_id = false;
    for (int i = 0; i < s->nsort; i++)
        if (s->sort[i].column == TALLY_COL_ID) {
            has_id = true;
            s->nsort = i + 1; /* keys after id never matter */
        }
    if (!has_id)
        s->sort[s->nsort++] = (tally_sort_key){TALLY_COL_ID, false};
    return 0;
}

/* ---- cursors ------------------------------------------------------------------ */

/* The cursor is base64url of JSON {"k": ["stock-", "id+"], "v": [values]}. */
char *tally_cursor_encode(tally_arena *arena, const tally_step *s, const tally_record *last)
{
    json_t *k = json_array(), *v = json_array();
    for (int i = 0; i < s->nsort; i++) {
        int col = s->sort[i].column;
        json_array_append_new(k, json_string(tally_arena_printf(arena, "%s%c", tally_model_column_name(s->model, col),
                                                                s->sort[i].descending ? '-' : '+')));
        const tally_value *x = &last->cols[col];
        json_array_append_new(v, x->kind == TALLY_VALUE_INT     ? json_integer(x->u.i)
                                 : x->kind == TALLY_VALUE_FLOAT ? json_real(x->u.f)
                                 : x->kind == TALLY_VALUE_TEXT  ? json_stringn(x->u.text.ptr, x->u.text.len)
                                                                : json_null());
    }
    json_t *root = json_pack("{s:o,s:o}", "k", k, "v", v);
    char *text = tally_json_text(root, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(root);
    size_t n = strlen(text);
    char *out = tally_arena_alloc(arena, tally_base64url_encoded_len(n) + 1);
    tally_base64url_encode(text, n, out);
    free(text);
    return out;
}

int tally_cursor_decode(tally_plan *plan, tally_step *s, const char *text, size_t len, tally_error *err)
{
    static const char *const msg = "after must be the \"next\" cursor of an earlier page with the same sort, unchanged";
    if (len > 65536)
        return tally_fail(err, TALLY_BAD_REQUEST, "after", "%s", msg);
    char *raw = malloc(len + 1);
    ptrdiff_t n = tally_base64url_decode(text, len, raw);
    json_t *root = n > 0 ? json_loadb(raw, (size_t)n, 0, NULL) : NULL;
    free(raw);
    json_t *k = json_object_get(root, "k"), *v = json_object_get(root, "v");
    int rc = 0;
    if (!json_is_array(k) || !json_is_array(v) || json_array_size(k) != (size_t)s->nsort ||
        json_array_size(v) != (size_t)s->nsort) {
        rc = tally_fail(err, TALLY_BAD_REQUEST, "after", "%s", msg);
        goto done;
    }
    s->after = tally_arena_alloc(&plan->arena, (size_t)s->nsort * sizeof *s->after);
    for (int i = 0; i < s->nsort; i++) {
        int col = s->sort[i].column;
        const char *name = json_string_value(json_array_get(k, (size_t)i));
        size_t nl = strlen(tally_model_column_name(s->model, col));
        json_t *x = json_array_get(v, (size_t)i);
        if (!name || strlen(name) != nl + 1 || strncmp(name, tally_model_column_name(s->model, col), nl) ||
            name[nl] != (s->sort[i].descending ? '-' : '+') || (col == TALLY_COL_ID && !json_is_integer(x))) {
            rc = tally_fail(err, TALLY_BAD_REQUEST, "after", "%s", msg);
            goto done;
        }
        if (json_is_integer(x))
            s->after[i] = tally_value_int(json_integer_value(x));
        else if (json_is_real(x))
            s->after[i] = tally_value_float(json_real_value(x));
        else if (json_is_string(x))
            s->after[i] = tally_value_text(tally_arena_strndup(&plan->arena, json_string_value(x), json_string_length(x)),
                                           json_string_length(x));
        else if (json_is_null(x))
            s->after[i] = tally_value_null();
        else {
            rc = tally_fail(err, TALLY_BAD_REQUEST, "after", "%s", msg);
            goto done;
        }
    }
done:
    json_decref(root);
    return rc;
}

int tally_decode_find(tally_plan *plan, tally_step *s, json_t *filter, json_t *sort, json_t *first, json_t *after,
                      tally_error *err)
{
    if (filter && !json_is_null(filter) && tally_decode_filter(plan, s->model, filter, "filter", &s->where, err))
        return -TALLY_BAD_REQUEST;
    if (tally_decode_sort(plan, s, json_is_null(sort) ? NULL : sort, err))
        return -TALLY_BAD_REQUEST;
    s->first = TALLY_LIST_DEFAULT;
    if (first && !json_is_null(first)) {
        if (!json_is_integer(first) || json_integer_value(first) < 1 || json_integer_value(first) > TALLY_LIST_MAX)
            return tally_fail(err, TALLY_BAD_REQUEST, "first", "first is the page size: a whole number from 1 to 1000");
        s->first = (int)json_integer_value(first);
    }
    if (after && !json_is_null(after)) {
        if (!json_is_string(after))
            return tally_fail(err, TALLY_BAD_REQUEST, "after", "after is the \"next\" cursor of an earlier page");
        return tally_cursor_decode(plan, s, json_string_value(after), json_string_length(after), err);
    }
    return 0;
}
