/*
 * tally.h — libtally: Tally's engine as a C library, with no HTTP in between.
 *
 * One `tally` handle is one open database: its schema (migrated at open),
 * its connections, its writer threads (group commit: an answer means the
 * write is on disk) and readers.  A program may open several, of different
 * databases, in one process; the library keeps no global state besides the
 * one-time set-up described under "jansson" below.
 *
 *   tally *t;
 *   tally_error err;
 *   if (tally_open("schema.json", "data", NULL, &t, &err) != 0) {
 *       fprintf(stderr, "%s\n", err.message);
 *       return 1;
 *   }
 *   int64_t now;
 *   tally_increment(t, "customer", 1, "orderCount", 1, &now, &err);
 *   tally_answer a;
 *   tally_call(t, "GET", "/api/customer/1", NULL, 0, &a);
 *   printf("%d %.*s\n", a.status, (int)a.len, a.body);
 *   tally_answer_free(&a);
 *   tally_close(t);
 *
 * Calls.  tally_call takes what an HTTP client sends to `tally serve` (a
 * method, a path under /api with an optional ?query, a JSON body) and gives
 * what it would get back (the status and the JSON body); README.md documents
 * every path.  The embedding program is trusted: API keys, origins and hosts
 * are not checked.  tally_increment is the same as a PATCH with one
 * `_atomics` increment, without JSON either way.
 *
 * Threads.  Every function may be called from any thread, at once, on one
 * handle: concurrent writes share group commits exactly as HTTP clients'
 * requests do.  The synchronous calls (tally_call, tally_increment,
 * tally_close) block the calling thread until the answer is final (a write:
 * committed and durable).  A tally_call_async callback runs on one of the
 * engine's threads; while it runs, that thread is the engine's, so a
 * synchronous call from inside a callback would wait for itself: the library
 * detects it and refuses with TALLY_BAD_REQUEST (tally_call_async itself is
 * allowed there).  A callback should be short and must not block on what an
 * application thread holds while it waits on tally.
 *
 * Errors.  Functions return 0, or a negative code: -TALLY_NOT_FOUND and so
 * on, from the same table as the HTTP answers' "code" (tally_code_name gives
 * the name, such as "NOT_FOUND").  Where a function takes a tally_error, it
 * fills it with the code and a message for a person (what is wrong and what
 * to do); a tally_error may be NULL where the message is not wanted.
 *
 * Ownership, for every pointer in this file:
 *   - const char * arguments are borrowed for the duration of the call only;
 *     the library copies what it keeps.
 *   - a tally * is the program's from tally_open until tally_close, which
 *     frees it: no call may start once tally_close may have returned (a
 *     call that starts while it runs is refused with TALLY_OVERLOADED).
 *   - a tally_answer filled by tally_call is the program's: release it with
 *     tally_answer_free.  The answer given to a tally_done_fn is the
 *     library's, valid until the callback returns (copy what you keep).
 *   - the ctx pointer of tally_call_async is never looked at, only handed
 *     back to the callback.
 *   - a tally_options is read during tally_open only.
 *
 * jansson.  The engine parses JSON with jansson through an allocator of its
 * own (a bump allocator per thread), which the first tally_open installs
 * once per process with json_set_alloc_funcs.  A program that links
 * libtally and jansson itself must therefore not call json_set_alloc_funcs,
 * and must not create jansson values before its first tally_open (values
 * made after it are fine: they are freed by the same allocator).
 *
 * Signals.  The engine's threads block every signal, so a process signal
 * always goes to one of the program's own threads.
 */
#ifndef TALLY_H
#define TALLY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TALLY_EXTERN __attribute__((visibility("default")))
#else
#define TALLY_EXTERN
#endif

/* An open database.  Opaque: only through the functions below. */
typedef struct tally tally;

/*
 * The error codes, in the order of the engine's one error table
 * (src/core/error.h; a unit test checks that the two agree).  The value is
 * the code; functions return its negative.  The library's own sources see
 * the table itself instead of this copy.
 */
#ifndef TALLY_CORE_ERROR_H
typedef enum tally_code {
    TALLY_OK = 0,
    TALLY_BAD_REQUEST,          /* 400 the request is malformed (or a call made where it may not be) */
    TALLY_UNAUTHORIZED,         /* 401 */
    TALLY_FORBIDDEN,            /* 403 */
    TALLY_NOT_FOUND,            /* 404 no such model, field, record or path */
    TALLY_METHOD_NOT_ALLOWED,   /* 405 */
    TALLY_GUARD_FAILED,         /* 409 the record did not match the guard */
    TALLY_UNIQUE_VIOLATION,     /* 409 */
    TALLY_CONFLICT,             /* 409 */
    TALLY_EXPECTATION_FAILED,   /* 409 a transaction step's expectation did not hold */
    TALLY_LOCKED,               /* 409 */
    TALLY_LOCK_LOST,            /* 409 */
    TALLY_GONE,                 /* 410 a change-feed position older than what the feed keeps */
    TALLY_PAYLOAD_TOO_LARGE,    /* 413 the body is larger than tally_options.max_body */
    TALLY_UPGRADE_REQUIRED,     /* 426 */
    TALLY_HEADERS_TOO_LARGE,    /* 431 */
    TALLY_VALIDATION,           /* 422 a value does not fit the schema */
    TALLY_INVARIANT,            /* 422 the change would cross a field's min or max */
    TALLY_OVERFLOW,             /* 422 the integer would overflow 64 bits */
    TALLY_IDEMPOTENCY_MISMATCH, /* 422 */
    TALLY_RATE_LIMITED,         /* 429 */
    TALLY_TOO_MANY_TRANSACTIONS, /* 429 */
    TALLY_INTERNAL,             /* 500 a fault of the library, or the database refused to open */
    TALLY_OVERLOADED,           /* 503 the queue is full, or the handle is closing: nothing was applied */
    TALLY_UNAVAILABLE,          /* 503 the write could not be made durable: nothing was applied */
    TALLY_TIMEOUT,              /* 504 */
    TALLY__CODE_COUNT
} tally_code;

/* A detailed error.  The same layout as the engine's own. */
typedef struct tally_error {
    tally_code code;    /* TALLY_OK after success */
    char message[512];  /* for a person: what is wrong and what to do (NUL-terminated) */
    char path[256];     /* where in the request ("_atomics.stock"), or "" */
    int step;           /* a transaction's failing step (0-based), else -1 */
    char step_as[64];   /* that step's "as" name, or "" */
    int rerun;          /* not 0: the database gave up for a reason that running the call again may cure */
} tally_error;

/* The code's name ("NOT_FOUND"; a static string), and its HTTP status (404). */
TALLY_EXTERN const char *tally_code_name(tally_code code);
TALLY_EXTERN int tally_code_status(tally_code code);
#endif

/* The version, "0.13.0" (a static string). */
TALLY_EXTERN const char *tally_version(void);

/* ---- opening and closing ---------------------------------------------------- */

/* Called with each change a migration at open makes, one line of text
 * (borrowed for the call), on the thread that called tally_open. */
typedef void (*tally_migration_fn)(const char *change, void *ctx);

/*
 * How to open.  Fill with tally_options_init, then change what you need:
 * fields added in later versions then keep their defaults.  A number left
 * 0 (or negative) is its default, shown in parentheses.
 */
typedef struct tally_options {
    int relaxed_durability;   /* SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off: a power cut
                                 (or a database server crash) may lose the last commits (default 0) */
    int allow_destructive;    /* let the migration drop models and fields the schema no longer has (0) */
    int portable;             /* PostgreSQL: no advisory locks, no LISTEN/NOTIFY (0) */
    long queue_max;           /* writes that may wait for the writer before new ones get OVERLOADED (10000) */
    long batch_max;           /* writes committed together at most (256) */
    long queue_timeout_ms;    /* a write waiting longer gets OVERLOADED, unapplied (10000) */
    long idempotency_ttl_ms;  /* how long Idempotency-Key answers are kept (86400000) */
    int lanes;                /* PostgreSQL writer connections (0: the backend's default, 4) */
    int sessions;             /* PostgreSQL interactive transactions open at once (0: 16) */
    int max_txn_steps;        /* steps in one POST /api/transaction at most (1000) */
    long max_txn_ms;          /* longest interactive transaction (5000) */
    size_t max_body;          /* largest tally_call body in bytes (1048576); larger: PAYLOAD_TOO_LARGE */
    long changes_retention_ms; /* how long the change feed keeps a change (0: a day) */
    long changes_max_rows;    /* the most changes it keeps (0: no bound by rows) */
    tally_migration_fn on_migration; /* may be NULL */
    void *on_migration_ctx;
} tally_options;

TALLY_EXTERN void tally_options_init(tally_options *options);

/*
 * Opens a database, migrating it to the schema, and starts its threads.
 *
 * schema: a schema file's path, or the schema's JSON text itself (anything
 * whose first non-blank character is '{'); README.md, section Schema.
 * db: a SQLite data folder (created if missing; its tally.db and WAL live
 * in it, and it is locked for as long as it is open, so that no other
 * process, and no other handle of this one, serves it at the same time), or
 * "sqlite:DIR" (the same), or a "postgresql://USER[:PASSWORD]@HOST:PORT/DB"
 * URL.  options: NULL for the defaults.
 *
 * 0 with *out set, or a negative code with *out NULL and err (may be NULL)
 * saying why: a bad schema names the model and field; a URL in a message
 * never shows its password.
 */
TALLY_EXTERN int tally_open(const char *schema, const char *db, const tally_options *options, tally **out,
                            tally_error *err);

/*
 * Closes t: refuses calls that start from now on (TALLY_OVERLOADED), runs
 * and answers every call already made (synchronous callers return with
 * their answers, callbacks run; a lock acquire waiting with waitMs is
 * answered LOCKED), joins the threads, closes the database, releases the
 * data folder's lock and frees t.  Returns 0; or -TALLY_BAD_REQUEST, doing
 * nothing, when called from a callback.  Call it once, from a thread that
 * knows no other thread will start a call on t after it returns: t is gone
 * then, and using it is undefined (as with sqlite3_close).
 */
TALLY_EXTERN int tally_close(tally *t);

/* ---- calls -------------------------------------------------------------------- */

/* An answer: an HTTP status and a JSON body.  body is NUL-terminated (len
 * excludes the NUL) and never NULL. */
typedef struct tally_answer {
    int status;
    char *body;
    size_t len;
} tally_answer;

/* Frees a's body (a is left with body NULL); NULL or an already freed answer is fine. */
TALLY_EXTERN void tally_answer_free(tally_answer *a);

/*
 * The whole API: method ("GET", "POST", "PATCH", "PUT", "DELETE"), path
 * ("/api/customer/1", "/api/customer?first=10"), the JSON body (NULL with
 * len 0 for none; len -1: body is NUL-terminated).  Blocks until the answer
 * is final: for a write, durable.  Fills *answer (the caller's: release it
 * with tally_answer_free) and returns 0, whatever the status: a 4xx is an
 * answer too (its body is the API's error object, {"error": {"code": …,
 * "message": …}}).  Returns a negative code, with *answer filled all the
 * same (that error as the API would answer it), when the call could not be
 * made: -TALLY_BAD_REQUEST for a NULL argument or a call from a callback,
 * -TALLY_OVERLOADED while t closes.
 */
TALLY_EXTERN int tally_call(tally *t, const char *method, const char *path, const char *body, ptrdiff_t len,
                            tally_answer *answer);

/*
 * The callback of tally_call_async: answer is borrowed (valid until the
 * callback returns), ctx is what was given.  It runs on an engine thread,
 * once the answer is final (a write: durable); see "Threads" above.
 */
typedef void (*tally_done_fn)(const tally_answer *answer, void *ctx);

/*
 * tally_call without waiting: 0, and on_done will run exactly once, or a
 * negative code (a NULL argument; t is closing) and on_done will not run.
 * When the request is refused before it needs the engine (malformed JSON,
 * an unknown path or model), on_done runs at once, on the calling thread,
 * before tally_call_async returns.  tally_close waits for every callback.
 */
TALLY_EXTERN int tally_call_async(tally *t, const char *method, const char *path, const char *body, ptrdiff_t len,
                                  tally_done_fn on_done, void *ctx);

/*
 * The commonest call without JSON: adds `by` (negative to subtract) to the
 * integer field of record id of model, as PATCH /api/<model>/<id> with
 * {"_atomics": {"<field>": {"increment": by}}} would, with the same group
 * commit, min/max checks and errors.  Blocks until it is durable; 0 with
 * *new_value (may be NULL) the field's value after this very increment, or a
 * negative code with err (may be NULL) saying why: -TALLY_NOT_FOUND (no such
 * model, field or record), -TALLY_BAD_REQUEST (not an integer field; called
 * from a callback), -TALLY_INVARIANT (past min or max), -TALLY_OVERFLOW.
 */
TALLY_EXTERN int tally_increment(tally *t, const char *model, int64_t id, const char *field, int64_t by,
                                 int64_t *new_value, tally_error *err);

#ifdef __cplusplus
}
#endif

#endif
