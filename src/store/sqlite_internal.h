/*
 * sqlite_internal.h — what sqlite.c and migrate.c share about an SQLite
 * connection: the handle and its prepared-statement cache.  Not for other layers.
 */
#ifndef TALLY_STORE_SQLITE_INTERNAL_H
#define TALLY_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

#define TALLY_STMT_CACHE 512 /* power of two */

typedef struct tally_cached_stmt {
    char *sql;
    sqlite3_stmt *stmt;
} tally_cached_stmt;

struct tally_store {
    sqlite3 *db;
    const tally_schema *schema;
    tally_store_role role;
    int wal_frames;          /* WAL size after the last commit, from the WAL hook */
    int ncached;
    tally_cached_stmt cache[TALLY_STMT_CACHE];
    sqlite3_stmt *savepoint, *release, *rollback_to, *begin, *commit;
};

/* The cached prepared statement for sql (reset, bindings cleared after each use by the caller). */
sqlite3_stmt *tally_sqlite_stmt(tally_store *st, const char *sql, tally_error *err);
/* Lock steps (sqlite_locks.c) and GCRA limit steps (sqlite_limits.c). */
int tally_sqlite_lock(tally_store *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err);
int tally_sqlite_limit(tally_store *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err);

/* Runs SQL with no result rows; on failure fills err (INTERNAL) with SQLite's message. */
int tally_sqlite_exec(tally_store *st, const char *sql, tally_error *err);

#endif
