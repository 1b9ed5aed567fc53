/* writer_util.h — the harness the exec/writer suites (test_writer,
 * test_migrate) share: the shop schema (group setup); a fresh folder per test
 * (T) holding the database g_db; a writer started on a migrated store; jobs
 * submitted with a ticket to wait on, and their answers (status and parsed
 * body) checked; what was committed, read back on a reader connection of its
 * own; and the gate, a job whose completion parks the writer thread so that
 * the jobs submitted meanwhile meet in one batch.  Include it after
 * <cmocka.h>; all functions are static inline. */
#ifndef TALLY_TEST_WRITER_UTIL_H
#define TALLY_TEST_WRITER_UTIL_H

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api/decode.h"
#include "api/filter.h"
#include "api/render.h"
#include "exec/run.h"
#include "exec/writer.h"
#include "store/backend.h"
#include "shop_json.h"
#include "test_util.h"

static tally_schema *shop;
static char g_dir[PATH_MAX];
static char g_db[PATH_MAX + 32];

/* ---- fixtures ------------------------------------------------------------- */

static inline int group_setup(void **state)
{
    (void)state;
    return parse_schema(SHOP_JSON, &shop);
}

static inline int group_teardown(void **state)
{
    (void)state;
    tally_schema_free(shop);
    return 0;
}

static inline int make_dir(void **state)
{
    (void)state;
    if (make_temp_dir(g_dir, sizeof g_dir, "tally-writer-"))
        return -1;
    snprintf(g_db, sizeof g_db, "%s/tally.db", g_dir);
    return 0;
}

static inline int remove_dir(void **state)
{
    (void)state;
    return remove_temp_dir(g_dir);
}

/* Opens the writer connection on g_db and migrates; fails the test on error. */
static inline tally_store *open_store(const tally_schema *s)
{
    tally_store_options so = {.role = TALLY_STORE_WRITER};
    tally_store *st = NULL;
    tally_error err;
    if (tally_store_open(g_db, s, &so, &st, &err))
        fail_msg("open: %s", err.message);
    if (tally_store_migrate(st, 0, &err))
        fail_msg("migrate: %s", err.message);
    return st;
}

static inline tally_writer *start_writer(const tally_schema *s, size_t queue_max, uint64_t timeout_ms)
{
    tally_writer_options wo = {.queue_max = queue_max, .batch_max = 0, .queue_timeout_ms = timeout_ms};
    tally_writer *w = NULL;
    tally_error err;
    if (tally_writer_start(open_store(s), &wo, &w, &err))
        fail_msg("writer: %s", err.message);
    return w;
}

/* ---- jobs and their completion ---------------------------------------------- */

/* One waiting request: the test's stand-in for the net layer's handle. */
typedef struct ticket {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    uint64_t seq;      /* completion order across the test */
    pthread_t thread;  /* the thread that completed it */
} ticket;

static atomic_uint_fast64_t g_seq;

/* The gate: a job whose completion blocks the writer thread until opened, so
 * that the jobs submitted meanwhile meet in the next batch. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool at_gate, open;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
static ticket gate_ticket;

static inline void ticket_init(ticket *t)
{
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->done = false;
    t->seq = 0;
}

static inline void ticket_destroy(ticket *t)
{
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
}

static inline void on_complete(tally_job *job)
{
    ticket *t = job->origin;
    /* The job is handed back; from here only the ticket is touched. */
    pthread_mutex_lock(&t->mu);
    t->seq = atomic_fetch_add(&g_seq, 1) + 1;
    t->thread = pthread_self();
    t->done = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (t == &gate_ticket) {
        pthread_mutex_lock(&gate.mu);
        gate.at_gate = true;
        pthread_cond_broadcast(&gate.cv);
        while (!gate.open)
            pthread_cond_wait(&gate.cv, &gate.mu);
        pthread_mutex_unlock(&gate.mu);
    }
}

static inline void wait_ticket(ticket *t)
{
    pthread_mutex_lock(&t->mu);
    while (!t->done)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

static inline bool ticket_done(ticket *t)
{
    pthread_mutex_lock(&t->mu);
    bool d = t->done;
    pthread_mutex_unlock(&t->mu);
    return d;
}

static inline tally_job *new_job(tally_plan *plan, ticket *t)
{
    tally_job *job = tally_job_new(plan);
    job->render = tally_render_job;
    job->complete = on_complete;
    job->origin = t;
    return job;
}

static inline tally_plan *plan_create(const tally_schema *s, const char *model, const char *sq)
{
    tally_plan *plan = tally_plan_new(s);
    json_t *body = json_sq(sq, JSON_REJECT_DUPLICATES);
    tally_error err;
    int rc = tally_decode_create(plan, tally_schema_model(s, model, strlen(model)), body, "", &err);
    json_decref(body);
    if (rc < 0)
        fail_msg("decode: %s", err.message);
    plan->answer_step = rc;
    return plan;
}

static inline tally_plan *plan_update(const tally_schema *s, const char *model, int64_t id, const char *sq)
{
    tally_plan *plan = tally_plan_new(s);
    json_t *body = json_sq(sq, JSON_REJECT_DUPLICATES);
    tally_error err;
    int rc = tally_decode_patch(plan, tally_schema_model(s, model, strlen(model)), tally_value_int(id), body, &err);
    json_decref(body);
    if (rc < 0)
        fail_msg("decode: %s", err.message);
    plan->answer_step = rc;
    return plan;
}

/* An answer: status and parsed body. */
typedef struct answer {
    int status;
    json_t *body;
} answer;

static inline answer take_answer(tally_job *job)
{
    answer a = {job->status, NULL};
    json_error_t jerr;
    a.body = json_loadb(job->body, job->body_len, 0, &jerr);
    if (!a.body)
        fail_msg("answer is not JSON (%s): %.*s", jerr.text, (int)job->body_len, job->body);
    tally_job_free(job);
    return a;
}

/* Submits and waits for the answer. */
static inline answer run(tally_writer *w, tally_plan *plan)
{
    ticket t;
    ticket_init(&t);
    tally_job *job = new_job(plan, &t);
    if (tally_writer_submit(w, job) != 0)
        fail_msg("submit refused");
    wait_ticket(&t);
    ticket_destroy(&t);
    return take_answer(job);
}

static inline void answer_free(answer *a) { json_decref(a->body); }

static inline json_int_t int_of(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer in %s", key, json_dumps(obj, JSON_COMPACT));
    return json_integer_value(v);
}

static inline const char *str_of(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("'%s' is not a string", key);
    return json_string_value(v);
}

/* Expects a 2xx answer; returns the record (borrowed from a->body). */
static inline json_t *expect_record(answer *a, int status)
{
    if (a->status != status) {
        char *text = json_dumps(a->body, JSON_COMPACT);
        fail_msg("status %d, want %d: %s", a->status, status, text);
    }
    assert_non_null(json_object_get(a->body, "id"));
    return a->body;
}

static inline void expect_error(answer *a, int status, const char *code, const char *path, const char *needle)
{
    json_t *e = json_object_get(a->body, "error");
    if (a->status != status || !e || strcmp(str_of(e, "code"), code) != 0) {
        char *text = json_dumps(a->body, JSON_COMPACT);
        fail_msg("status %d %s, want %d %s", a->status, text, status, code);
    }
    json_t *p = json_object_get(e, "path");
    if (path)
        assert_string_equal(p ? json_string_value(p) : "", path);
    if (needle && !strstr(str_of(e, "message"), needle))
        fail_msg("message lacks '%s': %s", needle, str_of(e, "message"));
}

/* ---- reading what was committed, on a connection of its own ------------------- */

/* The record as stored, through a reader connection (NULL when there is none). */
static inline json_t *stored(const tally_schema *s, const char *model, int64_t id)
{
    tally_store_options ro = {.role = TALLY_STORE_READER};
    tally_store *rs = NULL;
    tally_error err;
    if (tally_store_open(g_db, s, &ro, &rs, &err))
        fail_msg("reader: %s", err.message);
    const tally_model *m = tally_schema_model(s, model, strlen(model));
    tally_plan *plan = tally_plan_new(s);
    tally_step *st = tally_plan_add_step(plan, TALLY_OP_GET, m);
    st->id = tally_value_int(id);
    int rc = tally_run_plan(rs, plan, &err);
    json_t *out = NULL;
    if (rc == 0) {
        tally_buf b;
        tally_buf_init(&b);
        tally_render_record(&b, m, &plan->results[0].record);
        json_error_t jerr;
        out = json_loads(b.s, 0, &jerr);
        assert_non_null(out);
        tally_buf_free(&b);
    } else {
        assert_int_equal(rc, -TALLY_NOT_FOUND);
    }
    tally_plan_free(plan);
    tally_store_close(rs);
    return out;
}

static inline json_int_t stored_int(const tally_schema *s, const char *model, int64_t id, const char *field)
{
    json_t *r = stored(s, model, id);
    if (!r)
        fail_msg("%s %lld does not exist", model, (long long)id);
    json_int_t v = int_of(r, field);
    json_decref(r);
    return v;
}

static inline int stored_count(const tally_schema *s, const char *model)
{
    tally_store_options ro = {.role = TALLY_STORE_READER};
    tally_store *rs = NULL;
    tally_error err;
    if (tally_store_open(g_db, s, &ro, &rs, &err))
        fail_msg("reader: %s", err.message);
    tally_plan *plan = tally_plan_new(s);
    tally_step *st = tally_plan_add_step(plan, TALLY_OP_LIST, tally_schema_model(s, model, strlen(model)));
    assert_int_equal(tally_decode_sort(plan, st, NULL, &err), 0); /* by id */
    st->first = TALLY_LIST_MAX;
    assert_int_equal(tally_run_plan(rs, plan, &err), 0);
    int n = plan->results[0].nrecords;
    assert_false(plan->results[0].has_next);
    tally_plan_free(plan);
    tally_store_close(rs);
    return n;
}

/* ---- gate helpers ----------------------------------------------------------------- */

/* Submits a job that blocks the writer thread in its completion until gate_open. */
static inline void gate_close(tally_writer *w)
{
    pthread_mutex_lock(&gate.mu);
    gate.at_gate = false;
    gate.open = false;
    pthread_mutex_unlock(&gate.mu);
    ticket_init(&gate_ticket);
    tally_job *job = new_job(plan_create(shop, "course", "{'name': 'gate'}"), &gate_ticket);
    assert_int_equal(tally_writer_submit(w, job), 0);
    pthread_mutex_lock(&gate.mu);
    while (!gate.at_gate)
        pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
    /* The writer is now parked: its batch committed, the next not yet taken. */
    answer a = take_answer(job);
    expect_record(&a, 201);
    answer_free(&a);
}

static inline void gate_open(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.open = true;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    ticket_destroy(&gate_ticket);
}

/* Submits plans[0..n) as jobs, one ticket each, to a writer held at the
 * gate (gate_close), so that they make one batch once the gate opens. */
static inline void submit_all(tally_writer *w, tally_plan **plans, int n, ticket *t, tally_job **jobs)
{
    for (int i = 0; i < n; i++) {
        ticket_init(&t[i]);
        jobs[i] = new_job(plans[i], &t[i]);
        assert_int_equal(tally_writer_submit(w, jobs[i]), 0);
    }
}

/* Opens the gate, waits for every job and takes its answer (tickets destroyed). */
static inline void answer_all(tally_job **jobs, ticket *t, int n, answer *ans)
{
    gate_open();
    for (int i = 0; i < n; i++)
        wait_ticket(&t[i]);
    for (int i = 0; i < n; i++) {
        ans[i] = take_answer(jobs[i]);
        ticket_destroy(&t[i]);
    }
}

/* A test in a fresh folder of its own. */
#define T(f) cmocka_unit_test_setup_teardown(f, make_dir, remove_dir)

#endif
