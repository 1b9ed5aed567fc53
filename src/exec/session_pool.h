/*
 * session_pool.h — interactive transactions on their own connections, for a
 * backend whose sessions do not own the writer (PostgreSQL): a bounded pool
 * of runner threads, each with its own connection (opened on first use and
 * kept), each serving one session at a time, so an open transaction blocks
 * only the rows it touches and the writer's batches go on.
 *
 * A BEGIN waits in the pool's queue for a free runner; one that waited past
 * its deadline (job->deadline_ns) is answered 503 OVERLOADED, unapplied.
 */
#ifndef TALLY_EXEC_SESSION_POOL_H
#define TALLY_EXEC_SESSION_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "exec/job.h"
#include "store/backend.h"

typedef struct tally_session_pool tally_session_pool;

/* Starts `size` runner threads that open their connections with url and
 * schema (both borrowed; they must outlive the pool).  begin_wait_ms bounds
 * how long a BEGIN may wait for a free runner. */
int tally_session_pool_start(const char *url, const tally_schema *schema, const tally_store_options *opt, int size,
                             uint64_t begin_wait_ms, tally_session_pool **out, tally_error *err);
/* Hands a BEGIN job over (never blocks): 0, or -TALLY_OVERLOADED when the
 * pool's queue is full or it is stopping (the job stays the caller's). */
int tally_session_pool_submit(tally_session_pool *p, tally_job *begin);
/* Sessions open or waiting for a runner. */
size_t tally_session_pool_busy(tally_session_pool *p);
/* Refuses new BEGINs, lets every running session end (commit, rollback or
 * timeout), answers the waiting ones, joins the threads.  Safe to call twice. */
void tally_session_pool_stop(tally_session_pool *p);
/* Closes the connections and frees the pool (after stop). */
void tally_session_pool_free(tally_session_pool *p);

#endif
