/* transaction.c — decoding transaction steps and rendering their results; see transaction.h. */
#include "api/transaction.h"

#include <stdio.h>
#include <string.h>

#include "api/decode.h"
#include "api/filter.h"
#include "api/locks.h"

/* The pseudo-model an `expect` on a count is decoded against: one integer field "count". */
static tally_field count_field = {.name = "count", .type = TALLY_TYPE_INTEGER, .column = TALLY_COL_FIRST_FIELD};
static int count_columns[] = {-1, -1, -1, 0};
static const tally_model count_model = {.name = "result", .fields = &count_field, .nfields = 1,
                                        .ncolumns = TALLY_COL_FIRST_FIELD + 1, .column_field = count_columns};

static const char *const op_names[] = {"create", "get", "find", "update", "delete", "upsert", "updateMany",
                                       "deleteMany", "checkLock", NULL};

static json_t *pick(json_t *step, const char *const *keys)
{
    json_t *o = json_object();
    for (; *keys; keys++) {
        json_t *v = json_object_get(step, *keys);
        if (v)
            json_object_set(o, *keys, v);
    }
    return o;
}

/* Refuses keys a step form does not take. */
static int check_step_keys(json_t *step, const char *op, const char *const *allowed, tally_error *err)
{
    const char *const always[] = {op, "as", "expect", NULL};
    const char *key = tally_unknown_key(step, allowed, always);
    return key ? tally_fail(err, TALLY_BAD_REQUEST, key, "a %s step takes no '%s'", op, key) : 0;
}

static int step_id(tally_plan *plan, json_t *j, tally_value *out, tally_error *err)
{
    tally_type t;
    int r = tally_decode_ref(plan, j, "id", out, &t, err);
    if (r < 0)
        return r;
    if (r == 1)
        return tally_ref_fits(t, TALLY_TYPE_INTEGER) ? 0
                                                     : tally_fail(err, TALLY_BAD_REQUEST, "id", "id must refer to an integer");
    if (!json_is_integer(j) || json_integer_value(j) < 1)
        return tally_fail(err, TALLY_BAD_REQUEST, "id", "id is a positive integer or {\"$ref\": \"name.id\"}");
    *out = tally_value_int(json_integer_value(j));
    return 0;
}

/* Adds a decoded step to the transaction: its name becomes visible to later steps only. */
static int register_step(tally_plan *plan, json_t *step, int first, int answer, tally_error *err)
{
    json_t *as = json_object_get(step, "as");
    if (as && (!json_is_string(as) || !tally_is_identifier(json_string_value(as), json_string_length(as))))
        return tally_fail(err, TALLY_BAD_REQUEST, "as", "as is a name such as \"p\" ([A-Za-z][A-Za-z0-9_]*)");
    for (int i = 0; as && i < plan->ntxn; i++)
        if (plan->txn[i].as && strcmp(plan->txn[i].as, json_string_value(as)) == 0)
            return tally_fail(err, TALLY_BAD_REQUEST, "as", "the name '%s' is already used by step %d",
                              json_string_value(as), i);
    if (plan->ntxn == plan->txn_cap) {
        plan->txn_cap = plan->txn_cap ? plan->txn_cap * 2 : 8;
        plan->txn = tally_arena_grow(&plan->arena, plan->txn, (size_t)plan->ntxn, (size_t)plan->txn_cap,
                                     sizeof *plan->txn);
    }
    tally_txn_step *t = &plan->txn[plan->ntxn];
    memset(t, 0, sizeof *t);
    t->as = as ? tally_arena_strndup(&plan->arena, json_string_value(as), json_string_length(as)) : NULL;
    t->first = first;
    t->answer = answer;
    json_t *expect = json_object_get(step, "expect");
    if (expect) {
        const tally_step *s = &plan->steps[answer];
        t->expect_on_count = s->op == TALLY_OP_UPDATE_MANY || s->op == TALLY_OP_DELETE_MANY;
        if (s->op == TALLY_OP_LIST || s->op == TALLY_OP_DELETE || !s->model)
            return tally_fail(err, TALLY_BAD_REQUEST, "expect", "expect applies to steps that return a record or a count");
        if (tally_decode_filter(plan, t->expect_on_count ? &count_model : s->model, expect, "expect", &t->expect, err))
            return -(int)err->code;
    }
    plan->ntxn++;
    return 0;
}

int tally_decode_txn_step(tally_plan *plan, json_t *step, const char *path, tally_error *err)
{
    (void)path;
    if (!json_is_object(step))
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "a step is an object such as {\"create\": \"post\", \"data\": {...}}");
    const char *op = NULL;
    /* An upsert step's "create" and "update" are its parts, not operations. */
    bool upsert = json_object_get(step, "upsert") != NULL;
    for (const char *const *o = op_names; *o; o++)
        if (json_object_get(step, *o) && !(upsert && (strcmp(*o, "create") == 0 || strcmp(*o, "update") == 0))) {
            if (op)
                return tally_fail(err, TALLY_BAD_REQUEST, *o, "a step does one thing: it has both '%s' and '%s'", op, *o);
            op = *o;
        }
    if (!op)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL,
                          "a step names its operation: create, get, find, update, delete, upsert, updateMany, "
                          "deleteMany or checkLock");
    json_t *jm = json_object_get(step, op);
    if (strcmp(op, "checkLock") == 0) { /* fenced writes inside Tally: fails unless the token holds the lock now */
        static const char *const keys[] = {"token", NULL};
        if (!json_is_string(jm))
            return tally_fail(err, TALLY_BAD_REQUEST, "checkLock", "checkLock names the lock: {\"checkLock\": name, \"token\": t}");
        if (check_step_keys(step, op, keys, err))
            return -(int)err->code;
        json_t *body = pick(step, keys);
        int first = plan->nsteps;
        int answer = tally_decode_lock(plan, json_string_value(jm), json_string_length(jm), "check", body, err);
        json_decref(body);
        if (answer < 0)
            return answer;
        return register_step(plan, step, first, answer, err);
    }
    const tally_model *m = json_is_string(jm) ? tally_schema_model(plan->schema, json_string_value(jm),
                                                                    json_string_length(jm))
                                              : NULL;
    if (!m)
        return tally_fail(err, TALLY_NOT_FOUND, op, "%s names a model of the schema; there is no model '%s'", op,
                          json_is_string(jm) ? json_string_value(jm) : "(not a string)");
    int first = plan->nsteps, answer = -1;
    tally_value id;
    json_t *body = NULL;
    if (strcmp(op, "create") == 0) {
        static const char *const keys[] = {"data", NULL};
        if (check_step_keys(step, op, keys, err))
            return -(int)err->code;
        json_t *data = json_object_get(step, "data");
        if (!data)
            return tally_fail(err, TALLY_BAD_REQUEST, "data", "a create step needs \"data\": the record's fields");
        answer = tally_decode_create(plan, m, data, "data", err);
    } else if (strcmp(op, "get") == 0 || strcmp(op, "delete") == 0) {
        static const char *const keys[] = {"id", NULL};
        if (check_step_keys(step, op, keys, err) || step_id(plan, json_object_get(step, "id"), &id, err))
            return -(int)err->code;
        tally_step *s = tally_plan_add_step(plan, op[0] == 'g' ? TALLY_OP_GET : TALLY_OP_DELETE, m);
        s->id = id;
        answer = plan->nsteps - 1;
    } else if (strcmp(op, "find") == 0) {
        static const char *const keys[] = {"filter", "sort", "first", "after", NULL};
        if (check_step_keys(step, op, keys, err))
            return -(int)err->code;
        tally_step *s = tally_plan_add_step(plan, TALLY_OP_LIST, m);
        answer = plan->nsteps - 1;
        if (tally_decode_find(plan, s, json_object_get(step, "filter"), json_object_get(step, "sort"),
                              json_object_get(step, "first"), json_object_get(step, "after"), err))
            return -(int)err->code;
    } else if (strcmp(op, "update") == 0) {
        static const char *const keys[] = {"id", "data", "where", NULL};
        if (check_step_keys(step, op, keys, err) || step_id(plan, json_object_get(step, "id"), &id, err))
            return -(int)err->code;
        json_t *data = json_object_get(step, "data");
        body = data ? json_incref(data) : json_object(); /* an update may be a guard alone */
        answer = tally_decode_update(plan, m, id, body, "data", json_object_get(step, "where"), "where", err);
    } else {
        static const char *const upsert_keys[] = {"on", "create", "update", NULL};
        static const char *const update_many_keys[] = {"filter", "set", "_atomics", NULL};
        static const char *const delete_many_keys[] = {"filter", NULL};
        const char *const *keys = op[0] == 'u' && op[1] == 'p' && op[2] == 's' ? upsert_keys
                                  : strcmp(op, "updateMany") == 0              ? update_many_keys
                                                                               : delete_many_keys;
        if (check_step_keys(step, op, keys, err))
            return -(int)err->code;
        body = pick(step, keys);
        answer = keys == upsert_keys        ? tally_decode_upsert(plan, m, body, err)
                 : keys == update_many_keys ? tally_decode_update_many(plan, m, body, err)
                                            : tally_decode_delete_many(plan, m, body, err);
    }
    json_decref(body);
    if (answer < 0)
        return answer;

    return register_step(plan, step, first, answer, err);
}

int tally_decode_transaction(tally_plan *plan, json_t *body, int max_steps, tally_error *err)
{
    json_t *steps = json_is_object(body) ? json_object_get(body, "steps") : NULL;
    if (!json_is_array(steps) || (json_object_size(body) != 1))
        return tally_fail(err, TALLY_BAD_REQUEST, "steps", "a transaction is {\"steps\": [ ... ]}");
    size_t n = json_array_size(steps);
    if (n == 0)
        return tally_fail(err, TALLY_BAD_REQUEST, "steps", "a transaction needs at least one step");
    if (n > (size_t)max_steps)
        return tally_fail(err, TALLY_BAD_REQUEST, "steps",
                          "a transaction has at most %d steps (--max-txn-steps); this one has %zu", max_steps, n);
    plan->txn = tally_arena_alloc(&plan->arena, n * sizeof *plan->txn);
    plan->txn_cap = (int)n;
    plan->ntxn = 0;
    size_t i;
    json_t *step;
    json_array_foreach(steps, i, step) {
        if (tally_decode_txn_step(plan, step, "", err)) {
            err->step = (int)i;
            json_t *as = json_is_object(step) ? json_object_get(step, "as") : NULL;
            snprintf(err->step_as, sizeof err->step_as, "%s", json_is_string(as) ? json_string_value(as) : "");
            return -(int)err->code;
        }
    }
    plan->answer_step = plan->nsteps - 1;
    return 0;
}
