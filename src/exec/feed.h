/*
 * feed.h — the change feed's follower side: one thread and one connection
 * (TALLY_STORE_FEED) that answer page reads of the feed, hold long polls
 * (waitMs) until a change arrives or the wait ends, and on PostgreSQL run
 * the sequencer (store/postgres/feed.c) that numbers ended transactions'
 * changes.
 *
 * A follower asks with a job whose plan has one TALLY_OP_CHANGES step.  The
 * thread reads the page at once; a page with changes, an error, or no wait
 * is answered; an empty page with a wait is parked and read again each time
 * the feed's head moves (a commit here pokes it; other servers' commits are
 * seen by polling), and answered empty when its wait ends.  SSE and
 * WebSocket subscriptions are chains of such jobs, each after the last
 * one's next (api/changes.c).
 *
 * Ownership: as the writer's (exec/writer.h): a submitted job is the feed's
 * until its completion runs on the feed thread.
 */
#ifndef TALLY_EXEC_FEED_H
#define TALLY_EXEC_FEED_H

#include <stdint.h>

#include "exec/job.h"
#include "store/backend.h"

typedef struct tally_feed tally_feed;

/* Opens the feed's connection to db and starts its thread.  poll_ms: how
 * often to look for changes committed elsewhere (0: 1000 where this server
 * is the only writer, 50 where others may write). */
int tally_feed_start(const char *db, const tally_schema *schema, const tally_store_options *so, int poll_ms,
                     tally_feed **out, tally_error *err);
/* 0, or -TALLY_OVERLOADED (queue full or stopping; the job stays the caller's). */
int tally_feed_submit(tally_feed *f, tally_job *job);
/* Any thread: something may have committed; look now. */
void tally_feed_poke(tally_feed *f);

typedef struct tally_feed_stats {
    tally_feed_state state;   /* as last read */
    uint64_t waiting;         /* long polls held */
    uint64_t numbered;        /* changes this server's sequencer numbered */
} tally_feed_stats;
tally_feed_stats tally_feed_get_stats(tally_feed *f);

/* Answers every held poll (empty) and joins the thread. */
void tally_feed_stop(tally_feed *f);
void tally_feed_free(tally_feed *f);

#endif
