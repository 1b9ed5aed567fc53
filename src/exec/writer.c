/*
 * writer.c — group commit: one transaction per batch of waiting writes, one
 * savepoint per write, answers rendered before COMMIT and released after it.
 * See writer.h for the contract.
 */
#include "exec/writer.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/datetime.h"
#include "exec/metrics.h"
#include "exec/queue.h"
#include "exec/run.h"
#include "exec/session.h"

struct tally_writer {
    tally_store *store;
    tally_writer_options opt;
    tally_queue queue;         /* writes and BEGINs, in arrival order */
    tally_queue session_queue; /* steps, commit and rollback of the open interactive transaction */
    pthread_t thread;
    bool stopped; /* touched only by the thread that starts and stops */
};

static void fail_job(tally_job *job, tally_code code, const char *msg)
{
    job->rc = tally_fail(&job->err, code, NULL, "%s", msg);
    job->render(job);
}

/* Runs one job inside its own savepoint.  Returns -1 when the database has
 * ended the batch's transaction (nothing in this batch may be answered as applied). */
static int run_job(tally_writer *w, tally_job *job)
{
    tally_error err;
    if (tally_store_savepoint(w->store, &err)) {
        job->rc = -(int)err.code;
        job->err = err;
        return -1;
    }
    job->rc = tally_run_plan(w->store, job->plan, &job->err);
    if (job->rc == 0)
        return tally_store_release(w->store, &err) ? -1 : 0;
    if (!tally_store_in_transaction(w->store))
        return -1;
    if (tally_store_rollback_to(w->store, &err) || tally_store_release(w->store, &err))
        return -1;
    return 0;
}

static void run_batch(tally_writer *w, tally_job *batch, size_t n)
{
    uint64_t now_ns = tally_clock_ns();
    int64_t now_ms = tally_now_ms();
    tally_error err;
    bool broken = tally_store_begin(w->store, &err) != 0;
    size_t applied = 0;
    for (tally_job *job = batch; job; job = job->next) {
        if (broken) {
            fail_job(job, TALLY_UNAVAILABLE, "the database could not complete this batch; nothing was applied, retry");
            continue;
        }
        if (job->deadline_ns && now_ns > job->deadline_ns) {
            TALLY_METRIC_ADD(rejected, 1);
            fail_job(job, TALLY_OVERLOADED,
                     "the write waited in the queue past --queue-timeout and was not applied; retry later");
            continue;
        }
        job->plan->now_ms = now_ms;
        if (run_job(w, job) != 0) {
            broken = true;
            fail_job(job, TALLY_UNAVAILABLE, "the database could not complete this batch; nothing was applied, retry");
            continue;
        }
        job->render(job); /* before COMMIT: answers leave as soon as the fsync returns */
        if (job->rc == 0)
            applied++;
    }
    if (!broken && tally_store_commit(w->store, &err) != 0)
        broken = true;
    if (broken) {
        tally_store_rollback(w->store);
        TALLY_METRIC_ADD(failed_batches, 1);
        /* Answers already rendered as applied must not go out: re-render as 503. */
        for (tally_job *job = batch; job; job = job->next)
            if (job->rc == 0)
                fail_job(job, TALLY_UNAVAILABLE, "the database could not commit this batch; nothing was applied, retry");
        applied = 0;
    } else {
        TALLY_METRIC_ADD(batches, 1);
        TALLY_METRIC_ADD(writes, applied);
        uint64_t prev = atomic_load_explicit(&tally_metrics_global.max_batch, memory_order_relaxed);
        while (n > prev && !atomic_compare_exchange_weak(&tally_metrics_global.max_batch, &prev, n))
            ;
    }
    TALLY_METRIC_ADD(write_errors, n - applied);
    for (tally_job *job = batch, *next; job; job = next) {
        next = job->next;
        job->complete(job); /* hands the job back; it is no longer ours */
    }
}

/* ---- interactive transactions ------------------------------------------------ */

/* Ends the session's transaction on the database and refuses whatever of it is still queued. */
static void end_session(tally_writer *w, tally_session *s, bool commit, tally_error *err, int *rc)
{
    *rc = 0;
    if (commit && tally_store_commit(w->store, err) != 0) {
        *rc = -(int)err->code;
        commit = false;
    }
    if (!commit)
        tally_store_rollback(w->store);
    else
        TALLY_METRIC_ADD(batches, 1);
}

/*
 * BEGIN waits for the running batch's COMMIT (the caller commits it first),
 * then owns the write connection: only this session's steps run until it
 * commits, rolls back, or its timeout passes.  Other writes wait in the queue.
 */
static void run_session(tally_writer *w, tally_job *begin)
{
    tally_session *s = begin->session;
    tally_error err;
    if (begin->deadline_ns && tally_clock_ns() > begin->deadline_ns) {
        tally_session_leave_waiting(s, TALLY_SESSION_DONE);
        fail_job(begin, TALLY_OVERLOADED, "begin waited in the queue past --queue-timeout; retry later");
        begin->complete(begin);
        return;
    }
    if (tally_session_leave_waiting(s, TALLY_SESSION_ACTIVE) != 0) { /* the client left meanwhile */
        begin->rc = 0;
        begin->render(begin);
        begin->complete(begin);
        return;
    }
    if (tally_store_begin(w->store, &err) != 0) {
        tally_session_finish(s, "failed");
        fail_job(begin, TALLY_UNAVAILABLE, "the database could not begin the transaction; retry");
        begin->complete(begin);
        return;
    }
    tally_session_ref(s); /* ours while the session is open */
    uint64_t deadline = tally_clock_ns() + s->timeout_ms * 1000000u;
    begin->rc = 0;
    begin->render(begin);
    begin->complete(begin);
    for (;;) {
        tally_job *job = tally_queue_pop_until(&w->session_queue, deadline);
        if (!job) { /* timeout: roll back, and tell the client */
            tally_session_finish(s, "timeout");
            tally_store_rollback(w->store);
            tally_job *event = tally_job_new(NULL);
            event->kind = TALLY_JOB_EVENT;
            event->session = s;
            tally_session_ref(s);
            event->origin = s->origin;
            event->complete = begin->complete;
            event->render = begin->render;
            event->render(event);
            event->complete(event);
            break;
        }
        int rc = 0;
        bool done = true;
        switch (job->kind) {
        case TALLY_JOB_STEP:
            s->plan->now_ms = tally_now_ms();
            job->rc = tally_run_plan_from(w->store, s->plan, job->from_step, &job->err);
            done = job->rc != 0; /* a failing step rolls the whole transaction back */
            if (done) {
                tally_session_finish(s, "a step failed");
                end_session(w, s, false, &err, &rc);
            }
            break;
        case TALLY_JOB_COMMIT:
            tally_session_finish(s, "committed");
            end_session(w, s, true, &err, &rc);
            if (rc) {
                job->rc = rc;
                job->err = err;
            }
            break;
        default: /* ROLLBACK */
            tally_session_finish(s, "rolled back");
            end_session(w, s, false, &err, &rc);
            break;
        }
        job->render(job);
        job->complete(job);
        if (done)
            break;
    }
    /* A job pushed while the session was ending (a rollback from a dropped
     * connection, a step racing the timeout) is answered, not left behind. */
    tally_job *late;
    while ((late = tally_queue_pop_until(&w->session_queue, 0)) != NULL) {
        fail_job(late, TALLY_CONFLICT, "the transaction has already ended; nothing of it was applied");
        late->complete(late);
    }
    tally_session_unref(s);
}

/* Runs popped jobs in order: plain writes as group-commit batches, a BEGIN as a session between them. */
static void run_jobs(tally_writer *w, tally_job *list)
{
    while (list) {
        tally_job *seg = list, *last = NULL;
        size_t n = 0;
        while (list && list->kind != TALLY_JOB_BEGIN) {
            last = list;
            list = list->next;
            n++;
        }
        if (last) {
            last->next = NULL;
            run_batch(w, seg, n);
        }
        if (list) {
            tally_job *begin = list;
            list = list->next;
            begin->next = NULL;
            run_session(w, begin);
        }
    }
}

static void *writer_main(void *arg)
{
    tally_writer *w = arg;
    size_t n;
    tally_job *batch;
    while ((batch = tally_queue_pop_batch(&w->queue, w->opt.batch_max, &n)) != NULL) {
        run_jobs(w, batch);
        if (tally_store_maybe_checkpoint(w->store))
            TALLY_METRIC_ADD(checkpoints, 1);
    }
    return NULL;
}

int tally_writer_start(tally_store *store, const tally_writer_options *opt, tally_writer **out, tally_error *err)
{
    tally_writer *w = calloc(1, sizeof *w);
    w->store = store;
    w->opt = *opt;
    if (!w->opt.batch_max)
        w->opt.batch_max = 256;
    if (!w->opt.queue_max)
        w->opt.queue_max = 10000;
    tally_queue_init(&w->queue, w->opt.queue_max);
    tally_queue_init(&w->session_queue, 16);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        tally_queue_destroy(&w->queue);
        tally_queue_destroy(&w->session_queue);
        free(w);
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot start the writer thread");
    }
    *out = w;
    return 0;
}

int tally_writer_submit(tally_writer *w, tally_job *job)
{
    job->enqueued_ns = tally_clock_ns();
    job->deadline_ns = w->opt.queue_timeout_ms ? job->enqueued_ns + w->opt.queue_timeout_ms * 1000000u : 0;
    if (tally_queue_push(&w->queue, job) != 0) {
        TALLY_METRIC_ADD(rejected, 1);
        return -TALLY_OVERLOADED;
    }
    return 0;
}

size_t tally_writer_queue_depth(tally_writer *w) { return tally_queue_depth(&w->queue); }

int tally_writer_session_push(tally_writer *w, tally_job *job)
{
    tally_session *s = job->session;
    /* Under the session's lock, so that the writer cannot end the session
     * between the check and the push and leave the job behind. */
    pthread_mutex_lock(&s->mu);
    int rc = s->state == TALLY_SESSION_ACTIVE && tally_queue_push(&w->session_queue, job) == 0 ? 0 : -1;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void tally_writer_stop(tally_writer *w)
{
    if (!w || w->stopped)
        return;
    w->stopped = true;
    tally_queue_close(&w->queue);
    pthread_join(w->thread, NULL);
}

void tally_writer_free(tally_writer *w)
{
    if (!w)
        return;
    tally_writer_stop(w);
    tally_queue_destroy(&w->queue);
    tally_queue_destroy(&w->session_queue);
    tally_store_close(w->store);
    free(w);
}
