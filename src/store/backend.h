/*
 * backend.h — the storage seam: one database connection (a tally_store) and
 * the table of operations a backend implements for it, chosen at run time by
 * the database URL (in the way sqlite3_vfs is a table of file operations).
 *
 *   a folder path or sqlite:PATH   SQLite   (store/sqlite/, the embedded default)
 *   postgresql://… or postgres://… PostgreSQL (store/postgres/)
 *
 * A tally_store is one connection, used by one thread at a time (the writer,
 * a reader, a session runner, or a loop thread for in-place point reads).
 * It knows SQL and nothing of JSON or HTTP: it runs the steps of a plan and
 * fills the plan's results, copying every value it returns into the plan's
 * arena.  exec/ sees only this header: no backend's symbols, and what differs
 * between backends is stated as capabilities (tally_backend_caps) rather than
 * assumed.
 *
 * Every backend's store struct begins with `tally_store` (its ops pointer),
 * so the dispatch functions below work on any of them.
 */
#ifndef TALLY_STORE_BACKEND_H
#define TALLY_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/plan.h"
#include "core/schema.h"
#include "core/scope.h"

typedef struct tally_store tally_store;
typedef struct tally_backend_ops tally_backend_ops;

/* The common head of every backend's connection struct. */
struct tally_store {
    const tally_backend_ops *ops;
};

typedef enum tally_store_role {
    TALLY_STORE_WRITER,  /* read-write; runs migrations; owns checkpoints (SQLite) */
    TALLY_STORE_READER,  /* read-only: reads that never wait on the writer */
    TALLY_STORE_SESSION, /* read-write, for one interactive transaction at a time (PostgreSQL) */
    TALLY_STORE_HINTS,   /* a side connection for wake-up hints between servers (hint_* below); never in a transaction */
    TALLY_STORE_FEED,    /* the change feed's own connection (exec/feed.h): reads pages; on PostgreSQL
                            also numbers ended transactions' changes (feed_sequence) */
    TALLY_STORE_KEYS,    /* read-write, for the API key table alone (the keyring, `tally keys`): its own
                            short transactions, which wait for locks rather than give up */
} tally_store_role;

typedef struct tally_store_options {
    tally_store_role role;
    /* Durability: false (the default) demands every commit on disk before it
     * is answered and refuses to start otherwise (SQLite: WAL + synchronous=
     * FULL; PostgreSQL: fsync on, synchronous_commit=on).  true is the opt-in
     * relaxed mode (SQLite synchronous=NORMAL; PostgreSQL synchronous_commit=
     * off), which may lose the last commits on a power cut or server crash. */
    bool relaxed_durability;
    /* Only what PostgreSQL-compatible distributed engines share (PostgreSQL):
     * a meta row locked FOR UPDATE instead of advisory locks, and no
     * LISTEN/NOTIFY (hint_listen refuses; lock waiters only poll). */
    bool portable;
    /* The change feed's bounds, applied by sweep: changes older than this
     * (0: a day) and beyond the newest this many (0: no bound by rows). */
    int64_t changes_retention_ms;
    int64_t changes_max_rows;
} tally_store_options;

/* What a backend can do, so that exec/ decides by stating rather than by assuming. */
typedef struct tally_backend_caps {
    int lanes;                 /* writer connections (group-commit batches in parallel) a server uses */
    int batch_max;             /* requests one batch may hold at most (PostgreSQL: its savepoint budget) */
    bool reads_in_place;       /* a point read may run on the loop thread's own connection without
                                  blocking it (SQLite WAL: microseconds, no network) */
    bool session_owns_writer;  /* an interactive transaction runs on the writer's connection (SQLite,
                                  one writer) rather than on its own connection from a pool */
    bool locks_what_it_reads;  /* get/find inside a transaction take row locks (FOR UPDATE) */
    bool shared;               /* other servers may write the same database: their commits and lock
                                  releases are not seen here (lock waiters poll) */
    bool cross_server_wakeups; /* hint_* exist: another server's lock release can wake waiters here early */
} tally_backend_caps;

/* Flags of migrate. */
enum {
    TALLY_MIGRATE_DESTRUCTIVE = 1, /* drop stored models and fields the schema no longer has */
    TALLY_MIGRATE_CHECK_ONLY = 2,  /* roll back at the end: change nothing, say whether it would work */
};

/* What a probe found out about the database beyond "it answers". */
typedef struct tally_db_state {
    int sync_standbys; /* standbys that confirm each commit before it is answered; -1: unknown or none apply */
} tally_db_state;

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

/* API keys (README.md, "Access: keys, scopes, origins"): one row per live key; only the token's SHA-256 is
 * stored.  The state row counts every change (the generation each server's
 * cache compares against) and remembers that a key has ever existed. */
#define TALLY_KEY_NAME_MAX 64 /* 63 bytes + NUL */
typedef struct tally_key_row {
    int64_t id;                          /* never reused: scopes Idempotency-Key answers */
    char name[TALLY_KEY_NAME_MAX];
    char scopes[TALLY_SCOPES_TEXT_MAX];  /* space-separated, as tally_scopes_format writes them */
    unsigned char hash[32];              /* SHA-256 of the token */
    int64_t created_at;                  /* UTC ms */
} tally_key_row;

typedef struct tally_keys_state {
    int64_t generation; /* grows with every create and revoke */
    bool ever;          /* a key has existed: open mode never comes back */
} tally_keys_state;

/* Where the change feed stands, as the feed connection last read it. */
typedef struct tally_feed_state {
    int64_t head;    /* the newest seq numbered (0: none yet) */
    int64_t purged;  /* every seq up to this one may have been purged */
    int64_t pending; /* PostgreSQL: committed changes not numbered yet (the outbox) */
    int64_t lag_ms;  /* PostgreSQL: the age of the oldest of those */
} tally_feed_state;

/*
 * The operations.  Every function returns 0 or a negative tally_code with
 * err filled (code, a message for a person, a path), unless said otherwise.
 * Ownership: open hands a new store to the caller, who ends it with close;
 * the schema is borrowed and must outlive the store.  Plans are borrowed for
 * the call; results go into the plan's arena.
 */
struct tally_backend_ops {
    const char *name; /* "sqlite", "postgresql" */
    tally_backend_caps caps;

    /* target: a database file (SQLite) or a connection URL (PostgreSQL). */
    int (*open)(const char *target, const tally_schema *schema, const tally_store_options *opt, tally_store **out,
                tally_error *err);
    void (*close)(tally_store *st);

    /* Creates or extends the tables to match the schema (writer only), in one
     * transaction (store/migration.h has the rules).  A destructive change (a
     * dropped model or field) is refused unless TALLY_MIGRATE_DESTRUCTIVE; a
     * changed type or changed options always are.  TALLY_MIGRATE_CHECK_ONLY
     * does all of it and rolls back: whether the migration would succeed.
     * changes (may be NULL) gets a line for each change made (or, with
     * CHECK_ONLY, that would be made). */
    int (*migrate)(tally_store *st, unsigned flags, tally_buf *changes, tally_error *err);

    /* Transactions and one level of savepoint (writer, session). */
    int (*begin)(tally_store *st, tally_error *err);
    int (*commit)(tally_store *st, tally_error *err);
    void (*rollback)(tally_store *st); /* ends an open transaction, if any; never fails */
    int (*savepoint)(tally_store *st, tally_error *err);
    int (*release)(tally_store *st, tally_error *err);
    int (*rollback_to)(tally_store *st, tally_error *err);
    /* False when the database has ended the open transaction on its own (I/O
     * error, disk full, connection lost, an aborted PostgreSQL transaction):
     * nothing of the batch may then be answered as applied. */
    bool (*in_transaction)(tally_store *st);

    /* Runs plan step i, filling plan->results[i] (made by the caller with
     * tally_plan_prepare_results).  exec/run.h runs whole plans with this.
     * A step that fails leaves the transaction usable after rollback_to. */
    int (*run_step)(tally_store *st, tally_plan *plan, int i, tally_error *err);

    /* Idempotency-Key answers (inside the request's savepoint).  idem_get
     * returns 1 and fills out when the key was stored, 0 when not, or -code. */
    int (*idem_get)(tally_store *st, const tally_idem_key *k, tally_idem_answer *out, tally_error *err);
    int (*idem_put)(tally_store *st, const tally_idem_key *k, int status, const char *body, size_t len,
                    int64_t now_ms, tally_error *err);
    /* Inside a transaction, between batches: deletes spent rate-limit rows
     * and idempotency answers older than idem_ttl_ms.  0 or -1. */
    int (*sweep)(tally_store *st, int64_t now_ms, int64_t idem_ttl_ms);

    /* The database's clock (UTC ms), read by the writer once per batch inside
     * its transaction, so that leases and limits judged by several servers
     * do not depend on their clocks.  0 or -code.  NULL: this machine's clock
     * is the database's (SQLite). */
    int (*clock_ms)(tally_store *st, int64_t *now_ms, tally_error *err);

    /* Writer, while idle or while the database is down: whether it answers
     * now, connecting again if the connection was lost, and what it says of
     * its replicas.  0, or -code with err saying why in a person's terms
     * (never a password).  SQLite: whether the data folder's disk has room
     * for commits (so /health reports a full disk, and its end, writes or
     * not).  NULL: nothing to look at. */
    int (*probe)(tally_store *st, tally_db_state *out, tally_error *err);

    /* Writer, between batches: housekeeping the backend needs (SQLite: a
     * passive WAL checkpoint past a size).  Returns 1 when it did some. */
    int (*maintain)(tally_store *st);

    /* API keys, each call its own transaction on a connection of its own
     * (the keyring's, or the tally keys command's), never inside a batch.
     * keys_prepare creates the key tables if missing (the migration does too).
     * keys_list: every key (rows malloc'ed, the caller's) and the state, in one
     * snapshot.  keys_create: -TALLY_CONFLICT when the name is taken, else 0
     * with row->id set.  keys_revoke: -TALLY_NOT_FOUND when no key has it. */
    int (*keys_prepare)(tally_store *st, tally_error *err);
    int (*keys_state)(tally_store *st, tally_keys_state *out, tally_error *err);
    int (*keys_list)(tally_store *st, tally_key_row **rows, int *n, tally_keys_state *state, tally_error *err);
    int (*keys_create)(tally_store *st, tally_key_row *row, tally_error *err);
    int (*keys_revoke)(tally_store *st, const char *name, tally_error *err);

    /*
     * The change feed (README.md, "Change feed"), on a TALLY_STORE_FEED
     * connection.  Every committed write of a model with changes on has put
     * its changes in the log in its own transaction (the migration installs
     * the capture).  feed_read fills plan->results[0] from step 0
     * (TALLY_OP_CHANGES) in one snapshot: the changes after step->since, at
     * most step->first, and next; -TALLY_GONE (results[0].oldest set) when
     * since is older than what is kept.  feed_state reads where the feed
     * stands.  feed_sequence (NULL where commit order numbers changes:
     * SQLite) numbers the changes of ended transactions when this server is
     * the sequencer; *numbered gets how many.
     */
    int (*feed_read)(tally_store *st, tally_plan *plan, tally_error *err);
    /* Writer, in the savepoint of a run of n increments to one record applied
     * as one statement (exec/coalesce.h): the change that statement logged
     * stands for n writes (merged: their deltas as text, tally_change) and
     * takes n seqs.  0 or -code. */
    int (*feed_merge)(tally_store *st, const tally_model *m, int64_t id, int n, const char *merged, tally_error *err);
    int (*feed_state)(tally_store *st, tally_feed_state *out, tally_error *err);
    int (*feed_sequence)(tally_store *st, int *numbered, tally_error *err);

    /* Appends the backend's own Prometheus lines to f (SQLite: fsyncs
     * counted by its VFS shim).  Any thread; may be NULL. */
    void (*metrics)(FILE *f);

    /*
     * Wake-up hints between servers on one database (PostgreSQL LISTEN/NOTIFY;
     * NULL where caps.cross_server_wakeups is false), on a connection opened
     * with TALLY_STORE_HINTS and used by one thread.  A hint names a lock
     * that was released; it may be lost (on reconnect, say) and is never
     * needed for correctness: waiters poll as well.
     *
     * hint_listen subscribes and returns the connection's socket, to poll for
     * input (>= 0), or -code (also when the store is portable).  hint_send
     * tells every listening server (this one included) the names.  hint_take
     * reads what has arrived without blocking and calls on(ctx, name, len)
     * for each hint (name valid during the call); -code when the connection
     * is lost, after which the store is only good for close.
     */
    int (*hint_listen)(tally_store *st, tally_error *err);
    int (*hint_send)(tally_store *st, const char *const *names, const size_t *lens, int n, tally_error *err);
    int (*hint_take)(tally_store *st, void (*on)(void *ctx, const char *name, size_t len), void *ctx,
                     tally_error *err);
};

extern const tally_backend_ops tally_sqlite_backend;
extern const tally_backend_ops tally_postgres_backend;

/*
 * The backend a database URL names, and the target to open with it:
 * "postgresql://…"/"postgres://…" is PostgreSQL (the URL itself);
 * "sqlite:PATH" or a bare PATH is SQLite (PATH).  *target points into url.
 */
const tally_backend_ops *tally_backend_for(const char *url, const char **target);

/* url without a password (postgresql://user:secret@host/db -> postgresql://user@host/db,
 * password=… in a query string -> password=***), for messages and logs; truncated to cap. */
void tally_url_redact(const char *url, char *out, size_t cap);

/* Opens a connection for url with the backend it names. */
int tally_store_open(const char *url, const tally_schema *schema, const tally_store_options *opt, tally_store **out,
                     tally_error *err);

/* Dispatch: the same calls on whichever backend st belongs to. */
static inline void tally_store_close(tally_store *st) { if (st) st->ops->close(st); }
static inline const tally_backend_caps *tally_store_caps(const tally_store *st) { return &st->ops->caps; }
static inline int tally_store_migrate(tally_store *st, unsigned flags, tally_error *err)
{ return st->ops->migrate(st, flags, NULL, err); }
static inline int tally_store_migrate_noting(tally_store *st, unsigned flags, tally_buf *changes, tally_error *err)
{ return st->ops->migrate(st, flags, changes, err); }
static inline int tally_store_begin(tally_store *st, tally_error *err) { return st->ops->begin(st, err); }
static inline int tally_store_commit(tally_store *st, tally_error *err) { return st->ops->commit(st, err); }
static inline int tally_store_rollback(tally_store *st) { st->ops->rollback(st); return 0; }
static inline int tally_store_savepoint(tally_store *st, tally_error *err) { return st->ops->savepoint(st, err); }
static inline int tally_store_release(tally_store *st, tally_error *err) { return st->ops->release(st, err); }
static inline int tally_store_rollback_to(tally_store *st, tally_error *err) { return st->ops->rollback_to(st, err); }
static inline bool tally_store_in_transaction(tally_store *st) { return st->ops->in_transaction(st); }
static inline int tally_store_run_step(tally_store *st, tally_plan *plan, int i, tally_error *err)
{ return st->ops->run_step(st, plan, i, err); }
static inline int tally_store_idem_get(tally_store *st, const tally_idem_key *k, tally_idem_answer *out,
                                       tally_error *err)
{ return st->ops->idem_get(st, k, out, err); }
static inline int tally_store_idem_put(tally_store *st, const tally_idem_key *k, int status, const char *body,
                                       size_t len, int64_t now_ms, tally_error *err)
{ return st->ops->idem_put(st, k, status, body, len, now_ms, err); }
static inline int tally_store_sweep(tally_store *st, int64_t now_ms, int64_t idem_ttl_ms)
{ return st->ops->sweep(st, now_ms, idem_ttl_ms); }
static inline int tally_store_keys_prepare(tally_store *st, tally_error *err) { return st->ops->keys_prepare(st, err); }
static inline int tally_store_keys_state(tally_store *st, tally_keys_state *out, tally_error *err)
{ return st->ops->keys_state(st, out, err); }
static inline int tally_store_keys_list(tally_store *st, tally_key_row **rows, int *n, tally_keys_state *state,
                                        tally_error *err)
{ return st->ops->keys_list(st, rows, n, state, err); }
static inline int tally_store_keys_create(tally_store *st, tally_key_row *row, tally_error *err)
{ return st->ops->keys_create(st, row, err); }
static inline int tally_store_keys_revoke(tally_store *st, const char *name, tally_error *err)
{ return st->ops->keys_revoke(st, name, err); }
static inline int tally_store_maintain(tally_store *st) { return st->ops->maintain ? st->ops->maintain(st) : 0; }

#endif
