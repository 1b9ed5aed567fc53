/*
 * sqlite_limits.c — rate limits by GCRA (DESIGN.md §3), one row per key:
 *   tally_limits(name, key, tat)   tat: theoretical arrival time, UTC µs
 * With T = periodMs/rate: TAT' = max(TAT, now) + cost·T; allowed iff
 * TAT' − now ≤ burst·T, and only then is TAT' stored.  No counters, nothing
 * to reset: a key whose TAT has passed is the same as a key never seen,
 * which is what lets the writer sweep such rows away.
 * The writer runs steps one at a time, so the read and the write below
 * cannot interleave with another request's.
 */
#include <math.h>

#include "store/sqlite/internal.h"

int tally_sqlite_limit(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    const tally_limit *l = s->limit;
    double t = (double)l->period_ms * 1000.0 / (double)l->rate; /* emission interval, µs */
    double now = (double)plan->now_ms * 1000.0;
    sqlite3_stmt *stmt = tally_sqlite_stmt(st, "SELECT tat FROM tally_limits WHERE name = ?1 AND key = ?2", err);
    if (!stmt)
        return -TALLY_INTERNAL;
    sqlite3_bind_text(stmt, 1, l->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, s->name, (int)s->name_len, SQLITE_STATIC);
    double tat = now;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && sqlite3_column_double(stmt, 0) > now)
        tat = sqlite3_column_double(stmt, 0);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not read the limit; retry");
    double next = tat + (double)s->cost * t, limit = (double)l->burst * t;
    res->allowed = next - now <= limit + 1e-6; /* the slack absorbs float rounding of T */
    if (res->allowed) {
        stmt = tally_sqlite_stmt(st,
                                 "INSERT INTO tally_limits (name, key, tat) VALUES (?1, ?2, ?3) "
                                 "ON CONFLICT (name, key) DO UPDATE SET tat = excluded.tat",
                                 err);
        if (!stmt)
            return -TALLY_INTERNAL;
        sqlite3_bind_text(stmt, 1, l->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, s->name, (int)s->name_len, SQLITE_STATIC);
        sqlite3_bind_double(stmt, 3, next);
        rc = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
        if (rc != SQLITE_DONE)
            return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not store the limit; retry");
        res->remaining = (int64_t)floor((limit - (next - now)) / t + 1e-9);
        res->retry_after_ms = 0;
        res->reset_after_ms = (int64_t)ceil((next - now) / 1000.0);
        return 0;
    }
    res->remaining = 0;
    res->retry_after_ms = (int64_t)ceil((next - limit - now) / 1000.0);
    res->reset_after_ms = (int64_t)ceil((tat - now) / 1000.0); /* the stored TAT: nothing was taken */
    return tally_fail(err, TALLY_RATE_LIMITED, NULL, "rate limit '%s' exceeded for this key; retry after %lld ms",
                      l->name, (long long)res->retry_after_ms);
}
