/*
 * feed.c — the change feed on PostgreSQL (store/backend.h, feed_*): an
 * outbox written in each writing transaction, and one sequencer at a time
 * that numbers the changes of ended transactions.
 *
 *   tally_outbox(ord, xid, model, rid, op, rec, at)  written by statement triggers on each model, in the
 *                                                    writer's transaction; no seq (ord is only an order)
 *   tally_changes(seq, model, rid, op, rec, at)      numbered changes: what followers read
 *   tally_feed_state(name, value)                    'head' (the newest seq), 'purged' (how far purged)
 *
 * Why not a seq taken at write time: a transaction may take 5, stay open and
 * commit after 6 was shown.  The sequencer instead moves what its snapshot
 * sees of the outbox — committed transactions only, each whole — into
 * tally_changes, numbered after the head, transactions ordered by their
 * last ord and changes by ord within one.  That keeps every record's
 * versions in order: a transaction that changes a row another changed before
 * waits on the row lock until that one commits, so all the first one's ords
 * are smaller than its own last, and a snapshot that sees the second
 * sees the first (docs/decisions.md).  Numbering rounds are serialised by an
 * advisory lock (a meta row with --portable) held to COMMIT, so the numbers
 * followers see only ever grow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres/internal.h"

#define TALLY_PG_FEED_LOCK 0x74616c6c79666564LL /* "tallyfed" */
#define ROUND_TRANSACTIONS 1000                 /* transactions numbered per round at most */

const char tally_pg_feed_tables[] =
    "CREATE TABLE IF NOT EXISTS tally_outbox (ord bigserial PRIMARY KEY, xid xid8 NOT NULL, "
    "model text COLLATE \"C\" NOT NULL, rid bigint NOT NULL, op text NOT NULL, rec json, at bigint NOT NULL, "
    "n integer NOT NULL DEFAULT 1, merged text); "
    "CREATE TABLE IF NOT EXISTS tally_changes (seq bigint PRIMARY KEY, model text COLLATE \"C\" NOT NULL, "
    "rid bigint NOT NULL, op text NOT NULL, rec json, at bigint NOT NULL, merged text); "
    /* the merge of a coalesced run finds its row by transaction: without
     * this, a scan of the outbox (and its dead rows) per run */
    "CREATE INDEX IF NOT EXISTS tally_outbox_by_xact ON tally_outbox (xid, model, rid, ord); "
    "ALTER TABLE tally_outbox ADD COLUMN IF NOT EXISTS n integer NOT NULL DEFAULT 1; "
    "ALTER TABLE tally_outbox ADD COLUMN IF NOT EXISTS merged text; "
    "ALTER TABLE tally_changes ADD COLUMN IF NOT EXISTS merged text; "
    "CREATE TABLE IF NOT EXISTS tally_feed_state (name text COLLATE \"C\" PRIMARY KEY, value bigint NOT NULL); "
    "INSERT INTO tally_feed_state (name, value) VALUES ('head', 0), ('purged', 0) ON CONFLICT DO NOTHING; "
    /* One statement's changed rows, from its transition table, into the outbox
     * (qualified by the table's name: a field may be called anything). */
    "CREATE OR REPLACE FUNCTION tally_feed_capture() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
    "IF TG_OP = 'DELETE' THEN "
    "INSERT INTO tally_outbox (xid, model, rid, op, rec, at) SELECT pg_current_xact_id(), TG_TABLE_NAME, "
    "tally_old.id, 'd', NULL, (extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM tally_old; "
    "ELSE "
    "INSERT INTO tally_outbox (xid, model, rid, op, rec, at) SELECT pg_current_xact_id(), TG_TABLE_NAME, "
    "tally_new.id, CASE TG_OP WHEN 'INSERT' THEN 'c' ELSE 'u' END, row_to_json(tally_new.*), "
    "(extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM tally_new; "
    "END IF; RETURN NULL; END $f$";

static tally_value text(const char *s) { return tally_value_text(s, strlen(s)); }

/* Inside the migration's transaction: the three statement triggers of each
 * model with changes on; none on a model that opts out. */
int tally_pg_feed_install(tally_pg *st, tally_error *err)
{
    for (int i = 0; i < st->schema->nmodels; i++) {
        const tally_model *m = &st->schema->models[i];
        tally_value v = text(m->name);
        PGresult *r;
        tally_pg_diag d;
        if (tally_pg_query(st, NULL,
                           "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n "
                           "ON n.oid = c.relnamespace WHERE c.relname = $1 AND n.nspname = current_schema() AND "
                           "t.tgname IN ('tally_feed_c', 'tally_feed_u', 'tally_feed_d')",
                           &v, 1, &r, &d)) {
            int rc = tally_pg_fail(&d, "look up the change feed's triggers", err);
            PQclear(r);
            return rc;
        }
        int64_t have = tally_pg_int(r, 0, 0);
        PQclear(r);
        char sql[1024];
        if (m->changes && have != 3)
            snprintf(sql, sizeof sql,
                     "CREATE OR REPLACE TRIGGER tally_feed_c AFTER INSERT ON \"%s\" REFERENCING NEW TABLE AS tally_new "
                     "FOR EACH STATEMENT EXECUTE FUNCTION tally_feed_capture(); "
                     "CREATE OR REPLACE TRIGGER tally_feed_u AFTER UPDATE ON \"%s\" REFERENCING NEW TABLE AS tally_new "
                     "FOR EACH STATEMENT EXECUTE FUNCTION tally_feed_capture(); "
                     "CREATE OR REPLACE TRIGGER tally_feed_d AFTER DELETE ON \"%s\" REFERENCING OLD TABLE AS tally_old "
                     "FOR EACH STATEMENT EXECUTE FUNCTION tally_feed_capture()",
                     m->name, m->name, m->name);
        else if (!m->changes && have > 0)
            snprintf(sql, sizeof sql,
                     "DROP TRIGGER IF EXISTS tally_feed_c ON \"%s\"; DROP TRIGGER IF EXISTS tally_feed_u ON \"%s\"; "
                     "DROP TRIGGER IF EXISTS tally_feed_d ON \"%s\"",
                     m->name, m->name, m->name);
        else
            continue;
        if (tally_pg_exec(st, sql, err))
            return -(int)err->code;
    }
    return 0;
}

int tally_pg_feed_state(tally_store *base, tally_feed_state *out, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    PGresult *r;
    tally_pg_diag d;
    memset(out, 0, sizeof *out);
    int rc = tally_pg_query(st, NULL,
                            "SELECT (SELECT value FROM tally_feed_state WHERE name = 'head'), "
                            "(SELECT value FROM tally_feed_state WHERE name = 'purged'), "
                            "(SELECT count(*) FROM tally_outbox), "
                            "coalesce((SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint - min(at) "
                            "FROM tally_outbox), 0)",
                            NULL, 0, &r, &d);
    if (rc == 0) {
        out->head = tally_pg_int(r, 0, 0);
        out->purged = tally_pg_int(r, 0, 1);
        out->pending = tally_pg_int(r, 0, 2);
        out->lag_ms = tally_pg_int(r, 0, 3);
    } else {
        rc = tally_pg_fail(&d, "read the change feed", err);
    }
    PQclear(r);
    return rc;
}

static int model_index(const tally_schema *s, const char *name, size_t len)
{
    const tally_model *m = tally_schema_model(s, name, len);
    return m ? m->index : -1;
}

int tally_pg_feed_read(tally_store *base, tally_plan *plan, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    tally_plan_prepare_results(plan);
    tally_step *s = &plan->steps[0];
    tally_step_result *res = &plan->results[0];
    if (s->since < 0) { /* from now on: after the head as it stands */
        tally_feed_state fs;
        if (tally_pg_feed_state(base, &fs, err))
            return -(int)err->code;
        s->since = fs.head;
    }
    /* One statement, one snapshot: the head, how far purged, and the page. */
    tally_buf q;
    tally_buf_init(&q);
    tally_buf_add(&q, "SELECT h.value, p.value, c.seq, c.model, c.rid, c.op, c.rec, c.at, c.merged FROM "
                      "tally_feed_state h JOIN tally_feed_state p ON p.name = 'purged' LEFT JOIN LATERAL (SELECT seq, "
                      "model, rid, op, rec, at, merged FROM tally_changes WHERE seq > greatest($1, p.value) AND seq <= h.value");
    tally_value v[2 + s->nfeed_models];
    v[0] = tally_value_int(s->since);
    v[1] = tally_value_int(s->first);
    if (s->feed_models) {
        tally_buf_add(&q, " AND model IN (");
        for (int i = 0; i < s->nfeed_models; i++) {
            tally_buf_addf(&q, "%s$%d", i ? ", " : "", i + 3);
            v[2 + i] = text(plan->schema->models[s->feed_models[i]].name);
        }
        tally_buf_add(&q, ")");
    }
    tally_buf_add(&q, " ORDER BY seq LIMIT $2) c ON true WHERE h.name = 'head' ORDER BY c.seq");
    PGresult *r;
    tally_pg_diag d;
    int rc = tally_pg_query(st, NULL, q.s, v, 2 + (s->feed_models ? s->nfeed_models : 0), &r, &d);
    tally_buf_free(&q);
    if (rc) {
        rc = tally_pg_fail(&d, "read the change feed", err);
        PQclear(r);
        return rc;
    }
    int rows = PQntuples(r);
    int64_t head = rows ? tally_pg_int(r, 0, 0) : 0, purged = rows ? tally_pg_int(r, 0, 1) : 0;
    if (s->since != 0 && s->since < purged) {
        PQclear(r);
        res->oldest = purged + 1;
        return tally_fail(err, TALLY_GONE, "after",
                          "the change feed no longer keeps changes after %lld: the oldest kept is %lld; start again "
                          "from after=0 (the oldest kept) or without after (from now on)",
                          (long long)s->since, (long long)(purged + 1));
    }
    res->changes = tally_arena_zalloc(&plan->arena, sizeof *res->changes * (size_t)(rows > 0 ? rows : 1));
    res->nchanges = 0;
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(r, i, 2))
            continue; /* the state alone: no change in the page */
        tally_change *c = &res->changes[res->nchanges++];
        c->seq = tally_pg_int(r, i, 2);
        c->model = model_index(plan->schema, PQgetvalue(r, i, 3), (size_t)PQgetlength(r, i, 3));
        c->id = tally_pg_int(r, i, 4);
        c->op = PQgetvalue(r, i, 5)[0];
        c->rec = PQgetisnull(r, i, 6) ? NULL
                                      : tally_arena_strndup(&plan->arena, PQgetvalue(r, i, 6), (size_t)PQgetlength(r, i, 6));
        c->rec_len = c->rec ? (size_t)PQgetlength(r, i, 6) : 0;
        c->at = tally_pg_int(r, i, 7);
        c->merged = PQgetisnull(r, i, 8)
                        ? NULL
                        : tally_arena_strndup(&plan->arena, PQgetvalue(r, i, 8), (size_t)PQgetlength(r, i, 8));
    }
    PQclear(r);
    int64_t from = s->since == 0 ? purged : s->since;
    res->next = res->nchanges == s->first ? res->changes[res->nchanges - 1].seq : head > from ? head : from;
    return 0;
}

/* The outbox row the coalesced statement just wrote stands for n writes. */
int tally_pg_feed_merge(tally_store *base, const tally_model *m, int64_t id, int n, const char *merged,
                        tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    tally_value v[4] = {text(m->name), tally_value_int(id), tally_value_int(n), text(merged)};
    PGresult *r;
    tally_pg_diag d;
    int rc = tally_pg_query(st, NULL,
                            "UPDATE tally_outbox SET n = $3, merged = $4 WHERE ord = (SELECT max(ord) FROM tally_outbox "
                            "WHERE xid = pg_current_xact_id() AND model = $1 AND rid = $2)",
                            v, 4, &r, &d);
    if (rc)
        rc = tally_pg_fail(&d, "log the writes' changes", err);
    PQclear(r);
    return rc;
}

/* One numbering round, if this connection gets the sequencer's lock. */
int tally_pg_feed_sequence(tally_store *base, int *numbered, tally_error *err)
{
    tally_pg *st = (tally_pg *)base;
    *numbered = 0;
    PGresult *r;
    tally_pg_diag d;
    /* Nothing waits: no transaction, no lock (the usual case between writes). */
    if (tally_pg_query(st, NULL, "SELECT EXISTS (SELECT 1 FROM tally_outbox)", NULL, 0, &r, &d)) {
        int rc = tally_pg_fail(&d, "look at the change feed's outbox", err);
        PQclear(r);
        return rc;
    }
    bool any = tally_pg_int(r, 0, 0) != 0;
    PQclear(r);
    if (!any)
        return 0;
    if (tally_pg_exec(st, "BEGIN", err))
        return -(int)err->code;
    int rc = 0;
    bool mine;
    if (st->portable) {
        int held = tally_pg_meta_lock(st, "feed", false, err);
        rc = held < 0 ? held : 0;
        mine = held == 1;
    } else {
        tally_value key = tally_value_int(TALLY_PG_FEED_LOCK);
        rc = tally_pg_query(st, NULL, "SELECT pg_try_advisory_xact_lock($1)", &key, 1, &r, &d);
        mine = rc == 0 && tally_pg_int(r, 0, 0) != 0;
        if (rc)
            rc = tally_pg_fail(&d, "take the change feed's sequencer lock", err);
        PQclear(r);
    }
    int64_t head = 0;
    if (rc == 0 && mine) { /* the head first: the statement below updates that row, so it cannot read it too */
        rc = tally_pg_query(st, NULL, "SELECT value FROM tally_feed_state WHERE name = 'head'", NULL, 0, &r, &d);
        if (rc == 0)
            head = tally_pg_int(r, 0, 0);
        else
            rc = tally_pg_fail(&d, "read the change feed's head", err);
        PQclear(r);
    }
    if (rc == 0 && mine) {
        tally_value v[2] = {tally_value_int(ROUND_TRANSACTIONS), tally_value_int(head)};
        rc = tally_pg_query(st, NULL,
                            "WITH t AS (SELECT xid, max(ord) AS last FROM tally_outbox GROUP BY xid ORDER BY last LIMIT $1), "
                            "m AS (DELETE FROM tally_outbox o USING t WHERE o.xid = t.xid "
                            "RETURNING o.ord, o.model, o.rid, o.op, o.rec, o.at, o.n, o.merged, t.last), "
                            /* a row standing for n writes takes n seqs: it is the last of them */
                            "s AS (INSERT INTO tally_changes (seq, model, rid, op, rec, at, merged) "
                            "SELECT $2 + sum(n) OVER (ORDER BY last, ord), model, rid, op, rec, at, merged FROM m "
                            "RETURNING 1) "
                            "UPDATE tally_feed_state SET value = $2 + (SELECT coalesce(sum(n), 0) FROM m) "
                            "WHERE name = 'head' RETURNING (SELECT count(*) FROM s)",
                            v, 2, &r, &d);
        if (rc == 0)
            *numbered = PQntuples(r) ? (int)tally_pg_int(r, 0, 0) : 0;
        else
            rc = tally_pg_fail(&d, "number the change feed", err);
        PQclear(r);
    }
    if (rc == 0 && tally_pg_exec(st, "COMMIT", err))
        rc = -(int)err->code;
    if (rc)
        tally_pg_exec(st, "ROLLBACK", NULL);
    return rc;
}

/* Inside the sweep's transaction (one server at a time): changes older than
 * the retention, and beyond the newest max_rows, go; 'purged' says how far. */
int tally_pg_feed_purge(tally_pg *st, int64_t now_ms)
{
    int64_t keep = st->changes_retention_ms > 0 ? st->changes_retention_ms : 24LL * 3600 * 1000;
    tally_value v[2] = {tally_value_int(now_ms - keep), tally_value_int(st->changes_max_rows)};
    PGresult *r;
    int rc = tally_pg_query(st, NULL,
                            "SELECT greatest(coalesce((SELECT max(seq) FROM (SELECT seq, at FROM tally_changes ORDER BY "
                            "seq LIMIT 10000) s WHERE at < $1), 0), CASE WHEN $2 > 0 THEN coalesce((SELECT seq FROM "
                            "tally_changes ORDER BY seq DESC OFFSET $2 LIMIT 1), 0) ELSE 0 END)",
                            v, 2, &r, NULL);
    int64_t upto = rc == 0 ? tally_pg_int(r, 0, 0) : 0;
    PQclear(r);
    if (rc || upto == 0)
        return rc ? -1 : 0;
    tally_value u = tally_value_int(upto);
    rc = tally_pg_query(st, NULL, "DELETE FROM tally_changes WHERE seq <= $1", &u, 1, &r, NULL);
    PQclear(r);
    if (rc == 0) {
        rc = tally_pg_query(st, NULL, "UPDATE tally_feed_state SET value = greatest(value, $1) WHERE name = 'purged'",
                            &u, 1, &r, NULL);
        PQclear(r);
    }
    return rc ? -1 : 0;
}
