/*
 * idempotency.c — SQLite stored answers for Idempotency-Key retries, and the
 * sweep of expired keys and spent rate-limit rows.
 *   tally_idempotency(method, path, key, hash, status, body, created_at)
 * The writer looks a key up and stores the answer inside the request's own
 * savepoint, so the write and its record of it stand or fall together.
 */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/internal.h"

int tally_sqlite_idem_get(tally_store *base, const tally_idem_key *k, tally_idem_answer *out, tally_error *err)
{
    tally_sqlite *st = tally_sqlite_of(base);
    sqlite3_stmt *stmt = tally_sqlite_stmt(
        st, "SELECT hash, status, body FROM tally_idempotency WHERE method = ?1 AND path = ?2 AND key = ?3", err);
    if (!stmt)
        return -TALLY_INTERNAL;
    sqlite3_bind_text(stmt, 1, k->method, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, k->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, k->key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(stmt), found = 0;
    if (rc == SQLITE_ROW) {
        found = 1;
        out->same_body = sqlite3_column_bytes(stmt, 0) == (int)sizeof k->hash &&
                         memcmp(sqlite3_column_blob(stmt, 0), k->hash, sizeof k->hash) == 0;
        out->status = sqlite3_column_int(stmt, 1);
        out->len = (size_t)sqlite3_column_bytes(stmt, 2);
        out->body = malloc(out->len + 1);
        if (out->len)
            memcpy(out->body, sqlite3_column_blob(stmt, 2), out->len);
        out->body[out->len] = '\0';
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not look up the idempotency key; retry");
    return found;
}

int tally_sqlite_idem_put(tally_store *base, const tally_idem_key *k, int status, const char *body, size_t len,
                         int64_t now_ms, tally_error *err)
{
    tally_sqlite *st = tally_sqlite_of(base);
    sqlite3_stmt *stmt = tally_sqlite_stmt(st,
                                           "INSERT INTO tally_idempotency (method, path, key, hash, status, body, "
                                           "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                           err);
    if (!stmt)
        return -TALLY_INTERNAL;
    sqlite3_bind_text(stmt, 1, k->method, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, k->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, k->key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 4, k->hash, sizeof k->hash, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 5, status);
    sqlite3_bind_blob(stmt, 6, body ? body : "", (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 7, now_ms);
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_DONE)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not store the idempotent answer (%s)",
                          sqlite3_errmsg(st->db));
    return 0;
}

int tally_sqlite_sweep(tally_store *base, int64_t now_ms, int64_t idem_ttl_ms)
{
    tally_sqlite *st = tally_sqlite_of(base);
    /* Bounded deletes, so one sweep never holds the writer for long. */
    sqlite3_stmt *a = tally_sqlite_stmt(st,
                                        "DELETE FROM tally_limits WHERE rowid IN (SELECT rowid FROM tally_limits "
                                        "WHERE tat < ?1 LIMIT 10000)",
                                        NULL);
    sqlite3_stmt *b = tally_sqlite_stmt(st,
                                        "DELETE FROM tally_idempotency WHERE rowid IN (SELECT rowid FROM "
                                        "tally_idempotency WHERE created_at < ?1 LIMIT 10000)",
                                        NULL);
    if (!a || !b)
        return -1;
    sqlite3_bind_double(a, 1, (double)now_ms * 1000.0);
    sqlite3_bind_int64(b, 1, now_ms - idem_ttl_ms);
    int rc = sqlite3_step(a) == SQLITE_DONE && sqlite3_step(b) == SQLITE_DONE ? 0 : -1;
    sqlite3_reset(a);
    sqlite3_reset(b);
    if (rc == 0) /* the change feed past its bounds */
        rc = tally_sqlite_feed_purge(st, now_ms);
    return rc;
}
