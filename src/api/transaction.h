/*
 * transaction.h — POST /api/transaction: a list of steps applied all or
 * nothing (README.md, "Transactions").  Each step is one of the record calls in a JSON
 * form of its own, may be named with "as" for later {"$ref": "name.field"}
 * values, and may carry "expect", a condition on its own result.  The same
 * step objects are used one at a time over the WebSocket.
 */
#ifndef TALLY_API_TRANSACTION_H
#define TALLY_API_TRANSACTION_H

#include <jansson.h>

#include "core/error.h"
#include "core/plan.h"

#define TALLY_TXN_DEFAULT_MAX_STEPS 1000

/* Decodes {"steps": [...]} into plan (which becomes a transaction plan).
 * On a mistake: -code, with err->step naming the step. */
int tally_decode_transaction(tally_plan *plan, json_t *body, int max_steps, tally_error *err);

/* Appends one step object to a transaction plan; returns 0 or -code. */
int tally_decode_txn_step(tally_plan *plan, json_t *step, const char *path, tally_error *err);

#endif
