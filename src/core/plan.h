/*
 * plan.h — an operation plan: what one request asks of the database, decoded
 * and checked against the schema, with no JSON and no SQL left in it.
 *
 * The API layer builds a plan on a loop thread; it is then handed over whole
 * to a worker (the writer for writes, a reader for scans) which runs it and
 * fills in the results, and handed back to be answered.  A plan owns an arena
 * that holds the plan, its values and its results; tally_plan_free releases
 * everything at once.  One owner at a time, so no locks.
 *
 * A request may become several steps: a create with nested creates is the
 * nested records first, then the record that links to them (its link values
 * are REFs to the earlier steps' ids), then hasMany children.  The steps run
 * in order, all or nothing.
 */
#ifndef TALLY_CORE_PLAN_H
#define TALLY_CORE_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/filter.h"
#include "core/schema.h"
#include "core/value.h"

#define TALLY_LIST_DEFAULT 50
#define TALLY_LIST_MAX 1000

typedef enum tally_op {
    TALLY_OP_CREATE,
    TALLY_OP_GET,
    TALLY_OP_LIST,
    TALLY_OP_UPDATE,      /* one record by id, optionally guarded by `where` */
    TALLY_OP_DELETE,
    TALLY_OP_UPDATE_MANY, /* every row matching `where` */
    TALLY_OP_DELETE_MANY,
    TALLY_OP_UPSERT,      /* insert `sets`, or on conflict over `on` apply `usets` and `atomics` */
    TALLY_OP_LOCK_ACQUIRE, /* locks (README.md, "Locks, rate limits and safe retries"): `name`, `token`, `ttl_ms` */
    TALLY_OP_LOCK_RENEW,
    TALLY_OP_LOCK_RELEASE,
    TALLY_OP_LOCK_CHECK,  /* a transaction's checkLock step */
    TALLY_OP_LOCK_LIST,
    TALLY_OP_LIMIT,       /* one GCRA decision: `limit`, `name` (the key), `cost` */
    TALLY_OP_CHANGES,     /* a page of the change feed (exec/feed.h): `since`, `feed_models`, `first`, `wait_ms` */
} tally_op;

/* One change of the feed as stored: the record after it in the store's JSON
 * (column name -> value, store/feed_sql.h), turned into the API's record
 * when answered. */
typedef struct tally_change {
    int64_t seq;
    int model;          /* index in the schema; -1: a model the schema no longer has */
    int64_t id;
    char op;            /* 'c' create, 'u' update, 'd' delete */
    const char *rec;    /* NULL for a delete */
    size_t rec_len;
    int64_t at;         /* UTC ms */
    /* A run of increments applied as one statement (exec/coalesce.h) is one
     * stored change standing for several writes: `merged` is its text
     * ({"fields": [...], "deltas": [[...], ...]}, one list a write), and
     * exec/feed.c gives each write a change of its own, the record as it was
     * after that write: rec less adjust_by[k] on column adjust_col[k]. */
    const char *merged;
    const int *adjust_col;
    const int64_t *adjust_by;
    int nadjust;
} tally_change;

/* A held lock as GET /api/locks lists it (never its token). */
typedef struct tally_lock_info {
    const char *name;
    size_t name_len;
    int64_t fence;
    int64_t expires_at; /* UTC ms */
} tally_lock_info;

typedef enum tally_atomic_kind {
    TALLY_ATOMIC_INCREMENT,
    TALLY_ATOMIC_DECREMENT,
} tally_atomic_kind;

/* `column = value` in a create or update. */
typedef struct tally_assign {
    int column;
    tally_value value;
} tally_assign;

/* One arithmetic operation; a field's operations are adjacent and in order. */
typedef struct tally_atomic {
    int column;
    tally_atomic_kind kind;
    tally_value amount; /* INT for integer fields, INT or FLOAT for float fields */
} tally_atomic;

/* A record as stored: one value per column of its model (see schema.h). */
typedef struct tally_record {
    tally_value *cols;
} tally_record;

typedef struct tally_step_result {
    tally_record record;     /* create, get, update, upsert: the record after the step;
                                a failed guard: the record as it stood (cols NULL if none) */
    int64_t id;              /* delete: the id removed */
    tally_record *records;   /* list */
    int nrecords;
    bool has_next;           /* list: more rows follow the last one */
    int64_t count;           /* updateMany, deleteMany: rows changed */
    bool created;            /* upsert: inserted rather than updated */
    /* locks: the grant (token only on acquire), or the current lease when LOCKED */
    char token[33];
    int64_t fence, expires_at;
    tally_lock_info *locks;  /* lock list */
    int nlocks;
    /* limit */
    bool allowed;
    int64_t remaining, retry_after_ms, reset_after_ms;
    /* changes */
    tally_change *changes;
    int nchanges;
    int64_t next;            /* the cursor to ask after next time */
    int64_t oldest;          /* GONE: the oldest seq still kept */
} tally_step_result;

typedef struct tally_step {
    tally_op op;
    const tally_model *model;
    const char *path;        /* where in the request the step comes from ("" or "images[2]") */
    bool link;               /* an update that relinks a hasMany child: a missing child is a VALIDATION error */
    tally_value id;          /* get, update, delete: INT or a REF */
    tally_assign *sets;      /* create: every column given or defaulted; update: columns to set */
    int nsets;
    tally_atomic *atomics;   /* update, updateMany, upsert's update part */
    int natomics;
    tally_assign *usets;     /* upsert: columns to set when the record exists */
    int nusets;
    const tally_filter *where; /* update guard; updateMany/deleteMany/list filter (NULL: none) */
    const char *where_path;  /* where the guard came from ("_where", "where"), for GUARD_FAILED */
    int on[TALLY_MAX_UNIQUE_FIELDS]; /* upsert: the conflict target's columns */
    int non;
    /* locks and limits */
    const char *name;        /* lock name or limit key (UTF-8, 1..128 bytes) */
    size_t name_len;
    const char *token;       /* renew, release, checkLock */
    int64_t ttl_ms, wait_ms;
    const tally_limit *limit;
    int64_t cost;
    /* list */
    int first;               /* page size */
    tally_sort_key *sort;    /* at least one key; the last is always id */
    int nsort;
    tally_value *after;      /* resume after this row: one value per sort key (NULL: from the start) */
    /* changes */
    int64_t since;           /* changes after this seq; 0: from the oldest kept; -1: from now on (the
                                store sets it to the current end on the first run) */
    const int *feed_models;  /* model indexes to include (NULL: every model) */
    int nfeed_models;
} tally_step;

/* A REF's column for the row count of an updateMany/deleteMany step, and for the fence of a checkLock step. */
#define TALLY_REF_COUNT (-1)
#define TALLY_REF_FENCE (-2)

/* One step of a transaction as the client wrote it; it may have become
 * several plan steps (nested creates), the last of which answers it. */
typedef struct tally_txn_step {
    const char *as;              /* its "as" name, or NULL */
    int first;                   /* first plan step it became */
    int answer;                  /* the plan step whose result answers it */
    const tally_filter *expect;  /* condition on that result, or NULL */
    bool expect_on_count;        /* expect is on {"count"} rather than a record */
} tally_txn_step;

typedef struct tally_plan {
    tally_arena arena;           /* owns the plan, its values and its results */
    const tally_schema *schema;  /* borrowed; outlives every plan */
    tally_step *steps;
    int nsteps, cap;
    tally_step_result *results;  /* nsteps entries, filled by the store */
    int results_cap;
    int answer_step;             /* whose result is the request's answer */
    int failed_step;             /* set by the store when a step fails */
    bool writes;                 /* any step changes data: goes to the writer */
    int64_t now_ms;              /* the request's clock for createdAt/updatedAt, set by the writer */
    tally_txn_step *txn;         /* a transaction: its steps (answer lists every result); NULL otherwise */
    int ntxn, txn_cap;
} tally_plan;

/* Creates an empty plan (heap-allocated, with its arena). */
tally_plan *tally_plan_new(const tally_schema *schema);
void tally_plan_free(tally_plan *plan);
/* Appends a zeroed step and returns it (pointers to earlier steps may move). */
tally_step *tally_plan_add_step(tally_plan *plan, tally_op op, const tally_model *model);
/* Makes room for every step's result (keeping those already there); called by the executor before running. */
void tally_plan_prepare_results(tally_plan *plan);
/* The value v stands for: itself, or for a REF the referenced result's value
 * (a NULL value if that result has none).  Only valid while running. */
tally_value tally_plan_resolve(const tally_plan *plan, const tally_value *v);
/* The transaction step a plan step belongs to (-1 outside a transaction). */
int tally_plan_txn_step(const tally_plan *plan, int step);

#endif
