/* queue.c — the bounded job queue; see queue.h. */
#include "exec/queue.h"

#include "exec/session.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t tally_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

tally_job *tally_job_new(tally_plan *plan)
{
    tally_job *job = calloc(1, sizeof *job);
    if (!job)
        abort();
    job->plan = plan;
    tally_error_clear(&job->err);
    return job;
}

void tally_job_free(tally_job *job)
{
    if (!job)
        return;
    tally_plan_free(job->plan);
    if (job->session)
        tally_session_unref(job->session);
    free(job->echo);
    free(job->body);
    if (job->idem) {
        free((char *)job->idem->method);
        free((char *)job->idem->path);
        free((char *)job->idem->key);
        free(job->idem);
    }
    free(job);
}

void tally_job_fail(tally_job *job, tally_code code, const char *msg)
{
    job->rc = tally_fail(&job->err, code, NULL, "%s", msg);
    job->render(job);
}

void tally_job_set_body(tally_job *job, int status, char *body, size_t len)
{
    free(job->body);
    job->status = status;
    job->body = body;
    job->body_len = len;
}

void tally_queue_init(tally_queue *q, size_t max)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t attr; /* timed waits count on the monotonic clock, as deadlines do */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &attr);
    pthread_condattr_destroy(&attr);
    q->max = max;
}

void tally_queue_destroy(tally_queue *q)
{
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

int tally_queue_push(tally_queue *q, tally_job *job)
{
    pthread_mutex_lock(&q->mu);
    if (q->closed || q->depth >= q->max) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    job->next = NULL;
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    q->depth++;
    bool wake = q->depth == 1; /* the consumer only sleeps on an empty queue */
    pthread_mutex_unlock(&q->mu);
    if (wake)
        pthread_cond_signal(&q->cv);
    return 0;
}

tally_job *tally_queue_pop_batch(tally_queue *q, size_t max, size_t *count)
{
    return tally_queue_pop_batch_until(q, max, 0, count);
}

tally_job *tally_queue_pop_batch_until(tally_queue *q, size_t max, uint64_t deadline_ns, size_t *count)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u), .tv_nsec = (long)(deadline_ns % 1000000000u)};
    pthread_mutex_lock(&q->mu);
    while (!q->head && !q->closed && !q->poked) {
        if (!deadline_ns)
            pthread_cond_wait(&q->cv, &q->mu);
        else if (tally_clock_ns() >= deadline_ns)
            break;
        else
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
    }
    tally_job *first = q->head, *last = NULL;
    size_t n = 0;
    for (tally_job *j = q->head; j && n < max; j = j->next) {
        last = j;
        n++;
    }
    if (last) {
        q->head = last->next;
        if (!q->head)
            q->tail = NULL;
        last->next = NULL;
        q->depth -= n;
    }
    bool open = !q->closed, poked = q->poked;
    q->poked = false;
    pthread_mutex_unlock(&q->mu);
    *count = n;
    if (!n && open && (deadline_ns || poked))
        *count = (size_t)-1; /* timed out (or poked), still open */
    return n ? first : NULL;
}

void tally_queue_poke(tally_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->poked = true;
    pthread_mutex_unlock(&q->mu);
    pthread_cond_signal(&q->cv);
}

tally_job *tally_queue_pop_until(tally_queue *q, uint64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u), .tv_nsec = (long)(deadline_ns % 1000000000u)};
    pthread_mutex_lock(&q->mu);
    while (!q->head && tally_clock_ns() < deadline_ns)
        pthread_cond_timedwait(&q->cv, &q->mu, &ts);
    tally_job *job = q->head;
    if (job) {
        q->head = job->next;
        if (!q->head)
            q->tail = NULL;
        job->next = NULL;
        q->depth--;
    }
    pthread_mutex_unlock(&q->mu);
    return job;
}

void tally_queue_close(tally_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    pthread_mutex_unlock(&q->mu);
    pthread_cond_broadcast(&q->cv);
}

size_t tally_queue_depth(tally_queue *q)
{
    pthread_mutex_lock(&q->mu);
    size_t d = q->depth;
    pthread_mutex_unlock(&q->mu);
    return d;
}
