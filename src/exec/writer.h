/*
 * writer.h — the writer thread: the one place writes happen (docs/architecture.md, "Life of a write").
 *
 * It owns the read-write connection.  It takes every waiting job (up to a
 * batch bound), opens one transaction, runs each job in its own savepoint (a
 * failing job is rolled back alone and answered with its error), renders
 * every answer, commits once (one fsync for the whole batch), and only then
 * completes the jobs.  If the database ends the transaction on its own or
 * COMMIT fails, no job of the batch is answered as applied: they get 503.
 * A job the database gives up on for a reason a later run may cure (a
 * deadlock or serialization failure, tally_error.rerun) is rolled back to its
 * savepoint and runs again in the next batch, once this batch's COMMIT has
 * released its locks; after 5 such runs it is answered 409 CONFLICT.
 *
 * On a backend with several lanes (PostgreSQL) each lane is one writer with
 * its own connection and batch; the engine routes a request to the lane of
 * the first key it touches (exec/route.h).
 */
#ifndef TALLY_EXEC_WRITER_H
#define TALLY_EXEC_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/job.h"
#include "store/backend.h"

typedef struct tally_writer tally_writer;

typedef struct tally_writer_options {
    size_t queue_max;          /* waiting jobs before submit refuses (503) */
    size_t batch_max;          /* jobs in one transaction */
    uint64_t queue_timeout_ms; /* a job waiting longer is refused unapplied */
    uint64_t idempotency_ttl_ms; /* how long stored answers are kept (default 24 h) */
    /* Called on the writer thread after a batch commits, for each lock name it
     * released (to tell other servers: exec/lock_hints.h); may be NULL. */
    void (*on_release)(void *ctx, const char *name, size_t len);
    void *release_ctx;
    /* Called on the writer thread after a batch with applied writes commits
     * (the change feed looks at once: exec/feed.h); may be NULL. */
    void (*on_commit)(void *ctx);
    void *commit_ctx;
    uint64_t sweep_every_ms;   /* housekeeping between batches (store sweep) at most this often (0: a minute) */
} tally_writer_options;

/* Starts the thread.  The store is handed over: the writer closes it on stop. */
int tally_writer_start(tally_store *store, const tally_writer_options *opt, tally_writer **out, tally_error *err);
/* Hands job to the writer (never blocks).  Returns 0, or -TALLY_OVERLOADED
 * when the queue is full or the writer is stopping: the job stays the caller's. */
int tally_writer_submit(tally_writer *w, tally_job *job);
size_t tally_writer_queue_depth(tally_writer *w);
/* Any thread: lock `name` was released elsewhere (a hint from another
 * server); its first waiter here, if any, tries again at once. */
void tally_writer_hint(tally_writer *w, const char *name, size_t len);

/* One writer's (one lane's) counters, for /metrics. */
typedef struct tally_writer_stats {
    uint64_t batches, writes;
    size_t queue_depth;
} tally_writer_stats;
tally_writer_stats tally_writer_get_stats(tally_writer *w);

/* Whether the lane's database answered at its last commit or probe; when it
 * did not, reason (cap bytes) says why; state (may be NULL) gets what the
 * last probe found.  Any thread. */
bool tally_writer_healthy(tally_writer *w, char *reason, size_t cap, tally_db_state *state);
/* Interactive transactions: a BEGIN job goes through tally_writer_submit
 * when the backend's sessions own the writer (SQLite): it queues behind the
 * writes before it, and its calls go to the writer's session queue through
 * tally_session_push while it is ACTIVE. */
/* Refuses new jobs (submit answers -TALLY_OVERLOADED from now on), runs and
 * completes every queued one, and joins the thread.  Safe to call twice. */
void tally_writer_stop(tally_writer *w);
/* Closes the store and frees the writer; after tally_writer_stop, once no
 * thread can call submit any more. */
void tally_writer_free(tally_writer *w);

#endif
