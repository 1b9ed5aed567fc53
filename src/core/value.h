/*
 * value.h — one stored value, the unit that moves between the API, the plan
 * and the store.
 *
 * Values are typed as SQLite stores them: booleans, datetimes (UTC ms) and
 * belongsTo ids are INT, json is TEXT.  The field's schema type says how to
 * show a value on the wire.  Text is borrowed: it points into the arena of
 * the request (or into the schema for defaults) and carries its length.
 * A REF stands for a value that an earlier step of the same plan produces
 * (a nested create's id); the writer resolves it before binding.
 */
#ifndef TALLY_CORE_VALUE_H
#define TALLY_CORE_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tally_value_kind {
    TALLY_VALUE_NULL = 0,
    TALLY_VALUE_INT,
    TALLY_VALUE_FLOAT,
    TALLY_VALUE_TEXT,
    TALLY_VALUE_REF,
} tally_value_kind;

typedef struct tally_value {
    tally_value_kind kind;
    union {
        int64_t i;
        double f;
        struct { const char *ptr; size_t len; } text;
        struct { int step; int column; } ref; /* column 0 is the id */
    } u;
} tally_value;

static inline tally_value tally_value_null(void) { tally_value v = {0}; return v; }
static inline tally_value tally_value_int(int64_t i) { tally_value v = {.kind = TALLY_VALUE_INT}; v.u.i = i; return v; }
static inline tally_value tally_value_float(double f) { tally_value v = {.kind = TALLY_VALUE_FLOAT}; v.u.f = f; return v; }
static inline tally_value tally_value_text(const char *p, size_t n)
{
    tally_value v = {.kind = TALLY_VALUE_TEXT};
    v.u.text.ptr = p;
    v.u.text.len = n;
    return v;
}
static inline tally_value tally_value_ref(int step, int column)
{
    tally_value v = {.kind = TALLY_VALUE_REF};
    v.u.ref.step = step;
    v.u.ref.column = column;
    return v;
}

/* The value as a double (INT or FLOAT), for comparisons with min/max. */
double tally_value_as_double(const tally_value *v);

/* Number of Unicode code points in valid UTF-8 text (what maxLength counts). */
size_t tally_utf8_length(const char *s, size_t len);

/* True if s[0..len) is a Tally identifier: [A-Za-z][A-Za-z0-9_]*, at most 63 bytes. */
bool tally_is_identifier(const char *s, size_t len);

#endif
