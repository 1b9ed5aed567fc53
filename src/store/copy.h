/*
 * copy.h — outgrowing SQLite: copies a SQLite database into an empty
 * PostgreSQL one (tally copy --from DIR --to postgresql://…).
 *
 * Records keep their ids, and each model's id sequence continues from the
 * highest id SQLite ever gave (so ids deleted there are never reused); lock
 * rows keep their fences (so fences keep growing), rate-limit states and
 * stored Idempotency-Key answers come along.  The target is migrated to the
 * schema first and must hold no records, locks, limits or answers; the copy
 * is one PostgreSQL transaction, so a failed copy leaves the target empty.
 * The source is only read (a server may keep serving it; what it writes
 * after the copy began is not copied).
 */
#ifndef TALLY_STORE_COPY_H
#define TALLY_STORE_COPY_H

#include <stdint.h>

#include "core/error.h"
#include "core/schema.h"

typedef struct tally_copy_counts {
    int64_t records, locks, limits, answers, keys;
} tally_copy_counts;

/* sqlite_file: the source database file (DIR/tally.db); pg_url: the target.
 * The schema is borrowed.  Returns 0 with counts filled, or -code with err
 * saying what to do (a URL in it never shows its password). */
int tally_copy_sqlite_to_postgres(const char *sqlite_file, const char *pg_url, const tally_schema *schema,
                                  tally_copy_counts *counts, tally_error *err);

#endif
