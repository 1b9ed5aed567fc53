/* Unit tests for core/gcra: the GCRA verdicts of README.md, "Locks, rate limits and safe retries", worked by hand
 * (a burst, then one request per emission interval, refusals with their
 * retry times, a cost above what is left) and the lease predicates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/gcra.h"

/* 10 per 60 s with a burst of 5: T = 6 s, so 5 at once, then one every 6 s. */
static tally_limit login(void)
{
    tally_limit l;
    memset(&l, 0, sizeof l);
    snprintf(l.name, sizeof l.name, "login");
    l.rate = 10;
    l.period_ms = 60000;
    l.burst = 5;
    return l;
}

static void burst_then_refusal(void **state)
{
    (void)state;
    tally_limit l = login();
    int64_t now = 1000000;
    bool has = false;
    double tat = 0;
    for (int i = 0; i < 5; i++) {
        tally_gcra_verdict v = tally_gcra_decide(&l, has, tat, 1, now);
        assert_true(v.allowed);
        assert_int_equal(v.remaining, 4 - i);
        assert_int_equal(v.retry_after_ms, 0);
        assert_int_equal(v.reset_after_ms, 6000 * (i + 1));
        has = true;
        tat = v.new_tat_us;
    }
    tally_gcra_verdict no = tally_gcra_decide(&l, has, tat, 1, now);
    assert_false(no.allowed);
    assert_int_equal(no.remaining, 0);
    assert_int_equal(no.retry_after_ms, 6000); /* one interval frees one request */
    assert_int_equal(no.reset_after_ms, 30000);
    assert_true(no.new_tat_us == tat);         /* a refusal takes nothing */
    /* 6 s later exactly one fits again. */
    tally_gcra_verdict later = tally_gcra_decide(&l, has, tat, 1, now + 6000);
    assert_true(later.allowed);
    assert_int_equal(later.remaining, 0);
}

static void spent_key_is_new(void **state)
{
    (void)state;
    tally_limit l = login();
    /* A TAT in the past counts as never seen: the full burst is there. */
    tally_gcra_verdict v = tally_gcra_decide(&l, true, 5.0, 1, 1000000);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 4);
    assert_true(tally_gcra_spent_before_us(1000000) == 1e9);
}

static void cost_larger_than_left(void **state)
{
    (void)state;
    tally_limit l = login();
    tally_gcra_verdict a = tally_gcra_decide(&l, false, 0, 4, 0);
    assert_true(a.allowed);
    assert_int_equal(a.remaining, 1);
    tally_gcra_verdict b = tally_gcra_decide(&l, true, a.new_tat_us, 3, 0);
    assert_false(b.allowed);
    assert_int_equal(b.retry_after_ms, 12000); /* two more intervals free the 2 missing */
}

static void leases(void **state)
{
    (void)state;
    int64_t end = tally_lease_end(1000, 500);
    assert_int_equal(end, 1500);
    assert_true(tally_lease_holds(end, 1499));
    assert_false(tally_lease_holds(end, 1500)); /* its time has come: lost */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_refusal),
        cmocka_unit_test(spent_key_is_new),
        cmocka_unit_test(cost_larger_than_left),
        cmocka_unit_test(leases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
