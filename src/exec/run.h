/*
 * run.h — runs a whole plan on a store: every step in order, and after each
 * transaction step its `expect` on the result that step itself returned.
 * Shared by the writer, the reader and in-place reads; backend-neutral.
 */
#ifndef TALLY_EXEC_RUN_H
#define TALLY_EXEC_RUN_H

#include "core/error.h"
#include "core/plan.h"
#include "store/backend.h"

/* Returns 0, or -code with err filled and plan->failed_step set; in a
 * transaction err->step names the client's step.  The caller rolls back. */
int tally_run_plan(tally_store *st, tally_plan *plan, tally_error *err);
/* The same from plan step `from` on: the next step of an interactive transaction. */
int tally_run_plan_from(tally_store *st, tally_plan *plan, int from, tally_error *err);

#endif
