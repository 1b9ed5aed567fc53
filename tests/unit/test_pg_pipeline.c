/* Unit tests for store/postgres/pipeline.c, the pure bookkeeping of the
 * PostgreSQL backend's round trips (no server): BEGIN and SAVEPOINT are
 * queued, not sent; RELEASE and ROLLBACK TO are deferred, and are dropped
 * when their SAVEPOINT never reached the server; a transaction whose BEGIN
 * never went out needs no COMMIT; what the server answered moves the state
 * on (a failed statement aborts the transaction, a savepoint rescues it, a
 * failed or skipped queued statement breaks it for good, a lost connection
 * too); the writer's request sequence costs one round trip a request; and
 * the prepared-statement cache (keyed by SQL and parameter types, bounded,
 * least recently used evicted with its name queued for DEALLOCATE, names
 * never reused, cleared on reconnect). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "store/postgres/pipeline.h"

/* The server answering every queued statement OK and the statement with stmt. */
static void trip(tally_pg_tx *t, tally_pg_outcome stmt, tally_pg_server_tx server)
{
    tally_pg_outcome ok[TALLY_PG_PENDING_MAX];
    for (int i = 0; i < TALLY_PG_PENDING_MAX; i++)
        ok[i] = TALLY_PG_OK;
    tally_pg_tx_sent(t, t->npending, ok, stmt, server);
}

static void expect_queue(const tally_pg_tx *t, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    assert_int_equal(t->npending, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(t->pending[i], va_arg(ap, int));
    va_end(ap);
}

static void test_lazy_begin_and_savepoint(void **state)
{
    (void)state;
    tally_pg_tx t;
    tally_pg_tx_reset(&t);
    assert_false(tally_pg_tx_usable(&t)); /* no transaction */
    assert_true(tally_pg_tx_begin(&t));
    assert_true(tally_pg_tx_savepoint(&t));
    expect_queue(&t, 2, TALLY_PG_CTL_BEGIN, TALLY_PG_CTL_SAVEPOINT);
    assert_true(tally_pg_tx_usable(&t));
    assert_false(tally_pg_tx_on_server(&t)); /* nothing sent yet: COMMIT needs no round trip */
    trip(&t, TALLY_PG_OK, TALLY_PG_SERVER_INTRANS);
    expect_queue(&t, 0);
    assert_true(t.begun);
    assert_int_equal(t.savepoints, 1);
    assert_true(tally_pg_tx_on_server(&t));
    assert_string_equal(tally_pg_ctl_sql(TALLY_PG_CTL_SAVEPOINT), "SAVEPOINT r");
    assert_string_equal(tally_pg_ctl_sql(TALLY_PG_CTL_ROLLBACK_TO), "ROLLBACK TO SAVEPOINT r");
}

/* The writer: savepoint, statement, release, for each request; then commit. */
static void test_one_round_trip_a_request(void **state)
{
    (void)state;
    tally_pg_tx t;
    tally_pg_tx_begin(&t);
    int trips = 0;
    for (int req = 0; req < 64; req++) {
        assert_true(tally_pg_tx_savepoint(&t));
        if (req == 0)
            expect_queue(&t, 2, TALLY_PG_CTL_BEGIN, TALLY_PG_CTL_SAVEPOINT);
        else /* the previous request's RELEASE goes with this one's SAVEPOINT and statement */
            expect_queue(&t, 2, TALLY_PG_CTL_RELEASE, TALLY_PG_CTL_SAVEPOINT);
        trip(&t, TALLY_PG_OK, TALLY_PG_SERVER_INTRANS);
        trips++;
        assert_int_equal(t.savepoints, 1); /* never more than one open: the savepoint budget holds */
        assert_true(tally_pg_tx_release(&t));
        expect_queue(&t, 1, TALLY_PG_CTL_RELEASE);
        assert_int_equal(t.savepoints, 1); /* deferred */
    }
    assert_true(tally_pg_tx_on_server(&t));
    trip(&t, TALLY_PG_OK, TALLY_PG_SERVER_IDLE); /* RELEASE + COMMIT */
    trips++;
    assert_int_equal(trips, 65);
    tally_pg_tx_ended(&t);
    assert_false(tally_pg_tx_usable(&t));
}

static void test_savepoint_never_sent(void **state)
{
    (void)state;
    tally_pg_tx t;
    tally_pg_tx_begin(&t);
    trip(&t, TALLY_PG_OK, TALLY_PG_SERVER_INTRANS); /* BEGIN went out with some statement */
    /* A request that sent nothing (parked, replayed): SAVEPOINT then RELEASE cancel out. */
    tally_pg_tx_savepoint(&t);
    assert_true(tally_pg_tx_release(&t));
    expect_queue(&t, 0);
    assert_int_equal(t.wanted, 0);
    /* ROLLBACK TO of a savepoint that never reached the server: nothing to send; it stays open. */
    tally_pg_tx_savepoint(&t);
    assert_true(tally_pg_tx_rollback_to(&t));
    expect_queue(&t, 1, TALLY_PG_CTL_SAVEPOINT);
    tally_pg_tx_release(&t);
    expect_queue(&t, 0);
    /* A whole transaction that sent nothing is not on the server: nothing to commit. */
    tally_pg_tx_begin(&t);
    tally_pg_tx_savepoint(&t);
    tally_pg_tx_release(&t);
    expect_queue(&t, 1, TALLY_PG_CTL_BEGIN);
    assert_false(tally_pg_tx_on_server(&t));
}

/* A failing request: its statement aborts the transaction, the savepoint
 * rescues it; the ROLLBACK TO and RELEASE go with the next request. */
static void test_failed_request_rescued(void **state)
{
    (void)state;
    tally_pg_tx t;
    tally_pg_tx_begin(&t);
    tally_pg_tx_savepoint(&t);
    trip(&t, TALLY_PG_FAILED, TALLY_PG_SERVER_INERROR);
    assert_true(t.aborted);
    assert_true(tally_pg_tx_usable(&t)); /* a savepoint can rescue it */
    assert_true(tally_pg_tx_rollback_to(&t));
    assert_false(t.aborted);
    assert_true(tally_pg_tx_usable(&t));
    tally_pg_tx_release(&t);
    tally_pg_tx_savepoint(&t);
    expect_queue(&t, 3, TALLY_PG_CTL_ROLLBACK_TO, TALLY_PG_CTL_RELEASE, TALLY_PG_CTL_SAVEPOINT);
    trip(&t, TALLY_PG_OK, TALLY_PG_SERVER_INTRANS);
    assert_false(t.aborted);
    assert_false(t.broken);
    assert_int_equal(t.savepoints, 1);
}

/* Without a savepoint (an interactive transaction), a failed statement leaves it unusable. */
static void test_failed_without_savepoint(void **state)
{
    (void)state;
    tally_pg_tx t;
    tally_pg_tx_begin(&t);
    trip(&t, TALLY_PG_FAILED, TALLY_PG_SERVER_INERROR);
    assert_true(t.aborted);
    assert_false(tally_pg_tx_usable(&t));
}

/* A queued statement that failed, or was skipped after an earlier failure
 * (PGRES_PIPELINE_ABORTED), breaks the transaction: no savepoint helps. */
static void test_queued_failure_breaks(void **state)
{
    (void)state;
    tally_pg_tx t;
    tally_pg_tx_begin(&t);
    tally_pg_tx_savepoint(&t);
    trip(&t, TALLY_PG_OK, TALLY_PG_SERVER_INTRANS);
    tally_pg_tx_release(&t);
    tally_pg_tx_savepoint(&t);
    tally_pg_outcome out[2] = {TALLY_PG_FAILED, TALLY_PG_SKIPPED}; /* RELEASE failed, SAVEPOINT skipped */
    tally_pg_tx_sent(&t, 2, out, TALLY_PG_SKIPPED, TALLY_PG_SERVER_INERROR);
    assert_true(t.broken);
    assert_int_equal(t.savepoints, 1);
    assert_false(tally_pg_tx_usable(&t));
    /* Even after a ROLLBACK TO is asked for. */
    tally_pg_tx_rollback_to(&t);
    assert_false(tally_pg_tx_usable(&t));
    /* A BEGIN that failed: the transaction never began. */
    tally_pg_tx_begin(&t);
    tally_pg_outcome no[1] = {TALLY_PG_FAILED};
    tally_pg_tx_sent(&t, 1, no, TALLY_PG_SKIPPED, TALLY_PG_SERVER_IDLE);
    assert_false(t.begun);
    assert_false(tally_pg_tx_usable(&t));
}

/* A lost connection, or a server that says the transaction is gone. */
static void test_lost_and_ended_by_server(void **state)
{
    (void)state;
    tally_pg_tx t;
    tally_pg_tx_begin(&t);
    tally_pg_tx_savepoint(&t);
    tally_pg_outcome out[2] = {TALLY_PG_FAILED, TALLY_PG_FAILED};
    tally_pg_tx_sent(&t, 2, out, TALLY_PG_FAILED, TALLY_PG_SERVER_UNKNOWN);
    assert_false(tally_pg_tx_usable(&t));
    tally_pg_tx_begin(&t);
    trip(&t, TALLY_PG_OK, TALLY_PG_SERVER_INTRANS);
    trip(&t, TALLY_PG_OK, TALLY_PG_SERVER_IDLE); /* e.g. idle_in_transaction_session_timeout */
    assert_true(t.broken);
    assert_false(tally_pg_tx_usable(&t));
}

/* ROLLBACK TO queued after an abort, then another statement failing before
 * it is sent: the server's INERROR after the round trip counts, not the queue. */
static void test_abort_after_rescue(void **state)
{
    (void)state;
    tally_pg_tx t;
    tally_pg_tx_begin(&t);
    tally_pg_tx_savepoint(&t);
    trip(&t, TALLY_PG_FAILED, TALLY_PG_SERVER_INERROR);
    tally_pg_tx_rollback_to(&t);
    trip(&t, TALLY_PG_FAILED, TALLY_PG_SERVER_INERROR); /* the ROLLBACK TO ran, then the idempotency write failed */
    assert_true(t.aborted);
    assert_true(tally_pg_tx_usable(&t)); /* the savepoint is still there */
    tally_pg_tx_rollback_to(&t);
    tally_pg_tx_release(&t);
    trip(&t, TALLY_PG_OK, TALLY_PG_SERVER_INTRANS);
    assert_int_equal(t.savepoints, 0);
    assert_false(t.aborted);
}

static void test_queue_bound(void **state)
{
    (void)state;
    tally_pg_tx t;
    tally_pg_tx_begin(&t);
    int n = 1;
    while (tally_pg_tx_savepoint(&t))
        n++;
    assert_int_equal(n, TALLY_PG_PENDING_MAX);
    assert_int_equal(t.npending, TALLY_PG_PENDING_MAX);
    trip(&t, TALLY_PG_OK, TALLY_PG_SERVER_INTRANS); /* sent on its own: room again */
    assert_true(tally_pg_tx_savepoint(&t));
}

/* ---- prepared statements ---- */

static void test_stmts_by_text_and_types(void **state)
{
    (void)state;
    static tally_pg_stmts c;
    tally_pg_stmts_init(&c);
    tally_pg_oid i8[1] = {20}, txt[1] = {25};
    const char *q = "UPDATE t SET n = n + $1 RETURNING n";
    tally_pg_stmt *a = tally_pg_stmts_get(&c, q, strlen(q), i8, 1);
    assert_non_null(a);
    assert_false(a->prepared);
    a->prepared = true;
    char name[24];
    snprintf(name, sizeof name, "%s", a->name);
    assert_ptr_equal(tally_pg_stmts_get(&c, q, strlen(q), i8, 1), a); /* the same text and types: the same one */
    tally_pg_stmt *b = tally_pg_stmts_get(&c, q, strlen(q), txt, 1);  /* other types: another statement */
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_string_not_equal(a->name, b->name);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.hits, 1);
    /* A failed PREPARE: dropped, and the next use prepares it again under a new name. */
    tally_pg_stmts_drop(&c, b);
    assert_int_equal(c.count, 1);
    tally_pg_stmt *b2 = tally_pg_stmts_get(&c, q, strlen(q), txt, 1);
    assert_false(b2->prepared);
    assert_string_not_equal(b2->name, name);
    /* Reconnected: nothing is prepared any more, and names go on growing. */
    tally_pg_stmts_clear(&c);
    assert_int_equal(c.count, 0);
    tally_pg_stmt *a2 = tally_pg_stmts_get(&c, q, strlen(q), i8, 1);
    assert_false(a2->prepared);
    assert_string_not_equal(a2->name, name);
    assert_null(tally_pg_stmts_get(&c, q, strlen(q), i8, TALLY_PG_STMT_TYPES_MAX + 1)); /* not cached */
    tally_pg_stmts_clear(&c);
}

static void test_stmts_eviction(void **state)
{
    (void)state;
    static tally_pg_stmts c;
    tally_pg_stmts_init(&c);
    char sql[64];
    for (int i = 0; i < TALLY_PG_STMTS_MAX; i++) {
        snprintf(sql, sizeof sql, "SELECT %d", i);
        tally_pg_stmt *s = tally_pg_stmts_get(&c, sql, strlen(sql), NULL, 0);
        assert_non_null(s);
        s->prepared = true;
    }
    assert_int_equal(c.count, TALLY_PG_STMTS_MAX);
    /* "SELECT 0" used again: "SELECT 1" is now the least recently used. */
    assert_non_null(tally_pg_stmts_get(&c, "SELECT 0", 8, NULL, 0));
    tally_pg_stmt *s = tally_pg_stmts_get(&c, "SELECT new", 10, NULL, 0);
    assert_non_null(s);
    assert_int_equal(c.count, TALLY_PG_STMTS_MAX);
    assert_int_equal(c.ndealloc, 1);
    assert_int_equal(c.evictions, 1);
    /* The evicted one is "SELECT 1": asked again, it is a new, unprepared entry. */
    assert_int_equal(c.misses, TALLY_PG_STMTS_MAX + 1);
    assert_non_null(tally_pg_stmts_get(&c, "SELECT 0", 8, NULL, 0));
    tally_pg_stmt *one = tally_pg_stmts_get(&c, "SELECT 1", 8, NULL, 0);
    assert_false(one->prepared);
    assert_int_equal(c.ndealloc, 2); /* another prepared one gave way */
    tally_pg_stmts_deallocated(&c, 2);
    assert_int_equal(c.ndealloc, 0);
    /* Eviction stops when the DEALLOCATE queue is full (inside a long transaction). */
    int evicted = 0;
    for (int i = 0; i < 4 * TALLY_PG_STMTS_MAX; i++) {
        snprintf(sql, sizeof sql, "SELECT x%d", i);
        tally_pg_stmt *x = tally_pg_stmts_get(&c, sql, strlen(sql), NULL, 0);
        if (!x)
            break;
        x->prepared = true;
        evicted++;
    }
    assert_int_equal(evicted, TALLY_PG_DEALLOC_MAX);
    assert_int_equal(c.ndealloc, TALLY_PG_DEALLOC_MAX);
    tally_pg_stmts_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lazy_begin_and_savepoint), cmocka_unit_test(test_one_round_trip_a_request),
        cmocka_unit_test(test_savepoint_never_sent),     cmocka_unit_test(test_failed_request_rescued),
        cmocka_unit_test(test_failed_without_savepoint), cmocka_unit_test(test_queued_failure_breaks),
        cmocka_unit_test(test_lost_and_ended_by_server), cmocka_unit_test(test_abort_after_rescue),
        cmocka_unit_test(test_queue_bound),              cmocka_unit_test(test_stmts_by_text_and_types),
        cmocka_unit_test(test_stmts_eviction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
