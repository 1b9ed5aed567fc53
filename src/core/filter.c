/*
 * filter.c — evaluates a filter on one row in C, for a transaction step's
 * `expect` (a condition on the record or count the step itself returned).
 * Comparisons follow SQLite's: numbers by value whatever their storage
 * class (an integer and a float exactly, not through a double), text
 * bytewise, and the two-valued NULL rule of filter.h.
 */
#include "core/filter.h"

#include <string.h>

#include "core/plan.h"

static bool is_number(const tally_value *v) { return v->kind == TALLY_VALUE_INT || v->kind == TALLY_VALUE_FLOAT; }

/* An integer against a double, exactly (as SQLite compares them): converting
 * the integer to a double would make 2^53 + 1 equal to 2^53. */
static int compare_int_float(int64_t i, double r)
{
    if (r < -9223372036854775808.0)
        return 1;
    if (r >= 9223372036854775808.0)
        return -1;
    int64_t t = (int64_t)r; /* r truncated toward zero: exact in range */
    if (i != t)
        return (i > t) - (i < t);
    /* i == t: what is left is r's fraction (none beyond 2^53, where (double)t == r). */
    double d = (double)t;
    return (d > r) - (d < r);
}

/* <0, 0, >0 like memcmp; both values non-NULL.  A number sorts before text, as in SQLite. */
static int compare(const tally_value *a, const tally_value *b)
{
    if (is_number(a) && is_number(b)) {
        if (a->kind == TALLY_VALUE_INT && b->kind == TALLY_VALUE_INT)
            return (a->u.i > b->u.i) - (a->u.i < b->u.i);
        if (a->kind == TALLY_VALUE_INT)
            return compare_int_float(a->u.i, b->u.f);
        if (b->kind == TALLY_VALUE_INT)
            return -compare_int_float(b->u.i, a->u.f);
        return (a->u.f > b->u.f) - (a->u.f < b->u.f);
    }
    if (is_number(a) != is_number(b))
        return is_number(a) ? -1 : 1;
    size_t n = a->u.text.len < b->u.text.len ? a->u.text.len : b->u.text.len;
    int c = memcmp(a->u.text.ptr, b->u.text.ptr, n);
    if (c)
        return c;
    return (a->u.text.len > b->u.text.len) - (a->u.text.len < b->u.text.len);
}

static bool cmp_matches(const tally_plan *plan, const tally_filter *f, const tally_value *cols)
{
    const tally_value *x = &cols[f->column];
    if (f->op == TALLY_CMP_IS_SET)
        return (x->kind != TALLY_VALUE_NULL) == (f->value.u.i != 0);
    tally_value y = f->other_column >= 0 ? cols[f->other_column] : tally_plan_resolve(plan, &f->value);
    if (f->other_column < 0 && f->value.kind == TALLY_VALUE_NULL && (f->op == TALLY_CMP_EQ || f->op == TALLY_CMP_NE))
        return (x->kind == TALLY_VALUE_NULL) == (f->op == TALLY_CMP_EQ);
    if (x->kind == TALLY_VALUE_NULL)
        return false;
    if (f->op == TALLY_CMP_IN || f->op == TALLY_CMP_NOT_IN) {
        bool found = false;
        for (int i = 0; i < f->nvalues && !found; i++) {
            tally_value v = tally_plan_resolve(plan, &f->values[i]);
            found = v.kind != TALLY_VALUE_NULL && compare(x, &v) == 0;
        }
        return found == (f->op == TALLY_CMP_IN);
    }
    if (y.kind == TALLY_VALUE_NULL)
        return false;
    int c = compare(x, &y);
    switch (f->op) {
    case TALLY_CMP_EQ: return c == 0;
    case TALLY_CMP_NE: return c != 0;
    case TALLY_CMP_LT: return c < 0;
    case TALLY_CMP_LE: return c <= 0;
    case TALLY_CMP_GT: return c > 0;
    case TALLY_CMP_GE: return c >= 0;
    default: return false;
    }
}

bool tally_filter_matches(const tally_plan *plan, const tally_filter *f, const tally_value *cols)
{
    switch (f->kind) {
    case TALLY_FILTER_TRUE: return true;
    case TALLY_FILTER_CMP: return cmp_matches(plan, f, cols);
    case TALLY_FILTER_NOT: return !tally_filter_matches(plan, &f->children[0], cols);
    case TALLY_FILTER_AND:
        for (int i = 0; i < f->nchildren; i++)
            if (!tally_filter_matches(plan, &f->children[i], cols))
                return false;
        return true;
    case TALLY_FILTER_OR:
        for (int i = 0; i < f->nchildren; i++)
            if (tally_filter_matches(plan, &f->children[i], cols))
                return true;
        return false;
    }
    return false;
}
