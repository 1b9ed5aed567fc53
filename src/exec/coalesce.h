/*
 * coalesce.h — a run of increments to one row in one batch, applied as one
 * statement.
 *
 * A hot counter's writes meet in one lane's batch (route.h); run one by one,
 * each is a statement of its own (on PostgreSQL a round of the executor and
 * a new row version each).  Adjacent jobs in a batch that each only add to
 * (or only subtract from) the same integer fields of the same record, with
 * no guard, no other change and no Idempotency-Key, are applied as one
 * update by their sum, and each job is then answered with the record as it
 * stood after its own change, exactly as running them in order would have
 * left it: within the batch's transaction nobody sees the steps in between,
 * every job of the run has the batch's clock, and the path from the first
 * value to the last is monotone, so a `min`, `max` or overflow bound that
 * the total keeps was kept by every job on the way.  When the total is
 * refused (a bound crossed, the record missing), the writer runs the jobs
 * one by one instead, so each gets its own verdict.  Floats are never
 * summed: a float sum depends on the order of the additions.
 *
 * Pure functions over plans; the writer (writer.c) runs the statement.
 */
#ifndef TALLY_EXEC_COALESCE_H
#define TALLY_EXEC_COALESCE_H

#include <stdbool.h>

#include "exec/job.h"

/* At most this many jobs a run (bounds the arrays the writer keeps for one). */
#define TALLY_COALESCE_MAX 256

/* Whether job may start or join a run: a lone update by a literal id whose
 * only changes are one increment or decrement per integer field. */
bool tally_coalesce_eligible(const tally_job *job);

/* Whether b (eligible) changes the same record's same fields, in the same
 * directions, as first (eligible), so that it may join first's run. */
bool tally_coalesce_joins(const tally_job *first, const tally_job *b);

/* Puts the run's totals into jobs[0]'s plan (the statement to run), keeping
 * its own changes in saved (natomics entries).  False, changing nothing,
 * when a total would not fit in 64 bits. */
bool tally_coalesce_sum(tally_job *const *jobs, int n, tally_atomic *saved);
/* Puts jobs[0]'s own changes back. */
void tally_coalesce_restore(tally_job *first, const tally_atomic *saved);

/* After the summed statement ran on jobs[0]'s plan (its result the record
 * after the whole run, amounts restored): fills every job's result with the
 * record after its own change, copied into its own plan's arena. */
void tally_coalesce_spread(tally_job *const *jobs, int n);

/* The run's deltas for the change feed: {"fields": [names], "deltas": [[d, …], …]},
 * one list a job in run order (tally_change.merged). */
struct tally_buf;
void tally_coalesce_describe(tally_job *const *jobs, int n, struct tally_buf *out);

#endif
