/* reader.c — in-place point reads and the reader thread for scans; see reader.h. */
#include "exec/reader.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/datetime.h"
#include "exec/metrics.h"
#include "exec/queue.h"
#include "exec/run.h"
#include "exec/thread.h"

#define READER_BATCH 64

typedef struct reader_thread {
    struct tally_reader *r;
    tally_store *store; /* owned */
    pthread_t thread;
} reader_thread;

struct tally_reader {
    tally_queue queue; /* shared by every thread: whichever is free takes the next reads */
    reader_thread *threads;
    int n, started;
    bool stopped; /* touched only by the thread that starts and stops */
};

void tally_read_here(tally_store *store, tally_job *job)
{
    if (!job->plan->now_ms) /* the clock reads judge leases by */
        job->plan->now_ms = tally_now_ms();
    job->rc = tally_run_plan(store, job->plan, &job->err);
    job->render(job);
    TALLY_METRIC_ADD(reads, 1);
}

static void *reader_main(void *arg)
{
    reader_thread *t = arg;
    size_t n;
    tally_job *batch;
    /* With several threads, each takes a few reads at a time so that the others get some. */
    size_t most = t->r->n > 1 ? 4 : READER_BATCH;
    while ((batch = tally_queue_pop_batch(&t->r->queue, most, &n)) != NULL)
        for (tally_job *job = batch, *next; job; job = next) {
            next = job->next;
            tally_read_here(t->store, job);
            job->complete(job);
        }
    return NULL;
}

int tally_reader_start(tally_store **stores, int n, size_t queue_max, tally_reader **out, tally_error *err)
{
    tally_reader *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->n = n;
    r->threads = calloc((size_t)n, sizeof *r->threads);
    tally_queue_init(&r->queue, queue_max ? queue_max : 10000);
    for (int i = 0; i < n; i++) {
        r->threads[i].r = r;
        r->threads[i].store = stores[i];
    }
    for (int i = 0; i < n; i++) {
        if (tally_thread_start(&r->threads[i].thread, reader_main, &r->threads[i]) != 0) {
            tally_reader_free(r);
            return tally_fail(err, TALLY_INTERNAL, NULL, "cannot start the reader threads");
        }
        r->started++;
    }
    *out = r;
    return 0;
}

int tally_reader_submit(tally_reader *r, tally_job *job)
{
    job->enqueued_ns = tally_clock_ns();
    return tally_queue_push(&r->queue, job) == 0 ? 0 : -TALLY_OVERLOADED;
}

size_t tally_reader_queue_depth(tally_reader *r) { return tally_queue_depth(&r->queue); }

void tally_reader_stop(tally_reader *r)
{
    if (!r || r->stopped)
        return;
    r->stopped = true;
    tally_queue_close(&r->queue);
    for (int i = 0; i < r->started; i++)
        pthread_join(r->threads[i].thread, NULL);
}

void tally_reader_free(tally_reader *r)
{
    if (!r)
        return;
    tally_reader_stop(r);
    tally_queue_destroy(&r->queue);
    for (int i = 0; i < r->n; i++)
        tally_store_close(r->threads[i].store);
    free(r->threads);
    free(r);
}
