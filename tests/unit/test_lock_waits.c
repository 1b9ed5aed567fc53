/*
 * test_lock_waits.c — the writer's parked lock acquires (exec/lock_waits.c):
 * first come first served per name, a woken first waiter that stays first if
 * it must wait again, one waiter woken per ended lease (never the whole line),
 * grants and renewals moving the lease the line watches, waits that run out,
 * repeats found by idempotency key, names kept apart, and on a database
 * other servers share, the first waiter polling every poll_ns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exec/lock_waits.h"

static tally_job *acquire_job(const char *name, uint64_t wait_until_ns)
{
    tally_plan *plan = tally_plan_new(NULL);
    tally_step *s = tally_plan_add_step(plan, TALLY_OP_LOCK_ACQUIRE, NULL);
    s->name = tally_arena_strndup(&plan->arena, name, strlen(name));
    s->name_len = strlen(name);
    s->wait_ms = 1000;
    tally_job *job = tally_job_new(plan);
    job->wait_until_ns = wait_until_ns;
    return job;
}

static int count(tally_job *list)
{
    int n = 0;
    for (; list; list = list->next)
        n++;
    return n;
}

static void free_list(tally_job *list)
{
    for (tally_job *next; list; list = next) {
        next = list->next;
        tally_job_free(list);
    }
}

static void test_only_lone_acquires_wait(void **state)
{
    (void)state;
    tally_job *a = acquire_job("x", 10);
    assert_non_null(tally_lock_acquire_step(a));
    tally_plan *plan = tally_plan_new(NULL);
    tally_plan_add_step(plan, TALLY_OP_LOCK_RELEASE, NULL);
    tally_job *r = tally_job_new(plan);
    assert_null(tally_lock_acquire_step(r));
    tally_job_free(a);
    tally_job_free(r);
}

static void test_release_wakes_first_in_arrival_order(void **state)
{
    (void)state;
    tally_lock_waits lw = {0};
    tally_job *j[3];
    for (int i = 0; i < 3; i++) {
        j[i] = acquire_job("L", UINT64_MAX);
        tally_lock_waits_park(&lw, j[i], 5000);
    }
    assert_true(tally_lock_waits_has(&lw, "L", 1));
    assert_false(tally_lock_waits_has(&lw, "M", 1));
    for (int i = 0; i < 3; i++) {
        tally_job *first = tally_lock_waits_released(&lw, "L", 1);
        assert_ptr_equal(first, j[i]);
        assert_true(first->woken);
        assert_null(first->next);
        tally_job_free(first);
    }
    assert_false(tally_lock_waits_any(&lw));
    assert_null(tally_lock_waits_released(&lw, "L", 1));
    tally_lock_waits_free(&lw);
}

static void test_woken_waiter_stays_first(void **state)
{
    (void)state;
    tally_lock_waits lw = {0};
    tally_job *a = acquire_job("L", UINT64_MAX), *b = acquire_job("L", UINT64_MAX);
    tally_lock_waits_park(&lw, a, 5000);
    tally_lock_waits_park(&lw, b, 5000);
    tally_job *first = tally_lock_waits_released(&lw, "L", 1);
    assert_ptr_equal(first, a);
    tally_lock_waits_park(&lw, first, 9000); /* someone else got it: a waits again, still first */
    assert_ptr_equal(tally_lock_waits_released(&lw, "L", 1), a);
    assert_ptr_equal(tally_lock_waits_released(&lw, "L", 1), b);
    tally_job_free(a);
    tally_job_free(b);
    tally_lock_waits_free(&lw);
}

static void test_ended_lease_wakes_one_waiter(void **state)
{
    (void)state;
    tally_lock_waits lw = {0};
    tally_job *j[3];
    for (int i = 0; i < 3; i++) {
        j[i] = acquire_job("L", 1000000000000ull);
        tally_lock_waits_park(&lw, j[i], 100);
    }
    tally_job *expired = NULL, *wake = NULL;
    /* before the lease ends: nothing, and the lease end (or the first wait deadline) is due */
    uint64_t due = tally_lock_waits_tend(&lw, 1000, 50, &expired, &wake);
    assert_null(wake);
    assert_null(expired);
    assert_true(due > 1000);
    /* the lease ended: exactly the first waiter is woken, the others keep their place */
    tally_lock_waits_tend(&lw, 2000, 150, &expired, &wake);
    assert_int_equal(count(wake), 1);
    assert_ptr_equal(wake, j[0]);
    assert_null(expired);
    /* while the woken one tries, the line's lease is unknown: tending again wakes nobody */
    tally_job *wake2 = NULL;
    tally_lock_waits_tend(&lw, 3000, 10000, &expired, &wake2);
    assert_null(wake2);
    /* it got the lock until 500: the next waiter wakes when that lease ends, not before */
    tally_lock_waits_leased(&lw, "L", 1, 500);
    tally_lock_waits_tend(&lw, 4000, 400, &expired, &wake2);
    assert_null(wake2);
    tally_lock_waits_tend(&lw, 5000, 500, &expired, &wake2);
    assert_ptr_equal(wake2, j[1]);
    assert_null(wake2->next);
    tally_job_free(j[0]);
    tally_job_free(j[1]);
    tally_lock_waits_expire_all(&lw);
    tally_lock_waits_tend(&lw, 6000, 600, &expired, &wake2);
    assert_ptr_equal(expired, j[2]);
    free_list(expired);
    assert_false(tally_lock_waits_any(&lw));
    tally_lock_waits_free(&lw);
}

static void test_waits_run_out_with_the_lease_they_waited_behind(void **state)
{
    (void)state;
    tally_lock_waits lw = {0};
    tally_job *a = acquire_job("L", 1000), *b = acquire_job("L", 5000);
    tally_lock_waits_park(&lw, a, 777000);
    tally_lock_waits_park(&lw, b, 0);
    tally_job *expired = NULL, *wake = NULL;
    uint64_t due = tally_lock_waits_tend(&lw, 2000, 10, &expired, &wake);
    assert_ptr_equal(expired, a);
    assert_null(a->next);
    assert_int_equal(a->plan->results[0].expires_at, 777000);
    assert_null(wake);
    assert_int_equal(due, 5000); /* b's deadline comes before the lease ends */
    tally_job_free(a);
    expired = NULL;
    tally_lock_waits_tend(&lw, 6000, 20, &expired, &wake);
    assert_ptr_equal(expired, b);
    tally_job_free(b);
    assert_false(tally_lock_waits_any(&lw));
    tally_lock_waits_free(&lw);
}

static void test_names_are_apart_and_keys_found(void **state)
{
    (void)state;
    tally_lock_waits lw = {0};
    tally_job *a = acquire_job("one", UINT64_MAX), *b = acquire_job("two", UINT64_MAX);
    tally_idem_key *k = calloc(1, sizeof *k);
    k->method = strdup("POST");
    k->path = strdup("/api/locks/two/acquire");
    k->key = strdup("retry-1");
    b->idem = k;
    tally_lock_waits_park(&lw, a, 100);
    tally_lock_waits_park(&lw, b, 100);
    tally_idem_key probe = {.method = "POST", .path = "/api/locks/two/acquire", .key = "retry-1"};
    assert_ptr_equal(tally_lock_waits_find_key(&lw, &probe), b);
    probe.path = "/api/locks/one/acquire";
    assert_null(tally_lock_waits_find_key(&lw, &probe));
    assert_ptr_equal(tally_lock_waits_released(&lw, "two", 3), b);
    assert_true(tally_lock_waits_has(&lw, "one", 3));
    assert_ptr_equal(tally_lock_waits_released(&lw, "one", 3), a);
    tally_job_free(a);
    tally_job_free(b);
    tally_lock_waits_free(&lw);
}

/* A release on another server is not seen here: with poll_ns the first
 * waiter tries again every poll_ns (only the first: the line keeps its order). */
static void test_shared_database_polls(void **state)
{
    (void)state;
    tally_lock_waits lw = {.poll_ns = 250u * 1000000u};
    tally_job *a = acquire_job("P", UINT64_MAX), *b = acquire_job("P", UINT64_MAX);
    int64_t far_ms = INT64_C(1) << 50; /* the holder's lease ends long after the test */
    uint64_t t0 = tally_clock_ns();
    tally_lock_waits_park(&lw, a, far_ms);
    tally_lock_waits_park(&lw, b, far_ms);
    tally_job *expired = NULL, *wake = NULL;
    uint64_t due = tally_lock_waits_tend(&lw, t0 + 1000000u, 0, &expired, &wake);
    assert_null(wake);
    assert_null(expired);
    assert_true(due >= t0 + 250u * 1000000u - 1000000u && due <= tally_clock_ns() + 250u * 1000000u);
    due = tally_lock_waits_tend(&lw, due, 0, &expired, &wake);
    assert_ptr_equal(wake, a); /* the first in line, alone */
    assert_null(a->next);
    assert_null(expired);
    /* Still held: it parks again at the head, and polls again poll_ns later. */
    tally_lock_waits_park(&lw, a, far_ms);
    wake = NULL;
    assert_null((tally_lock_waits_tend(&lw, tally_clock_ns() + 1000000u, 0, &expired, &wake), wake));
    due = tally_lock_waits_tend(&lw, tally_clock_ns() + 260u * 1000000u, 0, &expired, &wake);
    assert_ptr_equal(wake, a);
    tally_job_free(a);
    assert_ptr_equal(tally_lock_waits_released(&lw, "P", 1), b);
    tally_job_free(b);
    assert_false(tally_lock_waits_any(&lw));
    /* Without poll_ns (one server: SQLite), nothing wakes before the lease ends. */
    tally_lock_waits one = {0};
    tally_job *c = acquire_job("Q", UINT64_MAX);
    tally_lock_waits_park(&one, c, far_ms);
    wake = NULL;
    tally_lock_waits_tend(&one, tally_clock_ns() + 10u * 1000000000u, 0, &expired, &wake);
    assert_null(wake);
    tally_lock_waits_free(&one);
    tally_job_free(c);
    tally_lock_waits_free(&lw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_database_polls),
        cmocka_unit_test(test_only_lone_acquires_wait),
        cmocka_unit_test(test_release_wakes_first_in_arrival_order),
        cmocka_unit_test(test_woken_waiter_stays_first),
        cmocka_unit_test(test_ended_lease_wakes_one_waiter),
        cmocka_unit_test(test_waits_run_out_with_the_lease_they_waited_behind),
        cmocka_unit_test(test_names_are_apart_and_keys_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
