/*
 * route.h — which writer lane a request goes to: the lane of the first key
 * it touches (docs/architecture.md, "Life of a write"), so that one hot row's writes meet in one lane's
 * group-commit batch instead of queueing on a row lock between connections.
 *
 *   update, delete, get by id   the model and the id
 *   upsert                      the model and the values of its `on` fields
 *   lock acquire/renew/release  the lock's name (its waiters wait in that lane)
 *   rate limit                  the limit's name and the key
 *   create, a filter's bulk change, anything keyed by an earlier step ($ref)
 *                               no key: the next lane in turn
 * A transaction goes by its first step.  The same key always maps to the same
 * lane, on every server with the same number of lanes.
 */
#ifndef TALLY_EXEC_ROUTE_H
#define TALLY_EXEC_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/plan.h"

/* The hash of the first key the plan touches; false when it has none. */
bool tally_route_key(const tally_plan *plan, uint64_t *hash);
/* The hash a lock step on `name` routes by (a hint from another server goes to that lane). */
uint64_t tally_route_lock(const char *name, size_t len);

#endif
