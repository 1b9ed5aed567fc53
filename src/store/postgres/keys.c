/*
 * keys.c — API keys on PostgreSQL, the same tables as sqlite/keys.c, shared
 * by every server on the database:
 *   tally_keys(id, name, scopes, hash, created_at)   one row per live key
 *   tally_keys_state(id = 1, generation, ever)        counts changes; a key has existed
 * Each call is its own transaction on a connection of its own (the server's
 * keyring, or `tally keys`).  A create or revoke updates the one state row,
 * so concurrent changes from several servers queue on its row lock and every
 * change gets a generation of its own.
 */
#include <stdlib.h>
#include <string.h>

#include "store/postgres/internal.h"

const char tally_pg_keys_tables[] =
    "CREATE TABLE IF NOT EXISTS tally_keys (id bigserial PRIMARY KEY, name text COLLATE \"C\" NOT NULL UNIQUE, "
    "scopes text NOT NULL, hash bytea NOT NULL, created_at bigint NOT NULL); "
    "CREATE TABLE IF NOT EXISTS tally_keys_state (id integer PRIMARY KEY CHECK (id = 1), "
    "generation bigint NOT NULL, ever boolean NOT NULL); "
    "INSERT INTO tally_keys_state (id, generation, ever) VALUES (1, 0, false) ON CONFLICT DO NOTHING";

static const Oid HASH_AS_BYTES[4] = {0, 0, TALLY_PG_BYTEA, 0};

int tally_pg_keys_prepare(tally_store *base, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    char lock[96];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%lld)", (long long)TALLY_PG_MIGRATE_LOCK);
    if (tally_pg_exec(st, "BEGIN", err))
        return -(int)err->code;
    int rc = tally_pg_exec(st, lock, err);
    if (rc == 0)
        rc = tally_pg_exec(st, tally_pg_keys_tables, err);
    if (rc == 0)
        rc = tally_pg_exec(st, "COMMIT", err);
    else
        tally_pg_exec(st, "ROLLBACK", NULL);
    return rc;
}

static int read_state(tally_pg *st, tally_keys_state *out, tally_error *err)
{
    PGresult *r;
    tally_pg_diag d;
    if (tally_pg_query(st, NULL, "SELECT generation, ever FROM tally_keys_state WHERE id = 1", NULL, 0, &r, &d)) {
        PQclear(r);
        return tally_pg_fail(&d, "read the key table", err);
    }
    out->generation = PQntuples(r) ? tally_pg_int(r, 0, 0) : 0;
    out->ever = PQntuples(r) && tally_pg_int(r, 0, 1) != 0;
    PQclear(r);
    return 0;
}

int tally_pg_keys_state(tally_store *base, tally_keys_state *out, tally_error *err)
{
    return read_state((tally_pg *)base, out, err);
}

int tally_pg_keys_list(tally_store *base, tally_key_row **rows, int *n, tally_keys_state *state, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    *rows = NULL;
    *n = 0;
    PGresult *r;
    tally_pg_diag d;
    /* One statement, one snapshot: the state joined to every key (a row of NULLs when there is none). */
    if (tally_pg_query(st, NULL,
                       "SELECT s.generation, s.ever, k.id, k.name, k.scopes, k.hash, k.created_at "
                       "FROM tally_keys_state s LEFT JOIN tally_keys k ON true WHERE s.id = 1 ORDER BY k.name",
                       NULL, 0, &r, &d)) {
        PQclear(r);
        return tally_pg_fail(&d, "read the key table", err);
    }
    int rows_n = PQntuples(r);
    state->generation = rows_n ? tally_pg_int(r, 0, 0) : 0;
    state->ever = rows_n && tally_pg_int(r, 0, 1) != 0;
    if (rows_n) {
        *rows = calloc((size_t)rows_n, sizeof **rows);
        if (!*rows)
            abort();
    }
    for (int i = 0; i < rows_n; i++) {
        if (PQgetisnull(r, i, 2))
            continue;
        tally_key_row *k = &(*rows)[(*n)++];
        k->id = tally_pg_int(r, i, 2);
        snprintf(k->name, sizeof k->name, "%.*s", PQgetlength(r, i, 3), PQgetvalue(r, i, 3));
        snprintf(k->scopes, sizeof k->scopes, "%.*s", PQgetlength(r, i, 4), PQgetvalue(r, i, 4));
        if (PQgetlength(r, i, 5) == (int)sizeof k->hash)
            memcpy(k->hash, PQgetvalue(r, i, 5), sizeof k->hash);
        k->created_at = tally_pg_int(r, i, 6);
    }
    PQclear(r);
    return 0;
}

/* Runs a change and the generation's bump in one transaction; change returns 0 or -code. */
static int in_txn(tally_pg *st, int (*change)(tally_pg *, void *, tally_error *), void *arg, bool created,
                  tally_error *err)
{
    if (tally_pg_exec(st, "BEGIN", err))
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not begin a transaction; retry");
    int rc = change(st, arg, err);
    if (rc == 0) {
        tally_value v = tally_value_int(created);
        PGresult *r;
        tally_pg_diag d;
        if (tally_pg_query(st, NULL,
                           "UPDATE tally_keys_state SET generation = generation + 1, ever = ever OR $1::bigint <> 0 WHERE id = 1",
                           &v, 1, &r, &d))
            rc = tally_pg_fail(&d, "update the key table", err);
        PQclear(r);
    }
    if (rc == 0 && tally_pg_exec(st, "COMMIT", err))
        rc = tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not commit the change to the keys; retry");
    if (rc)
        tally_pg_exec(st, "ROLLBACK", NULL);
    return rc;
}

static int insert_key(tally_pg *st, void *arg, tally_error *err)
{
    tally_key_row *row = arg;
    tally_value v[4] = {tally_value_text(row->name, strlen(row->name)), tally_value_text(row->scopes, strlen(row->scopes)),
                        tally_value_text((const char *)row->hash, sizeof row->hash), tally_value_int(row->created_at)};
    PGresult *r;
    tally_pg_diag d;
    int rc = 0;
    if (tally_pg_query_as(st, NULL,
                          "INSERT INTO tally_keys (name, scopes, hash, created_at) VALUES ($1, $2, $3, $4) "
                          "ON CONFLICT (name) DO NOTHING RETURNING id",
                          v, 4, HASH_AS_BYTES, &r, &d))
        rc = tally_pg_fail(&d, "store the key", err);
    else if (PQntuples(r) == 0)
        rc = tally_fail(err, TALLY_CONFLICT, "name",
                        "a key named '%s' already exists; revoke it first or choose another name", row->name);
    else
        row->id = tally_pg_int(r, 0, 0);
    PQclear(r);
    return rc;
}

static int delete_key(tally_pg *st, void *arg, tally_error *err)
{
    const char *name = arg;
    tally_value v = tally_value_text(name, strlen(name));
    PGresult *r;
    tally_pg_diag d;
    int rc = 0;
    if (tally_pg_query(st, NULL, "DELETE FROM tally_keys WHERE name = $1 RETURNING id", &v, 1, &r, &d))
        rc = tally_pg_fail(&d, "revoke the key", err);
    else if (PQntuples(r) == 0)
        rc = tally_fail(err, TALLY_NOT_FOUND, "name", "there is no key named '%s'", name);
    PQclear(r);
    return rc;
}

int tally_pg_keys_create(tally_store *base, tally_key_row *row, tally_error *err)
{
    return in_txn((tally_pg *)base, insert_key, row, true, err);
}

int tally_pg_keys_revoke(tally_store *base, const char *name, tally_error *err)
{
    return in_txn((tally_pg *)base, delete_key, (void *)name, false, err);
}
