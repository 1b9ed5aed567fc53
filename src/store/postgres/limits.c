/*
 * limits.c — rate limits by GCRA on PostgreSQL, the arithmetic of
 * sqlite/limits.c over the same table shape:
 *   tally_limits(name, key, tat)   tat: theoretical arrival time, UTC µs
 * With T = periodMs/rate: TAT' = max(TAT, now) + cost·T; allowed iff
 * TAT' − now ≤ burst·T, and only then is TAT' stored.
 *
 * Several servers may judge one key at once, so the decision is one
 * statement: INSERT … ON CONFLICT DO UPDATE … WHERE <allowed> RETURNING tat.
 * ON CONFLICT locks the row and judges its latest committed version, so two
 * requests never both spend the last token.  A row comes back iff the
 * request was allowed; when refused, the stored TAT is read for the answer.
 * The float operations are SQLite's, in the same order, so both backends
 * decide alike.
 */
#include <math.h>
#include <string.h>

#include "store/postgres/internal.h"

/* The key (value 1) as bytes: it need not be UTF-8. */
static const Oid KEY_AS_BYTES[5] = {0, TALLY_PG_BYTEA, 0, 0, 0};

static int stored_tat(tally_pg *st, const tally_limit *l, const tally_step *s, double now, double *tat,
                      tally_error *err)
{
    tally_value v[2] = {tally_value_text(l->name, strlen(l->name)), tally_value_text(s->name, s->name_len)};
    PGresult *r;
    tally_pg_diag d;
    *tat = now;
    if (tally_pg_query_as(st, NULL, "SELECT tat FROM tally_limits WHERE name = $1 AND key = $2", v, 2, KEY_AS_BYTES, &r,
                          &d)) {
        PQclear(r);
        return tally_pg_fail(&d, "read the limit", err);
    }
    if (PQntuples(r) == 1 && tally_pg_float(r, 0, 0) > now)
        *tat = tally_pg_float(r, 0, 0);
    PQclear(r);
    return 0;
}

int tally_pg_limit(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    const tally_limit *l = s->limit;
    double t = (double)l->period_ms * 1000.0 / (double)l->rate; /* emission interval, µs */
    double now = (double)plan->now_ms * 1000.0;
    double cost = (double)s->cost * t, limit = (double)l->burst * t;
    double tat = now, next;
    res->allowed = false;
    /* cost·T > burst·T is refused whatever is stored; else one statement decides. */
    if ((now + cost) - now <= limit + 1e-6) {
        tally_value v[5] = {tally_value_text(l->name, strlen(l->name)), tally_value_text(s->name, s->name_len),
                            tally_value_float(now), tally_value_float(cost), tally_value_float(limit + 1e-6)};
        PGresult *r;
        tally_pg_diag d;
        if (tally_pg_query_as(st, plan,
                           "INSERT INTO tally_limits AS l (name, key, tat) VALUES ($1, $2, $3 + $4) "
                           "ON CONFLICT (name, key) DO UPDATE SET tat = greatest(l.tat, $3) + $4 "
                           "WHERE greatest(l.tat, $3) + $4 - $3 <= $5 RETURNING tat",
                           v, 5, KEY_AS_BYTES, &r, &d)) {
            PQclear(r);
            return tally_pg_fail(&d, "store the limit", err);
        }
        res->allowed = PQntuples(r) == 1;
        next = res->allowed ? tally_pg_float(r, 0, 0) : 0;
        PQclear(r);
        if (res->allowed) {
            res->remaining = (int64_t)floor((limit - (next - now)) / t + 1e-9);
            res->retry_after_ms = 0;
            res->reset_after_ms = (int64_t)ceil((next - now) / 1000.0);
            return 0;
        }
    }
    int rc = stored_tat(st, l, s, now, &tat, err);
    if (rc)
        return rc;
    next = tat + cost;
    res->remaining = 0;
    res->retry_after_ms = (int64_t)ceil((next - limit - now) / 1000.0);
    res->reset_after_ms = (int64_t)ceil((tat - now) / 1000.0); /* the stored TAT: nothing was taken */
    return tally_fail(err, TALLY_RATE_LIMITED, NULL, "rate limit '%s' exceeded for this key; retry after %lld ms",
                      l->name, (long long)res->retry_after_ms);
}
