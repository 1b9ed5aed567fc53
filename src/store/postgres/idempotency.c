/*
 * idempotency.c — stored answers for Idempotency-Key retries on PostgreSQL,
 * and the sweep of expired keys and spent rate-limit rows; the same table as
 * sqlite/idempotency.c (bytea but for status and
 * created_at: a path or a key need not be UTF-8):
 *   tally_idempotency(method, path, key, hash, status, body, created_at)
 * The writer looks a key up and stores the answer inside the request's own
 * savepoint, so the write and its record of it stand or fall together.  Two
 * servers storing one key at once: the second waits on the primary key until
 * the first commits, then fails with a unique violation, answered CONFLICT
 * with rerun (its write rolls back; run again, it finds and replays the
 * first answer).
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres/internal.h"

int tally_pg_idem_get(tally_store *base, const tally_idem_key *k, tally_idem_answer *out, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    tally_value v[3] = {tally_value_text(k->method, strlen(k->method)), tally_value_text(k->path, strlen(k->path)),
                        tally_value_text(k->key, strlen(k->key))};
    PGresult *r;
    tally_pg_diag d;
    static const Oid bytes[3] = {TALLY_PG_BYTEA, TALLY_PG_BYTEA, TALLY_PG_BYTEA}; /* need not be UTF-8 */
    if (tally_pg_query_as(st, NULL, "SELECT hash, status, body FROM tally_idempotency WHERE method = $1 AND path = $2 "
                          "AND key = $3", v, 3, bytes, &r, &d)) {
        PQclear(r);
        return tally_pg_fail(&d, "look up the idempotency key", err);
    }
    int found = PQntuples(r) == 1;
    if (found) {
        out->same_body = PQgetlength(r, 0, 0) == (int)sizeof k->hash &&
                         memcmp(PQgetvalue(r, 0, 0), k->hash, sizeof k->hash) == 0;
        out->status = (int)tally_pg_int(r, 0, 1);
        out->len = (size_t)PQgetlength(r, 0, 2);
        out->body = malloc(out->len + 1);
        if (!out->body)
            abort();
        if (out->len)
            memcpy(out->body, PQgetvalue(r, 0, 2), out->len);
        out->body[out->len] = '\0';
    }
    PQclear(r);
    return found;
}

int tally_pg_idem_put(tally_store *base, const tally_idem_key *k, int status, const char *body, size_t len,
                      int64_t now_ms, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    uint64_t created = htobe64((uint64_t)now_ms);
    uint32_t st32 = htobe32((uint32_t)status);
    Oid types[7] = {TALLY_PG_BYTEA, TALLY_PG_BYTEA, TALLY_PG_BYTEA, TALLY_PG_BYTEA, TALLY_PG_INT4, TALLY_PG_BYTEA,
                    TALLY_PG_INT8};
    const char *values[7] = {k->method, k->path, k->key, (const char *)k->hash, (const char *)&st32,
                             body ? body : "", (const char *)&created};
    int lengths[7] = {(int)strlen(k->method), (int)strlen(k->path), (int)strlen(k->key), (int)sizeof k->hash, 4,
                      (int)len, 8};
    int formats[7] = {1, 1, 1, 1, 1, 1, 1};
    PGresult *r;
    tally_pg_run(st,
                 "INSERT INTO tally_idempotency (method, path, key, hash, status, body, created_at) "
                 "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                 7, types, values, lengths, formats, &r, NULL);
    int rc = 0;
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        tally_pg_diag d;
        tally_pg_diag_of(st, r, &d);
        if (d.sqlstate && strcmp(d.sqlstate, "23505") == 0) {
            rc = tally_fail(err, TALLY_CONFLICT, NULL,
                            "another request with this Idempotency-Key was answered at the same time; retry it to get "
                            "that answer");
            if (err)
                err->rerun = TALLY_RERUN_CONFLICT;
        } else {
            rc = tally_pg_fail(&d, "store the idempotent answer", err);
        }
    }
    PQclear(r);
    return rc;
}

/* Inside a transaction, between batches; one server at a time (an advisory
 * lock, or with --portable the meta row 'sweep': a server that does not get
 * it skips this sweep).  Bounded deletes
 * that skip rows a request holds, so a sweep never waits on the writers. */
int tally_pg_sweep(tally_store *base, int64_t now_ms, int64_t idem_ttl_ms)
{
    tally_pg *st = (tally_pg *)base;
    PGresult *r;
    bool mine;
    if (st->portable) { /* the meta row instead of an advisory lock (migrate.c) */
        tally_error err;
        int held = tally_pg_meta_lock(st, "sweep", false, &err);
        if (held < 0)
            return -1;
        mine = held == 1;
    } else {
        tally_value key = tally_value_int(TALLY_PG_SWEEP_LOCK);
        if (tally_pg_query(st, NULL, "SELECT pg_try_advisory_xact_lock($1)", &key, 1, &r, NULL)) {
            PQclear(r);
            return -1;
        }
        mine = tally_pg_int(r, 0, 0) != 0;
        PQclear(r);
    }
    if (!mine)
        return 0;
    tally_value tat = tally_value_float((double)now_ms * 1000.0), old = tally_value_int(now_ms - idem_ttl_ms);
    int rc = tally_pg_query(st, NULL,
                            "DELETE FROM tally_limits WHERE (name, key) IN (SELECT name, key FROM tally_limits "
                            "WHERE tat < $1 LIMIT 10000 FOR UPDATE SKIP LOCKED)",
                            &tat, 1, &r, NULL);
    PQclear(r);
    if (rc == 0) {
        rc = tally_pg_query(st, NULL,
                            "DELETE FROM tally_idempotency WHERE (method, path, key) IN (SELECT method, path, key "
                            "FROM tally_idempotency WHERE created_at < $1 LIMIT 10000 FOR UPDATE SKIP LOCKED)",
                            &old, 1, &r, NULL);
        PQclear(r);
    }
    if (rc == 0) { /* batch ids are needed only until their lane has answered: an hour is plenty */
        tally_value hour = tally_value_int(now_ms - 3600 * 1000);
        rc = tally_pg_query(st, NULL,
                            "DELETE FROM tally_batches WHERE id IN (SELECT id FROM tally_batches WHERE created_at < $1 "
                            "LIMIT 10000 FOR UPDATE SKIP LOCKED)",
                            &hour, 1, &r, NULL);
        PQclear(r);
    }
    if (rc == 0) /* the change feed past its bounds */
        rc = tally_pg_feed_purge(st, now_ms);
    return rc ? -1 : 0;
}
