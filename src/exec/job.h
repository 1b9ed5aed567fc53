/*
 * job.h — one request on its way through a worker: the plan to run, the
 * outcome, the answer, and how to hand it back.
 *
 * Ownership: the API layer makes a job and hands it to a worker with
 * tally_writer_submit / tally_reader_submit; from then on the worker owns it
 * until it calls job->complete, which hands it back to the thread that asked
 * (the net layer posts it to the loop that owns the connection).  Whoever
 * holds it last frees it with tally_job_free.
 */
#ifndef TALLY_EXEC_JOB_H
#define TALLY_EXEC_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/plan.h"
#include "store/backend.h"

typedef struct tally_job tally_job;
struct tally_session;

/* What a job asks of the writer.  All but NORMAL belong to an interactive
 * transaction (a session) and run on its plan rather than their own. */
typedef enum tally_job_kind {
    TALLY_JOB_NORMAL,   /* run the plan in the next batch */
    TALLY_JOB_BEGIN,    /* finish the running batch, then open the session */
    TALLY_JOB_STEP,     /* run the session plan's steps from `from_step` on */
    TALLY_JOB_COMMIT,
    TALLY_JOB_ROLLBACK,
    TALLY_JOB_EVENT,    /* writer to loop: the session was rolled back on its own (timeout) */
} tally_job_kind;

struct tally_job {
    tally_job_kind kind;
    tally_plan *plan;   /* owned (NULL for session jobs: they use session->plan) */
    struct tally_session *session; /* a reference, for session jobs (released by tally_job_free) */
    int from_step;      /* STEP: the first plan step to run */
    char *echo;         /* WebSocket: the request's "id" as JSON text, echoed in the answer (owned) */
    int rc;             /* 0 or -code of the outcome */
    tally_error err;    /* detail when rc != 0 */

    /* Builds status/body from plan results or err.  Set by the API layer; the
     * worker calls it before COMMIT (and again if the batch then fails), so the
     * answer leaves the moment the commit is durable. */
    void (*render)(tally_job *job);
    int status;
    char *body;         /* owned (malloc); replaced by each render */
    size_t body_len;

    /* Called by the worker once the outcome is final (after COMMIT's fsync). */
    void (*complete)(tally_job *job);
    void *origin;       /* the net layer's handle for the waiting request */

    uint64_t enqueued_ns;
    uint64_t deadline_ns; /* past this, a queued write is refused unapplied (0: none) */
    tally_job *next;      /* queue link, owned by whichever queue holds the job */

    /* Idempotency-Key: the stored answer is replayed for a repeat (owned, strings too). */
    tally_idem_key *idem;
    /* A lock acquire with waitMs: the writer parks the job until the lock
     * frees or this passes (monotonic ns; 0: no waiting). */
    uint64_t wait_until_ns;
    bool woken;           /* re-run after a wait: parks at the head again */
    bool replayed;        /* answered from a stored Idempotency-Key answer */
    int reruns;           /* conflicts the database gave up on it for, and it was run again */
    int lock_waits;       /* times it waited past lock_timeout for a row another connection held */
    uint64_t retry_at_ns; /* a lock wait: not before this (monotonic ns) */
    tally_job *dups;      /* repeats of this job's idempotency key that wait for it */
    int preset;           /* writer: 1 + the outcome already given to it with the run of increments it
                             joined (exec/coalesce.h); 0: none */
    int retry_after_s;    /* a Retry-After header for the answer (0: none) */
};

tally_job *tally_job_new(tally_plan *plan);
void tally_job_free(tally_job *job);
/* Fails the job with code and a message for a person, and renders that answer. */
void tally_job_fail(tally_job *job, tally_code code, const char *msg);
/* Sets the answer body, taking ownership of body (malloc'ed). */
void tally_job_set_body(tally_job *job, int status, char *body, size_t len);
/* Monotonic clock in ns for queue deadlines. */
uint64_t tally_clock_ns(void);

#endif
