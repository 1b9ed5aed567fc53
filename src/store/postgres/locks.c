/*
 * locks.c — leases with fencing tokens on PostgreSQL, the same table and
 * semantics as sqlite/locks.c:
 *   tally_locks(name PRIMARY KEY, fence, token, expires_at)
 * A grant is one upsert that takes the row only if its lease has ended
 * (expires_at <= now), bumping the fence; the row is never deleted, so a
 * name's fence only grows.  ON CONFLICT locks the row and judges its latest
 * version, so two servers granting at once cannot both win.  Renew, release
 * and checkLock match name, token and an unexpired lease in one statement.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "store/postgres/internal.h"

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

/* The name (value 0) as bytes: it need not be UTF-8. */
static const Oid NAME_AS_BYTES[4] = {TALLY_PG_BYTEA, 0, 0, 0};

static int db_error(const tally_pg_diag *d, tally_error *err) { return tally_pg_fail(d, "run the lock operation", err); }

static int lost(const tally_step *s, tally_error *err)
{
    return tally_fail(err, TALLY_LOCK_LOST, "token",
                      "lock '%.*s' is not held by this token (released, expired or taken over); nothing was done",
                      (int)s->name_len, s->name);
}

static int acquire(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    new_token(res->token);
    tally_value v[4] = {tally_value_text(s->name, s->name_len), tally_value_text(res->token, strlen(res->token)),
                        tally_value_int(plan->now_ms), tally_value_int(s->ttl_ms)};
    PGresult *r;
    tally_pg_diag d;
    if (tally_pg_query_as(st, plan,
                       "INSERT INTO tally_locks AS l (name, fence, token, expires_at) VALUES ($1, 1, $2, $3 + $4) "
                       "ON CONFLICT (name) DO UPDATE SET fence = l.fence + 1, token = excluded.token, "
                       "expires_at = excluded.expires_at WHERE l.expires_at <= $3 RETURNING fence, expires_at",
                       v, 4, NAME_AS_BYTES, &r, &d)) {
        res->token[0] = '\0';
        int rc = db_error(&d, err);
        PQclear(r);
        return rc;
    }
    bool granted = PQntuples(r) == 1;
    if (granted) {
        res->fence = tally_pg_int(r, 0, 0);
        res->expires_at = tally_pg_int(r, 0, 1);
    }
    PQclear(r);
    if (granted)
        return 0;
    res->token[0] = '\0';
    /* Held: report the current lease so the caller knows when to try again. */
    if (tally_pg_query_as(st, plan, "SELECT fence, expires_at FROM tally_locks WHERE name = $1", v, 1, NAME_AS_BYTES, &r,
                          &d)) {
        int rc = db_error(&d, err);
        PQclear(r);
        return rc;
    }
    if (PQntuples(r) == 1) {
        res->fence = tally_pg_int(r, 0, 0);
        res->expires_at = tally_pg_int(r, 0, 1);
    }
    PQclear(r);
    return tally_fail(err, TALLY_LOCKED, NULL, "lock '%.*s' is held by someone else; see expiresAt, or wait with waitMs",
                      (int)s->name_len, s->name);
}

/* renew, release, checkLock: name + token + an unexpired lease. */
static int holder_op(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    const char *sql =
        s->op == TALLY_OP_LOCK_RENEW
            ? "UPDATE tally_locks SET expires_at = $3 + $4 WHERE name = $1 AND token = $2 AND expires_at > $3 "
              "RETURNING fence, expires_at"
        : s->op == TALLY_OP_LOCK_RELEASE
            ? "UPDATE tally_locks SET expires_at = 0, token = NULL WHERE name = $1 AND token = $2 AND expires_at > $3 "
              "RETURNING fence, expires_at"
            : "SELECT fence, expires_at FROM tally_locks WHERE name = $1 AND token = $2 AND expires_at > $3";
    const char *token = s->token ? s->token : "";
    tally_value v[4] = {tally_value_text(s->name, s->name_len), tally_value_text(token, strlen(token)),
                        tally_value_int(plan->now_ms), tally_value_int(s->ttl_ms)};
    PGresult *r;
    tally_pg_diag d;
    if (tally_pg_query_as(st, plan, sql, v, s->op == TALLY_OP_LOCK_RENEW ? 4 : 3, NAME_AS_BYTES, &r, &d)) {
        int rc = db_error(&d, err);
        PQclear(r);
        return rc;
    }
    bool held = PQntuples(r) == 1;
    if (held) {
        res->fence = tally_pg_int(r, 0, 0);
        res->expires_at = tally_pg_int(r, 0, 1);
    }
    PQclear(r);
    return held ? 0 : lost(s, err);
}

static int list(tally_pg *st, tally_plan *plan, tally_step_result *res, tally_error *err)
{
    tally_value now = tally_value_int(plan->now_ms);
    PGresult *r;
    tally_pg_diag d;
    if (tally_pg_query(st, plan,
                       "SELECT name, fence, expires_at FROM tally_locks WHERE expires_at > $1 ORDER BY name LIMIT 1000",
                       &now, 1, &r, &d)) {
        int rc = db_error(&d, err);
        PQclear(r);
        return rc;
    }
    int n = PQntuples(r);
    res->locks = tally_arena_alloc(&plan->arena, (size_t)(n ? n : 1) * sizeof *res->locks);
    for (int i = 0; i < n; i++) {
        tally_lock_info *l = &res->locks[res->nlocks++];
        l->name_len = (size_t)PQgetlength(r, i, 0);
        l->name = tally_arena_strndup(&plan->arena, PQgetvalue(r, i, 0), l->name_len);
        l->fence = tally_pg_int(r, i, 1);
        l->expires_at = tally_pg_int(r, i, 2);
    }
    PQclear(r);
    return 0;
}

int tally_pg_lock(tally_pg *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    switch (s->op) {
    case TALLY_OP_LOCK_ACQUIRE: return acquire(st, plan, s, res, err);
    case TALLY_OP_LOCK_LIST: return list(st, plan, res, err);
    default: return holder_op(st, plan, s, res, err);
    }
}
