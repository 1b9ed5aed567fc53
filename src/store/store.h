/*
 * store.h — the backend interface: one database connection and the
 * operations the executor runs on it.
 *
 * A tally_store is one connection, used by one thread at a time (the writer,
 * a reader, or a loop thread for point reads).  It knows SQL and nothing of
 * JSON or HTTP: it runs the steps of a plan and fills the plan's results,
 * copying every value it returns into the plan's arena.
 *
 * SQLite is the backend today (sqlite.c); PostgreSQL will implement the same
 * functions behind this header.
 */
#ifndef TALLY_STORE_STORE_H
#define TALLY_STORE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/plan.h"
#include "core/schema.h"

typedef struct tally_store tally_store;

typedef enum tally_store_role {
    TALLY_STORE_WRITER, /* read-write; runs migrations; owns checkpoints */
    TALLY_STORE_READER, /* read-only connection for reads that never wait on the writer */
} tally_store_role;

typedef struct tally_store_options {
    tally_store_role role;
    /* Durability: false (the default) demands WAL + synchronous=FULL and refuses
     * to start otherwise; true is the opt-in "relaxed" mode (synchronous=NORMAL),
     * which may lose the last commits on a power cut, never on a process crash. */
    bool relaxed_durability;
} tally_store_options;

/* Opens the database file at path.  The schema is borrowed and must outlive the store. */
int tally_store_open(const char *path, const tally_schema *schema, const tally_store_options *opt,
                     tally_store **out, tally_error *err);
void tally_store_close(tally_store *st);

/* Creates or extends the tables to match the schema (writer only).  A
 * destructive change (a dropped model or field) is refused unless
 * allow_destructive; a changed type or changed options always are. */
int tally_store_migrate(tally_store *st, bool allow_destructive, tally_error *err);

/* Transactions and savepoints (writer). */
int tally_store_begin(tally_store *st, tally_error *err);
int tally_store_commit(tally_store *st, tally_error *err);
int tally_store_rollback(tally_store *st);
int tally_store_savepoint(tally_store *st, tally_error *err);
int tally_store_release(tally_store *st, tally_error *err);
int tally_store_rollback_to(tally_store *st, tally_error *err);
/* False when the backend has ended the open transaction on its own (I/O
 * error, disk full): nothing of the batch may then be answered as applied. */
bool tally_store_in_transaction(tally_store *st);

/* Runs plan step i, filling plan->results[i] (allocated by the caller with
 * tally_plan_prepare_results).  On failure err carries the code, message and
 * path.  exec/run.h runs whole plans with this. */
int tally_store_run_step(tally_store *st, tally_plan *plan, int i, tally_error *err);

/* Idempotency keys: what identifies a request and what it answered. */
typedef struct tally_idem_key {
    const char *method, *path, *key; /* the key is scoped by method and path */
    unsigned char hash[32];          /* SHA-256 of the body */
} tally_idem_key;

typedef struct tally_idem_answer {
    bool same_body;
    int status;
    char *body; /* malloc'ed, the caller's */
    size_t len;
} tally_idem_answer;

/* Returns 1 and fills out when the key was stored, 0 when not, or -code. */
int tally_store_idem_get(tally_store *st, const tally_idem_key *k, tally_idem_answer *out, tally_error *err);
int tally_store_idem_put(tally_store *st, const tally_idem_key *k, int status, const char *body, size_t len,
                         int64_t now_ms, tally_error *err);
/* Writer, between batches, inside a transaction: deletes spent rate-limit
 * rows and idempotency answers older than idem_ttl_ms. */
int tally_store_sweep(tally_store *st, int64_t now_ms, int64_t idem_ttl_ms);

/* Writer only: checkpoints the WAL (passive) when it has grown past its limit.
 * Returns 1 when a checkpoint ran. */
int tally_store_maybe_checkpoint(tally_store *st);

#endif
