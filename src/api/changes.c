/* changes.c — the change feed's plans, scopes and answers; see changes.h. */
#include "api/changes.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/render.h"
#include "core/datetime.h"

int tally_changes_ask_model(const tally_schema *schema, tally_changes_ask *ask, const char *name, size_t len,
                            tally_error *err)
{
    const tally_model *m = tally_schema_model(schema, name, len);
    if (!m)
        return tally_fail(err, TALLY_VALIDATION, "models", "there is no model '%.*s' in the schema",
                          (int)(len > 64 ? 64 : len), name);
    if (!m->changes)
        return tally_fail(err, TALLY_VALIDATION, "models",
                          "model '%s' is kept out of the change feed (\"changes\": false in the schema)", m->name);
    for (int i = 0; i < ask->nmodels; i++)
        if (ask->models[i] == m->index)
            return 0;
    if (ask->nmodels == (int)(sizeof ask->models / sizeof ask->models[0]))
        return tally_fail(err, TALLY_VALIDATION, "models", "at most 64 models at once; omit models to follow all");
    ask->models[ask->nmodels++] = m->index;
    return 0;
}

int tally_changes_allowed(const tally_schema *schema, const tally_principal *p, const tally_changes_ask *ask,
                          tally_error *err)
{
    if (p->open)
        return 0;
    tally_scope changes = tally_scope_of(TALLY_SCOPE_CHANGES, NULL);
    if (tally_scopes_allow(&p->key.scopes, &changes))
        return 0;
    int n = ask->nmodels ? ask->nmodels : schema->nmodels;
    for (int i = 0; i < n; i++) {
        const tally_model *m = &schema->models[ask->nmodels ? ask->models[i] : i];
        if (!m->changes)
            continue;
        tally_scope read = tally_scope_of(TALLY_SCOPE_READ, m->name);
        if (tally_scopes_allow(&p->key.scopes, &read))
            continue;
        char what[320];
        snprintf(what, sizeof what, "to follow the change feed (or read:%s to follow %s changes with ?models=%s)",
                 m->name, m->name, m->name);
        return tally_auth_require(p, &changes, what, err);
    }
    return 0;
}

tally_plan *tally_changes_plan(const tally_schema *schema, const tally_changes_ask *ask)
{
    tally_plan *plan = tally_plan_new(schema);
    tally_step *s = tally_plan_add_step(plan, TALLY_OP_CHANGES, NULL);
    s->since = ask->after;
    s->first = ask->first > 0 ? ask->first : TALLY_CHANGES_FIRST_DEFAULT;
    s->wait_ms = ask->wait_ms;
    if (ask->nmodels) {
        int *models = tally_arena_alloc(&plan->arena, sizeof *models * (size_t)ask->nmodels);
        memcpy(models, ask->models, sizeof *models * (size_t)ask->nmodels);
        s->feed_models = models;
        s->nfeed_models = ask->nmodels;
    }
    plan->answer_step = 0;
    return plan;
}

/* The stored row image (column name -> value) as the model's record; columns it lacks are null. */
static void decode_record(const tally_model *m, const char *rec, size_t len, tally_value *cols, json_t **keep)
{
    for (int c = 0; c < m->ncolumns; c++)
        cols[c] = tally_value_null();
    json_t *j = json_loadb(rec, len, JSON_DECODE_ANY, NULL);
    *keep = j;
    if (!json_is_object(j))
        return;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        int c;
        if (strcmp(key, "id") == 0)
            c = TALLY_COL_ID;
        else if (strcmp(key, "createdAt") == 0)
            c = TALLY_COL_CREATED_AT;
        else if (strcmp(key, "updatedAt") == 0)
            c = TALLY_COL_UPDATED_AT;
        else {
            int fi = tally_model_field(m, key, strlen(key));
            c = fi >= 0 ? m->fields[fi].column : -1;
        }
        if (c < 0 || json_is_null(v))
            continue; /* a field the schema no longer has */
        switch (tally_model_column_type(m, c)) {
        case TALLY_TYPE_FLOAT:
            if (json_is_string(v))
                cols[c] = tally_value_float(strtod(json_string_value(v), NULL)); /* SQLite: 17 digits as text */
            else if (json_is_number(v))
                cols[c] = tally_value_float(json_number_value(v));
            break;
        case TALLY_TYPE_STRING:
        case TALLY_TYPE_JSON:
            if (json_is_string(v))
                cols[c] = tally_value_text(json_string_value(v), json_string_length(v));
            break;
        default:
            if (json_is_integer(v))
                cols[c] = tally_value_int(json_integer_value(v));
            else if (json_is_boolean(v))
                cols[c] = tally_value_int(json_is_true(v));
            break;
        }
    }
}

void tally_changes_render_one(tally_buf *b, const tally_schema *schema, const tally_change *c)
{
    const tally_model *m = &schema->models[c->model];
    tally_buf_addf(b, "{\"seq\":%lld,\"model\":", (long long)c->seq);
    tally_json_string(b, m->name, strlen(m->name));
    tally_buf_addf(b, ",\"id\":%lld,\"op\":\"%s\",\"record\":", (long long)c->id,
                   c->op == 'c' ? "create" : c->op == 'd' ? "delete" : "update");
    if (c->op == 'd' || !c->rec) {
        tally_buf_add(b, "null");
    } else {
        tally_value cols[m->ncolumns > 0 ? m->ncolumns : 1];
        json_t *keep;
        decode_record(m, c->rec, c->rec_len, cols, &keep);
        if (cols[TALLY_COL_ID].kind != TALLY_VALUE_INT)
            cols[TALLY_COL_ID] = tally_value_int(c->id);
        for (int k = 0; k < c->nadjust; k++) /* one write of a merged run: the record after it */
            if (c->adjust_col[k] >= 0 && cols[c->adjust_col[k]].kind == TALLY_VALUE_INT)
                cols[c->adjust_col[k]].u.i -= c->adjust_by[k];
        tally_record r = {.cols = cols};
        tally_render_record(b, m, &r);
        json_decref(keep);
    }
    char at[TALLY_DATETIME_MAX];
    tally_datetime_format(c->at, at);
    tally_buf_addf(b, ",\"at\":\"%s\"}", at);
}

void tally_changes_render(tally_job *job)
{
    free(job->body);
    job->body = NULL;
    if (job->rc != 0) {
        int status;
        job->body = tally_render_error(&job->err, &status, &job->body_len);
        job->status = status;
        return;
    }
    const tally_step_result *r = &job->plan->results[0];
    tally_buf b;
    tally_buf_init(&b);
    tally_buf_add(&b, "{\"changes\":[");
    int shown = 0;
    for (int i = 0; i < r->nchanges; i++) {
        if (r->changes[i].model < 0)
            continue; /* a model the schema no longer has */
        if (shown++)
            tally_buf_addc(&b, ',');
        tally_changes_render_one(&b, job->plan->schema, &r->changes[i]);
    }
    tally_buf_addf(&b, "],\"next\":%lld}", (long long)r->next);
    job->status = 200;
    job->body = b.s;
    job->body_len = b.len;
}

int tally_changes_recheck(const tally_api *api, tally_principal *who, const tally_changes_ask *ask, tally_error *err)
{
    if (tally_auth_refresh(api, who, err))
        return -(int)err->code;
    return tally_changes_allowed(api->schema, who, ask, err);
}
