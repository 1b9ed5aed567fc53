/*
 * actions.h — named actions (README.md, "Named actions"): the schema's
 * "actions" checked at start-up against how transaction steps decode, and a
 * call's params checked and filled in for POST /api/actions/{name}, which
 * then runs as POST /api/transaction would.
 */
#ifndef TALLY_API_ACTIONS_H
#define TALLY_API_ACTIONS_H

#include <jansson.h>

#include "core/plan.h"
#include "core/schema.h"

/* Every action of the schema, its steps decoded with a sample value of each
 * param: 0, or -code with err's message naming the action and the step
 * (an unknown model, field or param, a $ref to a later step…). */
int tally_actions_check(const tally_schema *schema, tally_error *err);

/* The plan of one call of a with params (the request body; NULL: none).
 * Params are checked first: a missing, unknown or mistyped one is a 422
 * VALIDATION whose path names it, and nothing runs.  0 with *out (the
 * caller's), or -code with err. */
int tally_action_plan(const tally_schema *schema, const tally_action *a, json_t *params, int max_steps,
                      tally_plan **out, tally_error *err);

#endif
