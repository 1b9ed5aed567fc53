/* session.c — the shared state of an interactive transaction; see session.h. */
#include "exec/session.h"

#include <stdlib.h>

#include "exec/job.h"
#include "exec/queue.h"

tally_session *tally_session_new(const tally_schema *schema, uint64_t timeout_ms, void *origin)
{
    tally_session *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->mu, NULL);
    s->state = TALLY_SESSION_WAITING;
    s->timeout_ms = timeout_ms;
    s->origin = origin;
    s->plan = tally_plan_new(schema);
    s->plan->writes = true;
    return s;
}

void tally_session_ref(tally_session *s) { atomic_fetch_add(&s->refs, 1); }

void tally_session_unref(tally_session *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&s->mu);
    tally_plan_free(s->plan);
    free(s);
}

tally_session_state tally_session_get_state(tally_session *s)
{
    pthread_mutex_lock(&s->mu);
    tally_session_state st = s->state;
    pthread_mutex_unlock(&s->mu);
    return st;
}

int tally_session_leave_waiting(tally_session *s, tally_session_state to)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->state == TALLY_SESSION_WAITING ? 0 : -1;
    if (rc == 0)
        s->state = to;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int tally_session_activate(tally_session *s, struct tally_queue *calls)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->state == TALLY_SESSION_WAITING ? 0 : -1;
    if (rc == 0) {
        s->calls = calls;
        s->state = TALLY_SESSION_ACTIVE;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int tally_session_push(tally_job *job)
{
    tally_session *s = job->session;
    pthread_mutex_lock(&s->mu);
    int rc = s->state == TALLY_SESSION_ACTIVE && tally_queue_push(s->calls, job) == 0 ? 0 : -1;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

tally_session_state tally_session_finish(tally_session *s, const char *reason)
{
    pthread_mutex_lock(&s->mu);
    tally_session_state was = s->state;
    if (was == TALLY_SESSION_ACTIVE || was == TALLY_SESSION_WAITING) {
        s->state = TALLY_SESSION_DONE;
        s->end_reason = reason;
    }
    pthread_mutex_unlock(&s->mu);
    return was;
}
