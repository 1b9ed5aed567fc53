/*
 * internal.h — what the files of the PostgreSQL backend share: the
 * connection struct, the query helper (values only as bound parameters),
 * reading binary results, and the error mapper.  Not for other layers: exec/
 * sees only store/backend.h and tally_postgres_backend.
 *
 *   connection.c   open/close, session settings, transactions, the ops table, the query helper
 *                  (one pipeline a round trip: queued transaction statements, then the statement)
 *   pipeline.c     what is queued and what is prepared (pure bookkeeping, unit tested)
 *   errors.c       SQLSTATE and diagnostics -> Tally's errors (pure: no I/O)
 *   steps.c        record steps (get, list, create, upsert, update, updateMany, delete, deleteMany)
 *   migrate.c      tables, indexes, SQL functions, under an advisory lock
 *   locks.c        leases with fencing tokens
 *   limits.c       GCRA rate limits
 *   idempotency.c  stored answers for Idempotency-Key, and the sweep
 *   hints.c        LISTEN/NOTIFY wake-up hints for lock waiters on other servers
 *   keys.c         API keys and the generation every server's cache watches
 *   feed.c         the change feed: the outbox, its triggers, the sequencer, pages, the purge
 */
#ifndef TALLY_STORE_POSTGRES_INTERNAL_H
#define TALLY_STORE_POSTGRES_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/backend.h"
#include "store/postgres/pipeline.h"

/* Type OIDs of the values Tally binds and reads (pg_type.h is server-side). */
enum {
    TALLY_PG_BOOL = 16, TALLY_PG_BYTEA = 17, TALLY_PG_INT8 = 20, TALLY_PG_INT2 = 21, TALLY_PG_INT4 = 23,
    TALLY_PG_TEXT = 25, TALLY_PG_FLOAT4 = 700, TALLY_PG_FLOAT8 = 701, TALLY_PG_VARCHAR = 1043,
};

/* How long a writer lane waits for a row lock before it gives the request back to run later. */
#define TALLY_PG_LOCK_TIMEOUT "100ms"

/* Advisory lock keys: migrations (one server at a time), sweeps (likewise).
 * With --portable, rows 'migrate' and 'sweep' of tally_meta instead. */
#define TALLY_PG_MIGRATE_LOCK 0x74616c6c796d6967LL /* "tallymig" */
#define TALLY_PG_SWEEP_LOCK 0x74616c6c79737770LL   /* "tallyswp" */

typedef struct tally_pg {
    tally_store base;           /* first: the dispatch of backend.h */
    PGconn *conn;               /* owned */
    const tally_schema *schema; /* borrowed */
    tally_store_role role;
    bool relaxed;
    bool portable;              /* no advisory locks, no LISTEN/NOTIFY (tally_store_options) */
    tally_pg_tx tx;             /* our transaction: what reached the server, what is queued for it */
    tally_pg_stmts stmts;       /* prepared statements of this connection */
    unsigned char batch_id[16]; /* a writer batch's id in tally_batches, written with its clock read */
    bool batch_recorded;        /* the open transaction wrote batch_id (pg_clock_ms) */
    int64_t changes_retention_ms, changes_max_rows; /* the change feed's bounds (tally_store_options) */
    char where[512];            /* the URL without its password, for messages */
} tally_pg;

/* What PostgreSQL said about a failed statement (pointers into the PGresult, or NULL). */
typedef struct tally_pg_diag {
    const char *sqlstate;   /* "23514" ..., or NULL when no answer came (connection lost) */
    const char *message;    /* primary message */
    const char *constraint; /* PG_DIAG_CONSTRAINT_NAME */
    const char *column;     /* PG_DIAG_COLUMN_NAME */
    const char *table;      /* PG_DIAG_TABLE_NAME */
    bool lost;              /* the connection is gone */
} tally_pg_diag;

/*
 * Runs sql with n values bound as $1..$n (REFs resolved through plan, which
 * may be NULL when there are none), binary results.  0 with *out the result
 * (PGRES_TUPLES_OK / PGRES_COMMAND_OK), or -1 with *out the failed result or
 * NULL; either way the caller PQclears *out.  diag, if not NULL, is filled on
 * failure (pointing into *out).
 */
int tally_pg_query(tally_pg *st, const tally_plan *plan, const char *sql, const tally_value *v, int n, PGresult **out,
                   tally_pg_diag *diag);
/* The same, with as[i] (when not 0) the type of value i: TALLY_PG_BYTEA sends a
 * TEXT value's bytes as they are (lock names and limit keys from a URL path
 * need not be UTF-8). */
int tally_pg_query_as(tally_pg *st, const tally_plan *plan, const char *sql, const tally_value *v, int n,
                      const Oid *as, PGresult **out, tally_pg_diag *diag);
/* The same with the libpq arrays as they are (binary parameters, binary results). */
int tally_pg_run(tally_pg *st, const char *sql, int n, const Oid *types, const char *const *values,
                 const int *lengths, const int *formats, PGresult **out, tally_pg_diag *diag);
/* Runs SQL text with no parameters and no rows wanted (several statements allowed).
 * On failure err (if not NULL) is INTERNAL "PostgreSQL: <message> (in: <sql>)": for migrations. */
int tally_pg_exec(tally_pg *st, const char *sql, tally_error *err);
/* Fills diag from a failed result (NULL: no answer). */
void tally_pg_diag_of(tally_pg *st, const PGresult *res, tally_pg_diag *diag);

/* Reading binary results. */
int64_t tally_pg_int(const PGresult *res, int row, int c);
double tally_pg_float(const PGresult *res, int row, int c);
/* One record of model m from result row `row` (columns in model order, from
 * column `first`), every value copied into arena. */
void tally_pg_read_record(const PGresult *res, int row, int first, const tally_model *m, tally_arena *arena,
                          tally_record *out);

/* Whether reads should lock what they read (inside a transaction, not a reader). */
bool tally_pg_locking(const tally_pg *st);
/* Whether a transaction of ours is open and not aborted. */
bool tally_pg_in_txn(const tally_pg *st);

/*
 * The error mapper (errors.c): the failure of step s in Tally's terms, with
 * the SQLite backend's messages and paths.  Pure: it runs no statement (the
 * transaction is aborted by then).  For a delete, the caller has already
 * looked for restricting links before running it.
 */
int tally_pg_map_error(tally_plan *plan, const tally_step *s, const tally_pg_diag *d, tally_error *err);
/* A failure outside a record step (locks, limits, idempotency, transactions):
 * connection loss -> UNAVAILABLE, 40001/40P01 -> CONFLICT with rerun, else
 * UNAVAILABLE "the database could not <what>; retry". */
int tally_pg_fail(const tally_pg_diag *d, const char *what, tally_error *err);
/* Logs a failure the person will not see in detail (server log, stderr). */
void tally_pg_log(const tally_pg_diag *d, const char *sql);

/* Step kinds by file. */
int tally_pg_record_step(tally_pg *st, tally_plan *plan, int i, tally_error *err);
int tally_pg_lock(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err);
int tally_pg_limit(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err);
int tally_pg_migrate(tally_store *base, unsigned flags, tally_buf *changes, tally_error *err);
int tally_pg_idem_get(tally_store *base, const tally_idem_key *k, tally_idem_answer *out, tally_error *err);
int tally_pg_idem_put(tally_store *base, const tally_idem_key *k, int status, const char *body, size_t len,
                      int64_t now_ms, tally_error *err);
int tally_pg_sweep(tally_store *base, int64_t now_ms, int64_t idem_ttl_ms);
/* hints.c: the hint_* ops of backend.h. */
int tally_pg_hint_listen(tally_store *base, tally_error *err);
int tally_pg_hint_send(tally_store *base, const char *const *names, const size_t *lens, int n, tally_error *err);
int tally_pg_hint_take(tally_store *base, void (*on)(void *ctx, const char *name, size_t len), void *ctx,
                       tally_error *err);
/* Portable mode's stand-in for an advisory lock (migrate.c): locks the row
 * `name` of tally_meta FOR UPDATE, waiting (wait) or not; 1 when held, 0 when
 * another transaction holds it (only without wait), or -code. */
int tally_pg_meta_lock(tally_pg *st, const char *name, bool wait, tally_error *err);
/* The change feed (feed.c): tables and the capture function (run by the
 * migration), each model's triggers, the feed_* ops, the sweep's purge. */
extern const char tally_pg_feed_tables[];
int tally_pg_feed_install(tally_pg *st, tally_error *err);
int tally_pg_feed_read(tally_store *base, tally_plan *plan, tally_error *err);
int tally_pg_feed_state(tally_store *base, tally_feed_state *out, tally_error *err);
int tally_pg_feed_sequence(tally_store *base, int *numbered, tally_error *err);
int tally_pg_feed_purge(tally_pg *st, int64_t now_ms);
int tally_pg_feed_merge(tally_store *base, const tally_model *m, int64_t id, int n, const char *merged,
                        tally_error *err);
/* API keys (keys.c); the tables' DDL is also run by the migration. */
extern const char tally_pg_keys_tables[];
int tally_pg_keys_prepare(tally_store *base, tally_error *err);
int tally_pg_keys_state(tally_store *base, tally_keys_state *out, tally_error *err);
int tally_pg_keys_list(tally_store *base, tally_key_row **rows, int *n, tally_keys_state *state, tally_error *err);
int tally_pg_keys_create(tally_store *base, tally_key_row *row, tally_error *err);
int tally_pg_keys_revoke(tally_store *base, const char *name, tally_error *err);


#endif
