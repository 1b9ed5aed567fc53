/*
 * action.c — named actions as the schema declares them (README.md, "Named
 * actions"): {"actions": {"sellTicket": {"params": {"event": {"type":
 * "integer", "required": true}}, "steps": [ … ]}}}.  Checked here: names,
 * param types, that steps is a non-empty list of objects.  What each step
 * means (models, fields, $ref, $param) is checked at start-up by
 * api/actions.c, which knows how steps decode.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_arena.h"
#include "core/schema.h"

#define FAIL(...) tally_fail(err, TALLY_BAD_REQUEST, NULL, __VA_ARGS__)

static int param_type(const char *t, tally_type *out)
{
    static const struct { const char *name; tally_type type; } types[] = {
        {"integer", TALLY_TYPE_INTEGER}, {"float", TALLY_TYPE_FLOAT}, {"boolean", TALLY_TYPE_BOOLEAN},
        {"string", TALLY_TYPE_STRING},   {"datetime", TALLY_TYPE_DATETIME}, {"json", TALLY_TYPE_JSON}};
    for (size_t i = 0; t && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(t, types[i].name) == 0) {
            *out = types[i].type;
            return 0;
        }
    return -1;
}

static int parse_action(json_t *ja, const char *name, tally_action *a, tally_error *err)
{
    if (!tally_is_identifier(name, strlen(name)))
        return FAIL("action '%s': action names must match [A-Za-z][A-Za-z0-9_]* and be at most 63 bytes", name);
    snprintf(a->name, sizeof a->name, "%s", name);
    if (!json_is_object(ja))
        return FAIL("action '%s': an action is an object with \"params\" and \"steps\"", name);
    const char *key;
    json_t *v;
    json_object_foreach(ja, key, v) {
        if (strcmp(key, "params") && strcmp(key, "steps"))
            return FAIL("action '%s': unknown key '%s'; an action has \"params\" and \"steps\"", name, key);
    }
    json_t *params = json_object_get(ja, "params");
    if (params && !json_is_object(params))
        return FAIL("action '%s': \"params\" is an object such as {\"event\": {\"type\": \"integer\", \"required\": "
                    "true}}", name);
    a->params = calloc(json_object_size(params) + 1, sizeof *a->params);
    if (!a->params)
        abort();
    const char *pname;
    json_t *jp;
    json_object_foreach(params, pname, jp) {
        tally_action_param *p = &a->params[a->nparams++];
        if (!tally_is_identifier(pname, strlen(pname)))
            return FAIL("action '%s', param '%s': param names must match [A-Za-z][A-Za-z0-9_]*", name, pname);
        snprintf(p->name, sizeof p->name, "%s", pname);
        if (!json_is_object(jp) || param_type(json_string_value(json_object_get(jp, "type")), &p->type))
            return FAIL("action '%s', param '%s': a param is {\"type\": …, \"required\": true|false}, its type one of "
                        "integer, float, boolean, string, datetime, json", name, pname);
        json_object_foreach(jp, key, v) {
            if (strcmp(key, "type") && strcmp(key, "required"))
                return FAIL("action '%s', param '%s': unknown key '%s'; a param has type and required", name, pname,
                            key);
        }
        json_t *req = json_object_get(jp, "required");
        if (req && !json_is_boolean(req))
            return FAIL("action '%s', param '%s': required is true or false", name, pname);
        p->required = json_is_true(req);
    }
    json_t *steps = json_object_get(ja, "steps");
    if (!json_is_array(steps) || json_array_size(steps) == 0)
        return FAIL("action '%s': \"steps\" is a non-empty list of transaction steps", name);
    size_t i;
    json_array_foreach(steps, i, v) {
        if (!json_is_object(v))
            return FAIL("action '%s', step %zu: a step is an object such as {\"create\": \"ticket\", \"data\": {…}}",
                        name, i);
    }
    a->steps = tally_json_text(steps, JSON_COMPACT); /* malloc'ed (core/json_arena.h) */
    if (!a->steps)
        abort();
    return 0;
}

int tally_actions_parse(json_t *ja, tally_schema *s, tally_error *err)
{
    if (!json_is_object(ja))
        return FAIL("schema: \"actions\" is an object of named actions, each {\"params\": {…}, \"steps\": […]}");
    s->actions = calloc(json_object_size(ja) + 1, sizeof *s->actions);
    if (!s->actions)
        abort();
    const char *name;
    json_t *v;
    json_object_foreach(ja, name, v) {
        if (parse_action(v, name, &s->actions[s->nactions++], err))
            return -TALLY_BAD_REQUEST;
    }
    return 0;
}

void tally_actions_free(tally_schema *s)
{
    for (int i = 0; i < s->nactions; i++) {
        free(s->actions[i].params);
        free(s->actions[i].steps);
    }
    free(s->actions);
}

const tally_action *tally_schema_action(const tally_schema *s, const char *name, size_t len)
{
    for (int i = 0; i < s->nactions; i++)
        if (strlen(s->actions[i].name) == len && memcmp(s->actions[i].name, name, len) == 0)
            return &s->actions[i];
    return NULL;
}
