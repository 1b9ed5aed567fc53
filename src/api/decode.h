/*
 * decode.h — request JSON to plan steps, checked against the schema.
 *
 * Every check that needs no database happens here, on the loop thread, with
 * a message and a path for a person: unknown fields, wrong types, missing
 * required fields, maxLength, malformed _atomics.  What needs the database
 * (min/max, uniqueness, links, overflow) is judged by the statement that
 * writes.  The JSON is borrowed; every value the plan keeps is copied into
 * the plan's arena.
 */
#ifndef TALLY_API_DECODE_H
#define TALLY_API_DECODE_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"
#include "core/plan.h"

/* Adds the steps that create a record from body (nested belongsTo creates
 * first, then the record, then hasMany children).  path (copied) prefixes error paths
 * ("" at the top).  Returns the index of the step that creates the record, or -code. */
int tally_decode_create(tally_plan *plan, const tally_model *m, json_t *body, const char *path, tally_error *err);

/* Each returns the index of the step whose result is the answer, or -code. */

/* PATCH /api/{model}/{id}: plain fields to set, _atomics, and a _where guard. */
int tally_decode_patch(tally_plan *plan, const tally_model *m, tally_value id, json_t *body, tally_error *err);
/* The same from parts, for a transaction's update step: data (fields and
 * _atomics) and an optional where filter, each with the path it came from. */
int tally_decode_update(tally_plan *plan, const tally_model *m, tally_value id, json_t *data, const char *data_path,
                        json_t *where, const char *where_path, tally_error *err);
/* POST /api/{model}/updateMany: {"filter", "set", "_atomics"}; filter required. */
int tally_decode_update_many(tally_plan *plan, const tally_model *m, json_t *body, tally_error *err);
/* POST /api/{model}/deleteMany: {"filter"}, required ({} for every row, written out). */
int tally_decode_delete_many(tally_plan *plan, const tally_model *m, json_t *body, tally_error *err);
/* POST /api/{model}/upsert: {"on", "create", "update"}; on must be a declared unique key. */
int tally_decode_upsert(tally_plan *plan, const tally_model *m, json_t *body, tally_error *err);

/* Transactions: {"$ref": "name.field"} stands for a field of an earlier
 * step's result (plan->txn).  Returns 1 with *out a REF and *type the
 * referenced column's type, 0 if j is not a reference, or -code (400) for an
 * unknown name or field. */
int tally_decode_ref(tally_plan *plan, json_t *j, const char *path, tally_value *out, tally_type *type,
                     tally_error *err);
/* Whether a value of type `from` may stand where `to` is expected. */
bool tally_ref_fits(tally_type from, tally_type to);

/* The first key of obj that is in neither NULL-terminated list (also may be NULL), or NULL. */
const char *tally_unknown_key(json_t *obj, const char *const *allowed, const char *const *also);
/* 400 unless body is an object whose keys are all allowed ("<call> takes no 'x'"). */
int tally_decode_check_keys(json_t *body, const char *const *allowed, const char *call, tally_error *err);

/* A record id from a path segment: a positive decimal integer. */
int tally_decode_id(const char *s, size_t len, int64_t *out);

#endif
