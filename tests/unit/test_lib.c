/*
 * test_lib.c — libtally through include/tally.h alone, as a program that
 * embeds it sees it: open and its errors, every call form (tally_call,
 * tally_call_async, tally_increment), the errors of each, a synchronous call
 * from a callback refused instead of deadlocking, 16 threads × 10,000
 * increments on one field (the exact total, every returned value distinct),
 * tally_close with calls in flight (500 queued asynchronous increments, and
 * 4 threads blocked in lock acquires that wait: each answered), two databases in one
 * process, and a child process killed with SIGKILL mid-load whose every
 * acknowledged increment is there after reopening.  The same again on
 * PostgreSQL when TALLY_TEST_PG_URL names a server (a database of its own,
 * tally_lib_<pid>, made and dropped with psql); without it those are skipped.
 *
 * TALLY_LIB_TEST_THREADS / TALLY_LIB_TEST_PER_THREAD shrink the race (the
 * TSan run, scripts/tsan.sh, uses fewer).
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tally.h"

static int failures;
#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            failures++;                                                                                      \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

static const char SCHEMA[] =
    "{\"models\": {"
    " \"counter\": {\"fields\": {\"name\": {\"type\": \"string\"}, \"n\": {\"type\": \"integer\", \"default\": 0},"
    "   \"capped\": {\"type\": \"integer\", \"default\": 0, \"min\": 0, \"max\": 3},"
    "   \"ratio\": {\"type\": \"float\", \"default\": 0}}}}}";

static char tmp_root[256];

static void fresh_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmp_root, name);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? atol(v) : dflt;
}

/* The database of one backend run: a SQLite folder under tmp_root, or the PostgreSQL URL. */
static const char *pg_url; /* a database made for this run, or NULL */

static void db_for(char *out, size_t cap, const char *name)
{
    if (pg_url)
        snprintf(out, cap, "%s", pg_url);
    else
        fresh_dir(out, cap, name);
}

static tally *open_ok(const char *db)
{
    tally *t = NULL;
    tally_error err;
    int rc = tally_open(SCHEMA, db, NULL, &t, &err);
    CHECK(rc == 0 && t, "tally_open(%s): %d %s", db, rc, err.message);
    if (!t)
        exit(1);
    return t;
}

/* POST /api/counter: the new record's id. */
static long create_counter(tally *t)
{
    tally_answer a;
    int rc = tally_call(t, "POST", "/api/counter", "{\"name\": \"c\"}", -1, &a);
    CHECK(rc == 0 && a.status == 201, "create: %d %d %s", rc, a.status, a.body);
    const char *id = strstr(a.body, "\"id\":");
    long v = id ? atol(id + 5) : -1;
    tally_answer_free(&a);
    return v;
}

/* ---- open ------------------------------------------------------------------------ */

static void note_change(const char *change, void *ctx)
{
    char *seen = ctx;
    size_t n = strlen(seen);
    snprintf(seen + n, 512 - n, "%s;", change);
}

static void test_open_errors(void)
{
    tally *t = (tally *)1;
    tally_error err;
    char dir[300];
    fresh_dir(dir, sizeof dir, "errors");
    CHECK(tally_open("{\"models\": {\"x\": {\"fields\": {\"a\": {\"type\": \"nope\"}}}}}", dir, NULL, &t, &err) < 0,
          "a bad schema opens");
    CHECK(t == NULL, "*out is NULL after a failure");
    CHECK(strstr(err.message, "bad schema") && strstr(err.message, "nope"), "message: %s", err.message);
    CHECK(tally_open("/no/such/schema.json", dir, NULL, &t, &err) < 0 && strstr(err.message, "/no/such/schema.json"),
          "a missing schema file: %s", err.message);
    CHECK(tally_open(SCHEMA, "sqlite:", NULL, &t, &err) == -TALLY_BAD_REQUEST, "sqlite: alone: %s", err.message);
    CHECK(tally_open(NULL, dir, NULL, &t, &err) == -TALLY_BAD_REQUEST, "NULL schema");
    CHECK(tally_open(SCHEMA, dir, NULL, NULL, &err) == -TALLY_BAD_REQUEST, "NULL out");
    CHECK(tally_open(SCHEMA, "postgresql://nobody:secret@127.0.0.1:1/none", NULL, &t, &err) < 0 &&
              !strstr(err.message, "secret"), "a refused URL, without its password: %s", err.message);
    /* One data folder, one handle: a second open of it is refused while the first is open. */
    tally *a = open_ok(dir), *b = NULL;
    CHECK(tally_open(SCHEMA, dir, NULL, &b, &err) < 0 && strstr(err.message, "locked"), "locked: %s", err.message);
    CHECK(tally_close(a) == 0, "close");
    b = open_ok(dir); /* free again once closed */
    tally_close(b);
    /* tally.h's codes are the engine's table, name for name (the library's build checks the count). */
#define CODE(c, status) {c, #c + 6, status}
    const struct { tally_code code; const char *name; int status; } codes[] = {
        CODE(TALLY_OK, 200), CODE(TALLY_BAD_REQUEST, 400), CODE(TALLY_UNAUTHORIZED, 401), CODE(TALLY_FORBIDDEN, 403),
        CODE(TALLY_NOT_FOUND, 404), CODE(TALLY_METHOD_NOT_ALLOWED, 405), CODE(TALLY_GUARD_FAILED, 409),
        CODE(TALLY_UNIQUE_VIOLATION, 409), CODE(TALLY_CONFLICT, 409), CODE(TALLY_EXPECTATION_FAILED, 409),
        CODE(TALLY_LOCKED, 409), CODE(TALLY_LOCK_LOST, 409), CODE(TALLY_GONE, 410), CODE(TALLY_PAYLOAD_TOO_LARGE, 413),
        CODE(TALLY_UPGRADE_REQUIRED, 426), CODE(TALLY_HEADERS_TOO_LARGE, 431), CODE(TALLY_VALIDATION, 422),
        CODE(TALLY_INVARIANT, 422), CODE(TALLY_OVERFLOW, 422), CODE(TALLY_IDEMPOTENCY_MISMATCH, 422),
        CODE(TALLY_RATE_LIMITED, 429), CODE(TALLY_TOO_MANY_TRANSACTIONS, 429), CODE(TALLY_INTERNAL, 500),
        CODE(TALLY_OVERLOADED, 503), CODE(TALLY_UNAVAILABLE, 503), CODE(TALLY_TIMEOUT, 504)};
#undef CODE
    CHECK(sizeof codes / sizeof codes[0] == TALLY__CODE_COUNT, "every code listed");
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        CHECK((size_t)codes[i].code == i && strcmp(tally_code_name(codes[i].code), codes[i].name) == 0 &&
                  tally_code_status(codes[i].code) == codes[i].status,
              "code %zu: tally.h says %s, the table %s %d", i, codes[i].name, tally_code_name(codes[i].code),
              tally_code_status(codes[i].code));
    /* Migrations at open: each change reported; a destructive one only when allowed. */
    static const char WIDER[] = "{\"models\": {\"counter\": {\"fields\": {\"n\": {\"type\": \"integer\"}, "
                                "\"extra\": {\"type\": \"string\"}}}}}";
    char seen[512] = "";
    tally_options o;
    tally_options_init(&o);
    o.on_migration = note_change;
    o.on_migration_ctx = seen;
    CHECK(tally_open(WIDER, dir, &o, &b, &err) < 0 && strstr(err.message, "allow"),
          "dropping fields needs allow_destructive: %s", err.message);
    o.allow_destructive = 1;
    CHECK(tally_open(WIDER, dir, &o, &b, &err) == 0, "with allow_destructive: %s", err.message);
    CHECK(strstr(seen, "extra") != NULL, "the changes were reported: %s", seen);
    tally_close(b);
    CHECK(tally_close(NULL) == 0, "tally_close(NULL)");
    tally_answer_free(NULL);
}

/* ---- tally_call ------------------------------------------------------------------ */

static void test_call(const char *db)
{
    tally *t = open_ok(db);
    long id = create_counter(t);
    char path[64];
    snprintf(path, sizeof path, "/api/counter/%ld", id);
    tally_answer a;
    CHECK(tally_call(t, "PATCH", path, "{\"_atomics\": {\"n\": {\"increment\": 5}}}", -1, &a) == 0 && a.status == 200 &&
              strstr(a.body, "\"n\":5"), "patch: %d %s", a.status, a.body);
    CHECK(a.body[a.len] == '\0', "NUL-terminated");
    tally_answer_free(&a);
    CHECK(a.body == NULL, "freed");
    tally_answer_free(&a); /* twice is fine */
    CHECK(tally_call(t, "GET", path, NULL, 0, &a) == 0 && a.status == 200 && strstr(a.body, "\"n\":5"), "get: %s",
          a.body);
    tally_answer_free(&a);
    const char body[] = "{\"_atomics\": {\"n\": {\"increment\": 1}}}trailing";
    CHECK(tally_call(t, "PATCH", path, body, (ptrdiff_t)strlen(body) - 8, &a) == 0 && strstr(a.body, "\"n\":6"),
          "a body with an explicit length: %s", a.body);
    tally_answer_free(&a);
    CHECK(tally_call(t, "GET", "/api/counter?first=1", NULL, 0, &a) == 0 && a.status == 200 && strstr(a.body, "\"n\":6"),
          "a list with a query: %d %s", a.status, a.body);
    tally_answer_free(&a);
    char txn[400];
    snprintf(txn, sizeof txn, "{\"steps\": [{\"update\": \"counter\", \"id\": %ld, \"data\": "
             "{\"_atomics\": {\"n\": {\"increment\": 10}}}}]}", id);
    CHECK(tally_call(t, "POST", "/api/transaction", txn, -1, &a) == 0 && a.status == 200 && strstr(a.body, "\"n\":16"),
          "a transaction: %d %s", a.status, a.body);
    tally_answer_free(&a);
    /* Errors are answers: the API's error object. */
    CHECK(tally_call(t, "GET", "/api/nosuch/1", NULL, 0, &a) == 0 && a.status == 404 && strstr(a.body, "NOT_FOUND"),
          "unknown model: %d %s", a.status, a.body);
    tally_answer_free(&a);
    CHECK(tally_call(t, "PATCH", path, "{not json", -1, &a) == 0 && a.status == 400 && strstr(a.body, "BAD_REQUEST"),
          "bad JSON: %d %s", a.status, a.body);
    tally_answer_free(&a);
    CHECK(tally_call(t, "PATCH", path, "{\"_atomics\": {\"capped\": {\"increment\": 9}}}", -1, &a) == 0 &&
              a.status == 422 && strstr(a.body, "INVARIANT"), "past max: %d %s", a.status, a.body);
    tally_answer_free(&a);
    CHECK(tally_call(t, "GET", "/api/counter/999999", NULL, 0, &a) == 0 && a.status == 404, "no such record");
    tally_answer_free(&a);
    CHECK(tally_call(t, NULL, path, NULL, 0, &a) == -TALLY_BAD_REQUEST && a.status == 400 && a.body,
          "NULL method: an answer all the same");
    tally_answer_free(&a);
    CHECK(tally_call(t, "GET", path, NULL, -2, &a) == -TALLY_BAD_REQUEST, "length -2");
    tally_answer_free(&a);
    CHECK(tally_call(t, "GET", path, NULL, 0, NULL) == -TALLY_BAD_REQUEST, "NULL answer");
    CHECK(tally_call(t, "GET", "/health", NULL, 0, &a) == 0 && a.status == 200, "health: %s", a.body);
    tally_answer_free(&a);
    tally_close(t);
}

/* ---- tally_increment ------------------------------------------------------------- */

static void test_increment(const char *db)
{
    tally *t = open_ok(db);
    long id = create_counter(t);
    int64_t v = -1;
    tally_error err;
    CHECK(tally_increment(t, "counter", id, "n", 3, &v, &err) == 0 && v == 3, "3: %lld %s", (long long)v, err.message);
    CHECK(err.code == TALLY_OK, "err cleared");
    CHECK(tally_increment(t, "counter", id, "n", -5, &v, NULL) == 0 && v == -2, "-5: %lld", (long long)v);
    CHECK(tally_increment(t, "counter", id, "n", 1, NULL, NULL) == 0, "no new_value wanted");
    CHECK(tally_increment(t, "nosuch", id, "n", 1, &v, &err) == -TALLY_NOT_FOUND && strstr(err.message, "nosuch"),
          "model: %s", err.message);
    CHECK(tally_increment(t, "counter", id, "nosuch", 1, &v, &err) == -TALLY_NOT_FOUND && strstr(err.message, "nosuch"),
          "field: %s", err.message);
    CHECK(tally_increment(t, "counter", id, "name", 1, &v, &err) == -TALLY_BAD_REQUEST, "a string field: %s",
          err.message);
    CHECK(tally_increment(t, "counter", id, "ratio", 1, &v, &err) == -TALLY_BAD_REQUEST, "a float field");
    CHECK(tally_increment(t, "counter", 999999, "n", 1, &v, &err) == -TALLY_NOT_FOUND, "no such record: %s",
          err.message);
    CHECK(tally_increment(t, "counter", id, "capped", 4, &v, &err) == -TALLY_INVARIANT && err.message[0],
          "past max: %d %s", err.code, err.message);
    CHECK(tally_increment(t, "counter", id, "n", INT64_MAX, &v, &err) == 0 && v == INT64_MAX - 1, "near the top");
    CHECK(tally_increment(t, "counter", id, "n", 2, &v, &err) == -TALLY_OVERFLOW, "overflow: %s", err.message);
    CHECK(tally_increment(NULL, "counter", id, "n", 1, &v, &err) == -TALLY_BAD_REQUEST, "NULL handle");
    tally_answer a;
    char path[64];
    snprintf(path, sizeof path, "/api/counter/%ld", id);
    tally_call(t, "GET", path, NULL, 0, &a);
    CHECK(strstr(a.body, "\"n\":9223372036854775806") && strstr(a.body, "\"capped\":0"), "what the API sees: %s", a.body);
    tally_answer_free(&a);
    tally_close(t);
}

/* ---- tally_call_async ------------------------------------------------------------ */

typedef struct async_state {
    tally *t;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, ok, unavailable;
    int sync_refused, close_refused, nested_async;
    int bad_seen;
} async_state;

static void on_nested(const tally_answer *a, void *ctx)
{
    async_state *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->nested_async += a->status == 200;
    s->done++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void on_done(const tally_answer *a, void *ctx)
{
    async_state *s = ctx;
    if (s->t) { /* the first callback: what may and may not be called from here */
        tally_answer b;
        int64_t v;
        tally_error err;
        int rc1 = tally_call(s->t, "GET", "/health", NULL, 0, &b);
        bool said = strstr(b.body, "callback") != NULL;
        tally_answer_free(&b);
        int rc2 = tally_increment(s->t, "counter", 1, "n", 1, &v, &err);
        int rc3 = tally_close(s->t);
        int rc4 = tally_call_async(s->t, "GET", "/api/counter/1", NULL, 0, on_nested, s);
        pthread_mutex_lock(&s->mu);
        s->sync_refused = rc1 == -TALLY_BAD_REQUEST && said && rc2 == -TALLY_BAD_REQUEST &&
                          strstr(err.message, "deadlock") != NULL;
        s->close_refused = rc3 == -TALLY_BAD_REQUEST;
        if (rc4 != 0)
            s->done++; /* on_nested will not run */
        s->t = NULL;
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&s->mu);
    s->ok += a->status == 200;
    s->unavailable += a->status == 503;
    s->bad_seen += a->status == 400 && strstr(a->body, "BAD_REQUEST") != NULL;
    s->done++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void wait_done(async_state *s, int n)
{
    pthread_mutex_lock(&s->mu);
    while (s->done < n)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void test_async(const char *db)
{
    tally *t = open_ok(db);
    long id = create_counter(t);
    CHECK(id == 1, "the first counter is 1 (%ld)", id);
    async_state s = {.t = t};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    CHECK(tally_call_async(t, "PATCH", "/api/counter/1", "{\"_atomics\": {\"n\": {\"increment\": 1}}}", -1, on_done,
                           &s) == 0, "async");
    wait_done(&s, 2); /* it and the nested async call */
    CHECK(s.ok == 1 && s.sync_refused && s.close_refused && s.nested_async == 1,
          "from a callback: sync refused %d, close refused %d, async %d", s.sync_refused, s.close_refused,
          s.nested_async);
    /* Refused before the engine: the callback runs at once, on this thread. */
    CHECK(tally_call_async(t, "PATCH", "/api/counter/1", "{oops", -1, on_done, &s) == 0 && s.done == 3 &&
              s.bad_seen == 1, "bad JSON answered at once");
    CHECK(tally_call_async(t, "GET", "/", NULL, 0, NULL, &s) == -TALLY_BAD_REQUEST, "no callback");
    /* Many at once, then each answered. */
    for (int i = 0; i < 200; i++)
        CHECK(tally_call_async(t, "PATCH", "/api/counter/1", "{\"_atomics\": {\"n\": {\"increment\": 1}}}", -1,
                               on_done, &s) == 0, "async %d", i);
    wait_done(&s, 203);
    CHECK(s.ok == 201, "every async write answered 200 (%d)", s.ok);
    int64_t v;
    CHECK(tally_increment(t, "counter", 1, "n", 0, &v, NULL) == 0 && v == 201, "201 increments: %lld", (long long)v);
    tally_close(t);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
}

/* ---- the race -------------------------------------------------------------------- */

typedef struct racer {
    tally *t;
    int n;
    int64_t *values;
    int errors;
    bool through_call;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < r->n; i++) {
        tally_error err;
        if (r->through_call && i % 10 == 0) { /* a tenth through the JSON path, answered in the same order */
            tally_answer a;
            tally_call(r->t, "PATCH", "/api/counter/1", "{\"_atomics\": {\"n\": {\"increment\": 1}}}", -1, &a);
            const char *n = strstr(a.body, "\"n\":");
            r->values[i] = a.status == 200 && n ? atoll(n + 4) : -1;
            r->errors += a.status != 200;
            tally_answer_free(&a);
        } else if (tally_increment(r->t, "counter", 1, "n", 1, &r->values[i], &err) != 0) {
            r->errors++;
            r->values[i] = -1;
        }
    }
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_race(const char *db)
{
    int nthreads = (int)env_long("TALLY_LIB_TEST_THREADS", 16), per = (int)env_long("TALLY_LIB_TEST_PER_THREAD", 10000);
    tally *t = open_ok(db);
    CHECK(create_counter(t) == 1, "counter 1");
    racer *r = calloc((size_t)nthreads, sizeof *r);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    int64_t *all = calloc((size_t)nthreads * (size_t)per, sizeof *all);
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++) {
        r[i] = (racer){.t = t, .n = per, .values = all + (size_t)i * (size_t)per, .through_call = i % 2 == 1};
        pthread_create(&th[i], NULL, race, &r[i]);
    }
    int errors = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        errors += r[i].errors;
    }
    double dt = now_s() - t0;
    long total = (long)nthreads * per;
    CHECK(errors == 0, "%d calls failed", errors);
    int64_t v;
    CHECK(tally_increment(t, "counter", 1, "n", 0, &v, NULL) == 0 && v == total, "total %lld, not %ld", (long long)v,
          total);
    qsort(all, (size_t)total, sizeof *all, cmp64);
    long repeats = 0;
    for (long i = 0; i < total; i++)
        repeats += all[i] != i + 1; /* sorted, the answers are exactly 1..total: each seen once */
    CHECK(repeats == 0, "%ld returned values are not 1..%ld", repeats, total);
    fprintf(stderr, "  race: %d threads x %d increments in %.1f s (%.0f/s)\n", nthreads, per, dt, total / dt);
    tally_close(t);
    free(all);
    free(th);
    free(r);
}

/* ---- close with calls in flight --------------------------------------------------- */

typedef struct closer_load {
    tally *t;
    atomic_int answered, refused, other;
    atomic_int started;
    int status[4];
    double took[4];
} closer_load;

typedef struct waiter_arg {
    closer_load *l;
    int i;
} waiter_arg;

/* One blocking call that stays in flight: a lock acquire that waits (up to 20 s) for a lock held elsewhere. */
static void *lock_waiter(void *arg)
{
    waiter_arg *w = arg;
    tally_answer a;
    double t0 = now_s();
    atomic_fetch_add(&w->l->started, 1);
    tally_call(w->l->t, "POST", "/api/locks/busy/acquire", "{\"ttlMs\": 60000, \"waitMs\": 20000}", -1, &a);
    w->l->took[w->i] = now_s() - t0;
    w->l->status[w->i] = a.status;
    tally_answer_free(&a);
    return NULL;
}

static void on_counted(const tally_answer *a, void *ctx)
{
    closer_load *l = ctx;
    atomic_fetch_add(a->status == 200 ? &l->answered : a->status == 503 ? &l->refused : &l->other, 1);
}

static void test_close_in_flight(const char *db)
{
    tally *t = open_ok(db);
    CHECK(create_counter(t) == 1, "counter 1");
    closer_load l = {.t = t};
    /* Queued asynchronous writes: every one answered before tally_close returns. */
    for (int i = 0; i < 500; i++)
        tally_call_async(t, "PATCH", "/api/counter/1", "{\"_atomics\": {\"n\": {\"increment\": 1}}}", -1, on_counted,
                         &l);
    tally_close(t);
    CHECK(l.answered + l.refused == 500 && l.other == 0, "500 async: %d answered, %d refused, %d other",
          l.answered, l.refused, l.other);
    int acked = l.answered;
    /* Synchronous callers blocked in tally_call while another thread closes: each is answered and returns.
     * (Each makes one call: a call that starts after tally_close has returned would use a freed handle.) */
    t = open_ok(db);
    tally_answer a;
    CHECK(tally_call(t, "POST", "/api/locks/busy/acquire", "{\"ttlMs\": 60000}", -1, &a) == 0 && a.status == 200,
          "the lock: %s", a.body);
    tally_answer_free(&a);
    closer_load m = {.t = t};
    pthread_t th[4];
    waiter_arg wa[4];
    for (int i = 0; i < 4; i++) {
        wa[i] = (waiter_arg){&m, i};
        pthread_create(&th[i], NULL, lock_waiter, &wa[i]);
    }
    while (atomic_load(&m.started) < 4)
        usleep(1000);
    usleep(300 * 1000); /* they are inside tally_call, parked behind the lock */
    double c0 = now_s();
    CHECK(tally_close(t) == 0, "close with callers waiting");
    double closing = now_s() - c0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(m.status[i] == 409 && m.took[i] < 10, "waiter %d: %d after %.1f s", i, m.status[i], m.took[i]);
    }
    CHECK(closing < 10, "tally_close answered the waiters instead of outwaiting them (%.1f s)", closing);
    t = open_ok(db);
    int64_t v;
    CHECK(tally_increment(t, "counter", 1, "n", 0, &v, NULL) == 0 && v == acked,
          "every acknowledged increment is there: %lld, %d", (long long)v, acked);
    tally_close(t);
}

/* ---- two databases ---------------------------------------------------------------- */

static void test_two_databases(void)
{
    char a_dir[300], b_dir[300];
    fresh_dir(a_dir, sizeof a_dir, "two-a");
    fresh_dir(b_dir, sizeof b_dir, "two-b");
    tally *a = open_ok(a_dir), *b = open_ok(b_dir);
    create_counter(a);
    create_counter(b);
    int64_t va = 0, vb = 0;
    for (int i = 0; i < 10; i++)
        tally_increment(a, "counter", 1, "n", 1, &va, NULL);
    tally_increment(b, "counter", 1, "n", 100, &vb, NULL);
    CHECK(va == 10 && vb == 100, "apart: %lld %lld", (long long)va, (long long)vb);
    tally_close(a);
    CHECK(tally_increment(b, "counter", 1, "n", 1, &vb, NULL) == 0 && vb == 101, "b outlives a: %lld", (long long)vb);
    tally_close(b);
}

/* PostgreSQL: two handles on one database, as two servers share one (SQLite's folder lock refuses a second). */
static void test_shared_database(const char *db)
{
    if (!pg_url) {
        tally *a = open_ok(db), *b = NULL;
        tally_error err;
        CHECK(tally_open(SCHEMA, db, NULL, &b, &err) < 0 && !b && strstr(err.message, "locked"),
              "a second handle on a SQLite folder: %s", err.message);
        tally_close(a);
        return;
    }
    tally *a = open_ok(db), *b = open_ok(db);
    create_counter(a);
    int64_t v = 0;
    for (int i = 0; i < 50; i++) {
        tally_increment(a, "counter", 1, "n", 1, NULL, NULL);
        tally_increment(b, "counter", 1, "n", 1, &v, NULL);
    }
    CHECK(v == 100, "both handles' increments: %lld", (long long)v);
    tally_close(a);
    tally_close(b);
}

/* ---- kill -9 ----------------------------------------------------------------------- */

typedef struct child_arg {
    int fd; /* each acknowledged value is written here (8 bytes: atomic on a pipe) */
    tally *t;
} child_arg;

static void *child_load(void *arg)
{
    child_arg *c = arg;
    for (;;) {
        int64_t v;
        if (tally_increment(c->t, "counter", 1, "n", 1, &v, NULL) == 0 && write(c->fd, &v, sizeof v) != sizeof v)
            _exit(3);
    }
    return NULL;
}

static void test_kill9(const char *db)
{
    tally *t = open_ok(db);
    CHECK(create_counter(t) == 1, "counter 1");
    tally_close(t);
    int p[2];
    if (pipe(p) != 0)
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        tally *ct;
        tally_error err;
        if (tally_open(SCHEMA, db, NULL, &ct, &err) != 0)
            _exit(2);
        child_arg arg = {p[1], ct};
        pthread_t th[8];
        for (int i = 0; i < 8; i++)
            pthread_create(&th[i], NULL, child_load, &arg);
        pause();
        _exit(0);
    }
    close(p[1]);
    /* Read acknowledgements for a while, then kill the child mid-load. */
    int64_t max_acked = 0, v;
    long acked = 0;
    double end = now_s() + 1.0;
    while (now_s() < end && read(p[0], &v, sizeof v) == sizeof v) {
        acked++;
        if (v > max_acked)
            max_acked = v;
    }
    kill(pid, SIGKILL);
    /* What it wrote before dying was acknowledged too. */
    while (read(p[0], &v, sizeof v) == sizeof v) {
        acked++;
        if (v > max_acked)
            max_acked = v;
    }
    int status;
    waitpid(pid, &status, 0);
    close(p[0]);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the child was killed (%d)", status);
    CHECK(acked > 0, "the child acknowledged increments");
    t = open_ok(db);
    int64_t now = -1;
    CHECK(tally_increment(t, "counter", 1, "n", 0, &now, NULL) == 0 && now >= max_acked && now >= acked,
          "after kill -9: %lld, acknowledged %ld (highest %lld)", (long long)now, acked, (long long)max_acked);
    fprintf(stderr, "  kill -9: %ld acknowledged, %lld after reopening\n", acked, (long long)now);
    tally_close(t);
}

/* ---- PostgreSQL -------------------------------------------------------------------- */

static char pg_db_url[600], pg_admin[600], pg_name[64];

static int psql(const char *sql)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "psql -q -v ON_ERROR_STOP=1 '%s' -c '%s' >/dev/null 2>&1", pg_admin, sql);
    return system(cmd);
}

/* A fresh database on the server TALLY_TEST_PG_URL names: its URL, or NULL (skipped). */
static const char *pg_fresh(const char *tag)
{
    const char *base = getenv("TALLY_TEST_PG_URL");
    if (!base || !*base)
        return NULL;
    snprintf(pg_admin, sizeof pg_admin, "%s", base);
    snprintf(pg_name, sizeof pg_name, "tally_lib_%d_%s", (int)getpid(), tag);
    char sql[200];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", pg_name);
    psql(sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", pg_name);
    if (psql(sql) != 0) {
        fprintf(stderr, "  PostgreSQL: cannot create a database with psql at %s; skipped\n", base);
        return NULL;
    }
    /* Swap the URL's database (the part after the last '/', before any '?') for ours. */
    const char *slash = strrchr(base, '/'), *q = strchr(base, '?');
    if (!slash || slash < base + 13)
        snprintf(pg_db_url, sizeof pg_db_url, "%s/%s", base, pg_name);
    else
        snprintf(pg_db_url, sizeof pg_db_url, "%.*s/%s%s", (int)(slash - base), base, pg_name, q ? q : "");
    return pg_db_url;
}

static void pg_drop(void)
{
    char sql[200];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", pg_name);
    psql(sql);
}

typedef void (*backend_test)(const char *db);

static void run(const char *name, backend_test fn)
{
    double t0 = now_s();
    char db[700];
    if (pg_url) {
        if (!pg_fresh(name))
            return;
        snprintf(db, sizeof db, "%s", pg_db_url);
    } else {
        db_for(db, sizeof db, name);
    }
    fprintf(stderr, "%s %s\n", name, pg_url ? "(PostgreSQL)" : "(SQLite)");
    fn(db);
    if (pg_url)
        pg_drop();
    fprintf(stderr, "  %.2f s\n", now_s() - t0);
}

int main(void)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/tally_test_lib.%d", (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", tmp_root, tmp_root);
    if (system(cmd) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    test_open_errors();
    test_two_databases();
    const backend_test tests[] = {test_call, test_increment, test_async, test_race, test_close_in_flight, test_kill9,
                                  test_shared_database};
    const char *names[] = {"call", "increment", "async", "race", "close", "kill9", "shared"};
    for (int backend = 0; backend < 2; backend++) {
        if (backend == 1) {
            const char *base = getenv("TALLY_TEST_PG_URL");
            if (!base || !*base) {
                fprintf(stderr, "PostgreSQL: TALLY_TEST_PG_URL is not set; its tests are skipped\n");
                break;
            }
            pg_url = base;
        }
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
            run(names[i], tests[i]);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_root);
    if (system(cmd) != 0)
        failures++;
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    fprintf(stderr, "all libtally checks passed\n");
    return 0;
}
