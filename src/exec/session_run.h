/*
 * session_run.h — serves one interactive transaction (WebSocket begin …
 * commit) on one connection, for whichever runner owns that connection: the
 * SQLite writer (the session owns the only write connection while it runs,
 * and other writes wait behind it) or a PostgreSQL session pool thread (the
 * session has its own connection and blocks only the rows it touches).
 *
 * Ownership: begin and every job taken from `calls` are completed (handed
 * back) here; the session gets one end event back to its connection, after
 * which the runner holds no reference to it.
 */
#ifndef TALLY_EXEC_SESSION_RUN_H
#define TALLY_EXEC_SESSION_RUN_H

#include "exec/job.h"
#include "exec/queue.h"
#include "exec/session.h"
#include "store/backend.h"

/* Runs BEGIN on store (unless the session was cancelled or begin waited past
 * its deadline), then the session's steps, commit or rollback as they arrive
 * on calls, until it ends or its timeout passes (rolled back).  Returns when
 * the transaction is over on the database.  Borrowed: store, calls.  A NULL
 * store (the runner could not connect) answers the begin 503 UNAVAILABLE;
 * calls may be NULL only for a begin already past its deadline (refused). */
void tally_session_run(tally_store *store, tally_queue *calls, tally_job *begin);

#endif
