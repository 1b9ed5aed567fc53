/* sql_util.h — what the store/sql suites (test_sql, test_sql_db) share: the
 * shop schema and a "pets" schema with every type and option, parsed by the
 * group setup; the values a builder bound checked against a short spec; and
 * listing and create/update steps built with the decoder from JSON written
 * with ' for ".  Include it after <cmocka.h>; all functions are static
 * inline. */
#ifndef TALLY_TEST_SQL_UTIL_H
#define TALLY_TEST_SQL_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/decode.h"
#include "api/filter.h"
#include "core/schema.h"
#include "store/sql.h"
#include "shop_json.h"
#include "test_util.h"

static const char PETS_JSON[] =
    "{\"models\": {"
    " \"owner\": {\"fields\": {\"name\": {\"type\": \"string\"},"
    "   \"pets\": {\"type\": \"hasMany\", \"model\": \"pet\", \"inverse\": \"keeper\"}}},"
    " \"pet\": {\"fields\": {"
    "   \"keeper\": {\"type\": \"belongsTo\", \"model\": \"owner\", \"onDelete\": \"cascade\"},"
    "   \"vet\": {\"type\": \"belongsTo\", \"model\": \"owner\", \"onDelete\": \"setNull\"},"
    "   \"rescuer\": {\"type\": \"belongsTo\", \"model\": \"owner\", \"required\": true},"
    "   \"weight\": {\"type\": \"float\", \"min\": -1.5, \"max\": 2.25},"
    "   \"ratio\": {\"type\": \"float\", \"max\": 0.1},"
    "   \"age\": {\"type\": \"integer\", \"min\": -3, \"max\": 30, \"required\": true, \"default\": 0},"
    "   \"good\": {\"type\": \"boolean\", \"default\": true},"
    "   \"born\": {\"type\": \"datetime\"},"
    "   \"extra\": {\"type\": \"json\"},"
    "   \"nick\": {\"type\": \"string\", \"unique\": true}},"
    "  \"unique\": [[\"rescuer\", \"nick\"]]}"
    "}}";

static tally_schema *shop, *pets;

static inline int setup(void **state)
{
    (void)state;
    if (parse_schema(SHOP_JSON, &shop) != 0 || parse_schema(PETS_JSON, &pets) != 0)
        return -1;
    return 0;
}

static inline int teardown(void **state)
{
    (void)state;
    tally_schema_free(shop);
    tally_schema_free(pets);
    return 0;
}

/*
 * The values b holds, in parameter order, are exactly those of spec:
 * space-separated "i:<int>", "f:<double>", "t:<text without spaces>", "n"
 * (NULL) or "r:<step>.<column>" (a REF).  Frees b.
 */
static inline void assert_binds(tally_binds *b, const char *spec)
{
    char *copy = strdup(spec), *save = NULL;
    int i = 0;
    for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save), i++) {
        if (i >= b->n)
            fail_msg("%d values bound, spec has more: %s", b->n, spec);
        const tally_value *v = &b->v[i];
        bool ok = false;
        switch (tok[0]) {
        case 'i': ok = v->kind == TALLY_VALUE_INT && v->u.i == strtoll(tok + 2, NULL, 10); break;
        case 'f': ok = v->kind == TALLY_VALUE_FLOAT && v->u.f == strtod(tok + 2, NULL); break;
        case 't':
            ok = v->kind == TALLY_VALUE_TEXT && v->u.text.len == strlen(tok + 2) &&
                 memcmp(v->u.text.ptr, tok + 2, v->u.text.len) == 0;
            break;
        case 'n': ok = v->kind == TALLY_VALUE_NULL; break;
        case 'r': {
            int step = -9, column = -9;
            sscanf(tok + 2, "%d.%d", &step, &column);
            ok = v->kind == TALLY_VALUE_REF && v->u.ref.step == step && v->u.ref.column == column;
            break;
        }
        default: fail_msg("bad spec token %s", tok);
        }
        if (!ok)
            fail_msg("value ?%d (kind %d) is not %s (spec: %s)", i + 1, v->kind, tok, spec);
    }
    if (i != b->n)
        fail_msg("%d values bound, spec has %d: %s", b->n, i, spec);
    free(copy);
    tally_binds_free(b);
}

/* A listing step of m: default page size, sort spec sq ('-quoted, NULL for id only). */
static inline tally_step *list_step(tally_plan *plan, const tally_model *m, const char *sq)
{
    tally_step *s = tally_plan_add_step(plan, TALLY_OP_LIST, m);
    json_t *sort = sq ? json_sq(sq, 0) : NULL;
    tally_error err;
    if (tally_decode_find(plan, s, NULL, sort, NULL, NULL, &err))
        fail_msg("listing refused: %s", err.message);
    json_decref(sort);
    return s;
}

/* Builds a plan from JSON ('-quoted) with the decoder; returns the answer step. */
static inline tally_plan *decode(const tally_schema *s, const char *model, int64_t id, const char *sq)
{
    json_t *body = json_sq(sq, 0);
    tally_plan *plan = tally_plan_new(s);
    tally_error err;
    int rc = id ? tally_decode_patch(plan, M(s, model), tally_value_int(id), body, &err)
                : tally_decode_create(plan, M(s, model), body, "", &err);
    json_decref(body);
    if (rc < 0)
        fail_msg("decode failed: %s", err.message);
    plan->answer_step = rc;
    return plan;
}

#endif
