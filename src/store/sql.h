/*
 * sql.h — builds the SQL text for each operation of a plan (SQLite dialect).
 *
 * Only names reach the text, and only names found in the schema (checked
 * identifiers, double-quoted); every value is a numbered parameter (?1, ?2…)
 * that the store binds in the order documented per function.  The builders
 * are pure: same step shape, same text, which is what lets the store cache
 * prepared statements by text.
 */
#ifndef TALLY_STORE_SQL_H
#define TALLY_STORE_SQL_H

#include <stddef.h>

#include "core/buf.h"
#include "core/plan.h"
#include "core/schema.h"

/* SQL text is built in a tally_buf; these names keep the builders short. */
typedef tally_buf tally_sql;
#define tally_sql_init tally_buf_init
#define tally_sql_free tally_buf_free
#define tally_sql_add tally_buf_add
#define tally_sql_addf tally_buf_addf
void tally_sql_name(tally_sql *q, const char *name); /* "name" */

/* CREATE TABLE for a model (STRICT, CHECKs for min/max and booleans, REFERENCES for belongsTo). */
void tally_sql_create_table(tally_sql *q, const tally_model *m);
/* The column definition used by CREATE TABLE and ALTER TABLE ADD COLUMN. */
void tally_sql_column_def(tally_sql *q, const tally_model *m, const tally_field *f, int for_alter);
/* CREATE UNIQUE INDEX for a unique field (key < 0) or compound key `key`. */
void tally_sql_unique_index(tally_sql *q, const tally_model *m, int field, int key);

/*
 * Values are never spliced into the text: each builder appends them, in
 * parameter order, to a tally_binds that the store binds as ?1, ?2, ...
 * (a REF is resolved at bind time).
 */
typedef struct tally_binds {
    tally_value *v;
    int n, cap;
} tally_binds;

void tally_binds_init(tally_binds *b);
void tally_binds_free(tally_binds *b);
/* Appends v to b and "?N" to q. */
void tally_sql_param(tally_sql *q, tally_binds *b, tally_value v);

/* SELECT every column FROM m WHERE id = ? */
void tally_sql_select_by_id(tally_sql *q, tally_binds *b, const tally_model *m, tally_value id);
/* A listing: SELECT every column FROM m WHERE <filter> AND <after the cursor row>
 * ORDER BY <sort keys> LIMIT first + 1 (one more row tells whether a next page exists). */
void tally_sql_list(tally_sql *q, tally_binds *b, const tally_step *s);
/* INSERT INTO m (createdAt, updatedAt, <sets' columns>) VALUES (now, now, <sets' values>);
 * for an upsert, followed by ON CONFLICT (<on>) DO UPDATE SET ... RETURNING "id". */
void tally_sql_insert(tally_sql *q, tally_binds *b, const tally_step *s, int64_t now_ms);
/*
 * UPDATE m SET updatedAt = now, <set columns> = value, <atomic columns> = expr
 * WHERE id = ? [AND <guard>] (update) or WHERE <filter> (updateMany).
 * Arithmetic goes through tally_add/tally_sub (SQL functions the store
 * registers: checked 64-bit for integers, raising an overflow error instead
 * of turning into a float); a field's operations nest in order.
 */
void tally_sql_update(tally_sql *q, tally_binds *b, const tally_step *s, int64_t now_ms);
/* SELECT count(*) of the rows an updateMany matches whose new values would
 * cross a min/max: the number the INVARIANT error reports. */
void tally_sql_count_crossing(tally_sql *q, tally_binds *b, const tally_step *s);
/* DELETE FROM m WHERE id = ? (delete) or WHERE <filter> (deleteMany) */
void tally_sql_delete(tally_sql *q, tally_binds *b, const tally_step *s);
/* The filter as a boolean SQL expression (two-valued, see core/filter.h). */
void tally_sql_filter(tally_sql *q, tally_binds *b, const tally_model *m, const tally_filter *f);

#endif
