/*
 * internal.h — what the SQLite backend's files share about one connection:
 * the handle and its prepared-statement cache.  Not for other layers: exec/
 * reaches these only through the ops table (store/backend.h).
 */
#ifndef TALLY_STORE_SQLITE_INTERNAL_H
#define TALLY_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "store/backend.h"

#define TALLY_STMT_CACHE 512 /* power of two */

typedef struct tally_cached_stmt {
    char *sql;
    sqlite3_stmt *stmt;
} tally_cached_stmt;

typedef struct tally_sqlite {
    tally_store base; /* first: a tally_sqlite is a tally_store */
    sqlite3 *db;
    const tally_schema *schema;
    tally_store_role role;
    int wal_frames;          /* WAL size after the last commit, from the WAL hook */
    int64_t fence_floor;     /* a new lock name's first fence lies above this: the restore generation's floor
                                (store/backup.h), read by the migration */
    int64_t changes_retention_ms, changes_max_rows; /* the feed's bounds (tally_store_options) */
    int ncached;
    tally_cached_stmt cache[TALLY_STMT_CACHE];
    sqlite3_stmt *savepoint, *release, *rollback_to, *begin, *commit;
    /* SELECT a record by id, per model (schema order), prepared on first use:
     * every write reads its record back, so this one skips the text cache. */
    sqlite3_stmt **by_id;
} tally_sqlite;

/* The cached prepared statement for sql (reset, bindings cleared after each use by the caller). */
sqlite3_stmt *tally_sqlite_stmt(tally_sqlite *st, const char *sql, tally_error *err);
/* Lock steps (sqlite_locks.c) and GCRA limit steps (sqlite_limits.c). */
int tally_sqlite_lock(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err);
int tally_sqlite_limit(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err);

/* Runs SQL with no result rows; on failure fills err (INTERNAL) with SQLite's message. */
int tally_sqlite_exec(tally_sqlite *st, const char *sql, tally_error *err);

/* The ops of the other files (connection.c assembles the table). */
int tally_sqlite_migrate(tally_store *st, unsigned flags, tally_buf *changes, tally_error *err);
int tally_sqlite_idem_get(tally_store *st, const tally_idem_key *k, tally_idem_answer *out, tally_error *err);
int tally_sqlite_idem_put(tally_store *st, const tally_idem_key *k, int status, const char *body, size_t len,
                          int64_t now_ms, tally_error *err);
int tally_sqlite_sweep(tally_store *st, int64_t now_ms, int64_t idem_ttl_ms);
/* API keys (keys.c); the tables' DDL is also run by the migration. */
extern const char tally_sqlite_keys_tables[];
int tally_sqlite_keys_prepare(tally_store *st, tally_error *err);
int tally_sqlite_keys_state(tally_store *st, tally_keys_state *out, tally_error *err);
int tally_sqlite_keys_list(tally_store *st, tally_key_row **rows, int *n, tally_keys_state *state, tally_error *err);
int tally_sqlite_keys_create(tally_store *st, tally_key_row *row, tally_error *err);
int tally_sqlite_keys_revoke(tally_store *st, const char *name, tally_error *err);

/* The change feed (feed.c): its tables and triggers (run by the migration),
 * the feed_* ops, and the purge the sweep runs. */
extern const char tally_sqlite_feed_tables[];
int tally_sqlite_feed_uninstall(tally_sqlite *st, tally_error *err);
int tally_sqlite_feed_install(tally_sqlite *st, tally_error *err);
int tally_sqlite_feed_read(tally_store *st, tally_plan *plan, tally_error *err);
int tally_sqlite_feed_state(tally_store *st, tally_feed_state *out, tally_error *err);
int tally_sqlite_feed_purge(tally_sqlite *st, int64_t now_ms);
int tally_sqlite_feed_merge(tally_store *st, const tally_model *m, int64_t id, int n, const char *merged,
                            tally_error *err);

/* The SQLite connection behind a store of this backend. */
static inline tally_sqlite *tally_sqlite_of(tally_store *st) { return (tally_sqlite *)st; }

#endif
