/*
 * backup.h — consistent copies of a live SQLite database, and restoring one
 * (tally backup, tally restore).
 *
 * A backup is SQLite's online backup API run in one step, so the copy is
 * one snapshot of the database (every transaction committed before the
 * step began, none after), taken while a server goes on serving the same
 * folder: it reads through SQLite's own locking and never takes the data
 * folder's lock.  Copying tally.db alone with cp is not a backup: the WAL
 * beside it holds the latest commits.
 *
 * A restore copies a backup into a new data folder and starts a new restore
 * generation there: every id sequence and every lock fence is moved to at
 * least generation << 40, and new lock names start there too, so that the
 * restored database never hands out again an id or a fence that the lost
 * one may have handed out after the backup was taken (clients may hold
 * those).  Ids stay below 2^53 (exact in JavaScript) for 8,191 restores.
 *
 * PostgreSQL databases are backed up with PostgreSQL's own tools (pg_dump,
 * base backups with point-in-time recovery); see the README.
 */
#ifndef TALLY_STORE_BACKUP_H
#define TALLY_STORE_BACKUP_H

#include <stdint.h>

#include "core/error.h"

/* The first id and fence a restore generation may hand out lie above this. */
#define TALLY_RESTORE_FLOOR(generation) ((int64_t)(generation) << 40)

typedef struct tally_backup_info {
    int pages, page_size; /* what was copied */
} tally_backup_info;

/* Copies the SQLite database file db_file (DIR/tally.db) into to_file, which
 * must not exist.  0, or -code with err saying what to do. */
int tally_backup_sqlite(const char *db_file, const char *to_file, tally_backup_info *info, tally_error *err);

/* Copies backup_file into db_file (which must not exist) and starts the next
 * restore generation in it (*generation set).  0, or -code with err. */
int tally_restore_sqlite(const char *backup_file, const char *db_file, int64_t *generation, tally_error *err);

#endif
