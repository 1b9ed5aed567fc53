/*
 * lock_waits.h — lock acquires that wait (waitMs), parked on the writer.
 *
 * An acquire that finds its lock held and may wait is parked here, per name,
 * first come first served, holding neither a loop thread nor the write
 * transaction.  Only the writer thread touches these lines.  The first
 * waiter of a name runs again when a committed batch releases the name, or
 * when the lease it waits behind ends, or (poll_ns, on a database other
 * servers share, whose releases this server cannot see) when poll_ns has
 * passed since it last tried; a waiter whose waitMs passes is answered
 * LOCKED.  Parked jobs are linked through job->next.
 */
#ifndef TALLY_EXEC_LOCK_WAITS_H
#define TALLY_EXEC_LOCK_WAITS_H

#include <stdbool.h>
#include <stdint.h>

#include "exec/job.h"

typedef struct tally_lock_line tally_lock_line;

typedef struct tally_lock_waits {
    tally_lock_line *lines; /* one per name with waiters */
    int n, cap;
    uint64_t poll_ns;       /* 0: only local releases and lease ends wake a waiter */
} tally_lock_waits;

/* The acquire step of a job that is a lone lock acquire, else NULL. */
const tally_step *tally_lock_acquire_step(const tally_job *job);

bool tally_lock_waits_any(const tally_lock_waits *lw);
/* Whether anyone waits for this name. */
bool tally_lock_waits_has(const tally_lock_waits *lw, const char *name, size_t len);
/* Parks an acquire job: at the end of its name's line, or at the head if it
 * was first in line already (job->woken).  lease_ends_ms (0: unknown) is the
 * holder's expiry as the job saw it. */
void tally_lock_waits_park(tally_lock_waits *lw, tally_job *job, int64_t lease_ends_ms);
/* A parked job with this idempotency key, or NULL. */
tally_job *tally_lock_waits_find_key(const tally_lock_waits *lw, const tally_idem_key *k);
/* After a committed batch: a grant or renewal of name moves its lease end; a
 * release takes the first waiter out of line (returned, woken) to run next. */
void tally_lock_waits_leased(tally_lock_waits *lw, const char *name, size_t len, int64_t lease_ends_ms);
tally_job *tally_lock_waits_released(tally_lock_waits *lw, const char *name, size_t len);
/*
 * Moves waiters whose waitMs has passed to *expired (their results[0].expires_at
 * set to the lease they waited behind) and, for each name whose lease has
 * ended, its first waiter to *wake.  Returns when the next of these is due
 * (monotonic ns), 0 if nothing is parked.
 */
uint64_t tally_lock_waits_tend(tally_lock_waits *lw, uint64_t now_ns, int64_t now_ms, tally_job **expired,
                               tally_job **wake);
/* Makes every parked wait run out (the writer is stopping). */
void tally_lock_waits_expire_all(tally_lock_waits *lw);
void tally_lock_waits_free(tally_lock_waits *lw);

#endif
