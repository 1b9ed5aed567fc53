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

struct tally_writer {
    tally_store *store;
    tally_writer_options opt;
    tally_queue queue;
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

static void *writer_main(void *arg)
{
    tally_writer *w = arg;
    size_t n;
    tally_job *batch;
    while ((batch = tally_queue_pop_batch(&w->queue, w->opt.batch_max, &n)) != NULL) {
        run_batch(w, batch, n);
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
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        tally_queue_destroy(&w->queue);
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
    tally_store_close(w->store);
    free(w);
}
