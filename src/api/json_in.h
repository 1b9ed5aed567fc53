/*
 * json_in.h — request JSON text to a jansson tree, with every refusal in
 * Tally's words (what is wrong, where: line and column or a field path,
 * what to do), never jansson's.
 *
 * Three rules hold for every JSON a client sends (an HTTP body, a query
 * parameter, a WebSocket message):
 *   - duplicate keys are refused;
 *   - no string or key may hold the NUL character (\u0000): PostgreSQL text
 *     cannot store it, so it is refused on every backend alike (422
 *     VALIDATION naming the path);
 *   - an integer literal outside the signed 64-bit range is read as a double
 *     (JSON.stringify writes 1.2345678901234567e19 as 12345678901234567000),
 *     so a float field takes it; integers inside the range stay exact
 *     integers.  A decoder that needs an integer sees such a value with
 *     tally_json_is_huge_integer and answers OVERFLOW.
 * The tree returned is the caller's (json_decref); text is borrowed.
 */
#ifndef TALLY_API_JSON_IN_H
#define TALLY_API_JSON_IN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

enum {
    TALLY_JSON_DOCUMENT = 0, /* an object or a list (the caller judges which it takes) */
    TALLY_JSON_ANY = 1,      /* any JSON value, such as a query parameter's 5 or "x" */
};

/* Parses text.  what names it in messages ("the body", "filter"); path
 * prefixes the paths of errors inside it ("" at the top, "filter" for the
 * filter parameter).  NULL on error, err filled: 400 BAD_REQUEST for text
 * that is not JSON, 422 VALIDATION for a NUL character. */
json_t *tally_json_parse(const char *text, size_t len, const char *what, const char *path, int flags,
                         tally_error *err);

/* Copies text into out, writing ".0" after each integer literal (outside
 * strings) that does not fit a signed 64-bit integer, so that jansson reads
 * it as a double.  Returns how many literals were widened. */
size_t tally_json_widen_integers(const char *text, size_t len, tally_buf *out);

/* Whether v is a double holding a whole number outside the signed 64-bit
 * range: what an integer literal too large for 64 bits became. */
bool tally_json_is_huge_integer(const json_t *v);

/* Writes into path (prefixed by prefix) where the first string value or key
 * that holds a NUL character is ("name", "items[2].label"); false if none. */
bool tally_json_find_nul(json_t *v, const char *prefix, char *path, size_t cap);

#endif
