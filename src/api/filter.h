/*
 * filter.h — the filter language, sort specs and paging cursors, from the
 * request's JSON into the plan (core/filter.h).  Every mistake is a 400
 * with the path of the mistake ("filter.OR[1].stock.greaterThan").
 */
#ifndef TALLY_API_FILTER_H
#define TALLY_API_FILTER_H

#include <jansson.h>

#include "core/error.h"
#include "core/filter.h"
#include "core/plan.h"

/* Decodes a filter object for model m into the plan's arena. */
int tally_decode_filter(tally_plan *plan, const tally_model *m, json_t *j, const char *path,
                        const tally_filter **out, tally_error *err);

/* Decodes a sort spec ({"field": "ascending"|"descending"} or a list of
 * those; NULL for none) into s->sort, adding `id` as the last key. */
int tally_decode_sort(tally_plan *plan, tally_step *s, json_t *j, tally_error *err);

/* A cursor names the sort keys and holds the last row's values for them;
 * decoding checks that it belongs to the same sort. */
char *tally_cursor_encode(tally_arena *arena, const tally_step *s, const tally_record *last);
int tally_cursor_decode(tally_plan *plan, tally_step *s, const char *text, size_t len, tally_error *err);

/* Fills a listing step from a find body or query parameters already parsed
 * as JSON: filter, sort, first, after.  Unknown keys are refused. */
int tally_decode_find(tally_plan *plan, tally_step *s, json_t *filter, json_t *sort, json_t *first, json_t *after,
                      tally_error *err);

#endif
