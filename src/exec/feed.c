/* feed.c — the change feed's thread: pages, long polls, the sequencer; see feed.h. */
#include "exec/feed.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "exec/queue.h"
#include "exec/thread.h"

struct tally_feed {
    char *db;                     /* owned: reconnects use it */
    const tally_schema *schema;   /* borrowed */
    tally_store_options so;
    tally_store *store;           /* feed thread only; NULL while the database is out of reach */
    tally_queue queue;            /* page reads, in arrival order */
    pthread_t thread;
    bool running;
    uint64_t poll_ns;
    tally_job *parked;            /* feed thread only: long polls waiting for the head to move */
    int64_t head;                 /* feed thread only: the head as last read */
    pthread_mutex_t mu;           /* guards stats */
    tally_feed_stats stats;
};

static bool connected(tally_feed *f)
{
    if (f->store)
        return true;
    tally_error err;
    tally_store_options so = f->so;
    so.role = TALLY_STORE_FEED;
    return tally_store_open(f->db, f->schema, &so, &f->store, &err) == 0;
}

/* The database was not reached: drop the connection, to open it again later. */
static void lost(tally_feed *f, const tally_error *err)
{
    if (err->code == TALLY_UNAVAILABLE) {
        tally_store_close(f->store);
        f->store = NULL;
    }
}

/* A stored change that stands for a run of n increments (tally_change.merged)
 * becomes n changes, seqs S-n+1..S, each the record after its own write;
 * those at or before the cursor are left out. */
static void expand(tally_plan *plan)
{
    tally_step_result *res = &plan->results[0];
    int64_t since = plan->steps[0].since;
    int total = 0;
    json_t *parsed[res->nchanges > 0 ? res->nchanges : 1];
    for (int i = 0; i < res->nchanges; i++) {
        parsed[i] = res->changes[i].merged ? json_loads(res->changes[i].merged, 0, NULL) : NULL;
        json_t *d = json_object_get(parsed[i], "deltas");
        total += json_is_array(d) && json_array_size(d) > 0 ? (int)json_array_size(d) : 1;
    }
    if (total == res->nchanges) {
        for (int i = 0; i < res->nchanges; i++)
            json_decref(parsed[i]);
        return;
    }
    tally_change *out = tally_arena_alloc(&plan->arena, sizeof *out * (size_t)total);
    int n = 0;
    for (int i = 0; i < res->nchanges; i++) {
        const tally_change *c = &res->changes[i];
        json_t *fields = json_object_get(parsed[i], "fields"), *deltas = json_object_get(parsed[i], "deltas");
        int runs = json_is_array(deltas) ? (int)json_array_size(deltas) : 0, nf = (int)json_array_size(fields);
        if (runs < 1 || c->model < 0) {
            out[n++] = *c;
            json_decref(parsed[i]);
            continue;
        }
        const tally_model *m = &plan->schema->models[c->model];
        int *cols = tally_arena_alloc(&plan->arena, sizeof *cols * (size_t)(nf ? nf : 1));
        for (int f = 0; f < nf; f++) {
            const char *name = json_string_value(json_array_get(fields, (size_t)f));
            int fi = name ? tally_model_field(m, name, strlen(name)) : -1;
            cols[f] = fi >= 0 ? m->fields[fi].column : -1;
        }
        int64_t later[nf ? nf : 1]; /* the sum of the deltas of the writes after the one at hand */
        memset(later, 0, sizeof later);
        int first = n;
        n += runs;
        for (int k = runs - 1; k >= 0; k--) {
            tally_change *e = &out[first + k];
            *e = *c;
            e->merged = NULL;
            e->seq = c->seq - (runs - 1 - k);
            e->adjust_col = cols;
            int64_t *by = tally_arena_alloc(&plan->arena, sizeof *by * (size_t)(nf ? nf : 1));
            memcpy(by, later, sizeof *by * (size_t)nf);
            e->adjust_by = by;
            e->nadjust = nf;
            json_t *dk = json_array_get(deltas, (size_t)k);
            for (int f = 0; f < nf; f++)
                later[f] += json_integer_value(json_array_get(dk, (size_t)f));
        }
        json_decref(parsed[i]);
        int keep = first; /* drop those the cursor has passed */
        for (int k = first; k < n; k++)
            if (out[k].seq > since)
                out[keep++] = out[k];
        n = keep;
    }
    res->changes = out;
    res->nchanges = n;
}

static void answer(tally_job *job)
{
    job->render(job);
    job->complete(job); /* hands it back */
}

/* Reads job's page.  True when the job was answered, false when it waits on. */
static bool run_job(tally_feed *f, tally_job *job, uint64_t now_ns)
{
    tally_error err;
    tally_step *s = &job->plan->steps[0];
    if (!connected(f)) {
        job->rc = tally_fail(&job->err, TALLY_UNAVAILABLE, NULL, "the database cannot be reached; retry");
        answer(job);
        return true;
    }
    int rc = f->store->ops->feed_read(f->store, job->plan, &err);
    if (rc) {
        lost(f, &err);
        job->rc = rc;
        job->err = err;
        answer(job);
        return true;
    }
    expand(job->plan);
    const tally_step_result *res = &job->plan->results[0];
    if (res->nchanges > 0 || !job->wait_until_ns || now_ns >= job->wait_until_ns) {
        job->rc = 0;
        answer(job);
        return true;
    }
    s->since = res->next; /* seen up to here: the next read starts after it */
    return false;
}

static void park(tally_feed *f, tally_job *job)
{
    job->next = f->parked;
    f->parked = job;
}

/* Sequencer (where there is one), then where the feed stands. */
static void look(tally_feed *f)
{
    if (!connected(f))
        return;
    tally_error err;
    int numbered = 0;
    if (f->store->ops->feed_sequence) {
        /* Rounds until the outbox is empty: a burst is numbered at once. */
        for (int round = 0; round < 100; round++) {
            int n = 0;
            if (f->store->ops->feed_sequence(f->store, &n, &err)) {
                lost(f, &err);
                if (!f->store)
                    return;
                break;
            }
            numbered += n;
            if (n == 0)
                break;
        }
    }
    tally_feed_state fs;
    if (f->store->ops->feed_state(f->store, &fs, &err)) {
        lost(f, &err);
        return;
    }
    f->head = fs.head;
    pthread_mutex_lock(&f->mu);
    f->stats.state = fs;
    f->stats.numbered += (uint64_t)numbered;
    pthread_mutex_unlock(&f->mu);
}

/* Runs again the parked polls the head has moved past, and answers those whose wait has ended. */
static void tend(tally_feed *f, uint64_t now_ns)
{
    tally_job *list = f->parked;
    f->parked = NULL;
    uint64_t waiting = 0;
    for (tally_job *job = list, *next; job; job = next) {
        next = job->next;
        job->next = NULL;
        bool behind = job->plan->steps[0].since < f->head;
        if ((behind || now_ns >= job->wait_until_ns) && run_job(f, job, now_ns))
            continue;
        park(f, job);
        waiting++;
    }
    pthread_mutex_lock(&f->mu);
    f->stats.waiting = waiting;
    pthread_mutex_unlock(&f->mu);
}

static uint64_t next_due(const tally_feed *f, uint64_t poll_at)
{
    uint64_t due = poll_at;
    for (const tally_job *j = f->parked; j; j = j->next)
        if (j->wait_until_ns < due)
            due = j->wait_until_ns;
    return due;
}

/* Every commit pokes the feed, but it looks (a sequencer round on
 * PostgreSQL: a transaction of its own) at most this often.  Looking after
 * each of a hot counter's ~2,000 commits a second cost PostgreSQL's hot
 * counter 63 % of its throughput (feed off 37,475, on 13,858 req/s); at most
 * every 5 ms, 33 %; every 20 ms, 29 % (bench/feed.sh, one run each).  A
 * follower waits at most this much longer for a change. */
#define LOOK_MIN_NS (10u * 1000000u)

static void *feed_main(void *arg)
{
    tally_feed *f = arg;
    uint64_t poll_at = 0, looked_at = 0;
    bool looked = false, deferred = false; /* deferred: a poke came too soon after the last look */
    for (;;) {
        size_t n;
        tally_job *jobs = tally_queue_pop_batch_until(&f->queue, 1000, next_due(f, poll_at), &n);
        if (!jobs && n == 0)
            break; /* closed and drained */
        uint64_t now = tally_clock_ns();
        bool due = !jobs || now >= poll_at; /* poked, a poll due, or a wait ended */
        /* A page read (no waitMs) while a look is deferred gets it now, so
         * that it shows a write acknowledged just before; followers waiting
         * at the head are woken by the next look anyway. */
        bool page_read = false;
        for (const tally_job *j = jobs; j && !page_read; j = j->next)
            page_read = j->plan->steps[0].wait_ms <= 0;
        if ((due && (!looked || now - looked_at >= LOOK_MIN_NS)) || (page_read && deferred)) {
            look(f);
            looked = true;
            deferred = false;
            looked_at = now;
            poll_at = now + f->poll_ns;
        } else if (due) {
            deferred = true;
            if (poll_at > looked_at + LOOK_MIN_NS)
                poll_at = looked_at + LOOK_MIN_NS; /* too soon after the last look: look then */
        }
        for (tally_job *job = jobs, *next; job; job = next) {
            next = job->next;
            job->next = NULL;
            if (!run_job(f, job, now))
                park(f, job);
        }
        tend(f, tally_clock_ns());
    }
    /* Stopping: every held poll is answered with what there is. */
    for (tally_job *job = f->parked, *next; job; job = next) {
        next = job->next;
        job->next = NULL;
        job->wait_until_ns = 0;
        run_job(f, job, tally_clock_ns());
    }
    f->parked = NULL;
    return NULL;
}

int tally_feed_start(const char *db, const tally_schema *schema, const tally_store_options *so, int poll_ms,
                     tally_feed **out, tally_error *err)
{
    tally_feed *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    f->db = strdup(db);
    f->schema = schema;
    f->so = *so;
    f->so.role = TALLY_STORE_FEED;
    if (tally_store_open(f->db, schema, &f->so, &f->store, err)) {
        free(f->db);
        free(f);
        return -(int)err->code;
    }
    f->poll_ns = (uint64_t)(poll_ms > 0 ? poll_ms : tally_store_caps(f->store)->shared ? 50 : 1000) * 1000000u;
    pthread_mutex_init(&f->mu, NULL);
    tally_queue_init(&f->queue, 10000);
    if (tally_thread_start(&f->thread, feed_main, f) != 0) {
        tally_queue_destroy(&f->queue);
        tally_store_close(f->store);
        free(f->db);
        free(f);
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot start the change feed's thread");
    }
    f->running = true;
    *out = f;
    return 0;
}

int tally_feed_submit(tally_feed *f, tally_job *job)
{
    const tally_step *s = &job->plan->steps[0];
    job->enqueued_ns = tally_clock_ns();
    job->wait_until_ns = s->wait_ms > 0 ? job->enqueued_ns + (uint64_t)s->wait_ms * 1000000u : 0;
    return tally_queue_push(&f->queue, job) == 0 ? 0 : -TALLY_OVERLOADED;
}

void tally_feed_poke(tally_feed *f)
{
    if (f)
        tally_queue_poke(&f->queue);
}

tally_feed_stats tally_feed_get_stats(tally_feed *f)
{
    tally_feed_stats s = {0};
    if (!f)
        return s;
    pthread_mutex_lock(&f->mu);
    s = f->stats;
    pthread_mutex_unlock(&f->mu);
    return s;
}

void tally_feed_stop(tally_feed *f)
{
    if (!f || !f->running)
        return;
    f->running = false;
    tally_queue_close(&f->queue);
    pthread_join(f->thread, NULL);
}

void tally_feed_free(tally_feed *f)
{
    if (!f)
        return;
    tally_feed_stop(f);
    tally_queue_destroy(&f->queue);
    pthread_mutex_destroy(&f->mu);
    tally_store_close(f->store);
    free(f->db);
    free(f);
}
