/* json_in.c — request JSON text to a jansson tree, refusals in our words; see json_in.h. */
#include "api/json_in.h"

#include "core/json_arena.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char NUL_RULE[] = "strings may not contain the NUL character (\\u0000)";

/* ---- integers past 64 bits ------------------------------------------------------ */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Whether the decimal digits d[0..n) (no sign, no leading zeros) exceed the
 * magnitude a signed 64-bit integer allows (one more when negative). */
static bool beyond_int64(const char *d, size_t n, bool negative)
{
    while (n > 1 && d[0] == '0') {
        d++;
        n--;
    }
    const char *limit = negative ? "9223372036854775808" : "9223372036854775807";
    if (n != 19)
        return n > 19;
    return memcmp(d, limit, 19) > 0;
}

size_t tally_json_widen_integers(const char *text, size_t len, tally_buf *out)
{
    size_t widened = 0, i = 0;
    while (i < len) {
        char c = text[i];
        if (c == '"') { /* a string: copied as it is, escapes included */
            size_t j = i + 1;
            while (j < len && text[j] != '"')
                j += text[j] == '\\' ? 2 : 1;
            j = j < len ? j + 1 : len;
            tally_buf_addn(out, text + i, j - i);
            i = j;
            continue;
        }
        if (c != '-' && !is_digit(c)) {
            tally_buf_addc(out, c);
            i++;
            continue;
        }
        size_t start = i, digits;
        bool negative = c == '-';
        if (negative)
            i++;
        digits = i;
        while (i < len && is_digit(text[i]))
            i++;
        bool real = i < len && (text[i] == '.' || text[i] == 'e' || text[i] == 'E');
        while (i < len && (is_digit(text[i]) || strchr(".eE+-", text[i])))
            i++; /* the rest of the number (or of whatever it is: jansson judges) */
        tally_buf_addn(out, text + start, i - start);
        if (!real && i > digits && beyond_int64(text + digits, i - digits, negative) && (i == len || !strchr(".eE+-", text[i]))) {
            tally_buf_add(out, ".0");
            widened++;
        }
    }
    return widened;
}

bool tally_json_is_huge_integer(const json_t *v)
{
    if (!json_is_real(v))
        return false;
    double d = json_real_value(v);
    return d == floor(d) && (d >= 9223372036854775808.0 || d < -9223372036854775808.0);
}

/* ---- NUL characters ------------------------------------------------------------- */

/* Whether any string value holds a NUL (keys cannot: jansson refuses them). */
static bool has_nul(json_t *v)
{
    if (json_is_string(v))
        return memchr(json_string_value(v), '\0', json_string_length(v)) != NULL;
    const char *key;
    size_t i;
    json_t *item;
    if (json_is_object(v)) {
        json_object_foreach(v, key, item)
            if (has_nul(item))
                return true;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
            if (has_nul(item))
                return true;
    }
    return false;
}

/* The same walk, building the path of the first such string (error path only). */
static bool find_nul(json_t *v, char *path, size_t len, size_t cap)
{
    if (json_is_string(v))
        return memchr(json_string_value(v), '\0', json_string_length(v)) != NULL;
    if (json_is_object(v)) {
        const char *key;
        json_t *item;
        json_object_foreach(v, key, item) {
            snprintf(path + len, cap - len, "%s%s", len ? "." : "", key);
            if (find_nul(item, path, strlen(path), cap))
                return true;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            snprintf(path + len, cap - len, "[%zu]", i);
            if (find_nul(item, path, strlen(path), cap))
                return true;
        }
    }
    path[len] = '\0';
    return false;
}

bool tally_json_find_nul(json_t *v, const char *prefix, char *path, size_t cap)
{
    size_t n = prefix ? strnlen(prefix, cap - 1) : 0;
    memcpy(path, prefix ? prefix : "", n);
    path[n] = '\0';
    if (!has_nul(v))
        return false;
    return find_nul(v, path, strlen(path), cap);
}

/* ---- jansson's errors, in our words ---------------------------------------------- */

/* The text jansson quotes after "near '...'", if any, into near (empty if none). */
static void near_text(const json_error_t *jerr, char *near, size_t cap)
{
    near[0] = '\0';
    const char *p = strstr(jerr->text, "near '");
    if (!p)
        return;
    p += 6;
    const char *end = strrchr(p, '\'');
    size_t n = end && end > p ? (size_t)(end - p) : strlen(p);
    if (n > 40)
        n = 40;
    snprintf(near, cap, " (near %.*s)", (int)n, p);
}

/* What is wrong, for a syntax error, from jansson's kind of message. */
static const char *syntax_problem(const char *text)
{
    static const struct { const char *jansson, *ours; } table[] = {
        {"control character", "a string holds a raw control character (write it escaped, such as \\n or \\u0001)"},
        {"invalid escape", "a string holds an invalid escape (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX)"},
        {"invalid token", "a value is not JSON (strings go in double quotes; true, false and null are lower case)"},
        {"invalid Unicode", "a \\u escape is not a Unicode character (a lone surrogate half?)"},
        {"':' expected", "an object key is not followed by ':'"},
        {"'}' expected", "an object is missing a ',' between members or its closing '}'"},
        {"']' expected", "a list is missing a ',' between items or its closing ']'"},
        {"string or '}' expected", "an object key is not a string in double quotes"},
        {"'[' or '{' expected", "it must be a JSON object {...} (or a list)"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strstr(text, table[i].jansson))
            return table[i].ours;
    return "there is text that is not JSON (check quotes, commas and brackets)";
}

static int translate(const json_error_t *jerr, const char *what, const char *path, tally_error *err)
{
    char near[64];
    near_text(jerr, near, sizeof near);
    const char *p = path && path[0] ? path : NULL;
    int line = jerr->line, col = jerr->column;
    switch (json_error_code(jerr)) {
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return tally_fail(err, TALLY_VALIDATION, p, "%s; an object key in %s at line %d, column %d holds one: "
                          "remove it", NUL_RULE, what, line, col);
    case json_error_invalid_utf8:
        return tally_fail(err, TALLY_BAD_REQUEST, p, "%s is not valid UTF-8 at line %d, column %d: send JSON as "
                          "UTF-8 text", what, line, col);
    case json_error_premature_end_of_input:
        return tally_fail(err, TALLY_BAD_REQUEST, p, "%s is not valid JSON: it ends at line %d, column %d before "
                          "every string, object and list is closed (was all of it sent?)", what, line, col);
    case json_error_end_of_input_expected:
        return tally_fail(err, TALLY_BAD_REQUEST, p, "%s is not valid JSON: more text follows the JSON value at "
                          "line %d, column %d%s; send one value", what, line, col, near);
    case json_error_stack_overflow:
        return tally_fail(err, TALLY_BAD_REQUEST, p, "%s nests objects and lists deeper than %d levels (line %d, "
                          "column %d)", what, JSON_PARSER_MAX_DEPTH, line, col);
    case json_error_duplicate_key:
        return tally_fail(err, TALLY_BAD_REQUEST, p, "%s gives the same key twice in one object at line %d, column "
                          "%d%s: give each key once", what, line, col, near);
    case json_error_numeric_overflow:
        return tally_fail(err, TALLY_VALIDATION, p, "%s holds a number too large for a double (about "
                          "1.8e308 at most) at line %d, column %d%s", what, line, col, near);
    case json_error_out_of_memory:
        return tally_fail(err, TALLY_OVERLOADED, p, "the server is out of memory reading %s; retry later", what);
    default:
        return tally_fail(err, TALLY_BAD_REQUEST, p, "%s is not valid JSON at line %d, column %d%s: %s", what, line,
                          col, near, syntax_problem(jerr->text));
    }
}

json_t *tally_json_parse(const char *text, size_t len, const char *what, const char *path, int flags, tally_error *err)
{
    size_t jflags = JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | (flags & TALLY_JSON_ANY ? JSON_DECODE_ANY : 0);
    json_error_t jerr;
    tally_json_arena_begin(); /* the document's values from this thread's block (json_arena.h) */
    json_t *root = json_loadb(text, len, jflags, &jerr);
    if (!root && json_error_code(&jerr) == json_error_numeric_overflow) {
        /* An integer past 64 bits (or a double past its range): read such
         * integers as doubles and try again; what still fails is a double. */
        tally_buf wide;
        tally_buf_init(&wide);
        if (tally_json_widen_integers(text, len, &wide) > 0)
            root = json_loadb(wide.s, wide.len, jflags, &jerr);
        tally_buf_free(&wide);
    }
    tally_json_arena_end();
    if (!root) {
        translate(&jerr, what, path, err);
        return NULL;
    }
    char where[256];
    if (tally_json_find_nul(root, path, where, sizeof where)) {
        json_decref(root);
        tally_fail(err, TALLY_VALIDATION, where[0] ? where : NULL, "%s; the string at %s does: remove it, or encode "
                   "binary data (as base64, for instance)", NUL_RULE, where[0] ? where : what);
        return NULL;
    }
    return root;
}
