/* filter_util.h — what the filter suites (test_filter_decode,
 * test_filter_eval) share: a one-model schema "item" with a field of every
 * type and their column numbers, parsed by the group setup, and filters
 * decoded into a plan from JSON written with ' for ".  Include it after
 * <cmocka.h>; all functions are static inline. */
#ifndef TALLY_TEST_FILTER_UTIL_H
#define TALLY_TEST_FILTER_UTIL_H

#include <jansson.h>

#include "api/filter.h"
#include "core/schema.h"
#include "test_util.h"

/* Columns: id 0, createdAt 1, updatedAt 2, n 3, m 4, x 5, s 6, t 7, b 8, d 9, j 10, p 11. */
static const char ITEM_JSON[] =
    "{\"models\": {\"item\": {\"fields\": {"
    " \"n\": {\"type\": \"integer\"}, \"m\": {\"type\": \"integer\"}, \"x\": {\"type\": \"float\"},"
    " \"s\": {\"type\": \"string\"}, \"t\": {\"type\": \"string\"}, \"b\": {\"type\": \"boolean\"},"
    " \"d\": {\"type\": \"datetime\"}, \"j\": {\"type\": \"json\"},"
    " \"p\": {\"type\": \"belongsTo\", \"model\": \"item\", \"onDelete\": \"setNull\"}}}}}";
enum { C_N = 3, C_M, C_X, C_S, C_T, C_B, C_D, C_J, C_P, NCOLS };

static tally_schema *schema;
static const tally_model *item;

static inline int setup(void **state)
{
    (void)state;
    if (parse_schema(ITEM_JSON, &schema) != 0)
        return -1;
    item = &schema->models[0];
    return item->ncolumns == NCOLS ? 0 : -1;
}

static inline int teardown(void **state)
{
    (void)state;
    tally_schema_free(schema);
    return 0;
}

/* Decodes filter sq into plan (the JSON is freed at once: the filter must own what it keeps). */
static inline int decode(tally_plan *plan, const char *sq, const tally_filter **out, tally_error *err)
{
    json_t *j = J(sq);
    tally_error_clear(err);
    int rc = tally_decode_filter(plan, item, j, "filter", out, err);
    json_decref(j);
    return rc;
}

static inline const tally_filter *decode_ok(tally_plan *plan, const char *sq)
{
    const tally_filter *f = NULL;
    tally_error err;
    if (decode(plan, sq, &f, &err))
        fail_msg("filter refused: %s (path '%s'): %s", err.message, err.path, sq);
    assert_non_null(f);
    return f;
}

#endif
