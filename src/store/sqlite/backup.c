/* backup.c — tally backup and tally restore for SQLite; see store/backup.h. */
#include "store/backup.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/datetime.h"

/* Opens path with flags; on failure fills err in a person's words. */
static int open_db(const char *path, int flags, const char *what, sqlite3 **db, tally_error *err)
{
    if (sqlite3_open_v2(path, db, flags, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(*db, 10000);
        return 0;
    }
    int rc = tally_fail(err, TALLY_UNAVAILABLE, NULL, "cannot open %s %s (%s)", what, path,
                        *db ? sqlite3_errmsg(*db) : "out of memory");
    sqlite3_close(*db);
    *db = NULL;
    return rc;
}

/* Whether db is a Tally database (it has the table of stored fields). */
static bool is_tally(sqlite3 *db)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tally_fields'", -1, &stmt,
                           NULL) != SQLITE_OK)
        return false;
    bool yes = sqlite3_step(stmt) == SQLITE_ROW;
    sqlite3_finalize(stmt);
    return yes;
}

/* Copies src into dst in one step, so the copy is one snapshot; a writer in
 * the way is waited for (busy), for at most about ten seconds. */
static int copy_all(sqlite3 *src, sqlite3 *dst, tally_backup_info *info, tally_error *err)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot start the copy (%s)", sqlite3_errmsg(dst));
    int rc;
    for (int tries = 0; (rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED; tries++) {
        if (tries == 200)
            break;
        struct timespec pause = {0, 50 * 1000000L};
        nanosleep(&pause, NULL);
    }
    if (info)
        info->pages = sqlite3_backup_pagecount(b);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the copy did not complete (%s); nothing usable was written, "
                          "retry", sqlite3_errstr(rc));
    return 0;
}

/* Whether PRAGMA quick_check finds db sound (it answers rows, not an error code). */
static bool checks_out(sqlite3 *db)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &stmt, NULL) != SQLITE_OK)
        return false;
    bool ok = sqlite3_step(stmt) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(stmt, 0), "ok") == 0;
    sqlite3_finalize(stmt);
    return ok;
}

/* SQL on db, in a person's words on failure. */
static int exec(sqlite3 *db, const char *sql, const char *what, tally_error *err)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    return tally_fail(err, TALLY_INTERNAL, NULL, "cannot %s (%s)", what, sqlite3_errmsg(db));
}

int tally_backup_sqlite(const char *db_file, const char *to_file, tally_backup_info *info, tally_error *err)
{
    if (access(to_file, F_OK) == 0)
        return tally_fail(err, TALLY_CONFLICT, NULL, "%s already exists; back up into a new file", to_file);
    if (access(db_file, F_OK) != 0)
        return tally_fail(err, TALLY_NOT_FOUND, NULL, "there is no database at %s", db_file);
    sqlite3 *src = NULL, *dst = NULL;
    if (open_db(db_file, SQLITE_OPEN_READONLY, "the database", &src, err))
        return -(int)err->code;
    int rc = 0;
    if (!is_tally(src))
        rc = tally_fail(err, TALLY_BAD_REQUEST, NULL, "%s is not a Tally database", db_file);
    if (rc == 0 && open_db(to_file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "the backup file", &dst, err))
        rc = -(int)err->code;
    if (rc == 0)
        rc = copy_all(src, dst, info, err);
    /* One file on its own (no WAL beside it), checked, on disk when closed (synchronous=FULL). */
    if (rc == 0)
        rc = exec(dst, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL", "write the backup", err);
    if (rc == 0 && !checks_out(dst))
        rc = tally_fail(err, TALLY_INTERNAL, NULL, "the copy in %s does not pass SQLite's check; it was removed, "
                        "retry", to_file);
    if (rc == 0 && info) {
        sqlite3_stmt *stmt;
        if (sqlite3_prepare_v2(dst, "PRAGMA page_size", -1, &stmt, NULL) == SQLITE_OK) {
            if (sqlite3_step(stmt) == SQLITE_ROW)
                info->page_size = sqlite3_column_int(stmt, 0);
            sqlite3_finalize(stmt);
        }
    }
    if (dst && sqlite3_close(dst) != SQLITE_OK && rc == 0)
        rc = tally_fail(err, TALLY_UNAVAILABLE, NULL, "cannot finish writing %s", to_file);
    sqlite3_close(src);
    if (rc)
        unlink(to_file);
    return rc;
}

int tally_restore_sqlite(const char *backup_file, const char *db_file, int64_t *generation, tally_error *err)
{
    if (access(db_file, F_OK) == 0)
        return tally_fail(err, TALLY_CONFLICT, NULL, "%s already holds a database; restore into a new data folder",
                          db_file);
    sqlite3 *src = NULL, *dst = NULL;
    if (open_db(backup_file, SQLITE_OPEN_READONLY, "the backup", &src, err))
        return -(int)err->code;
    int rc = 0;
    if (!is_tally(src))
        rc = tally_fail(err, TALLY_BAD_REQUEST, NULL, "%s is not a Tally backup", backup_file);
    if (rc == 0 && open_db(db_file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "the new database", &dst, err))
        rc = -(int)err->code;
    if (rc == 0)
        rc = copy_all(src, dst, NULL, err);
    sqlite3_close(src);
    /* The next generation: ids and fences from its floor on (store/backup.h). */
    int64_t gen = 0;
    if (rc == 0)
        rc = exec(dst, "BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS tally_restores (generation INTEGER PRIMARY KEY, "
                       "restored_at INTEGER NOT NULL, source TEXT NOT NULL) STRICT",
                  "prepare the restored database", err);
    if (rc == 0) {
        sqlite3_stmt *stmt;
        if (sqlite3_prepare_v2(dst, "SELECT coalesce(max(generation), 0) + 1 FROM tally_restores", -1, &stmt, NULL) ==
                SQLITE_OK &&
            sqlite3_step(stmt) == SQLITE_ROW)
            gen = sqlite3_column_int64(stmt, 0);
        sqlite3_finalize(stmt);
        if (gen <= 0 || gen >= 8192)
            rc = tally_fail(err, TALLY_INTERNAL, NULL, "cannot start restore generation %lld", (long long)gen);
    }
    if (rc == 0) {
        char sql[1024];
        long long floor = (long long)TALLY_RESTORE_FLOOR(gen);
        snprintf(sql, sizeof sql,
                 "UPDATE sqlite_sequence SET seq = max(seq, %lld); "
                 "INSERT INTO sqlite_sequence (name, seq) SELECT name, %lld FROM sqlite_master WHERE type = 'table' "
                 "AND sql LIKE '%%AUTOINCREMENT%%' AND name NOT IN (SELECT name FROM sqlite_sequence); "
                 "UPDATE tally_locks SET fence = max(fence, %lld); "
                 "INSERT INTO tally_restores (generation, restored_at, source) VALUES (%lld, %lld, ?1)",
                 floor, floor, floor, (long long)gen, (long long)tally_now_ms());
        /* The last statement binds the source's name; the others have no values from outside. */
        const char *tail = sql;
        while (rc == 0 && tail && *tail) {
            sqlite3_stmt *stmt;
            if (sqlite3_prepare_v2(dst, tail, -1, &stmt, &tail) != SQLITE_OK) {
                rc = tally_fail(err, TALLY_INTERNAL, NULL, "cannot move ids and fences on (%s)", sqlite3_errmsg(dst));
                break;
            }
            if (!stmt)
                break;
            if (sqlite3_bind_parameter_count(stmt) == 1)
                sqlite3_bind_text(stmt, 1, backup_file, -1, SQLITE_STATIC);
            if (sqlite3_step(stmt) != SQLITE_DONE)
                rc = tally_fail(err, TALLY_INTERNAL, NULL, "cannot move ids and fences on (%s)", sqlite3_errmsg(dst));
            sqlite3_finalize(stmt);
        }
    }
    if (rc == 0)
        rc = exec(dst, "COMMIT", "commit the restore", err);
    if (dst && sqlite3_close(dst) != SQLITE_OK && rc == 0)
        rc = tally_fail(err, TALLY_UNAVAILABLE, NULL, "cannot finish writing %s", db_file);
    if (rc) {
        char side[4200];
        unlink(db_file);
        snprintf(side, sizeof side, "%s-wal", db_file);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", db_file);
        unlink(side);
    } else if (generation) {
        *generation = gen;
    }
    return rc;
}
