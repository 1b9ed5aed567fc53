/* gcra.c — rate-limit arithmetic; see gcra.h. */
#include "core/gcra.h"

#include <math.h>

double tally_gcra_interval_us(const tally_limit *l) { return (double)l->period_ms * 1000.0 / (double)l->rate; }
double tally_gcra_tolerance_us(const tally_limit *l) { return (double)l->burst * tally_gcra_interval_us(l); }

tally_gcra_verdict tally_gcra_answer(const tally_limit *l, bool allowed, double tat_us, int64_t cost, double now_us)
{
    tally_gcra_verdict v = {.allowed = allowed, .new_tat_us = tat_us};
    double t = tally_gcra_interval_us(l), limit = tally_gcra_tolerance_us(l);
    if (allowed) {
        v.remaining = (int64_t)floor((limit - (tat_us - now_us)) / t + 1e-9);
        v.retry_after_ms = 0;
        v.reset_after_ms = (int64_t)ceil((tat_us - now_us) / 1000.0);
    } else {
        double tat = tat_us > now_us ? tat_us : now_us, next = tat + (double)cost * t;
        v.remaining = 0;
        v.retry_after_ms = (int64_t)ceil((next - limit - now_us) / 1000.0);
        v.reset_after_ms = (int64_t)ceil((tat - now_us) / 1000.0); /* the stored TAT: nothing was taken */
    }
    return v;
}

tally_gcra_verdict tally_gcra_decide(const tally_limit *l, bool has_tat, double tat_us, int64_t cost, int64_t now_ms)
{
    double t = tally_gcra_interval_us(l), now = (double)now_ms * 1000.0;
    double tat = has_tat && tat_us > now ? tat_us : now;
    double next = tat + (double)cost * t;
    bool allowed = next - now <= tally_gcra_tolerance_us(l) + 1e-6; /* the slack absorbs float rounding of T */
    return tally_gcra_answer(l, allowed, allowed ? next : tat, cost, now);
}
