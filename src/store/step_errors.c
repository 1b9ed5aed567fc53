/* step_errors.c — error paths and shared messages of failed steps; see step_errors.h. */
#include "store/step_errors.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *tally_step_join_path(tally_plan *plan, const tally_step *s, const char *field)
{
    if (!s->path[0])
        return field;
    return tally_arena_printf(&plan->arena, "%s.%s", s->path, field);
}

const char *tally_step_column_path(tally_plan *plan, const tally_step *s, const char *field)
{
    int fi = tally_model_field(s->model, field, strlen(field));
    for (int i = 0; fi >= 0 && i < s->natomics; i++)
        if (s->atomics[i].column == s->model->fields[fi].column) {
            bool upsert = s->op == TALLY_OP_UPSERT;
            return tally_step_join_path(plan, s,
                                        tally_arena_printf(&plan->arena, "%s_atomics.%s", upsert ? "update." : "", field));
        }
    return tally_step_join_path(plan, s, field);
}

int64_t tally_step_id(const tally_plan *plan, const tally_value *v)
{
    tally_value r = tally_plan_resolve(plan, v);
    return r.kind == TALLY_VALUE_INT ? r.u.i : 0;
}

int tally_step_not_found(tally_error *err, const tally_step *s, int64_t id)
{
    if (s->link)
        return tally_fail(err, TALLY_VALIDATION, s->path, "there is no %s with id %lld to link; create it first or "
                          "link an existing one", s->model->name, (long long)id);
    return tally_fail(err, TALLY_NOT_FOUND, s->path[0] ? s->path : NULL, "%s %lld does not exist", s->model->name,
                      (long long)id);
}

int tally_step_invariant(tally_plan *plan, const tally_step *s, const tally_field *f, bool is_min, tally_error *err)
{
    const tally_value *b = is_min ? &f->min : &f->max;
    char bound[40];
    if (b->kind == TALLY_VALUE_INT)
        snprintf(bound, sizeof bound, "%lld", (long long)b->u.i);
    else
        snprintf(bound, sizeof bound, "%g", b->u.f);
    return tally_fail(err, TALLY_INVARIANT, tally_step_column_path(plan, s, f->name),
                      "%s would go %s its %s of %s; nothing was changed", f->name, is_min ? "below" : "above",
                      is_min ? "min" : "max", bound);
}
