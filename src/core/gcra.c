/* gcra.c — rate-limit arithmetic; see gcra.h. */
#include "core/gcra.h"

#include <math.h>

tally_gcra_verdict tally_gcra_decide(const tally_limit *l, bool has_tat, double tat_us, int64_t cost, int64_t now_ms)
{
    tally_gcra_verdict v = {0};
    double t = (double)l->period_ms * 1000.0 / (double)l->rate; /* emission interval, µs */
    double now = (double)now_ms * 1000.0;
    double tat = has_tat && tat_us > now ? tat_us : now;
    double next = tat + (double)cost * t, limit = (double)l->burst * t;
    v.allowed = next - now <= limit + 1e-6; /* the slack absorbs float rounding of T */
    if (v.allowed) {
        v.new_tat_us = next;
        v.remaining = (int64_t)floor((limit - (next - now)) / t + 1e-9);
        v.retry_after_ms = 0;
        v.reset_after_ms = (int64_t)ceil((next - now) / 1000.0);
    } else {
        v.new_tat_us = tat;
        v.remaining = 0;
        v.retry_after_ms = (int64_t)ceil((next - limit - now) / 1000.0);
        v.reset_after_ms = (int64_t)ceil((tat - now) / 1000.0); /* the stored TAT: nothing was taken */
    }
    return v;
}
