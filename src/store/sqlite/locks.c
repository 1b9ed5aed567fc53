/*
 * locks.c — SQLite leases with fencing tokens in one table:
 *   tally_locks(name PRIMARY KEY, fence, token, expires_at)
 * A grant is one upsert that takes the row only if its lease has ended
 * (expires_at <= now), bumping the fence; the row is never deleted, so a
 * name's fence only grows, across restarts too.  Release ends the lease
 * (expires_at = 0).  Renew, release and checkLock match name, token and an
 * unexpired lease in the same statement: a lease past its ttl is lost even
 * if nobody has taken the lock since.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "store/sqlite/internal.h"

/* 128 random bits as 32 hex characters: unguessable, so only the holder can use it. */
static void new_token(char out[33])
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static void finish(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

static int db_error(tally_sqlite *st, tally_error *err)
{
    return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not run the lock operation (%s); retry",
                      sqlite3_errmsg(st->db));
}

static int lost(const tally_step *s, tally_error *err)
{
    return tally_fail(err, TALLY_LOCK_LOST, "token",
                      "lock '%.*s' is not held by this token (released, expired or taken over); nothing was done",
                      (int)s->name_len, s->name);
}

static int acquire(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    sqlite3_stmt *stmt = tally_sqlite_stmt(
        st,
        "INSERT INTO tally_locks (name, fence, token, expires_at) VALUES (?1, ?5 + 1, ?2, ?3 + ?4) "
        "ON CONFLICT (name) DO UPDATE SET fence = fence + 1, token = excluded.token, expires_at = excluded.expires_at "
        "WHERE tally_locks.expires_at <= ?3 RETURNING fence, expires_at",
        err);
    if (!stmt)
        return -TALLY_INTERNAL;
    new_token(res->token);
    sqlite3_bind_text(stmt, 1, s->name, (int)s->name_len, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, res->token, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, plan->now_ms);
    sqlite3_bind_int64(stmt, 4, s->ttl_ms);
    sqlite3_bind_int64(stmt, 5, st->fence_floor); /* after a restore, new names' fences start above what was lost */
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        res->fence = sqlite3_column_int64(stmt, 0);
        res->expires_at = sqlite3_column_int64(stmt, 1);
        rc = sqlite3_step(stmt);
    } else {
        res->token[0] = '\0';
    }
    finish(stmt);
    if (rc != SQLITE_DONE)
        return db_error(st, err);
    if (res->token[0])
        return 0;
    /* Held: report the current lease so the caller knows when to try again. */
    stmt = tally_sqlite_stmt(st, "SELECT fence, expires_at FROM tally_locks WHERE name = ?1", err);
    if (!stmt)
        return -TALLY_INTERNAL;
    sqlite3_bind_text(stmt, 1, s->name, (int)s->name_len, SQLITE_STATIC);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        res->fence = sqlite3_column_int64(stmt, 0);
        res->expires_at = sqlite3_column_int64(stmt, 1);
    }
    finish(stmt);
    return tally_fail(err, TALLY_LOCKED, NULL, "lock '%.*s' is held by someone else; see expiresAt, or wait with waitMs",
                      (int)s->name_len, s->name);
}

/* renew, release, checkLock: name + token + an unexpired lease. */
static int holder_op(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    const char *sql =
        s->op == TALLY_OP_LOCK_RENEW
            ? "UPDATE tally_locks SET expires_at = ?3 + ?4 WHERE name = ?1 AND token = ?2 AND expires_at > ?3 "
              "RETURNING fence, expires_at"
        : s->op == TALLY_OP_LOCK_RELEASE
            ? "UPDATE tally_locks SET expires_at = 0, token = NULL WHERE name = ?1 AND token = ?2 AND expires_at > ?3 "
              "RETURNING fence, expires_at"
            : "SELECT fence, expires_at FROM tally_locks WHERE name = ?1 AND token = ?2 AND expires_at > ?3 AND ?4 = ?4";
    sqlite3_stmt *stmt = tally_sqlite_stmt(st, sql, err);
    if (!stmt)
        return -TALLY_INTERNAL;
    sqlite3_bind_text(stmt, 1, s->name, (int)s->name_len, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, s->token, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, plan->now_ms);
    sqlite3_bind_int64(stmt, 4, s->ttl_ms);
    int rc = sqlite3_step(stmt);
    bool held = rc == SQLITE_ROW;
    if (held) {
        res->fence = sqlite3_column_int64(stmt, 0);
        res->expires_at = sqlite3_column_int64(stmt, 1);
        rc = sqlite3_step(stmt);
    }
    finish(stmt);
    if (rc != SQLITE_DONE)
        return db_error(st, err);
    return held ? 0 : lost(s, err);
}

static int list(tally_sqlite *st, tally_plan *plan, tally_step_result *res, tally_error *err)
{
    sqlite3_stmt *stmt = tally_sqlite_stmt(
        st, "SELECT name, fence, expires_at FROM tally_locks WHERE expires_at > ?1 ORDER BY name LIMIT 1000", err);
    if (!stmt)
        return -TALLY_INTERNAL;
    sqlite3_bind_int64(stmt, 1, plan->now_ms);
    int cap = 16, rc;
    res->locks = tally_arena_alloc(&plan->arena, (size_t)cap * sizeof *res->locks);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (res->nlocks == cap) {
            cap *= 2;
            res->locks = tally_arena_grow(&plan->arena, res->locks, (size_t)res->nlocks, (size_t)cap,
                                          sizeof *res->locks);
        }
        tally_lock_info *l = &res->locks[res->nlocks++];
        l->name_len = (size_t)sqlite3_column_bytes(stmt, 0);
        l->name = tally_arena_strndup(&plan->arena, (const char *)sqlite3_column_text(stmt, 0), l->name_len);
        l->fence = sqlite3_column_int64(stmt, 1);
        l->expires_at = sqlite3_column_int64(stmt, 2);
    }
    finish(stmt);
    return rc == SQLITE_DONE ? 0 : db_error(st, err);
}

int tally_sqlite_lock(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    switch (s->op) {
    case TALLY_OP_LOCK_ACQUIRE: return acquire(st, plan, s, res, err);
    case TALLY_OP_LOCK_LIST: return list(st, plan, res, err);
    default: return holder_op(st, plan, s, res, err);
    }
}
