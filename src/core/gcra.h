/*
 * gcra.h — the arithmetic of rate limits (GCRA, README.md, "Locks, rate limits and safe retries") and of lock
 * leases, as pure functions that every backend uses, so that a limit or a
 * lease is judged the same whichever database stores its state.
 *
 * GCRA: with T = periodMs/rate (the emission interval) and TAT the stored
 * theoretical arrival time of a key, TAT' = max(TAT, now) + cost·T; the
 * request is allowed iff TAT' − now ≤ burst·T, and only then is TAT' stored.
 * Times are UTC microseconds as doubles (T need not be a whole number of ms).
 */
#ifndef TALLY_CORE_GCRA_H
#define TALLY_CORE_GCRA_H

#include <stdbool.h>
#include <stdint.h>

#include "core/schema.h"

typedef struct tally_gcra_verdict {
    bool allowed;
    double new_tat_us;      /* the TAT to store when allowed */
    int64_t remaining;      /* requests still allowed at once after this one */
    int64_t retry_after_ms; /* when refused: how long until this cost would fit */
    int64_t reset_after_ms; /* until the key is as if never seen */
} tally_gcra_verdict;

/* The verdict for `cost` on a key whose stored TAT is tat_us (has_tat false:
 * never seen, or swept), at now_ms. */
tally_gcra_verdict tally_gcra_decide(const tally_limit *l, bool has_tat, double tat_us, int64_t cost, int64_t now_ms);

/* The emission interval T = periodMs/rate and the burst tolerance burst·T, in µs. */
double tally_gcra_interval_us(const tally_limit *l);
double tally_gcra_tolerance_us(const tally_limit *l);

/* The answer's numbers once a backend has decided in its own way (in one
 * statement, across servers): allowed with new_tat_us stored, or refused
 * with the key's stored TAT tat_us, both judged at now_us. */
tally_gcra_verdict tally_gcra_answer(const tally_limit *l, bool allowed, double tat_us, int64_t cost, double now_us);

/* A TAT below this (UTC µs) is spent: the key is as if never seen and its row may go. */
static inline double tally_gcra_spent_before_us(int64_t now_ms) { return (double)now_ms * 1000.0; }

/* Lock leases: a lease granted at now_ms for ttl_ms ends at the returned
 * time; it holds while now < end (a lease whose time has come is lost,
 * whether or not anyone has taken the lock since). */
static inline int64_t tally_lease_end(int64_t now_ms, int64_t ttl_ms) { return now_ms + ttl_ms; }
static inline bool tally_lease_holds(int64_t expires_at_ms, int64_t now_ms) { return expires_at_ms > now_ms; }

#endif
