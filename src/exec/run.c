/* run.c — a plan's steps in order, with transaction expectations; see run.h. */
#include "exec/run.h"

#include <stdio.h>

static int check_expect(const tally_plan *plan, const tally_txn_step *t, tally_error *err)
{
    const tally_step_result *r = &plan->results[t->answer];
    tally_value count[TALLY_COL_FIRST_FIELD + 1];
    const tally_value *cols = r->record.cols;
    if (t->expect_on_count) { /* {"count": n} is column 3 of a pseudo-record */
        for (int c = 0; c < TALLY_COL_FIRST_FIELD; c++)
            count[c] = tally_value_null();
        count[TALLY_COL_FIRST_FIELD] = tally_value_int(r->count);
        cols = count;
    }
    if (cols && tally_filter_matches(plan, t->expect, cols))
        return 0;
    return tally_fail(err, TALLY_EXPECTATION_FAILED, "expect",
                      "the step's result does not meet its expect condition; the whole transaction was rolled back");
}

int tally_run_plan(tally_store *st, tally_plan *plan, tally_error *err) { return tally_run_plan_from(st, plan, 0, err); }

int tally_run_plan_from(tally_store *st, tally_plan *plan, int from, tally_error *err)
{
    tally_plan_prepare_results(plan);
    int t = 0; /* the transaction step whose plan steps are running */
    while (t < plan->ntxn && plan->txn[t].answer < from)
        t++;
    for (int i = from; i < plan->nsteps; i++) {
        int rc = tally_store_run_step(st, plan, i, err);
        while (rc == 0 && t < plan->ntxn && plan->txn[t].answer == i) {
            if (plan->txn[t].expect)
                rc = check_expect(plan, &plan->txn[t], err);
            if (rc == 0)
                t++;
        }
        if (rc) {
            plan->failed_step = i;
            int ts = tally_plan_txn_step(plan, i);
            if (ts >= 0) {
                err->step = ts;
                snprintf(err->step_as, sizeof err->step_as, "%s", plan->txn[ts].as ? plan->txn[ts].as : "");
            }
            return rc;
        }
    }
    return 0;
}
