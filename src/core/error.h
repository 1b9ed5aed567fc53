/*
 * error.h — the one table of Tally's errors.
 *
 * Every failure a caller can see has a row here: its name (the `code` string
 * in an HTTP error body), its HTTP status and a generic text.  The X-macro
 * produces the enum, the name and the status, so the three never drift.
 * Functions return 0 or the negative of a tally_code; the detailed message
 * for a person (what is wrong, where, what to do) lives in a tally_error that
 * the caller passes in beside the handle.
 */
#ifndef TALLY_CORE_ERROR_H
#define TALLY_CORE_ERROR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/*     name                 status  generic text */
#define TALLY_ERRORS(X)                                                                   \
    X(OK,                   200, "ok")                                                    \
    X(BAD_REQUEST,          400, "the request is malformed")                              \
    X(UNAUTHORIZED,         401, "authentication is required")                            \
    X(FORBIDDEN,            403, "not allowed")                                           \
    X(NOT_FOUND,            404, "not found")                                             \
    X(METHOD_NOT_ALLOWED,   405, "method not allowed on this path")                       \
    X(GUARD_FAILED,         409, "the record did not match the guard")                    \
    X(UNIQUE_VIOLATION,     409, "a unique value is already taken")                      \
    X(CONFLICT,             409, "the change conflicts with other records")               \
    X(EXPECTATION_FAILED,   409, "a step's expectation did not hold")                     \
    X(LOCKED,               409, "the lock is held by someone else")                      \
    X(LOCK_LOST,            409, "the lock is no longer held by this token")              \
    X(GONE,                 410, "the change feed no longer keeps that position")         \
    X(PAYLOAD_TOO_LARGE,    413, "the request body is too large")                         \
    X(UPGRADE_REQUIRED,     426, "this call needs another protocol version")              \
    X(HEADERS_TOO_LARGE,    431, "the request's headers are too large")                   \
    X(VALIDATION,           422, "a value does not fit the schema")                       \
    X(INVARIANT,            422, "the change would cross a field's min or max")           \
    X(OVERFLOW,             422, "the integer would overflow 64 bits")                    \
    X(IDEMPOTENCY_MISMATCH, 422, "the idempotency key was used with another request")     \
    X(RATE_LIMITED,         429, "rate limit exceeded")                                   \
    X(TOO_MANY_TRANSACTIONS, 429, "this key has too many interactive transactions open")  \
    X(INTERNAL,             500, "internal error")                                        \
    X(OVERLOADED,           503, "the server is overloaded; retry later")                 \
    X(UNAVAILABLE,          503, "the write could not be made durable; retry")            \
    X(TIMEOUT,              504, "the operation timed out")

typedef enum tally_code {
#define TALLY_X_ENUM(name, status, text) TALLY_##name,
    TALLY_ERRORS(TALLY_X_ENUM)
#undef TALLY_X_ENUM
    TALLY__CODE_COUNT
} tally_code;

/* Why the database gave up on a transaction in a way that running it again may cure. */
typedef enum tally_rerun {
    TALLY_RERUN_NO = 0,
    TALLY_RERUN_CONFLICT, /* a deadlock or serialization failure (PostgreSQL 40P01, 40001): run it again soon */
    TALLY_RERUN_WAIT,     /* a row lock another connection holds, past lock_timeout (55P03): run it again later */
} tally_rerun;

/* A detailed error: filled by the function that failed, read by its caller. */
typedef struct tally_error {
    tally_code code;
    char message[512]; /* for a person: what is wrong and what to do */
    char path[256];    /* where in the request ("email", "_atomics.stock"), or "" */
    int step;          /* in a transaction: the 0-based index of the failing step, else -1 */
    char step_as[64];  /* that step's "as" name, or "" */
    /* The database gave up on the transaction for a reason that running it
     * again may cure: set beside CONFLICT; cleared by tally_fail and
     * tally_error_clear. */
    tally_rerun rerun;
} tally_error;

/* The code's name ("NOT_FOUND"), HTTP status (404) and generic text. */
const char *tally_code_name(tally_code code);
int tally_code_status(tally_code code);
const char *tally_code_text(tally_code code);

/* Clears err to OK (step -1). */
void tally_error_clear(tally_error *err);

/*
 * Fills err (if not NULL) with code, a printf-style message and a path
 * (NULL for none), clears its step, and returns -code so callers can
 * `return tally_fail(...)`.  The arguments may point into err itself
 * (err->message wrapped in a new message): they are read before err is written.
 */
int tally_fail(tally_error *err, tally_code code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
