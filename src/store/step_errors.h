/*
 * step_errors.h — what every backend says when a step fails: where in the
 * request the failure points (`path`) and the words for the cases all
 * backends share, so a client sees the same error whatever stores its data.
 * Strings returned are allocated in the plan's arena (borrowed by the caller).
 */
#ifndef TALLY_STORE_STEP_ERRORS_H
#define TALLY_STORE_STEP_ERRORS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/plan.h"

/* field under the step's own path ("images[2].url"), or field alone. */
const char *tally_step_join_path(tally_plan *plan, const tally_step *s, const char *field);
/* Where a failure on a field points: "_atomics.f" ("update._atomics.f" in an
 * upsert) when the step changed it with _atomics, else the field itself. */
const char *tally_step_column_path(tally_plan *plan, const tally_step *s, const char *field);
/* The id a step names (an INT, or a REF resolved now); 0 when unset, which no record has. */
int64_t tally_step_id(const tally_plan *plan, const tally_value *v);
/* NOT_FOUND for the record a step names, or VALIDATION for a relink of a missing child. */
int tally_step_not_found(tally_error *err, const tally_step *s, int64_t id);
/* INVARIANT: field f (of s's model) would cross its min (is_min) or max. */
int tally_step_invariant(tally_plan *plan, const tally_step *s, const tally_field *f, bool is_min, tally_error *err);

#endif
