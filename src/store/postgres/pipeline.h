/*
 * pipeline.h — the bookkeeping of the PostgreSQL backend's round trips, kept
 * pure (no libpq calls) so that it can be unit tested without a server:
 *
 *   - the transaction statements the ops table asks for (BEGIN, SAVEPOINT,
 *     RELEASE, ROLLBACK TO) are not sent when asked: they are queued and go
 *     out in the same pipeline as the next statement (or COMMIT), so that a
 *     request costs one round trip rather than three.  A SAVEPOINT that
 *     never reached the server needs no RELEASE and no ROLLBACK TO (nothing
 *     ran in it); a transaction whose BEGIN never reached the server commits
 *     or rolls back without a word to it.
 *   - after a round trip, what the server answered to each queued statement
 *     (and its transaction status) moves the state on; a queued statement
 *     that failed (or was skipped as PGRES_PIPELINE_ABORTED after another's
 *     error) leaves the transaction broken: nothing of it may be answered as
 *     applied.
 *   - prepared statements, cached per connection by SQL text and parameter
 *     types, bounded (least recently used evicted; the evicted names are
 *     DEALLOCATEd at the next round trip outside a transaction).
 */
#ifndef TALLY_STORE_POSTGRES_PIPELINE_H
#define TALLY_STORE_POSTGRES_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef unsigned int tally_pg_oid; /* libpq's Oid, without libpq */

/* ---- transaction statements ------------------------------------------------------------------ */

typedef enum tally_pg_ctl {
    TALLY_PG_CTL_BEGIN,
    TALLY_PG_CTL_SAVEPOINT,
    TALLY_PG_CTL_RELEASE,
    TALLY_PG_CTL_ROLLBACK_TO,
} tally_pg_ctl;
#define TALLY_PG_CTL_COUNT 4 /* each prepared once a connection (connection.c), outside the cache */

#define TALLY_PG_PENDING_MAX 8

/* What a queued statement (or the statement of a round trip) came back as. */
typedef enum tally_pg_outcome {
    TALLY_PG_OK,      /* PGRES_COMMAND_OK / PGRES_TUPLES_OK */
    TALLY_PG_FAILED,  /* an error from the server, or no answer */
    TALLY_PG_SKIPPED, /* PGRES_PIPELINE_ABORTED: not run, an earlier statement of the pipeline failed */
} tally_pg_outcome;

/* The server's transaction status after a round trip (PQtransactionStatus, simplified). */
typedef enum tally_pg_server_tx {
    TALLY_PG_SERVER_IDLE,
    TALLY_PG_SERVER_INTRANS,
    TALLY_PG_SERVER_INERROR,
    TALLY_PG_SERVER_UNKNOWN, /* connection lost, or the status could not be read */
} tally_pg_server_tx;

typedef struct tally_pg_tx {
    bool txn;       /* begin was called and the transaction has not ended */
    bool begun;     /* its BEGIN reached the server */
    int savepoints; /* savepoints "r" open on the server (SAVEPOINT minus RELEASE that reached it) */
    int wanted;     /* savepoints open as the ops table sees them (queued ones included) */
    bool aborted;   /* the server's transaction is in error and no ROLLBACK TO is queued or done since */
    bool broken;    /* a queued transaction statement failed: the transaction cannot be trusted */
    int npending;
    tally_pg_ctl pending[TALLY_PG_PENDING_MAX];
} tally_pg_tx;

void tally_pg_tx_reset(tally_pg_tx *t);
/* The ops: each only queues (or drops what it undoes from the queue).  They
 * return false when the queue is full: send it first (tally_pg_tx_sent) and ask again. */
bool tally_pg_tx_begin(tally_pg_tx *t);
bool tally_pg_tx_savepoint(tally_pg_tx *t);
bool tally_pg_tx_release(tally_pg_tx *t);
bool tally_pg_tx_rollback_to(tally_pg_tx *t);
/* Whether COMMIT/ROLLBACK must go to the server: false when no BEGIN reached it. */
bool tally_pg_tx_on_server(const tally_pg_tx *t);
/* After a round trip that sent the first n queued statements (then maybe a
 * statement of its own): their outcomes, the statement's (TALLY_PG_OK when
 * there was none) and the server's status after it.  Moves the state on
 * and takes the n statements off the queue. */
void tally_pg_tx_sent(tally_pg_tx *t, int n, const tally_pg_outcome *outcomes, tally_pg_outcome stmt,
                      tally_pg_server_tx server);
/* After COMMIT or ROLLBACK (answered or not): no transaction any more. */
void tally_pg_tx_ended(tally_pg_tx *t);
/* The ops table's in_transaction, given that the connection is up: a
 * transaction is open, not broken, and not aborted unless a savepoint can rescue it. */
bool tally_pg_tx_usable(const tally_pg_tx *t);
/* The SQL of a queued statement. */
const char *tally_pg_ctl_sql(tally_pg_ctl c);

/* ---- prepared statements ----------------------------------------------------------------------- */

#define TALLY_PG_STMTS_MAX 256
#define TALLY_PG_STMT_TYPES_MAX 32 /* statements with more parameters are not cached */
#define TALLY_PG_DEALLOC_MAX 64

typedef struct tally_pg_stmt {
    char *sql;         /* NULL: a free entry */
    size_t len;
    uint64_t hash;     /* of sql and types */
    int ntypes;
    tally_pg_oid types[TALLY_PG_STMT_TYPES_MAX];
    char name[24];     /* "t<number>" */
    bool prepared;     /* the server has it (a Parse under this name succeeded) */
    uint64_t used;     /* last use, for eviction */
} tally_pg_stmt;

typedef struct tally_pg_stmts {
    tally_pg_stmt entries[TALLY_PG_STMTS_MAX];
    int16_t index[2 * TALLY_PG_STMTS_MAX]; /* open addressing by hash: entry + 1, 0 empty */
    int count;
    uint64_t clock, next_name;
    int ndealloc;                              /* names evicted while the server still has them */
    char dealloc[TALLY_PG_DEALLOC_MAX][24];
    uint64_t hits, misses, evictions;
} tally_pg_stmts;

void tally_pg_stmts_init(tally_pg_stmts *c);
/* Forgets every statement (after a reconnection, the server has none; also at close). */
void tally_pg_stmts_clear(tally_pg_stmts *c);
/* The entry for sql with these parameter types: found (marked used), or new
 * (not yet prepared; the least recently used one may be evicted for it), or
 * NULL when it cannot be cached (too many parameters, or every evictable
 * name is still waiting for its DEALLOCATE). */
tally_pg_stmt *tally_pg_stmts_get(tally_pg_stmts *c, const char *sql, size_t len, const tally_pg_oid *types,
                                  int ntypes);
/* A PREPARE that did not succeed: the entry is dropped, its name never reused. */
void tally_pg_stmts_drop(tally_pg_stmts *c, tally_pg_stmt *s);
/* After the DEALLOCATEs of the first n names went out successfully. */
void tally_pg_stmts_deallocated(tally_pg_stmts *c, int n);

#endif
