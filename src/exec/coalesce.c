/* coalesce.c — increments to one row applied as one statement; see coalesce.h. */
#include "exec/coalesce.h"

#include "core/buf.h"

#include <string.h>

#include "core/arena.h"

/* The amount an atomic adds, signed (decrements negative); false past 64 bits. */
static bool signed_amount(const tally_atomic *a, int64_t *out)
{
    if (a->amount.kind != TALLY_VALUE_INT)
        return false;
    int64_t v = a->amount.u.i;
    if (a->kind == TALLY_ATOMIC_INCREMENT) {
        *out = v;
        return true;
    }
    if (v == INT64_MIN)
        return false;
    *out = -v;
    return true;
}

bool tally_coalesce_eligible(const tally_job *job)
{
    if (job->kind != TALLY_JOB_NORMAL || !job->plan || job->idem || job->wait_until_ns)
        return false;
    const tally_plan *p = job->plan;
    if (p->nsteps != 1 || p->txn || p->answer_step != 0)
        return false;
    const tally_step *s = &p->steps[0];
    if (s->op != TALLY_OP_UPDATE || s->link || s->where || s->nsets || s->natomics == 0 ||
        s->id.kind != TALLY_VALUE_INT)
        return false;
    for (int i = 0; i < s->natomics; i++) {
        const tally_atomic *a = &s->atomics[i];
        int64_t d = 0;
        int f = s->model->column_field[a->column];
        if (f < 0 || s->model->fields[f].type != TALLY_TYPE_INTEGER || !signed_amount(a, &d))
            return false;
        for (int j = 0; j < i; j++) /* one change per field: a job's own path need not be monotone */
            if (s->atomics[j].column == a->column)
                return false;
    }
    return true;
}

bool tally_coalesce_joins(const tally_job *first, const tally_job *b)
{
    const tally_step *s = &first->plan->steps[0], *t = &b->plan->steps[0];
    if (t->model != s->model || t->id.u.i != s->id.u.i || t->natomics != s->natomics)
        return false;
    for (int i = 0; i < s->natomics; i++) {
        int64_t x = 0, y = 0;
        signed_amount(&s->atomics[i], &x);
        signed_amount(&t->atomics[i], &y);
        if (t->atomics[i].column != s->atomics[i].column || (x < 0) != (y < 0))
            return false;
    }
    return true;
}

bool tally_coalesce_sum(tally_job *const *jobs, int n, tally_atomic *saved)
{
    tally_step *s = &jobs[0]->plan->steps[0];
    int64_t totals[s->natomics];
    for (int i = 0; i < s->natomics; i++) {
        totals[i] = 0;
        for (int k = 0; k < n; k++) {
            int64_t d = 0;
            signed_amount(&jobs[k]->plan->steps[0].atomics[i], &d);
            if (__builtin_add_overflow(totals[i], d, &totals[i]) || totals[i] == INT64_MIN)
                return false;
        }
    }
    for (int i = 0; i < s->natomics; i++) {
        saved[i] = s->atomics[i];
        /* An increment by the signed total: the direction is every job's own. */
        s->atomics[i].kind = totals[i] < 0 ? TALLY_ATOMIC_DECREMENT : TALLY_ATOMIC_INCREMENT;
        s->atomics[i].amount = tally_value_int(totals[i] < 0 ? -totals[i] : totals[i]);
    }
    return true;
}

void tally_coalesce_restore(tally_job *first, const tally_atomic *saved)
{
    tally_step *s = &first->plan->steps[0];
    for (int i = 0; i < s->natomics; i++)
        s->atomics[i] = saved[i];
}

/* A copy of record r (ncols values) in arena a: texts copied too. */
static tally_record copy_record(tally_arena *a, const tally_record *r, int ncols)
{
    tally_record out = {.cols = tally_arena_alloc(a, (size_t)ncols * sizeof *out.cols)};
    for (int c = 0; c < ncols; c++) {
        out.cols[c] = r->cols[c];
        if (r->cols[c].kind == TALLY_VALUE_TEXT)
            out.cols[c].u.text.ptr = tally_arena_strndup(a, r->cols[c].u.text.ptr, r->cols[c].u.text.len);
    }
    return out;
}

void tally_coalesce_spread(tally_job *const *jobs, int n)
{
    const tally_step *s = &jobs[0]->plan->steps[0];
    const tally_record last = jobs[0]->plan->results[0].record; /* after the whole run */
    int ncols = s->model->ncolumns;
    /* Walking back from the end: the record after job k is the one after job
     * k+1 less job k+1's change. */
    int64_t after[s->natomics];
    for (int i = 0; i < s->natomics; i++)
        after[i] = last.cols[s->atomics[i].column].u.i;
    for (int k = n - 1; k >= 0; k--) {
        tally_plan *p = jobs[k]->plan;
        if (k > 0)
            tally_plan_prepare_results(p);
        tally_record r = copy_record(&p->arena, &last, ncols);
        for (int i = 0; i < s->natomics; i++)
            r.cols[s->atomics[i].column] = tally_value_int(after[i]);
        p->results[0].record = r;
        for (int i = 0; i < s->natomics; i++) {
            int64_t d = 0;
            signed_amount(&p->steps[0].atomics[i], &d);
            after[i] -= d; /* cannot overflow: the values on the way lie between the first and the last */
        }
    }
}

void tally_coalesce_describe(tally_job *const *jobs, int n, tally_buf *out)
{
    const tally_step *s = &jobs[0]->plan->steps[0];
    tally_buf_add(out, "{\"fields\":[");
    for (int i = 0; i < s->natomics; i++)
        tally_buf_addf(out, "%s\"%s\"", i ? "," : "", tally_model_column_name(s->model, s->atomics[i].column));
    tally_buf_add(out, "],\"deltas\":[");
    for (int k = 0; k < n; k++) {
        const tally_step *js = &jobs[k]->plan->steps[0];
        tally_buf_add(out, k ? ",[" : "[");
        for (int i = 0; i < js->natomics; i++) {
            int64_t d = 0;
            signed_amount(&js->atomics[i], &d);
            tally_buf_addf(out, "%s%lld", i ? "," : "", (long long)d);
        }
        tally_buf_addc(out, ']');
    }
    tally_buf_add(out, "]}");
}
