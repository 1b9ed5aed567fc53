/* session_pool.c — runner threads with their own connections; see session_pool.h. */
#include "exec/session_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "exec/queue.h"
#include "exec/session.h"
#include "exec/session_run.h"

typedef struct runner {
    tally_session_pool *pool;
    pthread_t thread;
    tally_store *store; /* opened on the first BEGIN; owned */
    tally_queue calls;  /* the running session's steps, commit and rollback */
} runner;

struct tally_session_pool {
    const char *url;
    const tally_schema *schema;
    tally_store_options opt;
    uint64_t begin_wait_ms;
    tally_queue begins; /* BEGIN jobs waiting for a free runner */
    atomic_size_t busy;
    runner *runners;
    int size, started;
    bool stopped; /* touched only by the thread that starts and stops */
};

static void *runner_main(void *arg)
{
    runner *r = arg;
    tally_session_pool *p = r->pool;
    tally_job *begin;
    size_t n;
    while ((begin = tally_queue_pop_batch(&p->begins, 1, &n)) != NULL) {
        tally_error err;
        if (!r->store && tally_store_open(p->url, p->schema, &p->opt, &r->store, &err) != 0)
            r->store = NULL; /* tally_session_run answers the begin UNAVAILABLE; the next BEGIN tries again */
        tally_session_run(r->store, &r->calls, begin);
        atomic_fetch_sub(&p->busy, 1);
    }
    return NULL;
}

int tally_session_pool_start(const char *url, const tally_schema *schema, const tally_store_options *opt, int size,
                             uint64_t begin_wait_ms, tally_session_pool **out, tally_error *err)
{
    tally_session_pool *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->url = url;
    p->schema = schema;
    p->opt = *opt;
    p->opt.role = TALLY_STORE_SESSION;
    p->begin_wait_ms = begin_wait_ms;
    p->size = size > 0 ? size : 1;
    tally_queue_init(&p->begins, 10000);
    p->runners = calloc((size_t)p->size, sizeof *p->runners);
    for (int i = 0; i < p->size; i++) {
        runner *r = &p->runners[i];
        r->pool = p;
        tally_queue_init(&r->calls, 16);
        if (pthread_create(&r->thread, NULL, runner_main, r) != 0) {
            tally_session_pool_stop(p);
            tally_session_pool_free(p);
            return tally_fail(err, TALLY_INTERNAL, NULL, "cannot start the interactive transactions' threads");
        }
        p->started++;
    }
    *out = p;
    return 0;
}

int tally_session_pool_submit(tally_session_pool *p, tally_job *begin)
{
    begin->enqueued_ns = tally_clock_ns();
    begin->deadline_ns = begin->enqueued_ns + p->begin_wait_ms * 1000000u;
    atomic_fetch_add(&p->busy, 1);
    if (tally_queue_push(&p->begins, begin) != 0) {
        atomic_fetch_sub(&p->busy, 1);
        return -TALLY_OVERLOADED;
    }
    return 0;
}

size_t tally_session_pool_busy(tally_session_pool *p) { return atomic_load(&p->busy); }

void tally_session_pool_stop(tally_session_pool *p)
{
    if (!p || p->stopped)
        return;
    p->stopped = true;
    tally_queue_close(&p->begins);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->runners[i].thread, NULL);
}

void tally_session_pool_free(tally_session_pool *p)
{
    if (!p)
        return;
    tally_session_pool_stop(p);
    for (int i = 0; i < p->size; i++) {
        tally_store_close(p->runners[i].store);
        tally_queue_destroy(&p->runners[i].calls);
    }
    tally_queue_destroy(&p->begins);
    free(p->runners);
    free(p);
}
