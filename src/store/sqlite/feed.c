/*
 * feed.c — the change feed on SQLite (store/backend.h, feed_*):
 *   tally_changes(seq AUTOINCREMENT, model, rid, op, rec, at)   one row per changed record
 *   tally_changes_state(id = 1, purged)                          how far the log was purged
 * Triggers on every model with changes on append a row in the writing
 * statement itself, so a write and its change stand or fall together (a
 * savepoint rolled back takes its changes with it), and rows that updateMany,
 * deleteMany and foreign-key cascades touch are caught like any other.  One
 * writer connection commits in order, so the rowid order is the commit order
 * and seq needs no sequencer here.  rec is json_object(column, value, …);
 * floats go as text with 17 digits (SQLite's JSON keeps only 15).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"
#include "store/sqlite/internal.h"

const char tally_sqlite_feed_tables[] =
    "CREATE TABLE IF NOT EXISTS tally_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, "
    "rid INTEGER NOT NULL, op TEXT NOT NULL, rec TEXT, at INTEGER NOT NULL, merged TEXT) STRICT; "
    "CREATE TABLE IF NOT EXISTS tally_changes_state (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "purged INTEGER NOT NULL) STRICT; "
    "INSERT OR IGNORE INTO tally_changes_state (id, purged) VALUES (1, 0)";

#define PAIRS_PER_CALL 60 /* json_object takes at most 127 arguments */

/* json_object(…) of the row `row` (NEW or OLD) of m, in chunks joined by json_patch. */
static void record_json(tally_sql *q, const tally_model *m, const char *row)
{
    int chunks = (m->ncolumns + PAIRS_PER_CALL - 1) / PAIRS_PER_CALL;
    for (int k = 1; k < chunks; k++)
        tally_sql_add(q, "json_patch(");
    for (int k = 0; k < chunks; k++) {
        tally_sql_add(q, "json_object(");
        for (int c = k * PAIRS_PER_CALL; c < m->ncolumns && c < (k + 1) * PAIRS_PER_CALL; c++) {
            const char *name = tally_model_column_name(m, c);
            tally_sql_addf(q, "%s'%s', ", c > k * PAIRS_PER_CALL ? ", " : "", name);
            if (tally_model_column_type(m, c) == TALLY_TYPE_FLOAT)
                tally_sql_addf(q, "CASE WHEN %s.\"%s\" IS NULL THEN NULL ELSE printf('%%!.17g', %s.\"%s\") END", row,
                               name, row, name);
            else
                tally_sql_addf(q, "%s.\"%s\"", row, name);
        }
        tally_sql_add(q, k == 0 ? ")" : "))");
    }
}

/* The text of model m's trigger for op ('c', 'u', 'd'), as sqlite_schema keeps it. */
static void trigger_sql(tally_sql *q, const tally_model *m, char op)
{
    const char *event = op == 'c' ? "INSERT" : op == 'u' ? "UPDATE" : "DELETE";
    tally_sql_addf(q, "CREATE TRIGGER \"tally_feed_%c:%s\" AFTER %s ON \"%s\" BEGIN INSERT INTO tally_changes "
                      "(model, rid, op, rec, at) VALUES ('%s', %s.\"id\", '%c', ",
                   op, m->name, event, m->name, m->name, op == 'd' ? "OLD" : "NEW", op);
    if (op == 'd')
        tally_sql_add(q, "NULL");
    else
        record_json(q, m, "NEW");
    tally_sql_add(q, ", CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)); END");
}

/* Inside the migration's transaction, before it changes tables: every feed
 * trigger goes (SQLite refuses to drop a column a trigger names). */
int tally_sqlite_feed_uninstall(tally_sqlite *st, tally_error *err)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'tally_feed_%'",
                           -1, &q, NULL) != SQLITE_OK)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot list the change feed's triggers: %s",
                          sqlite3_errmsg(st->db));
    tally_sql drop;
    tally_sql_init(&drop);
    while (sqlite3_step(q) == SQLITE_ROW)
        tally_sql_addf(&drop, "DROP TRIGGER \"%s\"; ", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    int rc = drop.len ? tally_sqlite_exec(st, drop.s, err) : 0;
    tally_sql_free(&drop);
    return rc;
}

/* After the tables are as the schema wants: the triggers of each model with changes on. */
int tally_sqlite_feed_install(tally_sqlite *st, tally_error *err)
{
    static const char ops[] = {'c', 'u', 'd'};
    for (int i = 0; i < st->schema->nmodels; i++) {
        const tally_model *m = &st->schema->models[i];
        for (int k = 0; m->changes && k < 3; k++) {
            tally_sql want;
            tally_sql_init(&want);
            trigger_sql(&want, m, ops[k]);
            int rc = tally_sqlite_exec(st, want.s, err);
            tally_sql_free(&want);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int read_state(tally_sqlite *st, tally_feed_state *out, tally_error *err)
{
    sqlite3_stmt *q = tally_sqlite_stmt(st,
                                        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'tally_changes'), "
                                        "0), purged FROM tally_changes_state WHERE id = 1",
                                        err);
    if (!q)
        return -TALLY_UNAVAILABLE;
    int rc = sqlite3_step(q);
    memset(out, 0, sizeof *out);
    if (rc == SQLITE_ROW) {
        out->head = sqlite3_column_int64(q, 0);
        out->purged = sqlite3_column_int64(q, 1);
    }
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not read the change feed (%s); retry",
                          sqlite3_errmsg(st->db));
    if (out->purged > out->head) /* every change was purged and none came since */
        out->head = out->purged;
    return 0;
}

int tally_sqlite_feed_state(tally_store *base, tally_feed_state *out, tally_error *err)
{
    return read_state(tally_sqlite_of(base), out, err);
}

static int model_index(const tally_schema *s, const char *name)
{
    const tally_model *m = name ? tally_schema_model(s, name, strlen(name)) : NULL;
    return m ? m->index : -1;
}

/* The page, between BEGIN and COMMIT so that the state and the rows are one snapshot. */
static int read_page(tally_sqlite *st, tally_plan *plan, tally_error *err)
{
    tally_step *s = &plan->steps[0];
    tally_step_result *res = &plan->results[0];
    tally_feed_state fs;
    int rc = read_state(st, &fs, err);
    if (rc)
        return rc;
    if (s->since < 0)
        s->since = fs.head;
    int64_t from = s->since == 0 ? fs.purged : s->since;
    if (from < fs.purged) {
        res->oldest = fs.purged + 1;
        return tally_fail(err, TALLY_GONE, "after",
                          "the change feed no longer keeps changes after %lld: the oldest kept is %lld; start again "
                          "from after=0 (the oldest kept) or without after (from now on)",
                          (long long)s->since, (long long)(fs.purged + 1));
    }
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_add(&q, "SELECT seq, model, rid, op, rec, at, merged FROM tally_changes WHERE seq > ?1 AND seq <= ?2");
    if (s->feed_models) {
        tally_sql_add(&q, " AND model IN (");
        for (int i = 0; i < s->nfeed_models; i++)
            tally_sql_addf(&q, "%s?%d", i ? ", " : "", i + 4);
        tally_sql_add(&q, ")");
    }
    tally_sql_add(&q, " ORDER BY seq LIMIT ?3");
    sqlite3_stmt *stmt = tally_sqlite_stmt(st, q.s, err);
    tally_sql_free(&q);
    if (!stmt)
        return -TALLY_INTERNAL;
    sqlite3_bind_int64(stmt, 1, from);
    sqlite3_bind_int64(stmt, 2, fs.head);
    sqlite3_bind_int(stmt, 3, s->first);
    for (int i = 0; s->feed_models && i < s->nfeed_models; i++)
        sqlite3_bind_text(stmt, i + 4, plan->schema->models[s->feed_models[i]].name, -1, SQLITE_STATIC);
    res->changes = tally_arena_zalloc(&plan->arena, sizeof *res->changes * (size_t)(s->first > 0 ? s->first : 1));
    res->nchanges = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && res->nchanges < s->first) {
        tally_change *c = &res->changes[res->nchanges++];
        c->seq = sqlite3_column_int64(stmt, 0);
        c->model = model_index(plan->schema, (const char *)sqlite3_column_text(stmt, 1));
        c->id = sqlite3_column_int64(stmt, 2);
        const char *op = (const char *)sqlite3_column_text(stmt, 3);
        c->op = op ? op[0] : 'u';
        const char *rec = (const char *)sqlite3_column_text(stmt, 4);
        c->rec_len = (size_t)sqlite3_column_bytes(stmt, 4);
        c->rec = rec ? tally_arena_strndup(&plan->arena, rec, c->rec_len) : NULL;
        c->at = sqlite3_column_int64(stmt, 5);
        const char *merged = (const char *)sqlite3_column_text(stmt, 6);
        c->merged = merged ? tally_arena_strndup(&plan->arena, merged, (size_t)sqlite3_column_bytes(stmt, 6)) : NULL;
    }
    bool ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (!ok)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not read the change feed (%s); retry",
                          sqlite3_errmsg(st->db));
    /* A full page resumes after its last change; a short one has seen all up to the head. */
    res->next = res->nchanges == s->first ? res->changes[res->nchanges - 1].seq : fs.head;
    if (res->next < s->since)
        res->next = s->since;
    return 0;
}

int tally_sqlite_feed_read(tally_store *base, tally_plan *plan, tally_error *err)
{
    tally_sqlite *st = tally_sqlite_of(base);
    tally_plan_prepare_results(plan);
    if (tally_sqlite_exec(st, "BEGIN", err))
        return -TALLY_UNAVAILABLE;
    int rc = read_page(st, plan, err);
    tally_sqlite_exec(st, "COMMIT", NULL);
    return rc;
}

/* The change a coalesced statement just logged stands for n writes: it moves
 * to the last of n seqs (the n - 1 before it are its earlier writes). */
int tally_sqlite_feed_merge(tally_store *base, const tally_model *m, int64_t id, int n, const char *merged,
                            tally_error *err)
{
    tally_sqlite *st = tally_sqlite_of(base);
    sqlite3_stmt *a = tally_sqlite_stmt(st,
                                        "UPDATE tally_changes SET seq = seq + ?1, merged = ?2 WHERE seq = (SELECT seq "
                                        "FROM sqlite_sequence WHERE name = 'tally_changes') AND model = ?3 AND rid = ?4",
                                        err);
    sqlite3_stmt *b = tally_sqlite_stmt(st, "UPDATE sqlite_sequence SET seq = seq + ?1 WHERE name = 'tally_changes'",
                                        err);
    if (!a || !b)
        return -TALLY_INTERNAL;
    sqlite3_bind_int(a, 1, n - 1);
    sqlite3_bind_text(a, 2, merged, -1, SQLITE_STATIC);
    sqlite3_bind_text(a, 3, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(a, 4, id);
    sqlite3_bind_int(b, 1, n - 1);
    int rc = sqlite3_step(a);
    bool one = rc == SQLITE_DONE && sqlite3_changes(st->db) == 1;
    sqlite3_reset(a);
    sqlite3_clear_bindings(a);
    rc = one ? sqlite3_step(b) : rc;
    sqlite3_reset(b);
    if (!one || rc != SQLITE_DONE)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not log the writes' changes (%s); retry",
                          sqlite3_errmsg(st->db));
    return 0;
}

/* Inside the writer's sweep transaction: changes older than retention_ms, and
 * beyond the newest max_rows, go; the state remembers how far. */
int tally_sqlite_feed_purge(tally_sqlite *st, int64_t now_ms)
{
    int64_t cutoff = now_ms - (st->changes_retention_ms > 0 ? st->changes_retention_ms : 24LL * 3600 * 1000);
    int64_t upto = 0;
    sqlite3_stmt *a = tally_sqlite_stmt(st, "SELECT seq, at FROM tally_changes ORDER BY seq LIMIT 10000", NULL);
    if (!a)
        return -1;
    while (sqlite3_step(a) == SQLITE_ROW && sqlite3_column_int64(a, 1) < cutoff)
        upto = sqlite3_column_int64(a, 0);
    sqlite3_reset(a);
    if (st->changes_max_rows > 0) {
        sqlite3_stmt *b = tally_sqlite_stmt(st, "SELECT seq FROM tally_changes ORDER BY seq DESC LIMIT 1 OFFSET ?1",
                                            NULL);
        if (!b)
            return -1;
        sqlite3_bind_int64(b, 1, st->changes_max_rows);
        if (sqlite3_step(b) == SQLITE_ROW && sqlite3_column_int64(b, 0) > upto)
            upto = sqlite3_column_int64(b, 0);
        sqlite3_reset(b);
    }
    if (upto == 0)
        return 0;
    sqlite3_stmt *d = tally_sqlite_stmt(st, "DELETE FROM tally_changes WHERE seq <= ?1", NULL);
    sqlite3_stmt *u = tally_sqlite_stmt(st, "UPDATE tally_changes_state SET purged = max(purged, ?1) WHERE id = 1",
                                        NULL);
    if (!d || !u)
        return -1;
    sqlite3_bind_int64(d, 1, upto);
    sqlite3_bind_int64(u, 1, upto);
    int rc = sqlite3_step(d) == SQLITE_DONE && sqlite3_step(u) == SQLITE_DONE ? 0 : -1;
    sqlite3_reset(d);
    sqlite3_reset(u);
    return rc;
}
