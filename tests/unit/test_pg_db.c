/* Unit tests for the PostgreSQL backend against a real PostgreSQL: set
 * TALLY_TEST_PG_URL=postgresql://USER@HOST:PORT/DB (a database the user may
 * CREATE DATABASE from); without it every test is skipped with a message.
 * Each run makes a fresh database tally_unit_<pid> and drops it after.
 * Covered: open (and a refused one naming the URL without its password),
 * migrate (twice: idempotent), every step kind (get, list with a cursor,
 * create, upsert both ways, update with a guard that holds and one that
 * does not, not found, updateMany with its crossing count, delete with a
 * restricting link, deleteMany, locks acquire/renew/check/release/list, a
 * GCRA limit allowed then refused), errors by SQLSTATE (unique, missing
 * link, overflow), transactions (savepoints rescue a failed step; without
 * one in_transaction turns false and COMMIT fails), the savepoint budget
 * (batch_max writing savepoints in one transaction), idempotency answers and
 * the sweep; the pipelined round trips (pipeline.c) on a real server: a
 * transaction that sent nothing commits without a word, prepared statements
 * outlive a ROLLBACK, a connection cut with statements queued fails the
 * COMMIT and is made again (its prepared statements forgotten) at the next
 * begin; more statements than the cache holds are evicted and DEALLOCATEd;
 * lock-release hints (LISTEN/NOTIFY) between connections and through the
 * exec/lock_hints thread, none with portable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "exec/lock_hints.h"
#include "exec/run.h"
#include "sql_util.h"
#include "store/backend.h"
#include "store/postgres/internal.h" /* the backend's pid, to cut its connection */

static const char PG_SCHEMA[] =
    "{\"models\": {"
    " \"customer\": {\"fields\": {\"name\": {\"type\": \"string\", \"required\": true},"
    "   \"email\": {\"type\": \"string\", \"unique\": true}, \"orderCount\": {\"type\": \"integer\", \"default\": 0}}},"
    " \"product\": {\"fields\": {\"sku\": {\"type\": \"string\", \"required\": true, \"unique\": true},"
    "   \"stock\": {\"type\": \"integer\", \"default\": 0, \"min\": 0}, \"price\": {\"type\": \"float\"}}},"
    " \"event\": {\"fields\": {\"seats\": {\"type\": \"integer\", \"default\": 0, \"min\": 0}}},"
    " \"ticket\": {\"fields\": {\"event\": {\"type\": \"belongsTo\", \"model\": \"event\", \"required\": true}}}"
    "}, \"limits\": {\"login\": {\"rate\": 2, \"periodMs\": 60000, \"burst\": 2}}}";

static char url[512];
static tally_schema *schema;
static tally_store *st;

static bool have_pg(void) { return url[0] != '\0'; }

#define NEED_PG()                                                                                                 \
    do {                                                                                                          \
        if (!have_pg())                                                                                           \
            skip();                                                                                               \
    } while (0)

static void admin(const char *base, const char *sql)
{
    PGconn *c = PQconnectdb(base);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", base, PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static int group_setup(void **state)
{
    (void)state;
    if (setup(NULL) || parse_schema(PG_SCHEMA, &schema))
        return -1;
    const char *base = getenv("TALLY_TEST_PG_URL");
    if (!base || !*base) {
        fprintf(stderr, "test_pg_db: TALLY_TEST_PG_URL is not set, so the PostgreSQL tests are skipped "
                        "(set it to postgresql://USER@HOST:PORT/DB to run them)\n");
        return 0;
    }
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE tally_unit_%d", (int)getpid());
    admin(base, sql);
    /* The same URL, with the new database as its path. */
    const char *auth = strstr(base, "://");
    auth = auth ? auth + 3 : base;
    size_t host_end = strcspn(auth, "/?");
    const char *query = strchr(auth, '?');
    snprintf(url, sizeof url, "%.*s/tally_unit_%d%s", (int)(auth - base + (long)host_end), base, (int)getpid(),
             query ? query : "");
    tally_store_options opt = {.role = TALLY_STORE_WRITER};
    tally_error err;
    if (tally_store_open(url, schema, &opt, &st, &err) || tally_store_migrate(st, 0, &err)) {
        fprintf(stderr, "test_pg_db: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tally_store_close(st);
    if (have_pg()) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS tally_unit_%d WITH (FORCE)", (int)getpid());
        admin(getenv("TALLY_TEST_PG_URL"), sql);
    }
    tally_schema_free(schema);
    return teardown(NULL);
}

/* Runs every step of plan on st; the return code of the first failure. */
static int run(tally_plan *plan, tally_error *err)
{
    plan->now_ms = 1700000000000;
    tally_error_clear(err);
    return tally_run_plan(st, plan, err);
}

static int64_t create(const char *model, const char *sq)
{
    tally_plan *plan = decode(schema, model, 0, sq);
    tally_error err;
    if (run(plan, &err))
        fail_msg("create %s: %s", model, err.message);
    int64_t id = plan->results[plan->answer_step].record.cols[TALLY_COL_ID].u.i;
    tally_plan_free(plan);
    return id;
}

static void test_open_refused(void **state)
{
    (void)state;
    NEED_PG();
    tally_store *bad;
    tally_error err;
    tally_store_options opt = {.role = TALLY_STORE_READER};
    assert_int_equal(tally_store_open("postgresql://ada:hunter2@127.0.0.1:1/nowhere", schema, &opt, &bad, &err),
                     -TALLY_UNAVAILABLE);
    assert_null(bad);
    assert_null(strstr(err.message, "hunter2"));
    assert_non_null(strstr(err.message, "postgresql://ada@127.0.0.1:1/nowhere"));
    /* Migrating again changes nothing. */
    assert_int_equal(tally_store_migrate(st, 0, &err), 0);
}

static void test_records(void **state)
{
    (void)state;
    NEED_PG();
    tally_error err;
    int64_t a = create("product", "{'sku': 'apple', 'stock': 10, 'price': 0.5}");
    int64_t b = create("product", "{'sku': 'pear', 'stock': 1}");
    assert_true(b > a);
    /* get */
    tally_plan *plan = tally_plan_new(schema);
    tally_step *s = tally_plan_add_step(plan, TALLY_OP_GET, M(schema, "product"));
    s->path = "";
    s->id = tally_value_int(a);
    assert_int_equal(run(plan, &err), 0);
    tally_value *cols = plan->results[0].record.cols;
    assert_int_equal(cols[0].u.i, a);
    assert_int_equal(cols[col(M(schema, "product"), "stock")].u.i, 10);
    assert_int_equal(cols[col(M(schema, "product"), "price")].kind, TALLY_VALUE_FLOAT);
    assert_true(cols[col(M(schema, "product"), "sku")].kind == TALLY_VALUE_TEXT &&
                memcmp(cols[col(M(schema, "product"), "sku")].u.text.ptr, "apple", 5) == 0);
    tally_plan_free(plan);
    /* list: a page of 1, then the next after its cursor */
    plan = tally_plan_new(schema);
    s = list_step(plan, M(schema, "product"), NULL);
    s->first = 1;
    assert_int_equal(run(plan, &err), 0);
    assert_int_equal(plan->results[0].nrecords, 1);
    assert_true(plan->results[0].has_next);
    tally_plan_free(plan);
    plan = tally_plan_new(schema);
    s = list_step(plan, M(schema, "product"), NULL);
    s->first = 5;
    s->after = tally_arena_alloc(&plan->arena, sizeof *s->after);
    s->after[0] = tally_value_int(a);
    assert_int_equal(run(plan, &err), 0);
    assert_int_equal(plan->results[0].nrecords, 1);
    assert_false(plan->results[0].has_next);
    assert_int_equal(plan->results[0].records[0].cols[0].u.i, b);
    tally_plan_free(plan);
    /* update with atomics; an invariant; a guard that fails with the current record; not found */
    plan = decode(schema, "product", a, "{'_atomics': {'stock': [{'increment': 5}, {'decrement': 2}]}}");
    assert_int_equal(run(plan, &err), 0);
    assert_int_equal(plan->results[0].record.cols[col(M(schema, "product"), "stock")].u.i, 13);
    tally_plan_free(plan);
    plan = decode(schema, "product", a, "{'_atomics': {'stock': {'decrement': 100}}}");
    assert_int_equal(run(plan, &err), -TALLY_INVARIANT);
    assert_string_equal(err.path, "_atomics.stock");
    assert_string_equal(err.message, "stock would go below its min of 0; nothing was changed");
    tally_plan_free(plan);
    plan = decode(schema, "product", a, "{'_where': {'stock': {'greaterThan': 100}}, '_atomics': {'stock': {'decrement': 1}}}");
    assert_int_equal(run(plan, &err), -TALLY_GUARD_FAILED);
    assert_int_equal(plan->results[0].record.cols[col(M(schema, "product"), "stock")].u.i, 13);
    tally_plan_free(plan);
    plan = decode(schema, "product", 999999, "{'stock': 1}");
    assert_int_equal(run(plan, &err), -TALLY_NOT_FOUND);
    assert_string_equal(err.message, "product 999999 does not exist");
    tally_plan_free(plan);
    /* an integer field compared with a float past 2^53 stays exact */
    plan = decode(schema, "product", a, "{'stock': 9007199254740993}");
    assert_int_equal(run(plan, &err), 0);
    tally_plan_free(plan);
    plan = decode(schema, "product", a, "{'_where': {'stock': {'greaterThan': 9007199254740992.0}}, 'sku': 'apple2'}");
    assert_int_equal(run(plan, &err), 0);
    tally_plan_free(plan);
    plan = decode(schema, "product", a, "{'_atomics': {'stock': {'increment': 9223372036854775807}}}");
    assert_int_equal(run(plan, &err), -TALLY_OVERFLOW);
    assert_string_equal(err.path, "_atomics.stock");
    tally_plan_free(plan);
    /* unique */
    plan = decode(schema, "product", 0, "{'sku': 'pear'}");
    assert_int_equal(run(plan, &err), -TALLY_UNIQUE_VIOLATION);
    assert_string_equal(err.path, "sku");
    tally_plan_free(plan);
}

static tally_plan *bulk(bool update, const char *model, const char *sq)
{
    json_t *body = J(sq);
    tally_plan *plan = tally_plan_new(schema);
    tally_error err;
    int rc = update ? tally_decode_update_many(plan, M(schema, model), body, &err)
                    : tally_decode_delete_many(plan, M(schema, model), body, &err);
    json_decref(body);
    if (rc < 0)
        fail_msg("refused: %s", err.message);
    return plan;
}

static void test_bulk_upsert_links(void **state)
{
    (void)state;
    NEED_PG();
    tally_error err;
    create("event", "{'seats': 1}");
    create("event", "{'seats': 5}");
    tally_plan *plan = bulk(true, "event", "{'filter': {}, '_atomics': {'seats': {'decrement': 2}}}");
    assert_int_equal(run(plan, &err), -TALLY_INVARIANT);
    assert_string_equal(err.message, "seats would go below its min of 0; nothing was changed (1 matching row would cross it)");
    tally_plan_free(plan);
    plan = bulk(true, "event", "{'filter': {}, '_atomics': {'seats': {'increment': 1}}}");
    assert_int_equal(run(plan, &err), 0);
    assert_int_equal(plan->results[0].count, 2);
    tally_plan_free(plan);
    /* upsert: inserts, then updates */
    for (int i = 0; i < 2; i++) {
        json_t *body = J("{'on': 'email', 'create': {'name': 'A', 'email': 'a@x'}, "
                         "'update': {'_atomics': {'orderCount': {'increment': 1}}}}");
        plan = tally_plan_new(schema);
        assert_true(tally_decode_upsert(plan, M(schema, "customer"), body, &err) >= 0);
        json_decref(body);
        assert_int_equal(run(plan, &err), 0);
        assert_int_equal(plan->results[0].created, i == 0);
        assert_int_equal(plan->results[0].record.cols[col(M(schema, "customer"), "orderCount")].u.i, i);
        tally_plan_free(plan);
    }
    /* links: a missing one, a restricting one, then deleteMany */
    int64_t ev = create("event", "{}");
    create("ticket", "{'event': {'_link': 1}}");
    char body[64];
    snprintf(body, sizeof body, "{'event': %lld}", (long long)ev);
    create("ticket", body);
    plan = decode(schema, "ticket", 0, "{'event': 424242}");
    assert_int_equal(run(plan, &err), -TALLY_VALIDATION);
    assert_string_equal(err.message, "event: there is no event with id 424242 to link to; create it first or link an existing one");
    tally_plan_free(plan);
    plan = tally_plan_new(schema);
    tally_step *d = tally_plan_add_step(plan, TALLY_OP_DELETE, M(schema, "event"));
    d->path = "";
    d->id = tally_value_int(ev);
    assert_int_equal(run(plan, &err), -TALLY_CONFLICT);
    assert_non_null(strstr(err.message, "is still linked from 1 ticket record(s) (field 'event', onDelete restrict)"));
    tally_plan_free(plan);
    plan = bulk(false, "ticket", "{'filter': {}}");
    assert_int_equal(run(plan, &err), 0);
    assert_int_equal(plan->results[0].count, 2);
    tally_plan_free(plan);
    plan = tally_plan_new(schema);
    d = tally_plan_add_step(plan, TALLY_OP_DELETE, M(schema, "event"));
    d->path = "";
    d->id = tally_value_int(ev);
    assert_int_equal(run(plan, &err), 0);
    assert_int_equal(plan->results[0].id, ev);
    assert_int_equal(run(plan, &err), -TALLY_NOT_FOUND);
    tally_plan_free(plan);
}

static tally_step *lock_step(tally_plan *plan, tally_op op, const char *name, const char *token, int64_t ttl)
{
    tally_step *s = tally_plan_add_step(plan, op, NULL);
    s->path = "";
    s->name = name;
    s->name_len = strlen(name);
    s->token = token;
    s->ttl_ms = ttl;
    return s;
}

static void test_locks_and_limits(void **state)
{
    (void)state;
    NEED_PG();
    tally_error err;
    tally_plan *plan = tally_plan_new(schema);
    lock_step(plan, TALLY_OP_LOCK_ACQUIRE, "job", NULL, 10000);
    assert_int_equal(run(plan, &err), 0);
    char token[33];
    memcpy(token, plan->results[0].token, sizeof token);
    assert_int_equal(strlen(token), 32);
    int64_t fence = plan->results[0].fence;
    assert_int_equal(run(plan, &err), -TALLY_LOCKED); /* held */
    tally_plan_free(plan);
    const tally_op ops[] = {TALLY_OP_LOCK_RENEW, TALLY_OP_LOCK_CHECK, TALLY_OP_LOCK_LIST, TALLY_OP_LOCK_RELEASE};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        plan = tally_plan_new(schema);
        lock_step(plan, ops[i], "job", token, 20000);
        assert_int_equal(run(plan, &err), 0);
        if (ops[i] == TALLY_OP_LOCK_LIST) {
            assert_int_equal(plan->results[0].nlocks, 1);
            assert_int_equal(plan->results[0].locks[0].fence, fence);
        } else {
            assert_int_equal(plan->results[0].fence, fence);
        }
        tally_plan_free(plan);
    }
    plan = tally_plan_new(schema);
    lock_step(plan, TALLY_OP_LOCK_RELEASE, "job", token, 0);
    assert_int_equal(run(plan, &err), -TALLY_LOCK_LOST);
    tally_plan_free(plan);
    /* The fence only grows; a name need not be UTF-8. */
    plan = tally_plan_new(schema);
    lock_step(plan, TALLY_OP_LOCK_ACQUIRE, "job", NULL, 1000);
    lock_step(plan, TALLY_OP_LOCK_ACQUIRE, "\xed\xa0\x80", NULL, 1000);
    assert_int_equal(run(plan, &err), 0);
    assert_int_equal(plan->results[0].fence, fence + 1);
    tally_plan_free(plan);
    /* GCRA: burst 2, then refused with a retry time. */
    for (int i = 0; i < 3; i++) {
        plan = tally_plan_new(schema);
        tally_step *s = lock_step(plan, TALLY_OP_LIMIT, "user-1", NULL, 0);
        s->limit = tally_schema_limit(schema, "login", 5);
        s->cost = 1;
        int rc = run(plan, &err);
        assert_int_equal(rc, i < 2 ? 0 : -TALLY_RATE_LIMITED);
        assert_int_equal(plan->results[0].allowed, i < 2);
        assert_int_equal(plan->results[0].remaining, i == 0 ? 1 : 0);
        if (i == 2)
            assert_int_equal(plan->results[0].retry_after_ms, 30000);
        tally_plan_free(plan);
    }
}

static void test_transactions(void **state)
{
    (void)state;
    NEED_PG();
    tally_error err;
    int64_t p = create("product", "{'sku': 'tx', 'stock': 0}");
    /* A failed step inside a savepoint: the transaction goes on after ROLLBACK TO. */
    assert_int_equal(tally_store_begin(st, &err), 0);
    assert_int_equal(tally_store_savepoint(st, &err), 0);
    tally_plan *plan = decode(schema, "product", p, "{'_atomics': {'stock': {'decrement': 1}}}");
    assert_int_equal(run(plan, &err), -TALLY_INVARIANT);
    assert_true(tally_store_in_transaction(st));
    assert_int_equal(tally_store_rollback_to(st, &err), 0);
    assert_int_equal(tally_store_release(st, &err), 0);
    tally_plan_free(plan);
    /* The savepoint budget: batch_max writing savepoints in one transaction. */
    int n = tally_store_caps(st)->batch_max;
    for (int i = 0; i < n; i++) {
        assert_int_equal(tally_store_savepoint(st, &err), 0);
        plan = decode(schema, "product", p, "{'_atomics': {'stock': {'increment': 1}}}");
        assert_int_equal(run(plan, &err), 0);
        tally_plan_free(plan);
        assert_int_equal(tally_store_release(st, &err), 0);
    }
    assert_int_equal(tally_store_commit(st, &err), 0);
    assert_false(tally_store_in_transaction(st));
    plan = tally_plan_new(schema);
    tally_step *g = tally_plan_add_step(plan, TALLY_OP_GET, M(schema, "product"));
    g->path = "";
    g->id = tally_value_int(p);
    assert_int_equal(run(plan, &err), 0);
    assert_int_equal(plan->results[0].record.cols[col(M(schema, "product"), "stock")].u.i, n);
    tally_plan_free(plan);
    /* Without a savepoint a failure ends the transaction: not in_transaction, and COMMIT fails. */
    assert_int_equal(tally_store_begin(st, &err), 0);
    plan = decode(schema, "product", p, "{'_atomics': {'stock': {'decrement': 1000}}}");
    assert_int_equal(run(plan, &err), -TALLY_INVARIANT);
    tally_plan_free(plan);
    assert_false(tally_store_in_transaction(st));
    assert_int_equal(tally_store_commit(st, &err), -TALLY_UNAVAILABLE);
    tally_store_rollback(st);
    assert_false(tally_store_in_transaction(st));
}

static int64_t stock_of(int64_t p)
{
    tally_plan *plan = tally_plan_new(schema);
    tally_step *g = tally_plan_add_step(plan, TALLY_OP_GET, M(schema, "product"));
    g->path = "";
    g->id = tally_value_int(p);
    tally_error err;
    assert_int_equal(run(plan, &err), 0);
    int64_t v = plan->results[0].record.cols[col(M(schema, "product"), "stock")].u.i;
    tally_plan_free(plan);
    return v;
}

static void increment(int64_t p, int by, int want)
{
    char body[96];
    snprintf(body, sizeof body, "{'_atomics': {'stock': {'increment': %d}}}", by);
    tally_plan *plan = decode(schema, "product", p, body);
    tally_error err;
    assert_int_equal(run(plan, &err), want);
    tally_plan_free(plan);
}

static void test_pipeline(void **state)
{
    (void)state;
    NEED_PG();
    tally_error err;
    int64_t p = create("product", "{'sku': 'pipe', 'stock': 0}");
    /* Nothing sent: begin, savepoint, release, commit cost no round trip and succeed. */
    assert_int_equal(tally_store_begin(st, &err), 0);
    assert_int_equal(tally_store_savepoint(st, &err), 0);
    assert_int_equal(tally_store_rollback_to(st, &err), 0);
    assert_int_equal(tally_store_release(st, &err), 0);
    assert_true(tally_store_in_transaction(st));
    assert_int_equal(tally_store_commit(st, &err), 0);
    /* A batch: one good request, one failing, one good; deferred RELEASE and ROLLBACK TO. */
    assert_int_equal(tally_store_begin(st, &err), 0);
    assert_int_equal(tally_store_savepoint(st, &err), 0);
    increment(p, 1, 0);
    assert_int_equal(tally_store_release(st, &err), 0);
    assert_int_equal(tally_store_savepoint(st, &err), 0);
    increment(p, -100, -TALLY_INVARIANT);
    assert_true(tally_store_in_transaction(st));
    assert_int_equal(tally_store_rollback_to(st, &err), 0);
    assert_int_equal(tally_store_release(st, &err), 0);
    assert_int_equal(tally_store_savepoint(st, &err), 0);
    increment(p, 2, 0);
    assert_int_equal(tally_store_release(st, &err), 0);
    assert_int_equal(tally_store_commit(st, &err), 0);
    assert_int_equal(stock_of(p), 3);
    /* Prepared inside a transaction that rolls back: still there for the next one. */
    assert_int_equal(tally_store_begin(st, &err), 0);
    increment(p, 5, 0);
    tally_store_rollback(st);
    assert_int_equal(tally_store_begin(st, &err), 0);
    increment(p, 5, 0);
    assert_int_equal(tally_store_commit(st, &err), 0);
    assert_int_equal(stock_of(p), 8);
    /* The connection cut with a RELEASE queued: COMMIT fails, nothing of it is applied. */
    tally_pg *pg = (tally_pg *)st;
    assert_true(pg->stmts.count > 0);
    assert_int_equal(tally_store_begin(st, &err), 0);
    assert_int_equal(tally_store_savepoint(st, &err), 0);
    increment(p, 1, 0);
    assert_int_equal(tally_store_release(st, &err), 0);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(pg->conn));
    PGconn *c = PQconnectdb(url);
    PQclear(PQexec(c, sql));
    PQfinish(c);
    usleep(100000);
    assert_int_equal(tally_store_commit(st, &err), -TALLY_UNAVAILABLE);
    tally_store_rollback(st);
    assert_false(tally_store_in_transaction(st));
    /* The next begin connects again; the statements are prepared again. */
    assert_int_equal(tally_store_begin(st, &err), 0);
    assert_int_equal(pg->stmts.count, 0);
    increment(p, 1, 0);
    assert_int_equal(tally_store_commit(st, &err), 0);
    assert_int_equal(stock_of(p), 9);
    /* More statements than the cache holds: the least recently used give way,
     * are DEALLOCATEd at the next round trip, and the server keeps no more than the cache. */
    char q[64];
    for (int i = 0; i < TALLY_PG_STMTS_MAX + 40; i++) {
        snprintf(q, sizeof q, "SELECT %d AS n", i);
        PGresult *r;
        assert_int_equal(tally_pg_query(pg, NULL, q, NULL, 0, &r, NULL), 0);
        assert_int_equal(tally_pg_int(r, 0, 0), i);
        PQclear(r);
    }
    assert_true(pg->stmts.evictions >= 40);
    PGresult *r;
    assert_int_equal(tally_pg_query(pg, NULL, "SELECT count(*) FROM pg_prepared_statements", NULL, 0, &r, NULL), 0);
    assert_true(tally_pg_int(r, 0, 0) <= TALLY_PG_STMTS_MAX + 1 + TALLY_PG_CTL_COUNT);
    PQclear(r);
    assert_true(pg->stmts.ndealloc <= 1); /* the name the count itself evicted goes out next time */
    assert_int_equal(stock_of(p), 9);     /* an evicted statement, prepared again */
}

static void test_idempotency_and_sweep(void **state)
{
    (void)state;
    NEED_PG();
    tally_error err;
    tally_idem_key k = {.method = "POST", .path = "/api/x", .key = "k1"};
    memset(k.hash, 7, sizeof k.hash);
    tally_idem_answer a = {0};
    assert_int_equal(tally_store_begin(st, &err), 0);
    assert_int_equal(tally_store_idem_get(st, &k, &a, &err), 0);
    assert_int_equal(tally_store_idem_put(st, &k, 201, "{\"id\":1}\0x", 10, 1000, &err), 0);
    assert_int_equal(tally_store_commit(st, &err), 0);
    assert_int_equal(tally_store_idem_get(st, &k, &a, &err), 1);
    assert_true(a.same_body);
    assert_int_equal(a.status, 201);
    assert_int_equal(a.len, 10);
    assert_memory_equal(a.body, "{\"id\":1}\0x", 10);
    free(a.body);
    k.hash[0] = 8;
    assert_int_equal(tally_store_idem_get(st, &k, &a, &err), 1);
    assert_false(a.same_body);
    free(a.body);
    /* The sweep removes answers older than the ttl. */
    assert_int_equal(tally_store_begin(st, &err), 0);
    assert_int_equal(tally_store_sweep(st, 5000, 1000), 0);
    assert_int_equal(tally_store_commit(st, &err), 0);
    assert_int_equal(tally_store_idem_get(st, &k, &a, &err), 0);
}

/* What a listener heard, in order, as "name|name|…" (bytes as \xNN where not printable). */
typedef struct heard {
    pthread_mutex_t mu;
    char text[512];
    int n;
} heard;

static void hear(void *ctx, const char *name, size_t len)
{
    heard *h = ctx;
    pthread_mutex_lock(&h->mu);
    size_t at = strlen(h->text);
    if (h->n++)
        at += (size_t)snprintf(h->text + at, sizeof h->text - at, "|");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        at += (size_t)snprintf(h->text + at, sizeof h->text - at, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
    }
    pthread_mutex_unlock(&h->mu);
}

static int heard_count(heard *h)
{
    pthread_mutex_lock(&h->mu);
    int n = h->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* Lock-release hints: sent on one connection, heard on another (LISTEN/NOTIFY),
 * names that are not UTF-8 kept byte for byte; the exec/lock_hints thread
 * delivers what other connections send and sends what it is given; with
 * portable, no listening at all. */
static void test_hints(void **state)
{
    (void)state;
    NEED_PG();
    tally_store_options ho = {.role = TALLY_STORE_HINTS};
    tally_store *listener, *sender;
    tally_error err;
    if (tally_store_open(url, schema, &ho, &listener, &err) || tally_store_open(url, schema, &ho, &sender, &err))
        fail_msg("open: %s", err.message);
    int fd = listener->ops->hint_listen(listener, &err);
    assert_true(fd >= 0);
    const char *names[] = {"job", "caf\xc3\xa9", "\xff\x01raw"};
    const size_t lens[] = {3, 5, 5};
    assert_int_equal(sender->ops->hint_send(sender, names, lens, 3, &err), 0);
    heard h = {.mu = PTHREAD_MUTEX_INITIALIZER};
    for (int i = 0; i < 200 && h.n < 3; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 10);
        assert_int_equal(listener->ops->hint_take(listener, hear, &h, &err), 0);
    }
    assert_string_equal(h.text, "job|caf\\xc3\\xa9|\\xff\\x01raw");

    /* The hints thread: hears the sender's names; what it is given reaches the listener. */
    heard t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tally_lock_hints *hints;
    tally_store_options wo = {.role = TALLY_STORE_WRITER};
    assert_int_equal(tally_lock_hints_start(url, schema, &wo, hear, &t, &hints, &err), 0);
    for (int i = 0; i < 500 && !tally_lock_hints_get_stats(hints).listening; i++)
        usleep(10000);
    assert_true(tally_lock_hints_get_stats(hints).listening);
    assert_int_equal(sender->ops->hint_send(sender, names, lens, 1, &err), 0);
    tally_lock_hints_released(hints, "order-7", 7);
    tally_lock_hints_released(hints, "order-7", 7); /* merged while waiting, or sent again: heard at least once */
    for (int i = 0; i < 500 && heard_count(&t) < 2; i++)
        usleep(10000);
    pthread_mutex_lock(&t.mu);
    bool got_job = strstr(t.text, "job") != NULL, got_order = strstr(t.text, "order-7") != NULL;
    pthread_mutex_unlock(&t.mu);
    assert_true(got_job);   /* another connection's release */
    assert_true(got_order); /* its own, heard back like every server's */
    assert_true(tally_lock_hints_get_stats(hints).sent >= 1);
    tally_lock_hints_stop(hints);
    tally_lock_hints_free(hints);
    h.n = 0;
    h.text[0] = 0;
    for (int i = 0; i < 200 && h.n < 1; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 10);
        assert_int_equal(listener->ops->hint_take(listener, hear, &h, &err), 0);
    }
    assert_non_null(strstr(h.text, "order-7")); /* the thread's send reached the other listener */
    tally_store_close(listener);
    tally_store_close(sender);

    tally_store_options po = {.role = TALLY_STORE_HINTS, .portable = true};
    tally_store *portable;
    if (tally_store_open(url, schema, &po, &portable, &err))
        fail_msg("open: %s", err.message);
    assert_true(portable->ops->hint_listen(portable, &err) < 0);
    assert_non_null(strstr(err.message, "--portable"));
    tally_store_close(portable);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_refused),   cmocka_unit_test(test_records),
        cmocka_unit_test(test_bulk_upsert_links), cmocka_unit_test(test_locks_and_limits),
        cmocka_unit_test(test_transactions),   cmocka_unit_test(test_idempotency_and_sweep),
        cmocka_unit_test(test_pipeline),       cmocka_unit_test(test_hints),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
