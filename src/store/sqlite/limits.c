/*
 * limits.c — SQLite rate limits by GCRA (README.md, "Locks, rate limits and safe retries"), one row per key:
 *   tally_limits(name, key, tat)   tat: theoretical arrival time, UTC µs
 * The arithmetic is core/gcra.h's, shared with every backend.  No counters, nothing
 * to reset: a key whose TAT has passed is the same as a key never seen,
 * which is what lets the writer sweep such rows away.
 * The writer runs steps one at a time, so the read and the write below
 * cannot interleave with another request's.
 */
#include "core/gcra.h"
#include "store/sqlite/internal.h"

int tally_sqlite_limit(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    const tally_limit *l = s->limit;
    sqlite3_stmt *stmt = tally_sqlite_stmt(st, "SELECT tat FROM tally_limits WHERE name = ?1 AND key = ?2", err);
    if (!stmt)
        return -TALLY_INTERNAL;
    sqlite3_bind_text(stmt, 1, l->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, s->name, (int)s->name_len, SQLITE_STATIC);
    int rc = sqlite3_step(stmt);
    bool has_tat = rc == SQLITE_ROW;
    double tat = has_tat ? sqlite3_column_double(stmt, 0) : 0;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not read the limit; retry");
    tally_gcra_verdict v = tally_gcra_decide(l, has_tat, tat, s->cost, plan->now_ms);
    res->allowed = v.allowed;
    res->remaining = v.remaining;
    res->retry_after_ms = v.retry_after_ms;
    res->reset_after_ms = v.reset_after_ms;
    if (!v.allowed)
        return tally_fail(err, TALLY_RATE_LIMITED, NULL, "rate limit '%s' exceeded for this key; retry after %lld ms",
                          l->name, (long long)res->retry_after_ms);
    stmt = tally_sqlite_stmt(st,
                             "INSERT INTO tally_limits (name, key, tat) VALUES (?1, ?2, ?3) "
                             "ON CONFLICT (name, key) DO UPDATE SET tat = excluded.tat",
                             err);
    if (!stmt)
        return -TALLY_INTERNAL;
    sqlite3_bind_text(stmt, 1, l->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, s->name, (int)s->name_len, SQLITE_STATIC);
    sqlite3_bind_double(stmt, 3, v.new_tat_us);
    rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_DONE)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not store the limit; retry");
    return 0;
}
