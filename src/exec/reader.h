/*
 * reader.h — reads that never wait on the writer.
 *
 * On SQLite a point read runs in place on the calling loop thread's own
 * read-only connection (tally_read_here): a few microseconds, no thread hop.
 * A read that may scan many rows (a listing), and every read on a backend
 * that cannot read in place (PostgreSQL: a network round trip), goes to the
 * reader threads, so that it cannot stall a loop; each owns its connection.
 */
#ifndef TALLY_EXEC_READER_H
#define TALLY_EXEC_READER_H

#include <stddef.h>

#include "exec/job.h"
#include "store/backend.h"

typedef struct tally_reader tally_reader;

/* Runs job's plan on store right here and renders its answer; the job stays the caller's. */
void tally_read_here(tally_store *store, tally_job *job);

/* Starts n reader threads sharing one queue, one per store; the stores are
 * handed over (even on failure) and closed by tally_reader_free. */
int tally_reader_start(tally_store **stores, int n, size_t queue_max, tally_reader **out, tally_error *err);
/* As tally_writer_submit. */
int tally_reader_submit(tally_reader *r, tally_job *job);
size_t tally_reader_queue_depth(tally_reader *r);
/* As tally_writer_stop and tally_writer_free. */
void tally_reader_stop(tally_reader *r);
void tally_reader_free(tally_reader *r);

#endif
