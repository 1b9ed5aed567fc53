/* plan.c — building and freeing operation plans; see plan.h. */
#include "core/plan.h"

#include <stdlib.h>
#include <string.h>

tally_plan *tally_plan_new(const tally_schema *schema)
{
    tally_arena arena;
    tally_arena_init(&arena);
    tally_plan *plan = tally_arena_zalloc(&arena, sizeof *plan);
    plan->arena = arena; /* the plan lives in its own arena */
    plan->schema = schema;
    return plan;
}

void tally_plan_free(tally_plan *plan)
{
    if (!plan)
        return;
    tally_arena arena = plan->arena; /* copy first: freeing releases the plan itself */
    tally_arena_free(&arena);
}

tally_step *tally_plan_add_step(tally_plan *plan, tally_op op, const tally_model *model)
{
    if (plan->nsteps == plan->cap) {
        int cap = plan->cap ? plan->cap * 2 : 4;
        tally_step *steps = tally_arena_alloc(&plan->arena, (size_t)cap * sizeof *steps);
        if (plan->nsteps)
            memcpy(steps, plan->steps, (size_t)plan->nsteps * sizeof *steps);
        plan->steps = steps;
        plan->cap = cap;
    }
    tally_step *s = &plan->steps[plan->nsteps++];
    memset(s, 0, sizeof *s);
    s->op = op;
    s->model = model;
    s->path = "";
    if (op != TALLY_OP_GET && op != TALLY_OP_LIST && op != TALLY_OP_LOCK_LIST)
        plan->writes = true;
    return s;
}

void tally_plan_prepare_results(tally_plan *plan)
{
    if (plan->results_cap >= plan->nsteps && plan->results)
        return;
    /* An interactive transaction's plan grows step by step: keep what ran. */
    int cap = plan->nsteps > 2 * plan->results_cap ? plan->nsteps : 2 * plan->results_cap;
    tally_step_result *r = tally_arena_zalloc(&plan->arena, (size_t)(cap ? cap : 1) * sizeof *r);
    if (plan->results_cap)
        memcpy(r, plan->results, (size_t)plan->results_cap * sizeof *r);
    plan->results = r;
    plan->results_cap = cap ? cap : 1;
}

tally_value tally_plan_resolve(const tally_plan *plan, const tally_value *v)
{
    if (v->kind != TALLY_VALUE_REF)
        return *v;
    const tally_step_result *r = &plan->results[v->u.ref.step];
    if (v->u.ref.column == TALLY_REF_COUNT)
        return tally_value_int(r->count);
    if (!r->record.cols)
        return tally_value_null();
    return r->record.cols[v->u.ref.column];
}

int tally_plan_txn_step(const tally_plan *plan, int step)
{
    for (int i = plan->ntxn - 1; i >= 0; i--)
        if (plan->txn[i].first <= step)
            return i;
    return -1;
}
