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

/* Runs SQL with no result rows; on failure fills err (INTERNAL) with SQLite's message. */
int tally_sqlite_exec(tally_store *st, const char *sql, tally_error *err);

#endif
