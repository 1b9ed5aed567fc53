/*
 * session_run.c — serves one interactive transaction on a connection, from
 * its BEGIN to the end event; see session_run.h.
 */
#include "exec/session_run.h"

#include <stdlib.h>

#include "core/datetime.h"
#include "exec/metrics.h"
#include "exec/run.h"

/* Ends the session's transaction on the database and refuses whatever of it is still queued. */
static void end_session(tally_store *store, tally_session *s, bool commit, tally_error *err, int *rc)
{
    *rc = 0;
    if (commit && tally_store_commit(store, err) != 0) {
        *rc = -(int)err->code;
        commit = false;
    }
    if (!commit)
        tally_store_rollback(store);
    else
        tally_metrics_batch(1); /* an interactive transaction's commit: one batch of one */
}

/* Every session ends with one EVENT job back to its connection (silent unless
 * it timed out), so the connection knows the writer is done with it. */
static void end_event(tally_session *s, void (*render)(tally_job *), void (*complete)(tally_job *), bool timeout)
{
    tally_job *event = tally_job_new(NULL);
    event->kind = TALLY_JOB_EVENT;
    event->session = s;
    tally_session_ref(s);
    event->origin = s->origin;
    event->render = render;
    event->complete = complete;
    event->rc = timeout ? -TALLY_TIMEOUT : 0;
    render(event);
    complete(event);
}

/* Runs the session's calls until it commits, rolls back or times out; returns true on a timeout. */
static bool serve_session(tally_store *store, tally_queue *calls, tally_session *s)
{
    tally_error err;
    uint64_t deadline = tally_clock_ns() + s->timeout_ms * 1000000u;
    for (;;) {
        tally_job *job = tally_queue_pop_until(calls, deadline);
        if (!job) { /* timeout: roll back; the end event tells the client */
            tally_session_finish(s, "timeout");
            tally_store_rollback(store);
            return true;
        }
        int rc = 0;
        bool done = true;
        switch (job->kind) {
        case TALLY_JOB_STEP:
            s->plan->now_ms = tally_now_ms();
            job->rc = tally_run_plan_from(store, s->plan, job->from_step, &job->err);
            if (job->rc == -TALLY_RATE_LIMITED)
                TALLY_METRIC_ADD(limit_refusals, 1);
            done = job->rc != 0; /* a failing step rolls the whole transaction back */
            if (done) {
                tally_session_finish(s, "a step failed");
                end_session(store, s, false, &err, &rc);
            }
            break;
        case TALLY_JOB_COMMIT:
            tally_session_finish(s, "committed");
            end_session(store, s, true, &err, &rc);
            if (rc) {
                job->rc = rc;
                job->err = err;
            }
            break;
        default: /* ROLLBACK */
            tally_session_finish(s, "rolled back");
            end_session(store, s, false, &err, &rc);
            break;
        }
        job->render(job);
        job->complete(job);
        if (done)
            return false;
    }
}

/* See session_run.h. */
void tally_session_run(tally_store *store, tally_queue *calls, tally_job *begin)
{
    tally_session *s = begin->session;
    tally_session_ref(s); /* ours until the end event is out */
    /* begin is the loop's again (and may be freed) once completed: keep what the end event needs. */
    void (*render)(tally_job *) = begin->render, (*complete)(tally_job *) = begin->complete;
    tally_error err;
    bool timed_out = false;
    if (begin->deadline_ns && tally_clock_ns() >= begin->deadline_ns) {
        tally_session_leave_waiting(s, TALLY_SESSION_DONE);
        TALLY_METRIC_ADD(begin_refused[TALLY_BEGIN_REFUSED_TIMEOUT], 1);
        tally_job_fail(begin, TALLY_OVERLOADED, "begin waited past --queue-timeout for its turn (other transactions held "
                 "the writer or every transaction connection); nothing began, retry later");
        begin->complete(begin);
    } else if (tally_session_activate(s, calls) != 0) { /* the client left meanwhile */
        begin->rc = 0;
        begin->render(begin);
        begin->complete(begin);
    } else if (!store || tally_store_begin(store, &err) != 0) {
        tally_session_finish(s, "failed");
        tally_job_fail(begin, TALLY_UNAVAILABLE, "the database could not begin the transaction; retry");
        begin->complete(begin);
    } else {
        begin->rc = 0;
        begin->render(begin);
        begin->complete(begin);
        timed_out = serve_session(store, calls, s);
    }
    /* A job pushed while the session was ending (a rollback from a dropped
     * connection, a step racing the timeout) is answered, not left behind. */
    tally_job *late;
    while (calls && (late = tally_queue_pop_until(calls, 0)) != NULL) {
        tally_job_fail(late, TALLY_CONFLICT, "the transaction has already ended; nothing of it was applied");
        late->complete(late);
    }
    end_event(s, render, complete, timed_out);
    tally_session_unref(s);
}

