/*
 * writer.c — group commit: one transaction per batch of waiting writes, one
 * savepoint per write, answers rendered before COMMIT and released after it.
 * See writer.h for the contract.
 */
#include "exec/writer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/datetime.h"
#include "exec/coalesce.h"
#include "exec/lock_waits.h"
#include "exec/metrics.h"
#include "exec/queue.h"
#include "exec/run.h"
#include "exec/session.h"
#include "exec/session_run.h"
#include "exec/thread.h"

#define WRITER_RERUNS 5 /* runs of a job the database asked to run again, after the first */

struct tally_writer {
    tally_store *store;
    tally_lock_waits waits; /* parked lock acquires (writer thread only) */
    uint64_t last_sweep_ns;
    tally_writer_options opt;
    tally_queue queue;         /* writes and BEGINs, in arrival order */
    tally_queue session_queue; /* steps, commit and rollback of the open interactive transaction */
    pthread_t thread;
    bool stopped; /* touched only by the thread that starts and stops */
    atomic_uint_least64_t lane_batches, lane_writes; /* this lane's share of the global counters */
    tally_job *delayed;        /* writer thread only: jobs to run again at their retry_at_ns (lock waits) */
    pthread_mutex_t hint_mu;   /* guards hinted */
    tally_buf hinted;          /* lock names released elsewhere, each a 2-byte length then the bytes */
    /* The database as this lane last found it: down since a batch or a probe
     * failed to reach it, up again after a commit or a probe succeeds. */
    pthread_mutex_t health_mu;
    bool down;                 /* under health_mu */
    char down_reason[sizeof ((tally_error *)0)->message]; /* under health_mu */
    tally_db_state db_state;   /* under health_mu: what the last probe found */
    uint64_t last_contact_ns;  /* writer thread only: the last commit or probe */
    uint64_t probe_every_ns;   /* writer thread only: grows while down (backoff) */
};

#define PROBE_IDLE_NS (1000u * 1000000u)    /* an idle lane looks at its database once a second */
#define PROBE_DOWN_MIN_NS (100u * 1000000u) /* while down: 100 ms, doubling up to 2 s */
#define PROBE_DOWN_MAX_NS (2000u * 1000000u)

/* Records what the lane found: err NULL for "the database answered". */
static void note_health(tally_writer *w, const tally_error *err)
{
    w->last_contact_ns = tally_clock_ns();
    pthread_mutex_lock(&w->health_mu);
    bool was_down = w->down;
    w->down = err != NULL;
    if (err)
        snprintf(w->down_reason, sizeof w->down_reason, "%s", err->message);
    pthread_mutex_unlock(&w->health_mu);
    if (!err)
        w->probe_every_ns = PROBE_IDLE_NS;
    else if (!was_down)
        w->probe_every_ns = PROBE_DOWN_MIN_NS;
    else if (w->probe_every_ns < PROBE_DOWN_MAX_NS)
        w->probe_every_ns *= 2;
}

/* When the lane should look at its database next (monotonic ns; 0: never). */
static uint64_t probe_due(const tally_writer *w)
{
    return w->store->ops->probe ? w->last_contact_ns + w->probe_every_ns : 0;
}

static void maybe_probe(tally_writer *w)
{
    if (!w->store->ops->probe || tally_clock_ns() < probe_due(w))
        return;
    tally_error err;
    tally_db_state state = {.sync_standbys = -1};
    int rc = w->store->ops->probe(w->store, &state, &err);
    if (rc == 0) {
        pthread_mutex_lock(&w->health_mu);
        w->db_state = state;
        pthread_mutex_unlock(&w->health_mu);
    }
    note_health(w, rc == 0 ? NULL : &err);
}

/* ---- lock waits ------------------------------------------------------------------ */

/* ---- one job -------------------------------------------------------------------- */

/* 2xx and 4xx answers are stored, except "try again later" ones; 5xx never. */
static bool storable(const tally_job *job)
{
    if (job->status >= 500 || job->status < 200)
        return false;
    return !(job->rc == -TALLY_RATE_LIMITED || job->rc == -TALLY_LOCKED || job->rc == -TALLY_OVERLOADED);
}

/* JOB_AGAIN: the database gave up on the job for a reason a later run may
 * cure (a deadlock, a serialization failure, a lock wait past lock_timeout:
 * another lane, server or open transaction holds a row it needs).  It is
 * rolled back to its savepoint and runs again in the next batch, after this
 * one's COMMIT has released every lock the batch held. */
typedef enum { JOB_DONE, JOB_PARKED, JOB_AGAIN, JOB_BROKEN } job_outcome;

static void count_rerun(tally_job *job, tally_rerun why);

/* Undoes the job back to its savepoint and gives it back to run again (JOB_AGAIN). */
static job_outcome give_back(tally_writer *w, tally_job *job, tally_rerun why)
{
    tally_error err;
    if (!tally_store_in_transaction(w->store) || tally_store_rollback_to(w->store, &err) ||
        tally_store_release(w->store, &err))
        return JOB_BROKEN;
    count_rerun(job, why);
    return JOB_AGAIN;
}

/* Whether the database's reason lets the job run again: a lock wait always
 * may (until --queue-timeout refuses it), a conflict WRITER_RERUNS times. */
static bool may_run_again(const tally_job *job, tally_rerun why)
{
    return why == TALLY_RERUN_WAIT || (why == TALLY_RERUN_CONFLICT && job->reruns < WRITER_RERUNS);
}

/* Counts the job's re-run: a conflict against WRITER_RERUNS; a lock wait
 * sets when it may try again (100 ms, doubling to 1 s), so that a row held
 * for long (an open interactive transaction) costs its lane one lock_timeout
 * now and then, not every batch. */
static void count_rerun(tally_job *job, tally_rerun why)
{
    if (why == TALLY_RERUN_WAIT) {
        uint64_t delay = 100u * 1000000u << (job->lock_waits < 4 ? job->lock_waits : 4);
        job->lock_waits++;
        job->retry_at_ns = tally_clock_ns() + (delay < 1000u * 1000000u ? delay : 1000u * 1000000u);
    } else {
        job->reruns++;
        job->retry_at_ns = 0;
    }
}

/*
 * Runs one job inside its own savepoint and renders its answer (before
 * COMMIT).  With an Idempotency-Key the stored answer is replayed instead,
 * or the new answer is stored in the same savepoint (after ROLLBACK TO for a
 * failed request), so the write and its record stand or fall together.
 * JOB_BROKEN: the database ended the batch's transaction.
 */
static job_outcome run_job(tally_writer *w, tally_job *job)
{
    tally_error err;
    const tally_step *acq = tally_lock_acquire_step(job);
    if (job->idem) {
        tally_idem_answer a = {0};
        int found = tally_store_idem_get(w->store, job->idem, &a, &err);
        if (found < 0) {
            job->rc = -(int)err.code;
            job->err = err;
            return tally_store_in_transaction(w->store) ? (job->render(job), JOB_DONE) : JOB_BROKEN;
        }
        if (found && a.same_body) { /* a repeat: the first answer again, nothing changes */
            tally_job_set_body(job, a.status, a.body, a.len);
            job->rc = 0;
            job->replayed = true;
            return JOB_DONE;
        }
        free(a.body);
        if (found) {
            job->rc = tally_fail(&job->err, TALLY_IDEMPOTENCY_MISMATCH, NULL,
                                 "this Idempotency-Key was used for a request with another body; use a new key for a "
                                 "new request");
            job->render(job);
            return JOB_DONE;
        }
        tally_job *first = tally_lock_waits_find_key(&w->waits, job->idem);
        if (first) { /* the first is still in flight (waiting for a lock): wait for it */
            job->next = first->dups;
            first->dups = job;
            return JOB_PARKED;
        }
    }
    if (acq && job->wait_until_ns && !job->woken) { /* first come, first served behind earlier waiters */
        if (tally_lock_waits_has(&w->waits, acq->name, acq->name_len)) {
            tally_lock_waits_park(&w->waits, job, 0);
            return JOB_PARKED;
        }
    }
    if (tally_store_savepoint(w->store, &err)) {
        job->rc = -(int)err.code;
        job->err = err;
        return JOB_BROKEN;
    }
    job->rc = tally_run_plan(w->store, job->plan, &job->err);
    if (job->rc == -TALLY_RATE_LIMITED)
        TALLY_METRIC_ADD(limit_refusals, 1);
    if (job->rc != 0 && may_run_again(job, job->err.rerun))
        return give_back(w, job, job->err.rerun);
    if (job->rc != 0) {
        if (!tally_store_in_transaction(w->store) || tally_store_rollback_to(w->store, &err))
            return JOB_BROKEN;
        if (acq && job->rc == -TALLY_LOCKED && job->wait_until_ns > tally_clock_ns()) {
            tally_store_release(w->store, &err);
            tally_lock_waits_park(&w->waits, job, job->plan->results[0].expires_at);
            return JOB_PARKED;
        }
    }
    job->render(job);
    if (job->idem && storable(job) &&
        tally_store_idem_put(w->store, job->idem, job->status, job->body, job->body_len, job->plan->now_ms, &err)) {
        if (!tally_store_in_transaction(w->store))
            return JOB_BROKEN;
        /* Another server stored an answer for this key meanwhile (its COMMIT
         * ended our wait on the key): undo ours and run again in the next
         * batch, which finds that answer and replays it. */
        if (may_run_again(job, err.rerun))
            return give_back(w, job, err.rerun);
        job->rc = -(int)err.code; /* could not record it: do not apply it either */
        job->err = err;
        tally_store_rollback_to(w->store, &err);
        job->render(job);
    }
    return tally_store_release(w->store, &err) ? JOB_BROKEN : JOB_DONE;
}

/* A queued write that waited past --queue-timeout is refused unapplied (not one run again or woken). */
static bool past_deadline(const tally_job *job, uint64_t now_ns)
{
    return job->deadline_ns && now_ns > job->deadline_ns && !job->woken && !job->reruns;
}

/*
 * Runs job, and with it the jobs after it (from `next` on) that may join its
 * run of increments to one row (coalesce.h): one statement by their sum.
 * Those are given their outcome as job->preset, to be placed as the batch
 * loop reaches them.  A total the database refuses leaves each to run alone.
 */
static job_outcome run_first(tally_writer *w, tally_job *job, tally_job *next, uint64_t now_ns)
{
    tally_job *run[TALLY_COALESCE_MAX];
    int n = 0;
    if (tally_coalesce_eligible(job)) {
        run[n++] = job;
        for (tally_job *j = next; j && n < TALLY_COALESCE_MAX && !past_deadline(j, now_ns) &&
                                  tally_coalesce_eligible(j) && tally_coalesce_joins(job, j);
             j = j->next)
            run[n++] = j;
    }
    tally_atomic saved[n > 1 ? job->plan->steps[0].natomics : 1];
    if (n < 2 || !tally_coalesce_sum(run, n, saved))
        return run_job(w, job);
    for (int k = 1; k < n; k++)
        run[k]->plan->now_ms = job->plan->now_ms;
    tally_error err;
    if (tally_store_savepoint(w->store, &err)) {
        tally_coalesce_restore(job, saved);
        job->rc = -(int)err.code;
        job->err = err;
        return JOB_BROKEN;
    }
    job->rc = tally_run_plan(w->store, job->plan, &job->err);
    tally_coalesce_restore(job, saved);
    if (job->rc == 0 && job->plan->steps[0].model->changes && w->store->ops->feed_merge) {
        /* the one change the statement logged stands for each write of the run */
        tally_buf merged;
        tally_buf_init(&merged);
        tally_coalesce_describe(run, n, &merged);
        job->rc = w->store->ops->feed_merge(w->store, job->plan->steps[0].model, job->plan->steps[0].id.u.i, n,
                                            merged.s, &job->err);
        tally_buf_free(&merged);
    }
    if (job->rc != 0) {
        if (!tally_store_in_transaction(w->store) || tally_store_rollback_to(w->store, &err) ||
            tally_store_release(w->store, &err))
            return JOB_BROKEN;
        tally_rerun why = job->err.rerun;
        if (may_run_again(job, why)) { /* the row was held elsewhere, or a conflict: the whole run later */
            for (int k = 0; k < n; k++) {
                count_rerun(run[k], why);
                if (k > 0)
                    run[k]->preset = 1 + JOB_AGAIN;
            }
            return JOB_AGAIN;
        }
        /* The total crossed a bound (or the record is gone): each alone, with its own verdict. */
        job->rc = 0;
        tally_error_clear(&job->err);
        return run_job(w, job);
    }
    if (tally_store_release(w->store, &err))
        return JOB_BROKEN;
    tally_coalesce_spread(run, n);
    for (int k = 0; k < n; k++) {
        run[k]->rc = 0;
        run[k]->render(run[k]);
        if (k > 0)
            run[k]->preset = 1 + JOB_DONE;
    }
    TALLY_METRIC_ADD(coalesced_writes, (uint64_t)n);
    return JOB_DONE;
}

/* Lock changes of a committed batch: grants and renewals move the lease the
 * waiters watch; a release lets the first waiter of its name run next. */
static void note_lock_changes(tally_writer *w, const tally_job *job, tally_job **wake)
{
    if (job->rc != 0 || job->kind != TALLY_JOB_NORMAL || !job->plan || job->replayed)
        return; /* a replayed answer ran nothing */
    for (int i = 0; w->opt.on_release && i < job->plan->nsteps; i++)
        if (job->plan->steps[i].op == TALLY_OP_LOCK_RELEASE)
            w->opt.on_release(w->opt.release_ctx, job->plan->steps[i].name, job->plan->steps[i].name_len);
    if (!tally_lock_waits_any(&w->waits))
        return;
    for (int i = 0; i < job->plan->nsteps; i++) {
        const tally_step *s = &job->plan->steps[i];
        if (s->op == TALLY_OP_LOCK_ACQUIRE || s->op == TALLY_OP_LOCK_RENEW) {
            tally_lock_waits_leased(&w->waits, s->name, s->name_len, job->plan->results[i].expires_at);
        } else if (s->op == TALLY_OP_LOCK_RELEASE) {
            tally_job *first = tally_lock_waits_released(&w->waits, s->name, s->name_len);
            if (first) {
                first->next = *wake;
                *wake = first;
            }
        }
    }
}

static void run_jobs(tally_writer *w, tally_job *list);

static void run_batch(tally_writer *w, tally_job *batch, size_t n)
{
    uint64_t now_ns = tally_clock_ns();
    int64_t now_ms = tally_now_ms();
    tally_error err;
    tally_error_clear(&err);
    bool broken = tally_store_begin(w->store, &err) != 0;
    /* Leases and limits go by the database's clock where servers share it. */
    if (!broken && w->store->ops->clock_ms && w->store->ops->clock_ms(w->store, &now_ms, &err) != 0)
        broken = true;
    size_t applied = 0;
    tally_job *done = NULL, **done_tail = &done; /* jobs to answer, in order; parked ones leave the batch */
    tally_job *again = NULL, **again_tail = &again; /* jobs for the next batch, in order */
    for (tally_job *job = batch, *next; job; job = next) {
        next = job->next;
        job->next = NULL;
        if (broken) {
            job->preset = 0;
            tally_job_fail(job, TALLY_UNAVAILABLE, "the database could not complete this batch; nothing was applied, retry");
        } else if (!job->preset && past_deadline(job, now_ns)) {
            TALLY_METRIC_ADD(rejected, 1);
            tally_job_fail(job, TALLY_OVERLOADED,
                     "the write waited in the queue past --queue-timeout and was not applied; retry later");
        } else {
            job->plan->now_ms = now_ms;
            job_outcome o = job->preset ? (job_outcome)(job->preset - 1) : run_first(w, job, next, now_ns);
            job->preset = 0;
            if (o == JOB_PARKED) {
                n--;
                continue;
            }
            if (o == JOB_AGAIN) {
                n--;
                if (job->retry_at_ns) { /* a lock wait: later, when its delay has passed */
                    job->next = w->delayed;
                    w->delayed = job;
                } else {
                    *again_tail = job;
                    again_tail = &job->next;
                }
                continue;
            }
            if (o == JOB_BROKEN) {
                broken = true;
                err = job->err; /* why the database ended the batch, for /health */
                tally_job_fail(job, TALLY_UNAVAILABLE, "the database could not complete this batch; nothing was applied, retry");
            } else if (job->rc == 0) {
                applied++;
            }
        }
        *done_tail = job;
        done_tail = &job->next;
    }
    bool commit_failed = false;
    if (!broken && tally_store_commit(w->store, &err) != 0)
        broken = commit_failed = true;
    tally_job *wake = NULL;
    if (broken && err.code == TALLY_UNAVAILABLE)
        note_health(w, &err); /* the database could not be reached or gave up: /health says so */
    else if (!broken)
        note_health(w, NULL);
    if (broken) {
        tally_store_rollback(w->store);
        TALLY_METRIC_ADD(failed_batches, 1);
        /* Answers already rendered as applied must not go out: re-render as
         * 503, in the store's words when COMMIT itself failed (a connection
         * lost during COMMIT may leave the outcome unknown, and says so). */
        for (tally_job *job = done; job; job = job->next)
            if (job->rc == 0)
                tally_job_fail(job, TALLY_UNAVAILABLE, commit_failed && err.message[0] ? err.message
                               : "the database could not commit this batch; nothing was applied, retry");
        applied = 0;
    } else {
        tally_metrics_batch(n); /* tally_batches_total and the batch-size histogram */
        TALLY_METRIC_ADD(writes, applied);
        atomic_fetch_add_explicit(&w->lane_batches, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->lane_writes, applied, memory_order_relaxed);
        uint64_t prev = atomic_load_explicit(&tally_metrics_global.max_batch, memory_order_relaxed);
        while (n > prev && !atomic_compare_exchange_weak(&tally_metrics_global.max_batch, &prev, n))
            ;
        for (tally_job *job = done; job; job = job->next)
            note_lock_changes(w, job, &wake);
        if (applied && w->opt.on_commit)
            w->opt.on_commit(w->opt.commit_ctx);
    }
    TALLY_METRIC_ADD(write_errors, n - applied);
    tally_job *dups = NULL;
    for (tally_job *job = done, *next; job; job = next) {
        next = job->next;
        if (job->dups) { /* repeats that waited for this one run now, and find its stored answer */
            tally_job *d = job->dups;
            while (d->next)
                d = d->next;
            d->next = dups;
            dups = job->dups;
            job->dups = NULL;
        }
        job->complete(job); /* hands the job back; it is no longer ours */
    }
    if (dups) {
        tally_job *d = dups;
        while (d->next)
            d = d->next;
        d->next = wake;
        wake = dups;
    }
    if (again) { /* first in the next batch, in their order */
        *again_tail = wake;
        wake = again;
    }
    if (wake)
        run_jobs(w, wake);
}

/* Between batches: wakes waiters whose holder's lease has ended, answers those
 * whose waitMs has passed, and returns when the next of these is due (0: none). */
static uint64_t tend_waiters(tally_writer *w)
{
    tally_job *wake = NULL, *expired = NULL;
    uint64_t next_due = tally_lock_waits_tend(&w->waits, tally_clock_ns(), tally_now_ms(), &expired, &wake);
    for (tally_job *j = expired, *next; j; j = next) {
        next = j->next;
        j->next = NULL;
        j->rc = tally_fail(&j->err, TALLY_LOCKED, NULL, "lock '%.*s' is still held after waiting waitMs; see expiresAt",
                           (int)j->plan->steps[0].name_len, j->plan->steps[0].name);
        j->plan->failed_step = 0;
        j->render(j);
        tally_job *dups = j->dups;
        j->dups = NULL;
        j->complete(j);
        if (dups) { /* repeats of a refused first run themselves */
            tally_job *d = dups;
            while (d->next)
                d = d->next;
            d->next = wake;
            wake = dups;
        }
    }
    if (wake) {
        run_jobs(w, wake);
        return tally_clock_ns(); /* look again at once */
    }
    return next_due;
}

/*
 * Runs popped jobs: plain writes as group-commit batches, each BEGIN as a
 * session of its own.  Writes go ahead of the BEGINs waiting with them, and
 * after each session the writes that arrived meanwhile run before the next
 * BEGIN: a write waits for at most the one transaction open when it came,
 * never for a queue of them, so that one client's interactive transactions
 * can delay but never fail another's writes (--queue-timeout is above the
 * longest transaction).  BEGINs keep their order among themselves.
 */
static void run_jobs(tally_writer *w, tally_job *list)
{
    tally_job *begins = NULL, **btail = &begins;
    for (;;) {
        tally_job *writes = NULL, **wtail = &writes;
        size_t n = 0;
        for (tally_job *j = list, *next; j; j = next) {
            next = j->next;
            j->next = NULL;
            if (j->kind == TALLY_JOB_BEGIN) {
                *btail = j;
                btail = &j->next;
            } else {
                *wtail = j;
                wtail = &j->next;
                n++;
            }
        }
        if (writes)
            run_batch(w, writes, n);
        if (!begins)
            return;
        tally_job *begin = begins;
        begins = begin->next;
        if (!begins)
            btail = &begins;
        begin->next = NULL;
        tally_session_run(w->store, &w->session_queue, begin);
        if (w->opt.on_commit) /* it may have committed: followers of the feed look at once */
            w->opt.on_commit(w->opt.commit_ctx);
        size_t count;
        /* what waits now, without waiting (a deadline already past) */
        list = tally_queue_pop_batch_until(&w->queue, w->opt.batch_max, 1, &count);
    }
}

/* Between batches: locks released on other servers (tally_writer_hint) let
 * their first waiter here try again now rather than at its next poll. */
static void take_hints(tally_writer *w)
{
    pthread_mutex_lock(&w->hint_mu);
    tally_buf names = w->hinted;
    tally_buf_init(&w->hinted);
    pthread_mutex_unlock(&w->hint_mu);
    tally_job *wake = NULL, **tail = &wake;
    for (size_t at = 0; at + 2 <= names.len;) {
        size_t len = (size_t)(unsigned char)names.s[at] << 8 | (unsigned char)names.s[at + 1];
        tally_job *first = tally_lock_waits_released(&w->waits, names.s + at + 2, len);
        if (first) {
            TALLY_METRIC_ADD(lock_hint_wakeups, 1);
            first->next = NULL;
            *tail = first;
            tail = &first->next;
        }
        at += 2 + len;
    }
    tally_buf_free(&names);
    if (wake)
        run_jobs(w, wake);
}

void tally_writer_hint(tally_writer *w, const char *name, size_t len)
{
    if (len > 0xffff)
        return;
    pthread_mutex_lock(&w->hint_mu);
    bool first = w->hinted.len == 0;
    char head[2] = {(char)(len >> 8), (char)(len & 0xff)};
    tally_buf_addn(&w->hinted, head, 2);
    tally_buf_addn(&w->hinted, name, len);
    pthread_mutex_unlock(&w->hint_mu);
    if (first)
        tally_queue_poke(&w->queue);
}

/* Between batches, now and then: spent rate-limit rows and expired idempotency answers. */
static void maybe_sweep(tally_writer *w)
{
    uint64_t now = tally_clock_ns();
    uint64_t every = (w->opt.sweep_every_ms ? w->opt.sweep_every_ms : 60000) * 1000000u;
    if (now - w->last_sweep_ns < every && w->last_sweep_ns)
        return;
    w->last_sweep_ns = now;
    tally_error err;
    if (tally_store_begin(w->store, &err) == 0) {
        if (tally_store_sweep(w->store, tally_now_ms(), (int64_t)w->opt.idempotency_ttl_ms) == 0)
            tally_store_commit(w->store, &err);
        tally_store_rollback(w->store);
    }
}

/* Runs the delayed jobs whose time has come; returns when the next is due (0: none left). */
static uint64_t run_delayed(tally_writer *w)
{
    uint64_t now = tally_clock_ns(), next_due = 0;
    tally_job *ready = NULL, **tail = &ready, *keep = NULL;
    for (tally_job *j = w->delayed, *next; j; j = next) {
        next = j->next;
        if (j->retry_at_ns <= now) {
            j->next = NULL;
            *tail = j;
            tail = &j->next;
        } else {
            j->next = keep;
            keep = j;
            if (!next_due || j->retry_at_ns < next_due)
                next_due = j->retry_at_ns;
        }
    }
    w->delayed = keep;
    if (ready)
        run_jobs(w, ready);
    return w->delayed && !next_due ? tally_clock_ns() : next_due;
}

static void *writer_main(void *arg)
{
    tally_writer *w = arg;
    size_t n;
    maybe_probe(w); /* at once: /health knows the database's standbys from the start */
    uint64_t due = probe_due(w);
    for (;;) {
        tally_job *batch = tally_queue_pop_batch_until(&w->queue, w->opt.batch_max, due, &n);
        if (!batch && n == 0)
            break; /* closed and drained */
        if (batch)
            run_jobs(w, batch);
        take_hints(w);
        due = tally_lock_waits_any(&w->waits) ? tend_waiters(w) : 0;
        if (tally_store_maintain(w->store))
            TALLY_METRIC_ADD(checkpoints, 1);
        maybe_sweep(w);
        maybe_probe(w);
        uint64_t p = probe_due(w);
        if (p && (!due || p < due))
            due = p;
        uint64_t d = w->delayed ? run_delayed(w) : 0;
        if (d && (!due || d < due))
            due = d;
    }
    /* Stopping: what waits for a row lock runs again at once (sessions have
     * ended by now), until it applies or --queue-timeout refuses it. */
    while (w->delayed) {
        for (tally_job *j = w->delayed; j; j = j->next)
            j->retry_at_ns = 0;
        run_delayed(w);
    }
    /* Stopping: nobody will release for the waiters any more; tell them. */
    while (tally_lock_waits_any(&w->waits)) {
        tally_lock_waits_expire_all(&w->waits);
        tend_waiters(w);
    }
    return NULL;
}

int tally_writer_start(tally_store *store, const tally_writer_options *opt, tally_writer **out, tally_error *err)
{
    tally_writer *w = calloc(1, sizeof *w);
    w->store = store;
    w->opt = *opt;
    /* A batch is one transaction: the backend says how many requests fit
     * (PostgreSQL: its savepoint budget). */
    size_t most = (size_t)tally_store_caps(store)->batch_max;
    if (!w->opt.batch_max || w->opt.batch_max > most)
        w->opt.batch_max = most;
    if (!w->opt.queue_max)
        w->opt.queue_max = 10000;
    if (!w->opt.idempotency_ttl_ms)
        w->opt.idempotency_ttl_ms = 24ull * 3600 * 1000;
    /* Another server's release of a lock is not seen here: its waiters try again every 250 ms. */
    w->waits.poll_ns = tally_store_caps(store)->shared ? 250u * 1000000u : 0;
    pthread_mutex_init(&w->health_mu, NULL);
    pthread_mutex_init(&w->hint_mu, NULL);
    tally_buf_init(&w->hinted);
    w->db_state.sync_standbys = -1;
    w->last_contact_ns = 0; /* probe at once: /health reports the standbys from the start */
    w->probe_every_ns = PROBE_IDLE_NS;
    tally_queue_init(&w->queue, w->opt.queue_max);
    tally_queue_init(&w->session_queue, 16);
    if (tally_thread_start(&w->thread, writer_main, w) != 0) {
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
    const tally_step *acq = tally_lock_acquire_step(job);
    if (acq && acq->wait_ms > 0)
        job->wait_until_ns = job->enqueued_ns + (uint64_t)acq->wait_ms * 1000000u;
    job->deadline_ns = w->opt.queue_timeout_ms ? job->enqueued_ns + w->opt.queue_timeout_ms * 1000000u : 0;
    if (tally_queue_push(&w->queue, job) != 0) {
        TALLY_METRIC_ADD(rejected, 1);
        return -TALLY_OVERLOADED;
    }
    return 0;
}

size_t tally_writer_queue_depth(tally_writer *w) { return tally_queue_depth(&w->queue); }

bool tally_writer_healthy(tally_writer *w, char *reason, size_t cap, tally_db_state *state)
{
    pthread_mutex_lock(&w->health_mu);
    bool up = !w->down;
    if (state)
        *state = w->db_state;
    if (!up && cap)
        snprintf(reason, cap, "%s", w->down_reason);
    pthread_mutex_unlock(&w->health_mu);
    return up;
}

tally_writer_stats tally_writer_get_stats(tally_writer *w)
{
    return (tally_writer_stats){
        .batches = atomic_load_explicit(&w->lane_batches, memory_order_relaxed),
        .writes = atomic_load_explicit(&w->lane_writes, memory_order_relaxed),
        .queue_depth = tally_queue_depth(&w->queue),
    };
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
    tally_lock_waits_free(&w->waits);
    tally_buf_free(&w->hinted);
    pthread_mutex_destroy(&w->hint_mu);
    tally_store_close(w->store);
    free(w);
}
