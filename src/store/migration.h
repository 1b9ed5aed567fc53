/*
 * migration.h — how a stored database is brought to the schema, the same on
 * every backend: what each table was made from is kept in a table
 * tally_fields (model, field, type, column definition, unique), and start-up
 * compares it with the schema.  A new model is created, a new field added
 * (existing rows get its default), a field that became unique gets its
 * index.  Destructive changes are refused with a message that says what and
 * why: a stored model or field the schema no longer has (dropped only with
 * allow_destructive), a changed type or changed options of a field (never:
 * add a field with a new name instead).
 *
 * The database also records each schema it was migrated to, by digest, as
 * numbered versions (tally_schema_versions).  Starting with a schema that is
 * an earlier version than the database's newest is refused (a server with
 * an old schema file, say after servers running a newer one added fields),
 * unless the migration is allowed to be destructive: that is how a database
 * is taken back to an older schema on purpose.  An additive change rolls:
 * the new schema becomes the next version while servers started with the
 * older one go on serving.
 *
 * The decisions and their messages are here; a backend supplies the
 * statements (tally_migration_ops) and runs the whole in one transaction of
 * its own, so a refused migration changes nothing.
 */
#ifndef TALLY_STORE_MIGRATION_H
#define TALLY_STORE_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/schema.h"
#include "store/sql.h"

/* One row of tally_fields, copied out (strings malloc'ed, owned by the array). */
typedef struct tally_stored_field {
    char *name, *type, *def;
    int uniq;
} tally_stored_field;

void tally_stored_fields_free(tally_stored_field *rows, int n);

/*
 * A backend's side of a migration, on its connection `conn`.  Each returns 0
 * or -code with err filled with the database's reason (the caller words the
 * message), unless said otherwise.
 */
typedef struct tally_migration_ops {
    /* 1 when model's table exists, 0 when not, or -code. */
    int (*table_exists)(void *conn, const char *model, tally_error *err);
    /* The stored fields of model (or, with model NULL, one row per stored
     * model with its name in .name): the count, or -code.  Read whole before
     * anything changes. */
    int (*read_stored)(void *conn, const char *model, tally_stored_field **out, tally_error *err);
    /* Records (or updates) f's row; forgets a field's row, or with field NULL every row of a model. */
    int (*record_field)(void *conn, const tally_model *m, const tally_field *f, tally_error *err);
    int (*forget_stored)(void *conn, const char *model, const char *field, tally_error *err);
    /* The column definition as recorded in tally_fields (compared as text). */
    void (*column_def)(tally_sql *q, const tally_model *m, const tally_field *f);
    /* A new model's table (not its links to other models: see link_model). */
    int (*create_table)(void *conn, const tally_model *m, tally_error *err);
    /* After every table exists: the links (foreign keys) of a model created now; may be NULL. */
    int (*link_model)(void *conn, const tally_model *m, tally_error *err);
    int (*add_column)(void *conn, const tally_model *m, const tally_field *f, tally_error *err);
    int (*drop_column)(void *conn, const tally_model *m, const char *field, tally_error *err);
    int (*drop_table)(void *conn, const char *model, tally_error *err);
    /* The unique index of field `field` (key < 0) or of compound key `key`, if missing. */
    int (*add_unique)(void *conn, const tally_model *m, int field, int key, tally_error *err);
    int (*drop_unique)(void *conn, const tally_model *m, int field, tally_error *err);
    /* The recorded versions: *latest (0: none yet), when it was recorded
     * (ms since the epoch), and the newest version whose digest is `digest`
     * (0: never). */
    int (*read_versions)(void *conn, const char *digest, int64_t *latest, int64_t *latest_at_ms, int64_t *mine,
                         tally_error *err);
    int (*record_version)(void *conn, int64_t version, const char *digest, int64_t at_ms, tally_error *err);
    /* Before add_unique: a value the stored rows share (tally_sql_duplicate_query), as text into
     * out ("a@b.c", or "a, 5" for a compound key), how many rows hold it and the lowest id among them.
     * 1 found, 0 none, or -code. */
    int (*find_duplicate)(void *conn, const tally_model *m, int field, int key, char *out, size_t cap,
                          long long *rows, long long *example_id, tally_error *err);
    /* Whether the unique index of field `field` (key < 0) or compound key `key` exists: 1, 0, or -code
     * (so that a start-up does not look for duplicates behind an index that rules them out). */
    int (*has_unique)(void *conn, const tally_model *m, int field, int key, tally_error *err);
    /* Whether model m's table holds any record: 1, 0, or -code. */
    int (*has_rows)(void *conn, const tally_model *m, tally_error *err);
} tally_migration_ops;

/* " DEFAULT <value>" for ALTER TABLE ADD COLUMN, so existing rows get the
 * field's default (a schema string quoted with '' doubled; both dialects). */
void tally_migration_default(tally_sql *q, const tally_field *f);

/* Brings the stored models to schema through ops (inside the caller's
 * transaction) and records the schema as the newest version if it is not;
 * *version (may be NULL) is the database's schema version afterwards.
 * changes (may be NULL) gets one line for each change made, in a person's
 * words ("model 'note' created"), each ending in a newline. */
int tally_migration_apply(const tally_migration_ops *ops, void *conn, const tally_schema *schema,
                          bool allow_destructive, int64_t *version, tally_buf *changes, tally_error *err);

#endif
