/* Unit tests for exec/writer over a real SQLite file in a temporary folder
 * (store/sqlite + store/migrate underneath; the harness is writer_util.h):
 * creates, sets and atomic increments answered with the right status and
 * body (render = tally_render_job) and the errors the store maps (NOT_FOUND,
 * UNIQUE, INVARIANT, OVERFLOW, an unset field, a missing link); nested and
 * hasMany creates; 8 threads × 500 increments on one record (final value
 * 4000, all 4000 answers distinct, each thread's rising); a batch held
 * together behind a blocked writer in which failing jobs are answered with
 * their own errors, undo only their own steps, and leave the others (and one
 * commit) alone; a batch the database refuses (locked by another connection)
 * answered 503 with nothing applied; a full queue and a queue timeout
 * refused with OVERLOADED, unapplied; tally_writer_stop answering every
 * queued job, and submit after stop refused; durability across close and
 * reopen; a store path that cannot be opened; and regression tests for bugs
 * fixed since.  Migrations are in test_migrate.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/decode.h"
#include "api/render.h"
#include "exec/metrics.h"
#include "exec/run.h"
#include "exec/writer.h"
#include "store/backend.h"
#include "store/sqlite/sync_vfs.h"
#include "writer_util.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_create_and_increment(void **state)
{
    (void)state;
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_create(shop, "customer", "{'name': 'Ada'}"));
    json_t *r = expect_record(&a, 201);
    assert_int_equal(int_of(r, "id"), 1);
    assert_string_equal(str_of(r, "name"), "Ada");
    assert_true(json_is_null(json_object_get(r, "email")));
    assert_int_equal(int_of(r, "orderCount"), 0);
    /* RFC 3339 timestamps, equal on create. */
    assert_int_equal(strlen(str_of(r, "createdAt")), 24);
    assert_string_equal(str_of(r, "createdAt"), str_of(r, "updatedAt"));
    answer_free(&a);

    a = run(w, plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 5}}}"));
    assert_int_equal(int_of(expect_record(&a, 200), "orderCount"), 5);
    assert_string_equal(str_of(a.body, "name"), "Ada");
    answer_free(&a);
    a = run(w, plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': [{'increment': 2}, {'decrement': 10}]}}"));
    assert_int_equal(int_of(expect_record(&a, 200), "orderCount"), -3);
    answer_free(&a);
    a = run(w, plan_update(shop, "customer", 1, "{'name': 'Ada L.', '_atomics': {'orderCount': {'decrement': {}}}}"));
    assert_int_equal(int_of(expect_record(&a, 200), "orderCount"), -4);
    assert_string_equal(str_of(a.body, "name"), "Ada L.");
    answer_free(&a);
    assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), -4);

    /* Several fields at once. */
    a = run(w, plan_create(shop, "event", "{'availableTicketCount': 10}"));
    int64_t ev = int_of(expect_record(&a, 201), "id");
    answer_free(&a);
    a = run(w, plan_update(shop, "event", ev,
                           "{'_atomics': {'soldTicketCount': {'increment': 1}, 'availableTicketCount': {'decrement': 1}}}"));
    expect_record(&a, 200);
    assert_int_equal(int_of(a.body, "soldTicketCount"), 1);
    assert_int_equal(int_of(a.body, "availableTicketCount"), 9);
    answer_free(&a);

    tally_writer_stop(w);
    tally_writer_free(w);
}

static void test_errors_from_the_store(void **state)
{
    (void)state;
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_create(shop, "customer", "{'name': 'A', 'email': 'a@example.com'}"));
    expect_record(&a, 201);
    answer_free(&a);

    a = run(w, plan_update(shop, "customer", 999, "{'_atomics': {'orderCount': {'increment': 1}}}"));
    expect_error(&a, 404, "NOT_FOUND", NULL, "999");
    assert_null(json_object_get(json_object_get(a.body, "error"), "path"));
    answer_free(&a);

    a = run(w, plan_create(shop, "customer", "{'name': 'B', 'email': 'a@example.com'}"));
    expect_error(&a, 409, "UNIQUE_VIOLATION", "email", "email");
    answer_free(&a);
    assert_int_equal(stored_count(shop, "customer"), 1);

    a = run(w, plan_create(shop, "rateLimit", "{'userId': 'u', 'window': 1}"));
    expect_record(&a, 201);
    answer_free(&a);
    a = run(w, plan_create(shop, "rateLimit", "{'userId': 'u', 'window': 1}"));
    expect_error(&a, 409, "UNIQUE_VIOLATION", NULL, "userId");
    answer_free(&a);

    a = run(w, plan_create(shop, "product", "{'sku': 'S', 'stock': 3}"));
    expect_record(&a, 201);
    answer_free(&a);
    a = run(w, plan_update(shop, "product", 1, "{'_atomics': {'stock': {'decrement': 4}}}"));
    expect_error(&a, 422, "INVARIANT", "_atomics.stock", "min");
    answer_free(&a);
    /* Judged on the value written: going below and back up is fine. */
    a = run(w, plan_update(shop, "product", 1, "{'_atomics': {'stock': [{'decrement': 4}, {'increment': 2}]}}"));
    assert_int_equal(int_of(expect_record(&a, 200), "stock"), 1);
    answer_free(&a);
    a = run(w, plan_create(shop, "product", "{'sku': 'T', 'stock': -1}"));
    expect_error(&a, 422, "INVARIANT", "stock", NULL);
    answer_free(&a);

    /* Overflow is an error, never a wrap or a float; operations apply in order. */
    a = run(w, plan_update(shop, "customer", 1, "{'orderCount': 9223372036854775806}"));
    expect_record(&a, 200);
    answer_free(&a);
    a = run(w, plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': [{'decrement': 5}, {'increment': 5}]}}"));
    assert_int_equal(int_of(expect_record(&a, 200), "orderCount"), INT64_MAX - 1);
    answer_free(&a);
    a = run(w, plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': [{'increment': 5}, {'decrement': 5}]}}"));
    expect_error(&a, 422, "OVERFLOW", "_atomics.orderCount", "64-bit");
    answer_free(&a);
    a = run(w, plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}"));
    assert_int_equal(int_of(expect_record(&a, 200), "orderCount"), INT64_MAX);
    answer_free(&a);
    a = run(w, plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}"));
    expect_error(&a, 422, "OVERFLOW", "_atomics.orderCount", NULL);
    answer_free(&a);
    assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), INT64_MAX);
    a = run(w, plan_update(shop, "customer", 1, "{'orderCount': -9223372036854775808}"));
    expect_record(&a, 200);
    answer_free(&a);
    a = run(w, plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'decrement': 1}}}"));
    expect_error(&a, 422, "OVERFLOW", "_atomics.orderCount", NULL);
    answer_free(&a);
    assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), INT64_MIN);

    /* An unset field cannot be incremented. */
    a = run(w, plan_create(shop, "course", "{'slotsTaken': null}"));
    int64_t course = int_of(expect_record(&a, 201), "id");
    answer_free(&a);
    a = run(w, plan_update(shop, "course", course, "{'_atomics': {'slotsTaken': {'increment': 1}}}"));
    expect_error(&a, 422, "VALIDATION", "_atomics.slotsTaken", "not set");
    answer_free(&a);

    /* A link to a record that does not exist. */
    a = run(w, plan_create(shop, "ticket", "{'event': {'_link': 999}}"));
    expect_error(&a, 422, "VALIDATION", "event", "999");
    answer_free(&a);
    assert_int_equal(stored_count(shop, "ticket"), 0);

    tally_writer_stop(w);
    tally_writer_free(w);
}

static void test_nested_creates(void **state)
{
    (void)state;
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_create(shop, "ticket", "{'event': {'create': {'availableTicketCount': 5}}}"));
    json_t *t = expect_record(&a, 201);
    int64_t ev = int_of(t, "event");
    assert_int_equal(stored_int(shop, "event", ev, "availableTicketCount"), 5);
    answer_free(&a);

    a = run(w, plan_create(shop, "post", "{'title': 'P', 'images': [{'create': {'url': 'a'}}, {'create': {'url': 'b'}}]}"));
    json_t *p = expect_record(&a, 201);
    int64_t post = int_of(p, "id");
    assert_string_equal(str_of(p, "title"), "P");
    assert_null(json_object_get(p, "images")); /* virtual: not part of the record */
    answer_free(&a);
    assert_int_equal(stored_count(shop, "image"), 2);
    assert_int_equal(stored_int(shop, "image", 1, "post"), post);
    assert_int_equal(stored_int(shop, "image", 2, "post"), post);

    /* Relinking an existing image to a new post. */
    a = run(w, plan_create(shop, "post", "{'title': 'Q', 'images': [{'_link': 2}]}"));
    int64_t post2 = int_of(expect_record(&a, 201), "id");
    answer_free(&a);
    assert_int_equal(stored_int(shop, "image", 2, "post"), post2);

    /* Any failing step undoes the whole request (a link to a missing child is VALIDATION, as for belongsTo). */
    a = run(w, plan_create(shop, "post", "{'title': 'R', 'images': [{'create': {'url': 'c'}}, {'_link': 999}]}"));
    expect_error(&a, 422, "VALIDATION", "images[1]", "999");
    answer_free(&a);
    assert_int_equal(stored_count(shop, "post"), 2);
    assert_int_equal(stored_count(shop, "image"), 2);
    tally_writer_stop(w);
    tally_writer_free(w);
}

static void test_nested_error_path(void **state)
{
    (void)state;
    /* Formerly a BUG: a top-level nested create's step->path was borrowed from
     * the request JSON (see test_nested_step_path_owned in test_decode.c),
     * which is freed before the writer runs the plan; when that nested step
     * failed in the store, map_error built the error path from freed memory
     * (heap-use-after-free in join_path under ASan). */
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_create(shop, "ticket", "{'event': {'create': {'availableTicketCount': -1}}}"));
    expect_error(&a, 422, "INVARIANT", "event.availableTicketCount", NULL);
    answer_free(&a);
    assert_int_equal(stored_count(shop, "event"), 0);
    tally_writer_stop(w);
    tally_writer_free(w);
}

/* ---- concurrency ------------------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 500

typedef struct worker_arg {
    tally_writer *w;
    int64_t id;
    json_int_t values[PER_THREAD];
    int failures;
} worker_arg;

static void *increment_worker(void *p)
{
    worker_arg *arg = p;
    for (int i = 0; i < PER_THREAD; i++) {
        tally_plan *plan = tally_plan_new(shop);
        json_t *body = json_pack("{s:{s:{s:i}}}", "_atomics", "orderCount", "increment", 1);
        tally_error err;
        int rc = tally_decode_patch(plan, tally_schema_model(shop, "customer", 8), tally_value_int(arg->id), body, &err);
        json_decref(body);
        plan->answer_step = rc;
        ticket t;
        ticket_init(&t);
        tally_job *job = new_job(plan, &t);
        if (rc < 0 || tally_writer_submit(arg->w, job) != 0) {
            arg->failures++;
            tally_job_free(job);
            ticket_destroy(&t);
            continue;
        }
        wait_ticket(&t);
        ticket_destroy(&t);
        json_error_t jerr;
        json_t *ans = json_loadb(job->body, job->body_len, 0, &jerr);
        json_t *v = ans ? json_object_get(ans, "orderCount") : NULL;
        if (job->status != 200 || !json_is_integer(v))
            arg->failures++;
        else
            arg->values[i] = json_integer_value(v);
        json_decref(ans);
        tally_job_free(job);
    }
    return NULL;
}

static int cmp_int(const void *a, const void *b)
{
    json_int_t x = *(const json_int_t *)a, y = *(const json_int_t *)b;
    return x < y ? -1 : x > y;
}

static void test_concurrent_increments(void **state)
{
    (void)state;
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_create(shop, "customer", "{'name': 'Hot'}"));
    int64_t id = int_of(expect_record(&a, 201), "id");
    answer_free(&a);
    uint64_t batches0 = atomic_load(&tally_metrics_global.batches);
    uint64_t writes0 = atomic_load(&tally_metrics_global.writes);

    static worker_arg args[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].w = w;
        args[i].id = id;
        assert_int_equal(pthread_create(&th[i], NULL, increment_worker, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);

    static json_int_t all[THREADS * PER_THREAD];
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(args[i].failures, 0);
        /* Each client sees its own increments in order. */
        for (int k = 1; k < PER_THREAD; k++)
            if (args[i].values[k] <= args[i].values[k - 1])
                fail_msg("thread %d saw %lld after %lld", i, (long long)args[i].values[k],
                         (long long)args[i].values[k - 1]);
        memcpy(all + i * PER_THREAD, args[i].values, sizeof args[i].values);
    }
    /* All 4000 answers distinct: exactly 1..4000. */
    qsort(all, THREADS * PER_THREAD, sizeof all[0], cmp_int);
    for (int k = 0; k < THREADS * PER_THREAD; k++)
        if (all[k] != k + 1)
            fail_msg("sorted answer %d is %lld", k, (long long)all[k]);
    assert_int_equal(stored_int(shop, "customer", id, "orderCount"), THREADS * PER_THREAD);
    assert_int_equal(atomic_load(&tally_metrics_global.writes) - writes0, THREADS * PER_THREAD);
    uint64_t batches = atomic_load(&tally_metrics_global.batches) - batches0;
    assert_true(batches >= 1 && batches <= THREADS * PER_THREAD);
    print_message("%d increments in %llu batches\n", THREADS * PER_THREAD, (unsigned long long)batches);
    tally_writer_stop(w);
    tally_writer_free(w);
}

/* ---- batches ------------------------------------------------------------------------- */

static void test_failing_job_in_batch(void **state)
{
    (void)state;
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_create(shop, "customer", "{'name': 'C', 'email': 'c@example.com'}"));
    expect_record(&a, 201);
    answer_free(&a);
    a = run(w, plan_create(shop, "product", "{'sku': 'P', 'stock': 2}"));
    expect_record(&a, 201);
    answer_free(&a);

    gate_close(w);
    uint64_t batches0 = atomic_load(&tally_metrics_global.batches);
    uint64_t syncs0 = tally_sync_vfs_count();
    enum { N = 6 };
    tally_plan *plans[N] = {
        plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}"),
        plan_update(shop, "product", 1, "{'_atomics': {'stock': {'decrement': 3}}}"),
        plan_create(shop, "customer", "{'name': 'D', 'email': 'c@example.com'}"),
        plan_create(shop, "post", "{'title': 'T', 'images': [{'create': {'url': 'x'}}, {'_link': 999}]}"),
        plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}"),
        plan_update(shop, "product", 1, "{'_atomics': {'stock': {'decrement': 2}}}"),
    };
    ticket t[N];
    tally_job *jobs[N];
    for (int i = 0; i < N; i++) {
        ticket_init(&t[i]);
        jobs[i] = new_job(plans[i], &t[i]);
        assert_int_equal(tally_writer_submit(w, jobs[i]), 0);
    }
    assert_int_equal(tally_writer_queue_depth(w), N);
    for (int i = 0; i < N; i++)
        assert_false(ticket_done(&t[i]));
    gate_open();
    for (int i = 0; i < N; i++)
        wait_ticket(&t[i]);
    /* One batch, one commit, answered in order after it. */
    assert_int_equal(atomic_load(&tally_metrics_global.batches) - batches0, 1);
    uint64_t syncs = tally_sync_vfs_count() - syncs0;
    assert_true(syncs >= 1 && syncs <= 2);
    for (int i = 1; i < N; i++)
        assert_true(t[i].seq > t[i - 1].seq);

    answer ans[N];
    for (int i = 0; i < N; i++) {
        ans[i] = take_answer(jobs[i]);
        ticket_destroy(&t[i]);
    }
    assert_int_equal(int_of(expect_record(&ans[0], 200), "orderCount"), 1);
    expect_error(&ans[1], 422, "INVARIANT", "_atomics.stock", NULL);
    expect_error(&ans[2], 409, "UNIQUE_VIOLATION", "email", NULL);
    expect_error(&ans[3], 422, "VALIDATION", "images[1]", NULL);
    /* Later jobs see the earlier ones' effects, not the failed ones'. */
    assert_int_equal(int_of(expect_record(&ans[4], 200), "orderCount"), 2);
    assert_int_equal(int_of(expect_record(&ans[5], 200), "stock"), 0);
    for (int i = 0; i < N; i++)
        answer_free(&ans[i]);

    assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), 2);
    assert_int_equal(stored_int(shop, "product", 1, "stock"), 0);
    assert_int_equal(stored_count(shop, "customer"), 1);
    assert_int_equal(stored_count(shop, "post"), 0);  /* the failed job's first steps were undone */
    assert_int_equal(stored_count(shop, "image"), 0);
    tally_writer_stop(w);
    tally_writer_free(w);
}

/* Adjacent increments of one row in one batch are one statement by their sum
 * (exec/coalesce.h), each answered with the record after its own change; a
 * run whose total crosses a bound falls back to one by one, each with its own
 * verdict; another row, a guard or another direction ends a run. */
static void test_coalesced_increments(void **state)
{
    (void)state;
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_create(shop, "product", "{'sku': 'P', 'stock': 0}"));
    expect_record(&a, 201);
    answer_free(&a);
    a = run(w, plan_create(shop, "customer", "{'name': 'C'}"));
    expect_record(&a, 201);
    answer_free(&a);

    gate_close(w);
    uint64_t batches0 = atomic_load(&tally_metrics_global.batches);
    uint64_t coalesced0 = atomic_load(&tally_metrics_global.coalesced_writes);
    enum { N = 19 };
    tally_plan *plans[N];
    char body[128];
    for (int i = 0; i < 10; i++) { /* 0..9: +1, +2, … +10: one run, stock 55 */
        snprintf(body, sizeof body, "{'_atomics': {'stock': {'increment': %d}}}", i + 1);
        plans[i] = plan_update(shop, "product", 1, body);
    }
    plans[10] = plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}");
    for (int i = 11; i < 14; i++) /* -20 three times: the total (-60) crosses min 0; alone: 35, 15, refused */
        plans[i] = plan_update(shop, "product", 1, "{'_atomics': {'stock': {'decrement': 20}}}");
    plans[14] = plan_update(shop, "product", 1, "{'_atomics': {'stock': {'increment': -5}}}"); /* 10 */
    plans[15] = plan_update(shop, "product", 1, "{'_atomics': {'stock': {'decrement': 1}}}");  /* 9: joins 14 */
    plans[16] = plan_update(shop, "product", 1, "{'_atomics': {'stock': {'increment': 4}}}");  /* 13: new run */
    plans[17] = plan_update(shop, "product", 1, "{'_where': {'stock': {'greaterThanOrEqual': 0}}, '_atomics': {'stock': {'increment': 1}}}"); /* 14 */
    plans[18] = plan_update(shop, "product", 1, "{'_atomics': {'stock': {'increment': 1}}}"); /* 15 */
    ticket t[N];
    tally_job *jobs[N];
    answer ans[N];
    submit_all(w, plans, N, t, jobs);
    answer_all(jobs, t, N, ans);
    assert_int_equal(atomic_load(&tally_metrics_global.batches) - batches0, 1);
    /* the ten, the pair 14+15, 16 alone (17 is guarded), 18 alone */
    assert_int_equal(atomic_load(&tally_metrics_global.coalesced_writes) - coalesced0, 12);
    const char *updated = NULL;
    for (int i = 0; i < 10; i++) {
        json_t *r = expect_record(&ans[i], 200);
        assert_int_equal(int_of(r, "stock"), (i + 1) * (i + 2) / 2);
        assert_string_equal(str_of(r, "sku"), "P");
        if (!updated)
            updated = str_of(r, "updatedAt");
        assert_string_equal(str_of(r, "updatedAt"), updated); /* one batch, one clock */
    }
    assert_int_equal(int_of(expect_record(&ans[10], 200), "orderCount"), 1);
    assert_int_equal(int_of(expect_record(&ans[11], 200), "stock"), 35);
    assert_int_equal(int_of(expect_record(&ans[12], 200), "stock"), 15);
    expect_error(&ans[13], 422, "INVARIANT", "_atomics.stock", NULL);
    int want[] = {10, 9, 13, 14, 15};
    for (int i = 14; i < N; i++)
        assert_int_equal(int_of(expect_record(&ans[i], 200), "stock"), want[i - 14]);
    for (int i = 0; i < N; i++)
        answer_free(&ans[i]);
    assert_int_equal(stored_int(shop, "product", 1, "stock"), 15);
    assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), 1);
    tally_writer_stop(w);
    tally_writer_free(w);
}

static void test_batch_the_database_refuses(void **state)
{
    (void)state;
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_create(shop, "customer", "{'name': 'L'}"));
    expect_record(&a, 201);
    answer_free(&a);

    /* Another connection holds the write lock past the writer's busy timeout:
     * its BEGIN fails, and every job of that batch is answered 503, unapplied. */
    gate_close(w);
    sqlite3 *other;
    assert_int_equal(sqlite3_open(g_db, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    ticket t[3];
    tally_job *jobs[3];
    for (int i = 0; i < 3; i++) {
        ticket_init(&t[i]);
        jobs[i] = new_job(plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}"), &t[i]);
        assert_int_equal(tally_writer_submit(w, jobs[i]), 0);
    }
    uint64_t failed0 = atomic_load(&tally_metrics_global.failed_batches);
    gate_open();
    for (int i = 0; i < 3; i++) {
        wait_ticket(&t[i]);
        ticket_destroy(&t[i]);
        a = take_answer(jobs[i]);
        expect_error(&a, 503, "UNAVAILABLE", NULL, "nothing was applied");
        answer_free(&a);
    }
    assert_int_equal(atomic_load(&tally_metrics_global.failed_batches) - failed0, 1);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);

    /* The writer starts clean: the next write is applied on the old value. */
    a = run(w, plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}"));
    assert_int_equal(int_of(expect_record(&a, 200), "orderCount"), 1);
    answer_free(&a);
    tally_writer_stop(w);
    tally_writer_free(w);
}

/* ---- the queue ------------------------------------------------------------------------- */

static void test_queue_full(void **state)
{
    (void)state;
    tally_writer *w = start_writer(shop, 4, 0);
    answer a = run(w, plan_create(shop, "customer", "{'name': 'Q'}"));
    expect_record(&a, 201);
    answer_free(&a);
    gate_close(w);
    ticket t[5];
    tally_job *jobs[5];
    for (int i = 0; i < 5; i++) {
        ticket_init(&t[i]);
        jobs[i] = new_job(plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}"), &t[i]);
        int rc = tally_writer_submit(w, jobs[i]);
        assert_int_equal(rc, i < 4 ? 0 : -TALLY_OVERLOADED);
    }
    assert_int_equal(tally_writer_queue_depth(w), 4);
    /* The refused job is still the caller's. */
    tally_job_free(jobs[4]);
    ticket_destroy(&t[4]);
    gate_open();
    for (int i = 0; i < 4; i++) {
        wait_ticket(&t[i]);
        ticket_destroy(&t[i]);
        a = take_answer(jobs[i]);
        assert_int_equal(int_of(expect_record(&a, 200), "orderCount"), i + 1);
        answer_free(&a);
    }
    assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), 4);
    tally_writer_stop(w);
    tally_writer_free(w);
}

static void test_queue_timeout(void **state)
{
    (void)state;
    tally_writer *w = start_writer(shop, 0, 50);
    answer a = run(w, plan_create(shop, "customer", "{'name': 'T'}"));
    expect_record(&a, 201);
    answer_free(&a);
    gate_close(w);
    ticket t;
    ticket_init(&t);
    tally_job *job = new_job(plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}"), &t);
    assert_int_equal(tally_writer_submit(w, job), 0);
    sleep_ms(200);
    gate_open();
    wait_ticket(&t);
    ticket_destroy(&t);
    a = take_answer(job);
    expect_error(&a, 503, "OVERLOADED", NULL, "queue-timeout");
    answer_free(&a);
    assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), 0);
    /* A job that does not wait long is applied. */
    a = run(w, plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}"));
    assert_int_equal(int_of(expect_record(&a, 200), "orderCount"), 1);
    answer_free(&a);
    tally_writer_stop(w);
    tally_writer_free(w);
}

/* ---- stop ------------------------------------------------------------------------------ */

static void *stopper(void *w)
{
    tally_writer_stop(w);
    return NULL;
}

static void test_stop_answers_queued(void **state)
{
    (void)state;
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_create(shop, "customer", "{'name': 'S'}"));
    expect_record(&a, 201);
    answer_free(&a);
    gate_close(w);
    enum { N = 50 };
    static ticket t[N];
    tally_job *jobs[N];
    for (int i = 0; i < N; i++) {
        ticket_init(&t[i]);
        jobs[i] = new_job(plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}"), &t[i]);
        assert_int_equal(tally_writer_submit(w, jobs[i]), 0);
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stopper, w), 0);
    /* Wait until the stop has closed the queue: submit starts refusing.  A
     * probe accepted before that is queued like the others and answered. */
    enum { MAXPROBES = 5000 };
    static ticket probe_t[MAXPROBES];
    static tally_job *probes[MAXPROBES];
    int nprobes = 0;
    for (;;) {
        if (nprobes == MAXPROBES)
            fail_msg("the writer never refused a submit after stop");
        ticket_init(&probe_t[nprobes]);
        tally_job *probe = new_job(plan_create(shop, "course", "{'name': 'probe'}"), &probe_t[nprobes]);
        int rc = tally_writer_submit(w, probe);
        if (rc == -TALLY_OVERLOADED) {
            tally_job_free(probe); /* refused: still ours */
            ticket_destroy(&probe_t[nprobes]);
            break;
        }
        assert_int_equal(rc, 0);
        probes[nprobes++] = probe;
        sleep_ms(1);
    }
    for (int i = 0; i < N; i++)
        assert_false(ticket_done(&t[i]));
    gate_open();
    pthread_join(th, NULL);
    /* Every queued job was run and answered before stop returned. */
    for (int i = 0; i < N; i++) {
        assert_true(ticket_done(&t[i]));
        ticket_destroy(&t[i]);
        a = take_answer(jobs[i]);
        assert_int_equal(int_of(expect_record(&a, 200), "orderCount"), i + 1);
        answer_free(&a);
    }
    for (int i = 0; i < nprobes; i++) {
        assert_true(ticket_done(&probe_t[i]));
        ticket_destroy(&probe_t[i]);
        a = take_answer(probes[i]);
        expect_record(&a, 201);
        answer_free(&a);
    }
    /* After stop: refused, and the job stays the caller's; stop again is harmless. */
    ticket late_t;
    ticket_init(&late_t);
    tally_job *late = new_job(plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 1}}}"), &late_t);
    assert_int_equal(tally_writer_submit(w, late), -TALLY_OVERLOADED);
    assert_false(ticket_done(&late_t));
    tally_job_free(late);
    ticket_destroy(&late_t);
    tally_writer_stop(w);
    tally_writer_free(w);
    assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), N);
}

/* ---- durability -------------------------------------------------------------------------- */

static void test_durable_across_reopen(void **state)
{
    (void)state;
    tally_writer *w = start_writer(shop, 0, 0);
    answer a = run(w, plan_create(shop, "customer", "{'name': 'Dur', 'email': 'd@example.com'}"));
    expect_record(&a, 201);
    answer_free(&a);
    for (int i = 0; i < 20; i++) {
        a = run(w, plan_update(shop, "customer", 1, "{'_atomics': {'orderCount': {'increment': 3}}}"));
        json_int_t v = int_of(expect_record(&a, 200), "orderCount");
        answer_free(&a);
        /* Read-after-answer on another connection sees the answered value. */
        assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), v);
    }
    a = run(w, plan_create(shop, "post", "{'title': 'kept', 'images': [{'create': {'url': 'u'}}]}"));
    expect_record(&a, 201);
    answer_free(&a);
    a = run(w, plan_create(shop, "product", "{'sku': 'gone'}"));
    expect_record(&a, 201);
    answer_free(&a);
    tally_writer_stop(w);
    tally_writer_free(w);

    /* Reopen: migration is a no-op, and every answered write is there. */
    w = start_writer(shop, 0, 0);
    assert_int_equal(stored_int(shop, "customer", 1, "orderCount"), 60);
    json_t *c = stored(shop, "customer", 1);
    assert_string_equal(str_of(c, "email"), "d@example.com");
    json_decref(c);
    assert_int_equal(stored_count(shop, "image"), 1);
    /* Ids are never reused, even across a reopen. */
    a = run(w, plan_create(shop, "customer", "{'name': 'Next'}"));
    assert_int_equal(int_of(expect_record(&a, 201), "id"), 2);
    answer_free(&a);
    tally_writer_stop(w);
    tally_writer_free(w);
}

static void test_open_refuses_bad_path(void **state)
{
    (void)state;
    tally_store_options so = {.role = TALLY_STORE_WRITER};
    tally_store *st = (tally_store *)0x1;
    tally_error err;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/no/such/dir/tally.db", g_dir);
    assert_int_equal(tally_store_open(path, shop, &so, &st, &err), -TALLY_INTERNAL);
    assert_null(st);
    assert_non_null(strstr(err.message, path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_create_and_increment),
        T(test_errors_from_the_store),
        T(test_nested_creates),
        T(test_nested_error_path),
        T(test_concurrent_increments),
        T(test_failing_job_in_batch),
        T(test_coalesced_increments),
        T(test_batch_the_database_refuses),
        T(test_queue_full),
        T(test_queue_timeout),
        T(test_stop_answers_queued),
        T(test_durable_across_reopen),
        T(test_open_refuses_bad_path),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
