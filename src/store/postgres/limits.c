/*
 * limits.c — rate limits by GCRA on PostgreSQL, one row per key:
 *   tally_limits(name, key, tat, seen)   UTC µs: the theoretical arrival
 *   time, and the latest clock any request judged the key by
 * The arithmetic is core/gcra.h's, shared with every backend.
 *
 * Several servers may judge one key at once, so the decision is one
 * statement: INSERT … ON CONFLICT DO UPDATE … WHERE <allowed> RETURNING.
 * ON CONFLICT locks the row and judges its latest committed version, so two
 * requests never both spend the last token.  A request's clock was read when
 * its batch began, so one that waited for the row lock may carry an earlier
 * time than the request it waited for: each key remembers the latest time it
 * was judged by (seen) and is judged by the later of the two, so its state
 * moves only forward and the answers (remaining, retryAfterMs) agree across
 * servers.  A row comes back iff the request was allowed; when refused, the
 * stored TAT is read for the answer.
 */
#include <string.h>

#include "core/gcra.h"
#include "store/postgres/internal.h"

/* The key (value 1) as bytes: it need not be UTF-8. */
static const Oid KEY_AS_BYTES[5] = {0, TALLY_PG_BYTEA, 0, 0, 0};

/* The key's stored TAT and the later of now and its seen clock, for a refusal's answer. */
static int stored(tally_pg *st, const tally_limit *l, const tally_step *s, double *tat, double *now, tally_error *err)
{
    tally_value v[2] = {tally_value_text(l->name, strlen(l->name)), tally_value_text(s->name, s->name_len)};
    PGresult *r;
    tally_pg_diag d;
    if (tally_pg_query_as(st, NULL, "SELECT tat, seen FROM tally_limits WHERE name = $1 AND key = $2", v, 2,
                          KEY_AS_BYTES, &r, &d)) {
        PQclear(r);
        return tally_pg_fail(&d, "read the limit", err);
    }
    *tat = *now;
    if (PQntuples(r) == 1) {
        *tat = tally_pg_float(r, 0, 0);
        double seen = tally_pg_float(r, 0, 1);
        if (seen > *now)
            *now = seen;
    }
    PQclear(r);
    return 0;
}

int tally_pg_limit(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    const tally_limit *l = s->limit;
    double now = (double)plan->now_ms * 1000.0;
    double cost = (double)s->cost * tally_gcra_interval_us(l), limit = tally_gcra_tolerance_us(l);
    bool allowed = false;
    double tat = now;
    /* cost·T > burst·T is refused whatever is stored; else one statement decides. */
    if ((now + cost) - now <= limit + 1e-6) {
        tally_value v[5] = {tally_value_text(l->name, strlen(l->name)), tally_value_text(s->name, s->name_len),
                            tally_value_float(now), tally_value_float(cost), tally_value_float(limit + 1e-6)};
        PGresult *r;
        tally_pg_diag d;
        if (tally_pg_query_as(st, plan,
                              "INSERT INTO tally_limits AS l (name, key, tat, seen) VALUES ($1, $2, $3 + $4, $3) "
                              "ON CONFLICT (name, key) DO UPDATE "
                              "SET tat = greatest(l.tat, greatest(l.seen, $3)) + $4, seen = greatest(l.seen, $3) "
                              "WHERE greatest(l.tat, greatest(l.seen, $3)) + $4 - greatest(l.seen, $3) <= $5 "
                              "RETURNING tat, seen",
                              v, 5, KEY_AS_BYTES, &r, &d)) {
            PQclear(r);
            return tally_pg_fail(&d, "store the limit", err);
        }
        allowed = PQntuples(r) == 1;
        if (allowed) {
            tat = tally_pg_float(r, 0, 0);
            now = tally_pg_float(r, 0, 1);
        }
        PQclear(r);
    }
    if (!allowed) {
        int rc = stored(st, l, s, &tat, &now, err);
        if (rc)
            return rc;
    }
    tally_gcra_verdict a = tally_gcra_answer(l, allowed, tat, s->cost, now);
    res->allowed = a.allowed;
    res->remaining = a.remaining;
    res->retry_after_ms = a.retry_after_ms;
    res->reset_after_ms = a.reset_after_ms;
    if (allowed)
        return 0;
    return tally_fail(err, TALLY_RATE_LIMITED, NULL, "rate limit '%s' exceeded for this key; retry after %lld ms",
                      l->name, (long long)res->retry_after_ms);
}
