/* lock_waits.c — parked lock acquires, per name, first come first served; see lock_waits.h. */
#include "exec/lock_waits.h"

#include <stdlib.h>
#include <string.h>

#include "exec/metrics.h"

struct tally_lock_line {
    char *name;
    size_t len;
    int64_t lease_ends_ms; /* the holder's expiry as last seen; INT64_MAX while a woken waiter retries */
    uint64_t tried_ns;     /* when the first waiter last tried (monotonic), for polling */
    tally_job *head, *tail;
};

const tally_step *tally_lock_acquire_step(const tally_job *job)
{
    if (job->kind != TALLY_JOB_NORMAL || !job->plan || job->plan->nsteps != 1 || job->plan->txn)
        return NULL;
    const tally_step *s = &job->plan->steps[0];
    return s->op == TALLY_OP_LOCK_ACQUIRE ? s : NULL;
}

static tally_lock_line *line_for(const tally_lock_waits *lw, const char *name, size_t len)
{
    for (int i = 0; i < lw->n; i++)
        if (lw->lines[i].len == len && memcmp(lw->lines[i].name, name, len) == 0)
            return &lw->lines[i];
    return NULL;
}

static void drop_line(tally_lock_waits *lw, tally_lock_line *l)
{
    free(l->name);
    *l = lw->lines[--lw->n];
}

/* Takes the first waiter out of line, to run again; drops the line when it empties. */
static tally_job *take_first(tally_lock_waits *lw, tally_lock_line *l)
{
    tally_job *job = l->head;
    l->head = job->next;
    if (!l->head)
        l->tail = NULL;
    job->next = NULL;
    job->woken = true;
    l->lease_ends_ms = INT64_MAX; /* unknown until the woken waiter has tried */
    if (!l->head)
        drop_line(lw, l);
    return job;
}

bool tally_lock_waits_any(const tally_lock_waits *lw) { return lw->n > 0; }

bool tally_lock_waits_has(const tally_lock_waits *lw, const char *name, size_t len)
{
    return line_for(lw, name, len) != NULL;
}

void tally_lock_waits_park(tally_lock_waits *lw, tally_job *job, int64_t lease_ends_ms)
{
    const tally_step *s = tally_lock_acquire_step(job);
    tally_lock_line *l = line_for(lw, s->name, s->name_len);
    if (!l) {
        if (lw->n == lw->cap) {
            lw->cap = lw->cap ? lw->cap * 2 : 8;
            lw->lines = realloc(lw->lines, (size_t)lw->cap * sizeof *lw->lines);
            if (!lw->lines)
                abort();
        }
        l = &lw->lines[lw->n++];
        memset(l, 0, sizeof *l);
        l->name = malloc(s->name_len);
        memcpy(l->name, s->name, s->name_len);
        l->len = s->name_len;
        l->lease_ends_ms = INT64_MAX;
    }
    if (lease_ends_ms)
        l->lease_ends_ms = lease_ends_ms;
    if (job->woken || !l->tried_ns)
        l->tried_ns = tally_clock_ns();
    if (!job->woken) /* a first wait; a woken waiter parked again is the same wait */
        TALLY_METRIC_ADD(lock_waits, 1);
    if (job->woken) { /* it was first in line: it stays first */
        job->next = l->head;
        l->head = job;
        if (!l->tail)
            l->tail = job;
    } else {
        job->next = NULL;
        if (l->tail)
            l->tail->next = job;
        else
            l->head = job;
        l->tail = job;
    }
}

tally_job *tally_lock_waits_find_key(const tally_lock_waits *lw, const tally_idem_key *k)
{
    for (int i = 0; i < lw->n; i++)
        for (tally_job *j = lw->lines[i].head; j; j = j->next)
            if (j->idem && strcmp(j->idem->key, k->key) == 0 && strcmp(j->idem->method, k->method) == 0 &&
                strcmp(j->idem->path, k->path) == 0)
                return j;
    return NULL;
}

void tally_lock_waits_leased(tally_lock_waits *lw, const char *name, size_t len, int64_t lease_ends_ms)
{
    tally_lock_line *l = line_for(lw, name, len);
    if (l)
        l->lease_ends_ms = lease_ends_ms;
}

tally_job *tally_lock_waits_released(tally_lock_waits *lw, const char *name, size_t len)
{
    tally_lock_line *l = line_for(lw, name, len);
    return l ? take_first(lw, l) : NULL;
}

uint64_t tally_lock_waits_tend(tally_lock_waits *lw, uint64_t now_ns, int64_t now_ms, tally_job **expired,
                               tally_job **wake)
{
    uint64_t next_due = 0;
    for (int i = 0; i < lw->n;) {
        tally_lock_line *l = &lw->lines[i];
        l->tail = NULL;
        for (tally_job **pp = &l->head; *pp;) {
            tally_job *j = *pp;
            if (j->wait_until_ns <= now_ns) { /* ran out: LOCKED, with the lease it waited behind */
                tally_plan_prepare_results(j->plan); /* a job parked behind others never ran */
                j->plan->results[0].expires_at = l->lease_ends_ms == INT64_MAX ? 0 : l->lease_ends_ms;
                *pp = j->next;
                j->next = *expired;
                *expired = j;
                continue;
            }
            if (!next_due || j->wait_until_ns < next_due)
                next_due = j->wait_until_ns;
            l->tail = j;
            pp = &j->next;
        }
        if (!l->head) {
            drop_line(lw, l); /* the last line moved here: look at index i again */
            continue;
        }
        /* The first in line tries again when the holder's lease has ended, or,
         * on a database other servers share, every poll_ns: a release there
         * is not seen here. */
        bool poll = lw->poll_ns && now_ns >= l->tried_ns + lw->poll_ns;
        if (l->lease_ends_ms <= now_ms || poll) {
            bool last = l->head->next == NULL;
            tally_job *first = take_first(lw, l);
            first->next = *wake;
            *wake = first;
            if (last)
                continue; /* the line was dropped */
        } else {
            if (l->lease_ends_ms != INT64_MAX) {
                uint64_t due = now_ns + (uint64_t)(l->lease_ends_ms - now_ms) * 1000000u;
                if (!next_due || due < next_due)
                    next_due = due;
            }
            if (lw->poll_ns && (!next_due || l->tried_ns + lw->poll_ns < next_due))
                next_due = l->tried_ns + lw->poll_ns;
        }
        i++;
    }
    return next_due;
}

void tally_lock_waits_expire_all(tally_lock_waits *lw)
{
    for (int i = 0; i < lw->n; i++)
        for (tally_job *j = lw->lines[i].head; j; j = j->next)
            j->wait_until_ns = 1;
}

void tally_lock_waits_free(tally_lock_waits *lw)
{
    for (int i = 0; i < lw->n; i++)
        free(lw->lines[i].name);
    free(lw->lines);
    lw->lines = NULL;
    lw->n = lw->cap = 0;
}
