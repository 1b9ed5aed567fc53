/*
 * connection.c — the SQLite backend's ops table (store/backend.h): opening a
 * connection, transactions, and running each step of a plan.
 *
 * Durability: WAL with synchronous=FULL, checked at open (a connection that
 * does not report them refuses to start).  Checkpoints are the writer's job
 * between batches (wal_autocheckpoint=0), so no COMMIT pays for one.
 *
 * Each write is one statement that judges its own constraints: min/max are
 * CHECK constraints, integer arithmetic goes through tally_add/tally_sub
 * (checked 64-bit; SQLite alone would turn an overflow into a float), and the
 * record is read back by id in the same transaction, which is cheaper than
 * RETURNING here (docs/architecture.md, "Backends").  Statements are prepared once per SQL text
 * and kept in a per-connection cache.
 */
#include "store/sqlite/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "store/sql.h"
#include "store/step_errors.h"
#include "store/sqlite/sync_vfs.h"

#define WAL_CHECKPOINT_FRAMES 4000 /* about 16 MB of 4 KB pages */

/* ---- checked arithmetic for atomics ------------------------------------ */

/* tally_add(a, b, column) / tally_sub(a, b, column).  Errors are raised with a
 * message "tally:overflow:<column>" or "tally:null:<column>" that map_error reads. */
static void arith(sqlite3_context *ctx, sqlite3_value **argv, int sub)
{
    int col = sqlite3_value_int(argv[2]);
    int ta = sqlite3_value_type(argv[0]), tb = sqlite3_value_type(argv[1]);
    char msg[48];
    if (ta == SQLITE_NULL || tb == SQLITE_NULL) {
        snprintf(msg, sizeof msg, "tally:null:%d", col);
        sqlite3_result_error(ctx, msg, -1);
        return;
    }
    if (ta == SQLITE_INTEGER && tb == SQLITE_INTEGER) {
        sqlite3_int64 a = sqlite3_value_int64(argv[0]), b = sqlite3_value_int64(argv[1]), r;
        if (sub ? __builtin_sub_overflow(a, b, &r) : __builtin_add_overflow(a, b, &r)) {
            snprintf(msg, sizeof msg, "tally:overflow:%d", col);
            sqlite3_result_error(ctx, msg, -1);
            return;
        }
        sqlite3_result_int64(ctx, r);
        return;
    }
    double a = sqlite3_value_double(argv[0]), b = sqlite3_value_double(argv[1]);
    sqlite3_result_double(ctx, sub ? a - b : a + b);
}
static void fn_add(sqlite3_context *ctx, int argc, sqlite3_value **argv) { (void)argc; arith(ctx, argv, 0); }
static void fn_sub(sqlite3_context *ctx, int argc, sqlite3_value **argv) { (void)argc; arith(ctx, argv, 1); }

static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db; (void)name;
    ((tally_sqlite *)arg)->wal_frames = frames;
    return SQLITE_OK;
}

/* ---- connection --------------------------------------------------------- */

int tally_sqlite_exec(tally_sqlite *st, const char *sql, tally_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        tally_fail(err, TALLY_INTERNAL, NULL, "SQLite: %s (in: %.200s)", msg ? msg : "?", sql);
        sqlite3_free(msg);
        return -TALLY_INTERNAL;
    }
    return 0;
}

static int pragma_text(tally_sqlite *st, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *stmt;
    out[0] = '\0';
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && sqlite3_column_text(stmt, 0))
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW ? 0 : -1;
}

static sqlite3_stmt *prepare_fixed(tally_sqlite *st, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
    return stmt;
}

static void sqlite_close(tally_store *base);

static int sqlite_open(const char *path, const tally_schema *schema, const tally_store_options *opt,
                       tally_store **out, tally_error *err)
{
    *out = NULL;
    if (tally_sync_vfs_register() != SQLITE_OK)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot register the SQLite VFS shim");
    tally_sqlite *st = calloc(1, sizeof *st);
    st->base.ops = &tally_sqlite_backend;
    st->schema = schema;
    st->by_id = calloc((size_t)(schema && schema->nmodels > 0 ? schema->nmodels : 1), sizeof *st->by_id);
    if (!st->by_id)
        abort();
    st->role = opt->role;
    st->changes_retention_ms = opt->changes_retention_ms;
    st->changes_max_rows = opt->changes_max_rows;
    int flags = SQLITE_OPEN_NOMUTEX |
                (opt->role == TALLY_STORE_WRITER || opt->role == TALLY_STORE_KEYS ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
    char buf[64];
    if (sqlite3_open_v2(path, &st->db, flags, TALLY_SYNC_VFS_NAME) != SQLITE_OK) {
        tally_fail(err, TALLY_INTERNAL, NULL, "cannot open database %s: %s", path, sqlite3_errmsg(st->db));
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 5000);
    if (opt->role == TALLY_STORE_WRITER || opt->role == TALLY_STORE_KEYS) {
        if (tally_sqlite_exec(st, "PRAGMA journal_mode=WAL", err) ||
            tally_sqlite_exec(st, opt->relaxed_durability ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL",
                              err) ||
            tally_sqlite_exec(st, "PRAGMA wal_autocheckpoint=0", err))
            goto fail;
        /* Refuse to serve unless durability is really in force (docs/architecture.md, "Durability"). */
        pragma_text(st, "PRAGMA journal_mode", buf, sizeof buf);
        if (strcmp(buf, "wal") != 0) {
            tally_fail(err, TALLY_INTERNAL, NULL, "SQLite reports journal_mode=%s, not wal; refusing to serve", buf);
            goto fail;
        }
        pragma_text(st, "PRAGMA synchronous", buf, sizeof buf);
        if (strcmp(buf, opt->relaxed_durability ? "1" : "2") != 0) {
            tally_fail(err, TALLY_INTERNAL, NULL, "SQLite reports synchronous=%s, not %s; refusing to serve", buf,
                       opt->relaxed_durability ? "1 (NORMAL)" : "2 (FULL)");
            goto fail;
        }
        sqlite3_wal_hook(st->db, on_wal_commit, st);
    } else if (tally_sqlite_exec(st, "PRAGMA query_only=1", err)) {
        goto fail;
    }
    if (tally_sqlite_exec(st, "PRAGMA foreign_keys=ON", err) || tally_sqlite_exec(st, "PRAGMA temp_store=MEMORY", err))
        goto fail;
    pragma_text(st, "PRAGMA foreign_keys", buf, sizeof buf);
    if (strcmp(buf, "1") != 0) {
        tally_fail(err, TALLY_INTERNAL, NULL, "SQLite was built without foreign keys; refusing to serve");
        goto fail;
    }
    int fn = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
    sqlite3_create_function(st->db, "tally_add", 3, fn, NULL, fn_add, NULL, NULL);
    sqlite3_create_function(st->db, "tally_sub", 3, fn, NULL, fn_sub, NULL, NULL);
    st->savepoint = prepare_fixed(st, "SAVEPOINT r");
    st->release = prepare_fixed(st, "RELEASE r");
    st->rollback_to = prepare_fixed(st, "ROLLBACK TO r");
    st->begin = prepare_fixed(st, "BEGIN IMMEDIATE");
    st->commit = prepare_fixed(st, "COMMIT");
    *out = &st->base;
    return 0;
fail:
    sqlite_close(&st->base);
    return -(int)err->code;
}

static void sqlite_close(tally_store *base)
{
    tally_sqlite *st = tally_sqlite_of(base);
    if (!st)
        return;
    for (int i = 0; i < TALLY_STMT_CACHE; i++)
        if (st->cache[i].sql) {
            sqlite3_finalize(st->cache[i].stmt);
            free(st->cache[i].sql);
        }
    sqlite3_finalize(st->savepoint);
    sqlite3_finalize(st->release);
    sqlite3_finalize(st->rollback_to);
    sqlite3_finalize(st->begin);
    sqlite3_finalize(st->commit);
    for (int i = 0; st->by_id && st->schema && i < st->schema->nmodels; i++)
        sqlite3_finalize(st->by_id[i]);
    free(st->by_id);
    sqlite3_close_v2(st->db);
    free(st);
}

/* ---- statement cache ---------------------------------------------------- */

static uint64_t hash_text(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void cache_clear(tally_sqlite *st)
{
    for (int i = 0; i < TALLY_STMT_CACHE; i++)
        if (st->cache[i].sql) {
            sqlite3_finalize(st->cache[i].stmt);
            free(st->cache[i].sql);
            st->cache[i].sql = NULL;
        }
    st->ncached = 0;
}

/* Returns a reset statement for sql, preparing and caching it on first use. */
sqlite3_stmt *tally_sqlite_stmt(tally_sqlite *st, const char *sql, tally_error *err)
{
    size_t i = hash_text(sql) & (TALLY_STMT_CACHE - 1);
    for (; st->cache[i].sql; i = (i + 1) & (TALLY_STMT_CACHE - 1))
        if (strcmp(st->cache[i].sql, sql) == 0)
            return st->cache[i].stmt;
    if (st->ncached >= TALLY_STMT_CACHE / 2) { /* keep probes short: start over */
        cache_clear(st);
        i = hash_text(sql) & (TALLY_STMT_CACHE - 1);
    }
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK) {
        tally_fail(err, TALLY_INTERNAL, NULL, "SQLite cannot prepare a statement: %s", sqlite3_errmsg(st->db));
        return NULL;
    }
    st->cache[i].sql = strdup(sql);
    st->cache[i].stmt = stmt;
    st->ncached++;
    return stmt;
}

/* ---- transactions --------------------------------------------------------- */

static int step_fixed(tally_sqlite *st, sqlite3_stmt *stmt, tally_error *err)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return tally_fail(err, TALLY_UNAVAILABLE, NULL, "SQLite: %s", sqlite3_errstr(rc));
    return 0;
}

static int sqlite_begin(tally_store *st, tally_error *err) { return step_fixed(tally_sqlite_of(st), tally_sqlite_of(st)->begin, err); }
/* A failed COMMIT has rolled the transaction back: nothing of it was applied. */
static int sqlite_commit(tally_store *st, tally_error *err)
{
    int rc = sqlite3_step(tally_sqlite_of(st)->commit);
    sqlite3_reset(tally_sqlite_of(st)->commit);
    if (rc == SQLITE_DONE)
        return 0;
    return tally_fail(err, TALLY_UNAVAILABLE, NULL, "%s; nothing was applied, retry",
                      (rc & 0xff) == SQLITE_FULL ? "the disk holding the data folder is full, so this batch could not be committed"
                                        : "the data folder could not be written, so this batch could not be committed");
}
static int sqlite_savepoint(tally_store *st, tally_error *err) { return step_fixed(tally_sqlite_of(st), tally_sqlite_of(st)->savepoint, err); }
static int sqlite_release(tally_store *st, tally_error *err) { return step_fixed(tally_sqlite_of(st), tally_sqlite_of(st)->release, err); }
static int sqlite_rollback_to(tally_store *st, tally_error *err) { return step_fixed(tally_sqlite_of(st), tally_sqlite_of(st)->rollback_to, err); }
static void sqlite_rollback(tally_store *st)
{
    sqlite3 *db = tally_sqlite_of(st)->db;
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}
static bool sqlite_in_transaction(tally_store *st) { return !sqlite3_get_autocommit(tally_sqlite_of(st)->db); }

/* Below this much free space a commit may not fit (the WAL grows by whole
 * pages, and a checkpoint needs room too): /health says the disk is full. */
#define FREE_SPACE_MIN (256 * 1024)

/* Writer, while idle or after a failed commit: whether the data folder's
 * disk has room for commits, so that /health tells the truth about a full
 * disk and becomes healthy again when space returns, writes or not. */
static int sqlite_probe(tally_store *base, tally_db_state *out, tally_error *err)
{
    tally_sqlite *st = tally_sqlite_of(base);
    out->sync_standbys = -1;
    const char *file = sqlite3_db_filename(st->db, "main");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", file && *file ? file : ".");
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0)
        return 0; /* cannot tell: the commits will */
    unsigned long long avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
    if (avail >= FREE_SPACE_MIN)
        return 0;
    return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the disk holding the data folder is full (%llu KiB free); writes "
                      "are refused until there is room", avail / 1024);
}

/* Between batches: a passive checkpoint once the WAL has grown past its limit. */
static int sqlite_maintain(tally_store *base)
{
    tally_sqlite *st = tally_sqlite_of(base);
    if (st->wal_frames < WAL_CHECKPOINT_FRAMES)
        return 0;
    int log = 0, done = 0;
    sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    /* Frames a reader still needs stay; the next commit's hook reports the size again. */
    st->wal_frames = 0;
    return 1;
}

/* ---- binding and reading values ------------------------------------------ */

static int bind_value(sqlite3_stmt *stmt, int idx, const tally_value *v, const tally_plan *plan)
{
    switch (v->kind) {
    case TALLY_VALUE_NULL: return sqlite3_bind_null(stmt, idx);
    case TALLY_VALUE_INT: return sqlite3_bind_int64(stmt, idx, v->u.i);
    case TALLY_VALUE_FLOAT: return sqlite3_bind_double(stmt, idx, v->u.f);
    case TALLY_VALUE_TEXT: return sqlite3_bind_text(stmt, idx, v->u.text.ptr, (int)v->u.text.len, SQLITE_STATIC);
    case TALLY_VALUE_REF: {
        tally_value resolved = tally_plan_resolve(plan, v);
        return bind_value(stmt, idx, &resolved, plan);
    }
    }
    return SQLITE_MISUSE;
}

static void read_record(sqlite3_stmt *stmt, const tally_model *m, tally_arena *arena, tally_record *out)
{
    out->cols = tally_arena_alloc(arena, (size_t)m->ncolumns * sizeof *out->cols);
    for (int c = 0; c < m->ncolumns; c++) {
        switch (sqlite3_column_type(stmt, c)) {
        case SQLITE_INTEGER: out->cols[c] = tally_value_int(sqlite3_column_int64(stmt, c)); break;
        case SQLITE_FLOAT: out->cols[c] = tally_value_float(sqlite3_column_double(stmt, c)); break;
        case SQLITE_TEXT: {
            const char *t = (const char *)sqlite3_column_text(stmt, c);
            size_t n = (size_t)sqlite3_column_bytes(stmt, c);
            out->cols[c] = tally_value_text(tally_arena_strndup(arena, t, n), n);
            break;
        }
        default: out->cols[c] = tally_value_null(); break;
        }
    }
}

/* ---- errors ------------------------------------------------------------- */

/* *n = the number of rows of `table` whose `column` equals v (error paths only). */
static int count_where(tally_sqlite *st, tally_plan *plan, const char *table, const char *column, const tally_value *v,
                       long long *n, tally_error *err)
{
    tally_sql q;
    tally_sql_init(&q);
    tally_sql_add(&q, "SELECT count(*) FROM ");
    tally_sql_name(&q, table);
    tally_sql_add(&q, " WHERE ");
    tally_sql_name(&q, column);
    tally_sql_add(&q, " = ?1");
    sqlite3_stmt *stmt = tally_sqlite_stmt(st, q.s, err);
    tally_sql_free(&q);
    if (!stmt)
        return -TALLY_INTERNAL;
    bind_value(stmt, 1, v, plan);
    *n = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return 0;
}

/* Which linked record of a create/update is missing, looked up after a
 * foreign-key failure (same transaction, so the answer is exact). */
static int missing_link(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_error *err)
{
    for (int i = 0; i < s->nsets; i++) {
        int c = s->sets[i].column;
        if (c < TALLY_COL_FIRST_FIELD)
            continue;
        const tally_field *f = &s->model->fields[s->model->column_field[c]];
        if (f->type != TALLY_TYPE_BELONGS_TO || s->sets[i].value.kind == TALLY_VALUE_NULL)
            continue;
        long long n;
        if (count_where(st, plan, f->target, "id", &s->sets[i].value, &n, err))
            return -TALLY_INTERNAL;
        if (n == 0) {
            /* A REF may stand for a count, or a step with no record: resolve it as it was bound. */
            tally_value v = tally_plan_resolve(plan, &s->sets[i].value);
            return tally_fail(err, TALLY_VALIDATION, tally_step_join_path(plan, s, f->name),
                              "%s: there is no %s with id %lld to link to; create it first or link an existing one",
                              f->name, f->target, v.kind == TALLY_VALUE_INT ? (long long)v.u.i : 0LL);
        }
    }
    return tally_fail(err, TALLY_VALIDATION, s->path, "a linked record does not exist");
}

/* Which model still points at the record a delete could not remove. */
static int referenced_by(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_error *err)
{
    tally_value idv = tally_plan_resolve(plan, &s->id); /* s->id may be a REF */
    long long id = idv.kind == TALLY_VALUE_INT ? (long long)idv.u.i : 0;
    for (int mi = 0; mi < st->schema->nmodels; mi++) {
        const tally_model *m = &st->schema->models[mi];
        for (int fi = 0; fi < m->nfields; fi++) {
            const tally_field *f = &m->fields[fi];
            if (f->type != TALLY_TYPE_BELONGS_TO || f->target_model != s->model->index)
                continue;
            long long n;
            if (count_where(st, plan, m->name, f->name, &s->id, &n, err))
                return -TALLY_INTERNAL;
            if (n > 0 && f->on_delete == TALLY_ON_DELETE_RESTRICT)
                return tally_fail(err, TALLY_CONFLICT, s->path,
                                  "%s %lld is still linked from %lld %s record(s) (field '%s', onDelete restrict); "
                                  "delete or relink those first", s->model->name, id, n, m->name,
                                  f->name);
        }
    }
    return tally_fail(err, TALLY_CONFLICT, s->path, "%s %lld is still linked from other records", s->model->name, id);
}

/* Maps a failed statement to Tally's error table with a message for a person. */
static int map_error(tally_sqlite *st, tally_plan *plan, const tally_step *s, int rc, tally_error *err)
{
    const char *msg = sqlite3_errmsg(st->db);
    const tally_model *m = s->model;
    int col;
    if (sscanf(msg, "tally:overflow:%d", &col) == 1 && col < m->ncolumns)
        return tally_fail(err, TALLY_OVERFLOW, tally_step_column_path(plan, s, tally_model_column_name(m, col)),
                          "%s: the result would not fit a signed 64-bit integer; nothing was changed",
                          tally_model_column_name(m, col));
    if (sscanf(msg, "tally:null:%d", &col) == 1 && col < m->ncolumns)
        return tally_fail(err, TALLY_VALIDATION, tally_step_column_path(plan, s, tally_model_column_name(m, col)),
                          "%s is not set, so it cannot be incremented or decremented; set it to a number first",
                          tally_model_column_name(m, col));
    /* ON DELETE RESTRICT fails with SQLITE_CONSTRAINT_TRIGGER, not _FOREIGNKEY: go by the message. */
    if ((rc & 0xff) == SQLITE_CONSTRAINT && strcmp(msg, "FOREIGN KEY constraint failed") == 0)
        rc = SQLITE_CONSTRAINT_FOREIGNKEY;
    switch (rc) {
    case SQLITE_CONSTRAINT_CHECK: {
        char kind[8] = "", field[TALLY_NAME_MAX] = "";
        if (sscanf(msg, "CHECK constraint failed: %7[a-z]:%63[A-Za-z0-9_]", kind, field) == 2) {
            int fi = tally_model_field(m, field, strlen(field));
            if (fi >= 0 && strcmp(kind, "bool") != 0)
                return tally_step_invariant(plan, s, &m->fields[fi], strcmp(kind, "min") == 0, err);
        }
        return tally_fail(err, TALLY_INVARIANT, s->path, "a constraint would be violated: %s", msg);
    }
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY: {
        /* "UNIQUE constraint failed: customer.email, customer.x" -> "email,x" */
        char fields[256] = "";
        const char *p = strstr(msg, ": ");
        for (p = p ? p + 2 : msg; *p;) {
            const char *dot = strchr(p, '.'), *end = strstr(p, ", ");
            if (!dot)
                break;
            size_t n = end ? (size_t)(end - dot - 1) : strlen(dot + 1);
            snprintf(fields + strlen(fields), sizeof fields - strlen(fields), "%s%.*s", fields[0] ? "," : "",
                     (int)n, dot + 1);
            if (!end)
                break;
            p = end + 2;
        }
        return tally_fail(err, TALLY_UNIQUE_VIOLATION, tally_step_join_path(plan, s, fields),
                          "another %s already has this %s (%s must be unique); choose another value", m->name,
                          strchr(fields, ',') ? "combination of values" : "value", fields);
    }
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        if (s->op == TALLY_OP_DELETE)
        return referenced_by(st, plan, s, err);
    if (s->op == TALLY_OP_DELETE_MANY)
        return tally_fail(err, TALLY_CONFLICT, s->path, "some matching %s records are still linked from other records "
                          "with onDelete restrict; nothing was deleted. Delete or relink those first", s->model->name);
    return missing_link(st, plan, s, err);
    case SQLITE_CONSTRAINT_NOTNULL: {
        const char *dot = strrchr(msg, '.');
        const char *field = dot ? dot + 1 : "";
        return tally_fail(err, TALLY_VALIDATION, tally_step_join_path(plan, s, field), "%s is required and cannot be null",
                          field);
    }
    case SQLITE_CONSTRAINT_DATATYPE:
        return tally_fail(err, TALLY_VALIDATION, s->path, "a value has the wrong type for its field: %s", msg);
    case SQLITE_FULL:
    case SQLITE_IOERR:
    default:
        if ((rc & 0xff) == SQLITE_IOERR || rc == SQLITE_FULL || rc == SQLITE_NOMEM || (rc & 0xff) == SQLITE_BUSY)
            return tally_fail(err, TALLY_UNAVAILABLE, NULL, "the database could not complete the write (%s); retry",
                              sqlite3_errstr(rc));
        return tally_fail(err, TALLY_INTERNAL, s->path, "SQLite: %s", msg);
    }
}

/* ---- steps ---------------------------------------------------------------- */

/* Prepares (or finds cached) the statement for q and binds every value of b. */
static sqlite3_stmt *prepare_bound(tally_sqlite *st, tally_plan *plan, tally_sql *q, tally_binds *b, tally_error *err)
{
    sqlite3_stmt *stmt = tally_sqlite_stmt(st, q->s, err);
    if (stmt)
        for (int i = 0; i < b->n; i++)
            bind_value(stmt, i + 1, &b->v[i], plan);
    tally_sql_free(q);
    tally_binds_free(b);
    return stmt;
}

/* The statement of a record step, built for its shape and bound to its values. */
static sqlite3_stmt *prepare_step(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_error *err)
{
    tally_sql q;
    tally_binds b;
    tally_sql_init(&q);
    tally_binds_init(&b);
    switch (s->op) {
    case TALLY_OP_LIST: tally_sql_list(&q, &b, s); break;
    case TALLY_OP_CREATE:
    case TALLY_OP_UPSERT: tally_sql_insert(&q, &b, s, plan->now_ms); break;
    case TALLY_OP_UPDATE:
    case TALLY_OP_UPDATE_MANY: tally_sql_update(&q, &b, s, plan->now_ms); break;
    default: tally_sql_delete(&q, &b, s); break;
    }
    return prepare_bound(st, plan, &q, &b, err);
}

/* Steps a statement that returns no rows (or one, for RETURNING) and resets it. */
static int step_once(sqlite3_stmt *stmt, int64_t *returned)
{
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        if (returned)
            *returned = sqlite3_column_int64(stmt, 0);
        rc = sqlite3_step(stmt);
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt); /* text was bound SQLITE_STATIC from the plan's arena */
    return rc;
}

/* Prepares, binds and runs a write step's statement (RETURNING's one value
 * into *returned when given); 0, or the failure in Tally's terms. */
static int execute_step(tally_sqlite *st, tally_plan *plan, const tally_step *s, int64_t *returned, tally_error *err)
{
    sqlite3_stmt *stmt = prepare_step(st, plan, s, err);
    if (!stmt)
        return -TALLY_INTERNAL;
    int rc = step_once(stmt, returned);
    return rc == SQLITE_DONE ? 0 : map_error(st, plan, s, rc, err);
}

/* Reads one record by id into out.  Returns 0, or -code (NOT_FOUND when there is no such record). */
static int read_by_id(tally_sqlite *st, tally_plan *plan, const tally_step *s, int64_t id, tally_record *out,
                      tally_error *err)
{
    sqlite3_stmt **slot = &st->by_id[s->model->index];
    if (!*slot) {
        tally_sql q;
        tally_binds b;
        tally_sql_init(&q);
        tally_binds_init(&b);
        tally_sql_select_by_id(&q, &b, s->model, tally_value_int(id));
        int prc = sqlite3_prepare_v3(st->db, q.s, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
        tally_sql_free(&q);
        tally_binds_free(&b);
        if (prc != SQLITE_OK)
            return tally_fail(err, TALLY_INTERNAL, NULL, "SQLite cannot prepare a statement: %s", sqlite3_errmsg(st->db));
    }
    sqlite3_stmt *stmt = *slot;
    sqlite3_bind_int64(stmt, 1, id);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        read_record(stmt, s->model, &plan->arena, out);
    sqlite3_reset(stmt); /* never pin a WAL snapshot past the read */
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return tally_step_not_found(err, s, id);
    return map_error(st, plan, s, rc, err);
}

static int run_get(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res, tally_error *err)
{
    return read_by_id(st, plan, s, tally_step_id(plan, &s->id), &res->record, err);
}

static int run_list(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res,
                    tally_error *err)
{
    sqlite3_stmt *stmt = prepare_step(st, plan, s, err);
    if (!stmt)
        return -TALLY_INTERNAL;
    res->records = tally_arena_alloc(&plan->arena, (size_t)(s->first + 1) * sizeof *res->records);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (res->nrecords == s->first) {
            res->has_next = true;
            break;
        }
        read_record(stmt, s->model, &plan->arena, &res->records[res->nrecords++]);
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return map_error(st, plan, s, rc, err);
    return 0;
}

static int run_create(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res,
                      tally_error *err)
{
    /* An upsert that updates leaves last_insert_rowid alone; one that inserts
     * sets it to the new id, which is never 0: so clear it first. */
    sqlite3_set_last_insert_rowid(st->db, 0);
    int64_t id = 0;
    int rc = execute_step(st, plan, s, &id, err);
    if (rc)
        return rc;
    if (s->op == TALLY_OP_CREATE)
        id = sqlite3_last_insert_rowid(st->db);
    else
        res->created = sqlite3_last_insert_rowid(st->db) != 0;
    return read_by_id(st, plan, s, id, &res->record, err);
}

static int run_update(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res,
                      tally_error *err)
{
    int rc = execute_step(st, plan, s, NULL, err);
    if (rc)
        return rc;
    int64_t id = tally_step_id(plan, &s->id);
    bool changed = sqlite3_changes(st->db) > 0;
    /* Read the record: after the change, or as it stood when the guard failed. */
    if ((rc = read_by_id(st, plan, s, id, &res->record, err)) != 0)
        return rc;
    if (!changed)
        return tally_fail(err, TALLY_GUARD_FAILED, s->where_path ? s->where_path : "_where",
                          "%s %lld does not match the _where guard; nothing was changed (\"current\" is the record "
                          "as it stands)", s->model->name, (long long)id);
    return 0;
}

static int run_update_many(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res,
                           tally_error *err)
{
    int code = execute_step(st, plan, s, NULL, err);
    if (code == 0) {
        res->count = sqlite3_changes(st->db);
        return 0;
    }
    if (code != -TALLY_INVARIANT)
        return code;
    /* The statement changed nothing; count how many rows would have crossed. */
    tally_sql q;
    tally_binds b;
    tally_sql_init(&q);
    tally_binds_init(&b);
    tally_sql_count_crossing(&q, &b, s);
    sqlite3_stmt *stmt = prepare_bound(st, plan, &q, &b, err);
    if (stmt && sqlite3_step(stmt) == SQLITE_ROW) {
        long long n = sqlite3_column_int64(stmt, 0);
        size_t len = strlen(err->message);
        snprintf(err->message + len, sizeof err->message - len, " (%lld matching row%s would cross it)", n,
                 n == 1 ? "" : "s");
    }
    if (stmt) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    }
    return code;
}

static int run_delete(tally_sqlite *st, tally_plan *plan, const tally_step *s, tally_step_result *res,
                      tally_error *err)
{
    int rc = execute_step(st, plan, s, NULL, err);
    if (rc)
        return rc;
    res->count = sqlite3_changes(st->db);
    if (s->op == TALLY_OP_DELETE_MANY)
        return 0;
    res->id = tally_step_id(plan, &s->id);
    /* A later transaction step may reference "name.id" of a delete. */
    res->record.cols = tally_arena_zalloc(&plan->arena, sizeof *res->record.cols);
    res->record.cols[TALLY_COL_ID] = tally_value_int(res->id);
    return res->count ? 0 : tally_step_not_found(err, s, res->id);
}

static int sqlite_run_step(tally_store *base, tally_plan *plan, int i, tally_error *err)
{
    tally_sqlite *st = tally_sqlite_of(base);
    const tally_step *s = &plan->steps[i];
    tally_step_result *res = &plan->results[i];
    switch (s->op) {
    case TALLY_OP_GET: return run_get(st, plan, s, res, err);
    case TALLY_OP_LIST: return run_list(st, plan, s, res, err);
    case TALLY_OP_CREATE:
    case TALLY_OP_UPSERT: return run_create(st, plan, s, res, err);
    case TALLY_OP_UPDATE: return run_update(st, plan, s, res, err);
    case TALLY_OP_UPDATE_MANY: return run_update_many(st, plan, s, res, err);
    case TALLY_OP_DELETE:
    case TALLY_OP_DELETE_MANY: return run_delete(st, plan, s, res, err);
    case TALLY_OP_LIMIT: return tally_sqlite_limit(st, plan, s, res, err);
    default: return tally_sqlite_lock(st, plan, s, res, err);
    }
}

static void sqlite_metrics(FILE *f)
{
    fprintf(f, "# HELP tally_fsyncs_total fsync/fdatasync calls SQLite made (counted by a VFS shim).\n"
               "# TYPE tally_fsyncs_total counter\ntally_fsyncs_total %llu\n",
            (unsigned long long)tally_sync_vfs_count());
}

/* One writer connection owns every write: an interactive transaction runs on it
 * too; point reads run in place on each loop's own read-only WAL connection. */
const tally_backend_ops tally_sqlite_backend = {
    .name = "sqlite",
    .caps = {.lanes = 1, .batch_max = 256, .reads_in_place = true, .session_owns_writer = true,
             .locks_what_it_reads = false, .shared = false, .cross_server_wakeups = false},
    .open = sqlite_open,
    .close = sqlite_close,
    .migrate = tally_sqlite_migrate,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .savepoint = sqlite_savepoint,
    .release = sqlite_release,
    .rollback_to = sqlite_rollback_to,
    .in_transaction = sqlite_in_transaction,
    .run_step = sqlite_run_step,
    .idem_get = tally_sqlite_idem_get,
    .idem_put = tally_sqlite_idem_put,
    .sweep = tally_sqlite_sweep,
    .feed_read = tally_sqlite_feed_read,
    .feed_state = tally_sqlite_feed_state,
    .feed_sequence = NULL,
    .feed_merge = tally_sqlite_feed_merge,
    .keys_prepare = tally_sqlite_keys_prepare,
    .keys_state = tally_sqlite_keys_state,
    .keys_list = tally_sqlite_keys_list,
    .keys_create = tally_sqlite_keys_create,
    .keys_revoke = tally_sqlite_keys_revoke,
    .probe = sqlite_probe,
    .maintain = sqlite_maintain,
    .metrics = sqlite_metrics,
};
