/*
 * keys.c — API keys on SQLite (store/backend.h, "API keys"):
 *   tally_keys(id, name, scopes, hash, created_at)   one row per live key
 *   tally_keys_state(id = 1, generation, ever)        counts changes; a key has existed
 * Each call is its own transaction.  They run on a connection of their own
 * (the server's keyring, or `tally keys` in another process while a server
 * serves): SQLite's locks order them against the writer, and the busy
 * timeout is long enough to wait out an interactive transaction.
 */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/internal.h"

#define KEYS_BUSY_MS 60000

const char tally_sqlite_keys_tables[] =
    "CREATE TABLE IF NOT EXISTS tally_keys (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, "
    "scopes TEXT NOT NULL, hash BLOB NOT NULL, created_at INTEGER NOT NULL) STRICT; "
    "CREATE TABLE IF NOT EXISTS tally_keys_state (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "generation INTEGER NOT NULL, ever INTEGER NOT NULL) STRICT; "
    "INSERT OR IGNORE INTO tally_keys_state (id, generation, ever) VALUES (1, 0, 0)";

static int unavailable(tally_sqlite *st, const char *what, tally_error *err)
{
    return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not %s (%s); retry", what,
                      sqlite3_errmsg(st->db));
}

int tally_sqlite_keys_prepare(tally_store *base, tally_error *err)
{
    tally_sqlite *st = tally_sqlite_of(base);
    sqlite3_busy_timeout(st->db, KEYS_BUSY_MS);
    if (tally_sqlite_exec(st, "BEGIN IMMEDIATE", err))
        return -TALLY_UNAVAILABLE;
    if (tally_sqlite_exec(st, tally_sqlite_keys_tables, err) || tally_sqlite_exec(st, "COMMIT", err)) {
        tally_sqlite_exec(st, "ROLLBACK", NULL);
        return -TALLY_UNAVAILABLE;
    }
    return 0;
}

static int read_state(tally_sqlite *st, tally_keys_state *out, tally_error *err)
{
    sqlite3_stmt *q = tally_sqlite_stmt(st, "SELECT generation, ever FROM tally_keys_state WHERE id = 1", err);
    if (!q)
        return -TALLY_UNAVAILABLE;
    int rc = sqlite3_step(q);
    out->generation = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    out->ever = rc == SQLITE_ROW && sqlite3_column_int(q, 1) != 0;
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : unavailable(st, "read the key table", err);
}

int tally_sqlite_keys_state(tally_store *base, tally_keys_state *out, tally_error *err)
{
    return read_state(tally_sqlite_of(base), out, err);
}

int tally_sqlite_keys_list(tally_store *base, tally_key_row **rows, int *n, tally_keys_state *state,
                           tally_error *err)
{
    tally_sqlite *st = tally_sqlite_of(base);
    *rows = NULL;
    *n = 0;
    if (tally_sqlite_exec(st, "BEGIN", err)) /* one snapshot for the rows and the state */
        return -TALLY_UNAVAILABLE;
    int rc = read_state(st, state, err);
    sqlite3_stmt *q = rc ? NULL
                         : tally_sqlite_stmt(st, "SELECT id, name, scopes, hash, created_at FROM tally_keys ORDER BY name",
                                             err);
    if (!rc && !q)
        rc = -TALLY_UNAVAILABLE;
    int cap = 0, step;
    while (q && (step = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *rows = realloc(*rows, (size_t)cap * sizeof **rows);
            if (!*rows)
                abort();
        }
        tally_key_row *r = &(*rows)[(*n)++];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(q, 0);
        snprintf(r->name, sizeof r->name, "%s", (const char *)sqlite3_column_text(q, 1));
        snprintf(r->scopes, sizeof r->scopes, "%s", (const char *)sqlite3_column_text(q, 2));
        if (sqlite3_column_bytes(q, 3) == (int)sizeof r->hash)
            memcpy(r->hash, sqlite3_column_blob(q, 3), sizeof r->hash);
        r->created_at = sqlite3_column_int64(q, 4);
    }
    if (q) {
        if (step != SQLITE_DONE)
            rc = unavailable(st, "read the key table", err);
        sqlite3_reset(q);
    }
    tally_sqlite_exec(st, "COMMIT", NULL);
    if (rc) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}

/* Runs the statement q (bound by the caller) to its end; returns sqlite3_step's last code. */
static int run(sqlite3_stmt *q)
{
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc;
}

static int bump(tally_sqlite *st, bool created, tally_error *err)
{
    sqlite3_stmt *q = tally_sqlite_stmt(st,
                                        "UPDATE tally_keys_state SET generation = generation + 1, "
                                        "ever = ever OR ?1 WHERE id = 1",
                                        err);
    if (!q)
        return -TALLY_UNAVAILABLE;
    sqlite3_bind_int(q, 1, created);
    return run(q) == SQLITE_DONE ? 0 : unavailable(st, "update the key table", err);
}

int tally_sqlite_keys_create(tally_store *base, tally_key_row *row, tally_error *err)
{
    tally_sqlite *st = tally_sqlite_of(base);
    sqlite3_busy_timeout(st->db, KEYS_BUSY_MS);
    if (tally_sqlite_exec(st, "BEGIN IMMEDIATE", err))
        return unavailable(st, "begin a transaction", err);
    sqlite3_stmt *q = tally_sqlite_stmt(st,
                                        "INSERT INTO tally_keys (name, scopes, hash, created_at) VALUES (?1, ?2, ?3, ?4) "
                                        "ON CONFLICT (name) DO NOTHING",
                                        err);
    int rc = q ? 0 : -TALLY_UNAVAILABLE;
    if (q) {
        sqlite3_bind_text(q, 1, row->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, row->scopes, -1, SQLITE_STATIC);
        sqlite3_bind_blob(q, 3, row->hash, sizeof row->hash, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, row->created_at);
        if (run(q) != SQLITE_DONE)
            rc = unavailable(st, "store the key", err);
        else if (sqlite3_changes(st->db) == 0)
            rc = tally_fail(err, TALLY_CONFLICT, "name",
                            "a key named '%s' already exists; revoke it first or choose another name", row->name);
        else
            row->id = sqlite3_last_insert_rowid(st->db);
    }
    if (rc == 0)
        rc = bump(st, true, err);
    if (rc == 0 && tally_sqlite_exec(st, "COMMIT", err))
        rc = -TALLY_UNAVAILABLE;
    if (rc)
        tally_sqlite_exec(st, "ROLLBACK", NULL);
    return rc;
}

int tally_sqlite_keys_revoke(tally_store *base, const char *name, tally_error *err)
{
    tally_sqlite *st = tally_sqlite_of(base);
    sqlite3_busy_timeout(st->db, KEYS_BUSY_MS);
    if (tally_sqlite_exec(st, "BEGIN IMMEDIATE", err))
        return unavailable(st, "begin a transaction", err);
    sqlite3_stmt *q = tally_sqlite_stmt(st, "DELETE FROM tally_keys WHERE name = ?1", err);
    int rc = q ? 0 : -TALLY_UNAVAILABLE;
    if (q) {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        if (run(q) != SQLITE_DONE)
            rc = unavailable(st, "revoke the key", err);
        else if (sqlite3_changes(st->db) == 0)
            rc = tally_fail(err, TALLY_NOT_FOUND, "name", "there is no key named '%s'", name);
    }
    if (rc == 0)
        rc = bump(st, false, err);
    if (rc == 0 && tally_sqlite_exec(st, "COMMIT", err))
        rc = -TALLY_UNAVAILABLE;
    if (rc)
        tally_sqlite_exec(st, "ROLLBACK", NULL);
    return rc;
}
