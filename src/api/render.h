/*
 * render.h — answers as JSON text: records, listings, and error bodies.
 *
 * Written straight into a tally_buf rather than through a JSON tree: the
 * shapes are fixed, integers must stay exact past 2^53, floats should print
 * as the shortest text that reads back to the same double, and a json field
 * is already stored as compact JSON text and goes out as it is.
 */
#ifndef TALLY_API_RENDER_H
#define TALLY_API_RENDER_H

#include "core/buf.h"
#include "core/error.h"
#include "core/plan.h"
#include "exec/job.h"

void tally_json_string(tally_buf *b, const char *s, size_t n);
void tally_json_double(tally_buf *b, double d);
void tally_render_record(tally_buf *b, const tally_model *m, const tally_record *r);
/* {"error": {"code", "message", "path"?}}; returns the body (malloc'ed) and its status. */
char *tally_render_error(const tally_error *err, int *status, size_t *len);
/* Appends the result of plan step `step` (record, {"id"}, {"count"},
 * {"record","created"}, or a page) and returns its HTTP status. */
int tally_render_step_result(tally_buf *b, tally_plan *plan, int step);
/* The error body of a failed plan: with "current" for a failed guard, "expiresAt" for LOCKED,
 * the limit's numbers beside a RATE_LIMITED error, "step" in a transaction. */
char *tally_render_plan_error(tally_plan *plan, const tally_error *err, int *status, size_t *len);
/* The job's render callback: the answer for its plan's result, or its error. */
void tally_render_job(tally_job *job);

#endif
