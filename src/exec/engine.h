/*
 * engine.h — one open database: the backend connections, the writer, the
 * readers and the interactive-transaction runners, behind one handle.  This
 * is what include/tally.h will publish; the HTTP server is one user of it.
 *
 * A request reaches the engine as a job (a plan plus a completion, exec/
 * job.h).  tally_engine_submit hands it to the right worker: writes to the
 * writer's group-commit queue, scans to the readers, a BEGIN to whoever runs
 * interactive transactions on this backend (the writer on SQLite, a pool of
 * session connections on PostgreSQL).  A point read may answer at once, in
 * place on the calling thread's own connection, where the backend allows it
 * (SQLite); elsewhere it goes to the readers and answers later.  Either way
 * the calling thread never waits on a database.
 *
 * Ownership: the engine owns every connection and thread; the schema is
 * borrowed and must outlive it.  A submitted job is the engine's until its
 * completion runs (on an engine thread), which hands it back.
 */
#ifndef TALLY_EXEC_ENGINE_H
#define TALLY_EXEC_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/schema.h"
#include "exec/job.h"
#include "exec/writer.h"
#include "store/backend.h"

typedef struct tally_engine tally_engine;
/* A calling thread's own context for in-place reads (one per event loop). */
typedef struct tally_engine_local tally_engine_local;

typedef struct tally_engine_options {
    /* The database: a SQLite file path or sqlite:PATH, or a postgresql:// URL (borrowed). */
    const char *db;
    bool relaxed_durability;  /* see tally_store_options */
    bool portable;            /* see tally_store_options: no advisory locks, no LISTEN/NOTIFY */
    bool allow_destructive;   /* let the migration drop models and fields */
    bool check_only;          /* tally_engine_migrate: roll the migration back, only say whether it works */
    tally_buf *migration_changes; /* may be NULL: gets a line per change the migration makes (or would make) */
    tally_writer_options writer;
    int lanes;                /* writer lanes where the backend has several (0: its default; SQLite: always 1) */
    int readers;              /* reader threads (0: 1 on SQLite, 2 on PostgreSQL) */
    int sessions;             /* interactive transactions open at once where each has its own connection (0: 16) */
    uint64_t begin_wait_ms;   /* how long a BEGIN may wait for one of those (0: the writer's queue timeout) */
    int64_t changes_retention_ms; /* the change feed's bounds: age (0: a day) and rows (0: none) */
    int64_t changes_max_rows;
    int changes_poll_ms;      /* how often the feed looks for changes committed elsewhere (0: the feed's default) */
} tally_engine_options;

/* Opens the database, checks durability, migrates it to the schema, starts
 * the workers.  On failure err says why in a person's terms (a URL in it
 * never shows its password). */
int tally_engine_open(const tally_schema *schema, const tally_engine_options *opt, tally_engine **out,
                      tally_error *err);
/* Only the migration (tally migrate; tally check-schema with check_only): opens, migrates, closes. */
int tally_engine_migrate(const tally_schema *schema, const tally_engine_options *opt, tally_error *err);

const tally_backend_ops *tally_engine_backend(const tally_engine *e);

/* The API key table's cache (exec/keyring.h), the engine's. */
struct tally_keyring;
struct tally_keyring *tally_engine_keyring(tally_engine *e);

/* Whether the database answers (as the writer lanes last found it: at their
 * last commit, or a probe while idle or down); when not, reason says why. */
bool tally_engine_healthy(tally_engine *e, char *reason, size_t cap, tally_db_state *state);

/* Hands a job over: 0, or -TALLY_OVERLOADED when the queue it belongs to is
 * full or the engine is stopping (the job stays the caller's).  For a
 * session's STEP, COMMIT and ROLLBACK jobs, -1 means the session is no
 * longer open (tally_session_push). */
int tally_engine_submit(tally_engine *e, tally_job *job);

/* The calling thread's in-place read context, or NULL with nothing to free
 * when the backend cannot read in place.  Used by that thread only. */
int tally_engine_local_open(tally_engine *e, tally_engine_local **out, tally_error *err);
void tally_engine_local_close(tally_engine_local *l);
/* A point read in place: runs job on l's connection and returns true (the
 * answer rendered, the job still the caller's) when l can read in place;
 * false, with nothing done, when it cannot: submit the job instead. */
bool tally_engine_read_here(tally_engine_local *l, tally_job *job);

/* Prometheus text of the counters and queues (malloc'ed, *len set). */
char *tally_engine_metrics(tally_engine *e, size_t *len);

/* The change feed's state as its thread last read it, for /metrics and the console. */
struct tally_feed_stats;
void tally_engine_feed_stats(tally_engine *e, struct tally_feed_stats *out);

/* Refuses new jobs, runs and answers every queued one, joins the threads. */
void tally_engine_stop(tally_engine *e);
/* Stops if needed, closes every connection, frees the engine. */
void tally_engine_close(tally_engine *e);

#endif
