/*
 * lock_hints.h — a server's side of the wake-up hints between servers that
 * share one database (where the backend has them: caps.cross_server_wakeups).
 *
 * One thread with a connection of its own (role TALLY_STORE_HINTS): it
 * listens for the names of locks released on any server and hands each to
 * on_hint, and it sends the names this server's lanes released after their
 * COMMIT, merged into one statement when several are waiting.  A lock waiter
 * woken by a hint tries again at once instead of at its next poll.  Hints
 * are never needed for correctness: they are lost while the connection is
 * down (the thread reconnects with backoff), and waiters poll regardless.
 */
#ifndef TALLY_EXEC_LOCK_HINTS_H
#define TALLY_EXEC_LOCK_HINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/schema.h"
#include "store/backend.h"

typedef struct tally_lock_hints tally_lock_hints;

/* Called on the hints thread for each name released on some server (this one
 * included); name is valid during the call. */
typedef void (*tally_hint_fn)(void *ctx, const char *name, size_t len);

/* Starts the thread; it connects with url (borrowed for the call: copied) and
 * opt (role set to TALLY_STORE_HINTS), and goes on connecting in the
 * background if the database is down.  schema and ctx are borrowed and must
 * outlive the hints.  0, or -code when the thread cannot start. */
int tally_lock_hints_start(const char *url, const tally_schema *schema, const tally_store_options *opt,
                           tally_hint_fn on_hint, void *ctx, tally_lock_hints **out, tally_error *err);

/* Any thread: name was released in a committed transaction; tell every server. Never blocks on the network. */
void tally_lock_hints_released(tally_lock_hints *h, const char *name, size_t len);

typedef struct tally_lock_hints_stats {
    uint64_t sent;     /* names sent to the other servers */
    uint64_t received; /* names received (own ones included) */
    bool listening;    /* the connection is up and subscribed */
} tally_lock_hints_stats;
tally_lock_hints_stats tally_lock_hints_get_stats(tally_lock_hints *h);

/* Stops the thread (nothing is sent or heard afterwards); NULL is allowed.
 * The stats stay readable until tally_lock_hints_free: /metrics may still be
 * served while the server drains. */
void tally_lock_hints_stop(tally_lock_hints *h);
/* Frees what stop left; once nothing reads the stats any more (the loops have stopped). */
void tally_lock_hints_free(tally_lock_hints *h);

#endif
