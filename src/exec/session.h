/*
 * session.h — an interactive transaction (WebSocket begin … commit) as the
 * writer sees it.
 *
 * A session is shared by the loop thread that owns the connection and the
 * writer, so it is reference-counted (atomically) and its state changes
 * under its own mutex:
 *   WAITING   begin is queued behind other writes
 *   ACTIVE    the writer has run BEGIN and serves this session only
 *   DONE      committed, rolled back, or timed out: no more steps
 *   CANCELLED the client left (or gave up) before the writer got to begin
 * The loop only hands a step/commit/rollback to the writer while ACTIVE
 * (tally_session_push checks and pushes under the lock), so no job of an
 * ended session is ever left in the writer's session queue.
 *
 * The session's plan accumulates the steps (so a step can reference an
 * earlier one's result).  It is owned by whoever holds the session's single
 * job in flight: the loop decodes a step into it only when no job is out.
 */
#ifndef TALLY_EXEC_SESSION_H
#define TALLY_EXEC_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/plan.h"

typedef enum tally_session_state {
    TALLY_SESSION_WAITING,
    TALLY_SESSION_ACTIVE,
    TALLY_SESSION_DONE,
    TALLY_SESSION_CANCELLED,
} tally_session_state;

typedef struct tally_session {
    atomic_int refs;
    pthread_mutex_t mu;
    tally_session_state state; /* under mu */
    const char *end_reason;    /* why it is DONE ("committed", "rolled back", "timeout"), static */
    uint64_t timeout_ms;       /* from activation */
    tally_plan *plan;          /* the steps so far; see above for ownership */
    void *origin;              /* the connection, for the timeout event */
    struct tally_queue *calls; /* the runner's queue its steps go to; set when it becomes ACTIVE */
} tally_session;

/* A new session (refs 1, WAITING) with an empty transaction plan. */
tally_session *tally_session_new(const tally_schema *schema, uint64_t timeout_ms, void *origin);
void tally_session_ref(tally_session *s);
/* Drops a reference; the last one frees the session and its plan (any thread). */
void tally_session_unref(tally_session *s);
tally_session_state tally_session_get_state(tally_session *s);
/* WAITING -> to, atomically; returns 0, or -1 if the state was something else. */
int tally_session_leave_waiting(tally_session *s, tally_session_state to);
/* WAITING -> ACTIVE with its calls going to `calls` (the runner's queue);
 * 0, or -1 if the state was something else (the client left meanwhile). */
int tally_session_activate(tally_session *s, struct tally_queue *calls);
/* Hands a step, commit or rollback job to the runner serving its session:
 * 0, or -1 when the session is not ACTIVE (the job stays the caller's).
 * Checked and pushed under the session's lock, so the runner cannot end the
 * session in between and leave the job behind. */
struct tally_job;
int tally_session_push(struct tally_job *job);
/* Marks the session DONE with a reason; returns the state it had. */
tally_session_state tally_session_finish(tally_session *s, const char *reason);

#endif
