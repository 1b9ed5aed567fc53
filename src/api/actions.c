/* actions.c — named actions: the start-up check and each call's plan; see actions.h. */
#include "api/actions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/transaction.h"
#include "core/datetime.h"

static const char *type_word(tally_type t)
{
    switch (t) {
    case TALLY_TYPE_INTEGER: return "a whole number";
    case TALLY_TYPE_FLOAT: return "a number";
    case TALLY_TYPE_BOOLEAN: return "true or false";
    case TALLY_TYPE_STRING: return "a string";
    case TALLY_TYPE_DATETIME: return "an RFC 3339 date-time string";
    default: return "any JSON value";
    }
}

static const tally_action_param *find_param(const tally_action *a, const char *name)
{
    for (int i = 0; i < a->nparams; i++)
        if (strcmp(a->params[i].name, name) == 0)
            return &a->params[i];
    return NULL;
}

/* {"$param": "name"} and nothing else: the param's name, else NULL. */
static const char *param_ref(json_t *v)
{
    if (!json_is_object(v) || json_object_size(v) != 1)
        return NULL;
    json_t *n = json_object_get(v, "$param");
    return n ? (json_is_string(n) ? json_string_value(n) : "") : NULL;
}

/* A copy of v with every {"$param": p} replaced by values[p] (null when not
 * given); NULL with *unknown set when one names no param of a. */
static json_t *fill(json_t *v, const tally_action *a, json_t *values, const char **unknown)
{
    const char *p = param_ref(v);
    if (p) {
        if (!find_param(a, p)) {
            *unknown = p;
            return NULL;
        }
        json_t *given = json_object_get(values, p);
        return given ? json_incref(given) : json_null();
    }
    if (json_is_object(v)) {
        json_t *out = json_object();
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            json_t *y = fill(x, a, values, unknown);
            if (!y) {
                json_decref(out);
                return NULL;
            }
            json_object_set_new(out, k, y);
        }
        return out;
    }
    if (json_is_array(v)) {
        json_t *out = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            json_t *y = fill(x, a, values, unknown);
            if (!y) {
                json_decref(out);
                return NULL;
            }
            json_array_append_new(out, y);
        }
        return out;
    }
    return json_incref(v);
}

/* The steps with values in place, decoded into a new plan. */
static int decode(const tally_schema *schema, const tally_action *a, json_t *values, int max_steps, tally_plan **out,
                  tally_error *err)
{
    json_t *steps = json_loads(a->steps, 0, NULL);
    if (!steps)
        abort(); /* written by the schema's parser */
    const char *unknown = NULL;
    size_t i;
    json_t *step;
    json_t *filled = json_array();
    json_array_foreach(steps, i, step) {
        json_t *f = fill(step, a, values, &unknown);
        if (!f) { /* unknown points into steps: the message first */
            tally_fail(err, TALLY_BAD_REQUEST, NULL, "{\"$param\": \"%s\"} names no param of the action", unknown);
            err->step = (int)i;
            json_decref(filled);
            json_decref(steps);
            return -TALLY_BAD_REQUEST;
        }
        json_array_append_new(filled, f);
    }
    json_decref(steps);
    json_t *body = json_pack("{s:o}", "steps", filled);
    tally_plan *plan = tally_plan_new(schema);
    int rc = tally_decode_transaction(plan, body, max_steps, err);
    json_decref(body);
    if (rc) {
        tally_plan_free(plan);
        return rc;
    }
    plan->writes = true; /* reads in it see its writes: all of it runs on the writer, as a transaction */
    *out = plan;
    return 0;
}

static json_t *sample(tally_type t)
{
    switch (t) {
    case TALLY_TYPE_INTEGER: return json_integer(1);
    case TALLY_TYPE_FLOAT: return json_real(1.5);
    case TALLY_TYPE_BOOLEAN: return json_true();
    case TALLY_TYPE_STRING: return json_string("x");
    case TALLY_TYPE_DATETIME: return json_string("2000-01-01T00:00:00.000Z");
    default: return json_object();
    }
}

int tally_actions_check(const tally_schema *schema, tally_error *err)
{
    for (int i = 0; i < schema->nactions; i++) {
        const tally_action *a = &schema->actions[i];
        json_t *values = json_object();
        for (int k = 0; k < a->nparams; k++)
            json_object_set_new(values, a->params[k].name, sample(a->params[k].type));
        tally_plan *plan = NULL;
        tally_error why;
        tally_error_clear(&why);
        why.step = -1;
        int rc = decode(schema, a, values, TALLY_TXN_DEFAULT_MAX_STEPS, &plan, &why);
        json_decref(values);
        tally_plan_free(plan);
        if (rc) {
            if (why.step >= 0)
                return tally_fail(err, TALLY_BAD_REQUEST, NULL, "action '%s', step %d: %s%s%s%s", a->name, why.step,
                                  why.message, why.path[0] ? " (at " : "", why.path, why.path[0] ? ")" : "");
            return tally_fail(err, TALLY_BAD_REQUEST, NULL, "action '%s': %s", a->name, why.message);
        }
    }
    return 0;
}

/* A call's params: 0, or a 422 VALIDATION naming the param. */
static int check_params(const tally_action *a, json_t *params, tally_error *err)
{
    if (params && !json_is_object(params))
        return tally_fail(err, TALLY_VALIDATION, NULL, "the body of an action is an object of its params");
    const char *k;
    json_t *v;
    json_object_foreach(params, k, v) {
        if (!find_param(a, k)) {
            char names[512] = "";
            for (int i = 0; i < a->nparams; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", a->params[i].name);
            return tally_fail(err, TALLY_VALIDATION, k, "action '%s' has no param '%s'; its params are: %s", a->name, k,
                              a->nparams ? names : "(none)");
        }
    }
    for (int i = 0; i < a->nparams; i++) {
        const tally_action_param *p = &a->params[i];
        v = params ? json_object_get(params, p->name) : NULL;
        if (!v || json_is_null(v)) {
            if (p->required)
                return tally_fail(err, TALLY_VALIDATION, p->name, "param '%s' of action '%s' is required: %s", p->name,
                                  a->name, type_word(p->type));
            continue;
        }
        int64_t ms;
        bool ok = p->type == TALLY_TYPE_INTEGER  ? json_is_integer(v)
                  : p->type == TALLY_TYPE_FLOAT   ? json_is_number(v)
                  : p->type == TALLY_TYPE_BOOLEAN ? json_is_boolean(v)
                  : p->type == TALLY_TYPE_STRING  ? json_is_string(v)
                  : p->type == TALLY_TYPE_DATETIME
                      ? json_is_string(v) && tally_datetime_parse(json_string_value(v), json_string_length(v), &ms) == 0
                      : true;
        if (!ok)
            return tally_fail(err, TALLY_VALIDATION, p->name, "param '%s' of action '%s' is %s", p->name, a->name,
                              type_word(p->type));
    }
    return 0;
}

int tally_action_plan(const tally_schema *schema, const tally_action *a, json_t *params, int max_steps,
                      tally_plan **out, tally_error *err)
{
    *out = NULL;
    if (check_params(a, params, err))
        return -TALLY_VALIDATION;
    json_t *none = params ? NULL : json_object();
    int rc = decode(schema, a, params ? params : none, max_steps, out, err);
    json_decref(none);
    return rc;
}
