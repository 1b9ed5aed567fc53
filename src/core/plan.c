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
        plan->cap = plan->cap ? plan->cap * 2 : 4;
        plan->steps = tally_arena_grow(&plan->arena, plan->steps, (size_t)plan->nsteps, (size_t)plan->cap,
                                       sizeof *plan->steps);
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
    cap = cap ? cap : 1;
    plan->results = tally_arena_grow(&plan->arena, plan->results, (size_t)plan->results_cap, (size_t)cap,
                                     sizeof *plan->results);
    plan->results_cap = cap;
}

tally_value tally_plan_resolve(const tally_plan *plan, const tally_value *v)
{
    if (v->kind != TALLY_VALUE_REF)
        return *v;
    const tally_step_result *r = &plan->results[v->u.ref.step];
    if (v->u.ref.column == TALLY_REF_COUNT)
        return tally_value_int(r->count);
    if (v->u.ref.column == TALLY_REF_FENCE)
        return tally_value_int(r->fence);
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
