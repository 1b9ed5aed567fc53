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

/* SELECT every column FROM m WHERE id = ?1 */
void tally_sql_select_by_id(tally_sql *q, const tally_model *m);
/* SELECT every column FROM m WHERE id > ?1 ORDER BY id LIMIT ?2 */
void tally_sql_list(tally_sql *q, const tally_model *m);
/* INSERT INTO m (createdAt, updatedAt, <sets' columns>) VALUES (?1, ?2, ?3…): ?1 = ?2 = now, then sets in order. */
void tally_sql_insert(tally_sql *q, const tally_step *s);
/*
 * UPDATE m SET updatedAt = ?1, <set columns> = ?…, <atomic columns> = expr WHERE id = ?N.
 * Binding: ?1 now, then each set's value, then each atomic's amount in order,
 * then the id last.  Arithmetic goes through tally_add/tally_sub (SQL
 * functions the store registers: checked 64-bit for integers, raising an
 * overflow error instead of turning into a float).
 */
void tally_sql_update(tally_sql *q, const tally_step *s);
/* DELETE FROM m WHERE id = ?1 */
void tally_sql_delete(tally_sql *q, const tally_model *m);

#endif
