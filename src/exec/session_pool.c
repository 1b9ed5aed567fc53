/*
 * session_pool.c — runner threads with their own connections; see
 * session_pool.h.
 *
 * Waiting BEGINs are a FIFO of their own, under the pool's mutex: a runner
 * that is free takes the head; a janitor thread answers the head 503 once
 * its deadline has passed.  Every BEGIN waits the same bound, so deadlines
 * grow along the FIFO and the janitor only ever looks at the head.
 */
#include "exec/session_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "exec/metrics.h"
#include "exec/queue.h"
#include "exec/session.h"
#include "exec/session_run.h"
#include "exec/thread.h"

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
    pthread_mutex_t mu;
    pthread_cond_t work;          /* a BEGIN arrived, or the pool is closing */
    pthread_cond_t janitor_wake;  /* the head changed, or the pool is closing */
    tally_job *head, *tail;       /* waiting BEGINs, linked by next; under mu */
    size_t waiting;               /* under mu */
    bool closed;                  /* under mu */
    atomic_size_t busy;           /* sessions waiting or running */
    runner *runners;
    int size, started;
    pthread_t janitor;
    bool janitor_started;
    bool stopped; /* touched only by the thread that starts and stops */
};

static tally_job *take_head(tally_session_pool *p)
{
    tally_job *j = p->head;
    if (j) {
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        j->next = NULL;
        p->waiting--;
        pthread_cond_signal(&p->janitor_wake);
    }
    return j;
}

static void *runner_main(void *arg)
{
    runner *r = arg;
    tally_session_pool *p = r->pool;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->closed)
            pthread_cond_wait(&p->work, &p->mu);
        tally_job *begin = take_head(p);
        pthread_mutex_unlock(&p->mu);
        if (!begin)
            return NULL; /* closed and drained */
        tally_error err;
        if (!r->store && tally_store_open(p->url, p->schema, &p->opt, &r->store, &err) != 0)
            r->store = NULL; /* tally_session_run answers the begin UNAVAILABLE; the next BEGIN tries again */
        tally_session_run(r->store, &r->calls, begin);
        atomic_fetch_sub(&p->busy, 1);
    }
}

static struct timespec abs_time(uint64_t mono_ns)
{
    /* tally_clock_ns is CLOCK_MONOTONIC; the condition variables use it too (see start). */
    return (struct timespec){.tv_sec = (time_t)(mono_ns / 1000000000u), .tv_nsec = (long)(mono_ns % 1000000000u)};
}

/* Answers the BEGINs that waited past their deadline for a free runner. */
static void *janitor_main(void *arg)
{
    tally_session_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->closed || p->head) {
        if (!p->head) {
            pthread_cond_wait(&p->janitor_wake, &p->mu);
            continue;
        }
        if (tally_clock_ns() < p->head->deadline_ns) {
            struct timespec ts = abs_time(p->head->deadline_ns);
            pthread_cond_timedwait(&p->janitor_wake, &p->mu, &ts);
            continue;
        }
        tally_job *late = take_head(p);
        pthread_mutex_unlock(&p->mu);
        /* tally_session_run refuses a BEGIN past its deadline, unapplied, and sends its end event. */
        TALLY_METRIC_ADD(rejected, 1);
        tally_session_run(NULL, NULL, late);
        atomic_fetch_sub(&p->busy, 1);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
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
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->work, &ca);
    pthread_cond_init(&p->janitor_wake, &ca);
    pthread_condattr_destroy(&ca);
    p->runners = calloc((size_t)p->size, sizeof *p->runners);
    for (int i = 0; i < p->size; i++) {
        p->runners[i].pool = p;
        tally_queue_init(&p->runners[i].calls, 16);
    }
    bool ok = tally_thread_start(&p->janitor, janitor_main, p) == 0;
    p->janitor_started = ok;
    for (int i = 0; ok && i < p->size; i++) {
        ok = tally_thread_start(&p->runners[i].thread, runner_main, &p->runners[i]) == 0;
        p->started += ok;
    }
    if (!ok) {
        tally_session_pool_free(p);
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot start the interactive transactions' threads");
    }
    *out = p;
    return 0;
}

int tally_session_pool_submit(tally_session_pool *p, tally_job *begin)
{
    begin->enqueued_ns = tally_clock_ns();
    begin->deadline_ns = begin->enqueued_ns + p->begin_wait_ms * 1000000u;
    begin->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->closed || p->waiting >= 10000) {
        pthread_mutex_unlock(&p->mu);
        return -TALLY_OVERLOADED;
    }
    atomic_fetch_add(&p->busy, 1);
    if (p->tail)
        p->tail->next = begin;
    else
        p->head = begin;
    p->tail = begin;
    p->waiting++;
    pthread_cond_signal(&p->work);
    pthread_cond_signal(&p->janitor_wake);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

size_t tally_session_pool_busy(tally_session_pool *p) { return atomic_load(&p->busy); }

void tally_session_pool_stop(tally_session_pool *p)
{
    if (!p || p->stopped)
        return;
    p->stopped = true;
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    pthread_cond_broadcast(&p->work);
    pthread_cond_broadcast(&p->janitor_wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->runners[i].thread, NULL);
    if (p->janitor_started)
        pthread_join(p->janitor, NULL);
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
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->janitor_wake);
    pthread_mutex_destroy(&p->mu);
    free(p->runners);
    free(p);
}
