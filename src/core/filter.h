/*
 * filter.h — the filter language (README.md, "Filters, sorting and paging") as plain data: a tree of
 * AND / OR / NOT over comparisons of one column with a value, a list of
 * values, or another column of the same row.  Used by listings, updateMany,
 * deleteMany and the `_where` guard.  Built by the API layer in the plan's
 * arena; turned into SQL by the store.
 *
 * Semantics (two-valued, unlike SQL): an unset (NULL) column matches only
 * `isSet: false` and `equals: null`; every other comparison is false on it,
 * and NOT of false is true.
 */
#ifndef TALLY_CORE_FILTER_H
#define TALLY_CORE_FILTER_H

#include <stdbool.h>

#include "core/value.h"

#define TALLY_FILTER_MAX_DEPTH 32
#define TALLY_FILTER_MAX_VALUES 10000 /* bound values in one filter, all lists together */

typedef enum tally_filter_kind {
    TALLY_FILTER_TRUE,  /* {} */
    TALLY_FILTER_AND,
    TALLY_FILTER_OR,
    TALLY_FILTER_NOT,   /* one child */
    TALLY_FILTER_CMP,
} tally_filter_kind;

typedef enum tally_cmp_op {
    TALLY_CMP_EQ,
    TALLY_CMP_NE,
    TALLY_CMP_LT,
    TALLY_CMP_LE,
    TALLY_CMP_GT,
    TALLY_CMP_GE,
    TALLY_CMP_IN,
    TALLY_CMP_NOT_IN,
    TALLY_CMP_IS_SET,
} tally_cmp_op;

typedef struct tally_filter tally_filter;

struct tally_filter {
    tally_filter_kind kind;
    tally_filter *children; /* AND, OR: nchildren; NOT: 1 */
    int nchildren;
    /* CMP */
    int column;
    tally_cmp_op op;
    int other_column;    /* >= 0: compare with this column of the same row */
    tally_value value;   /* EQ..GE (NULL only with EQ/NE); IS_SET: INT 0/1 */
    tally_value *values; /* IN, NOT_IN */
    int nvalues;
};

typedef struct tally_sort_key {
    int column;
    bool descending;
} tally_sort_key;

struct tally_plan;

/* Evaluates f on a row given as one value per column, with the same
 * semantics as the SQL the store builds (core of a step's `expect`).
 * REF values in f are resolved through plan. */
bool tally_filter_matches(const struct tally_plan *plan, const tally_filter *f, const tally_value *cols);

#endif
